// Internal helpers of RocksDbStore (not part of the store interface): Slice/string_view
// conversion, RocksDB → absl status mapping, the one-WriteBatch-per-operation wrapper (where
// durability is decided) and a prefix-bounded iterator. Include only from src/store/*.cc.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/status_macros.h"
#include "google/protobuf/message_lite.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/write_batch.h"
#include "store/context_store.h"
#include "store/schema.h"

namespace agentd::store::internal {

inline absl::string_view ToView(const rocksdb::Slice& s) { return absl::string_view(s.data(), s.size()); }
inline rocksdb::Slice ToSlice(absl::string_view s) { return rocksdb::Slice(s.data(), s.size()); }

inline absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  std::string msg = absl::StrCat("rocksdb ", what, ": ", s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(msg);
  if (s.IsNoSpace()) return absl::ResourceExhaustedError(msg);
  if (s.IsBusy() || s.IsTimedOut() || s.IsTryAgain()) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

/// The WriteBatch of one logical operation. Put/Delete errors (there are none without a batch
/// size limit) are kept and returned by Commit().
class Batch {
 public:
  void Put(rocksdb::ColumnFamilyHandle* cf, const std::string& key,
           const google::protobuf::MessageLite& value) {
    Keep(batch_.Put(cf, key, value.SerializeAsString()));
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

}  // namespace agentd::store::internal
