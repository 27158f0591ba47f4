// PostgresStore: per-session tool state, forks (ForkSession, and ReadEvents, which follows a
// fork's chain of parents) and removal (DeleteSession, expiry, old idempotency records). Same
// rules as rocksdb_state.cc and rocksdb_retention.cc.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "store/pg_conn.h"
#include "store/pg_store.h"
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
using pg::Result;

/// Longest chain of forks ReadEvents follows; a longer one can only be a corrupt cycle.
constexpr int kMaxForkDepth = 10000;
/// Expired sessions read per page by the sweep.
constexpr int kSweepPage = 256;

/// The part of one session's own events that a reader of the chain sees: seq in [first, last].
struct Segment {
  std::string session_id;
  int64_t first = 1;
  int64_t last = std::numeric_limits<int64_t>::max();
};

v1::StateEntry Entry(absl::string_view key, const Result& r, int row, int version_col) {
  v1::StateEntry e;
  e.set_key(std::string(key));
  e.set_version(r.Int(row, version_col));
  e.set_value_json(std::string(r.Bytes(row, version_col + 1)));
  return e;
}

}  // namespace

// ---- Tool state --------------------------------------------------------------------------

absl::StatusOr<std::vector<v1::StateEntry>> PostgresStore::ApplyState(
    Conn& c, const std::string& project_id, const std::string& session_id,
    const std::vector<StateMutation>& mutations) {
  std::vector<v1::StateEntry> written;
  written.reserve(mutations.size());
  for (const StateMutation& m : mutations) {
    int64_t current = 0;
    // A key written earlier in this call: its new version is what the next mutation sees.
    const auto earlier = std::find_if(written.rbegin(), written.rend(),
                                      [&](const v1::StateEntry& e) { return e.key() == m.key; });
    if (earlier != written.rend()) {
      current = earlier->version();
    } else {
      AGENTD_ASSIGN_OR_RETURN(Result r,
                              c.Exec("read state version",
                                     "SELECT version FROM agentd_state WHERE project_id = $1 AND "
                                     "session_id = $2 AND state_key = $3",
                                     {Bytes(project_id), Bytes(session_id), Bytes(m.key)}));
      if (r.rows() > 0) current = r.Int(0, 0);
    }
    AGENTD_ASSIGN_OR_RETURN(v1::StateEntry next, internal::NextStateEntry(session_id, m, current));
    v1::StateEntry& entry = written.emplace_back(std::move(next));
    AGENTD_RETURN_IF_ERROR(
        c.Exec("put state",
               "INSERT INTO agentd_state (project_id, session_id, state_key, version, value_json) "
               "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (project_id, session_id, state_key) DO "
               "UPDATE SET version = excluded.version, value_json = excluded.value_json",
               {Bytes(project_id), Bytes(session_id), Bytes(m.key), Int(entry.version()),
                Bytes(m.value_json)})
            .status());
  }
  return written;
}

absl::StatusOr<v1::StateEntry> PostgresStore::GetState(const std::string& project_id,
                                                       const std::string& session_id,
                                                       const std::string& key) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", session_id));
  AGENTD_RETURN_IF_ERROR(pg::CheckStateKey(key));
  const absl::Time now = absl::Now();
  AGENTD_ASSIGN_OR_RETURN(
      Result r, pool_->Exec("get state",
                            "SELECT s.record, st.version, st.value_json FROM agentd_sessions s "
                            "LEFT JOIN agentd_state st ON st.project_id = s.project_id AND "
                            "st.session_id = s.session_id AND st.state_key = $3 "
                            "WHERE s.project_id = $1 AND s.session_id = $2",
                            {Bytes(project_id), Bytes(session_id), Bytes(key)}));
  if (r.rows() == 0) return NotFound("session", session_id);
  storage::SessionRecord session;
  AGENTD_RETURN_IF_ERROR(ParseColumn("session", session_id, r.Bytes(0, 0), &session));
  if (pg::IsExpired(session, now)) return NotFound("session", session_id);
  if (r.IsNull(0, 1)) {
    return absl::NotFoundError(
        absl::StrCat("state key \"", key, "\" of session ", session_id, " not found"));
  }
  return Entry(key, r, 0, 1);
}

absl::StatusOr<std::vector<v1::StateEntry>> PostgresStore::ListState(
    const std::string& project_id, const std::string& session_id) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", session_id));
  const absl::Time now = absl::Now();
  std::vector<v1::StateEntry> entries;
  AGENTD_RETURN_IF_ERROR(
      pool_->Transaction(pg::Pool::Mode::kReadOnlySnapshot, [&](Conn& c) -> absl::Status {
        entries.clear();
        AGENTD_ASSIGN_OR_RETURN(
            Result s, c.Exec("get session",
                             "SELECT record FROM agentd_sessions WHERE project_id = $1 AND "
                             "session_id = $2",
                             {Bytes(project_id), Bytes(session_id)}));
        if (s.rows() == 0) return NotFound("session", session_id);
        storage::SessionRecord session;
        AGENTD_RETURN_IF_ERROR(ParseColumn("session", session_id, s.Bytes(0, 0), &session));
        if (pg::IsExpired(session, now)) return NotFound("session", session_id);
        AGENTD_ASSIGN_OR_RETURN(
            Result r, c.Exec("list state",
                             "SELECT state_key, version, value_json FROM agentd_state WHERE "
                             "project_id = $1 AND session_id = $2 ORDER BY state_key",
                             {Bytes(project_id), Bytes(session_id)}));
        for (int i = 0; i < r.rows(); ++i) entries.push_back(Entry(r.Bytes(i, 0), r, i, 1));
        return absl::OkStatus();
      }));
  return entries;
}

absl::StatusOr<v1::StateEntry> PostgresStore::PutState(const std::string& project_id,
                                                       const std::string& session_id,
                                                       const StateMutation& mutation) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", session_id));
  AGENTD_RETURN_IF_ERROR(pg::CheckStateMutations({mutation}));
  const absl::Time now = absl::Now();
  v1::StateEntry stored;
  AGENTD_RETURN_IF_ERROR(pool_->Transaction([&](Conn& c) -> absl::Status {
    // The session row lock: atomic against CommitSessionWrite's state changes. The record is not
    // rewritten, so a turn in flight keeps its revision.
    AGENTD_RETURN_IF_ERROR(LockLiveSession(c, project_id, session_id, now).status());
    AGENTD_ASSIGN_OR_RETURN(std::vector<v1::StateEntry> written,
                            ApplyState(c, project_id, session_id, {mutation}));
    stored = std::move(written.front());
    return absl::OkStatus();
  }));
  return stored;
}

// ---- Forks -------------------------------------------------------------------------------

absl::Status PostgresStore::ForkSession(const std::string& project_id,
                                        const storage::SessionRecord& child) {
  AGENTD_RETURN_IF_ERROR(internal::CheckFork(project_id, child));
  const v1::Session& cs = child.session();
  const std::string& child_id = cs.session_id();
  const std::string& parent_id = cs.parent_session_id();
  const absl::Time now = absl::Now();
  storage::SessionRecord stored = child;
  stored.set_revision(1);
  stored.clear_fork_ids();
  stored.mutable_session()->set_last_seq(cs.fork_seq());

  return pool_->Transaction([&](Conn& c) -> absl::Status {
    AGENTD_RETURN_IF_ERROR(
        RemoveLocked(c, project_id, child_id, RemoveMode::kExpired, now).status());
    // FOR SHARE: the parent cannot be deleted, nor its state changed, until this commits; its
    // revision is untouched, so a turn running on it is not disturbed.
    AGENTD_ASSIGN_OR_RETURN(const storage::SessionRecord parent,
                            LockLiveSession(c, project_id, parent_id, now, /*share=*/true));
    if (cs.fork_seq() > parent.session().last_seq()) {
      return absl::InvalidArgumentError(absl::StrCat("fork_seq ", cs.fork_seq(),
                                                     " is past the last seq of session ", parent_id,
                                                     " (", parent.session().last_seq(), ")"));
    }
    AGENTD_ASSIGN_OR_RETURN(Result exists,
                            c.Exec("find session",
                                   "SELECT 1 FROM agentd_sessions WHERE project_id = $1 AND "
                                   "session_id = $2",
                                   {Bytes(project_id), Bytes(child_id)}));
    if (exists.rows() > 0) {
      return absl::AlreadyExistsError(absl::StrCat("session ", child_id, " already exists"));
    }
    const std::optional<int64_t> expire = pg::ExpireMicros(stored);
    const v1::Session& s = stored.session();
    AGENTD_RETURN_IF_ERROR(
        c.Exec("insert fork",
               "INSERT INTO agentd_sessions (project_id, session_id, revision, last_seq, status, "
               "agent_id, expire_micros, parent_session_id, fork_seq, record) "
               "VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9)",
               {Bytes(project_id), Bytes(child_id), Int(s.last_seq()), Int(s.status()),
                Bytes(s.agent_id()), expire.has_value() ? Int(*expire) : pg::Null(20),
                Bytes(parent_id), Int(s.fork_seq()), pg::Proto(stored)})
            .status());
    // The parent's state as it is now, versions kept.
    return c
        .Exec("copy state",
              "INSERT INTO agentd_state (project_id, session_id, state_key, version, value_json) "
              "SELECT project_id, $3, state_key, version, value_json FROM agentd_state WHERE "
              "project_id = $1 AND session_id = $2",
              {Bytes(project_id), Bytes(parent_id), Bytes(child_id)})
        .status();
  });
}

absl::StatusOr<std::vector<v1::Event>> PostgresStore::ReadEvents(const std::string& project_id,
                                                                 const std::string& session_id,
                                                                 int64_t after_seq, int32_t limit) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", session_id));
  if (limit <= 0) return absl::InvalidArgumentError("limit must be > 0");
  const absl::Time now = absl::Now();
  std::vector<v1::Event> events;
  auto read_record =
      [&](Conn& c, const std::string& id) -> absl::StatusOr<std::optional<storage::SessionRecord>> {
    AGENTD_ASSIGN_OR_RETURN(Result r, c.Exec("get session",
                                             "SELECT record FROM agentd_sessions WHERE "
                                             "project_id = $1 AND session_id = $2",
                                             {Bytes(project_id), Bytes(id)}));
    if (r.rows() == 0) return std::optional<storage::SessionRecord>();
    storage::SessionRecord record;
    AGENTD_RETURN_IF_ERROR(ParseColumn("session", id, r.Bytes(0, 0), &record));
    return std::optional<storage::SessionRecord>(std::move(record));
  };
  // One snapshot for the chain and the events.
  AGENTD_RETURN_IF_ERROR(
      pool_->Transaction(pg::Pool::Mode::kReadOnlySnapshot, [&](Conn& c) -> absl::Status {
        events.clear();
        AGENTD_ASSIGN_OR_RETURN(std::optional<storage::SessionRecord> record,
                                read_record(c, session_id));
        if (!record.has_value() || pg::IsExpired(*record, now)) {
          return NotFound("session", session_id);
        }
        if (after_seq == std::numeric_limits<int64_t>::max()) return absl::OkStatus();
        // The log of a fork is its ancestors' events up to the fork points, then its own: walk up
        // the chain and read the segments oldest first. An expired ancestor is still read (it is
        // kept while this fork exists).
        std::vector<Segment> segments;
        segments.push_back({session_id, record->session().fork_seq() + 1});
        int64_t bound = record->session().fork_seq();
        for (int depth = 0; bound > 0 && !record->session().parent_session_id().empty(); ++depth) {
          const std::string parent_id = record->session().parent_session_id();
          if (depth >= kMaxForkDepth || !schema::IsValidKeyComponent(parent_id)) {
            return absl::DataLossError(
                absl::StrCat("session ", session_id, " has a corrupt chain of parents"));
          }
          AGENTD_ASSIGN_OR_RETURN(std::optional<storage::SessionRecord> parent,
                                  read_record(c, parent_id));
          if (!parent.has_value()) {
            return absl::DataLossError(absl::StrCat("session ", session_id,
                                                    " reads events of session ", parent_id,
                                                    ", which is missing"));
          }
          const int64_t parent_fork = parent->session().fork_seq();
          if (parent_fork < bound) segments.push_back({parent_id, parent_fork + 1, bound});
          bound = std::min(bound, parent_fork);
          record = std::move(parent);
        }
        const int64_t first = after_seq < 0 ? 1 : after_seq + 1;
        for (auto seg = segments.rbegin(); seg != segments.rend(); ++seg) {
          if (events.size() >= static_cast<size_t>(limit)) break;
          if (seg->last < first) continue;
          // A primary-key range scan of (project_id, session_id, seq).
          AGENTD_ASSIGN_OR_RETURN(
              Result r,
              c.Exec("read events",
                     "SELECT seq, event FROM agentd_events WHERE project_id = $1 AND "
                     "session_id = $2 AND seq >= $3 AND seq <= $4 ORDER BY seq LIMIT $5",
                     {Bytes(project_id), Bytes(seg->session_id), Int(std::max(first, seg->first)),
                      Int(seg->last), Int(limit - static_cast<int64_t>(events.size()))}));
          for (int i = 0; i < r.rows(); ++i) {
            v1::Event& event = events.emplace_back();
            AGENTD_RETURN_IF_ERROR(ParseColumn(
                "event", absl::StrCat(seg->session_id, "/", r.Int(i, 0)), r.Bytes(i, 1), &event));
            if (seg->session_id != session_id) event.set_session_id(session_id);
          }
        }
        return absl::OkStatus();
      }));
  return events;
}

// ---- Removal -----------------------------------------------------------------------------

absl::StatusOr<PostgresStore::Removal> PostgresStore::RemoveLocked(Conn& c,
                                                                   const std::string& project_id,
                                                                   const std::string& session_id,
                                                                   RemoveMode mode,
                                                                   absl::Time now) {
  AGENTD_ASSIGN_OR_RETURN(Result r, c.Exec("lock session",
                                           "SELECT record FROM agentd_sessions WHERE "
                                           "project_id = $1 AND session_id = $2 FOR UPDATE",
                                           {Bytes(project_id), Bytes(session_id)}));
  if (r.rows() == 0) {
    if (mode == RemoveMode::kExpired) return Removal{};
    return NotFound("session", session_id);
  }
  storage::SessionRecord record;
  const absl::Status parsed = ParseColumn("session", session_id, r.Bytes(0, 0), &record);
  auto purge = [&]() -> absl::Status {
    for (const char* table :
         {"agentd_events", "agentd_idempotency", "agentd_state", "agentd_sessions"}) {
      AGENTD_RETURN_IF_ERROR(
          c.Exec("remove session",
                 absl::StrCat("DELETE FROM ", table, " WHERE project_id = $1 AND session_id = $2"),
                 {Bytes(project_id), Bytes(session_id)})
              .status());
    }
    return absl::OkStatus();
  };
  if (!parsed.ok()) {
    if (mode == RemoveMode::kExpired) return parsed;
    // A corrupt record can still be deleted.
    AGENTD_RETURN_IF_ERROR(purge());
    return Removal{true, ""};
  }
  const bool expired = pg::IsExpired(record, now);
  if (mode == RemoveMode::kDelete && expired) return NotFound("session", session_id);
  if (mode == RemoveMode::kExpired && !expired) return Removal{};

  // Forks that read this session's events (fork_seq >= 1) hold it.
  AGENTD_ASSIGN_OR_RETURN(
      Result forks_r,
      c.Exec("find forks",
             "SELECT session_id FROM agentd_sessions WHERE project_id = $1 AND "
             "parent_session_id = $2 AND fork_seq > 0 ORDER BY octet_length(session_id), "
             "session_id FOR UPDATE",
             {Bytes(project_id), Bytes(session_id)}));
  std::vector<std::string> forks;
  for (int i = 0; i < forks_r.rows(); ++i) {
    const std::string fork(forks_r.Bytes(i, 0));
    if (mode == RemoveMode::kDelete) {
      // A fork that expired but is not swept yet does not hold the session: remove it now.
      absl::StatusOr<Removal> cleared =
          RemoveLocked(c, project_id, fork, RemoveMode::kExpired, now);
      // A corrupt fork (DATA_LOSS, found by this store, not by the server) still holds.
      if (!cleared.ok() && !absl::IsDataLoss(cleared.status())) return cleared.status();
      if (cleared.ok() && cleared->removed) continue;
    }
    forks.push_back(fork);
  }
  if (!forks.empty()) {
    if (mode == RemoveMode::kExpired) return Removal{};
    const size_t shown = std::min<size_t>(forks.size(), 5);
    return absl::FailedPreconditionError(absl::StrCat(
        "session ", session_id, " has ", forks.size(), " fork(s) that read its events (",
        absl::StrJoin(forks.begin(), forks.begin() + shown, ", "),
        forks.size() > shown ? ", ..." : "", "); delete them first"));
  }
  AGENTD_RETURN_IF_ERROR(purge());
  return Removal{true, record.session().fork_seq() > 0 ? record.session().parent_session_id() : ""};
}

absl::Status PostgresStore::DeleteSession(const std::string& project_id,
                                          const std::string& session_id) {
  AGENTD_RETURN_IF_ERROR(CheckIds(project_id, "session_id", session_id));
  const absl::Time now = absl::Now();
  absl::Status st = pool_->Transaction([&](Conn& c) -> absl::Status {
    return RemoveLocked(c, project_id, session_id, RemoveMode::kDelete, now).status();
  });
  // last_seq -1: deleted (watchers on other replicas are told, as on this one).
  if (st.ok()) NotifyCommitted(project_id, session_id, -1);
  return st;
}

absl::StatusOr<int64_t> PostgresStore::DeleteExpiredSessions(absl::Time now, int64_t max) {
  if (max <= 0) return absl::InvalidArgumentError("max must be > 0");
  int64_t removed = 0;
  // Keyset pages over the due sessions, in (expire_micros, project_id, session_id) order.
  std::optional<std::tuple<int64_t, std::string, std::string>> after;
  while (removed < max) {
    std::vector<Param> params = {pg::NowParam(now), Int(kSweepPage)};
    std::string sql =
        "SELECT expire_micros, project_id, session_id FROM agentd_sessions WHERE "
        "expire_micros IS NOT NULL AND expire_micros <= $1";
    if (after.has_value()) {
      params.push_back(Int(std::get<0>(*after)));
      params.push_back(Bytes(std::get<1>(*after)));
      params.push_back(Bytes(std::get<2>(*after)));
      sql += " AND (expire_micros, project_id, session_id) > ($3, $4, $5)";
    }
    sql += " ORDER BY expire_micros, project_id, session_id LIMIT $2";
    AGENTD_ASSIGN_OR_RETURN(Result due, pool_->Exec("find expired sessions", sql, params));
    for (int i = 0; i < due.rows() && removed < max; ++i) {
      const std::string project_id(due.Bytes(i, 1));
      // A removed fork may have been the last one holding its expired parent: retry up the
      // chain at once.
      std::string next(due.Bytes(i, 2));
      while (!next.empty() && removed < max) {
        Removal removal;
        const absl::Status st = pool_->Transaction([&](Conn& c) -> absl::Status {
          AGENTD_ASSIGN_OR_RETURN(removal,
                                  RemoveLocked(c, project_id, next, RemoveMode::kExpired, now));
          return absl::OkStatus();
        });
        if (absl::IsDataLoss(st)) break;  // a corrupt record: DeleteSession can remove it
        AGENTD_RETURN_IF_ERROR(st);
        if (!removal.removed) break;
        ++removed;
        next = removal.parent_id;
      }
    }
    if (due.rows() < kSweepPage) break;
    const int last = due.rows() - 1;
    after.emplace(due.Int(last, 0), std::string(due.Bytes(last, 1)),
                  std::string(due.Bytes(last, 2)));
  }
  // Idempotency records older than the retention: a retry after that runs the turn again.
  const int64_t cutoff = pg::Micros(now - options_.idempotency_retention);
  AGENTD_RETURN_IF_ERROR(
      pool_
          ->Exec("remove old idempotency records",
                 "DELETE FROM agentd_idempotency i USING (SELECT project_id, session_id, idem_key "
                 "FROM agentd_idempotency WHERE create_micros <= $1 ORDER BY create_micros "
                 "LIMIT $2) old WHERE i.project_id = old.project_id AND i.session_id = "
                 "old.session_id AND i.idem_key = old.idem_key",
                 {Int(cutoff), Int(max)})
          .status());
  return removed;
}

}  // namespace agentd::store
