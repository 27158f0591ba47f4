// `agentctl send` (RunTurn / StreamTurn), `agentctl turn cancel` (CancelTurn) and
// `agentctl events` (ListEvents / WatchEvents); and PrintStreamedTurn(), which `chat` uses too.
#include <algorithm>
#include <iostream>

#include "cli/cli_common.h"
#include "cli/output.h"

namespace agentd::cli {
namespace {

namespace v1 = agentd::v1;

constexpr int32_t kMaxEventsPerPage = 1000;

struct SendOptions {
  std::string session_id;
  std::string text;
  bool stream = false;
  std::string idempotency_key;
  std::vector<std::string> tool_results;
  std::vector<std::string> approve;  // CALL_ID
  std::vector<std::string> reject;   // CALL_ID or CALL_ID=REASON
  bool enqueue = false;
  std::string model;
};

struct EventsOptions {
  std::string session_id;
  int64_t after_seq = 0;
  int64_t limit = 0;  // 0 = all
  bool follow = false;
};

// ---- send -----------------------------------------------------------------------------------

v1::RunTurnRequest BuildTurnRequest(const SendOptions& o) {
  v1::RunTurnRequest request;
  request.set_session_id(o.session_id);
  if (!o.text.empty()) {
    v1::InputMessage* input = request.add_input();
    input->set_role(v1::ROLE_USER);
    input->set_text(o.text);
  }
  for (const std::string& kv : o.tool_results) {
    auto [call_id, output] = SplitKeyValue(kv);
    v1::ToolResult* result = request.add_tool_results();
    result->set_tool_call_id(call_id);
    result->set_output(output);
  }
  for (const std::string& call_id : o.approve) {
    v1::ToolApproval* a = request.add_approvals();
    a->set_tool_call_id(call_id);
    a->set_approved(true);
  }
  for (const std::string& entry : o.reject) {
    const size_t eq = entry.find('=');
    v1::ToolApproval* a = request.add_approvals();
    a->set_tool_call_id(entry.substr(0, eq));
    if (eq != std::string::npos) a->set_reason(entry.substr(eq + 1));
    a->set_approved(false);
  }
  request.set_idempotency_key(o.idempotency_key);
  request.set_on_busy(o.enqueue ? v1::BUSY_POLICY_ENQUEUE : v1::BUSY_POLICY_REJECT);
  request.set_model_override(o.model);
  return request;
}

int TurnExitCode(const v1::TurnResult& result) {
  const bool failed =
      result.status() == v1::TURN_STATUS_FAILED || result.status() == v1::TURN_STATUS_CANCELLED;
  return failed ? kExitServerError : kExitOk;
}

// Table mode: the output text (unless it was streamed already), the tool calls waited for, and
// the status line (stderr). A failed or cancelled turn exits 1.
int ReportTurn(const SendOptions& o, const v1::TurnResult& result, bool text_streamed) {
  if (!text_streamed && !result.output_text().empty()) {
    std::cout << result.output_text() << std::endl;
  }
  if (result.status() == v1::TURN_STATUS_REQUIRES_ACTION) {
    PrintRequiredToolCalls(o.session_id, result.required_tool_calls());
  }
  PrintTurnStatusLine(result);
  return TurnExitCode(result);
}

int RunTurn(Connection& c, const SendOptions& o) {
  v1::TurnResult result;
  auto context = c.NewContext(o.session_id);
  const grpc::Status status = c.sessions().RunTurn(context.get(), BuildTurnRequest(o), &result);
  if (!status.ok()) return c.Fail(status, *context);
  if (c.structured()) return c.Print(result), TurnExitCode(result);
  return ReportTurn(o, result, /*text_streamed=*/false);
}

int StreamTurn(Connection& c, const SendOptions& o) {
  v1::TurnResult result;
  bool streamed = false;
  if (int rc = PrintStreamedTurn(c, BuildTurnRequest(o), &result, &streamed); rc != kExitOk) {
    return rc;
  }
  if (c.structured()) return TurnExitCode(result);
  return ReportTurn(o, result, streamed);
}

// The cancelled turn's result. Table mode prints what the turn had produced and the status line.
int CancelTurn(Connection& c, const std::string& session_id) {
  v1::CancelTurnRequest request;
  request.set_session_id(session_id);
  v1::TurnResult result;
  auto context = c.NewContext(session_id);
  const grpc::Status status = c.sessions().CancelTurn(context.get(), request, &result);
  if (!status.ok()) return c.Fail(status, *context);
  if (c.structured()) return c.Print(result), kExitOk;
  std::cout << "cancelled turn " << result.turn_id() << " of session " << session_id << std::endl;
  PrintTurnStatusLine(result);
  return kExitOk;
}

// ---- events ---------------------------------------------------------------------------------

int ListEvents(Connection& c, const EventsOptions& o) {
  v1::ListEventsResponse all;
  int64_t cursor = o.after_seq;
  while (o.limit == 0 || all.events_size() < o.limit) {
    v1::ListEventsRequest request;
    request.set_session_id(o.session_id);
    request.set_after_seq(cursor);
    const int64_t remaining = o.limit == 0 ? kMaxEventsPerPage : o.limit - all.events_size();
    request.set_limit(static_cast<int32_t>(std::min<int64_t>(remaining, kMaxEventsPerPage)));
    v1::ListEventsResponse page;
    auto context = c.NewContext(o.session_id);
    const grpc::Status status = c.sessions().ListEvents(context.get(), request, &page);
    if (!status.ok()) return c.Fail(status, *context);
    if (page.events_size() == 0) break;
    const int64_t next = std::max(page.next_after_seq(), page.events(page.events_size() - 1).seq());
    for (v1::Event& e : *page.mutable_events()) *all.add_events() = std::move(e);
    if (next <= cursor) break;  // no progress: stop rather than loop
    cursor = next;
  }
  all.set_next_after_seq(cursor);
  if (c.structured()) return c.Print(all), kExitOk;
  PrintEvents({all.events().begin(), all.events().end()});
  return kExitOk;
}

// Streams until the server ends the watch, --limit events arrived, or the user interrupts.
int WatchEvents(Connection& c, const EventsOptions& o) {
  v1::WatchEventsRequest request;
  request.set_session_id(o.session_id);
  request.set_after_seq(o.after_seq);
  auto context = c.NewContext(o.session_id, /*with_deadline=*/false);
  auto reader = c.sessions().WatchEvents(context.get(), request);
  v1::Event event;
  int64_t count = 0;
  bool cancelled = false;
  while (reader->Read(&event)) {
    if (c.structured()) {
      c.PrintItem(event);
    } else {
      if (count == 0) PrintEventLine({"SEQ", "TYPE", "TURN", "BODY"});
      PrintEventLine(EventRow(event));
    }
    if (++count == o.limit) {
      context->TryCancel();
      cancelled = true;
      break;
    }
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok() && !(cancelled && status.error_code() == grpc::StatusCode::CANCELLED)) {
    return c.Fail(status, *context);
  }
  return kExitOk;
}

// ---- Registration ---------------------------------------------------------------------------

void AddSend(CLI::App& app, Dispatch* d) {
  auto o = std::make_shared<SendOptions>();
  CLI::App* cmd = AddCommand(app, "send",
                             "Run a turn: send a user message and/or tool results, print the reply",
                             "  agentctl send sess_0123 'What is the weather in Paris?'\n"
                             "  agentctl send sess_0123 'Tell me a story' --stream\n"
                             "  agentctl send sess_0123 --tool-result call_1='{\"temp_c\": 21}'\n"
                             "  agentctl send sess_0123 --approve call_2\n"
                             "  agentctl send sess_0123 --reject call_2='not on prod'");
  cmd->add_option("SESSION", o->session_id, "Session id")->required();
  cmd->add_option("TEXT", o->text, "User message (may be omitted when answering tool calls)");
  cmd->add_flag("--stream", o->stream, "Print the reply as it is generated (StreamTurn)");
  cmd->add_option("--idempotency-key", o->idempotency_key,
                  "Retrying with the same key never runs twice");
  cmd->add_option("--tool-result", o->tool_results, "Answer a pending tool call (repeatable)")
      ->allow_extra_args(false)
      ->check(KeyValue())
      ->type_name("CALL_ID=OUTPUT");
  cmd->add_option("--approve", o->approve,
                  "Approve a pending call of a tool that requires approval: agentd runs it "
                  "(repeatable)")
      ->allow_extra_args(false)
      ->type_name("CALL_ID");
  cmd->add_option("--reject", o->reject,
                  "Reject such a call; the model is told, with the reason if given (repeatable)")
      ->allow_extra_args(false)
      ->type_name("CALL_ID[=REASON]");
  cmd->add_flag("--enqueue", o->enqueue, "If a turn is running, wait for it instead of failing");
  cmd->add_option("--model", o->model, "Use this model for the turn instead of the agent's");
  cmd->callback([d, o] {
    d->action = [o](Connection& c) {
      if (o->text.empty() && o->tool_results.empty() && o->approve.empty() &&
          o->reject.empty()) {
        return UsageError("give TEXT, --tool-result, --approve or --reject");
      }
      return o->stream ? StreamTurn(c, *o) : RunTurn(c, *o);
    };
  });
}

void AddEvents(CLI::App& app, Dispatch* d) {
  auto o = std::make_shared<EventsOptions>();
  CLI::App* cmd = AddCommand(app, "events", "Show a session's event log, or follow it live",
                             "  agentctl events sess_0123\n"
                             "  agentctl events sess_0123 --after 10 --limit 20\n"
                             "  agentctl events sess_0123 --follow -o json");
  cmd->add_option("SESSION", o->session_id, "Session id")->required();
  cmd->add_option("--after", o->after_seq, "Only events with seq > N")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--limit", o->limit, "At most N events (0 = all)")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--follow,-f", o->follow,
                "Keep watching for new events (no --timeout) until Ctrl-C");
  cmd->callback([d, o] {
    d->action = [o](Connection& c) { return o->follow ? WatchEvents(c, *o) : ListEvents(c, *o); };
  });
}

void AddTurnGroup(CLI::App& app, Dispatch* d) {
  CLI::App* turn = AddCommand(app, "turn", "Act on a session's running turn",
                              "  agentctl turn cancel sess_0123");
  turn->require_subcommand(1);
  auto id = std::make_shared<std::string>();
  CLI::App* cancel = AddCommand(
      *turn, "cancel",
      "Cancel the turn running on a session, or the tool calls it waits for "
      "(FAILED_PRECONDITION if neither)",
      "  agentctl turn cancel sess_0123\n  agentctl turn cancel sess_0123 -o json");
  cancel->add_option("SESSION", *id, "Session id")->required();
  cancel->callback([d, id] { d->action = [id](Connection& c) { return CancelTurn(c, *id); }; });
}

}  // namespace

int PrintStreamedTurn(Connection& c, const v1::RunTurnRequest& request, v1::TurnResult* result,
                      bool* text_streamed) {
  auto context = c.NewContext(request.session_id());
  auto reader = c.sessions().StreamTurn(context.get(), request);
  v1::TurnEvent event;
  bool got_result = false;
  *text_streamed = false;
  char last_char = '\n';
  while (reader->Read(&event)) {
    if (c.structured()) {
      c.PrintItem(event);
    } else if (event.has_delta() && event.delta().reset()) {
      std::cout << "\n[model call retried; the reply starts over]\n" << std::flush;
      last_char = '\n';
    } else if (event.has_delta() && !event.delta().text().empty()) {
      std::cout << event.delta().text() << std::flush;
      *text_streamed = true;
      last_char = event.delta().text().back();
    }
    if (event.has_result()) *result = event.result(), got_result = true;
  }
  const grpc::Status status = reader->Finish();
  if (last_char != '\n') std::cout << std::endl;
  if (!status.ok()) return c.Fail(status, *context);
  if (!got_result) {
    std::cerr << "error: INTERNAL: the stream ended without a turn result" << std::endl;
    return kExitServerError;
  }
  return kExitOk;
}

void AddTurnCommands(CLI::App& app, Dispatch* dispatch) {
  AddSend(app, dispatch);
  AddTurnGroup(app, dispatch);
  AddEvents(app, dispatch);
}

}  // namespace agentd::cli
