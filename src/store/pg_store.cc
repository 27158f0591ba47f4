// PostgresStore: opening (pool + migrations), agents, sessions, CommitSessionWrite, idempotency
// records, the startup scan and the backup stubs. Tables: store/pg_schema.cc.
#include "store/pg_store.h"

#include <algorithm>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "store/pg_conn.h"
#include "store/pg_schema.h"
#include "store/pg_util.h"

namespace agentd::store {
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

/// Events per INSERT statement (a statement has at most 65535 parameters).
constexpr size_t kEventsPerInsert = 500;
/// Sessions per page of ForEachSessionWithStatus.
constexpr int kScanPage = 500;

/// Where a page of ids starts: (length, id) of the last id of the previous page, or (-1, "").
struct After {
  int64_t length = -1;
  std::string id;
};

absl::StatusOr<After> PageAfter(const std::string& token) {
  if (token.empty()) return After{};
  AGENTD_ASSIGN_OR_RETURN(std::string id, pg::DecodePageToken(token));
  return After{static_cast<int64_t>(id.size()), std::move(id)};
}

void AppendPercentEncoded(std::string* out, absl::string_view id) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const char c : id) {
    const auto b = static_cast<uint8_t>(c);
    if (b >= 0x21 && b <= 0x7e && c != '/' && c != '%') {
      out->push_back(c);
    } else {
      out->push_back('%');
      out->push_back(kHex[b >> 4]);
      out->push_back(kHex[b & 0xf]);
    }
  }
}

}  // namespace

std::string PostgresNotifyPayload(const std::string& project_id, const std::string& session_id,
                                  int64_t last_seq) {
  std::string out;
  AppendPercentEncoded(&out, project_id);
  out.push_back('/');
  AppendPercentEncoded(&out, session_id);
  absl::StrAppend(&out, "/", last_seq);
  return out;
}


absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(
    const PostgresStoreOptions& options) {
  if (options.dsn.empty()) {
    return absl::InvalidArgumentError("postgres store: the connection string is empty");
  }
  if (options.pool_size < 1) {
    return absl::InvalidArgumentError("postgres store: pool_size must be >= 1");
  }
  std::unique_ptr<PostgresStore> store(new PostgresStore(options));
  pg::PoolOptions pool;
  pool.dsn = options.dsn;
  pool.max_connections = options.pool_size;
  // The durability decision of this store: kSync waits for the WAL flush at COMMIT.
  pool.setup_sql = absl::StrCat(
      "SET synchronous_commit = ", options.durability == Durability::kSync ? "on" : "off",
      "; SET application_name = 'agentd'");
  store->pool_ = std::make_unique<pg::Pool>(std::move(pool));
  AGENTD_RETURN_IF_ERROR(pg::Migrate(*store->pool_));
  return store;
}

// ---- Agents ------------------------------------------------------------------------------

absl::Status PostgresStore::PutAgentVersion(const std::string& project_id, const v1::Agent& agent,
                                            int64_t expected_latest_version) {
  const std::string& agent_id = agent.agent_id();
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "agent_id", agent_id));
  return pool_->Transaction([&](Conn& c) -> absl::Status {
    AGENTD_ASSIGN_OR_RETURN(Result r,
                            c.Exec("lock agent",
                                   "SELECT head FROM agentd_agent_heads WHERE project_id = $1 AND "
                                   "agent_id = $2 FOR UPDATE",
                                   {Bytes(project_id), Bytes(agent_id)}));
    std::optional<storage::AgentHead> head;
    if (r.rows() > 0) {
      AGENTD_RETURN_IF_ERROR(ParseColumn("agent head", agent_id, r.Bytes(0, 0), &head.emplace()));
    }
    storage::AgentHead next;
    if (expected_latest_version == 0) {
      if (head.has_value()) {
        return absl::AlreadyExistsError(absl::StrCat("agent ", agent_id, " already exists"));
      }
      *next.mutable_create_time() = agent.has_create_time() ? agent.create_time() : NowProto();
    } else {
      if (!head.has_value() || head->deleted()) return NotFound("agent", agent_id);
      if (head->latest_version() != expected_latest_version) {
        return absl::AbortedError(absl::StrCat("agent ", agent_id, " is at version ",
                                               head->latest_version(), ", not ",
                                               expected_latest_version));
      }
      next = *head;
    }
    next.set_latest_version(agent.version());
    AGENTD_RETURN_IF_ERROR(
        c.Exec("put agent version",
               "INSERT INTO agentd_agent_versions (project_id, agent_id, version, agent) "
               "VALUES ($1, $2, $3, $4) ON CONFLICT (project_id, agent_id, version) "
               "DO UPDATE SET agent = excluded.agent",
               {Bytes(project_id), Bytes(agent_id), Int(agent.version()), Proto(agent)})
            .status());
    // A concurrent create of the same id is a unique violation here: ALREADY_EXISTS.
    return c
        .Exec("put agent head",
              "INSERT INTO agentd_agent_heads (project_id, agent_id, latest_version, deleted, head)"
              " VALUES ($1, $2, $3, false, $4) ON CONFLICT (project_id, agent_id) DO UPDATE SET "
              "latest_version = excluded.latest_version, head = excluded.head",
              {Bytes(project_id), Bytes(agent_id), Int(next.latest_version()), Proto(next)})
        .status();
  });
}

absl::StatusOr<v1::Agent> PostgresStore::GetAgent(const std::string& project_id,
                                                  const std::string& agent_id, int64_t version,
                                                  bool include_deleted) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "agent_id", agent_id));
  if (version < 0) return absl::InvalidArgumentError("agent version must be >= 0");
  // One statement: the head and the wanted version in one snapshot.
  AGENTD_ASSIGN_OR_RETURN(
      Result r, pool_->Exec("get agent",
                            "SELECT h.deleted, h.latest_version, v.agent FROM agentd_agent_heads h "
                            "LEFT JOIN agentd_agent_versions v ON v.project_id = h.project_id AND "
                            "v.agent_id = h.agent_id AND v.version = (CASE WHEN $3 = 0 THEN "
                            "h.latest_version ELSE $3 END) AND v.version <= h.latest_version "
                            "WHERE h.project_id = $1 AND h.agent_id = $2",
                            {Bytes(project_id), Bytes(agent_id), Int(version)}));
  if (r.rows() == 0 || (r.Bool(0, 0) && !include_deleted)) return NotFound("agent", agent_id);
  const int64_t wanted = version == 0 ? r.Int(0, 1) : version;
  if (r.IsNull(0, 2)) {
    return absl::NotFoundError(absl::StrCat("agent ", agent_id, " version ", wanted, " not found"));
  }
  v1::Agent agent;
  AGENTD_RETURN_IF_ERROR(ParseColumn("agent", agent_id, r.Bytes(0, 2), &agent));
  return agent;
}

absl::StatusOr<AgentPage> PostgresStore::ListAgents(const std::string& project_id,
                                                    int32_t page_size,
                                                    const std::string& page_token) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  const size_t limit = pg::NormalizePageSize(page_size);
  AGENTD_ASSIGN_OR_RETURN(const After after, PageAfter(page_token));
  AGENTD_ASSIGN_OR_RETURN(
      Result r,
      pool_->Exec("list agents",
                  "SELECT h.agent_id, h.latest_version, v.agent FROM agentd_agent_heads h "
                  "LEFT JOIN agentd_agent_versions v ON v.project_id = h.project_id AND "
                  "v.agent_id = h.agent_id AND v.version = h.latest_version "
                  "WHERE h.project_id = $1 AND NOT h.deleted AND "
                  "(octet_length(h.agent_id), h.agent_id) > ($2::int8, $3) "
                  "ORDER BY octet_length(h.agent_id), h.agent_id LIMIT $4",
                  {Bytes(project_id), Int(after.length), Bytes(after.id),
                   Int(static_cast<int64_t>(limit) + 1)}));
  AgentPage page;
  for (int i = 0; i < r.rows(); ++i) {
    const std::string agent_id(r.Bytes(i, 0));
    if (page.agents.size() == limit) {
      page.next_page_token = HexEncode(page.agents.back().agent_id());
      break;
    }
    if (r.IsNull(i, 2)) {
      return absl::DataLossError(absl::StrCat("agent ", agent_id, " head names version ",
                                              r.Int(i, 1), ", which is missing"));
    }
    AGENTD_RETURN_IF_ERROR(
        ParseColumn("agent", agent_id, r.Bytes(i, 2), &page.agents.emplace_back()));
  }
  return page;
}

absl::Status PostgresStore::DeleteAgent(const std::string& project_id,
                                        const std::string& agent_id) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "agent_id", agent_id));
  return pool_->Transaction([&](Conn& c) -> absl::Status {
    AGENTD_ASSIGN_OR_RETURN(Result r,
                            c.Exec("lock agent",
                                   "SELECT head FROM agentd_agent_heads WHERE project_id = $1 AND "
                                   "agent_id = $2 FOR UPDATE",
                                   {Bytes(project_id), Bytes(agent_id)}));
    if (r.rows() == 0) return NotFound("agent", agent_id);
    storage::AgentHead head;
    AGENTD_RETURN_IF_ERROR(ParseColumn("agent head", agent_id, r.Bytes(0, 0), &head));
    if (head.deleted()) return NotFound("agent", agent_id);
    head.set_deleted(true);
    return c
        .Exec("delete agent",
              "UPDATE agentd_agent_heads SET deleted = true, head = $3 WHERE project_id = $1 AND "
              "agent_id = $2",
              {Bytes(project_id), Bytes(agent_id), Proto(head)})
        .status();
  });
}

// ---- Sessions ----------------------------------------------------------------------------

namespace {

/// Inserts a session row for `stored` (revision and last_seq already set in it).
absl::Status InsertSession(Conn& c, const std::string& project_id,
                           const storage::SessionRecord& stored) {
  const v1::Session& s = stored.session();
  const std::optional<int64_t> expire = pg::ExpireMicros(stored);
  return c
      .Exec("insert session",
            "INSERT INTO agentd_sessions (project_id, session_id, revision, last_seq, status, "
            "agent_id, expire_micros, parent_session_id, fork_seq, record) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            {Bytes(project_id), Bytes(s.session_id()), Int(stored.revision()), Int(s.last_seq()),
             Int(s.status()), Bytes(s.agent_id()), expire.has_value() ? Int(*expire) : pg::Null(20),
             s.parent_session_id().empty() ? pg::Null(17) : Bytes(s.parent_session_id()),
             Int(s.fork_seq()), Proto(stored)})
      .status();
}

}  // namespace

absl::StatusOr<storage::SessionRecord> PostgresStore::LockLiveSession(Conn& c,
                                                                      const std::string& project_id,
                                                                      const std::string& session_id,
                                                                      absl::Time now, bool share) {
  AGENTD_ASSIGN_OR_RETURN(
      Result r, c.Exec("lock session",
                       absl::StrCat("SELECT record FROM agentd_sessions WHERE project_id = $1 AND "
                                    "session_id = $2 ",
                                    share ? "FOR SHARE" : "FOR UPDATE"),
                       {Bytes(project_id), Bytes(session_id)}));
  if (r.rows() == 0) return NotFound("session", session_id);
  storage::SessionRecord record;
  AGENTD_RETURN_IF_ERROR(ParseColumn("session", session_id, r.Bytes(0, 0), &record));
  if (pg::IsExpired(record, now)) return NotFound("session", session_id);
  return record;
}

absl::Status PostgresStore::CreateSession(const std::string& project_id,
                                          const storage::SessionRecord& record) {
  const std::string& session_id = record.session().session_id();
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", session_id));
  storage::SessionRecord stored = record;
  stored.set_revision(1);
  stored.clear_fork_ids();
  const absl::Time now = absl::Now();
  return pool_->Transaction([&](Conn& c) -> absl::Status {
    // An expired session of the same id is removed first (unless forks still read it).
    AGENTD_ASSIGN_OR_RETURN(const Removal removal,
                            RemoveLocked(c, project_id, session_id, RemoveMode::kExpired, now));
    (void)removal;
    AGENTD_ASSIGN_OR_RETURN(Result exists,
                            c.Exec("find session",
                                   "SELECT 1 FROM agentd_sessions WHERE project_id = $1 AND "
                                   "session_id = $2",
                                   {Bytes(project_id), Bytes(session_id)}));
    if (exists.rows() > 0) {
      return absl::AlreadyExistsError(absl::StrCat("session ", session_id, " already exists"));
    }
    // A concurrent create of the same id fails here with a unique violation: ALREADY_EXISTS.
    return InsertSession(c, project_id, stored);
  });
}

absl::StatusOr<storage::SessionRecord> PostgresStore::GetSession(const std::string& project_id,
                                                                 const std::string& session_id) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", session_id));
  const absl::Time now = absl::Now();
  AGENTD_ASSIGN_OR_RETURN(Result r,
                          pool_->Exec("get session",
                                      "SELECT record FROM agentd_sessions WHERE project_id = $1 "
                                      "AND session_id = $2",
                                      {Bytes(project_id), Bytes(session_id)}));
  if (r.rows() == 0) return NotFound("session", session_id);
  storage::SessionRecord record;
  AGENTD_RETURN_IF_ERROR(ParseColumn("session", session_id, r.Bytes(0, 0), &record));
  if (pg::IsExpired(record, now)) return NotFound("session", session_id);
  return record;
}

absl::StatusOr<SessionPage> PostgresStore::ListSessions(const std::string& project_id,
                                                        const SessionFilter& filter,
                                                        int32_t page_size,
                                                        const std::string& page_token) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  const size_t limit = pg::NormalizePageSize(page_size);
  AGENTD_ASSIGN_OR_RETURN(const After after, PageAfter(page_token));
  std::vector<Param> params = {Bytes(project_id), Int(after.length), Bytes(after.id),
                               pg::NowParam(absl::Now()), Int(static_cast<int64_t>(limit) + 1)};
  std::string sql =
      "SELECT s.session_id, s.record FROM agentd_sessions s WHERE s.project_id = $1 AND "
      "(octet_length(s.session_id), s.session_id) > ($2::int8, $3) AND " +
      pg::LiveCondition(4);
  if (!filter.agent_id.empty()) {
    params.push_back(Bytes(filter.agent_id));
    absl::StrAppend(&sql, " AND s.agent_id = $", params.size());
  }
  if (filter.status != v1::SESSION_STATUS_UNSPECIFIED) {
    params.push_back(Int(filter.status));
    absl::StrAppend(&sql, " AND s.status = $", params.size());
  }
  absl::StrAppend(&sql, " ORDER BY octet_length(s.session_id), s.session_id LIMIT $5");
  AGENTD_ASSIGN_OR_RETURN(Result r, pool_->Exec("list sessions", sql, params));
  SessionPage page;
  for (int i = 0; i < r.rows(); ++i) {
    if (page.sessions.size() == limit) {
      page.next_page_token = HexEncode(page.sessions.back().session_id());
      break;
    }
    storage::SessionRecord record;
    AGENTD_RETURN_IF_ERROR(ParseColumn("session", r.Bytes(i, 0), r.Bytes(i, 1), &record));
    page.sessions.push_back(std::move(*record.mutable_session()));
  }
  return page;
}

absl::Status PostgresStore::CommitSessionWrite(const SessionWrite& write) {
  const std::string& project_id = write.project_id;
  const std::string& session_id = write.session_id;
  AGENTD_RETURN_IF_ERROR(internal::CheckSessionWrite(write));
  const absl::Time now = absl::Now();

  int64_t new_last = 0;
  absl::Status st = pool_->Transaction([&](Conn& c) -> absl::Status {
    // SessionWrite::sync = false is not honoured here: an asynchronous commit is lost when the
    // PostgreSQL server crashes (an OOM kill of any backend restarts it), not only on a power
    // loss, and a turn's earlier steps may already have been streamed and notified.
    // The row lock serializes writers of this session across every replica.
    AGENTD_ASSIGN_OR_RETURN(const storage::SessionRecord stored,
                            LockLiveSession(c, project_id, session_id, now));
    AGENTD_RETURN_IF_ERROR(internal::CheckWriteAgainstStored(write, stored));
    new_last = write.record.session().last_seq();  // checked: the last event's
    AGENTD_RETURN_IF_ERROR(ApplyState(c, project_id, session_id, write.state).status());

    for (size_t first = 0; first < write.events.size(); first += kEventsPerInsert) {
      const size_t end = std::min(write.events.size(), first + kEventsPerInsert);
      std::vector<Param> params = {Bytes(project_id), Bytes(session_id)};
      std::string sql = "INSERT INTO agentd_events (project_id, session_id, seq, event) VALUES ";
      for (size_t i = first; i < end; ++i) {
        params.push_back(Int(write.events[i].seq()));
        params.push_back(Proto(write.events[i]));
        absl::StrAppend(&sql, i == first ? "" : ", ", "($1, $2, $", params.size() - 1, ", $",
                        params.size(), ")");
      }
      AGENTD_RETURN_IF_ERROR(c.Exec("append events", sql, params).status());
    }

    storage::SessionRecord next = write.record;
    next.set_revision(write.expected_revision + 1);
    // Fixed at creation (the fork chain and expiry depend on them).
    v1::Session* s = next.mutable_session();
    s->set_parent_session_id(stored.session().parent_session_id());
    s->set_fork_seq(stored.session().fork_seq());
    if (stored.session().has_expire_time()) {
      *s->mutable_expire_time() = stored.session().expire_time();
    } else {
      s->clear_expire_time();
    }
    next.clear_fork_ids();
    // The compare-and-set itself: the row is locked, so this matches; it stays the guard if
    // the lock above is ever weakened.
    AGENTD_ASSIGN_OR_RETURN(
        Result updated,
        c.Exec(
            "update session",
            "UPDATE agentd_sessions SET revision = $3, last_seq = $4, status = $5, "
            "agent_id = $6, record = $7 WHERE project_id = $1 AND session_id = $2 AND "
            "revision = $8",
            {Bytes(project_id), Bytes(session_id), Int(next.revision()), Int(new_last),
             Int(s->status()), Bytes(s->agent_id()), Proto(next), Int(write.expected_revision)}));
    if (updated.affected() != 1) {
      return absl::AbortedError(
          absl::StrCat("session ", session_id, " changed while it was being written"));
    }
    if (!write.idempotency_key.empty()) {
      const absl::Time created =
          write.idempotency.has_create_time() ? FromProto(write.idempotency.create_time()) : now;
      AGENTD_RETURN_IF_ERROR(
          c.Exec("put idempotency record",
                 "INSERT INTO agentd_idempotency (project_id, session_id, idem_key, "
                 "create_micros, record) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, "
                 "session_id, idem_key) DO UPDATE SET create_micros = excluded.create_micros, "
                 "record = excluded.record",
                 {Bytes(project_id), Bytes(session_id), Bytes(write.idempotency_key),
                  Int(pg::Micros(created)), Proto(write.idempotency)})
              .status());
    }
    return pg::ApplyUsage(c, project_id, write.usage);
  });
  if (st.ok()) NotifyCommitted(project_id, session_id, new_last);
  return st;
}

void PostgresStore::NotifyCommitted(const std::string& project_id, const std::string& session_id,
                                    int64_t last_seq) {
  // Its own transaction, without waiting for the WAL flush: PostgreSQL holds one database-wide
  // lock from a notifying transaction's pre-commit until its end, flush included, so a NOTIFY
  // inside the write would serialize every commit's fsync (no group commit). The notice is not
  // durable state: a lost one (crash right here) is covered by the listeners' periodic resync.
  absl::Status st =
      pool_
          ->Exec("notify",
                 "SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, $2)",
                 {pg::Text(kPostgresEventsChannel),
                  pg::Text(PostgresNotifyPayload(project_id, session_id, last_seq))})
          .status();
  if (!st.ok()) spdlog::warn("commit notice for a session not sent: {}", st.ToString());
}

absl::StatusOr<std::optional<storage::IdempotencyRecord>> PostgresStore::GetIdempotency(
    const std::string& project_id, const std::string& session_id, const std::string& key) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", session_id));
  AGENTD_RETURN_IF_ERROR(CheckId("idempotency_key", key));
  const absl::Time now = absl::Now();
  AGENTD_ASSIGN_OR_RETURN(
      Result r,
      pool_->Exec("get idempotency record",
                  "SELECT i.record, s.record FROM agentd_idempotency i LEFT JOIN agentd_sessions "
                  "s ON s.project_id = i.project_id AND s.session_id = i.session_id WHERE "
                  "i.project_id = $1 AND i.session_id = $2 AND i.idem_key = $3",
                  {Bytes(project_id), Bytes(session_id), Bytes(key)}));
  if (r.rows() == 0) return std::optional<storage::IdempotencyRecord>();
  if (!r.IsNull(0, 1)) {
    storage::SessionRecord session;
    AGENTD_RETURN_IF_ERROR(ParseColumn("session", session_id, r.Bytes(0, 1), &session));
    if (pg::IsExpired(session, now)) return std::optional<storage::IdempotencyRecord>();
  }
  storage::IdempotencyRecord record;
  AGENTD_RETURN_IF_ERROR(ParseColumn("idempotency", key, r.Bytes(0, 0), &record));
  return std::optional<storage::IdempotencyRecord>(std::move(record));
}

absl::Status PostgresStore::ForEachSessionWithStatus(
    v1::SessionStatus status,
    const std::function<absl::Status(const std::string& project_id,
                                     const storage::SessionRecord& record)>& fn) {
  const absl::Time now = absl::Now();
  std::string after_project, after_session;
  for (bool first = true;; first = false) {
    std::vector<Param> params = {Int(status), pg::NowParam(now), Int(kScanPage)};
    std::string sql =
        "SELECT s.project_id, s.session_id, s.record FROM agentd_sessions s WHERE s.status = $1 "
        "AND " +
        pg::LiveCondition(2);
    if (!first) {
      params.push_back(Bytes(after_project));
      params.push_back(Bytes(after_session));
      sql += " AND (s.project_id, s.session_id) > ($4, $5)";
    }
    sql += " ORDER BY s.project_id, s.session_id LIMIT $3";
    // The page is read and the connection returned before `fn` runs (fn may write).
    AGENTD_ASSIGN_OR_RETURN(Result r, pool_->Exec("scan sessions", sql, params));
    for (int i = 0; i < r.rows(); ++i) {
      const std::string project_id(r.Bytes(i, 0));
      storage::SessionRecord record;
      AGENTD_RETURN_IF_ERROR(ParseColumn("session", r.Bytes(i, 1), r.Bytes(i, 2), &record));
      if (record.session().status() != status || pg::IsExpired(record, now)) continue;
      AGENTD_RETURN_IF_ERROR(fn(project_id, record));
    }
    if (r.rows() < kScanPage) return absl::OkStatus();
    after_project.assign(r.Bytes(r.rows() - 1, 0).data(), r.Bytes(r.rows() - 1, 0).size());
    after_session.assign(r.Bytes(r.rows() - 1, 1).data(), r.Bytes(r.rows() - 1, 1).size());
  }
}

// ---- Backups -----------------------------------------------------------------------------

namespace {
absl::Status NoBackups() {
  return absl::UnimplementedError(
      "the PostgreSQL store does not take or restore backups itself: use PostgreSQL's tools "
      "(pg_dump for logical backups, pg_basebackup with WAL archiving for point-in-time "
      "recovery)");
}
}  // namespace

absl::StatusOr<v1::BackupInfo> PostgresStore::CreateBackup(const std::string&, int32_t) {
  return NoBackups();
}
absl::StatusOr<std::vector<v1::BackupInfo>> PostgresStore::ListBackups(const std::string&) {
  return NoBackups();
}
absl::StatusOr<v1::BackupInfo> PostgresStore::RestoreBackup(const std::string&, uint32_t,
                                                            const std::string&) {
  return NoBackups();
}

}  // namespace agentd::store
