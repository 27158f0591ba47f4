#include "runtime/replicas.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "common/thread_name.h"
#include "common/time_util.h"
#include "runtime/event_hub.h"
#include "runtime/session_manager.h"

namespace agentd::runtime {

std::string NewReplicaId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') host[0] = '\0';
  std::string name(host);
  if (name.size() > 63) name.resize(63);
  return absl::StrCat(name.empty() ? "agentd" : name, "/", NewId("replica_"));
}

absl::StatusOr<ClaimState> InspectClaim(store::ContextStore* store,
                                        const storage::SessionRecord& record,
                                        const std::string& self,
                                        absl::flat_hash_map<std::string, bool>* alive_cache) {
  if (record.session().status() != v1::SESSION_STATUS_RUNNING) return ClaimState::kNone;
  const std::string& owner = record.running_replica_id();
  if (!owner.empty() && owner == self) return ClaimState::kOurs;
  // A store nobody else writes: the owner was an earlier process on it.
  if (owner.empty() || !store->shared()) return ClaimState::kOrphaned;
  if (alive_cache != nullptr) {
    auto it = alive_cache->find(owner);
    if (it != alive_cache->end()) return it->second ? ClaimState::kLive : ClaimState::kOrphaned;
  }
  AGENTD_ASSIGN_OR_RETURN(bool alive, store->ReplicaAlive(owner));
  if (alive_cache != nullptr) alive_cache->emplace(owner, alive);
  return alive ? ClaimState::kLive : ClaimState::kOrphaned;
}

store::SessionWrite InterruptedTurnWrite(const std::string& project_id,
                                         const storage::SessionRecord& stored,
                                         const std::string& error) {
  store::SessionWrite w = store::SessionWrite::Replacing(project_id, stored);
  storage::SessionRecord& record = w.record;
  v1::Session* s = record.mutable_session();
  v1::Event& e = w.events.emplace_back();
  e.set_session_id(s->session_id());
  e.set_seq(s->last_seq() + 1);
  e.set_turn_id(record.running_turn_id());
  *e.mutable_time() = NowProto();
  e.set_type(v1::EVENT_TYPE_TURN_FAILED);
  e.mutable_turn()->set_turn_id(record.running_turn_id());
  e.mutable_turn()->set_status(v1::TURN_STATUS_FAILED);
  e.mutable_turn()->set_error(error);
  e.mutable_turn()->set_idempotency_key(record.running_idempotency_key());
  s->set_last_seq(e.seq());
  *s->mutable_update_time() = e.time();
  if (record.answered_tool_calls_size() > 0) {
    s->set_status(v1::SESSION_STATUS_REQUIRES_ACTION);
    *s->mutable_pending_tool_calls() = record.answered_tool_calls();
  } else {
    s->set_status(v1::SESSION_STATUS_FAILED);
  }
  record.clear_running_turn_id();
  record.clear_running_replica_id();
  record.clear_running_idempotency_key();
  record.clear_running_request_digest();
  record.clear_running_first_seq();
  record.clear_answered_tool_calls();
  return w;
}

ReplicaMonitor::ReplicaMonitor(store::ContextStore* store, SessionManager* sessions,
                               EventHub* hub, absl::Duration ttl)
    : store_(store), sessions_(sessions), hub_(hub), ttl_(ttl) {}

ReplicaMonitor::~ReplicaMonitor() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
  store_->StopWatchingCommits();  // its callbacks use the hub
}

absl::Status ReplicaMonitor::Start() {
  absl::Status st = store_->ReplicaHeartbeat(sessions_->replica_id(), ttl_);
  if (!st.ok()) return absl::Status(st.code(), absl::StrCat("replica heartbeat: ", st.message()));
  EventHub* hub = hub_;
  SessionManager* sessions = sessions_;
  store::ContextStore::ReplicaNotices notices;
  notices.on_commit = [hub](const std::string& project_id, const std::string& session_id,
                            int64_t last_seq) {
    const std::string key = EventHub::Key(project_id, session_id);
    if (last_seq < 0) {
      hub->Close(key);  // deleted on some replica
    } else {
      hub->Notice(key, last_seq);
    }
  };
  notices.on_resync = [hub] { hub->NoticeAll(); };
  notices.on_cancel = [sessions](const std::string& project_id, const std::string& session_id) {
    sessions->CancelHere(project_id, session_id, "cancelled by CancelTurn (on another replica)");
  };
  st = store_->WatchCommits(std::move(notices));
  if (!st.ok()) return absl::Status(st.code(), absl::StrCat("commit notices: ", st.message()));
  thread_ = std::thread([this] { Loop(); });
  spdlog::info("replica {} on a shared store (heartbeat ttl {})", sessions_->replica_id(),
               absl::FormatDuration(ttl_));
  return absl::OkStatus();
}

void ReplicaMonitor::Loop() {
  NameThisThread("agentd-replica");
  const absl::Duration period = ttl_ / 3;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      auto stopped = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
      if (mu_.AwaitWithTimeout(absl::Condition(&stopped), period)) return;
    }
    absl::Status st = store_->ReplicaHeartbeat(sessions_->replica_id(), ttl_);
    if (!st.ok()) spdlog::warn("replica heartbeat failed: {}", st.ToString());
    st = sessions_->RecoverInterruptedTurns();
    if (!st.ok()) spdlog::warn("orphaned-turn sweep failed: {}", st.ToString());
    // A notice can be lost (a replica died between its commit and its NOTIFY): watchers look
    // at the store from their cursors now and then (a read each, when nothing is new).
    hub_->NoticeAll();
  }
}

}  // namespace agentd::runtime
