// `agentctl agent create|get|list|update|delete`.
#include <google/protobuf/descriptor.h>

#include <iostream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/agent_file.h"
#include "cli/cli_common.h"
#include "cli/output.h"

namespace agentd::cli {
namespace {

namespace v1 = agentd::v1;

// The flags of `create` and `update` (for update, every flag is optional).
struct CreateOptions {
  std::string id;  // update only
  std::string file;
  std::string name;
  std::string model;
  std::string instructions;
  int32_t max_steps = 0;
  std::vector<std::string> tools;
  std::vector<std::string> metadata;
};

// NAME[:client|builtin][:description]; "mcp:server/tool" names keep their colon, default BUILTIN.
v1::ToolSpec ParseToolFlag(const std::string& flag) {
  std::vector<std::string> parts = absl::StrSplit(flag, ':');
  v1::ToolSpec tool;
  size_t next = 1;
  tool.set_name(parts[0]);
  tool.set_kind(v1::TOOL_KIND_CLIENT);
  if (parts[0] == "mcp" && parts.size() > 1) {
    tool.set_name(absl::StrCat("mcp:", parts[1]));
    tool.set_kind(v1::TOOL_KIND_BUILTIN);
    next = 2;
  }
  if (next < parts.size() && (parts[next] == "client" || parts[next] == "builtin")) {
    tool.set_kind(parts[next] == "client" ? v1::TOOL_KIND_CLIENT : v1::TOOL_KIND_BUILTIN);
    ++next;
  }
  if (next < parts.size()) {
    tool.set_description(absl::StrJoin(parts.begin() + next, parts.end(), ":"));
  }
  return tool;
}

// ---- Actions --------------------------------------------------------------------------------

void PrintAgent(Connection& c, const v1::Agent& agent) {
  if (c.structured()) return c.Print(agent);
  PrintAgents({agent});
}

// The flags given override what `agent` has: --tool replaces the tool list, --meta sets keys.
void ApplyFlags(const CreateOptions& o, v1::Agent* agent) {
  if (!o.name.empty()) agent->set_name(o.name);
  if (!o.model.empty()) agent->set_model(o.model);
  if (!o.instructions.empty()) agent->set_instructions(o.instructions);
  if (o.max_steps > 0) agent->set_max_steps_per_turn(o.max_steps);
  if (!o.tools.empty()) agent->clear_tools();
  for (const std::string& t : o.tools) *agent->add_tools() = ParseToolFlag(t);
  for (const std::string& kv : o.metadata) {
    auto [key, value] = SplitKeyValue(kv);
    (*agent->mutable_metadata())[key] = value;
  }
}

int CreateAgent(Connection& c, const CreateOptions& o) {
  v1::CreateAgentRequest request;
  v1::Agent* agent = request.mutable_agent();
  if (!o.file.empty()) {
    absl::StatusOr<AgentFile> loaded = LoadAgentFile(o.file);
    if (!loaded.ok()) return UsageError(std::string(loaded.status().message()));
    *agent = std::move(loaded->agent);
  }
  ApplyFlags(o, agent);
  if (agent->name().empty()) return UsageError("--name is required (or `name:` in --file)");
  if (agent->model().empty()) return UsageError("--model is required (or `model:` in --file)");
  v1::Agent response;
  auto context = c.NewContext();
  const grpc::Status status = c.agents().CreateAgent(context.get(), request, &response);
  if (!status.ok()) return c.Fail(status, *context);
  PrintAgent(c, response);
  return kExitOk;
}

int GetAgent(Connection& c, const std::string& id, int64_t version) {
  v1::GetAgentRequest request;
  request.set_agent_id(id);
  request.set_version(version);
  v1::Agent response;
  auto context = c.NewContext();
  const grpc::Status status = c.agents().GetAgent(context.get(), request, &response);
  if (!status.ok()) return c.Fail(status, *context);
  if (c.structured()) return c.Print(response), kExitOk;
  PrintAgents({response});
  if (!response.instructions().empty()) {
    std::cout << "\ninstructions: " << OneLine(response.instructions(), 300) << "\n";
  }
  if (response.tools_size() > 0) {
    std::cout << "\n";
    PrintTools(response);
  }
  return kExitOk;
}

int ListAgents(Connection& c) {
  v1::ListAgentsResponse all;
  v1::ListAgentsRequest request;
  request.set_page_size(100);
  do {
    v1::ListAgentsResponse page;
    auto context = c.NewContext();
    const grpc::Status status = c.agents().ListAgents(context.get(), request, &page);
    if (!status.ok()) return c.Fail(status, *context);
    for (v1::Agent& a : *page.mutable_agents()) *all.add_agents() = std::move(a);
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  if (c.structured()) return c.Print(all), kExitOk;
  PrintAgents({all.agents().begin(), all.agents().end()});
  return kExitOk;
}

// Read-modify-write: the latest version, then the fields the file sets (each replaces the
// current value), then the flags. UpdateAgent stores the result as a new version.
int UpdateAgent(Connection& c, const CreateOptions& o) {
  AgentFile file;
  if (!o.file.empty()) {
    absl::StatusOr<AgentFile> loaded = LoadAgentFile(o.file);
    if (!loaded.ok()) return UsageError(std::string(loaded.status().message()));
    file = *std::move(loaded);
    if (!file.agent.agent_id().empty() && file.agent.agent_id() != o.id) {
      return UsageError(
          absl::StrCat(o.file, " names agent ", file.agent.agent_id(), ", not ", o.id));
    }
  }
  if (o.file.empty() && o.name.empty() && o.model.empty() && o.instructions.empty() &&
      o.max_steps == 0 && o.tools.empty() && o.metadata.empty()) {
    return UsageError("nothing to change: give --file and/or flags");
  }
  v1::GetAgentRequest get;
  get.set_agent_id(o.id);
  v1::UpdateAgentRequest request;
  v1::Agent* agent = request.mutable_agent();
  auto get_context = c.NewContext();
  const grpc::Status got = c.agents().GetAgent(get_context.get(), get, agent);
  if (!got.ok()) return c.Fail(got, *get_context);
  const google::protobuf::Reflection* reflection = agent->GetReflection();
  for (const std::string& name : file.fields) {
    reflection->ClearField(agent, v1::Agent::descriptor()->FindFieldByName(name));
  }
  agent->MergeFrom(file.agent);
  ApplyFlags(o, agent);
  agent->set_agent_id(o.id);
  agent->clear_version();
  agent->clear_create_time();
  agent->clear_update_time();
  v1::Agent response;
  auto context = c.NewContext();
  const grpc::Status status = c.agents().UpdateAgent(context.get(), request, &response);
  if (!status.ok()) return c.Fail(status, *context);
  PrintAgent(c, response);
  return kExitOk;
}

int DeleteAgent(Connection& c, const std::string& id) {
  v1::DeleteAgentRequest request;
  request.set_agent_id(id);
  google::protobuf::Empty response;
  auto context = c.NewContext();
  const grpc::Status status = c.agents().DeleteAgent(context.get(), request, &response);
  if (!status.ok()) return c.Fail(status, *context);
  if (c.structured()) return c.Print(response), kExitOk;
  std::cout << "deleted agent " << id << std::endl;
  return kExitOk;
}

// ---- Registration ---------------------------------------------------------------------------

void AddDefinitionFlags(CLI::App* cmd, CreateOptions* o) {
  cmd->add_option("--name", o->name, "Agent name");
  cmd->add_option("--model", o->model, "Model name from the server config, or echo");
  cmd->add_option("--instructions", o->instructions, "System instructions");
  cmd->add_option("--max-steps", o->max_steps, "Model steps per turn (0 = server default)")
      ->check(CLI::Range(0, 1000));
  cmd->add_option("--tool", o->tools,
                  "Tool: NAME[:client|builtin][:description] (repeatable; replaces the list)")
      ->allow_extra_args(false)
      ->type_name("SPEC");
  cmd->add_option("--meta", o->metadata, "Metadata entry to set (repeatable)")
      ->allow_extra_args(false)
      ->check(KeyValue())
      ->type_name("KEY=VALUE");
  cmd->add_option("--file,-f", o->file,
                  "YAML or JSON file with Agent fields (proto names); flags override it")
      ->check(CLI::ExistingFile);
}

void AddCreate(CLI::App& agent, Dispatch* d) {
  auto o = std::make_shared<CreateOptions>();
  CLI::App* cmd = AddCommand(
      agent, "create", "Create an agent (version 1)",
      "  agentctl agent create --name weather --model echo \\\n"
      "      --instructions 'Answer briefly.' --tool 'get_weather:client:Weather for a city'\n"
      "  agentctl agent create --file agent.yaml --name weather-v2");
  AddDefinitionFlags(cmd, o.get());
  cmd->callback([d, o] { d->action = [o](Connection& c) { return CreateAgent(c, *o); }; });
}

void AddUpdate(CLI::App& agent, Dispatch* d) {
  auto o = std::make_shared<CreateOptions>();
  CLI::App* cmd = AddCommand(
      agent, "update",
      "Create a new version of an agent: the latest version with the fields of --file and the "
      "flags replaced (sessions keep the version they pinned)",
      "  agentctl agent update agent_0123 --instructions 'Answer in French.'\n"
      "  agentctl agent update agent_0123 --file agent.yaml --model small\n"
      "  agentctl agent update agent_0123 --tool 'get_weather:client' --tool 'state_get:builtin'");
  cmd->add_option("ID", o->id, "Agent id")->required();
  AddDefinitionFlags(cmd, o.get());
  cmd->callback([d, o] { d->action = [o](Connection& c) { return UpdateAgent(c, *o); }; });
}

void AddGet(CLI::App& agent, Dispatch* d) {
  auto id = std::make_shared<std::string>();
  auto version = std::make_shared<int64_t>(0);
  CLI::App* cmd = AddCommand(agent, "get", "Show an agent (latest version unless --version)",
                             "  agentctl agent get agent_0123 --version 2 -o json");
  cmd->add_option("ID", *id, "Agent id")->required();
  cmd->add_option("--version", *version, "Version (0 = latest)")->check(kWholeNumber);
  cmd->callback([d, id, version] {
    d->action = [id, version](Connection& c) { return GetAgent(c, *id, *version); };
  });
}

void AddList(CLI::App& agent, Dispatch* d) {
  CLI::App* cmd = AddCommand(agent, "list", "List the agents of the project (latest versions)",
                             "  agentctl agent list\n  agentctl agent list -o json");
  cmd->callback([d] { d->action = [](Connection& c) { return ListAgents(c); }; });
}

void AddDelete(CLI::App& agent, Dispatch* d) {
  auto id = std::make_shared<std::string>();
  CLI::App* cmd = AddCommand(agent, "delete", "Delete an agent and all its versions",
                             "  agentctl agent delete agent_0123");
  cmd->add_option("ID", *id, "Agent id")->required();
  cmd->callback([d, id] { d->action = [id](Connection& c) { return DeleteAgent(c, *id); }; });
}

}  // namespace

void AddAgentCommands(CLI::App& app, Dispatch* dispatch) {
  CLI::App* agent =
      AddCommand(app, "agent", "Create, show, list, update and delete agents",
                 "  agentctl agent create --name helper --model echo\n  agentctl agent list");
  agent->require_subcommand(1);
  AddCreate(*agent, dispatch);
  AddGet(*agent, dispatch);
  AddList(*agent, dispatch);
  AddUpdate(*agent, dispatch);
  AddDelete(*agent, dispatch);
}

}  // namespace agentd::cli
