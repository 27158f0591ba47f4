// Turn, the session's claim across replicas sharing a store (runtime/replicas.h): a turn that
// finds another replica's turn running is busy, waits for it (on_busy=ENQUEUE), or records a
// turn that cannot be running any more as failed.
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "runtime/replicas.h"
#include "runtime/turn.h"

namespace agentd::runtime {

absl::Status Turn::BusyElsewhereError() const {
  return absl::FailedPreconditionError(absl::StrCat(
      "a turn is already running on session \"", request_.session_id(),
      "\" on another replica (on_busy=REJECT; use ENQUEUE to wait)"));
}

absl::Status Turn::WaitForRemoteTurn() {
  if (deps_.timers == nullptr) return BusyElsewhereError();
  const absl::Time when = absl::Now() + kRemoteBusyPoll;
  if (when >= deadline_) {
    return absl::DeadlineExceededError(
        "deadline passed while waiting for the turn running on another replica");
  }
  {
    absl::MutexLock lock(&mu_);
    if (cancelled_) return CancelledStatusLocked();
    waiting_ = true;
  }
  auto self = shared_from_this();
  deps_.timers->Schedule(when, [self] { self->ResumeWaiting(); });
  return absl::OkStatus();
}

void Turn::ResumeWaiting() {
  {
    absl::MutexLock lock(&mu_);
    if (!waiting_) return;  // already woken (the timer and Cancel race)
    waiting_ = false;
  }
  auto self = shared_from_this();
  deps_.executor->Schedule([self] {
    absl::Status cancelled;
    {
      absl::MutexLock lock(&self->mu_);
      if (self->cancelled_) cancelled = self->CancelledStatusLocked();
    }
    if (!cancelled.ok()) {
      self->FinishWithoutRunning(cancelled);
      return;
    }
    self->Begin();
  });
}

absl::Status Turn::CancelledStatusLocked() const {
  return absl::Status(
      cancel_code_ == absl::StatusCode::kOk ? absl::StatusCode::kCancelled : cancel_code_,
      cancel_reason_);
}

absl::Status Turn::CheckClaim() {
  for (int attempt = 0;; ++attempt) {
    AGENTD_ASSIGN_OR_RETURN(ClaimState claim,
                            InspectClaim(deps_.store, record_, deps_.replica_id));
    if (claim == ClaimState::kLive) {
      const std::string& key = request_.idempotency_key();
      if (!key.empty() && key == record_.running_idempotency_key()) {
        if (record_.running_request_digest() != digest_) {
          return absl::InvalidArgumentError(
              "idempotency_key was already used with a different request body");
        }
        return absl::AbortedError("a turn with this idempotency_key is still running; retry later");
      }
      busy_elsewhere_ = true;
      return absl::OkStatus();  // the caller decides after the idempotency record
    }
    if (claim == ClaimState::kNone) return absl::OkStatus();
    // RUNNING, yet that turn cannot be running: this process's slot admits one turn per session,
    // and a turn of another process is recorded only while its replica is alive. Record it as
    // failed (keeping the log's turns well nested), then read the session again.
    const char* error = claim == ClaimState::kOurs
                            ? "the turn ended without its final record (a store write failed)"
                        : deps_.store->shared() ? "the agentd replica running the turn stopped"
                                                : "agentd stopped while the turn was running";
    absl::Status st =
        deps_.store->CommitSessionWrite(InterruptedTurnWrite(project_id_, record_, error));
    if (!st.ok() && !absl::IsAborted(st)) return st;
    if (attempt == 3) return absl::AbortedError("session changed while it was being recovered");
    auto rec = deps_.store->GetSession(project_id_, request_.session_id());
    AGENTD_RETURN_IF_ERROR(rec.status());
    record_ = *std::move(rec);
  }
}

}  // namespace agentd::runtime
