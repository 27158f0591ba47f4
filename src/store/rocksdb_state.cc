// RocksDbStore: per-session tool state (family `state`), forks (ForkSession, and ReadEvents,
// which follows a fork's chain of parents) and the live-session check every read path shares.
// Keys: store/schema.h, "Tool state and the expiry index".
#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "rocksdb/snapshot.h"
#include "store/rocksdb_store.h"
#include "store/rocksdb_util.h"

namespace agentd::store {
namespace {

using internal::AtSnapshot;
using internal::Batch;
using internal::CheckId;
using internal::CheckIds;
using internal::CheckStateKey;
using internal::FromRocks;
using internal::GetValue;
using internal::MalformedKey;
using internal::NotFound;
using internal::ParseValue;
using internal::PrefixIterator;
using internal::ToView;
using schema::ColumnFamily;

/// Longest chain of forks ReadEvents follows; a longer one can only be a corrupt cycle.
constexpr int kMaxForkDepth = 10000;

/// The part of one session's own events that a reader of the chain sees: seq in [first, last].
struct Segment {
  std::string session_id;
  uint64_t first = 1;
  uint64_t last = std::numeric_limits<uint64_t>::max();
};

}  // namespace

absl::StatusOr<storage::SessionRecord> RocksDbStore::GetLiveSession(
    const std::string& project_id, const std::string& session_id, absl::Time now,
    const rocksdb::Snapshot* snapshot) {
  AGENTD_ASSIGN_OR_RETURN(
      std::optional<storage::SessionRecord> record,
      GetValue<storage::SessionRecord>(db_.get(), AtSnapshot(snapshot), Cf(ColumnFamily::kSessions),
                                       "session", schema::SessionKey(project_id, session_id)));
  if (!record.has_value() || internal::IsExpired(*record, now)) {
    return NotFound("session", session_id);
  }
  return *std::move(record);
}

absl::StatusOr<std::vector<v1::StateEntry>> RocksDbStore::StageStateMutations(
    Batch* batch, const std::string& project_id, const std::string& session_id,
    const std::vector<StateMutation>& mutations) {
  std::vector<v1::StateEntry> written;
  written.reserve(mutations.size());
  for (const StateMutation& m : mutations) {
    const std::string key = schema::StateKey(project_id, session_id, m.key);
    int64_t current = 0;
    // A key written earlier in this call: its new version is what the next mutation sees.
    const auto earlier = std::find_if(written.rbegin(), written.rend(),
                                      [&](const v1::StateEntry& e) { return e.key() == m.key; });
    if (earlier != written.rend()) {
      current = earlier->version();
    } else {
      AGENTD_ASSIGN_OR_RETURN(
          std::optional<v1::StateEntry> stored,
          GetValue<v1::StateEntry>(db_.get(), {}, Cf(ColumnFamily::kState), "state", key));
      if (stored.has_value()) current = stored->version();
    }
    AGENTD_ASSIGN_OR_RETURN(v1::StateEntry next, internal::NextStateEntry(session_id, m, current));
    v1::StateEntry& entry = written.emplace_back(std::move(next));
    batch->Put(Cf(ColumnFamily::kState), key, entry);
  }
  return written;
}

absl::StatusOr<v1::StateEntry> RocksDbStore::GetState(const std::string& project_id,
                                                      const std::string& session_id,
                                                      const std::string& key) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", session_id));
  AGENTD_RETURN_IF_ERROR(CheckStateKey(key));
  rocksdb::ManagedSnapshot snapshot(db_.get());
  AGENTD_RETURN_IF_ERROR(
      GetLiveSession(project_id, session_id, absl::Now(), snapshot.snapshot()).status());
  AGENTD_ASSIGN_OR_RETURN(
      std::optional<v1::StateEntry> entry,
      GetValue<v1::StateEntry>(db_.get(), AtSnapshot(snapshot.snapshot()), Cf(ColumnFamily::kState),
                               "state", schema::StateKey(project_id, session_id, key)));
  if (!entry.has_value()) {
    return absl::NotFoundError(
        absl::StrCat("state key \"", key, "\" of session ", session_id, " not found"));
  }
  return *std::move(entry);
}

absl::StatusOr<std::vector<v1::StateEntry>> RocksDbStore::ListState(const std::string& project_id,
                                                                    const std::string& session_id) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", session_id));
  rocksdb::ManagedSnapshot snapshot(db_.get());
  AGENTD_RETURN_IF_ERROR(
      GetLiveSession(project_id, session_id, absl::Now(), snapshot.snapshot()).status());
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.snapshot();
  const std::string prefix = schema::SessionKey(project_id, session_id);
  const PrefixIterator it(db_.get(), Cf(ColumnFamily::kState), prefix, ro);
  std::vector<v1::StateEntry> entries;
  for (it->Seek(prefix); it->Valid(); it->Next()) {
    const auto parts = schema::DecodeStateKey(ToView(it->key()));
    if (!parts || parts->project_id != project_id || parts->session_id != session_id) {
      return MalformedKey("state", ToView(it->key()));
    }
    AGENTD_RETURN_IF_ERROR(
        ParseValue("state", ToView(it->key()), it->value(), &entries.emplace_back()));
  }
  AGENTD_RETURN_IF_ERROR(FromRocks(it->status(), "list state"));
  return entries;
}

absl::StatusOr<v1::StateEntry> RocksDbStore::PutState(const std::string& project_id,
                                                      const std::string& session_id,
                                                      const StateMutation& mutation) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", session_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckStateMutations({mutation}));
  // The session's stripe: atomic against CommitSessionWrite's state changes. The session
  // record is not rewritten, so a turn in flight keeps its revision.
  absl::MutexLock lock(&StripeFor(project_id, session_id));
  AGENTD_RETURN_IF_ERROR(GetLiveSession(project_id, session_id, absl::Now()).status());
  Batch batch;
  AGENTD_ASSIGN_OR_RETURN(std::vector<v1::StateEntry> written,
                          StageStateMutations(&batch, project_id, session_id, {mutation}));
  AGENTD_RETURN_IF_ERROR(batch.Commit(db_.get(), options_.durability));
  return std::move(written.front());
}

// ---- Forks -------------------------------------------------------------------------------

absl::Status RocksDbStore::ForkSession(const std::string& project_id,
                                       const storage::SessionRecord& child) {
  AGENTD_RETURN_IF_ERROR(internal::CheckFork(project_id, child));
  const v1::Session& cs = child.session();
  const std::string& child_id = cs.session_id();
  const std::string& parent_id = cs.parent_session_id();
  AGENTD_RETURN_IF_ERROR(ClearExpiredId(project_id, child_id));

  internal::StripeLock lock(&StripeFor(project_id, parent_id), &StripeFor(project_id, child_id));
  AGENTD_ASSIGN_OR_RETURN(storage::SessionRecord parent,
                          GetLiveSession(project_id, parent_id, absl::Now()));
  if (cs.fork_seq() > parent.session().last_seq()) {
    return absl::InvalidArgumentError(absl::StrCat("fork_seq ", cs.fork_seq(),
                                                   " is past the last seq of session ", parent_id,
                                                   " (", parent.session().last_seq(), ")"));
  }
  const std::string child_key = schema::SessionKey(project_id, child_id);
  AGENTD_ASSIGN_OR_RETURN(
      const bool exists,
      internal::KeyExists(db_.get(), {}, Cf(ColumnFamily::kSessions), child_key));
  if (exists) {
    return absl::AlreadyExistsError(absl::StrCat("session ", child_id, " already exists"));
  }

  Batch batch;
  storage::SessionRecord stored = child;
  stored.set_revision(1);
  stored.clear_fork_ids();
  stored.mutable_session()->set_last_seq(cs.fork_seq());
  batch.Put(Cf(ColumnFamily::kSessions), child_key, stored);
  internal::IndexExpiry(&batch, Cf(ColumnFamily::kExpiry), project_id, stored);
  // The parent's state, as it is now (both stripes are held: no write can interleave).
  const std::string parent_prefix = schema::SessionKey(project_id, parent_id);
  const PrefixIterator it(db_.get(), Cf(ColumnFamily::kState), parent_prefix);
  for (it->Seek(parent_prefix); it->Valid(); it->Next()) {
    const auto parts = schema::DecodeStateKey(ToView(it->key()));
    if (!parts || parts->project_id != project_id || parts->session_id != parent_id) {
      return MalformedKey("state", ToView(it->key()));
    }
    v1::StateEntry entry;
    AGENTD_RETURN_IF_ERROR(ParseValue("state", ToView(it->key()), it->value(), &entry));
    batch.Put(Cf(ColumnFamily::kState), schema::StateKey(project_id, child_id, parts->key), entry);
  }
  AGENTD_RETURN_IF_ERROR(FromRocks(it->status(), "copy state"));
  // Only a fork that reads the parent's events keeps the parent alive. The parent's revision
  // stays: fork_ids are not part of what its turns compare-and-set.
  if (cs.fork_seq() > 0) {
    parent.add_fork_ids(child_id);
    batch.Put(Cf(ColumnFamily::kSessions), parent_prefix, parent);
  }
  return batch.Commit(db_.get(), options_.durability);
}

absl::StatusOr<std::vector<v1::Event>> RocksDbStore::ReadEvents(const std::string& project_id,
                                                                const std::string& session_id,
                                                                int64_t after_seq, int32_t limit) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", session_id));
  if (limit <= 0) return absl::InvalidArgumentError("limit must be > 0");
  rocksdb::ManagedSnapshot snapshot(db_.get());
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.snapshot();
  AGENTD_ASSIGN_OR_RETURN(storage::SessionRecord record,
                          GetLiveSession(project_id, session_id, absl::Now(), ro.snapshot));
  std::vector<v1::Event> events;
  if (after_seq == std::numeric_limits<int64_t>::max()) return events;

  // The log of a fork is its ancestors' events up to the fork points, then its own; walk up the
  // chain (newest first) and read the segments oldest first. An ancestor that has expired is
  // still read: the store keeps it while this fork exists.
  std::vector<Segment> segments;
  segments.push_back({session_id, static_cast<uint64_t>(record.session().fork_seq()) + 1});
  uint64_t bound = static_cast<uint64_t>(record.session().fork_seq());
  for (int depth = 0; bound > 0 && !record.session().parent_session_id().empty(); ++depth) {
    const std::string parent_id = record.session().parent_session_id();
    if (depth >= kMaxForkDepth || !schema::IsValidKeyComponent(parent_id)) {
      return absl::DataLossError(
          absl::StrCat("session ", session_id, " has a corrupt chain of parents"));
    }
    AGENTD_ASSIGN_OR_RETURN(
        std::optional<storage::SessionRecord> parent,
        GetValue<storage::SessionRecord>(db_.get(), ro, Cf(ColumnFamily::kSessions), "session",
                                         schema::SessionKey(project_id, parent_id)));
    if (!parent.has_value()) {
      return absl::DataLossError(absl::StrCat("session ", session_id, " reads events of session ",
                                              parent_id, ", which is missing"));
    }
    const uint64_t parent_fork = static_cast<uint64_t>(parent->session().fork_seq());
    if (parent_fork < bound) segments.push_back({parent_id, parent_fork + 1, bound});
    bound = std::min(bound, parent_fork);
    record = *std::move(parent);
  }

  const uint64_t first = after_seq < 0 ? 1 : static_cast<uint64_t>(after_seq) + 1;
  events.reserve(static_cast<size_t>(std::min(limit, 1024)));
  for (auto seg = segments.rbegin(); seg != segments.rend(); ++seg) {
    if (events.size() >= static_cast<size_t>(limit)) break;
    if (seg->last < first) continue;
    const PrefixIterator it(db_.get(), Cf(ColumnFamily::kEvents),
                            schema::SessionKey(project_id, seg->session_id), ro);
    for (it->Seek(schema::EventKey(project_id, seg->session_id, std::max(first, seg->first)));
         it->Valid() && events.size() < static_cast<size_t>(limit); it->Next()) {
      const auto parts = schema::DecodeEventKey(ToView(it->key()));
      if (!parts || parts->project_id != project_id || parts->session_id != seg->session_id) {
        return MalformedKey("events", ToView(it->key()));
      }
      if (parts->seq > seg->last) break;
      v1::Event& event = events.emplace_back();
      AGENTD_RETURN_IF_ERROR(ParseValue("event", ToView(it->key()), it->value(), &event));
      if (seg->session_id != session_id) event.set_session_id(session_id);
    }
    AGENTD_RETURN_IF_ERROR(FromRocks(it->status(), "read events"));
  }
  return events;
}

}  // namespace agentd::store
