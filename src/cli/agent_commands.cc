// `agentctl agent create|get|list|delete`.
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "cli/cli_common.h"
#include "cli/output.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace agentd::cli {
namespace {

namespace v1 = agentd::v1;

struct CreateOptions {
  std::string file;
  std::string name;
  std::string model;
  std::string instructions;
  int32_t max_steps = 0;
  std::vector<std::string> tools;
  std::vector<std::string> metadata;
};

// ---- --file: YAML (or JSON) -> JSON -> Agent ------------------------------------------------

// Scalars become JSON strings (protobuf's JSON parser accepts quoted numbers, booleans and enum
// names), so `name: 123` stays a string; plain `~`/`null`/empty become null (= the default).
nlohmann::json YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json object = nlohmann::json::object();
      for (const auto& kv : node) object[kv.first.as<std::string>()] = YamlToJson(kv.second);
      return object;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json array = nlohmann::json::array();
      for (const auto& item : node) array.push_back(YamlToJson(item));
      return array;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      const bool plain = node.Tag() != "!";
      if (plain && (s == "~" || s == "null" || s == "Null" || s == "NULL")) return nullptr;
      return s;
    }
    default:
      return nullptr;
  }
}

// Friendlier file contents: `kind: client`, `strategy: sliding_window`, and a schema written
// as a nested object instead of a JSON string.
void NormalizeAgentJson(nlohmann::json& agent) {
  if (!agent.is_object()) return;
  if (agent.contains("tools") && agent["tools"].is_array()) {
    for (nlohmann::json& tool : agent["tools"]) {
      if (!tool.is_object()) continue;
      if (tool.contains("kind") && tool["kind"].is_string()) {
        const std::string kind = tool["kind"];
        if (kind == "client" || kind == "builtin") {
          tool["kind"] = "TOOL_KIND_" + absl::AsciiStrToUpper(kind);
        }
      }
      auto schema = tool.find("parameters_json_schema");
      if (schema != tool.end() && schema->is_object()) *schema = schema->dump();
    }
  }
  auto policy = agent.find("context_policy");
  if (policy != agent.end() && policy->is_object() && policy->contains("strategy") &&
      (*policy)["strategy"].is_string()) {
    const std::string strategy = (*policy)["strategy"];
    if (strategy == "sliding_window" || strategy == "summarize") {
      (*policy)["strategy"] = "CONTEXT_STRATEGY_" + absl::AsciiStrToUpper(strategy);
    }
  }
}

// Reads an Agent from a YAML or JSON file. Errors are INVALID_ARGUMENT naming the file.
absl::Status LoadAgentFile(const std::string& path, v1::Agent* agent) {
  std::ifstream in(path);
  if (!in) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json json;
  try {
    json = YamlToJson(YAML::Load(text.str()));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", e.what()));
  }
  if (json.is_null()) return absl::OkStatus();
  if (!json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": expected a map of Agent fields"));
  }
  NormalizeAgentJson(json);
  const auto status = google::protobuf::util::JsonStringToMessage(json.dump(), agent);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", status.message().ToString()));
  }
  return absl::OkStatus();
}

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
  if (c.json()) return PrintJson(agent);
  PrintAgents({agent});
}

int CreateAgent(Connection& c, const CreateOptions& o) {
  v1::CreateAgentRequest request;
  v1::Agent* agent = request.mutable_agent();
  if (!o.file.empty()) {
    const absl::Status loaded = LoadAgentFile(o.file, agent);
    if (!loaded.ok()) return UsageError(absl::StrCat(loaded.message()));
  }
  if (!o.name.empty()) agent->set_name(o.name);
  if (!o.model.empty()) agent->set_model(o.model);
  if (!o.instructions.empty()) agent->set_instructions(o.instructions);
  if (o.max_steps > 0) agent->set_max_steps_per_turn(o.max_steps);
  for (const std::string& t : o.tools) *agent->add_tools() = ParseToolFlag(t);
  for (const std::string& kv : o.metadata) {
    auto [key, value] = SplitKeyValue(kv);
    (*agent->mutable_metadata())[key] = value;
  }
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
  if (c.json()) return PrintJson(response), kExitOk;
  PrintAgents({response});
  if (!response.instructions().empty()) {
    std::cout << "\ninstructions: " << OneLine(response.instructions(), 300) << "\n";
  }
  if (response.tools_size() > 0) {
    Table tools({"tool", "kind", "description"});
    for (const v1::ToolSpec& t : response.tools()) {
      tools.Add({t.name(), ShortEnumName(v1::ToolKind_Name(t.kind()), "TOOL_KIND_"),
                 OneLine(t.description(), 80)});
    }
    std::cout << "\n";
    tools.Print(std::cout);
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
  if (c.json()) return PrintJson(all), kExitOk;
  PrintAgents({all.agents().begin(), all.agents().end()});
  return kExitOk;
}

int DeleteAgent(Connection& c, const std::string& id) {
  v1::DeleteAgentRequest request;
  request.set_agent_id(id);
  google::protobuf::Empty response;
  auto context = c.NewContext();
  const grpc::Status status = c.agents().DeleteAgent(context.get(), request, &response);
  if (!status.ok()) return c.Fail(status, *context);
  if (c.json()) return PrintJson(response), kExitOk;
  std::cout << "deleted agent " << id << std::endl;
  return kExitOk;
}

// ---- Registration ---------------------------------------------------------------------------

void AddCreate(CLI::App& agent, Dispatch* d) {
  auto o = std::make_shared<CreateOptions>();
  CLI::App* cmd = AddCommand(
      agent, "create", "Create an agent (version 1)",
      "  agentctl agent create --name weather --model echo \\\n"
      "      --instructions 'Answer briefly.' --tool 'get_weather:client:Weather for a city'\n"
      "  agentctl agent create --file agent.yaml --name weather-v2");
  cmd->add_option("--name", o->name, "Agent name");
  cmd->add_option("--model", o->model, "Model name from the server config, or echo");
  cmd->add_option("--instructions", o->instructions, "System instructions");
  cmd->add_option("--max-steps", o->max_steps, "Model steps per turn (0 = server default)")
      ->check(CLI::Range(0, 1000));
  cmd->add_option("--tool", o->tools, "Tool: NAME[:client|builtin][:description] (repeatable)")
      ->allow_extra_args(false)
      ->type_name("SPEC");
  cmd->add_option("--meta", o->metadata, "Metadata (repeatable)")
      ->allow_extra_args(false)
      ->check(KeyValue())
      ->type_name("KEY=VALUE");
  cmd->add_option("--file,-f", o->file, "YAML or JSON file with Agent fields; flags override it")
      ->check(CLI::ExistingFile);
  cmd->callback([d, o] { d->action = [o](Connection& c) { return CreateAgent(c, *o); }; });
}

void AddGet(CLI::App& agent, Dispatch* d) {
  auto id = std::make_shared<std::string>();
  auto version = std::make_shared<int64_t>(0);
  CLI::App* cmd = AddCommand(agent, "get", "Show an agent (latest version unless --version)",
                             "  agentctl agent get agt_0123 --version 2 -o json");
  cmd->add_option("ID", *id, "Agent id")->required();
  cmd->add_option("--version", *version, "Version (0 = latest)")->check(CLI::NonNegativeNumber);
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
                             "  agentctl agent delete agt_0123");
  cmd->add_option("ID", *id, "Agent id")->required();
  cmd->callback([d, id] { d->action = [id](Connection& c) { return DeleteAgent(c, *id); }; });
}

}  // namespace

void AddAgentCommands(CLI::App& app, Dispatch* dispatch) {
  CLI::App* agent =
      AddCommand(app, "agent", "Create, show, list and delete agents",
                 "  agentctl agent create --name helper --model echo\n  agentctl agent list");
  agent->require_subcommand(1);
  AddCreate(*agent, dispatch);
  AddGet(*agent, dispatch);
  AddList(*agent, dispatch);
  AddDelete(*agent, dispatch);
}

}  // namespace agentd::cli
