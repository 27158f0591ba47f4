// The model/tool loop of a Turn: context policy, model and summarizer calls, validation of
// tool calls and final answers, built-in tools. Lifecycle and commits are in turn.cc.
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "metrics/trace_context.h"
#include "runtime/turn.h"

namespace agentd::runtime {

using nlohmann::json;

namespace {

void AddUsage(v1::Usage* into, const v1::Usage& add) {
  into->set_input_tokens(into->input_tokens() + add.input_tokens());
  into->set_output_tokens(into->output_tokens() + add.output_tokens());
  into->set_model_calls(into->model_calls() + add.model_calls());
  into->set_cost_usd(into->cost_usd() + add.cost_usd());
}

/// Starts the USER message agentd appends when it rejects a final answer (docs/context.md).
constexpr char kFeedbackPrefix[] = "agentd validation feedback: ";
/// Room for the summarizer's own instructions in its context.
constexpr int64_t kSummarizerOverheadTokens = 256;

}  // namespace

void Turn::RunStep() {
  std::optional<Outcome> cancelled;
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) {
      cancelled = Outcome{v1::TURN_STATUS_CANCELLED, absl::Status(cancel_code_, cancel_reason_),
                          cancel_reason_};
    }
  }
  if (cancelled) {
    FinishTurn(*std::move(cancelled));
    return;
  }
  if (absl::Now() >= deadline_) {
    Fail(absl::DeadlineExceededError("turn deadline exceeded"));
    return;
  }
  if (steps_ >= max_steps_) {
    FinishTurn({v1::TURN_STATUS_FAILED, absl::OkStatus(),
                absl::StrCat("max_steps_per_turn (", max_steps_, ") reached")});
    return;
  }
  ++steps_;
  compacted_this_step_ = false;
  overflow_retried_this_step_ = false;
  PrepareContext();
}

LogView Turn::Log() const {
  return LogView(absl::MakeConstSpan(history_->events.data(), history_base_), turn_events_);
}

ContextPlan Turn::Plan() const { return PlanContext(Log(), context_limits_); }

void Turn::PrepareContext() {
  const ContextPlan plan = Plan();
  if (plan.overflow && !compacted_this_step_) {
    compacted_this_step_ = true;
    if (agent_.context_policy().strategy() == v1::CONTEXT_STRATEGY_SUMMARIZE) {
      StartSummary(plan);
      return;
    }
    // SLIDING_WINDOW (also the default): a SUMMARY event without text records what leaves.
    const Compaction c = PlanCompaction(Log(), plan, /*summarize=*/false, 0);
    v1::Summary* s = AddEvent(v1::EVENT_TYPE_SUMMARY).mutable_summary();
    s->set_from_seq(c.from_seq);
    s->set_to_seq(c.to_seq);
  }
  CallModel();
}

void Turn::CallModel() {
  const LogView log = Log();
  backend::ModelRequest req;
  req.model = model_;
  // Encodings are kept only for models that send them (not for echo, say).
  req.messages = RenderContext(agent_, log, PlanContext(log, context_limits_),
                               keep_encodings_ ? &history_->encoded : nullptr);
  req.tools = tool_defs_;
  req.deadline = deadline_;
  req.stream = observer_->WantsDeltas();
  StartCall(std::move(req), CallKind::kStep);
}

void Turn::StartSummary(const ContextPlan& plan) {
  const int64_t avail =
      std::max<int64_t>(context_limits_.max_tokens - context_limits_.fixed_tokens, 256);
  max_summary_tokens_ = std::max<int64_t>(avail / 4, 64);
  // The summarizer sees its instructions, the previous summary and the events leaving the
  // window, within the same budget as a step.
  const int64_t previous = plan.summary != nullptr ? EventTokens(*plan.summary) : 0;
  const int64_t input_budget = std::max<int64_t>(
      context_limits_.max_tokens - previous - max_summary_tokens_ - kSummarizerOverheadTokens, 256);
  const LogView log = Log();
  compaction_ = PlanCompaction(log, plan, /*summarize=*/true, input_budget);
  if (compaction_.events.empty()) {
    // Only events that never reach a context (failed turns) leave: move the boundary, keep the
    // summary text.
    // (Copied first: `plan` may point into turn_events_, which AddEvent can reallocate.)
    std::string text = plan.summary != nullptr ? plan.summary->summary().text() : "";
    v1::Summary* s = AddEvent(v1::EVENT_TYPE_SUMMARY).mutable_summary();
    s->set_text(std::move(text));
    s->set_from_seq(compaction_.from_seq);
    s->set_to_seq(compaction_.to_seq);
    CallModel();
    return;
  }
  backend::ModelRequest req;
  req.model = model_;
  req.messages = SummaryPrompt(log, plan, compaction_, max_summary_tokens_);
  req.deadline = deadline_;
  StartCall(std::move(req), CallKind::kSummary);
}

void Turn::StartCall(backend::ModelRequest req, CallKind kind) {
  if (model_calls_ > 0 && deps_.limits != nullptr) {
    absl::Status limit = deps_.limits->CheckStep(project_id_);
    if (!limit.ok()) {
      Fail(limit);
      return;
    }
  }
  req.context = context_;
  const int64_t id = ++model_calls_;
  {
    absl::MutexLock lock(&mu_);
    call_in_flight_ = id;
  }
  auto self = shared_from_this();
  backend::ModelCallbacks callbacks;
  if (req.stream) {
    callbacks.on_delta = [self](absl::string_view text) { self->OnDelta(text); };
    callbacks.on_reset = [self] { self->OnDeltaReset(); };
  }
  callbacks.on_done = [self, kind](absl::StatusOr<backend::ModelResponse> r) {
    auto next = [self, kind](absl::StatusOr<backend::ModelResponse> r) {
      obs::ContextScope log_scope(self->context_.get(), self->request_.session_id(),
                                  self->turn_id_);
      if (kind == CallKind::kSummary) {
        self->OnSummaryDone(std::move(r));
      } else {
        self->OnModelDone(std::move(r));
      }
    };
    // Continue on a turn worker: never block a backend's I/O thread on a commit.
    if (Executor::OnWorkerThread()) {
      next(std::move(r));
    } else {
      self->deps_.executor->Schedule([next, r = std::move(r)]() mutable { next(std::move(r)); });
    }
  };
  std::shared_ptr<backend::ModelCall> call =
      deps_.router->Start(std::move(req), std::move(callbacks));

  bool cancel_now = false;
  {
    absl::MutexLock lock(&mu_);
    if (call_in_flight_ == id) {  // the model has not answered inline
      call_ = call;
      cancel_now = cancelled_;
      if (committed_ == 0) {
        // Make the turn's opening durable (and visible) while the model works.
        start_commit_status_ = Commit(/*final_write=*/false, "", nullptr);
        cancel_now = cancel_now || !start_commit_status_.ok();
      }
    }
  }
  if (cancel_now) call->Cancel();
}

bool Turn::TakeResponse(absl::StatusOr<backend::ModelResponse>& response) {
  bool cancelled;
  absl::Status commit_status;
  Outcome cancel_outcome;
  {
    absl::MutexLock lock(&mu_);  // waits for an opening commit in progress
    call_in_flight_ = 0;
    call_.reset();
    cancelled = cancelled_;
    commit_status = start_commit_status_;
    cancel_outcome = {v1::TURN_STATUS_CANCELLED, absl::Status(cancel_code_, cancel_reason_),
                      cancel_reason_};
  }
  if (!commit_status.ok()) {
    Deliver(commit_status, v1::TurnResult());
    return false;
  }
  if (!response.ok() && cancelled) {
    FinishTurn(std::move(cancel_outcome));
    return false;
  }
  return true;
}

v1::Usage Turn::RecordUsage(const backend::ModelResponse& r) {
  v1::Usage usage;
  usage.set_input_tokens(r.input_tokens);
  usage.set_output_tokens(r.output_tokens);
  usage.set_model_calls(1);
  const std::string& served_model = r.served_model.empty() ? model_ : r.served_model;
  usage.set_cost_usd(deps_.router->Cost(served_model, r.input_tokens, r.output_tokens));
  AddUsage(&usage_, usage);
  AddUsage(record_.mutable_session()->mutable_usage(), usage);
  for (store::UsageDelta& d : auth::UsageDeltas(agent_.agent_id(), request_.session_id(),
                                                served_model, auth::DayOf(absl::Now()), usage)) {
    pending_usage_.push_back(std::move(d));
  }
  AddUsage(&pending_usage_total_, usage);
  return usage;
}

void Turn::OnSummaryDone(absl::StatusOr<backend::ModelResponse> response) {
  if (!TakeResponse(response)) return;
  if (!response.ok()) {
    Fail(absl::Status(
        response.status().code(),
        absl::StrCat("context policy SUMMARIZE: the summary of events ", compaction_.from_seq, "..",
                     compaction_.to_seq, " failed: ", response.status().message())));
    return;
  }
  RecordUsage(*response);
  v1::Summary* s = AddEvent(v1::EVENT_TYPE_SUMMARY).mutable_summary();
  // Bounded, so that a verbose summarizer cannot crowd the window out.
  s->set_text(TruncateUtf8(std::string(absl::StripAsciiWhitespace(response->text)),
                           static_cast<size_t>(max_summary_tokens_) * 4));
  s->set_from_seq(compaction_.from_seq);
  s->set_to_seq(compaction_.to_seq);
  CallModel();
}

void Turn::OnModelDone(absl::StatusOr<backend::ModelResponse> response) {
  if (!TakeResponse(response)) return;
  if (!response.ok()) {
    // context_length_exceeded (FAILED_PRECONDITION from the router): our estimate was too
    // optimistic for this model. Apply the policy with half the budget (for the rest of the
    // turn) and retry once, if that leaves something out.
    if (absl::IsFailedPrecondition(response.status()) && !overflow_retried_this_step_) {
      overflow_retried_this_step_ = true;
      const ContextLimits before = context_limits_;
      context_limits_.max_tokens = std::max<int64_t>(context_limits_.max_tokens / 2, 1);
      if (Plan().overflow) {
        compacted_this_step_ = false;
        PrepareContext();
        return;
      }
      context_limits_ = before;
    }
    Fail(response.status());
    return;
  }
  backend::ModelResponse& r = *response;
  const v1::Usage usage = RecordUsage(r);
  for (v1::ToolCall& c : r.tool_calls) {
    if (c.id().empty()) c.set_id(NewId("call_"));
  }
  {
    const std::string& served_model = r.served_model.empty() ? model_ : r.served_model;
    v1::Message* m = AddEvent(v1::EVENT_TYPE_MESSAGE).mutable_message();
    m->set_role(v1::ROLE_ASSISTANT);
    m->set_text(r.text);
    // "<configured model> (<backend>/<deployment model>)": which deployment served the call.
    m->set_model(r.served_by.empty() ? served_model
                                     : absl::StrCat(served_model, " (", r.served_by, ")"));
    *m->mutable_usage() = usage;
    for (const v1::ToolCall& c : r.tool_calls) *m->add_tool_calls() = c;
  }
  output_text_ = r.text;
  for (const v1::ToolCall& c : r.tool_calls)
    *AddEvent(v1::EVENT_TYPE_TOOL_CALL).mutable_tool_call() = c;
  if (r.tool_calls.empty()) {
    HandleFinalAnswer(r.text);
  } else {
    HandleToolCalls(r.tool_calls);
  }
}

bool Turn::SpendValidationRetry(const std::string& error) {
  if (validation_failures_ >= max_validation_retries_) {
    FinishTurn(
        {v1::TURN_STATUS_FAILED, absl::OkStatus(),
         absl::StrCat(error, " (max_validation_retries ", max_validation_retries_, " exhausted)")});
    return false;
  }
  ++validation_failures_;
  return true;
}

std::string Turn::CheckToolCall(const v1::ToolCall& call, json* args) const {
  auto tool = tools_.find(call.name());
  if (tool == tools_.end()) {
    return absl::StrCat("tool \"", call.name(), "\" is not available to this agent");
  }
  if (tool->second.kind() == v1::TOOL_KIND_BUILTIN && FindBuiltinTool(call.name()) == nullptr &&
      !gateway_tools_.contains(call.name())) {
    return absl::StrCat("builtin tool \"", call.name(), "\" is not available on this server");
  }
  if (JsonNestingDepth(call.arguments_json()) > kMaxJsonDepth) {
    return absl::StrCat("arguments for tool \"", call.name(), "\" nest deeper than ", kMaxJsonDepth,
                        " levels");
  }
  *args = call.arguments_json().empty()
              ? json::object()
              : json::parse(call.arguments_json(), nullptr, /*allow_exceptions=*/false);
  if (args->is_discarded() || !args->is_object()) {
    return absl::StrCat("arguments for tool \"", call.name(), "\" are not a JSON object");
  }
  auto schema = arg_schemas_.find(call.name());
  if (schema != arg_schemas_.end()) {
    std::vector<SchemaError> errors = schema->second.Validate(*args);
    if (!errors.empty()) {
      return absl::StrCat("invalid arguments for tool \"", call.name(),
                          "\": ", JsonSchema::Describe(errors));
    }
  }
  return "";
}

v1::ToolResult Turn::RunServerTool(const v1::ToolCall& call, const json& args) {
  auto gateway = gateway_tools_.find(call.name());
  if (gateway == gateway_tools_.end()) return builtins_.Run(call, args);
  // Blocks this worker for the call (tool calls of a step run in order); Cancel() is noticed
  // by the HTTP client's progress poll.
  auto cancelled = [this] {
    absl::MutexLock lock(&mu_);
    return cancelled_;
  };
  v1::ToolResult r =
      deps_.tools->Call(gateway->second, args, allowed_tools_, deadline_, cancelled);
  r.set_tool_call_id(call.id());
  return r;
}

void Turn::HandleToolCalls(const std::vector<v1::ToolCall>& calls) {
  client_calls_.clear();
  std::string first_error;
  for (const v1::ToolCall& c : calls) {
    json args;
    const std::string error = CheckToolCall(c, &args);
    if (!error.empty()) {
      if (first_error.empty()) first_error = error;
      v1::ToolResult* tr = AddEvent(v1::EVENT_TYPE_TOOL_RESULT).mutable_tool_result();
      tr->set_tool_call_id(c.id());
      tr->set_output(absl::StrCat("error: ", error,
                                  ". Call the tool again with arguments that satisfy its schema."));
      tr->set_is_error(true);
      continue;
    }
    if (approval_tools_.contains(c.name())) {
      // Not run until approved: the turn stops for it like for a client tool. Its TOOL_CALL
      // event (not committed yet) says so too, for readers of the log.
      client_calls_.push_back(c);
      client_calls_.back().set_requires_approval(true);
      for (size_t i = committed_; i < turn_events_.size(); ++i) {
        v1::Event& e = turn_events_[i];
        if (e.type() == v1::EVENT_TYPE_TOOL_CALL && e.tool_call().id() == c.id()) {
          e.mutable_tool_call()->set_requires_approval(true);
        }
      }
    } else if (tools_.at(c.name()).kind() == v1::TOOL_KIND_BUILTIN) {
      *AddEvent(v1::EVENT_TYPE_TOOL_RESULT).mutable_tool_result() = RunServerTool(c, args);
    } else {
      client_calls_.push_back(c);
    }
  }
  if (!first_error.empty() && !SpendValidationRetry("invalid tool call: " + first_error)) return;
  if (!client_calls_.empty()) {
    // The builtin results and state writes of a mixed step are committed before the turn
    // stops for the client's calls (a conflict rewrites a result, so it must precede the
    // turn's final result).
    if (builtins_.HasPendingState()) {
      absl::Status st = CommitStep();
      if (!st.ok()) {
        Deliver(st, v1::TurnResult());
        return;
      }
    }
    FinishTurn({v1::TURN_STATUS_REQUIRES_ACTION, absl::OkStatus(), ""});
    return;
  }
  // Builtin results and error results go back to the model in the next step.
  absl::Status st = CommitStep();
  if (!st.ok()) {
    Deliver(st, v1::TurnResult());
    return;
  }
  RunStep();
}

void Turn::HandleFinalAnswer(const std::string& text) {
  if (output_schema_.has_value()) {
    std::string error;
    if (JsonNestingDepth(text) > kMaxJsonDepth) {
      error = absl::StrCat("the answer nests deeper than ", kMaxJsonDepth, " levels");
    } else if (const json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
               parsed.is_discarded()) {
      error = "the answer is not a JSON document";
    } else if (auto errors = output_schema_->Validate(parsed); !errors.empty()) {
      error = absl::StrCat("the answer does not satisfy the output schema: ",
                           JsonSchema::Describe(errors));
    }
    if (!error.empty()) {
      if (!SpendValidationRetry("final answer rejected: " + error)) return;
      v1::Message* m = AddEvent(v1::EVENT_TYPE_MESSAGE).mutable_message();
      m->set_role(v1::ROLE_USER);
      m->set_text(
          absl::StrCat(kFeedbackPrefix, error, ". Reply again with only the JSON document."));
      OnDeltaReset();  // what was streamed of the rejected answer is void
      absl::Status st = CommitStep();
      if (!st.ok()) {
        Deliver(st, v1::TurnResult());
        return;
      }
      RunStep();
      return;
    }
  }
  FinishTurn({v1::TURN_STATUS_COMPLETED, absl::OkStatus(), ""});
}

}  // namespace agentd::runtime
