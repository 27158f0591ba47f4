// Internal helpers of RocksDbStore (not part of the store interface): Slice/string_view
// conversion, RocksDB → absl status mapping, id and page-token checks, value parsing, the
// one-WriteBatch-per-operation wrapper (where durability is decided), a prefix-bounded iterator
// and the usage merge operator. Include only from src/store/*.cc (and the store's tests).
#pragma once

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "google/protobuf/message_lite.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/merge_operator.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/write_batch.h"
#include "store/context_store.h"
#include "store/schema.h"
#include "store/store_checks.h"

namespace agentd::store::internal {

inline absl::string_view ToView(const rocksdb::Slice& s) {
  return absl::string_view(s.data(), s.size());
}
inline rocksdb::Slice ToSlice(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

inline absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat("rocksdb ", what, ": ", s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsNoSpace()) return absl::ResourceExhaustedError(msg);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

inline absl::Status MalformedKey(absl::string_view kind, absl::string_view key) {
  return absl::DataLossError(absl::StrCat("malformed ", kind, " key ", HexEncode(key)));
}

template <typename T>
absl::Status ParseValue(absl::string_view kind, absl::string_view key, const rocksdb::Slice& value,
                        T* out) {
  if (out->ParseFromArray(value.data(), static_cast<int>(value.size()))) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat("corrupt ", kind, " record (key ", HexEncode(key), ")"));
}

/// Point lookup of a protobuf value (a `kind` record, for error messages): nullopt when absent,
/// DATA_LOSS when it does not parse.
template <typename T>
absl::StatusOr<std::optional<T>> GetValue(rocksdb::DB* db, const rocksdb::ReadOptions& ro,
                                          rocksdb::ColumnFamilyHandle* cf, absl::string_view kind,
                                          const std::string& key) {
  rocksdb::PinnableSlice value;
  const rocksdb::Status s = db->Get(ro, cf, key, &value);
  if (s.IsNotFound()) return std::optional<T>();
  AGENTD_RETURN_IF_ERROR(FromRocks(s, absl::StrCat("get ", kind)));
  T msg;
  AGENTD_RETURN_IF_ERROR(ParseValue(kind, key, value, &msg));
  return std::optional<T>(std::move(msg));
}

/// Read options that read from `snapshot` (null = the latest data).
inline rocksdb::ReadOptions AtSnapshot(const rocksdb::Snapshot* snapshot) {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  return ro;
}

inline absl::StatusOr<bool> KeyExists(rocksdb::DB* db, const rocksdb::ReadOptions& ro,
                                      rocksdb::ColumnFamilyHandle* cf, const std::string& key) {
  rocksdb::PinnableSlice value;
  const rocksdb::Status s = db->Get(ro, cf, key, &value);
  if (s.IsNotFound()) return false;
  AGENTD_RETURN_IF_ERROR(FromRocks(s, "get"));
  return true;
}

/// The WriteBatch of one logical operation. Put/Delete errors (there are none without a batch
/// size limit) are kept and returned by Commit().
class Batch {
 public:
  void Put(rocksdb::ColumnFamilyHandle* cf, const std::string& key,
           const google::protobuf::MessageLite& value) {
    Keep(batch_.Put(cf, key, value.SerializeAsString()));
  }
  /// A value that is not a protobuf message (the memory index's varint records).
  void PutBytes(rocksdb::ColumnFamilyHandle* cf, const std::string& key, absl::string_view value) {
    Keep(batch_.Put(cf, key, ToSlice(value)));
  }
  void Merge(rocksdb::ColumnFamilyHandle* cf, const std::string& key,
             const google::protobuf::MessageLite& operand) {
    Keep(batch_.Merge(cf, key, operand.SerializeAsString()));
  }
  /// An index entry: the key is the information, the value is empty.
  void PutEmpty(rocksdb::ColumnFamilyHandle* cf, const std::string& key) {
    Keep(batch_.Put(cf, key, rocksdb::Slice()));
  }
  void Delete(rocksdb::ColumnFamilyHandle* cf, const std::string& key) {
    Keep(batch_.Delete(cf, key));
  }
  void DeleteRange(rocksdb::ColumnFamilyHandle* cf, const std::string& begin,
                   const std::string& end) {
    Keep(batch_.DeleteRange(cf, begin, end));
  }
  /// Writes the batch: the one place where the store decides durability.
  absl::Status Commit(rocksdb::DB* db, Durability durability) {
    AGENTD_RETURN_IF_ERROR(status_);
    rocksdb::WriteOptions wo;
    // kSync: the WAL is fsynced before Write returns. Concurrent writers are group-committed by
    // RocksDB's write queue: the leader appends the whole group's batches to the WAL and fsyncs
    // once for all of them, so N writers waiting together pay about one fsync. kRelaxed: the
    // batch is written to the WAL (the OS page cache) without fsync; a process crash loses
    // nothing, a power loss may lose the newest acknowledged writes.
    wo.sync = durability == Durability::kSync;
    // kNone (testing only): no WAL at all; a kill -9 loses every write not yet flushed.
    wo.disableWAL = durability == Durability::kNone;
    return FromRocks(db->Write(wo, &batch_), "write");
  }

 private:
  void Keep(const rocksdb::Status& s) {
    if (status_.ok()) status_ = FromRocks(s, "batch");
  }
  rocksdb::WriteBatch batch_;
  absl::Status status_;
};

/// An iterator over the keys of `cf` that start with `prefix` (bounded by iterate_upper_bound).
class PrefixIterator {
 public:
  PrefixIterator(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const std::string& prefix,
                 rocksdb::ReadOptions ro = {})
      : upper_(schema::PrefixSuccessor(prefix)), upper_slice_(ToSlice(upper_)) {
    ro.iterate_upper_bound = &upper_slice_;
    it_.reset(db->NewIterator(ro, cf));
  }
  rocksdb::Iterator* operator->() const { return it_.get(); }

 private:
  const std::string upper_;
  const rocksdb::Slice upper_slice_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

/// The usage family's merge operator (schema::kUsageMergeOperatorName): operands and values are
/// serialized v1::Usage, added field by field (int64 fields saturate). When a value or operand
/// does not parse, the merge result is those bytes unchanged: the counter stays corrupt, reads
/// report DATA_LOSS, and flushes and compactions still succeed. Thread-safe, stateless.
std::shared_ptr<rocksdb::MergeOperator> NewUsageMergeOperator();

/// Adds a Merge of every delta to `batch`. Precondition: CheckUsageDeltas(deltas) is OK.
void MergeUsage(Batch* batch, rocksdb::ColumnFamilyHandle* usage_cf, const std::string& project_id,
                const std::vector<UsageDelta>& deltas);

/// The expiry index key of a session that has an expire_time.
inline std::string SessionExpiryKey(const std::string& project_id,
                                    const storage::SessionRecord& record) {
  return schema::ExpiryKey(schema::ExpiryKind::kSession,
                           schema::ExpiryKeyMicros(FromProto(record.session().expire_time())),
                           project_id, record.session().session_id());
}

/// Adds the session's expiry index entry to `batch` (nothing when it never expires).
inline void IndexExpiry(Batch* batch, rocksdb::ColumnFamilyHandle* expiry_cf,
                        const std::string& project_id, const storage::SessionRecord& record) {
  if (record.session().has_expire_time()) {
    batch->PutEmpty(expiry_cf, SessionExpiryKey(project_id, record));
  }
}

/// True when the session has an expire_time and it is at or before `now`.
inline bool IsExpired(const storage::SessionRecord& record, absl::Time now) {
  return record.session().has_expire_time() && FromProto(record.session().expire_time()) <= now;
}

/// Holds one or two lock stripes, taken in address order so that two holders of the same pair
/// never deadlock (the same stripe twice is taken once).
class StripeLock {
 public:
  explicit StripeLock(absl::Mutex* a, absl::Mutex* b = nullptr)
      : first_(b == nullptr || !std::less<absl::Mutex*>()(b, a) ? a : b),
        second_(b == nullptr || b == a ? nullptr : (first_ == a ? b : a)) {
    first_->Lock();
    if (second_ != nullptr) second_->Lock();
  }
  ~StripeLock() {
    if (second_ != nullptr) second_->Unlock();
    first_->Unlock();
  }
  StripeLock(const StripeLock&) = delete;
  StripeLock& operator=(const StripeLock&) = delete;

 private:
  absl::Mutex* const first_;
  absl::Mutex* const second_;
};

}  // namespace agentd::store::internal
