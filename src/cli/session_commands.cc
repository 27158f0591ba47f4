// `agentctl session create|get|list|delete|fork` (export, import and replay are in
// transfer_commands.cc).
#include <iostream>

#include "absl/strings/ascii.h"
#include "cli/cli_common.h"
#include "cli/output.h"

namespace agentd::cli {
namespace {

namespace v1 = agentd::v1;

struct CreateOptions {
  std::string agent_id;
  int64_t agent_version = 0;
  std::string session_id;
  int64_t ttl_seconds = 0;
  std::vector<std::string> metadata;
};

struct ForkOptions {
  std::string session_id;
  int64_t at_seq = 0;
  std::string new_session_id;
};

struct ListOptions {
  std::string agent_id;
  std::string status;  // idle | running | requires_action | failed
};

void PrintSession(Connection& c, const v1::Session& session) {
  if (c.structured()) return c.Print(session);
  PrintSessions({session});
  if (session.status() == v1::SESSION_STATUS_REQUIRES_ACTION &&
      session.pending_tool_calls_size() > 0) {
    std::cout << "\n";
    PrintRequiredToolCalls(session.session_id(), session.pending_tool_calls());
  }
}

int CreateSession(Connection& c, const CreateOptions& o) {
  v1::CreateSessionRequest request;
  request.set_agent_id(o.agent_id);
  request.set_agent_version(o.agent_version);
  request.set_session_id(o.session_id);
  request.set_ttl_seconds(o.ttl_seconds);
  for (const std::string& kv : o.metadata) {
    auto [key, value] = SplitKeyValue(kv);
    (*request.mutable_metadata())[key] = value;
  }
  v1::Session response;
  auto context = c.NewContext(o.session_id);
  const grpc::Status status = c.sessions().CreateSession(context.get(), request, &response);
  if (!status.ok()) return c.Fail(status, *context);
  PrintSession(c, response);
  return kExitOk;
}

int GetSession(Connection& c, const std::string& id) {
  v1::GetSessionRequest request;
  request.set_session_id(id);
  v1::Session response;
  auto context = c.NewContext(id);
  const grpc::Status status = c.sessions().GetSession(context.get(), request, &response);
  if (!status.ok()) return c.Fail(status, *context);
  PrintSession(c, response);
  if (!c.structured()) {
    std::cout << "\nusage: " << UsageText(response.usage()) << std::endl;
  }
  return kExitOk;
}

v1::SessionStatus ParseStatus(const std::string& status) {
  v1::SessionStatus value = v1::SESSION_STATUS_UNSPECIFIED;
  if (!status.empty()) {
    v1::SessionStatus_Parse("SESSION_STATUS_" + absl::AsciiStrToUpper(status), &value);
  }
  return value;
}

int ListSessions(Connection& c, const ListOptions& o) {
  v1::ListSessionsResponse all;
  v1::ListSessionsRequest request;
  request.set_agent_id(o.agent_id);
  request.set_status(ParseStatus(o.status));
  request.set_page_size(100);
  do {
    v1::ListSessionsResponse page;
    auto context = c.NewContext();
    const grpc::Status status = c.sessions().ListSessions(context.get(), request, &page);
    if (!status.ok()) return c.Fail(status, *context);
    for (v1::Session& s : *page.mutable_sessions()) *all.add_sessions() = std::move(s);
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  if (c.structured()) return c.Print(all), kExitOk;
  PrintSessions({all.sessions().begin(), all.sessions().end()});
  return kExitOk;
}

int DeleteSession(Connection& c, const std::string& id) {
  v1::DeleteSessionRequest request;
  request.set_session_id(id);
  google::protobuf::Empty response;
  auto context = c.NewContext(id);
  const grpc::Status status = c.sessions().DeleteSession(context.get(), request, &response);
  if (!status.ok()) return c.Fail(status, *context);
  if (c.structured()) return c.Print(response), kExitOk;
  std::cout << "deleted session " << id << std::endl;
  return kExitOk;
}

int ForkSession(Connection& c, const ForkOptions& o) {
  v1::ForkSessionRequest request;
  request.set_session_id(o.session_id);
  request.set_at_seq(o.at_seq);
  request.set_new_session_id(o.new_session_id);
  v1::Session response;
  auto context = c.NewContext(o.session_id);
  const grpc::Status status = c.sessions().ForkSession(context.get(), request, &response);
  if (!status.ok()) return c.Fail(status, *context);
  PrintSession(c, response);
  return kExitOk;
}

void AddCreate(CLI::App& session, Dispatch* d) {
  auto o = std::make_shared<CreateOptions>();
  CLI::App* cmd = AddCommand(
      session, "create", "Start a session of an agent (pins the agent version)",
      "  agentctl session create --agent agent_0123\n"
      "  agentctl session create --agent agent_0123 --id support-42 --ttl 3600 --meta user=alice");
  cmd->add_option("--agent", o->agent_id, "Agent id")->required();
  cmd->add_option("--agent-version", o->agent_version, "Agent version to pin (0 = latest)")
      ->check(kWholeNumber);
  cmd->add_option("--id", o->session_id, "Client-chosen session id (default: server-generated)");
  cmd->add_option("--ttl", o->ttl_seconds, "Expire the session after SECONDS (0 = never)")
      ->check(kWholeNumber);
  cmd->add_option("--meta", o->metadata, "Metadata (repeatable)")
      ->allow_extra_args(false)
      ->check(KeyValue())
      ->type_name("KEY=VALUE");
  cmd->callback([d, o] { d->action = [o](Connection& c) { return CreateSession(c, *o); }; });
}

void AddGet(CLI::App& session, Dispatch* d) {
  auto id = std::make_shared<std::string>();
  CLI::App* cmd =
      AddCommand(session, "get", "Show a session: status, last event, usage, pending tool calls",
                 "  agentctl session get sess_0123\n  agentctl session get sess_0123 -o json");
  cmd->add_option("ID", *id, "Session id")->required();
  cmd->callback([d, id] { d->action = [id](Connection& c) { return GetSession(c, *id); }; });
}

void AddList(CLI::App& session, Dispatch* d) {
  auto o = std::make_shared<ListOptions>();
  CLI::App* cmd =
      AddCommand(session, "list", "List sessions, optionally of one agent or in one status",
                 "  agentctl session list --agent agent_0123 --status requires_action");
  cmd->add_option("--agent", o->agent_id, "Only sessions of this agent");
  cmd->add_option("--status", o->status, "Only sessions in this status")
      ->check(CLI::IsMember({"idle", "running", "requires_action", "failed"}));
  cmd->callback([d, o] { d->action = [o](Connection& c) { return ListSessions(c, *o); }; });
}

void AddDelete(CLI::App& session, Dispatch* d) {
  auto id = std::make_shared<std::string>();
  CLI::App* cmd = AddCommand(session, "delete", "Delete a session, its events and its state",
                             "  agentctl session delete sess_0123");
  cmd->add_option("ID", *id, "Session id")->required();
  cmd->callback([d, id] { d->action = [id](Connection& c) { return DeleteSession(c, *id); }; });
}

void AddFork(CLI::App& session, Dispatch* d) {
  auto o = std::make_shared<ForkOptions>();
  CLI::App* cmd =
      AddCommand(session, "fork",
                 "Start a new session that continues this one's conversation from event --at-seq",
                 "  agentctl session fork sess_0123\n"
                 "  agentctl session fork sess_0123 --at-seq 4 --id what-if-1");
  cmd->add_option("SESSION", o->session_id, "Session id to fork")->required();
  cmd->add_option("--at-seq", o->at_seq, "Fork after this event (0 = the latest)")
      ->check(kWholeNumber);
  cmd->add_option("--id", o->new_session_id, "Id of the new session (default: server-generated)");
  cmd->callback([d, o] { d->action = [o](Connection& c) { return ForkSession(c, *o); }; });
}

}  // namespace

void AddSessionCommands(CLI::App& app, Dispatch* dispatch) {
  CLI::App* session = AddCommand(
      app, "session", "Create, show, list, delete, fork, export, import and replay sessions",
      "  agentctl session create --agent agent_0123\n  agentctl session list");
  session->require_subcommand(1);
  AddCreate(*session, dispatch);
  AddGet(*session, dispatch);
  AddList(*session, dispatch);
  AddDelete(*session, dispatch);
  AddFork(*session, dispatch);
  AddSessionTransferCommands(*session, dispatch);
}

}  // namespace agentd::cli
