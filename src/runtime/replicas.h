// Several agentd processes (replicas) sharing one store: who runs a session's turn, what happens
// to a turn whose replica died, and how a replica hears of commits made by the others.
// docs/scale-out.md describes the whole scheme; in short:
//
//  - A running turn is recorded in its session's record: status RUNNING, running_turn_id and
//    running_replica_id (the replica's id, unique per process start). A replica that finds a
//    session RUNNING on another replica whose heartbeat is alive treats it as busy.
//  - On a shared store the turn's opening events are committed before anything else runs (the
//    claim): the store's revision compare-and-set lets exactly one of two replicas that found
//    the session free commit them; the other sees the session busy.
//  - Every replica heartbeats (ContextStore::ReplicaHeartbeat) every ttl/3. A RUNNING session
//    whose replica's heartbeat has expired is orphaned: any replica records its turn as failed
//    (the same record a restart writes after a crash), at its next turn on the session or in
//    the periodic sweep, whichever comes first.
//  - Commit notices from the store (PostgreSQL LISTEN/NOTIFY) reach the EventHub as notices, so
//    a watcher on one replica sees turns run on another; every ttl/3 all watchers re-read from
//    their cursors anyway (a notice is lost if its replica dies between commit and NOTIFY).
//
// On a store that is not shared (RocksDB) only the first point applies; the process's own
// in-process slot remains the busy rule and startup recovery records every RUNNING session's
// turn as failed, as before.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agentd/storage/records.pb.h"
#include "store/context_store.h"

namespace agentd::runtime {

class EventHub;
class SessionManager;

/// A new replica id: the host name and a random part (unique per process start).
std::string NewReplicaId();

/// What a stored session's running-turn fields mean to replica `self`.
enum class ClaimState {
  kNone,      // no turn is recorded as running
  kOurs,      // recorded by this replica
  kLive,      // running on another replica whose heartbeat is alive
  kOrphaned,  // recorded by a replica that is gone (or by an earlier process on this store)
};
/// `alive_cache` (optional) remembers the replicas already looked up (for sweeps over many
/// sessions).
absl::StatusOr<ClaimState> InspectClaim(
    store::ContextStore* store, const storage::SessionRecord& record, const std::string& self,
    absl::flat_hash_map<std::string, bool>* alive_cache = nullptr);

/// The write that records the interrupted turn of `stored` (status RUNNING) as failed: a
/// TURN_FAILED event with `error`; the session becomes FAILED, or REQUIRES_ACTION again with the
/// tool calls that turn had answered.
store::SessionWrite InterruptedTurnWrite(const std::string& project_id,
                                         const storage::SessionRecord& stored,
                                         const std::string& error);

/// Runs this replica's side of a shared store: heartbeats, the orphaned-turn sweep and the
/// commit feed into the EventHub. Create only for a shared store, after the SessionManager.
class ReplicaMonitor {
 public:
  ReplicaMonitor(store::ContextStore* store, SessionManager* sessions, EventHub* hub,
                 absl::Duration ttl);
  /// Stops the thread and the store's commit feed.
  ~ReplicaMonitor();
  ReplicaMonitor(const ReplicaMonitor&) = delete;
  ReplicaMonitor& operator=(const ReplicaMonitor&) = delete;

  /// The first heartbeat (so that this replica's turns are never taken for orphans), the commit
  /// feed, then the thread. An error names what failed.
  absl::Status Start();

 private:
  void Loop();

  store::ContextStore* const store_;
  SessionManager* const sessions_;
  EventHub* const hub_;
  const absl::Duration ttl_;
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace agentd::runtime
