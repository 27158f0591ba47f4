// `agentctl chat SESSION`: a conversation on the terminal. Each line read from stdin is a user
// message, run as one turn over StreamTurn (the reply is printed as it arrives); lines starting
// with a chat command (/help, /tools, /state, /result, /error, /quit) are handled here instead.
// Works the same when stdin is not a terminal (no prompt is printed then), so it can be scripted
// by piping lines in.
#include <unistd.h>

#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "cli/cli_common.h"
#include "cli/output.h"

namespace agentd::cli {
namespace {

namespace v1 = agentd::v1;

struct ChatOptions {
  std::string session_id;
  std::string model;
};

constexpr char kHelp[] =
    "chat commands:\n"
    "  /tools                    the agent's tools\n"
    "  /state                    the session's tool state\n"
    "  /result CALL_ID OUTPUT    answer a pending tool call (OUTPUT is usually JSON)\n"
    "  /error CALL_ID MESSAGE    answer a pending tool call with an error\n"
    "  /help                     this list\n"
    "  /quit                     leave (so does end of input)\n"
    "any other line is sent to the agent as a user message.";

class Chat {
 public:
  Chat(Connection& c, ChatOptions options) : c_(c), o_(std::move(options)) {}

  int Run() {
    const bool interactive = isatty(STDIN_FILENO) != 0;
    if (!LoadSession()) return kExitServerError;
    if (interactive) {
      std::cerr << "chatting with session " << o_.session_id << " (agent " << agent_id_ << " v"
                << agent_version_ << "); /help lists the commands, /quit leaves" << std::endl;
    }
    if (!pending_.empty()) ShowPending();
    std::string line;
    while (true) {
      if (interactive) std::cout << "> " << std::flush;
      if (!std::getline(std::cin, line)) {
        if (interactive) std::cout << std::endl;
        break;
      }
      const std::string text(absl::StripAsciiWhitespace(line));
      if (text.empty()) continue;
      if (text == "/quit" || text == "/exit") break;
      Handle(text);
    }
    return failed_ ? kExitServerError : kExitOk;
  }

 private:
  static bool IsCommand(const std::string& text, const std::string& name) {
    return text == name || text.rfind(name + " ", 0) == 0;
  }

  void Handle(const std::string& text) {
    if (text == "/help") {
      std::cout << kHelp << std::endl;
    } else if (text == "/tools") {
      ShowTools();
    } else if (text == "/state") {
      ShowState();
    } else if (IsCommand(text, "/result")) {
      Answer(text.substr(7), /*is_error=*/false);
    } else if (IsCommand(text, "/error")) {
      Answer(text.substr(6), /*is_error=*/true);
    } else if (!pending_.empty()) {
      std::cerr << "error: the agent waits for " << pending_.size()
                << " tool result(s): answer each with /result CALL_ID OUTPUT" << std::endl;
    } else {
      v1::RunTurnRequest request;
      v1::InputMessage* input = request.add_input();
      input->set_role(v1::ROLE_USER);
      input->set_text(text);
      RunTurn(std::move(request));
    }
  }

  bool LoadSession() {
    v1::GetSessionRequest request;
    request.set_session_id(o_.session_id);
    v1::Session session;
    auto context = c_.NewContext(o_.session_id);
    const grpc::Status status = c_.sessions().GetSession(context.get(), request, &session);
    if (!status.ok()) {
      c_.Fail(status, *context);
      return false;
    }
    agent_id_ = session.agent_id();
    agent_version_ = session.agent_version();
    pending_.assign(session.pending_tool_calls().begin(), session.pending_tool_calls().end());
    return true;
  }

  void ShowPending() {
    if (c_.structured()) return;  // the turn result already carries them
    std::cout << "the agent called " << pending_.size() << " client tool"
              << (pending_.size() == 1 ? "" : "s") << ":\n";
    Table table({"call_id", "name", "arguments"});
    for (const v1::ToolCall& call : pending_) {
      table.Add({call.id(), call.name(), OneLine(call.arguments_json(), 200)});
    }
    table.Print(std::cout);
    std::cout << "answer each with /result CALL_ID OUTPUT (or /error CALL_ID MESSAGE)" << std::endl;
  }

  void ShowTools() {
    v1::GetAgentRequest request;
    request.set_agent_id(agent_id_);
    request.set_version(agent_version_);
    v1::Agent agent;
    auto context = c_.NewContext(o_.session_id);
    const grpc::Status status = c_.agents().GetAgent(context.get(), request, &agent);
    if (!status.ok()) return Failed(status, *context);
    if (c_.structured()) return c_.PrintItem(agent);
    if (agent.tools_size() == 0) {
      std::cout << "the agent has no tools" << std::endl;
      return;
    }
    PrintTools(agent);
  }

  void ShowState() {
    v1::ListStateRequest request;
    request.set_session_id(o_.session_id);
    v1::ListStateResponse response;
    auto context = c_.NewContext(o_.session_id);
    const grpc::Status status = c_.sessions().ListState(context.get(), request, &response);
    if (!status.ok()) return Failed(status, *context);
    if (c_.structured()) return c_.PrintItem(response);
    if (response.entries_size() == 0) {
      std::cout << "no state entries" << std::endl;
      return;
    }
    PrintStateEntries({response.entries().begin(), response.entries().end()});
  }

  // `args` is " CALL_ID OUTPUT". The turn is sent once every pending call has an answer.
  void Answer(const std::string& args, bool is_error) {
    const std::string rest(absl::StripLeadingAsciiWhitespace(args));
    const size_t space = rest.find(' ');
    const char* usage = is_error ? "/error CALL_ID MESSAGE" : "/result CALL_ID OUTPUT";
    if (rest.empty() || space == std::string::npos) {
      std::cerr << "error: usage: " << usage << std::endl;
      return;
    }
    const std::string call_id = rest.substr(0, space);
    bool known = false;
    std::vector<std::string> ids;
    for (const v1::ToolCall& call : pending_) {
      known = known || call.id() == call_id;
      ids.push_back(call.id());
    }
    if (!known) {
      std::cerr << "error: no pending tool call \"" << call_id << "\""
                << (ids.empty() ? std::string(" (none is pending)")
                                : absl::StrCat(" (pending: ", absl::StrJoin(ids, ", "), ")"))
                << std::endl;
      return;
    }
    v1::ToolResult& result = answers_[call_id];
    result.set_tool_call_id(call_id);
    result.set_output(std::string(absl::StripAsciiWhitespace(rest.substr(space + 1))));
    result.set_is_error(is_error);
    if (answers_.size() < pending_.size()) {
      std::cerr << "waiting for " << pending_.size() - answers_.size() << " more tool result(s)"
                << std::endl;
      return;
    }
    v1::RunTurnRequest request;
    for (const v1::ToolCall& call : pending_) *request.add_tool_results() = answers_[call.id()];
    RunTurn(std::move(request));
  }

  void RunTurn(v1::RunTurnRequest request) {
    request.set_session_id(o_.session_id);
    request.set_model_override(o_.model);
    v1::TurnResult result;
    bool streamed = false;
    if (PrintStreamedTurn(c_, request, &result, &streamed) != kExitOk) {
      failed_ = true;
      return;
    }
    answers_.clear();
    pending_.clear();
    if (!c_.structured() && !streamed && !result.output_text().empty()) {
      std::cout << result.output_text() << std::endl;
    }
    switch (result.status()) {
      case v1::TURN_STATUS_REQUIRES_ACTION:
        pending_.assign(result.required_tool_calls().begin(), result.required_tool_calls().end());
        ShowPending();
        break;
      case v1::TURN_STATUS_FAILED:
      case v1::TURN_STATUS_CANCELLED:
        failed_ = true;
        PrintTurnStatusLine(result);
        break;
      default:
        break;
    }
  }

  void Failed(const grpc::Status& status, const grpc::ClientContext& context) {
    c_.Fail(status, context);
    failed_ = true;
  }

  Connection& c_;
  const ChatOptions o_;
  std::string agent_id_;
  int64_t agent_version_ = 0;
  std::vector<v1::ToolCall> pending_;              // what the session waits for
  std::map<std::string, v1::ToolResult> answers_;  // by call id, until all pending are answered
  bool failed_ = false;
};

}  // namespace

void AddChatCommand(CLI::App& app, Dispatch* d) {
  auto o = std::make_shared<ChatOptions>();
  CLI::App* cmd = AddCommand(
      app, "chat", "Talk to a session's agent: each input line is a turn, the reply streams back",
      std::string("  agentctl chat sess_0123\n"
                  "  printf 'hello\\n/state\\n/quit\\n' | agentctl chat sess_0123\n"
                  "  agentctl chat sess_0123 --model small\n"
                  "Exits 1 if any turn or command failed during the chat, else 0.\n") +
          kHelp);
  cmd->add_option("SESSION", o->session_id, "Session id")->required();
  cmd->add_option("--model", o->model, "Use this model for every turn instead of the agent's");
  cmd->callback([d, o] { d->action = [o](Connection& c) { return Chat(c, *o).Run(); }; });
}

}  // namespace agentd::cli
