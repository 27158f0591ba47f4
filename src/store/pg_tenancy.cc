// PostgresStore, the tenancy data: projects, API keys, usage counters and the audit log. Same
// rules as rocksdb_tenancy.cc; usage counters are numeric columns incremented atomically in the
// database (INSERT … ON CONFLICT DO UPDATE SET x = agentd_sat_add(t.x, excluded.x)), so several
// replicas adding to one counter at once lose nothing.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "store/pg_conn.h"
#include "store/pg_store.h"
#include "store/pg_util.h"

namespace agentd::store {
namespace pg {

absl::Status ApplyUsage(Conn& conn, const std::string& project_id,
                        const std::vector<UsageDelta>& deltas) {
  std::vector<size_t> order(deltas.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return std::make_tuple(deltas[a].dimension, deltas[a].group, deltas[a].day) <
           std::make_tuple(deltas[b].dimension, deltas[b].group, deltas[b].day);
  });
  for (const size_t i : order) {
    const UsageDelta& d = deltas[i];
    AGENTD_RETURN_IF_ERROR(
        conn.Exec("add usage",
                  "INSERT INTO agentd_usage AS t (project_id, dimension, grp, day, input_tokens, "
                  "output_tokens, model_calls, cost_usd) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                  "ON CONFLICT (project_id, dimension, grp, day) DO UPDATE SET "
                  "input_tokens = agentd_sat_add(t.input_tokens, excluded.input_tokens), "
                  "output_tokens = agentd_sat_add(t.output_tokens, excluded.output_tokens), "
                  "model_calls = agentd_sat_add(t.model_calls, excluded.model_calls), "
                  "cost_usd = t.cost_usd + excluded.cost_usd",
                  {Bytes(project_id), Int4(static_cast<int32_t>(d.dimension)), Bytes(d.group),
                   Int4(d.day), Int(d.usage.input_tokens()), Int(d.usage.output_tokens()),
                   Int(d.usage.model_calls()), Double(d.usage.cost_usd())})
            .status());
  }
  return absl::OkStatus();
}

}  // namespace pg

namespace {

using pg::Bytes;
using pg::CheckId;
using pg::CheckIds;
using pg::Conn;
using pg::Int;
using pg::NotFound;
using pg::Param;
using pg::ParseColumn;
using pg::Proto;
using pg::Result;

constexpr int32_t kDefaultAuditPageSize = 100;

absl::Status PutAudit(Conn& c, const v1::AuditEvent& audit) {
  return c
      .Exec("append audit",
            "INSERT INTO agentd_audit (project_id, micros, audit_id, event) VALUES ($1, $2, $3, "
            "$4) ON CONFLICT (project_id, micros, audit_id) DO UPDATE SET event = excluded.event",
            {Bytes(audit.project_id()), Int(pg::Micros(FromProto(audit.time()))),
             Bytes(audit.audit_id()), Proto(audit)})
      .status();
}

/// The audit page token: hex of be64(micros) audit_id of the next record.
std::string AuditToken(int64_t micros, absl::string_view audit_id) {
  std::string raw;
  schema::AppendBigEndian64(&raw, static_cast<uint64_t>(micros));
  raw.append(audit_id.data(), audit_id.size());
  return HexEncode(raw);
}

}  // namespace

// ---- Projects ----------------------------------------------------------------------------

absl::Status PostgresStore::CreateProject(const v1::Project& project, const v1::AuditEvent& audit) {
  const std::string& project_id = project.project_id();
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckAudit(audit));
  return pool_->Transaction([&](Conn& c) -> absl::Status {
    AGENTD_ASSIGN_OR_RETURN(
        Result r, c.Exec("create project",
                         "INSERT INTO agentd_projects (project_id, project) VALUES ($1, $2) "
                         "ON CONFLICT (project_id) DO NOTHING",
                         {Bytes(project_id), Proto(project)}));
    if (r.affected() == 0) {
      return absl::AlreadyExistsError(absl::StrCat("project ", project_id, " already exists"));
    }
    return PutAudit(c, audit);
  });
}

absl::StatusOr<v1::Project> PostgresStore::GetProject(const std::string& project_id) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_ASSIGN_OR_RETURN(
      Result r,
      pool_->Exec("get project", "SELECT project FROM agentd_projects WHERE project_id = $1",
                  {Bytes(project_id)}));
  if (r.rows() == 0) return NotFound("project", project_id);
  v1::Project project;
  AGENTD_RETURN_IF_ERROR(ParseColumn("project", project_id, r.Bytes(0, 0), &project));
  return project;
}

absl::StatusOr<ProjectPage> PostgresStore::ListProjects(int32_t page_size,
                                                        const std::string& page_token) {
  const size_t limit = pg::NormalizePageSize(page_size);
  int64_t after_length = -1;
  std::string after_id;
  if (!page_token.empty()) {
    AGENTD_ASSIGN_OR_RETURN(after_id, pg::DecodePageToken(page_token));
    after_length = static_cast<int64_t>(after_id.size());
  }
  AGENTD_ASSIGN_OR_RETURN(
      Result r,
      pool_->Exec("list projects",
                  "SELECT project_id, project FROM agentd_projects WHERE "
                  "(octet_length(project_id), project_id) > ($1::int8, $2) "
                  "ORDER BY octet_length(project_id), project_id LIMIT $3",
                  {Int(after_length), Bytes(after_id), Int(static_cast<int64_t>(limit) + 1)}));
  ProjectPage page;
  for (int i = 0; i < r.rows(); ++i) {
    if (page.projects.size() == limit) {
      page.next_page_token = HexEncode(page.projects.back().project_id());
      break;
    }
    AGENTD_RETURN_IF_ERROR(
        ParseColumn("project", r.Bytes(i, 0), r.Bytes(i, 1), &page.projects.emplace_back()));
  }
  return page;
}

absl::StatusOr<v1::Project> PostgresStore::SetProjectLimits(
    const std::string& project_id, const v1::ProjectLimits& limits,
    const google::protobuf::Timestamp& update_time, const v1::AuditEvent& audit) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckAudit(audit));
  v1::Project project;
  AGENTD_RETURN_IF_ERROR(pool_->Transaction([&](Conn& c) -> absl::Status {
    AGENTD_ASSIGN_OR_RETURN(
        Result r, c.Exec("lock project",
                         "SELECT project FROM agentd_projects WHERE project_id = $1 FOR UPDATE",
                         {Bytes(project_id)}));
    if (r.rows() == 0) return NotFound("project", project_id);
    project.Clear();
    AGENTD_RETURN_IF_ERROR(ParseColumn("project", project_id, r.Bytes(0, 0), &project));
    *project.mutable_limits() = limits;
    *project.mutable_update_time() = update_time;
    AGENTD_RETURN_IF_ERROR(c.Exec("update project",
                                  "UPDATE agentd_projects SET project = $2 WHERE project_id = $1",
                                  {Bytes(project_id), Proto(project)})
                               .status());
    return PutAudit(c, audit);
  }));
  return project;
}

// ---- API keys ----------------------------------------------------------------------------

absl::Status PostgresStore::CreateApiKey(const storage::ApiKeyRecord& record,
                                         const v1::AuditEvent& audit) {
  const std::string& key_id = record.key().key_id();
  const std::string& project_id = record.key().project_id();
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "key_id", key_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckAudit(audit));
  return pool_->Transaction([&](Conn& c) -> absl::Status {
    AGENTD_ASSIGN_OR_RETURN(
        Result p,
        c.Exec("find project", "SELECT 1 FROM agentd_projects WHERE project_id = $1 FOR SHARE",
               {Bytes(project_id)}));
    if (p.rows() == 0) return NotFound("project", project_id);
    AGENTD_ASSIGN_OR_RETURN(
        Result r, c.Exec("create api key",
                         "INSERT INTO agentd_api_keys (key_id, project_id, record) VALUES ($1, $2, "
                         "$3) ON CONFLICT (key_id) DO NOTHING",
                         {Bytes(key_id), Bytes(project_id), Proto(record)}));
    if (r.affected() == 0) {
      return absl::AlreadyExistsError(absl::StrCat("api key ", key_id, " already exists"));
    }
    return PutAudit(c, audit);
  });
}

absl::StatusOr<storage::ApiKeyRecord> PostgresStore::GetApiKey(const std::string& key_id) {
  AGENTD_RETURN_IF_ERROR(CheckId("key_id", key_id));
  AGENTD_ASSIGN_OR_RETURN(Result r, pool_->Exec("get api key",
                                                "SELECT record FROM agentd_api_keys WHERE "
                                                "key_id = $1",
                                                {Bytes(key_id)}));
  if (r.rows() == 0) return NotFound("api key", key_id);
  storage::ApiKeyRecord record;
  AGENTD_RETURN_IF_ERROR(ParseColumn("api key", key_id, r.Bytes(0, 0), &record));
  return record;
}

absl::StatusOr<std::vector<v1::ApiKey>> PostgresStore::ListApiKeys(const std::string& project_id) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_ASSIGN_OR_RETURN(
      Result r, pool_->Exec("list api keys",
                            "SELECT key_id, record FROM agentd_api_keys WHERE project_id = $1 "
                            "ORDER BY octet_length(key_id), key_id",
                            {Bytes(project_id)}));
  std::vector<v1::ApiKey> keys;
  for (int i = 0; i < r.rows(); ++i) {
    storage::ApiKeyRecord record;
    AGENTD_RETURN_IF_ERROR(ParseColumn("api key", r.Bytes(i, 0), r.Bytes(i, 1), &record));
    keys.push_back(std::move(*record.mutable_key()));
  }
  return keys;
}

absl::StatusOr<v1::ApiKey> PostgresStore::RevokeApiKey(
    const std::string& project_id, const std::string& key_id,
    const google::protobuf::Timestamp& revoke_time, const v1::AuditEvent& audit) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "key_id", key_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckAudit(audit));
  v1::ApiKey key;
  AGENTD_RETURN_IF_ERROR(pool_->Transaction([&](Conn& c) -> absl::Status {
    AGENTD_ASSIGN_OR_RETURN(Result r, c.Exec("lock api key",
                                             "SELECT record FROM agentd_api_keys WHERE "
                                             "key_id = $1 FOR UPDATE",
                                             {Bytes(key_id)}));
    if (r.rows() == 0) return NotFound("api key", key_id);
    storage::ApiKeyRecord record;
    AGENTD_RETURN_IF_ERROR(ParseColumn("api key", key_id, r.Bytes(0, 0), &record));
    // Another project's key is reported exactly like a missing one.
    if (record.key().project_id() != project_id) return NotFound("api key", key_id);
    key = record.key();
    if (record.key().revoked()) return absl::OkStatus();  // no change, no audit record
    record.mutable_key()->set_revoked(true);
    *record.mutable_key()->mutable_revoke_time() = revoke_time;
    key = record.key();
    AGENTD_RETURN_IF_ERROR(c.Exec("revoke api key",
                                  "UPDATE agentd_api_keys SET record = $2 WHERE key_id = $1",
                                  {Bytes(key_id), Proto(record)})
                               .status());
    return PutAudit(c, audit);
  }));
  return key;
}

// ---- Usage -------------------------------------------------------------------------------

absl::Status PostgresStore::AddUsage(const std::string& project_id,
                                     const std::vector<UsageDelta>& deltas) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_RETURN_IF_ERROR(pg::CheckUsageDeltas(deltas));
  if (deltas.empty()) return absl::OkStatus();
  return pool_->Transaction(
      [&](Conn& c) -> absl::Status { return pg::ApplyUsage(c, project_id, deltas); });
}

absl::StatusOr<std::vector<UsageCounter>> PostgresStore::ReadUsage(const std::string& project_id,
                                                                   UsageDimension dimension,
                                                                   int32_t first_day,
                                                                   int32_t last_day) {
  AGENTD_RETURN_IF_ERROR(internal::CheckUsageRead(project_id, dimension));
  std::vector<UsageCounter> counters;
  first_day = std::max(first_day, 0);
  if (last_day < first_day) return counters;
  AGENTD_ASSIGN_OR_RETURN(
      Result r,
      pool_->Exec("read usage",
                  "SELECT grp, day, input_tokens, output_tokens, model_calls, cost_usd FROM "
                  "agentd_usage WHERE project_id = $1 AND dimension = $2 AND day >= $3 AND "
                  "day <= $4 ORDER BY octet_length(grp), grp, day",
                  {Bytes(project_id), pg::Int4(static_cast<int32_t>(dimension)),
                   pg::Int4(first_day), pg::Int4(last_day)}));
  counters.reserve(static_cast<size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) {
    UsageCounter& counter = counters.emplace_back();
    counter.group = std::string(r.Bytes(i, 0));
    counter.day = static_cast<int32_t>(r.Int(i, 1));
    counter.usage.set_input_tokens(r.Int(i, 2));
    counter.usage.set_output_tokens(r.Int(i, 3));
    counter.usage.set_model_calls(r.Int(i, 4));
    counter.usage.set_cost_usd(r.Double(i, 5));
  }
  return counters;
}

// ---- Audit -------------------------------------------------------------------------------

absl::Status PostgresStore::AppendAudit(const v1::AuditEvent& event, bool sync) {
  AGENTD_RETURN_IF_ERROR(internal::CheckAudit(event));
  return pool_->Transaction([&](Conn& c) -> absl::Status {
    if (!sync) {
      AGENTD_RETURN_IF_ERROR(c.ExecScript("relax commit", "SET LOCAL synchronous_commit = off"));
    }
    return PutAudit(c, event);
  });
}

absl::StatusOr<AuditPage> PostgresStore::ListAudit(const std::string& project_id, absl::Time start,
                                                   absl::Time end, int32_t page_size,
                                                   const std::string& page_token) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  const size_t limit = pg::NormalizePageSize(page_size, kDefaultAuditPageSize);
  std::vector<Param> params = {Bytes(project_id), Int(pg::Micros(start)),
                               Int(static_cast<int64_t>(limit) + 1)};
  std::string sql =
      "SELECT micros, audit_id, event FROM agentd_audit WHERE project_id = $1 AND micros >= $2";
  if (end != absl::InfiniteFuture()) {
    params.push_back(Int(pg::Micros(end)));
    absl::StrAppend(&sql, " AND micros < $", params.size());
  }
  if (!page_token.empty()) {
    AGENTD_ASSIGN_OR_RETURN(const std::string raw, pg::DecodeHexToken(page_token));
    absl::string_view rest = raw;
    uint64_t micros = 0;
    if (!schema::ConsumeBigEndian64(&rest, &micros) || !schema::IsValidKeyComponent(rest) ||
        micros > static_cast<uint64_t>(INT64_MAX)) {
      return absl::InvalidArgumentError("malformed page_token");
    }
    params.push_back(Int(static_cast<int64_t>(micros)));
    params.push_back(Bytes(rest));
    absl::StrAppend(&sql, " AND (micros, audit_id) >= ($", params.size() - 1, ", $", params.size(),
                    ")");
  }
  sql += " ORDER BY micros, audit_id LIMIT $3";
  AGENTD_ASSIGN_OR_RETURN(Result r, pool_->Exec("list audit", sql, params));
  AuditPage page;
  for (int i = 0; i < r.rows(); ++i) {
    if (page.events.size() == limit) {
      page.next_page_token = AuditToken(r.Int(i, 0), r.Bytes(i, 1));
      break;
    }
    AGENTD_RETURN_IF_ERROR(
        ParseColumn("audit", r.Bytes(i, 1), r.Bytes(i, 2), &page.events.emplace_back()));
  }
  return page;
}

absl::Status PostgresStore::DeleteAuditBefore(absl::Time cutoff) {
  const int64_t cutoff_micros = pg::Micros(cutoff);
  if (cutoff_micros == 0) return absl::OkStatus();  // nothing is older than the epoch
  return pool_
      ->Exec("delete old audit", "DELETE FROM agentd_audit WHERE micros < $1", {Int(cutoff_micros)})
      .status();
}

}  // namespace agentd::store
