// RocksDbStore: the embedded ContextStore, one RocksDB database in the data dir.
// Schema (column families, keys, values, format version): store/schema.h and docs/storage.md.
// Agents and sessions are in rocksdb_store.cc; tool state and forks in rocksdb_state.cc; deletion
// and expiry in rocksdb_retention.cc; projects, API keys, usage and audit in rocksdb_tenancy.cc.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "store/context_store.h"
#include "store/schema.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class Env;
class Snapshot;
}  // namespace rocksdb

namespace agentd::store {
namespace internal {
class Batch;
}  // namespace internal

struct RocksDbStoreOptions {
  std::string path;  // the data dir; created if missing
  Durability durability = Durability::kSync;
  /// How long an idempotency record is kept (DeleteExpiredSessions removes older ones): a retry
  /// with the same key after this long runs the turn again.
  absl::Duration idempotency_retention = absl::Hours(24);
  /// The RocksDB Env (file system, threads) the database uses; null = rocksdb::Env::Default().
  /// Kept alive by the store. Tests inject a fault-injecting file system through it
  /// (rocksdb::NewCompositeEnv; tests/reliability/power_loss_fs.h).
  std::shared_ptr<rocksdb::Env> env;
};

class RocksDbStore final : public ContextStore {
 public:
  /// Opens (creating if missing) the database in `options.path`.
  /// FAILED_PRECONDITION when the dir cannot be created or written, is locked by another agentd
  /// process, or holds a format newer than schema::kFormatVersion; DATA_LOSS when the format
  /// record is unreadable. The returned store is thread-safe; destroying it closes the database.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<RocksDbStore>> Open(
      const RocksDbStoreOptions& options);

  /// Closes the database. No other thread may be using the store. Acknowledged writes are in the
  /// WAL, so no flush is needed.
  ~RocksDbStore() override;
  RocksDbStore(const RocksDbStore&) = delete;
  RocksDbStore& operator=(const RocksDbStore&) = delete;

  // ContextStore. All methods are thread-safe. Read-check-write methods (PutAgentVersion,
  // DeleteAgent, CreateSession, DeleteSession, CommitSessionWrite, PutState, CreateProject,
  // SetProjectLimits, CreateApiKey, RevokeApiKey) hold the lock stripe of their (project, id) —
  // (project, "") for a project, ("", key_id) for an API key; ForkSession and DeleteSession of a
  // fork hold the session's and its parent's, in address order — for the read and the write, so
  // they are atomic against each other within this process (the data dir LOCK keeps other
  // processes out). Each mutating method commits exactly one WriteBatch (DeleteExpiredSessions
  // one per session it removes; CreateSession and ForkSession may first remove an expired
  // session of the same id in its own). Reads take no locks and see a consistent snapshot per
  // call.
  // Ids (project, agent, session, idempotency key, API key, audit id, usage group) must be
  // 1..kMaxIdLength bytes, else INVALID_ARGUMENT. Undecodable keys and unparsable values are
  // DATA_LOSS.
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
  /// Also removes the session's tool state and unlinks it from its parent (if it is a fork).
  /// FAILED_PRECONDITION while forks of the session (fork_seq >= 1) exist: they read its events.
  /// NOT_FOUND once the session has expired (the sweeper removes it).
  [[nodiscard]] absl::Status DeleteSession(const std::string& project_id,
                                           const std::string& session_id) override;
  /// The stored record keeps its parent_session_id, fork_seq, expire_time and fork_ids whatever
  /// `write.record` says (they are fixed at creation or kept by the store).
  [[nodiscard]] absl::Status CommitSessionWrite(const SessionWrite& write) override;
  /// Also NOT_FOUND when the session does not exist (checked in the same snapshot). For a fork,
  /// the inherited events carry the fork's session_id (the log reads as the fork's own).
  [[nodiscard]] absl::StatusOr<std::vector<v1::Event>> ReadEvents(const std::string& project_id,
                                                                  const std::string& session_id,
                                                                  int64_t after_seq,
                                                                  int32_t limit) override;
  [[nodiscard]] absl::StatusOr<std::optional<storage::IdempotencyRecord>> GetIdempotency(
      const std::string& project_id, const std::string& session_id,
      const std::string& key) override;
  // Tenancy (rocksdb_tenancy.cc). An `audit` event needs audit_id (1..kMaxIdLength bytes),
  // project_id and time, else INVALID_ARGUMENT and nothing is written.
  [[nodiscard]] absl::Status CreateProject(const v1::Project& project,
                                           const v1::AuditEvent& audit) override;
  [[nodiscard]] absl::StatusOr<v1::Project> GetProject(const std::string& project_id) override;
  /// Page tokens are the hex of the last project id returned.
  [[nodiscard]] absl::StatusOr<ProjectPage> ListProjects(int32_t page_size,
                                                         const std::string& page_token) override;
  [[nodiscard]] absl::StatusOr<v1::Project> SetProjectLimits(
      const std::string& project_id, const v1::ProjectLimits& limits,
      const google::protobuf::Timestamp& update_time, const v1::AuditEvent& audit) override;
  [[nodiscard]] absl::Status CreateApiKey(const storage::ApiKeyRecord& record,
                                          const v1::AuditEvent& audit) override;
  [[nodiscard]] absl::StatusOr<storage::ApiKeyRecord> GetApiKey(const std::string& key_id) override;
  /// Scans every key of every project (no per-project index): fine for hundreds of keys.
  [[nodiscard]] absl::StatusOr<std::vector<v1::ApiKey>> ListApiKeys(
      const std::string& project_id) override;
  /// Revoking a revoked key writes nothing (not even `audit`) and returns the stored key.
  [[nodiscard]] absl::StatusOr<v1::ApiKey> RevokeApiKey(
      const std::string& project_id, const std::string& key_id,
      const google::protobuf::Timestamp& revoke_time, const v1::AuditEvent& audit) override;
  /// One Merge per delta, no read and no lock. INVALID_ARGUMENT (nothing written) for an unknown
  /// dimension, a negative day, a group on a kDay delta or a bad group on another dimension;
  /// CommitSessionWrite checks its `usage` the same way.
  [[nodiscard]] absl::Status AddUsage(const std::string& project_id,
                                      const std::vector<UsageDelta>& deltas) override;
  /// Days before 0 are clamped to 0 (no counter has a negative day).
  [[nodiscard]] absl::StatusOr<std::vector<UsageCounter>> ReadUsage(const std::string& project_id,
                                                                    UsageDimension dimension,
                                                                    int32_t first_day,
                                                                    int32_t last_day) override;
  /// Syncs only when `sync` and the store's durability is kSync.
  [[nodiscard]] absl::Status AppendAudit(const v1::AuditEvent& event, bool sync) override;
  /// Times compare at microsecond resolution (rounded down). page_size <= 0 → 100, at most
  /// 1000; page tokens are the hex of the next record's key.
  [[nodiscard]] absl::StatusOr<AuditPage> ListAudit(const std::string& project_id, absl::Time start,
                                                    absl::Time end, int32_t page_size,
                                                    const std::string& page_token) override;
  /// One WriteBatch of one DeleteRange per project present in the audit family.
  [[nodiscard]] absl::Status DeleteAuditBefore(absl::Time cutoff) override;

  // Tool state and forks (rocksdb_state.cc); expiry (rocksdb_retention.cc). Every session read
  // path (GetSession, ListSessions, ReadEvents, GetIdempotency, the state methods,
  // ForEachSessionWithStatus, CommitSessionWrite, ForkSession's parent) treats a session past its
  // expire_time as absent. CreateSession and ForkSession may reuse the id of an expired session:
  // it is removed first (ALREADY_EXISTS while forks of it remain).
  [[nodiscard]] absl::StatusOr<v1::StateEntry> GetState(const std::string& project_id,
                                                        const std::string& session_id,
                                                        const std::string& key) override;
  [[nodiscard]] absl::StatusOr<std::vector<v1::StateEntry>> ListState(
      const std::string& project_id, const std::string& session_id) override;
  [[nodiscard]] absl::StatusOr<v1::StateEntry> PutState(const std::string& project_id,
                                                        const std::string& session_id,
                                                        const StateMutation& mutation) override;
  /// Holds the stripes of the parent and the child. The child is stored with last_seq =
  /// fork_seq, revision 1 and no forks of its own; a fork at fork_seq >= 1 is added to the
  /// parent's fork_ids (the parent's revision is unchanged, so a turn running on the parent is not
  /// disturbed). The parent's state entries are copied with their versions.
  [[nodiscard]] absl::Status ForkSession(const std::string& project_id,
                                         const storage::SessionRecord& child) override;
  /// Walks the expiry index (family `expiry`) up to `now`: each due session without forks is
  /// removed like DeleteSession (a parent whose last fork goes is retried at once); at most `max`
  /// sessions. Then removes up to `max` idempotency records older than
  /// options.idempotency_retention (their index entries are written by CommitSessionWrite).
  /// INVALID_ARGUMENT if max <= 0.
  [[nodiscard]] absl::StatusOr<int64_t> DeleteExpiredSessions(absl::Time now,
                                                              int64_t max) override;

  // Long-term memory: rocksdb_memory.cc.
  [[nodiscard]] absl::StatusOr<v1::MemoryRecord> PutMemory(
      const std::string& project_id, const v1::MemoryRecord& record) override;
  [[nodiscard]] absl::StatusOr<v1::MemoryRecord> GetMemory(const std::string& project_id,
                                                           const std::string& name_space,
                                                           const std::string& key) override;
  [[nodiscard]] absl::StatusOr<MemoryPage> ListMemories(const std::string& project_id,
                                                        const std::string& namespace_prefix,
                                                        int32_t page_size,
                                                        const std::string& page_token) override;
  [[nodiscard]] absl::StatusOr<std::vector<ScoredMemoryRecord>> SearchMemory(
      const std::string& project_id, const std::string& namespace_prefix,
      const std::string& query, int32_t top_k) override;
  [[nodiscard]] absl::Status DeleteMemory(const std::string& project_id,
                                          const std::string& name_space,
                                          const std::string& key) override;

  /// Iterates a snapshot: writes made by `fn` (e.g. marking a session FAILED) are allowed and
  /// are not seen by the iteration.
  [[nodiscard]] absl::Status ForEachSessionWithStatus(
      v1::SessionStatus status,
      const std::function<absl::Status(const std::string& project_id,
                                       const storage::SessionRecord& record)>& fn) override;

  // Backups (rocksdb_backup.cc): RocksDB BackupEngine, WAL included (flush_before_backup =
  // false), so a backup holds every acknowledged write up to the moment it was taken. Backups
  // of one backup_dir are serialized in this process.
  [[nodiscard]] absl::StatusOr<v1::BackupInfo> CreateBackup(const std::string& backup_dir,
                                                           int32_t keep_last) override;
  [[nodiscard]] absl::StatusOr<std::vector<v1::BackupInfo>> ListBackups(
      const std::string& backup_dir) override;
  [[nodiscard]] absl::StatusOr<v1::BackupInfo> RestoreBackup(const std::string& backup_dir,
                                                            uint32_t backup_id,
                                                            const std::string& target_dir) override;

 private:
  static constexpr size_t kLockStripes = 64;

  explicit RocksDbStore(RocksDbStoreOptions options);

  rocksdb::ColumnFamilyHandle* Cf(schema::ColumnFamily cf) const {
    return handles_[schema::Index(cf)];
  }
  /// Point lookup of a protobuf value (a `kind` record, for error messages) in the latest data
  /// or in `snapshot`: nullopt when absent, DATA_LOSS when it does not parse.
  template <typename T>
  [[nodiscard]] absl::StatusOr<std::optional<T>> Get(schema::ColumnFamily cf,
                                                     absl::string_view kind, const std::string& key,
                                                     const rocksdb::Snapshot* snapshot = nullptr);
  /// The stripe serializing read-check-write operations on (project, id).
  absl::Mutex& StripeFor(absl::string_view project_id, absl::string_view id);

  // ---- Session helpers (rocksdb_state.cc, rocksdb_retention.cc) ----
  enum class RemoveMode {
    kDelete,   // DeleteSession: NOT_FOUND if absent or expired, FAILED_PRECONDITION with forks
    kExpired,  // the sweeper: removes the session only if it expired and has no forks
  };
  struct Removal {
    bool removed = false;
    std::string parent_id;  // the parent it was unlinked from (removed forks with fork_seq >= 1)
  };
  /// The record of a session that exists and has not expired at `now`, read from `snapshot`
  /// (null = the latest data): NOT_FOUND otherwise.
  [[nodiscard]] absl::StatusOr<storage::SessionRecord> GetLiveSession(
      const std::string& project_id, const std::string& session_id, absl::Time now,
      const rocksdb::Snapshot* snapshot = nullptr);
  /// Checks `mutations` against the stored versions, in order (a key written twice sees its first
  /// write), and adds the new entries to `batch`; returns them. ABORTED on a mismatch. The caller
  /// holds the session's stripe and checked CheckStateMutations.
  [[nodiscard]] absl::StatusOr<std::vector<v1::StateEntry>> StageStateMutations(
      internal::Batch* batch, const std::string& project_id, const std::string& session_id,
      const std::vector<StateMutation>& mutations);
  /// Adds to `batch` the removal of everything of the session: record, events, idempotency
  /// records, state and (when `record` is known) its expiry index entry.
  void StagePurge(internal::Batch* batch, const std::string& project_id,
                  const std::string& session_id, const storage::SessionRecord* record);
  /// Removes a session under its stripe and its parent's, in one batch that also unlinks it from
  /// the parent. Corrupt records are removed (kDelete) without unlinking.
  [[nodiscard]] absl::StatusOr<Removal> RemoveSession(const std::string& project_id,
                                                      const std::string& session_id,
                                                      RemoveMode mode, absl::Time now);
  /// Removes the session `session_id` if it has expired (and has no forks), so the id can be
  /// used again. OK when there is nothing to remove.
  [[nodiscard]] absl::Status ClearExpiredId(const std::string& project_id,
                                            const std::string& session_id);
  /// Indexes the sessions with an expire_time and the idempotency records of a data dir written
  /// before the expiry index existed, once (the meta key "expiry_index" records that it was done;
  /// an interrupted run is redone at the next open).
  [[nodiscard]] absl::Status EnsureExpiryIndex();
  /// DeleteExpiredSessions, the idempotency part: returns how many records were removed.
  [[nodiscard]] absl::StatusOr<int64_t> SweepIdempotency(absl::Time cutoff, int64_t max);
  /// Reads the meta "format" record; writes it on a new database.
  [[nodiscard]] absl::Status CheckFormat();

  const RocksDbStoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  absl::Mutex backup_mu_;  // one backup or restore at a time
  /// Indexed by schema::ColumnFamily; then any families a newer format added. Owned: destroyed
  /// before db_ is closed.
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  /// Each stripe guards the stored records of the (project, id) pairs that hash to it.
  std::array<absl::Mutex, kLockStripes> stripes_;
};

}  // namespace agentd::store
