// Real processes for the scale-out tests (tests/replicas_nginx_test.cc): agentd replicas sharing
// one PostgreSQL database, and nginx in front of them with the config rendered by
// deploy/nginx/render.sh. Every process writes its stdout and stderr to a log file (its tail goes
// into failure messages), is SIGKILLed by the destructor, and dies with the test process
// (PR_SET_PDEATHSIG), so nothing outlives a failed or crashed test.
//
// Threading: the objects are not thread-safe; start and stop them from the test's main thread
// (PR_SET_PDEATHSIG fires when the *thread* that forked exits). The free functions are
// thread-safe.
#pragma once

#include <grpcpp/channel.h>
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace agentd::testing {

/// One child process with its output in a log file.
class LoggedProcess {
 public:
  LoggedProcess() = default;
  ~LoggedProcess() { Kill(); }
  LoggedProcess(const LoggedProcess&) = delete;
  LoggedProcess& operator=(const LoggedProcess&) = delete;

  /// Starts argv[0] (a path) with this process's environment, where each `NAME=value` of
  /// `extra_env` replaces any inherited NAME. stdout and stderr are appended to `log_path`.
  absl::Status Start(const std::vector<std::string>& argv,
                     const std::vector<std::string>& extra_env, const std::string& log_path);
  /// True while the child runs (reaps it once it has exited).
  bool Running();
  /// SIGKILL and reap (no-op when not running).
  void Kill();
  /// Sends `sig` and waits up to `timeout` for the exit, then SIGKILL.
  void Stop(int sig, std::chrono::milliseconds timeout);
  pid_t pid() const { return pid_; }
  /// The last `n` bytes of the log file.
  std::string LogTail(size_t n = 3000) const;

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

/// One agentd process on store.type postgres, its own data dir, listen and metrics ports, started
/// with AGENTD_BOOTSTRAP_KEY = kTestAdminKey (testing/auth_channel.h): the first replica on a new
/// database creates that admin key, the others find it.
class AgentdReplica {
 public:
  /// `dir`: an existing scratch dir for this replica (config, data dir, log). `dsn`: the libpq
  /// connection string, passed in the env var the config names. `extra_yaml`: more top-level
  /// config (backends, models). `ttl_seconds`: store.replica_ttl_seconds.
  AgentdReplica(std::string dir, std::string dsn, std::string extra_yaml, int ttl_seconds);

  /// Spawn(), then WaitReady().
  absl::Status Start();
  /// Writes the config and starts agentd (without waiting).
  absl::Status Spawn();
  /// Waits (up to 30 s) until gRPC health answers SERVING. The error (agentd exited, or did not
  /// answer in time) carries the log's tail.
  absl::Status WaitReady();
  /// kill -9.
  void Kill() { process_.Kill(); }
  /// SIGTERM, then SIGKILL after 5 s.
  void Stop() { process_.Stop(SIGTERM, std::chrono::seconds(5)); }
  bool Running() { return process_.Running(); }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string metrics_address() const { return "127.0.0.1:" + std::to_string(metrics_port_); }
  /// A channel sending the admin key on every call.
  std::shared_ptr<grpc::Channel> NewChannel() const;
  std::string LogTail(size_t n = 3000) const { return process_.LogTail(n); }

 private:
  const std::string dir_, dsn_, extra_yaml_;
  const int ttl_seconds_;
  int port_ = 0, metrics_port_ = 0;
  LoggedProcess process_;
};

/// nginx in front of the replicas, configured by deploy/nginx/render.sh (the test adapts to
/// running as root by adding `user root;`: the rendered config has no `user` line).
class NginxFront {
 public:
  /// `dir`: an existing scratch dir (render.sh's output dir).
  explicit NginxFront(std::string dir) : dir_(std::move(dir)) {}
  ~NginxFront() { Stop(); }

  /// Renders the config for `upstreams` (HOST:PORT each), starts nginx in the foreground and waits
  /// until gRPC health through it answers SERVING (up to 20 s).
  absl::Status Start(const std::vector<std::string>& upstreams);
  /// SIGTERM (fast shutdown), SIGKILL after 5 s.
  void Stop() { process_.Stop(SIGTERM, std::chrono::seconds(5)); }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::shared_ptr<grpc::Channel> NewChannel() const;
  std::string access_log_path() const { return dir_ + "/logs/access.log"; }
  /// nginx's error log and stderr tails.
  std::string LogTail() const;

 private:
  const std::string dir_;
  int port_ = 0;
  LoggedProcess process_;
};

/// `count` replicas on one database, started one after the other (the first creates the default
/// project and its admin key in the database; the others must find them and accept the key),
/// and nginx in front of them. The destructor stops nginx, then the replicas.
class ReplicaSet {
 public:
  ReplicaSet() = default;
  ~ReplicaSet();
  ReplicaSet(const ReplicaSet&) = delete;
  ReplicaSet& operator=(const ReplicaSet&) = delete;

  /// `dir`: an existing scratch dir; the others as for AgentdReplica.
  absl::Status Start(const std::string& dir, const std::string& dsn, const std::string& extra_yaml,
                     int count, int ttl_seconds);
  AgentdReplica& replica(int i) { return *replicas_[i]; }
  int size() const { return static_cast<int>(replicas_.size()); }
  NginxFront& nginx() { return *nginx_; }
  /// Every process's log tail, for failure messages.
  std::string LogTails() const;

 private:
  std::vector<std::unique_ptr<AgentdReplica>> replicas_;
  std::unique_ptr<NginxFront> nginx_;
};

/// One line of the agentd_grpc access log (deploy/nginx/agentd.conf).
struct AccessLine {
  std::string method;  // "/agentd.v1.SessionService/RunTurn"
  int http_status = 0;
  std::string grpc_status;  // from the trailers, else the headers; "" when neither
  std::string session;      // the x-agentd-session header ("" when absent)
  std::string upstream;     // the last replica tried ("" when none)
  std::string upstreams;    // every replica tried, as nginx logged them
};
/// The access log's lines from byte `offset` on (lines it cannot parse are skipped).
std::vector<AccessLine> ReadAccessLog(const std::string& path, size_t offset = 0);
/// The file's size (0 if missing).
size_t FileSize(const std::string& path);


}  // namespace agentd::testing
