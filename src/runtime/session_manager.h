// SessionManager: sessions, their turns and their event streams (the domain side of
// SessionService). Enforces one running turn per session (REJECT / ENQUEUE), idempotency keys,
// cancellation, crash recovery at startup, and draining at shutdown.
//
// Threading: every method is thread-safe. Turn callbacks (observers, finish listeners) run on
// the thread that drives the turn: the caller's for inline models, a backend thread otherwise.
// Scale-out: the slots here are the busy rule within one process; on a shared store a turn's
// claim in the session record (runtime/replicas.h) extends it across processes.
#pragma once

#include <cstddef>
#include <cstdint>
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

/// `status`, except that NOT_FOUND becomes "session \"<session_id>\" not found" (the one
/// message every session RPC gives, whatever the store said).
absl::Status SessionNotFoundAs(const absl::Status& status, const std::string& session_id);

class ReplayRun;
class SessionExporter;
class SessionImporter;

/// How long CancelTurn waits for another replica to record the turn it was asked to cancel.
inline constexpr absl::Duration kRemoteCancelWait = absl::Seconds(10);

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

  // ---- Forks, tool state, export/import, replay, retention (session_ops.cc) ----------------
  /// Forks a session at a committed seq (at_seq 0 = its last_seq; a turn may be running on it).
  /// The fork pins the same agent version, copies the metadata, the tool state and the
  /// expire_time (a fork never outlives its parent's retention), starts with zero usage, and reads
  /// the parent's events up to at_seq without copying them. Its status is the parent's at that
  /// point: IDLE after a completed turn (or inside one), REQUIRES_ACTION with the calls still
  /// unanswered after a turn that ended REQUIRES_ACTION, FAILED after a failed turn.
  /// INVALID_ARGUMENT (at_seq < 0 or past last_seq, bad ids), NOT_FOUND, ALREADY_EXISTS.
  absl::StatusOr<v1::Session> Fork(const std::string& project_id,
                                   const v1::ForkSessionRequest& request);
  /// Fork at exactly `at_seq` (0 = an empty fork); `new_session_id` empty = generated.
  absl::StatusOr<v1::Session> ForkAt(const std::string& project_id, const std::string& session_id,
                                     int64_t at_seq, const std::string& new_session_id);
  absl::StatusOr<v1::StateEntry> GetState(const std::string& project_id,
                                          const v1::GetStateRequest& request);
  /// value_json must be JSON (any value); see store::StateMutation for versions.
  absl::StatusOr<v1::StateEntry> PutState(const std::string& project_id,
                                          const v1::PutStateRequest& request);
  absl::StatusOr<v1::ListStateResponse> ListState(const std::string& project_id,
                                                  const v1::ListStateRequest& request);
  /// Opens an export of the session (session_transfer.h). FAILED_PRECONDITION while a turn runs.
  absl::StatusOr<std::unique_ptr<SessionExporter>> OpenExport(const std::string& project_id,
                                                              const std::string& session_id);
  /// A new import into `project_id`, at most `max_bytes` of chunks (session_transfer.h).
  std::unique_ptr<SessionImporter> NewImport(const std::string& project_id, size_t max_bytes);
  /// Starts a ReplaySession (replay.h); `done` is called exactly once, possibly before this
  /// returns. The handle cancels the replay.
  std::shared_ptr<ReplayRun> Replay(
      const std::string& project_id, const v1::ReplaySessionRequest& request, absl::Time deadline,
      std::function<void(const absl::Status&, const v1::ReplaySessionResponse&)> done);
  /// Retention: removes the sessions past their expire_time (with their events, state and
  /// idempotency records; a session whose forks still read it waits for them) and idempotency
  /// records past the store's retention, in batches until none is due; returns how many sessions
  /// were removed. Call it periodically from one thread (the server: every minute).
  absl::StatusOr<int64_t> SweepExpired(absl::Time now);

  /// Starts (or queues, or answers from the idempotency record) a turn. The observer always
  /// gets exactly one OnFinish, possibly before this returns. The returned handle (null when
  /// the request was answered at once) lets the caller abandon the turn (client went away).
  std::shared_ptr<Turn> SubmitTurn(const std::string& project_id, v1::RunTurnRequest request,
                                   absl::Time deadline, std::shared_ptr<TurnObserver> observer);
  /// The caller of `turn` went away: a queued turn is dropped, a running one cancelled.
  void Abandon(const std::shared_ptr<Turn>& turn);
  /// Cancels the running turn of a session and calls `done` with its final result. A session
  /// waiting in REQUIRES_ACTION has its pending tool calls cancelled instead (CancelPendingCalls):
  /// `done` gets that turn, status CANCELLED, and the session is IDLE.
  /// FAILED_PRECONDITION when no turn is running and no tool call is pending. On a shared store
  /// a turn running on another replica is cancelled through the store (RequestCancel); `done`
  /// then gets the result read from the session's log once that replica has recorded it
  /// (DEADLINE_EXCEEDED after kRemoteCancelWait).
  void CancelTurn(const std::string& project_id, const std::string& session_id,
                  std::function<void(const absl::Status&, const v1::TurnResult&)> done);
  /// A cancel request from another replica: cancels the session's turn if it runs here.
  void CancelHere(const std::string& project_id, const std::string& session_id,
                  const std::string& reason);

  /// Startup recovery: every session left RUNNING by a crash gets a TURN_FAILED event.
  absl::Status RecoverInterruptedTurns();

  /// Shutdown: refuse new turns (UNAVAILABLE), wait up to `grace` for running and queued turns,
  /// then cancel what is left and wait (bounded) for it to be recorded.
  void Drain(absl::Duration grace);
  size_t active_turns() const;
  struct TurnStats {
    size_t running = 0;   // turns running now
    size_t queued = 0;    // turns waiting (ENQUEUE) behind a running one
    size_t sessions = 0;  // sessions with a turn running or queued
  };
  /// A snapshot for metrics (walks the busy sessions under the lock: for scrapes, not hot paths).
  TurnStats turn_stats() const;

  EventHub* hub() { return deps_.hub; }
  store::ContextStore* store() { return deps_.store; }
  backend::ModelRouter* router() { return deps_.router; }
  /// The turn workers (also runs short store reads for watchers).
  Executor* executor() { return deps_.executor; }
  const std::string& replica_id() const { return deps_.replica_id; }

 private:
  struct Slot {
    std::shared_ptr<Turn> running;
    std::deque<std::shared_ptr<Turn>> queue;
  };

  void OnTurnFinished(Turn* turn);
  /// CancelTurn of a turn running on another replica: asks for it, then polls the session until
  /// that turn is recorded (every kRemoteBusyPoll, on the turn timers and workers).
  void CancelRemote(const std::string& project_id, const storage::SessionRecord& record,
                    std::function<void(const absl::Status&, const v1::TurnResult&)> done);
  /// CancelTurn on a session in REQUIRES_ACTION: appends a turn answering each pending call
  /// with an error result (so the log stays valid for the model) and leaves the session IDLE.
  /// Reads and commits under mu_ (see SubmitTurn); a turn that got into the slot first is
  /// cancelled instead. ABORTED if another replica changed the session meanwhile.
  void CancelPendingCalls(
      const std::string& project_id, const std::string& session_id,
      const std::function<void(const absl::Status&, const v1::TurnResult&)>& done);
  /// Cancels a turn running here; `done` gets its final result (OK whenever there is one).
  void CancelRunning(const std::shared_ptr<Turn>& running,
                     const std::function<void(const absl::Status&, const v1::TurnResult&)>& done);
  /// The result of a finished turn, rebuilt from its events (TURN_STARTED at `first_seq`).
  absl::StatusOr<v1::TurnResult> ReadTurnResult(const std::string& project_id,
                                                const std::string& session_id,
                                                const std::string& turn_id, int64_t first_seq);
  /// Shared stores: FAILED_PRECONDITION when another live replica runs a turn on the session
  /// (`what` names the refused operation); its in-process slot is not visible here.
  absl::Status CheckNotRunningElsewhere(const std::string& project_id,
                                        const std::string& session_id, const char* what);
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
