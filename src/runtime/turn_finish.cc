// Turn, the write side: the events a turn appends, its commits (one per step, the final one
// with the turn's idempotency record), and how it finishes and tells its observer and
// listeners. The read side (Begin, Prepare, the history) is in turn.cc; the step loop in
// turn_step.cc.
#include "common/time_util.h"
#include "metrics/agentd_metrics.h"
#include "metrics/trace_context.h"
#include "runtime/context_builder.h"
#include "runtime/turn.h"

namespace agentd::runtime {

v1::Event& Turn::AddEvent(v1::EventType type) {
  v1::Event& e = turn_events_.emplace_back();
  e.set_session_id(request_.session_id());
  e.set_seq(next_seq_++);
  e.set_turn_id(turn_id_);
  *e.mutable_time() = NowProto();
  e.set_type(type);
  return e;
}

void Turn::SealPendingEvents() {
  for (size_t i = committed_; i < turn_events_.size(); ++i) {
    turn_events_[i].set_token_estimate(EstimateEventTokens(turn_events_[i]));
  }
}

absl::Status Turn::Commit(bool final_write, const std::string& idempotency_key,
                          const storage::IdempotencyRecord* idem) {
  SealPendingEvents();
  store::SessionWrite w;
  w.project_id = project_id_;
  w.session_id = request_.session_id();
  w.expected_revision = record_.revision();
  w.events.assign(turn_events_.begin() + committed_, turn_events_.end());
  v1::Session* s = record_.mutable_session();
  s->set_last_seq(next_seq_ - 1);
  *s->mutable_update_time() = NowProto();
  w.record = std::move(record_);  // moved back right after the commit, whatever its outcome
  if (idem != nullptr && !idempotency_key.empty()) {
    w.idempotency_key = idempotency_key;
    w.idempotency = *idem;
  }
  w.usage = pending_usage_;  // counted in the same batch as the step's events
  w.state = builtins_.PendingState();  // tool-state writes of the step's builtin calls
  // Only the write that ends the turn is acknowledged (to the caller, to idempotent retries):
  // the opening and step writes before it need no fsync of their own; the final one's covers
  // them. One fsync per turn instead of one per step.
  w.sync = final_write;
  const std::string key = EventHub::Key(project_id_, request_.session_id());
  const auto commit_start = std::chrono::steady_clock::now();
  absl::Status st = deps_.store->CommitSessionWrite(w);
  record_ = std::move(w.record);
  if (deps_.metrics != nullptr) deps_.metrics->StoreCommit(metrics::SecondsSince(commit_start));
  if (!st.ok()) {
    deps_.history->Erase(key);
    return st;
  }
  if (!pending_usage_.empty()) {
    if (deps_.limits != nullptr) deps_.limits->Recorded(project_id_, pending_usage_total_);
    pending_usage_.clear();
    pending_usage_total_.Clear();
  }
  builtins_.ClearPendingState();
  record_.set_revision(record_.revision() + 1);
  // This turn owns the session: extend the shared history in place.
  history_->events.insert(history_->events.end(), w.events.begin(), w.events.end());
  history_->last_seq = record_.session().last_seq();
  committed_ = turn_events_.size();
  deps_.hub->Publish(key, w.events);
  NotifyCommitted(w.events);
  return absl::OkStatus();
}

absl::Status Turn::CommitStep() {
  for (int attempt = 0;; ++attempt) {
    absl::Status st = Commit(/*final_write=*/false, "", nullptr);
    if (st.ok() || !absl::IsAborted(st) || !builtins_.HasPendingState() || attempt == 2) return st;
    // A PutState between this step's state_get/state_put and its commit: that write is given
    // up and its call answered with a conflict error; the rest of the step commits.
    auto replaced = builtins_.DropConflictingWrites();
    if (!replaced.ok() || replaced->empty()) return st;
    for (const v1::ToolResult& r : *replaced) {
      for (size_t i = committed_; i < turn_events_.size(); ++i) {
        v1::Event& e = turn_events_[i];
        if (e.has_tool_result() && e.tool_result().tool_call_id() == r.tool_call_id()) {
          *e.mutable_tool_result() = r;
        }
      }
    }
  }
}

void Turn::OnDelta(absl::string_view text) {
  absl::MutexLock lock(&delta_mu_);
  if (!opening_durable_) {
    early_deltas_.emplace_back(text);
    return;
  }
  observer_->OnDelta(text);
}

void Turn::OnDeltaReset() {
  absl::MutexLock lock(&delta_mu_);
  if (!opening_durable_) {
    early_deltas_.clear();  // never shown: just drop them
    return;
  }
  observer_->OnDeltaReset();
}

void Turn::NotifyCommitted(const std::vector<v1::Event>& events) {
  absl::MutexLock lock(&delta_mu_);
  if (opening_durable_) {
    observer_->OnEvents(events);
    return;
  }
  // First commit of the turn: opening events, then any text that arrived meanwhile, then the rest.
  const size_t split = std::min(opening_events_, events.size());
  observer_->OnEvents({events.begin(), events.begin() + split});
  for (const std::string& d : early_deltas_) observer_->OnDelta(d);
  early_deltas_.clear();
  opening_durable_ = true;
  if (split < events.size()) observer_->OnEvents({events.begin() + split, events.end()});
}

void Turn::Fail(const absl::Status& status) {
  FinishTurn({v1::TURN_STATUS_FAILED, status, std::string(status.message())});
}

void Turn::FinishTurn(Outcome outcome) {
  // State writes reach the store only with a committed step (REQUIRES_ACTION commits its step
  // first); a failed or cancelled step's writes are dropped.
  builtins_.ClearPendingState();
  const bool ok_end = outcome.status == v1::TURN_STATUS_COMPLETED ||
                      outcome.status == v1::TURN_STATUS_REQUIRES_ACTION;
  v1::Event& marker = AddEvent(ok_end ? v1::EVENT_TYPE_TURN_COMPLETED : v1::EVENT_TYPE_TURN_FAILED);
  v1::TurnMarker* tm = marker.mutable_turn();
  tm->set_turn_id(turn_id_);
  tm->set_status(outcome.status);
  tm->set_error(outcome.error);
  *tm->mutable_usage() = usage_;
  tm->set_idempotency_key(request_.idempotency_key());

  v1::Session* s = record_.mutable_session();
  record_.clear_running_turn_id();
  record_.clear_running_replica_id();
  record_.clear_running_idempotency_key();
  record_.clear_running_request_digest();
  record_.clear_running_first_seq();
  record_.clear_answered_tool_calls();
  s->clear_pending_tool_calls();
  if (outcome.status == v1::TURN_STATUS_COMPLETED) {
    s->set_status(v1::SESSION_STATUS_IDLE);
  } else if (outcome.status == v1::TURN_STATUS_REQUIRES_ACTION) {
    s->set_status(v1::SESSION_STATUS_REQUIRES_ACTION);
    for (const v1::ToolCall& c : client_calls_) *s->add_pending_tool_calls() = c;
  } else if (!answered_calls_.empty()) {
    // The failed turn's tool results are not part of later contexts: ask for them again.
    s->set_status(v1::SESSION_STATUS_REQUIRES_ACTION);
    for (const v1::ToolCall& c : answered_calls_) *s->add_pending_tool_calls() = c;
  } else {
    s->set_status(outcome.status == v1::TURN_STATUS_CANCELLED ? v1::SESSION_STATUS_IDLE
                                                              : v1::SESSION_STATUS_FAILED);
  }

  SealPendingEvents();
  v1::TurnResult result;
  result.set_turn_id(turn_id_);
  result.set_status(outcome.status);
  if (ok_end) result.set_output_text(output_text_);
  if (outcome.status == v1::TURN_STATUS_REQUIRES_ACTION) {
    for (const v1::ToolCall& c : client_calls_) *result.add_required_tool_calls() = c;
  }
  for (const v1::Event& e : turn_events_) *result.add_events() = e;
  *result.mutable_usage() = usage_;
  result.set_last_seq(next_seq_ - 1);
  result.set_error(outcome.error);

  storage::IdempotencyRecord idem;
  const bool remember = !request_.idempotency_key().empty() && outcome.call_status.ok();
  if (remember) {
    idem.set_request_digest(digest_);
    idem.set_result(result.SerializeAsString());
    *idem.mutable_create_time() = NowProto();
  }
  absl::Status st = Commit(/*final_write=*/true, request_.idempotency_key(), remember ? &idem : nullptr);
  if (!st.ok()) {
    Deliver(st, v1::TurnResult());
    return;
  }
  outcome_recorded_ = true;
  if (deps_.metrics != nullptr) {
    metrics::TurnOutcome o = metrics::TurnOutcome::kFailed;
    if (outcome.status == v1::TURN_STATUS_COMPLETED) o = metrics::TurnOutcome::kCompleted;
    if (outcome.status == v1::TURN_STATUS_REQUIRES_ACTION) o = metrics::TurnOutcome::kRequiresAction;
    if (outcome.status == v1::TURN_STATUS_CANCELLED) o = metrics::TurnOutcome::kCancelled;
    deps_.metrics->TurnFinished(o, metrics::SecondsSince(submitted_));
  }
  Deliver(outcome.call_status, result);
}

void Turn::FinishWithoutRunning(const absl::Status& status) {
  obs::ContextScope log_scope(context_.get(), request_.session_id(), turn_id_);
  Deliver(status, v1::TurnResult());
}

void Turn::Cancel(const std::string& reason, absl::StatusCode code) {
  std::shared_ptr<backend::ModelCall> call;
  bool waiting;
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || cancelled_) return;
    cancelled_ = true;
    cancel_reason_ = reason;
    cancel_code_ = code;
    call = call_;
    waiting = waiting_;
  }
  if (call) call->Cancel();
  if (waiting) ResumeWaiting();  // finishes it now rather than at the next look
}

void Turn::AddFinishListener(std::function<void(const absl::Status&, const v1::TurnResult&)> fn) {
  absl::Status status;
  v1::TurnResult result;
  {
    absl::MutexLock lock(&mu_);
    if (!finished_) {
      listeners_.push_back(std::move(fn));
      return;
    }
    status = final_status_;
    result = final_result_;
  }
  fn(status, result);
}

void Turn::Deliver(const absl::Status& status, const v1::TurnResult& result) {
  std::vector<std::function<void(const absl::Status&, const v1::TurnResult&)>> listeners;
  {
    absl::MutexLock lock(&mu_);
    finished_ = true;
    final_status_ = status;
    final_result_ = result;
    listeners.swap(listeners_);
  }
  if (deps_.metrics != nullptr && !outcome_recorded_ && !status.ok()) {
    deps_.metrics->TurnRejected(status.code());
  }
  // Free the session before answering: a client that sends its next turn the moment it has
  // this answer must not find the session still busy.
  if (on_finished_) on_finished_(this);
  observer_->OnFinish(status, result);
  for (auto& fn : listeners) fn(status, result);
}

}  // namespace agentd::runtime
