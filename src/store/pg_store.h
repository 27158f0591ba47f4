// PostgresStore: the ContextStore on PostgreSQL (libpq), so that several stateless agentd
// replicas can share one database. Schema and migrations: store/pg_schema.h and
// docs/storage-postgres.md. Agents, sessions and events are in pg_store.cc; tool state, forks
// and retention in pg_state.cc; long-term memory in pg_memory.cc; projects, API keys, usage and
// audit in pg_tenancy.cc.
//
// Cross-replica correctness rests on the database alone, never on an in-process lock:
//  - every read-check-write runs in one transaction that locks the rows it checks
//    (SELECT … FOR UPDATE), so two replicas serialize on the row;
//  - CommitSessionWrite's revision compare-and-set is the UPDATE's own WHERE clause
//    (… AND revision = expected): of two writers with the same expected revision exactly one
//    commits, the other gets ABORTED, whichever replica each runs on;
//  - usage counters are INSERT … ON CONFLICT DO UPDATE SET x = x + excluded.x (atomic adds).
//
// Change notification (for watchers on other replicas): after every CommitSessionWrite commits,
//     SELECT pg_notify('agentd_events', '<project_id>/<session_id>/<last_seq>')
// runs in a transaction of its own with synchronous_commit off (a NOTIFY inside the write would
// hold PostgreSQL's database-wide notify lock through the write's WAL flush and serialize every
// commit), so the notification is delivered (to LISTEN agentd_events connections) after the
// write is durable, never for a write that rolled back, and may be lost if the process dies in
// between: listeners resync periodically. DeleteSession notifies with last_seq -1. <last_seq> is the session's last_seq after the
// write, in decimal. Ids are sent as they are when they consist of the bytes 0x21..0x7e other than
// '/' and '%' (every id the runtime generates or accepts); any other byte is sent as %XX
// (uppercase hex), so the payload splits unambiguously at '/'. PostgreSQL coalesces identical
// payloads of one transaction and limits a payload to 8000 bytes (ids are at most 128 bytes).
// A listener must still read events from its cursor (ReadEvents), not from the payload: a
// notification says "something was appended up to seq N", and notifications are not delivered
// to a listener that was disconnected when they were sent.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "store/context_store.h"

namespace agentd::store {
namespace pg {
class Conn;
class Pool;
}  // namespace pg

/// The channel CommitSessionWrite notifies (see above).
inline constexpr const char* kPostgresEventsChannel = "agentd_events";
/// The channel of cancel requests (RequestCancel): a turn runs on one replica, CancelTurn may
/// reach another.
inline constexpr const char* kPostgresCancelChannel = "agentd_cancel";

/// The NOTIFY payload of a commit to (project_id, session_id) ending at last_seq.
std::string PostgresNotifyPayload(const std::string& project_id, const std::string& session_id,
                                  int64_t last_seq);
/// The inverse of PostgresNotifyPayload; false for a payload it could not have made.
bool ParsePostgresNotifyPayload(absl::string_view payload, std::string* project_id,
                                std::string* session_id, int64_t* last_seq);

struct PostgresStoreOptions {
  /// A libpq connection string ("host=… port=… dbname=… user=… password=…" or a postgresql://
  /// URI). Never logged or put into an error message.
  std::string dsn;
  /// Connections kept open at most (created on demand).
  int pool_size = 8;
  /// kSync: synchronous_commit = on (a commit returns once its WAL is flushed — and, with
  /// synchronous replicas configured on the server, replicated). kRelaxed and kNone:
  /// synchronous_commit = off (a server crash may lose the newest commits; never corrupts).
  Durability durability = Durability::kSync;
  /// How long an idempotency record is kept (DeleteExpiredSessions removes older ones).
  absl::Duration idempotency_retention = absl::Hours(24);
};

class PostgresStore final : public ContextStore {
 public:
  /// Connects, then creates or migrates the schema (pg_schema.h). UNAVAILABLE when the server
  /// cannot be reached; FAILED_PRECONDITION when the database holds a newer schema than this
  /// build knows. The returned store is thread-safe.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<PostgresStore>> Open(
      const PostgresStoreOptions& options);
  ~PostgresStore() override;
  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;

  // ContextStore: the same contract and the same semantics as RocksDbStore (rocksdb_store.h:
  // id checks, expiry on every read path, fork rules, page tokens, usage validation). Every
  // mutation is one transaction, retried internally on serialization failures and deadlocks
  // (then ABORTED) and on a connection that broke before COMMIT; a connection lost during COMMIT
  // is UNAVAILABLE (the outcome is unknown). SessionRecord.fork_ids is not kept: a session's
  // forks are the rows whose parent_session_id names it.
  [[nodiscard]] absl::Status PutAgentVersion(const std::string& project_id, const v1::Agent& agent,
                                             int64_t expected_latest_version) override;
  [[nodiscard]] absl::StatusOr<v1::Agent> GetAgent(const std::string& project_id,
                                                   const std::string& agent_id, int64_t version,
                                                   bool include_deleted) override;
  [[nodiscard]] absl::StatusOr<AgentPage> ListAgents(const std::string& project_id,
                                                     int32_t page_size,
                                                     const std::string& page_token) override;
  [[nodiscard]] absl::Status DeleteAgent(const std::string& project_id,
                                         const std::string& agent_id) override;

  [[nodiscard]] absl::Status CreateSession(const std::string& project_id,
                                           const storage::SessionRecord& record) override;
  [[nodiscard]] absl::StatusOr<storage::SessionRecord> GetSession(
      const std::string& project_id, const std::string& session_id) override;
  [[nodiscard]] absl::StatusOr<SessionPage> ListSessions(const std::string& project_id,
                                                         const SessionFilter& filter,
                                                         int32_t page_size,
                                                         const std::string& page_token) override;
  [[nodiscard]] absl::Status DeleteSession(const std::string& project_id,
                                           const std::string& session_id) override;
  /// Then notifies kPostgresEventsChannel (see above).
  [[nodiscard]] absl::Status CommitSessionWrite(const SessionWrite& write) override;
  [[nodiscard]] absl::StatusOr<std::vector<v1::Event>> ReadEvents(const std::string& project_id,
                                                                  const std::string& session_id,
                                                                  int64_t after_seq,
                                                                  int32_t limit) override;
  [[nodiscard]] absl::StatusOr<std::optional<storage::IdempotencyRecord>> GetIdempotency(
      const std::string& project_id, const std::string& session_id,
      const std::string& key) override;

  [[nodiscard]] absl::StatusOr<v1::StateEntry> GetState(const std::string& project_id,
                                                        const std::string& session_id,
                                                        const std::string& key) override;
  [[nodiscard]] absl::StatusOr<std::vector<v1::StateEntry>> ListState(
      const std::string& project_id, const std::string& session_id) override;
  [[nodiscard]] absl::StatusOr<v1::StateEntry> PutState(const std::string& project_id,
                                                        const std::string& session_id,
                                                        const StateMutation& mutation) override;
  [[nodiscard]] absl::Status ForkSession(const std::string& project_id,
                                         const storage::SessionRecord& child) override;
  [[nodiscard]] absl::StatusOr<int64_t> DeleteExpiredSessions(absl::Time now, int64_t max) override;

  [[nodiscard]] absl::StatusOr<v1::MemoryRecord> PutMemory(const std::string& project_id,
                                                           const v1::MemoryRecord& record) override;
  [[nodiscard]] absl::StatusOr<v1::MemoryRecord> GetMemory(const std::string& project_id,
                                                           const std::string& name_space,
                                                           const std::string& key) override;
  [[nodiscard]] absl::StatusOr<MemoryPage> ListMemories(const std::string& project_id,
                                                        const std::string& namespace_prefix,
                                                        int32_t page_size,
                                                        const std::string& page_token) override;
  /// Scores in C++ (store/memory_index.h's tokenizer and BM25 functions) from the postings of
  /// the query terms under the prefix, read in one snapshot.
  [[nodiscard]] absl::StatusOr<std::vector<ScoredMemoryRecord>> SearchMemory(
      const std::string& project_id, const std::string& namespace_prefix, const std::string& query,
      int32_t top_k) override;
  [[nodiscard]] absl::Status DeleteMemory(const std::string& project_id,
                                          const std::string& name_space,
                                          const std::string& key) override;

  [[nodiscard]] absl::Status CreateProject(const v1::Project& project,
                                           const v1::AuditEvent& audit) override;
  [[nodiscard]] absl::StatusOr<v1::Project> GetProject(const std::string& project_id) override;
  [[nodiscard]] absl::StatusOr<ProjectPage> ListProjects(int32_t page_size,
                                                         const std::string& page_token) override;
  [[nodiscard]] absl::StatusOr<v1::Project> SetProjectLimits(
      const std::string& project_id, const v1::ProjectLimits& limits,
      const google::protobuf::Timestamp& update_time, const v1::AuditEvent& audit) override;
  [[nodiscard]] absl::Status CreateApiKey(const storage::ApiKeyRecord& record,
                                          const v1::AuditEvent& audit) override;
  [[nodiscard]] absl::StatusOr<storage::ApiKeyRecord> GetApiKey(const std::string& key_id) override;
  [[nodiscard]] absl::StatusOr<std::vector<v1::ApiKey>> ListApiKeys(
      const std::string& project_id) override;
  [[nodiscard]] absl::StatusOr<v1::ApiKey> RevokeApiKey(
      const std::string& project_id, const std::string& key_id,
      const google::protobuf::Timestamp& revoke_time, const v1::AuditEvent& audit) override;
  [[nodiscard]] absl::Status AddUsage(const std::string& project_id,
                                      const std::vector<UsageDelta>& deltas) override;
  [[nodiscard]] absl::StatusOr<std::vector<UsageCounter>> ReadUsage(const std::string& project_id,
                                                                    UsageDimension dimension,
                                                                    int32_t first_day,
                                                                    int32_t last_day) override;
  /// `sync` = false commits with synchronous_commit off for this transaction.
  [[nodiscard]] absl::Status AppendAudit(const v1::AuditEvent& event, bool sync) override;
  [[nodiscard]] absl::StatusOr<AuditPage> ListAudit(const std::string& project_id, absl::Time start,
                                                    absl::Time end, int32_t page_size,
                                                    const std::string& page_token) override;
  [[nodiscard]] absl::Status DeleteAuditBefore(absl::Time cutoff) override;

  /// Reads pages of sessions and calls `fn` with no connection held, so `fn` may write.
  [[nodiscard]] absl::Status ForEachSessionWithStatus(
      v1::SessionStatus status,
      const std::function<absl::Status(const std::string& project_id,
                                       const storage::SessionRecord& record)>& fn) override;

  // Replicas (pg_replicas.cc): heartbeats in agentd_replicas, timed by the database's clock;
  // commit notices from a dedicated LISTEN connection on its own thread, which reconnects (with
  // a resync notice) when the connection breaks.
  bool shared() const override { return true; }
  [[nodiscard]] absl::Status ReplicaHeartbeat(const std::string& replica_id,
                                              absl::Duration ttl) override;
  [[nodiscard]] absl::StatusOr<bool> ReplicaAlive(const std::string& replica_id) override;
  /// FAILED_PRECONDITION when called twice.
  [[nodiscard]] absl::Status WatchCommits(ReplicaNotices notices) override;
  void StopWatchingCommits() override;
  /// NOTIFY kPostgresCancelChannel with PostgresNotifyPayload(project_id, session_id, 0).
  [[nodiscard]] absl::Status RequestCancel(const std::string& project_id,
                                           const std::string& session_id) override;

  // Backups: UNIMPLEMENTED; PostgreSQL has its own tools (pg_dump, pg_basebackup + WAL
  // archiving for point-in-time recovery).
  [[nodiscard]] absl::StatusOr<v1::BackupInfo> CreateBackup(const std::string& backup_dir,
                                                            int32_t keep_last) override;
  [[nodiscard]] absl::StatusOr<std::vector<v1::BackupInfo>> ListBackups(
      const std::string& backup_dir) override;
  [[nodiscard]] absl::StatusOr<v1::BackupInfo> RestoreBackup(
      const std::string& backup_dir, uint32_t backup_id, const std::string& target_dir) override;

 private:
  explicit PostgresStore(PostgresStoreOptions options);

  enum class RemoveMode {
    kDelete,   // DeleteSession: NOT_FOUND if absent or expired, FAILED_PRECONDITION with forks
    kExpired,  // the sweeper and id reuse: removes the session only if expired and without forks
  };
  struct Removal {
    bool removed = false;
    std::string parent_id;  // the parent it read events of (fork_seq >= 1), when removed
  };
  /// Inside a transaction: locks the session row and removes the session (events, idempotency
  /// records, state) per `mode`. A fork of it that has expired and has no forks of its own is
  /// removed first (it no longer holds the session).
  absl::StatusOr<Removal> RemoveLocked(pg::Conn& conn, const std::string& project_id,
                                       const std::string& session_id, RemoveMode mode,
                                       absl::Time now);
  /// Inside a transaction: checks `mutations` against the stored versions in order (a key
  /// written twice sees its first write) and writes them; returns the new entries. ABORTED on a
  /// mismatch. The caller holds the session row lock.
  absl::StatusOr<std::vector<v1::StateEntry>> ApplyState(
      pg::Conn& conn, const std::string& project_id, const std::string& session_id,
      const std::vector<StateMutation>& mutations);
  /// After a committed session write: the NOTIFY described above (failures are logged).
  void NotifyCommitted(const std::string& project_id, const std::string& session_id,
                       int64_t last_seq);
  /// Inside a transaction: the live session's record, locked (FOR UPDATE), or NOT_FOUND.
  absl::StatusOr<storage::SessionRecord> LockLiveSession(pg::Conn& conn,
                                                         const std::string& project_id,
                                                         const std::string& session_id,
                                                         absl::Time now, bool share = false);

  const PostgresStoreOptions options_;
  std::unique_ptr<pg::Pool> pool_;
  class CommitFeed;
  std::unique_ptr<CommitFeed> feed_;  // declared last: stopped before the pool goes
};

}  // namespace agentd::store
