// RocksDbStore: removing sessions (DeleteSession, expiry) and old idempotency records.
//
// Expiry uses the `expiry` family, an index ordered by time (store/schema.h): a sweep seeks to
// the start of a kind and reads only the entries that are due, so its cost is proportional to
// what it removes, not to the number of sessions. The index is derived data: the session record
// (or idempotency record) it points to is checked before anything is removed, and an entry whose
// record is gone or has another time is dropped.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "store/rocksdb_store.h"
#include "store/rocksdb_util.h"

namespace agentd::store {
namespace {

using internal::Batch;
using internal::CheckIds;
using internal::FromRocks;
using internal::GetValue;
using internal::MalformedKey;
using internal::NotFound;
using internal::PrefixIterator;
using internal::ToView;
using schema::ColumnFamily;

/// Idempotency records removed per WriteBatch by the sweep.
constexpr size_t kSweepBatchRecords = 256;

/// Index entries per WriteBatch when an older data dir's index is built.
constexpr size_t kIndexBatchEntries = 10000;

/// Retries of RemoveSession when the session was replaced between its two reads.
constexpr int kRemoveAttempts = 8;

/// Calls `fn(key, parts)` for each expiry index entry of `kind` due at or before `micros`, in
/// time order, until `fn` returns false or an error. The iterator reads an implicit snapshot, so
/// `fn` may write.
template <typename Fn>
absl::Status ForEachDue(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, schema::ExpiryKind kind,
                        uint64_t micros, Fn&& fn) {
  const std::string end = micros == UINT64_MAX ? "" : schema::ExpiryTimeKey(kind, micros + 1);
  const std::string prefix(1, static_cast<char>(kind));
  const PrefixIterator it(db, cf, prefix);
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    const std::string key(ToView(it->key()));
    if (!end.empty() && key >= end) break;
    const auto parts = schema::DecodeExpiryKey(key);
    if (!parts || parts->kind != kind) return MalformedKey("expiry", key);
    AGENTD_ASSIGN_OR_RETURN(const bool more, fn(key, *parts));
    if (!more) break;
  }
  return FromRocks(it->status(), "scan expiry index");
}

}  // namespace

void RocksDbStore::StagePurge(Batch* batch, const std::string& project_id,
                              const std::string& session_id, const storage::SessionRecord* record) {
  // The session key is also the prefix of its events, idempotency and state keys.
  const std::string key = schema::SessionKey(project_id, session_id);
  const std::string end = schema::PrefixSuccessor(key);
  batch->Delete(Cf(ColumnFamily::kSessions), key);
  batch->DeleteRange(Cf(ColumnFamily::kEvents), key, end);
  batch->DeleteRange(Cf(ColumnFamily::kIdempotency), key, end);
  batch->DeleteRange(Cf(ColumnFamily::kState), key, end);
  if (record != nullptr && record->session().has_expire_time()) {
    batch->Delete(Cf(ColumnFamily::kExpiry), internal::SessionExpiryKey(project_id, *record));
  }
  // The idempotency index entries are left to the idempotency sweep (they are ordered by time,
  // not by session), which drops entries whose record is gone.
}

absl::StatusOr<RocksDbStore::Removal> RocksDbStore::RemoveSession(const std::string& project_id,
                                                                  const std::string& session_id,
                                                                  RemoveMode mode, absl::Time now) {
  const std::string key = schema::SessionKey(project_id, session_id);
  rocksdb::ColumnFamilyHandle* sessions = Cf(ColumnFamily::kSessions);
  auto read = [&]() {
    return GetValue<storage::SessionRecord>(db_.get(), {}, sessions, "session", key);
  };
  // A fork's parent link is fixed at creation: read it, then take both stripes and read again.
  auto linked_parent = [](const storage::SessionRecord& r) {
    return r.session().fork_seq() > 0 ? r.session().parent_session_id() : std::string();
  };
  for (int attempt = 0; attempt < kRemoveAttempts; ++attempt) {
    absl::StatusOr<std::optional<storage::SessionRecord>> first = read();
    std::string parent_id;
    if (first.ok() && first->has_value()) parent_id = linked_parent(**first);
    internal::StripeLock lock(&StripeFor(project_id, session_id),
                              parent_id.empty() ? nullptr : &StripeFor(project_id, parent_id));
    absl::StatusOr<std::optional<storage::SessionRecord>> current = read();
    if (absl::IsDataLoss(current.status()) && mode == RemoveMode::kDelete) {
      // A corrupt record can still be deleted; its links and index entry are unknown.
      Batch batch;
      StagePurge(&batch, project_id, session_id, nullptr);
      AGENTD_RETURN_IF_ERROR(batch.Commit(db_.get(), options_.durability));
      return Removal{true, ""};
    }
    AGENTD_RETURN_IF_ERROR(current.status());
    const bool expired = current->has_value() && internal::IsExpired(**current, now);
    if (!current->has_value() || (mode == RemoveMode::kDelete && expired)) {
      if (mode == RemoveMode::kExpired) return Removal{};
      return NotFound("session", session_id);
    }
    const storage::SessionRecord& record = **current;
    if (linked_parent(record) != parent_id) continue;  // replaced meanwhile: lock the new parent
    if (mode == RemoveMode::kExpired && !expired) return Removal{};
    // A fork is linked and unlinked under this session's stripe, which is held: a listed fork
    // whose record is gone (removed while corrupt) no longer counts.
    std::vector<std::string> forks;
    for (const std::string& fork : record.fork_ids()) {
      AGENTD_ASSIGN_OR_RETURN(
          const bool exists,
          internal::KeyExists(db_.get(), {}, sessions, schema::SessionKey(project_id, fork)));
      if (exists) forks.push_back(fork);
    }
    if (!forks.empty()) {
      if (mode == RemoveMode::kExpired) return Removal{};
      const size_t shown = std::min<size_t>(forks.size(), 5);
      return absl::FailedPreconditionError(absl::StrCat(
          "session ", session_id, " has ", forks.size(), " fork(s) that read its events (",
          absl::StrJoin(forks.begin(), forks.begin() + shown, ", "),
          forks.size() > shown ? ", ..." : "", "); delete them first"));
    }
    Batch batch;
    StagePurge(&batch, project_id, session_id, &record);
    if (!parent_id.empty()) {
      const std::string parent_key = schema::SessionKey(project_id, parent_id);
      AGENTD_ASSIGN_OR_RETURN(
          std::optional<storage::SessionRecord> parent,
          GetValue<storage::SessionRecord>(db_.get(), {}, sessions, "session", parent_key));
      if (parent.has_value()) {
        auto* forks = parent->mutable_fork_ids();
        forks->erase(std::remove(forks->begin(), forks->end(), session_id), forks->end());
        batch.Put(sessions, parent_key, *parent);  // same revision: see ForkSession
      }
    }
    AGENTD_RETURN_IF_ERROR(batch.Commit(db_.get(), options_.durability));
    return Removal{true, parent_id};
  }
  return absl::AbortedError(
      absl::StrCat("session ", session_id, " kept changing while it was being removed; retry"));
}

absl::Status RocksDbStore::ClearExpiredId(const std::string& project_id,
                                          const std::string& session_id) {
  const absl::Time now = absl::Now();
  AGENTD_ASSIGN_OR_RETURN(
      const std::optional<storage::SessionRecord> record,
      GetValue<storage::SessionRecord>(db_.get(), {}, Cf(ColumnFamily::kSessions), "session",
                                       schema::SessionKey(project_id, session_id)));
  if (!record.has_value() || !internal::IsExpired(*record, now)) return absl::OkStatus();
  return RemoveSession(project_id, session_id, RemoveMode::kExpired, now).status();
}

absl::Status RocksDbStore::DeleteSession(const std::string& project_id,
                                         const std::string& session_id) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", session_id));
  absl::StatusOr<Removal> removal =
      RemoveSession(project_id, session_id, RemoveMode::kDelete, absl::Now());
  if (!absl::IsFailedPrecondition(removal.status())) return removal.status();
  // Forks that expired but are not swept yet do not hold the session: remove them, then retry.
  AGENTD_ASSIGN_OR_RETURN(
      const std::optional<storage::SessionRecord> record,
      GetValue<storage::SessionRecord>(db_.get(), {}, Cf(ColumnFamily::kSessions), "session",
                                       schema::SessionKey(project_id, session_id)));
  if (!record.has_value()) return removal.status();
  for (const std::string& fork : record->fork_ids()) {
    const absl::Status cleared = ClearExpiredId(project_id, fork);
    if (!cleared.ok() && !absl::IsDataLoss(cleared)) return cleared;  // a corrupt fork still holds
  }
  return RemoveSession(project_id, session_id, RemoveMode::kDelete, absl::Now()).status();
}

absl::StatusOr<int64_t> RocksDbStore::DeleteExpiredSessions(absl::Time now, int64_t max) {
  if (max <= 0) return absl::InvalidArgumentError("max must be > 0");
  int64_t removed = 0;
  rocksdb::ColumnFamilyHandle* index = Cf(ColumnFamily::kExpiry);
  AGENTD_RETURN_IF_ERROR(ForEachDue(
      db_.get(), index, schema::ExpiryKind::kSession, schema::ExpiryKeyMicros(now),
      [&](const std::string& entry, const schema::ExpiryKeyParts& parts) -> absl::StatusOr<bool> {
        const std::string project_id(parts.project_id);
        const std::string session_id(parts.session_id);
        absl::StatusOr<std::optional<storage::SessionRecord>> record =
            GetValue<storage::SessionRecord>(db_.get(), {}, Cf(ColumnFamily::kSessions), "session",
                                             schema::SessionKey(project_id, session_id));
        if (absl::IsDataLoss(record.status())) return true;  // DeleteSession can remove it
        AGENTD_RETURN_IF_ERROR(record.status());
        if (!record->has_value() || !(*record)->session().has_expire_time() ||
            internal::SessionExpiryKey(project_id, **record) != entry) {
          Batch stale;  // the session is gone, or this id now names another session
          stale.Delete(index, entry);
          AGENTD_RETURN_IF_ERROR(stale.Commit(db_.get(), options_.durability));
          return true;
        }
        // A removed fork may have been the last one holding its expired parent: retry up the
        // chain at once.
        std::string next = session_id;
        while (!next.empty() && removed < max) {
          AGENTD_ASSIGN_OR_RETURN(const Removal r,
                                  RemoveSession(project_id, next, RemoveMode::kExpired, now));
          if (!r.removed) break;
          ++removed;
          next = r.parent_id;
        }
        return removed < max;
      }));
  const absl::Time cutoff = now - options_.idempotency_retention;
  AGENTD_RETURN_IF_ERROR(SweepIdempotency(cutoff, max).status());
  return removed;
}

absl::Status RocksDbStore::EnsureExpiryIndex() {
  const std::string marker_key(schema::kExpiryIndexKey);
  rocksdb::ColumnFamilyHandle* meta = Cf(ColumnFamily::kMeta);
  AGENTD_ASSIGN_OR_RETURN(
      const std::optional<storage::FormatInfo> marker,
      GetValue<storage::FormatInfo>(db_.get(), {}, meta, "expiry index marker", marker_key));
  if (marker.has_value()) return absl::OkStatus();
  // Entries are idempotent Puts: committed in pieces, the marker last.
  rocksdb::ColumnFamilyHandle* index = Cf(ColumnFamily::kExpiry);
  auto batch = std::make_unique<Batch>();
  size_t staged = 0;
  auto stage = [&](const std::string& key) -> absl::Status {
    batch->PutEmpty(index, key);
    if (++staged < kIndexBatchEntries) return absl::OkStatus();
    AGENTD_RETURN_IF_ERROR(batch->Commit(db_.get(), options_.durability));
    batch = std::make_unique<Batch>();
    staged = 0;
    return absl::OkStatus();
  };
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, Cf(ColumnFamily::kSessions)));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const auto parts = schema::DecodeSessionKey(ToView(it->key()));
      storage::SessionRecord record;
      if (!parts || !record.ParseFromArray(it->value().data(), it->value().size())) continue;
      if (record.session().has_expire_time()) {
        AGENTD_RETURN_IF_ERROR(
            stage(internal::SessionExpiryKey(std::string(parts->project_id), record)));
      }
    }
    AGENTD_RETURN_IF_ERROR(FromRocks(it->status(), "index sessions"));
  }
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator({}, Cf(ColumnFamily::kIdempotency)));
    const absl::Time now = absl::Now();
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const auto parts = schema::DecodeIdempotencyKey(ToView(it->key()));
      storage::IdempotencyRecord record;
      if (!parts || !record.ParseFromArray(it->value().data(), it->value().size())) continue;
      const absl::Time created = record.has_create_time() ? FromProto(record.create_time()) : now;
      AGENTD_RETURN_IF_ERROR(stage(
          schema::ExpiryKey(schema::ExpiryKind::kIdempotency, schema::ExpiryKeyMicros(created),
                            parts->project_id, parts->session_id, parts->key)));
    }
    AGENTD_RETURN_IF_ERROR(FromRocks(it->status(), "index idempotency records"));
  }
  storage::FormatInfo done;
  done.set_version(schema::kExpiryIndexVersion);
  done.set_written_by("agentd");
  batch->Put(meta, marker_key, done);
  return batch->Commit(db_.get(), Durability::kSync);
}

absl::StatusOr<int64_t> RocksDbStore::SweepIdempotency(absl::Time cutoff, int64_t max) {
  // No lock: an idempotency record is written once per key (a retry is answered from it), so a
  // key is written again only after its record is gone; a record written again under the same
  // key has its own, newer index entry, and the create_time check below keeps it.
  rocksdb::ColumnFamilyHandle* index = Cf(ColumnFamily::kExpiry);
  rocksdb::ColumnFamilyHandle* records = Cf(ColumnFamily::kIdempotency);
  int64_t removed = 0;
  size_t staged = 0;
  auto batch = std::make_unique<Batch>();
  AGENTD_RETURN_IF_ERROR(ForEachDue(
      db_.get(), index, schema::ExpiryKind::kIdempotency, schema::ExpiryKeyMicros(cutoff),
      [&](const std::string& entry, const schema::ExpiryKeyParts& parts) -> absl::StatusOr<bool> {
        const std::string key =
            schema::IdempotencyKey(parts.project_id, parts.session_id, parts.tail);
        absl::StatusOr<std::optional<storage::IdempotencyRecord>> record =
            GetValue<storage::IdempotencyRecord>(db_.get(), {}, records, "idempotency", key);
        const bool same =
            record.ok() && record->has_value() &&
            (!(*record)->has_create_time() ||
             schema::ExpiryKeyMicros(FromProto((*record)->create_time())) == parts.micros);
        // A corrupt record is removed too: it can only fail every retry that reads it.
        if (same || absl::IsDataLoss(record.status())) {
          batch->Delete(records, key);
          ++removed;
        } else {
          AGENTD_RETURN_IF_ERROR(record.status());
        }
        batch->Delete(index, entry);
        if (++staged == kSweepBatchRecords) {
          AGENTD_RETURN_IF_ERROR(batch->Commit(db_.get(), options_.durability));
          batch = std::make_unique<Batch>();
          staged = 0;
        }
        return removed < max;
      }));
  if (staged > 0) AGENTD_RETURN_IF_ERROR(batch->Commit(db_.get(), options_.durability));
  return removed;
}

}  // namespace agentd::store
