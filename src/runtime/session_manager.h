// SessionManager: sessions, their turns and their event streams (the domain side of
// SessionService). Enforces one running turn per session (REJECT / ENQUEUE), idempotency keys,
// cancellation, crash recovery at startup, and draining at shutdown.
//
// Threading: every method is thread-safe. Turn callbacks (observers, finish listeners) run on
// the thread that drives the turn: the caller's for inline models, a backend thread otherwise.
// Scale-out note: the busy rule here guards one process; the store's revision CAS is what keeps
// a session consistent when several processes share a store.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agentd/v1/session.pb.h"
#include "runtime/event_hub.h"
#include "runtime/turn.h"

namespace agentd::runtime {

class SessionManager {
 public:
  explicit SessionManager(TurnDeps deps);

  absl::StatusOr<v1::Session> Create(const std::string& project_id,
                                     const v1::CreateSessionRequest& request);
  absl::StatusOr<v1::Session> Get(const std::string& project_id, const std::string& session_id);
  absl::StatusOr<v1::ListSessionsResponse> List(const std::string& project_id,
                                                const v1::ListSessionsRequest& request);
  /// FAILED_PRECONDITION while a turn runs on the session. Watchers are told it is gone.
  absl::Status Delete(const std::string& project_id, const std::string& session_id);
  absl::StatusOr<v1::ListEventsResponse> ListEvents(const std::string& project_id,
                                                    const v1::ListEventsRequest& request);

  /// Starts (or queues, or answers from the idempotency record) a turn. The observer always
  /// gets exactly one OnFinish, possibly before this returns. The returned handle (null when
  /// the request was answered at once) lets the caller abandon the turn (client went away).
  std::shared_ptr<Turn> SubmitTurn(const std::string& project_id, v1::RunTurnRequest request,
                                   absl::Time deadline, std::shared_ptr<TurnObserver> observer);
  /// The caller of `turn` went away: a queued turn is dropped, a running one cancelled.
  void Abandon(const std::shared_ptr<Turn>& turn);
  /// Cancels the running turn of a session and calls `done` with its final result.
  /// FAILED_PRECONDITION when no turn is running.
  void CancelTurn(const std::string& project_id, const std::string& session_id,
                  std::function<void(const absl::Status&, const v1::TurnResult&)> done);

  /// Startup recovery: every session left RUNNING by a crash gets a TURN_FAILED event.
  absl::Status RecoverInterruptedTurns();

  /// Shutdown: refuse new turns (UNAVAILABLE), wait up to `grace` for running and queued turns,
  /// then cancel what is left and wait (bounded) for it to be recorded.
  void Drain(absl::Duration grace);
  size_t active_turns() const;

  EventHub* hub() { return deps_.hub; }
  store::ContextStore* store() { return deps_.store; }

 private:
  struct Slot {
    std::shared_ptr<Turn> running;
    std::deque<std::shared_ptr<Turn>> queue;
  };

  void OnTurnFinished(Turn* turn);
  absl::Status CheckInFlightIdempotency(const Slot& slot, const v1::RunTurnRequest& request,
                                        const std::string& digest) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  TurnDeps deps_;
  mutable absl::Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  size_t active_ ABSL_GUARDED_BY(mu_) = 0;  // running + queued turns
  absl::flat_hash_map<std::string, Slot> slots_ ABSL_GUARDED_BY(mu_);
};

}  // namespace agentd::runtime
