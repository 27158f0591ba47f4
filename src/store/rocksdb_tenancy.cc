// RocksDbStore, the tenancy data: projects, API keys, usage counters and the audit log
// (column families projects, api_keys, usage, audit; keys in store/schema.h), and the usage
// merge operator.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/iterator.h"
#include "rocksdb/merge_operator.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "store/rocksdb_store.h"
#include "store/rocksdb_util.h"

namespace agentd::store {
namespace internal {
namespace {

/// a + b, saturating at the int64 limits (a merge must not overflow on any input).
int64_t SaturatingAdd(int64_t a, int64_t b) {
  int64_t sum = 0;
  if (!__builtin_add_overflow(a, b, &sum)) return sum;
  return b > 0 ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
}

/// Adds v1::Usage values field by field. An input that does not parse is not an error here:
/// the result is that input's bytes unchanged, so the counter stays unparsable and every read
/// reports it (DATA_LOSS), while flushes and compactions go on. Failing the merge instead
/// (returning false) would fail every flush of the family, and RocksDB stops all writes of the
/// database after a failed flush.
class UsageAddOperator final : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& key, const rocksdb::Slice* existing_value,
             const rocksdb::Slice& value, std::string* new_value,
             rocksdb::Logger* logger) const override {
    v1::Usage sum;
    if (existing_value != nullptr &&
        !sum.ParseFromArray(existing_value->data(), static_cast<int>(existing_value->size()))) {
      return KeepCorrupt(key, *existing_value, new_value, logger);
    }
    v1::Usage add;
    if (!add.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
      return KeepCorrupt(key, value, new_value, logger);
    }
    sum.set_input_tokens(SaturatingAdd(sum.input_tokens(), add.input_tokens()));
    sum.set_output_tokens(SaturatingAdd(sum.output_tokens(), add.output_tokens()));
    sum.set_model_calls(SaturatingAdd(sum.model_calls(), add.model_calls()));
    sum.set_cost_usd(sum.cost_usd() + add.cost_usd());
    return sum.SerializeToString(new_value);
  }

  const char* Name() const override { return schema::kUsageMergeOperatorName; }

 private:
  static bool KeepCorrupt(const rocksdb::Slice& key, const rocksdb::Slice& corrupt,
                          std::string* new_value, rocksdb::Logger* logger) {
    if (logger != nullptr) {
      rocksdb::Log(rocksdb::InfoLogLevel::ERROR_LEVEL, logger,
                   "agentd usage merge: unparsable v1.Usage under key %s; the counter is kept "
                   "corrupt",
                   HexEncode(ToView(key)).c_str());
    }
    new_value->assign(corrupt.data(), corrupt.size());
    return true;
  }
};

}  // namespace

std::shared_ptr<rocksdb::MergeOperator> NewUsageMergeOperator() {
  return std::make_shared<UsageAddOperator>();
}

void MergeUsage(Batch* batch, rocksdb::ColumnFamilyHandle* usage_cf, const std::string& project_id,
                const std::vector<UsageDelta>& deltas) {
  for (const UsageDelta& d : deltas) {
    batch->Merge(usage_cf, schema::UsageKey(project_id, d.dimension, d.group, d.day), d.usage);
  }
}

}  // namespace internal

namespace {

using internal::Batch;
using internal::CheckId;
using internal::CheckIds;
using internal::FromRocks;
using internal::GetValue;
using internal::KeyExists;
using internal::MalformedKey;
using internal::NotFound;
using internal::ParseValue;
using internal::PrefixIterator;
using internal::ToSlice;
using internal::ToView;

using schema::ColumnFamily;

constexpr int32_t kDefaultAuditPageSize = 100;

void PutAudit(Batch* batch, rocksdb::ColumnFamilyHandle* audit_cf, const v1::AuditEvent& audit) {
  const uint64_t micros = schema::AuditKeyMicros(FromProto(audit.time()));
  batch->Put(audit_cf, schema::AuditKey(audit.project_id(), micros, audit.audit_id()), audit);
}

}  // namespace

// Lock stripes: a project's record is guarded by the stripe of (project_id, ""), an API key's by
// ("", key_id). Ids are never empty, so neither collides by construction with a (project, id)
// stripe of agents and sessions (hash collisions only share a mutex).

// ---- Projects ----------------------------------------------------------------------------

absl::Status RocksDbStore::CreateProject(const v1::Project& project, const v1::AuditEvent& audit) {
  const std::string& project_id = project.project_id();
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckAudit(audit));
  const std::string key = schema::ProjectKey(project_id);
  absl::MutexLock lock(&StripeFor(project_id, ""));
  AGENTD_ASSIGN_OR_RETURN(const bool exists,
                          KeyExists(db_.get(), {}, Cf(ColumnFamily::kProjects), key));
  if (exists) {
    return absl::AlreadyExistsError(absl::StrCat("project ", project_id, " already exists"));
  }
  Batch batch;
  batch.Put(Cf(ColumnFamily::kProjects), key, project);
  PutAudit(&batch, Cf(ColumnFamily::kAudit), audit);
  return batch.Commit(db_.get(), options_.durability);
}

absl::StatusOr<v1::Project> RocksDbStore::GetProject(const std::string& project_id) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_ASSIGN_OR_RETURN(std::optional<v1::Project> project,
                          GetValue<v1::Project>(db_.get(), {}, Cf(ColumnFamily::kProjects),
                                                "project", schema::ProjectKey(project_id)));
  if (!project.has_value()) return NotFound("project", project_id);
  return *std::move(project);
}

absl::StatusOr<ProjectPage> RocksDbStore::ListProjects(int32_t page_size,
                                                       const std::string& page_token) {
  const size_t limit = internal::NormalizePageSize(page_size);
  std::string start;  // "" = the first key
  if (!page_token.empty()) {
    AGENTD_ASSIGN_OR_RETURN(const std::string last_id, internal::DecodePageToken(page_token));
    start = schema::PrefixSuccessor(schema::ProjectKey(last_id));
  }
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), Cf(ColumnFamily::kProjects)));
  ProjectPage page;
  std::string last_id;
  bool more = false;
  for (it->Seek(start); it->Valid(); it->Next()) {
    const std::optional<absl::string_view> id = schema::DecodeProjectKey(ToView(it->key()));
    if (!id) return MalformedKey("projects", ToView(it->key()));
    if (page.projects.size() == limit) {
      more = true;
      break;
    }
    AGENTD_RETURN_IF_ERROR(
        ParseValue("project", ToView(it->key()), it->value(), &page.projects.emplace_back()));
    last_id.assign(id->data(), id->size());
  }
  AGENTD_RETURN_IF_ERROR(FromRocks(it->status(), "list projects"));
  if (more) page.next_page_token = HexEncode(last_id);
  return page;
}

absl::StatusOr<v1::Project> RocksDbStore::SetProjectLimits(
    const std::string& project_id, const v1::ProjectLimits& limits,
    const google::protobuf::Timestamp& update_time, const v1::AuditEvent& audit) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckAudit(audit));
  const std::string key = schema::ProjectKey(project_id);
  absl::MutexLock lock(&StripeFor(project_id, ""));
  AGENTD_ASSIGN_OR_RETURN(
      std::optional<v1::Project> project,
      GetValue<v1::Project>(db_.get(), {}, Cf(ColumnFamily::kProjects), "project", key));
  if (!project.has_value()) return NotFound("project", project_id);
  *project->mutable_limits() = limits;
  *project->mutable_update_time() = update_time;
  Batch batch;
  batch.Put(Cf(ColumnFamily::kProjects), key, *project);
  PutAudit(&batch, Cf(ColumnFamily::kAudit), audit);
  AGENTD_RETURN_IF_ERROR(batch.Commit(db_.get(), options_.durability));
  return *std::move(project);
}

// ---- API keys ----------------------------------------------------------------------------

absl::Status RocksDbStore::CreateApiKey(const storage::ApiKeyRecord& record,
                                        const v1::AuditEvent& audit) {
  const std::string& key_id = record.key().key_id();
  const std::string& project_id = record.key().project_id();
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "key_id", key_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckAudit(audit));
  const std::string key = schema::ApiKeyKey(key_id);
  absl::MutexLock lock(&StripeFor("", key_id));
  // Projects are never deleted, so the project cannot vanish between this check and the write.
  AGENTD_ASSIGN_OR_RETURN(
      const bool project_exists,
      KeyExists(db_.get(), {}, Cf(ColumnFamily::kProjects), schema::ProjectKey(project_id)));
  if (!project_exists) return NotFound("project", project_id);
  AGENTD_ASSIGN_OR_RETURN(const bool key_exists,
                          KeyExists(db_.get(), {}, Cf(ColumnFamily::kApiKeys), key));
  if (key_exists) {
    return absl::AlreadyExistsError(absl::StrCat("api key ", key_id, " already exists"));
  }
  Batch batch;
  batch.Put(Cf(ColumnFamily::kApiKeys), key, record);
  PutAudit(&batch, Cf(ColumnFamily::kAudit), audit);
  return batch.Commit(db_.get(), options_.durability);
}

absl::StatusOr<storage::ApiKeyRecord> RocksDbStore::GetApiKey(const std::string& key_id) {
  AGENTD_RETURN_IF_ERROR(CheckId("key_id", key_id));
  AGENTD_ASSIGN_OR_RETURN(std::optional<storage::ApiKeyRecord> record,
                          GetValue<storage::ApiKeyRecord>(db_.get(), {}, Cf(ColumnFamily::kApiKeys),
                                                          "api key", schema::ApiKeyKey(key_id)));
  if (!record.has_value()) return NotFound("api key", key_id);
  return *std::move(record);
}

absl::StatusOr<std::vector<v1::ApiKey>> RocksDbStore::ListApiKeys(const std::string& project_id) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  // Key ids are global (authentication looks a key up by id alone), so there is no project
  // prefix to scan: this reads every key of every project. Fine for hundreds of keys; with many
  // more, add an index family lp(project) lp(key_id) written in the same batch as the key.
  std::unique_ptr<rocksdb::Iterator> it(
      db_->NewIterator(rocksdb::ReadOptions(), Cf(ColumnFamily::kApiKeys)));
  std::vector<v1::ApiKey> keys;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (!schema::DecodeApiKeyKey(ToView(it->key()))) {
      return MalformedKey("api_keys", ToView(it->key()));
    }
    storage::ApiKeyRecord record;
    AGENTD_RETURN_IF_ERROR(ParseValue("api key", ToView(it->key()), it->value(), &record));
    if (record.key().project_id() == project_id) keys.push_back(std::move(*record.mutable_key()));
  }
  AGENTD_RETURN_IF_ERROR(FromRocks(it->status(), "list api keys"));
  return keys;
}

absl::StatusOr<v1::ApiKey> RocksDbStore::RevokeApiKey(
    const std::string& project_id, const std::string& key_id,
    const google::protobuf::Timestamp& revoke_time, const v1::AuditEvent& audit) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "key_id", key_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckAudit(audit));
  const std::string key = schema::ApiKeyKey(key_id);
  absl::MutexLock lock(&StripeFor("", key_id));
  AGENTD_ASSIGN_OR_RETURN(
      std::optional<storage::ApiKeyRecord> record,
      GetValue<storage::ApiKeyRecord>(db_.get(), {}, Cf(ColumnFamily::kApiKeys), "api key", key));
  // Another project's key is reported exactly like a missing one.
  if (!record.has_value() || record->key().project_id() != project_id) {
    return NotFound("api key", key_id);
  }
  if (record->key().revoked()) return record->key();
  record->mutable_key()->set_revoked(true);
  *record->mutable_key()->mutable_revoke_time() = revoke_time;
  Batch batch;
  batch.Put(Cf(ColumnFamily::kApiKeys), key, *record);
  PutAudit(&batch, Cf(ColumnFamily::kAudit), audit);
  AGENTD_RETURN_IF_ERROR(batch.Commit(db_.get(), options_.durability));
  return record->key();
}

// ---- Usage -------------------------------------------------------------------------------

absl::Status RocksDbStore::AddUsage(const std::string& project_id,
                                    const std::vector<UsageDelta>& deltas) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckUsageDeltas(deltas));
  if (deltas.empty()) return absl::OkStatus();
  Batch batch;
  internal::MergeUsage(&batch, Cf(ColumnFamily::kUsage), project_id, deltas);
  return batch.Commit(db_.get(), options_.durability);
}

absl::StatusOr<std::vector<UsageCounter>> RocksDbStore::ReadUsage(const std::string& project_id,
                                                                  UsageDimension dimension,
                                                                  int32_t first_day,
                                                                  int32_t last_day) {
  AGENTD_RETURN_IF_ERROR(internal::CheckUsageRead(project_id, dimension));
  std::vector<UsageCounter> counters;
  first_day = std::max(first_day, 0);
  if (last_day < first_day) return counters;

  const bool by_day = dimension == UsageDimension::kDay;
  const PrefixIterator it(db_.get(), Cf(ColumnFamily::kUsage),
                          schema::UsagePrefix(project_id, dimension));
  // Within a group the keys are in day order: seek to first_day, read up to last_day, then seek
  // past the group. The iterator returns merged values (the operator runs on read).
  it->Seek(by_day ? schema::UsageKey(project_id, dimension, "", first_day)
                  : schema::UsagePrefix(project_id, dimension));
  while (it->Valid()) {
    const auto parts = schema::DecodeUsageKey(ToView(it->key()));
    if (!parts || parts->project_id != project_id || parts->dimension != dimension) {
      return MalformedKey("usage", ToView(it->key()));
    }
    if (parts->day < first_day) {
      it->Seek(schema::UsageKey(project_id, dimension, parts->group, first_day));
      continue;
    }
    if (parts->day > last_day) {
      if (by_day) break;
      it->Seek(
          schema::PrefixSuccessor(schema::UsageGroupPrefix(project_id, dimension, parts->group)));
      continue;
    }
    UsageCounter& counter = counters.emplace_back();
    counter.group.assign(parts->group.data(), parts->group.size());
    counter.day = parts->day;
    AGENTD_RETURN_IF_ERROR(ParseValue("usage", ToView(it->key()), it->value(), &counter.usage));
    it->Next();
  }
  AGENTD_RETURN_IF_ERROR(FromRocks(it->status(), "read usage"));
  return counters;
}

// ---- Audit -------------------------------------------------------------------------------

absl::Status RocksDbStore::AppendAudit(const v1::AuditEvent& event, bool sync) {
  AGENTD_RETURN_IF_ERROR(internal::CheckAudit(event));
  Batch batch;
  PutAudit(&batch, Cf(ColumnFamily::kAudit), event);
  // Unsynced records still reach the WAL: a process crash keeps them, a power loss may not.
  return batch.Commit(db_.get(), sync ? options_.durability : Durability::kRelaxed);
}

absl::StatusOr<AuditPage> RocksDbStore::ListAudit(const std::string& project_id, absl::Time start,
                                                  absl::Time end, int32_t page_size,
                                                  const std::string& page_token) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  const size_t limit = internal::NormalizePageSize(page_size, kDefaultAuditPageSize);
  std::string lower = schema::AuditTimeKey(project_id, schema::AuditKeyMicros(start));
  const std::string upper = end == absl::InfiniteFuture()
                                ? schema::PrefixSuccessor(schema::ProjectPrefix(project_id))
                                : schema::AuditTimeKey(project_id, schema::AuditKeyMicros(end));
  if (!page_token.empty()) {
    // The token is the hex of the first key of the next page.
    absl::StatusOr<std::string> next = internal::DecodeHexToken(page_token);
    AGENTD_RETURN_IF_ERROR(next.status());
    const auto parts = schema::DecodeAuditKey(*next);
    if (!parts || parts->project_id != project_id) {
      return absl::InvalidArgumentError("malformed page_token");
    }
    if (ToSlice(*next).compare(ToSlice(lower)) > 0) lower = *next;
  }
  AuditPage page;
  if (ToSlice(lower).compare(ToSlice(upper)) >= 0) return page;

  const rocksdb::Slice upper_slice = ToSlice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, Cf(ColumnFamily::kAudit)));
  for (it->Seek(lower); it->Valid(); it->Next()) {
    const auto parts = schema::DecodeAuditKey(ToView(it->key()));
    if (!parts || parts->project_id != project_id) {
      return MalformedKey("audit", ToView(it->key()));
    }
    if (page.events.size() == limit) {
      page.next_page_token = HexEncode(ToView(it->key()));
      break;
    }
    AGENTD_RETURN_IF_ERROR(
        ParseValue("audit", ToView(it->key()), it->value(), &page.events.emplace_back()));
  }
  AGENTD_RETURN_IF_ERROR(FromRocks(it->status(), "list audit"));
  return page;
}

absl::Status RocksDbStore::DeleteAuditBefore(absl::Time cutoff) {
  const uint64_t cutoff_micros = schema::AuditKeyMicros(cutoff);
  if (cutoff_micros == 0) return absl::OkStatus();  // nothing is older than the epoch
  rocksdb::ColumnFamilyHandle* cf = Cf(ColumnFamily::kAudit);
  // One range per project: [lp(p), lp(p) be64(cutoff)). Visit each project once by seeking
  // past its prefix.
  Batch batch;
  bool any = false;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf));
  it->SeekToFirst();
  while (it->Valid()) {
    absl::string_view rest = ToView(it->key());
    absl::string_view project_id;
    if (!schema::ConsumeLengthPrefixed(&rest, &project_id)) {
      return MalformedKey("audit", ToView(it->key()));
    }
    const std::string prefix = schema::ProjectPrefix(project_id);
    batch.DeleteRange(cf, prefix, schema::AuditTimeKey(project_id, cutoff_micros));
    any = true;
    it->Seek(schema::PrefixSuccessor(prefix));
  }
  AGENTD_RETURN_IF_ERROR(FromRocks(it->status(), "scan audit"));
  if (!any) return absl::OkStatus();
  return batch.Commit(db_.get(), options_.durability);
}

}  // namespace agentd::store
