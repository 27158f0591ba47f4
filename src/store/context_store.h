// The ContextStore interface: everything agentd persists goes through it.
//
// Implementations: RocksDbStore (embedded, default) and PostgresStore (shared by replicas); both
// pass the same contract suites (tests/store_contract_test.h and its siblings).
//
// Tenancy: every method takes the project id of the *authenticated* caller; implementations
// prefix every key with it, so one project can never read or write another's data.
// Threading: all methods are thread-safe. Durability: when a mutating method returns OK the
// write is durable to the degree chosen by StoreOptions::durability.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agentd/storage/records.pb.h"
#include "agentd/v1/admin.pb.h"
#include "agentd/v1/agent.pb.h"
#include "agentd/v1/common.pb.h"
#include "agentd/v1/memory.pb.h"
#include "agentd/v1/project.pb.h"
#include "agentd/v1/session.pb.h"

namespace agentd::store {

enum class Durability {
  kSync,     // every acknowledged write is fsynced (group commit shares fsyncs across writers)
  kRelaxed,  // written to the WAL without fsync: a power loss may drop the newest writes
  kNone,     // testing only: no WAL; writes live in memtables until a flush (or a clean close),
             // so a crash loses acknowledged writes (the crash test's control run)
};

struct AgentPage {
  std::vector<v1::Agent> agents;  // latest version of each live agent, ordered by agent_id
  std::string next_page_token;    // empty when there are no more
};

struct SessionFilter {
  std::string agent_id;                                       // empty = any
  v1::SessionStatus status = v1::SESSION_STATUS_UNSPECIFIED;  // UNSPECIFIED = any
};

struct SessionPage {
  std::vector<v1::Session> sessions;  // ordered by session_id
  std::string next_page_token;
};

/// What a usage counter is grouped by. PERSISTED (a byte of the usage key): never renumber.
enum class UsageDimension : uint8_t {
  kDay = 1,      // group is empty: the project's total for the day
  kAgent = 2,    // group = agent_id
  kSession = 3,  // group = session_id
  kModel = 4,    // group = model name (the configured model that served the call)
};

/// An increment of one usage counter of the write's project: (dimension, group, UTC day).
struct UsageDelta {
  UsageDimension dimension = UsageDimension::kDay;
  std::string group;  // empty for kDay; else 1..kMaxIdLength bytes
  int32_t day = 0;    // days since 1970-01-01 (UTC)
  v1::Usage usage;    // added field by field to the stored counter
};

/// One stored usage counter (ReadUsage).
struct UsageCounter {
  std::string group;  // empty for kDay
  int32_t day = 0;
  v1::Usage usage;
};

struct ProjectPage {
  std::vector<v1::Project> projects;  // ordered by project_id (shortlex)
  std::string next_page_token;
};

struct AuditPage {
  std::vector<v1::AuditEvent> events;  // oldest first
  std::string next_page_token;
};

/// A change to one tool-state key of a session. Versions start at 1 and grow by 1 per write.
struct StateMutation {
  std::string key;         // 1..256 bytes
  std::string value_json;  // the new value (the caller checked it is JSON)
  /// 0 = unconditional; otherwise the stored version must equal it, else ABORTED (a missing
  /// key has version 0, so expected_version > 0 on a missing key is ABORTED).
  int64_t expected_version = 0;
};

struct MemoryPage {
  std::vector<v1::MemoryRecord> records;  // ordered by (namespace, key)
  std::string next_page_token;
};

struct ScoredMemoryRecord {
  v1::MemoryRecord record;
  double score = 0;  // BM25; higher is better
};

/// One logical write to a session: new events, the new session record and, optionally, the
/// idempotency record of the turn that produced them. Committed atomically (one WriteBatch).
struct SessionWrite {
  /// A write that replaces `stored` (compare-and-set on its revision), starting from a copy of
  /// it as the new record and no events.
  static SessionWrite Replacing(const std::string& project_id,
                                const storage::SessionRecord& stored) {
    SessionWrite w;
    w.project_id = project_id;
    w.session_id = stored.session().session_id();
    w.expected_revision = stored.revision();
    w.record = stored;
    return w;
  }

  std::string project_id;
  std::string session_id;
  /// Compare-and-set: the write applies only if the stored record's revision equals this;
  /// otherwise ABORTED. The store sets record.revision = expected_revision + 1.
  int64_t expected_revision = 0;
  /// Events with seq = stored last_seq+1, +2, ... (no gaps; INVALID_ARGUMENT otherwise).
  std::vector<v1::Event> events;
  /// The new record; record.session().last_seq must equal the last event's seq (or the stored
  /// last_seq when `events` is empty).
  storage::SessionRecord record;
  /// Idempotency key and record to store with the write (key empty = none).
  std::string idempotency_key;
  storage::IdempotencyRecord idempotency;
  /// Usage counters of `project_id` to increment in the same batch (merge; no read).
  std::vector<UsageDelta> usage;
  /// Tool-state changes of this session, applied in the same batch; any version mismatch
  /// rejects the whole write (ABORTED) and nothing is applied.
  std::vector<StateMutation> state;
  /// false: a write no caller has been acknowledged yet (a turn's opening and intermediate
  /// steps). RocksDB commits it without waiting for fsync even under Durability::kSync; it
  /// becomes durable with the next synced write (a synced write syncs the WAL before it). An
  /// agentd crash does not lose it; a power loss may (with the seqs it used: a watcher that saw
  /// those events may later see others at the same seqs). The PostgreSQL store ignores it and
  /// commits synchronously (a server crash would lose asynchronous commits). The write that
  /// acknowledges a turn is always synced under kSync.
  bool sync = true;
};

class ContextStore {
 public:
  virtual ~ContextStore() = default;

  // ---- Agents ----------------------------------------------------------------------------
  /// Stores `agent` (agent_id, version set by the caller) and moves the head to its version.
  /// `expected_latest_version` = 0 creates the agent: ALREADY_EXISTS if an agent (live or
  /// deleted) has that id. Otherwise the head must be live and at that version (else ABORTED;
  /// NOT_FOUND if it does not exist or is deleted).
  [[nodiscard]] virtual absl::Status PutAgentVersion(const std::string& project_id,
                                                     const v1::Agent& agent,
                                                     int64_t expected_latest_version) = 0;
  /// The given version (0 = latest). NOT_FOUND if absent or the agent is deleted, unless
  /// `include_deleted` (sessions keep using the version they pinned).
  [[nodiscard]] virtual absl::StatusOr<v1::Agent> GetAgent(const std::string& project_id,
                                                           const std::string& agent_id,
                                                           int64_t version,
                                                           bool include_deleted = false) = 0;
  [[nodiscard]] virtual absl::StatusOr<AgentPage> ListAgents(const std::string& project_id,
                                                             int32_t page_size,
                                                             const std::string& page_token) = 0;
  /// Marks the agent deleted (versions are kept for the sessions pinned to them). NOT_FOUND if
  /// absent or already deleted.
  [[nodiscard]] virtual absl::Status DeleteAgent(const std::string& project_id,
                                                 const std::string& agent_id) = 0;

  // ---- Sessions --------------------------------------------------------------------------
  /// Creates the session (record.revision is stored as 1). ALREADY_EXISTS if the id is taken.
  [[nodiscard]] virtual absl::Status CreateSession(const std::string& project_id,
                                                   const storage::SessionRecord& record) = 0;
  [[nodiscard]] virtual absl::StatusOr<storage::SessionRecord> GetSession(
      const std::string& project_id, const std::string& session_id) = 0;
  [[nodiscard]] virtual absl::StatusOr<SessionPage> ListSessions(const std::string& project_id,
                                                                 const SessionFilter& filter,
                                                                 int32_t page_size,
                                                                 const std::string& page_token) = 0;
  /// Removes the session with its events and idempotency records. NOT_FOUND if absent.
  [[nodiscard]] virtual absl::Status DeleteSession(const std::string& project_id,
                                                   const std::string& session_id) = 0;
  /// Applies `write` atomically (see SessionWrite). NOT_FOUND if the session does not exist.
  [[nodiscard]] virtual absl::Status CommitSessionWrite(const SessionWrite& write) = 0;
  /// Events with seq > after_seq, in seq order, at most `limit` (> 0).
  [[nodiscard]] virtual absl::StatusOr<std::vector<v1::Event>> ReadEvents(
      const std::string& project_id, const std::string& session_id, int64_t after_seq,
      int32_t limit) = 0;
  /// The stored idempotency record, or nullopt.
  [[nodiscard]] virtual absl::StatusOr<std::optional<storage::IdempotencyRecord>> GetIdempotency(
      const std::string& project_id, const std::string& session_id, const std::string& key) = 0;

  // ---- Tool state (per session) ------------------------------------------------------------
  /// NOT_FOUND if the session or the key does not exist.
  [[nodiscard]] virtual absl::StatusOr<v1::StateEntry> GetState(const std::string& project_id,
                                                                const std::string& session_id,
                                                                const std::string& key) = 0;
  /// Every key of the session, ordered by key. NOT_FOUND if the session does not exist.
  [[nodiscard]] virtual absl::StatusOr<std::vector<v1::StateEntry>> ListState(
      const std::string& project_id, const std::string& session_id) = 0;
  /// Writes one key outside a turn (PutState RPC); atomic against CommitSessionWrite of the same
  /// session. Returns the stored entry. NOT_FOUND (session), ABORTED (version mismatch).
  [[nodiscard]] virtual absl::StatusOr<v1::StateEntry> PutState(const std::string& project_id,
                                                                const std::string& session_id,
                                                                const StateMutation& mutation) = 0;

  // ---- Fork and retention -----------------------------------------------------------------
  /// Creates `child` (its session carries parent_session_id and fork_seq) as a fork of the
  /// parent at fork_seq (1..parent's last_seq, or 0 for an empty fork) without copying events:
  /// ReadEvents of the child returns the parent's events up to fork_seq (following the chain
  /// for forks of forks), then the child's own. The parent's tool state is copied. NOT_FOUND
  /// (parent), ALREADY_EXISTS (child id), INVALID_ARGUMENT (fork_seq out of range).
  [[nodiscard]] virtual absl::Status ForkSession(const std::string& project_id,
                                                 const storage::SessionRecord& child) = 0;
  /// Removes up to `max` sessions whose expire_time is <= now, with their events, state and
  /// idempotency records (a session with live forks is kept until they are gone); returns how
  /// many were removed. Reads never return a session past its expire_time (NOT_FOUND).
  [[nodiscard]] virtual absl::StatusOr<int64_t> DeleteExpiredSessions(absl::Time now,
                                                                      int64_t max) = 0;

  // ---- Long-term memory (project-scoped) ---------------------------------------------------
  /// Creates or replaces the record (namespace, key); the search index is updated in the same
  /// batch. Keeps create_time of a replaced record; update_time is the caller's. Returns it.
  [[nodiscard]] virtual absl::StatusOr<v1::MemoryRecord> PutMemory(
      const std::string& project_id, const v1::MemoryRecord& record) = 0;
  /// NOT_FOUND if absent.
  [[nodiscard]] virtual absl::StatusOr<v1::MemoryRecord> GetMemory(const std::string& project_id,
                                                                   const std::string& name_space,
                                                                   const std::string& key) = 0;
  [[nodiscard]] virtual absl::StatusOr<MemoryPage> ListMemories(
      const std::string& project_id, const std::string& namespace_prefix, int32_t page_size,
      const std::string& page_token) = 0;
  /// The top_k records under namespace_prefix ranked by BM25 for `query` (score > 0 only).
  [[nodiscard]] virtual absl::StatusOr<std::vector<ScoredMemoryRecord>> SearchMemory(
      const std::string& project_id, const std::string& namespace_prefix,
      const std::string& query, int32_t top_k) = 0;
  /// Removes the record and its index entries. NOT_FOUND if absent.
  [[nodiscard]] virtual absl::Status DeleteMemory(const std::string& project_id,
                                                  const std::string& name_space,
                                                  const std::string& key) = 0;

  // ---- Projects, API keys, usage, audit (the tenancy data) --------------------------------
  // Mutations that an audit record describes take it as `audit` and commit it in the same
  // batch (durable with the change). audit.audit_id and time must be set by the caller.

  /// Creates a project. ALREADY_EXISTS if the id is taken.
  [[nodiscard]] virtual absl::Status CreateProject(const v1::Project& project,
                                                   const v1::AuditEvent& audit) = 0;
  /// NOT_FOUND if absent.
  [[nodiscard]] virtual absl::StatusOr<v1::Project> GetProject(const std::string& project_id) = 0;
  [[nodiscard]] virtual absl::StatusOr<ProjectPage> ListProjects(int32_t page_size,
                                                                 const std::string& page_token) = 0;
  /// Replaces the project's limits and update_time; returns the new project. NOT_FOUND if absent.
  [[nodiscard]] virtual absl::StatusOr<v1::Project> SetProjectLimits(
      const std::string& project_id, const v1::ProjectLimits& limits,
      const google::protobuf::Timestamp& update_time, const v1::AuditEvent& audit) = 0;

  /// Stores a new key (key ids are global: a key is looked up before its project is known).
  /// ALREADY_EXISTS if the key id is taken; NOT_FOUND if record.key().project_id() does not
  /// exist.
  [[nodiscard]] virtual absl::Status CreateApiKey(const storage::ApiKeyRecord& record,
                                                  const v1::AuditEvent& audit) = 0;
  /// NOT_FOUND if absent. Revoked keys are returned (with key.revoked set).
  [[nodiscard]] virtual absl::StatusOr<storage::ApiKeyRecord> GetApiKey(
      const std::string& key_id) = 0;
  /// The project's keys (revoked ones included), ordered by key_id.
  [[nodiscard]] virtual absl::StatusOr<std::vector<v1::ApiKey>> ListApiKeys(
      const std::string& project_id) = 0;
  /// Marks the key revoked at `revoke_time` and returns it. NOT_FOUND if the key does not exist
  /// or belongs to another project than `project_id`. Revoking a revoked key is OK (no change).
  [[nodiscard]] virtual absl::StatusOr<v1::ApiKey> RevokeApiKey(
      const std::string& project_id, const std::string& key_id,
      const google::protobuf::Timestamp& revoke_time, const v1::AuditEvent& audit) = 0;

  /// Increments usage counters outside a session write (e.g. a model call of another door).
  [[nodiscard]] virtual absl::Status AddUsage(const std::string& project_id,
                                              const std::vector<UsageDelta>& deltas) = 0;
  /// The project's counters of one dimension whose day is in [first_day, last_day], ordered by
  /// (group, day).
  [[nodiscard]] virtual absl::StatusOr<std::vector<UsageCounter>> ReadUsage(
      const std::string& project_id, UsageDimension dimension, int32_t first_day,
      int32_t last_day) = 0;

  /// Appends an audit record on its own (authentication failures, denials). `sync` = fsync.
  [[nodiscard]] virtual absl::Status AppendAudit(const v1::AuditEvent& event, bool sync) = 0;
  /// The project's audit records with start <= time < end, oldest first.
  [[nodiscard]] virtual absl::StatusOr<AuditPage> ListAudit(const std::string& project_id,
                                                            absl::Time start, absl::Time end,
                                                            int32_t page_size,
                                                            const std::string& page_token) = 0;
  /// Deletes every project's audit records older than `cutoff` (retention).
  [[nodiscard]] virtual absl::Status DeleteAuditBefore(absl::Time cutoff) = 0;

  /// Calls `fn(project_id, record)` for every session of every project whose status is
  /// `status` (startup recovery). Stops at, and returns, the first error `fn` returns.
  [[nodiscard]] virtual absl::Status ForEachSessionWithStatus(
      v1::SessionStatus status,
      const std::function<absl::Status(const std::string& project_id,
                                       const storage::SessionRecord& record)>& fn) = 0;

  // ---- Replicas: several agentd processes sharing one store (docs/scale-out.md) -------------
  /// True when other agentd processes may write this store at the same time (PostgreSQL). A
  /// store that is not shared is written by this process alone (RocksDB locks its directory).
  virtual bool shared() const { return false; }
  /// Records that replica `replica_id` is alive until `ttl` from now, by the store's clock (so
  /// replicas' clocks need not agree). Not shared: nothing to record.
  [[nodiscard]] virtual absl::Status ReplicaHeartbeat(const std::string& replica_id,
                                                      absl::Duration ttl) {
    return absl::OkStatus();
  }
  /// Whether `replica_id`'s last heartbeat has not expired. Not shared: false (no other process
  /// writes the store; the caller knows its own id).
  [[nodiscard]] virtual absl::StatusOr<bool> ReplicaAlive(const std::string& replica_id) {
    return false;
  }
  /// Notices from every process sharing the store, on a store thread (each must return quickly):
  struct ReplicaNotices {
    /// The session's log reaches at least last_seq (-1: the session was deleted).
    std::function<void(const std::string& project_id, const std::string& session_id,
                       int64_t last_seq)>
        on_commit;
    /// Notices may have been missed (the feed reconnected): read every watched session again.
    std::function<void()> on_resync;
    /// Some replica asked (RequestCancel) that the session's running turn be cancelled.
    std::function<void(const std::string& project_id, const std::string& session_id)> on_cancel;
  };
  /// Starts delivering notices. Not shared: never called (this process publishes its own
  /// commits). At most one subscription at a time; it lasts until StopWatchingCommits() (which
  /// waits for a callback in progress) or the store's end.
  [[nodiscard]] virtual absl::Status WatchCommits(ReplicaNotices notices) {
    return absl::OkStatus();
  }
  virtual void StopWatchingCommits() {}
  /// Tells every replica (on_cancel) to cancel the session's running turn; the one running it
  /// does. Not shared: UNIMPLEMENTED (the turn runs in this process).
  [[nodiscard]] virtual absl::Status RequestCancel(const std::string& project_id,
                                                   const std::string& session_id) {
    return absl::UnimplementedError("cancel requests need a shared store");
  }

  // Backups (operator). A store that has its own tools for this (PostgreSQL: pg_basebackup,
  // pg_dump) answers UNIMPLEMENTED, naming them. `backup_dir` is an absolute path on this machine.
  /// A consistent online backup of everything, taken while writes go on; then keeps only the
  /// newest `keep_last` backups (0 = all).
  [[nodiscard]] virtual absl::StatusOr<v1::BackupInfo> CreateBackup(const std::string& backup_dir,
                                                                   int32_t keep_last) {
    return absl::UnimplementedError("this store does not take backups");
  }
  /// Oldest first; NOT_FOUND when `backup_dir` holds no backups.
  [[nodiscard]] virtual absl::StatusOr<std::vector<v1::BackupInfo>> ListBackups(
      const std::string& backup_dir) {
    return absl::UnimplementedError("this store does not take backups");
  }
  /// Verifies backup `backup_id` (0 = newest) and restores it into `target_dir`, which must be
  /// missing or empty and is never this store's own directory. Needs no open store to succeed
  /// on the target; the live store is untouched.
  [[nodiscard]] virtual absl::StatusOr<v1::BackupInfo> RestoreBackup(
      const std::string& backup_dir, uint32_t backup_id, const std::string& target_dir) {
    return absl::UnimplementedError("this store does not restore backups");
  }
};

}  // namespace agentd::store
