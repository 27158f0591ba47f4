// RocksDbStore: the embedded ContextStore, one RocksDB database in the data dir.
// Schema (column families, keys, values, format version): store/schema.h and docs/storage.md.
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
#include "store/context_store.h"
#include "store/schema.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class Snapshot;
}  // namespace rocksdb

namespace agentd::store {

struct RocksDbStoreOptions {
  std::string path;  // the data dir; created if missing
  Durability durability = Durability::kSync;
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
  // DeleteAgent, CreateSession, DeleteSession, CommitSessionWrite) hold the lock stripe of their
  // (project, id) for the read and the write, so they are atomic against each other within this
  // process (the data dir LOCK keeps other processes out). Each mutating method commits exactly
  // one WriteBatch. Reads take no locks and see a consistent snapshot per call.
  // Ids (project, agent, session, idempotency key) must be 1..kMaxIdLength bytes, else
  // INVALID_ARGUMENT. Undecodable keys and unparsable values are DATA_LOSS.
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
  [[nodiscard]] absl::Status CommitSessionWrite(const SessionWrite& write) override;
  /// Also NOT_FOUND when the session does not exist (checked in the same snapshot).
  [[nodiscard]] absl::StatusOr<std::vector<v1::Event>> ReadEvents(const std::string& project_id,
                                                                  const std::string& session_id,
                                                                  int64_t after_seq,
                                                                  int32_t limit) override;
  [[nodiscard]] absl::StatusOr<std::optional<storage::IdempotencyRecord>> GetIdempotency(
      const std::string& project_id, const std::string& session_id,
      const std::string& key) override;
  /// Iterates a snapshot: writes made by `fn` (e.g. marking a session FAILED) are allowed and
  /// are not seen by the iteration.
  [[nodiscard]] absl::Status ForEachSessionWithStatus(
      v1::SessionStatus status,
      const std::function<absl::Status(const std::string& project_id,
                                       const storage::SessionRecord& record)>& fn) override;

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
  /// Reads the meta "format" record; writes it on a new database.
  [[nodiscard]] absl::Status CheckFormat();

  const RocksDbStoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  /// Indexed by schema::ColumnFamily; then any families a newer format added. Owned: destroyed
  /// before db_ is closed.
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  /// Each stripe guards the stored records of the (project, id) pairs that hash to it.
  std::array<absl::Mutex, kLockStripes> stripes_;
};

}  // namespace agentd::store
