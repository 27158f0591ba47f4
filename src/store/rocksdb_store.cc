#include "store/rocksdb_store.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/snapshot.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "store/rocksdb_util.h"

namespace agentd::store {
namespace {

using internal::Batch;
using internal::CheckId;
using internal::CheckIds;
using internal::DecodePageToken;
using internal::FromRocks;
using internal::KeyExists;
using internal::MalformedKey;
using internal::NormalizePageSize;
using internal::NotFound;
using internal::ParseValue;
using internal::PrefixIterator;
using internal::ToView;

using schema::ColumnFamily;

constexpr size_t kWriteBufferBytes = 64 << 20;       // per column family memtable
constexpr size_t kAllWriteBuffersBytes = 256 << 20;  // cap over all memtables
constexpr uint64_t kMaxTotalWalBytes = 256 << 20;    // bounds WAL disk use and replay time
constexpr size_t kBlockCacheBytes = 64 << 20;

/// Where a page of a project's agents or sessions starts: after the id in the token, if any.
absl::StatusOr<std::string> PageStart(const std::string& project_id, const std::string& token) {
  if (token.empty()) return schema::ProjectPrefix(project_id);
  AGENTD_ASSIGN_OR_RETURN(const std::string last_id, DecodePageToken(token));
  return schema::PrefixSuccessor(schema::EntityPrefix(project_id, last_id));
}

rocksdb::DBOptions MakeDbOptions() {
  rocksdb::DBOptions o;
  o.create_if_missing = true;
  o.create_missing_column_families = true;
  o.max_background_jobs = 2;
  o.db_write_buffer_size = kAllWriteBuffersBytes;
  // A rarely written family (meta) would otherwise pin old WAL files until the default limit of
  // 4x all write buffers (GiBs); past this size RocksDB flushes the families holding them.
  o.max_total_wal_size = kMaxTotalWalBytes;
  // Reusing WAL files would let a synced append skip the file-size metadata update of a growing
  // file. RocksDB 7.8 turns this off (sanitizes it to 0) under kPointInTimeRecovery, the recovery
  // mode kept here: the one mode that keeps recycling, kSkipAnyCorruptedRecords, may drop
  // acknowledged writes from the middle of the log. It takes effect if a later RocksDB lifts that.
  o.recycle_log_file_num = 4;
  return o;
}

rocksdb::ColumnFamilyOptions MakeCfOptions(std::shared_ptr<rocksdb::Cache> block_cache) {
  rocksdb::BlockBasedTableOptions table;
  // Most reads are point lookups (session record, agent head, idempotency key).
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  table.block_cache = std::move(block_cache);
  rocksdb::ColumnFamilyOptions o;
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  o.compression = rocksdb::kLZ4Compression;
  o.write_buffer_size = kWriteBufferBytes;
  return o;
}

absl::Status OpenError(const std::string& path, const rocksdb::Status& s) {
  const std::string detail = s.ToString();
  if (s.IsIOError() && absl::StrContains(detail, "/LOCK")) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", path, " is in use by another agentd process (", detail, ")"));
  }
  if (s.IsIOError() && absl::StrContains(detail, "Permission denied")) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", path, " is not writable (", detail, ")"));
  }
  return FromRocks(s, absl::StrCat("open ", path));
}

}  // namespace

RocksDbStore::RocksDbStore(RocksDbStoreOptions options) : options_(std::move(options)) {}

template <typename T>
absl::StatusOr<std::optional<T>> RocksDbStore::Get(ColumnFamily cf, absl::string_view kind,
                                                   const std::string& key,
                                                   const rocksdb::Snapshot* snapshot) {
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot;
  return internal::GetValue<T>(db_.get(), ro, Cf(cf), kind, key);
}

RocksDbStore::~RocksDbStore() {
  if (db_ == nullptr) return;
  for (rocksdb::ColumnFamilyHandle* h : handles_) {
    (void)db_->DestroyColumnFamilyHandle(h);
  }
  handles_.clear();
  (void)db_->Close();  // nothing to do about an error here; the WAL has every acknowledged write
  db_.reset();
}

absl::StatusOr<std::unique_ptr<RocksDbStore>> RocksDbStore::Open(
    const RocksDbStoreOptions& options) {
  const std::string& path = options.path;
  if (path.empty()) return absl::InvalidArgumentError("data dir path is empty");
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create data dir ", path, ": ", ec.message()));
  }
  if (!std::filesystem::is_directory(path, ec)) {
    return absl::FailedPreconditionError(absl::StrCat("data dir ", path, " is not a directory"));
  }
  if (::access(path.c_str(), W_OK | X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", path, " is not writable: ", std::strerror(errno)));
  }

  rocksdb::DBOptions db_options = MakeDbOptions();
  if (options.env != nullptr) db_options.env = options.env.get();
  const rocksdb::ColumnFamilyOptions cf_options =
      MakeCfOptions(rocksdb::NewLRUCache(kBlockCacheBytes));
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  descriptors.reserve(schema::kColumnFamilies.size());
  for (const schema::ColumnFamilyInfo& info : schema::kColumnFamilies) {
    descriptors.emplace_back(info.name, cf_options);
  }
  // Usage counters are only ever written by Merge (no read-modify-write on the hot path).
  descriptors[schema::Index(ColumnFamily::kUsage)].options.merge_operator =
      internal::NewUsageMergeOperator();
  // Families of the schema missing from an existing data dir (one written before they were
  // added) are created by create_missing_column_families. RocksDB refuses to open a database
  // without naming all its column families: open the ones a newer format may have added too, so
  // that the format check below reports the real problem.
  std::vector<std::string> existing;
  if (rocksdb::DB::ListColumnFamilies(db_options, path, &existing).ok()) {
    for (const std::string& name : existing) {
      const bool known = std::any_of(descriptors.begin(), descriptors.end(),
                                     [&](const auto& d) { return d.name == name; });
      if (!known) descriptors.emplace_back(name, cf_options);
    }
  }

  std::unique_ptr<RocksDbStore> store(new RocksDbStore(options));
  rocksdb::DB* db = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(db_options, path, descriptors, &store->handles_, &db);
  if (!s.ok()) return OpenError(path, s);
  store->db_.reset(db);
  AGENTD_RETURN_IF_ERROR(store->CheckFormat());
  AGENTD_RETURN_IF_ERROR(store->EnsureExpiryIndex());
  return store;
}

absl::Status RocksDbStore::CheckFormat() {
  const std::string key(schema::kFormatKey);
  AGENTD_ASSIGN_OR_RETURN(std::optional<storage::FormatInfo> info,
                          Get<storage::FormatInfo>(ColumnFamily::kMeta, "format", key));
  if (!info.has_value()) {
    storage::FormatInfo fresh;
    fresh.set_version(schema::kFormatVersion);
    fresh.set_written_by("agentd");
    Batch batch;
    batch.Put(Cf(ColumnFamily::kMeta), key, fresh);
    return batch.Commit(db_.get(), Durability::kSync);
  }
  if (info->version() > schema::kFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir format ", info->version(), " is newer than this agentd supports (",
                     schema::kFormatVersion, "): ", options_.path));
  }
  if (info->version() < 1) {
    return absl::DataLossError(absl::StrCat("data dir ", options_.path,
                                            " has an invalid format version ", info->version()));
  }
  return absl::OkStatus();
}

absl::Mutex& RocksDbStore::StripeFor(absl::string_view project_id, absl::string_view id) {
  // FNV-1a over lp(project) lp(id).
  uint64_t h = 14695981039346656037ull;
  auto mix = [&h](absl::string_view s) {
    h = (h ^ s.size()) * 1099511628211ull;
    for (const char c : s) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
  };
  mix(project_id);
  mix(id);
  return stripes_[h % kLockStripes];
}

// ---- Agents ------------------------------------------------------------------------------

absl::Status RocksDbStore::PutAgentVersion(const std::string& project_id, const v1::Agent& agent,
                                           int64_t expected_latest_version) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "agent_id", agent.agent_id()));
  if (expected_latest_version < 0 || agent.version() <= expected_latest_version) {
    return absl::InvalidArgumentError(absl::StrCat("agent version ", agent.version(),
                                                   " must be > 0 and > the expected latest ",
                                                   "version ", expected_latest_version));
  }
  const std::string& agent_id = agent.agent_id();
  const std::string head_key = schema::AgentHeadKey(project_id, agent_id);
  absl::MutexLock lock(&StripeFor(project_id, agent_id));
  AGENTD_ASSIGN_OR_RETURN(std::optional<storage::AgentHead> head,
                          Get<storage::AgentHead>(ColumnFamily::kAgents, "agent head", head_key));
  storage::AgentHead next;
  if (expected_latest_version == 0) {
    if (head.has_value()) {
      return absl::AlreadyExistsError(absl::StrCat("agent ", agent_id, " already exists"));
    }
    *next.mutable_create_time() = agent.has_create_time() ? agent.create_time() : NowProto();
  } else {
    if (!head.has_value() || head->deleted()) {
      return NotFound("agent", agent_id);
    }
    if (head->latest_version() != expected_latest_version) {
      return absl::AbortedError(absl::StrCat("agent ", agent_id, " is at version ",
                                             head->latest_version(), ", not ",
                                             expected_latest_version));
    }
    next = *head;
  }
  next.set_latest_version(agent.version());
  Batch batch;
  rocksdb::ColumnFamilyHandle* cf = Cf(ColumnFamily::kAgents);
  batch.Put(cf, schema::AgentKey(project_id, agent_id, static_cast<uint64_t>(agent.version())),
            agent);
  batch.Put(cf, head_key, next);
  return batch.Commit(db_.get(), options_.durability);
}

absl::StatusOr<v1::Agent> RocksDbStore::GetAgent(const std::string& project_id,
                                                 const std::string& agent_id, int64_t version,
                                                 bool include_deleted) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "agent_id", agent_id));
  if (version < 0) return absl::InvalidArgumentError("agent version must be >= 0");
  rocksdb::ManagedSnapshot snapshot(db_.get());
  AGENTD_ASSIGN_OR_RETURN(
      std::optional<storage::AgentHead> head,
      Get<storage::AgentHead>(ColumnFamily::kAgents, "agent head",
                              schema::AgentHeadKey(project_id, agent_id), snapshot.snapshot()));
  if (!head.has_value() || (head->deleted() && !include_deleted)) {
    return NotFound("agent", agent_id);
  }
  const int64_t wanted = version == 0 ? head->latest_version() : version;
  std::optional<v1::Agent> agent;
  if (wanted <= head->latest_version()) {
    const std::string key = schema::AgentKey(project_id, agent_id, static_cast<uint64_t>(wanted));
    AGENTD_ASSIGN_OR_RETURN(
        agent, Get<v1::Agent>(ColumnFamily::kAgents, "agent", key, snapshot.snapshot()));
  }
  if (!agent.has_value()) {
    return absl::NotFoundError(absl::StrCat("agent ", agent_id, " version ", wanted, " not found"));
  }
  return *std::move(agent);
}

absl::StatusOr<AgentPage> RocksDbStore::ListAgents(const std::string& project_id, int32_t page_size,
                                                   const std::string& page_token) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  const size_t limit = NormalizePageSize(page_size);
  AGENTD_ASSIGN_OR_RETURN(const std::string start, PageStart(project_id, page_token));
  const PrefixIterator it(db_.get(), Cf(ColumnFamily::kAgents), schema::ProjectPrefix(project_id));

  AgentPage page;
  std::string last_id;
  bool more = false;
  it->Seek(start);
  while (it->Valid()) {
    const auto parts = schema::DecodeAgentKey(ToView(it->key()));
    if (!parts || parts->project_id != project_id) return MalformedKey("agents", ToView(it->key()));
    const std::string agent_id(parts->agent_id);
    // The head (version 0) sorts first among an agent's keys; a version without a head cannot
    // be written, so an agent whose first key is not its head is skipped.
    if (parts->version == schema::kAgentHeadVersion) {
      storage::AgentHead head;
      AGENTD_RETURN_IF_ERROR(ParseValue("agent head", ToView(it->key()), it->value(), &head));
      if (!head.deleted()) {
        if (page.agents.size() == limit) {
          more = true;
          break;
        }
        const std::string version_key =
            schema::AgentKey(project_id, agent_id, static_cast<uint64_t>(head.latest_version()));
        it->Seek(version_key);
        if (!it->Valid() || ToView(it->key()) != version_key) {
          AGENTD_RETURN_IF_ERROR(FromRocks(it->status(), "list agents"));
          return absl::DataLossError(absl::StrCat("agent ", agent_id, " head names version ",
                                                  head.latest_version(), ", which is missing"));
        }
        v1::Agent agent;
        AGENTD_RETURN_IF_ERROR(ParseValue("agent", version_key, it->value(), &agent));
        page.agents.push_back(std::move(agent));
        last_id = agent_id;
      }
    }
    it->Seek(schema::PrefixSuccessor(schema::EntityPrefix(project_id, agent_id)));
  }
  AGENTD_RETURN_IF_ERROR(FromRocks(it->status(), "list agents"));
  if (more) page.next_page_token = HexEncode(last_id);
  return page;
}

absl::Status RocksDbStore::DeleteAgent(const std::string& project_id, const std::string& agent_id) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "agent_id", agent_id));
  const std::string head_key = schema::AgentHeadKey(project_id, agent_id);
  absl::MutexLock lock(&StripeFor(project_id, agent_id));
  AGENTD_ASSIGN_OR_RETURN(std::optional<storage::AgentHead> head,
                          Get<storage::AgentHead>(ColumnFamily::kAgents, "agent head", head_key));
  if (!head.has_value() || head->deleted()) {
    return NotFound("agent", agent_id);
  }
  head->set_deleted(true);
  Batch batch;
  batch.Put(Cf(ColumnFamily::kAgents), head_key, *head);
  return batch.Commit(db_.get(), options_.durability);
}

// ---- Sessions ----------------------------------------------------------------------------

absl::Status RocksDbStore::CreateSession(const std::string& project_id,
                                         const storage::SessionRecord& record) {
  const std::string& session_id = record.session().session_id();
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", session_id));
  AGENTD_RETURN_IF_ERROR(ClearExpiredId(project_id, session_id));
  const std::string key = schema::SessionKey(project_id, session_id);
  absl::MutexLock lock(&StripeFor(project_id, session_id));
  AGENTD_ASSIGN_OR_RETURN(const bool exists,
                          KeyExists(db_.get(), {}, Cf(ColumnFamily::kSessions), key));
  if (exists) {
    return absl::AlreadyExistsError(absl::StrCat("session ", session_id, " already exists"));
  }
  storage::SessionRecord stored = record;
  stored.set_revision(1);
  stored.clear_fork_ids();
  Batch batch;
  batch.Put(Cf(ColumnFamily::kSessions), key, stored);
  internal::IndexExpiry(&batch, Cf(ColumnFamily::kExpiry), project_id, stored);
  return batch.Commit(db_.get(), options_.durability);
}

absl::StatusOr<storage::SessionRecord> RocksDbStore::GetSession(const std::string& project_id,
                                                                const std::string& session_id) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", session_id));
  return GetLiveSession(project_id, session_id, absl::Now());
}

absl::StatusOr<SessionPage> RocksDbStore::ListSessions(const std::string& project_id,
                                                       const SessionFilter& filter,
                                                       int32_t page_size,
                                                       const std::string& page_token) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  const size_t limit = NormalizePageSize(page_size);
  AGENTD_ASSIGN_OR_RETURN(const std::string start, PageStart(project_id, page_token));
  const PrefixIterator it(db_.get(), Cf(ColumnFamily::kSessions),
                          schema::ProjectPrefix(project_id));

  // No secondary index: the filter is applied while scanning, and the scan goes on until the
  // page is full and one more match proves there is a next page.
  const absl::Time now = absl::Now();
  SessionPage page;
  std::string last_id;
  bool more = false;
  for (it->Seek(start); it->Valid(); it->Next()) {
    const auto parts = schema::DecodeSessionKey(ToView(it->key()));
    if (!parts || parts->project_id != project_id) {
      return MalformedKey("sessions", ToView(it->key()));
    }
    storage::SessionRecord record;
    AGENTD_RETURN_IF_ERROR(ParseValue("session", ToView(it->key()), it->value(), &record));
    if (internal::IsExpired(record, now)) continue;
    if (!filter.agent_id.empty() && record.session().agent_id() != filter.agent_id) continue;
    if (filter.status != v1::SESSION_STATUS_UNSPECIFIED &&
        record.session().status() != filter.status) {
      continue;
    }
    if (page.sessions.size() == limit) {
      more = true;
      break;
    }
    last_id.assign(parts->session_id.data(), parts->session_id.size());
    page.sessions.push_back(std::move(*record.mutable_session()));
  }
  AGENTD_RETURN_IF_ERROR(FromRocks(it->status(), "list sessions"));
  if (more) page.next_page_token = HexEncode(last_id);
  return page;
}

absl::Status RocksDbStore::CommitSessionWrite(const SessionWrite& write) {
  const std::string& project_id = write.project_id;
  const std::string& session_id = write.session_id;
  AGENTD_RETURN_IF_ERROR(internal::CheckSessionWrite(write));

  const std::string key = schema::SessionKey(project_id, session_id);
  absl::MutexLock lock(&StripeFor(project_id, session_id));
  const absl::Time now = absl::Now();
  AGENTD_ASSIGN_OR_RETURN(const storage::SessionRecord stored,
                          GetLiveSession(project_id, session_id, now));
  AGENTD_RETURN_IF_ERROR(internal::CheckWriteAgainstStored(write, stored));

  // One batch: the events, the new record, the state changes, the idempotency record (and its
  // index entry) and the usage counters land together or not at all.
  Batch batch;
  AGENTD_RETURN_IF_ERROR(StageStateMutations(&batch, project_id, session_id, write.state).status());
  for (const v1::Event& event : write.events) {
    batch.Put(Cf(ColumnFamily::kEvents),
              schema::EventKey(project_id, session_id, static_cast<uint64_t>(event.seq())), event);
  }
  storage::SessionRecord next = write.record;
  next.set_revision(write.expected_revision + 1);
  // Fixed at creation (the fork chain and the expiry index depend on them) or kept by the store.
  v1::Session* s = next.mutable_session();
  s->set_parent_session_id(stored.session().parent_session_id());
  s->set_fork_seq(stored.session().fork_seq());
  if (stored.session().has_expire_time()) {
    *s->mutable_expire_time() = stored.session().expire_time();
  } else {
    s->clear_expire_time();
  }
  *next.mutable_fork_ids() = stored.fork_ids();
  batch.Put(Cf(ColumnFamily::kSessions), key, next);
  if (!write.idempotency_key.empty()) {
    batch.Put(Cf(ColumnFamily::kIdempotency),
              schema::IdempotencyKey(project_id, session_id, write.idempotency_key),
              write.idempotency);
    const absl::Time created =
        write.idempotency.has_create_time() ? FromProto(write.idempotency.create_time()) : now;
    batch.PutEmpty(
        Cf(ColumnFamily::kExpiry),
        schema::ExpiryKey(schema::ExpiryKind::kIdempotency, schema::ExpiryKeyMicros(created),
                          project_id, session_id, write.idempotency_key));
  }
  internal::MergeUsage(&batch, Cf(ColumnFamily::kUsage), project_id, write.usage);
  const Durability durability = options_.durability == Durability::kSync && !write.sync
                                    ? Durability::kRelaxed
                                    : options_.durability;
  return batch.Commit(db_.get(), durability);
}

absl::StatusOr<std::optional<storage::IdempotencyRecord>> RocksDbStore::GetIdempotency(
    const std::string& project_id, const std::string& session_id, const std::string& key) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", session_id));
  AGENTD_RETURN_IF_ERROR(CheckId("idempotency_key", key));
  rocksdb::ManagedSnapshot snapshot(db_.get());
  AGENTD_ASSIGN_OR_RETURN(
      const std::optional<storage::SessionRecord> session,
      Get<storage::SessionRecord>(ColumnFamily::kSessions, "session",
                                  schema::SessionKey(project_id, session_id), snapshot.snapshot()));
  if (session.has_value() && internal::IsExpired(*session, absl::Now())) {
    return std::optional<storage::IdempotencyRecord>();
  }
  return Get<storage::IdempotencyRecord>(ColumnFamily::kIdempotency, "idempotency",
                                         schema::IdempotencyKey(project_id, session_id, key),
                                         snapshot.snapshot());
}

absl::Status RocksDbStore::ForEachSessionWithStatus(
    v1::SessionStatus status,
    const std::function<absl::Status(const std::string& project_id,
                                     const storage::SessionRecord& record)>& fn) {
  // The iterator reads an implicit snapshot taken here.
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), Cf(ColumnFamily::kSessions)));
  const absl::Time now = absl::Now();
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const auto parts = schema::DecodeSessionKey(ToView(it->key()));
    if (!parts) return MalformedKey("sessions", ToView(it->key()));
    storage::SessionRecord record;
    AGENTD_RETURN_IF_ERROR(ParseValue("session", ToView(it->key()), it->value(), &record));
    if (record.session().status() != status || internal::IsExpired(record, now)) continue;
    AGENTD_RETURN_IF_ERROR(fn(std::string(parts->project_id), record));
  }
  return FromRocks(it->status(), "scan sessions");
}

}  // namespace agentd::store
