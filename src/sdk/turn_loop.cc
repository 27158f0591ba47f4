// The turn loop (Session::Run / Stream / StartStream / SubmitToolResults) and TurnStream.
#include "sdk/turn_loop.h"

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"

namespace agentd {
namespace internal {
namespace {

// Idempotency keys are ids: [A-Za-z0-9._-], at most 128 characters.
constexpr size_t kMaxKeyLength = 128;

std::string RoundKey(const std::string& base, int round) {
  if (round == 0) return base;
  const std::string suffix = absl::StrCat(".r", round);
  return base.substr(0, kMaxKeyLength - suffix.size()) + suffix;
}

void AddUsage(const v1::Usage& add, v1::Usage* sum) {
  sum->set_input_tokens(sum->input_tokens() + add.input_tokens());
  sum->set_output_tokens(sum->output_tokens() + add.output_tokens());
  sum->set_model_calls(sum->model_calls() + add.model_calls());
  sum->set_cost_usd(sum->cost_usd() + add.cost_usd());
}

// Runs one handler; an error status (or an exception) becomes an is_error result carrying
// its message, which the model then sees.
v1::ToolResult RunHandler(const ToolHandler& handler, const v1::ToolCall& call) {
  absl::StatusOr<std::string> output;
  try {
    output = handler(call.arguments_json());
  } catch (const std::exception& e) {
    output = absl::InternalError(absl::StrCat("tool handler threw: ", e.what()));
  } catch (...) {
    output = absl::InternalError("tool handler threw an exception");
  }
  v1::ToolResult result;
  result.set_tool_call_id(call.id());
  if (output.ok()) {
    result.set_output(*std::move(output));
  } else {
    const absl::string_view message = output.status().message();
    result.set_output(message.empty() ? absl::StatusCodeToString(output.status().code())
                                      : std::string(message));
    result.set_is_error(true);
  }
  return result;
}

}  // namespace

TurnLoop::TurnLoop(std::shared_ptr<Core> core, std::string session_id, const ToolRegistry* tools,
                   RunOptions options, const std::string& text)
    : core_(std::move(core)),
      session_id_(std::move(session_id)),
      tools_(tools),
      options_(std::move(options)),
      deadline_(options_.deadline > absl::ZeroDuration() ? options_.deadline
                                                         : core_->options().turn_deadline),
      base_key_(options_.idempotency_key.empty() ? NewIdempotencyKey() : options_.idempotency_key) {
  request_.set_session_id(session_id_);
  v1::InputMessage* input = request_.add_input();
  input->set_role(v1::ROLE_USER);
  input->set_text(text);
  request_.set_idempotency_key(base_key_);
  request_.set_on_busy(options_.on_busy);
  request_.set_model_override(options_.model_override);
}

TurnLoop::~TurnLoop() { CloseStream(); }

absl::StatusOr<TurnResult> TurnLoop::Run() {
  for (;;) {
    absl::StatusOr<v1::TurnResult> turn =
        core_->Call<v1::TurnResult>(RetryClass::kTurn, session_id_, deadline_,
                                    [this](grpc::ClientContext* ctx, v1::TurnResult* out) {
                                      return core_->sessions().RunTurn(ctx, request_, out);
                                    });
    if (!turn.ok()) return turn.status();
    if (!Advance(*turn)) return total_;
  }
}

bool TurnLoop::Advance(const v1::TurnResult& turn) {
  ++total_.turns;
  total_.status = turn.status();
  total_.output_text = turn.output_text();
  total_.error = turn.error();
  total_.last_seq = turn.last_seq();
  AddUsage(turn.usage(), &total_.usage);
  total_.events.insert(total_.events.end(), turn.events().begin(), turn.events().end());
  total_.required_tool_calls.assign(turn.required_tool_calls().begin(),
                                    turn.required_tool_calls().end());
  total_.last = turn;

  if (turn.status() != v1::TURN_STATUS_REQUIRES_ACTION || turn.required_tool_calls().empty()) {
    return false;
  }
  if (rounds_ >= options_.max_tool_rounds) return false;
  // Answer all or nothing: the server wants every pending call answered in one request, and a
  // call without a handler is the caller's to answer (SubmitToolResults); so is a call waiting
  // for approval (Submit with approvals), which no handler may answer.
  for (const v1::ToolCall& call : turn.required_tool_calls()) {
    if (call.requires_approval()) return false;
    if (tools_ == nullptr || tools_->Find(call.name()) == nullptr) return false;
  }
  ++rounds_;
  v1::RunTurnRequest next;
  next.set_session_id(session_id_);
  next.set_idempotency_key(RoundKey(base_key_, rounds_));
  next.set_on_busy(options_.on_busy);
  next.set_model_override(options_.model_override);
  for (const v1::ToolCall& call : turn.required_tool_calls()) {
    *next.add_tool_results() = RunHandler(*tools_->Find(call.name()), call);
  }
  total_.required_tool_calls.clear();
  request_ = std::move(next);
  return true;
}

// ---- Streaming ------------------------------------------------------------------------------

void TurnLoop::OpenStream() {
  if (!retrier_) retrier_.emplace(core_->retry_policy(), RetryClass::kTurn);
  ctx_ = core_->NewContext(session_id_, deadline_);
  reader_ = core_->sessions().StreamTurn(ctx_.get(), request_);
}

void TurnLoop::CloseStream() {
  if (reader_ != nullptr) {
    ctx_->TryCancel();
    v1::TurnEvent ignored;
    while (reader_->Read(&ignored)) {
    }
    reader_->Finish().ok();
  }
  reader_.reset();
  ctx_.reset();
}

void TurnLoop::End(absl::Status status) {
  done_ = true;
  final_status_ = std::move(status);
}

bool TurnLoop::Next(v1::TurnEvent* event) {
  while (!done_) {
    if (reader_ == nullptr) OpenStream();
    if (reader_->Read(event)) {
      if (event->has_result()) {
        turn_result_ = event->result();
      } else if (event->has_delta() && !event->delta().text().empty()) {
        deltas_sent_ = true;
      }
      return true;
    }
    const absl::Status status = FromGrpc(reader_->Finish(), *ctx_);
    reader_.reset();
    ctx_.reset();
    if (!status.ok()) {
      turn_result_.reset();
      if (!retrier_->ShouldRetry(status)) {
        End(status);
        return false;
      }
      if (deltas_sent_) {
        // The retry answers afresh: tell the caller to drop the text streamed so far.
        deltas_sent_ = false;
        event->Clear();
        event->mutable_delta()->set_reset(true);
        return true;
      }
      continue;
    }
    if (!turn_result_) {
      End(absl::InternalError("StreamTurn ended without a result"));
      return false;
    }
    v1::TurnResult turn = *std::move(turn_result_);
    turn_result_.reset();
    deltas_sent_ = false;
    retrier_.reset();
    if (!Advance(turn)) End(absl::OkStatus());
  }
  return false;
}

absl::StatusOr<TurnResult> TurnLoop::Finish() {
  if (!done_) {
    CloseStream();
    End(absl::CancelledError("the stream was finished before the run was over"));
  }
  if (!final_status_.ok()) return final_status_;
  return total_;
}

}  // namespace internal

// ---- TurnStream -----------------------------------------------------------------------------

TurnStream::TurnStream(std::unique_ptr<internal::TurnLoop> loop) : loop_(std::move(loop)) {}
TurnStream::~TurnStream() = default;
bool TurnStream::Next(v1::TurnEvent* event) { return loop_->Next(event); }
absl::StatusOr<TurnResult> TurnStream::Finish() { return loop_->Finish(); }

// ---- Session's turn methods -----------------------------------------------------------------

absl::StatusOr<TurnResult> Session::Run(const std::string& text, const ToolRegistry& tools,
                                        const RunOptions& options) {
  return internal::TurnLoop(core_, id_, &tools, options, text).Run();
}

absl::StatusOr<TurnResult> Session::Stream(const std::string& text, const ToolRegistry& tools,
                                           const TurnEventCallback& on_event,
                                           const RunOptions& options) {
  internal::TurnLoop loop(core_, id_, &tools, options, text);
  v1::TurnEvent event;
  while (loop.Next(&event)) {
    if (on_event) on_event(event);
  }
  return loop.Finish();
}

std::unique_ptr<TurnStream> Session::StartStream(const std::string& text, const ToolRegistry& tools,
                                                 const RunOptions& options) {
  return std::unique_ptr<TurnStream>(
      new TurnStream(std::make_unique<internal::TurnLoop>(core_, id_, &tools, options, text)));
}

absl::StatusOr<v1::TurnResult> Session::SubmitToolResults(
    const std::vector<v1::ToolResult>& results, const RunOptions& options) {
  return Submit(results, {}, options);
}

absl::StatusOr<v1::TurnResult> Session::Submit(const std::vector<v1::ToolResult>& results,
                                               const std::vector<v1::ToolApproval>& approvals,
                                               const RunOptions& options) {
  v1::RunTurnRequest req;
  req.set_session_id(id_);
  for (const v1::ToolResult& r : results) *req.add_tool_results() = r;
  for (const v1::ToolApproval& a : approvals) *req.add_approvals() = a;
  req.set_idempotency_key(options.idempotency_key.empty() ? NewIdempotencyKey()
                                                          : options.idempotency_key);
  req.set_on_busy(options.on_busy);
  req.set_model_override(options.model_override);
  const absl::Duration deadline =
      options.deadline > absl::ZeroDuration() ? options.deadline : core_->options().turn_deadline;
  return core_->Call<v1::TurnResult>(internal::RetryClass::kTurn, id_, deadline,
                                     [&](grpc::ClientContext* ctx, v1::TurnResult* out) {
                                       return core_->sessions().RunTurn(ctx, req, out);
                                     });
}

}  // namespace agentd
