#include "store/pg_schema.h"

#include <array>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace agentd::store::pg {
namespace {

constexpr char kCreateMigrationsTable[] =
    "CREATE TABLE IF NOT EXISTS agentd_schema_migrations ("
    " version integer PRIMARY KEY,"
    " applied_at timestamptz NOT NULL DEFAULT now())";

// Version 1: the whole store. Shortlex order ("ordered by id": by length, then bytes, as the
// RocksDB store's length-prefixed keys sort) is served by (project_id, octet_length(id), id)
// indexes.
constexpr char kMigration1[] = R"sql(
CREATE FUNCTION agentd_sat_add(a bigint, b bigint) RETURNS bigint
  LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS 'SELECT GREATEST(LEAST(a::numeric + b::numeric, 9223372036854775807),
                      -9223372036854775808)::bigint';

CREATE TABLE agentd_agent_heads (
  project_id bytea NOT NULL,
  agent_id bytea NOT NULL,
  latest_version bigint NOT NULL,
  deleted boolean NOT NULL,
  head bytea NOT NULL,                -- storage.AgentHead
  PRIMARY KEY (project_id, agent_id));
CREATE INDEX agentd_agent_heads_order
  ON agentd_agent_heads (project_id, octet_length(agent_id), agent_id);

CREATE TABLE agentd_agent_versions (
  project_id bytea NOT NULL,
  agent_id bytea NOT NULL,
  version bigint NOT NULL,
  agent bytea NOT NULL,               -- v1.Agent
  PRIMARY KEY (project_id, agent_id, version));

CREATE TABLE agentd_sessions (
  project_id bytea NOT NULL,
  session_id bytea NOT NULL,
  revision bigint NOT NULL,
  last_seq bigint NOT NULL,
  status integer NOT NULL,
  agent_id bytea NOT NULL,
  expire_micros bigint,               -- NULL: never expires
  parent_session_id bytea,            -- forks only
  fork_seq bigint NOT NULL DEFAULT 0,
  record bytea NOT NULL,              -- storage.SessionRecord
  PRIMARY KEY (project_id, session_id));
CREATE INDEX agentd_sessions_order
  ON agentd_sessions (project_id, octet_length(session_id), session_id);
CREATE INDEX agentd_sessions_status ON agentd_sessions (status);
CREATE INDEX agentd_sessions_expiry ON agentd_sessions (expire_micros)
  WHERE expire_micros IS NOT NULL;
CREATE INDEX agentd_sessions_forks ON agentd_sessions (project_id, parent_session_id)
  WHERE parent_session_id IS NOT NULL AND fork_seq > 0;

CREATE TABLE agentd_events (
  project_id bytea NOT NULL,
  session_id bytea NOT NULL,
  seq bigint NOT NULL,
  event bytea NOT NULL,               -- v1.Event
  PRIMARY KEY (project_id, session_id, seq));

CREATE TABLE agentd_idempotency (
  project_id bytea NOT NULL,
  session_id bytea NOT NULL,
  idem_key bytea NOT NULL,
  create_micros bigint NOT NULL,
  record bytea NOT NULL,              -- storage.IdempotencyRecord
  PRIMARY KEY (project_id, session_id, idem_key));
CREATE INDEX agentd_idempotency_age ON agentd_idempotency (create_micros);

CREATE TABLE agentd_state (
  project_id bytea NOT NULL,
  session_id bytea NOT NULL,
  state_key bytea NOT NULL,
  version bigint NOT NULL,
  value_json bytea NOT NULL,
  PRIMARY KEY (project_id, session_id, state_key));

CREATE TABLE agentd_memory (
  project_id bytea NOT NULL,
  doc_id bytea NOT NULL,              -- namespace 00 key
  doc_length integer NOT NULL,        -- tokens indexed
  record bytea NOT NULL,              -- v1.MemoryRecord
  PRIMARY KEY (project_id, doc_id));

CREATE TABLE agentd_memory_postings (
  project_id bytea NOT NULL,
  term bytea NOT NULL,
  doc_id bytea NOT NULL,
  tf integer NOT NULL,
  doc_length integer NOT NULL,
  PRIMARY KEY (project_id, term, doc_id));
CREATE INDEX agentd_memory_postings_doc ON agentd_memory_postings (project_id, doc_id);

CREATE TABLE agentd_memory_stats (
  project_id bytea PRIMARY KEY,
  records bigint NOT NULL,
  total_length bigint NOT NULL);

CREATE TABLE agentd_projects (
  project_id bytea PRIMARY KEY,
  project bytea NOT NULL);            -- v1.Project
CREATE INDEX agentd_projects_order ON agentd_projects (octet_length(project_id), project_id);

CREATE TABLE agentd_api_keys (
  key_id bytea PRIMARY KEY,           -- global: looked up before the project is known
  project_id bytea NOT NULL,
  record bytea NOT NULL);             -- storage.ApiKeyRecord
CREATE INDEX agentd_api_keys_project
  ON agentd_api_keys (project_id, octet_length(key_id), key_id);

CREATE TABLE agentd_usage (
  project_id bytea NOT NULL,
  dimension smallint NOT NULL,        -- store::UsageDimension
  grp bytea NOT NULL,                 -- '' for the day total
  day integer NOT NULL,
  input_tokens bigint NOT NULL,
  output_tokens bigint NOT NULL,
  model_calls bigint NOT NULL,
  cost_usd double precision NOT NULL,
  PRIMARY KEY (project_id, dimension, grp, day));

CREATE TABLE agentd_audit (
  project_id bytea NOT NULL,
  micros bigint NOT NULL,
  audit_id bytea NOT NULL,
  event bytea NOT NULL,               -- v1.AuditEvent
  PRIMARY KEY (project_id, micros, audit_id));
CREATE INDEX agentd_audit_age ON agentd_audit (micros);
)sql";

// Version 2: replica heartbeats (several agentd processes sharing the database).
constexpr char kMigration2[] = R"sql(
CREATE TABLE agentd_replicas (
  replica_id bytea PRIMARY KEY,
  expire_at timestamptz NOT NULL,     -- the database's clock
  first_seen timestamptz NOT NULL DEFAULT clock_timestamp());
)sql";

/// The ordered migrations: kMigrations[i] brings the schema from version i to i + 1.
constexpr std::array<const char*, 2> kMigrations = {kMigration1, kMigration2};

absl::StatusOr<int32_t> ReadVersion(Conn& conn) {
  AGENTD_ASSIGN_OR_RETURN(
      Result r, conn.Exec("read schema version",
                          "SELECT COALESCE(max(version), 0)::int8 FROM agentd_schema_migrations"));
  return static_cast<int32_t>(r.Int(0, 0));
}

absl::Status TooNew(int32_t found) {
  return absl::FailedPreconditionError(absl::StrCat(
      "the PostgreSQL database is at agentd schema version ", found, ", newer than the ",
      LatestSchemaVersion(),
      " this agentd build knows: a newer agentd migrated it; run that version (or newer), or "
      "restore a backup taken before the upgrade"));
}

}  // namespace

int32_t LatestSchemaVersion() { return static_cast<int32_t>(kMigrations.size()); }

absl::StatusOr<int32_t> CurrentSchemaVersion(Pool& pool) {
  int32_t version = 0;
  AGENTD_RETURN_IF_ERROR(pool.Transaction([&](Conn& conn) -> absl::Status {
    AGENTD_ASSIGN_OR_RETURN(
        Result exists, conn.Exec("find migrations table",
                                 "SELECT to_regclass('agentd_schema_migrations') IS NOT NULL"));
    version = 0;
    if (!exists.Bool(0, 0)) return absl::OkStatus();
    AGENTD_ASSIGN_OR_RETURN(version, ReadVersion(conn));
    return absl::OkStatus();
  }));
  return version;
}

absl::Status Migrate(Pool& pool) {
  for (int32_t target = 1; target <= LatestSchemaVersion(); ++target) {
    AGENTD_RETURN_IF_ERROR(pool.Transaction([&](Conn& conn) -> absl::Status {
      // Held until this transaction ends: another replica migrating waits here, then finds the
      // version applied.
      AGENTD_RETURN_IF_ERROR(conn.Exec("take migration lock", "SELECT pg_advisory_xact_lock($1)",
                                       {Int(kMigrationLockKey)})
                                 .status());
      AGENTD_RETURN_IF_ERROR(conn.ExecScript("create migrations table", kCreateMigrationsTable));
      AGENTD_ASSIGN_OR_RETURN(const int32_t current, ReadVersion(conn));
      if (current > LatestSchemaVersion()) return TooNew(current);
      if (current >= target) return absl::OkStatus();
      if (current != target - 1) {
        return absl::DataLossError(absl::StrCat("agentd schema version ", current,
                                                " found while applying migration ", target));
      }
      AGENTD_RETURN_IF_ERROR(conn.ExecScript(absl::StrCat("migration ", target),
                                             kMigrations[static_cast<size_t>(target - 1)]));
      return conn
          .Exec("record migration", "INSERT INTO agentd_schema_migrations (version) VALUES ($1)",
                {Int4(target)})
          .status();
    }));
  }
  // A database already past every known migration: the loop above found nothing to do.
  AGENTD_ASSIGN_OR_RETURN(const int32_t current, CurrentSchemaVersion(pool));
  if (current > LatestSchemaVersion()) return TooNew(current);
  return absl::OkStatus();
}

}  // namespace agentd::store::pg
