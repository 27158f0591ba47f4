// SessionManager: cancelling turns (session_manager.h) — a turn running here, one running on
// another replica sharing the store, or the tool calls a session waits for — and reading a
// finished turn's result back from the log.
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "metrics/agentd_metrics.h"
#include "runtime/replicas.h"
#include "runtime/session_manager.h"

namespace agentd::runtime {
namespace {

/// The write that CancelTurn makes on a session waiting in REQUIRES_ACTION (no turn running):
/// a turn of its own whose TOOL_RESULT events answer every pending call with an error, so that
/// later contexts stay valid (every tool call of the log is answered) and tell the model the
/// calls were cancelled. It ends with TURN_COMPLETED, status CANCELLED: a TURN_FAILED turn's
/// events are left out of later contexts, which would leave the calls unanswered. The session
/// becomes IDLE.
store::SessionWrite CancelPendingCallsWrite(const std::string& project_id,
                                            const storage::SessionRecord& stored,
                                            const std::string& turn_id,
                                            const std::string& reason) {
  store::SessionWrite w = store::SessionWrite::Replacing(project_id, stored);
  v1::Session* s = w.record.mutable_session();
  const google::protobuf::Timestamp now = NowProto();
  auto add = [&](v1::EventType type) -> v1::Event& {
    v1::Event& e = w.events.emplace_back();
    e.set_session_id(s->session_id());
    e.set_seq(s->last_seq() + static_cast<int64_t>(w.events.size()));
    e.set_turn_id(turn_id);
    *e.mutable_time() = now;
    e.set_type(type);
    return e;
  };
  add(v1::EVENT_TYPE_TURN_STARTED).mutable_turn()->set_turn_id(turn_id);
  for (const v1::ToolCall& c : stored.session().pending_tool_calls()) {
    v1::ToolResult* r = add(v1::EVENT_TYPE_TOOL_RESULT).mutable_tool_result();
    r->set_tool_call_id(c.id());
    r->set_is_error(true);
    r->set_output(absl::StrCat("error: the call of tool \"", c.name(), "\" was cancelled (",
                               reason, "); it has no result"));
  }
  v1::TurnMarker* end = add(v1::EVENT_TYPE_TURN_COMPLETED).mutable_turn();
  end->set_turn_id(turn_id);
  end->set_status(v1::TURN_STATUS_CANCELLED);
  end->set_error(reason);
  s->set_last_seq(w.events.back().seq());
  *s->mutable_update_time() = now;
  s->set_status(v1::SESSION_STATUS_IDLE);
  s->clear_pending_tool_calls();
  return w;
}

}  // namespace

void SessionManager::CancelTurn(
    const std::string& project_id, const std::string& session_id,
    std::function<void(const absl::Status&, const v1::TurnResult&)> done) {
  absl::Status st = ValidateId("session_id", session_id);
  std::shared_ptr<Turn> running;
  if (st.ok()) {
    absl::MutexLock lock(&mu_);
    auto it = slots_.find(EventHub::Key(project_id, session_id));
    if (it != slots_.end()) running = it->second.running;
  }
  if (running == nullptr) {
    absl::StatusOr<storage::SessionRecord> rec;
    if (st.ok()) {
      rec = deps_.store->GetSession(project_id, session_id);
      st = SessionNotFoundAs(rec.status(), session_id);
    }
    if (st.ok() && deps_.store->shared()) {
      absl::StatusOr<ClaimState> claim = InspectClaim(deps_.store, *rec, deps_.replica_id);
      if (!claim.ok()) {
        st = claim.status();
      } else if (*claim == ClaimState::kLive) {
        CancelRemote(project_id, *rec, std::move(done));
        return;
      }
    }
    if (!st.ok()) {
      done(st, v1::TurnResult());
      return;
    }
    // Pending tool calls are cancelled; nothing pending is FAILED_PRECONDITION (decided there,
    // under the lock).
    CancelPendingCalls(project_id, session_id, done);
    return;
  }
  CancelRunning(running, done);
}

void SessionManager::CancelRunning(
    const std::shared_ptr<Turn>& running,
    const std::function<void(const absl::Status&, const v1::TurnResult&)>& done) {
  running->Cancel("cancelled by CancelTurn");
  // The answer is the turn's final result, whatever ended it first (this cancel, its caller
  // going away, its own failure); an error only when it ended without one (dropped unrun).
  running->AddFinishListener([done](const absl::Status& status, const v1::TurnResult& result) {
    done(result.turn_id().empty() ? status : absl::OkStatus(), result);
  });
}

void SessionManager::CancelPendingCalls(
    const std::string& project_id, const std::string& session_id,
    const std::function<void(const absl::Status&, const v1::TurnResult&)>& done) {
  const std::string turn_id = NewId("turn_");
  const std::string reason = "cancelled by CancelTurn";
  const std::string key = EventHub::Key(project_id, session_id);
  store::SessionWrite w;
  absl::Status st;
  std::shared_ptr<Turn> running;
  {
    // Under mu_, like SubmitTurn: a turn answering these calls submitted meanwhile is either in
    // the slot already (it is cancelled instead) or starts after this commit and finds nothing
    // pending; it never makes its model call only to lose the revision check afterwards.
    absl::MutexLock lock(&mu_);
    auto it = slots_.find(key);
    if (it != slots_.end()) running = it->second.running;
    if (running == nullptr) {
      absl::StatusOr<storage::SessionRecord> rec = deps_.store->GetSession(project_id, session_id);
      if (!rec.ok()) {
        st = SessionNotFoundAs(rec.status(), session_id);
      } else if (rec->session().status() != v1::SESSION_STATUS_REQUIRES_ACTION) {
        st = absl::FailedPreconditionError(
            absl::StrCat("no turn is running and no tool call is pending on session \"",
                         session_id, "\""));
      } else {
        w = CancelPendingCallsWrite(project_id, *rec, turn_id, reason);
        st = deps_.store->CommitSessionWrite(w);
      }
    }
  }
  if (running != nullptr) {
    CancelRunning(running, done);
    return;
  }
  if (absl::IsAborted(st)) {
    // Another replica's turn answering the calls (or its CancelTurn) got there first.
    st = absl::AbortedError(
        absl::StrCat("session \"", session_id,
                     "\" changed while its pending tool calls were being cancelled; read it "
                     "again and retry"));
  }
  if (!st.ok()) {
    done(st, v1::TurnResult());
    return;
  }
  if (deps_.metrics != nullptr) deps_.metrics->TurnFinished(metrics::TurnOutcome::kCancelled, 0);
  deps_.history->Erase(key);
  deps_.hub->Publish(key, w.events);
  v1::TurnResult result;
  result.set_turn_id(turn_id);
  result.set_status(v1::TURN_STATUS_CANCELLED);
  for (const v1::Event& e : w.events) *result.add_events() = e;
  result.set_last_seq(w.record.session().last_seq());
  result.set_error(reason);
  done(absl::OkStatus(), result);
}

void SessionManager::CancelHere(const std::string& project_id, const std::string& session_id,
                                const std::string& reason) {
  std::shared_ptr<Turn> running;
  {
    absl::MutexLock lock(&mu_);
    auto it = slots_.find(EventHub::Key(project_id, session_id));
    if (it != slots_.end()) running = it->second.running;
  }
  if (running != nullptr) running->Cancel(reason);
}

void SessionManager::CancelRemote(
    const std::string& project_id, const storage::SessionRecord& record,
    std::function<void(const absl::Status&, const v1::TurnResult&)> done) {
  const std::string session_id = record.session().session_id();
  const std::string turn_id = record.running_turn_id();
  const int64_t first_seq = record.running_first_seq();
  absl::Status st = deps_.store->RequestCancel(project_id, session_id);
  if (!st.ok() || deps_.timers == nullptr) {
    done(st.ok() ? absl::FailedPreconditionError("cannot wait for another replica's turn") : st,
         v1::TurnResult());
    return;
  }
  // Polls until the session no longer runs that turn (the owner recorded it CANCELLED, or it
  // ended first, or the owner died and the orphan sweep recorded it).
  const absl::Time give_up = absl::Now() + kRemoteCancelWait;
  // The closure reaches itself weakly: whoever runs or schedules it holds it (no cycle to leak
  // if the timers are dropped at shutdown).
  auto poll = std::make_shared<std::function<void()>>();
  std::weak_ptr<std::function<void()>> weak = poll;
  *poll = [this, project_id, session_id, turn_id, first_seq, give_up, done, weak]() {
    std::shared_ptr<std::function<void()>> self = weak.lock();
    if (self == nullptr) return;
    auto rec = deps_.store->GetSession(project_id, session_id);
    if (!rec.ok() || rec->running_turn_id() != turn_id) {
      auto result = rec.ok() ? ReadTurnResult(project_id, session_id, turn_id, first_seq)
                             : absl::StatusOr<v1::TurnResult>(rec.status());
      if (result.ok() && result->status() == v1::TURN_STATUS_REQUIRES_ACTION &&
          rec->running_turn_id().empty()) {
        *result->mutable_required_tool_calls() = rec->session().pending_tool_calls();
      }
      done(result.status(), result.ok() ? *result : v1::TurnResult());
      return;
    }
    if (absl::Now() >= give_up) {
      done(absl::DeadlineExceededError(absl::StrCat(
               "the replica running turn ", turn_id, " did not record its cancellation within ",
               absl::FormatDuration(kRemoteCancelWait))),
           v1::TurnResult());
      return;
    }
    deps_.timers->Schedule(absl::Now() + kRemoteBusyPoll, [this, self] {
      deps_.executor->Schedule([self] { (*self)(); });
    });
  };
  deps_.executor->Schedule([poll] { (*poll)(); });
}

absl::StatusOr<v1::TurnResult> SessionManager::ReadTurnResult(const std::string& project_id,
                                                              const std::string& session_id,
                                                              const std::string& turn_id,
                                                              int64_t first_seq) {
  v1::TurnResult result;
  result.set_turn_id(turn_id);
  for (int64_t after = std::max<int64_t>(0, first_seq - 1);;) {
    AGENTD_ASSIGN_OR_RETURN(auto page, deps_.store->ReadEvents(project_id, session_id, after, 500));
    if (page.empty()) break;
    after = page.back().seq();
    for (v1::Event& e : page) {
      if (e.turn_id() != turn_id) continue;
      if (e.type() == v1::EVENT_TYPE_MESSAGE && e.message().role() == v1::ROLE_ASSISTANT) {
        result.set_output_text(e.message().text());
      }
      const bool last =
          e.type() == v1::EVENT_TYPE_TURN_COMPLETED || e.type() == v1::EVENT_TYPE_TURN_FAILED;
      if (last) {
        result.set_status(e.turn().status());
        result.set_error(e.turn().error());
        *result.mutable_usage() = e.turn().usage();
        result.set_last_seq(e.seq());
      }
      *result.add_events() = std::move(e);
      if (last) {
        if (result.status() != v1::TURN_STATUS_COMPLETED &&
            result.status() != v1::TURN_STATUS_REQUIRES_ACTION) {
          result.clear_output_text();
        }
        return result;
      }
    }
  }
  return absl::InternalError(
      absl::StrCat("turn ", turn_id, " of session \"", session_id, "\" has no closing event"));
}

}  // namespace agentd::runtime
