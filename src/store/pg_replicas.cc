// PostgresStore, replicas: heartbeats (agentd_replicas), the commit feed (LISTEN on
// kPostgresEventsChannel and kPostgresCancelChannel) and cancel requests. docs/scale-out.md describes how the runtime uses them.
#include <libpq-fe.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <string_view>
#include <thread>

#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "store/pg_conn.h"
#include "store/pg_store.h"
#include "store/pg_util.h"

namespace agentd::store {
namespace {

bool PercentDecode(absl::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    int value = 0;
    if (i + 2 >= in.size()) return false;
    for (size_t j = i + 1; j <= i + 2; ++j) {
      const char c = in[j];
      const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
      if (digit < 0) return false;
      value = value * 16 + digit;
    }
    out->push_back(static_cast<char>(value));
    i += 2;
  }
  return !out->empty();
}

/// Waits (at most `timeout_ms`, -1 = no limit) until `fd` is readable or `wake_fd` is signalled;
/// true when `fd` is readable.
bool WaitReadable(int fd, int wake_fd, int timeout_ms) {
  pollfd fds[2] = {{wake_fd, POLLIN, 0}, {fd, POLLIN, 0}};
  const int n = poll(fds, fd >= 0 ? 2 : 1, timeout_ms);
  return n > 0 && fd >= 0 && (fds[1].revents & (POLLIN | POLLERR | POLLHUP)) != 0;
}

}  // namespace

bool ParsePostgresNotifyPayload(absl::string_view payload, std::string* project_id,
                                std::string* session_id, int64_t* last_seq) {
  std::vector<absl::string_view> parts = absl::StrSplit(payload, '/');
  return parts.size() == 3 && PercentDecode(parts[0], project_id) &&
         PercentDecode(parts[1], session_id) && absl::SimpleAtoi(parts[2], last_seq) &&
         *last_seq >= -1;
}

// ---- Heartbeats --------------------------------------------------------------------------

absl::Status PostgresStore::ReplicaHeartbeat(const std::string& replica_id, absl::Duration ttl) {
  AGENTD_RETURN_IF_ERROR(pg::CheckId("replica_id", replica_id));
  if (ttl <= absl::ZeroDuration()) return absl::InvalidArgumentError("heartbeat ttl must be > 0");
  AGENTD_RETURN_IF_ERROR(
      pool_
          ->Exec("replica heartbeat",
                 "INSERT INTO agentd_replicas (replica_id, expire_at) VALUES ($1, "
                 "clock_timestamp() + $2::float8 * interval '1 microsecond') ON CONFLICT "
                 "(replica_id) DO UPDATE SET expire_at = excluded.expire_at",
                 {pg::Bytes(replica_id), pg::Int(absl::ToInt64Microseconds(ttl))})
          .status());
  // Replicas gone for a day are forgotten (ids are never reused).
  return pool_
      ->Exec("forget old replicas",
             "DELETE FROM agentd_replicas WHERE expire_at < clock_timestamp() - interval '1 day'")
      .status();
}

absl::StatusOr<bool> PostgresStore::ReplicaAlive(const std::string& replica_id) {
  AGENTD_RETURN_IF_ERROR(pg::CheckId("replica_id", replica_id));
  AGENTD_ASSIGN_OR_RETURN(
      pg::Result r, pool_->Exec("replica alive",
                                "SELECT expire_at > clock_timestamp() FROM agentd_replicas "
                                "WHERE replica_id = $1",
                                {pg::Bytes(replica_id)}));
  return r.rows() == 1 && r.Bool(0, 0);
}

// ---- Commit feed -------------------------------------------------------------------------

class PostgresStore::CommitFeed {
 public:
  CommitFeed(std::string dsn, ReplicaNotices notices)
      : dsn_(std::move(dsn)),
        notices_(std::move(notices)),
        wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

  ~CommitFeed() {
    stop_.store(true);
    const uint64_t one = 1;
    if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof(one));
    if (thread_.joinable()) thread_.join();
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  /// Connects and LISTENs once (so that an unreachable server is reported to the caller), then
  /// runs the feed on its own thread.
  absl::Status Start() {
    if (wake_fd_ < 0) return absl::InternalError("commit feed: eventfd failed");
    AGENTD_ASSIGN_OR_RETURN(auto conn, Listen());
    thread_ = std::thread([this, c = std::move(conn)]() mutable { Run(std::move(c)); });
    return absl::OkStatus();
  }

 private:
  absl::StatusOr<std::unique_ptr<pg::Conn>> Listen() {
    AGENTD_ASSIGN_OR_RETURN(auto conn,
                            pg::Conn::Connect(dsn_, "SET application_name = 'agentd-listen'"));
    AGENTD_RETURN_IF_ERROR(conn->ExecScript(
        "listen",
        absl::StrCat("LISTEN ", kPostgresEventsChannel, "; LISTEN ", kPostgresCancelChannel)));
    return conn;
  }

  void Run(std::unique_ptr<pg::Conn> conn) {
    absl::Duration backoff = absl::Milliseconds(100);
    while (!stop_.load()) {
      if (conn == nullptr) {
        auto fresh = Listen();
        if (!fresh.ok()) {
          spdlog::warn("commit feed: {}; retrying in {}", std::string(fresh.status().message()),
                       absl::FormatDuration(backoff));
          WaitReadable(-1, wake_fd_, static_cast<int>(absl::ToInt64Milliseconds(backoff)));
          backoff = std::min(backoff * 2, absl::Seconds(5));
          continue;
        }
        conn = *std::move(fresh);
        backoff = absl::Milliseconds(100);
        spdlog::info("commit feed reconnected; watchers re-read their sessions");
        if (notices_.on_resync) notices_.on_resync();  // what was sent meanwhile is lost
      }
      PGconn* raw = conn->raw();
      WaitReadable(PQsocket(raw), wake_fd_, -1);
      if (stop_.load()) break;
      if (PQconsumeInput(raw) == 0 || PQstatus(raw) != CONNECTION_OK) {
        spdlog::warn("commit feed: connection lost; reconnecting");
        conn.reset();
        continue;
      }
      while (PGnotify* n = PQnotifies(raw)) {
        std::string project_id, session_id;
        int64_t last_seq = 0;
        if (ParsePostgresNotifyPayload(n->extra, &project_id, &session_id, &last_seq)) {
          const bool cancel = std::string_view(n->relname) == kPostgresCancelChannel;
          if (cancel && notices_.on_cancel) notices_.on_cancel(project_id, session_id);
          if (!cancel && notices_.on_commit) notices_.on_commit(project_id, session_id, last_seq);
        }
        PQfreemem(n);
      }
    }
  }

  const std::string dsn_;
  const ReplicaNotices notices_;
  const int wake_fd_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Here, where CommitFeed is complete.
PostgresStore::PostgresStore(PostgresStoreOptions options) : options_(std::move(options)) {}

PostgresStore::~PostgresStore() { feed_.reset(); }

void PostgresStore::StopWatchingCommits() { feed_.reset(); }

absl::Status PostgresStore::RequestCancel(const std::string& project_id,
                                          const std::string& session_id) {
  AGENTD_RETURN_IF_ERROR(pg::CheckIds(project_id, "session_id", session_id));
  return pool_
      ->Exec("request cancel", "SELECT pg_notify($1, $2)",
             {pg::Text(kPostgresCancelChannel),
              pg::Text(PostgresNotifyPayload(project_id, session_id, 0))})
      .status();
}

absl::Status PostgresStore::WatchCommits(ReplicaNotices notices) {
  if (feed_ != nullptr) return absl::FailedPreconditionError("commit notices are already watched");
  auto feed = std::make_unique<CommitFeed>(options_.dsn, std::move(notices));
  AGENTD_RETURN_IF_ERROR(feed->Start());
  feed_ = std::move(feed);
  return absl::OkStatus();
}

}  // namespace agentd::store
