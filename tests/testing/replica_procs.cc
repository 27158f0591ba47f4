#include "testing/replica_procs.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "testing/auth_channel.h"
#include "testing/free_port.h"
#include "testing/subprocess.h"

extern char** environ;

namespace agentd::testing {
namespace {

constexpr char kDsnEnv[] = "AGENTD_REPLICAS_TEST_DSN";

std::string Tail(const std::string& text, size_t n) {
  return text.size() <= n ? text : "..." + text.substr(text.size() - n);
}

// The environment for a child: ours, with each NAME of `extra` replaced. Built before fork():
// between fork and exec only async-signal-safe calls are allowed.
std::vector<std::string> ChildEnvironment(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    bool replaced = false;
    for (const std::string& x : extra) {
      const std::string name = x.substr(0, x.find('=') + 1);
      if (entry.compare(0, name.size(), name) == 0) replaced = true;
    }
    if (!replaced) env.push_back(entry);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// Polls gRPC health at `address` until SERVING; fails early if `process` exits.
absl::Status WaitServing(const std::string& address, LoggedProcess* process,
                         std::chrono::seconds timeout, const std::string& what) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    // A fresh channel per try: a channel that saw "connection refused" backs off for seconds.
    auto health = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
    grpc::health::v1::HealthCheckResponse resp;
    if (health->Check(&ctx, {}, &resp).ok() &&
        resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      return absl::OkStatus();
    }
    if (!process->Running()) {
      return absl::InternalError(
          absl::StrCat(what, " exited during startup; log:\n", process->LogTail()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(absl::StrCat(what, " at ", address, " not SERVING within ",
                                                  timeout.count(), " s; log:\n",
                                                  process->LogTail()));
}

// The value of `key=` in an access log line, up to the next space (or the closing quote when
// the value is quoted).
std::string Field(const std::string& line, const std::string& key) {
  const size_t at = line.find(" " + key + "=");
  if (at == std::string::npos) return "";
  size_t begin = at + key.size() + 2;
  if (begin < line.size() && line[begin] == '"') {
    const size_t end = line.find('"', begin + 1);
    return line.substr(begin + 1, end == std::string::npos ? std::string::npos : end - begin - 1);
  }
  const size_t end = line.find(' ', begin);
  return line.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

}  // namespace

absl::Status LoggedProcess::Start(const std::vector<std::string>& argv,
                                  const std::vector<std::string>& extra_env,
                                  const std::string& log_path) {
  if (pid_ > 0) return absl::FailedPreconditionError("already started");
  log_path_ = log_path;
  std::vector<std::string> env = ChildEnvironment(extra_env);
  std::vector<char*> argv_p, env_p;
  for (const std::string& a : argv) argv_p.push_back(const_cast<char*>(a.c_str()));
  argv_p.push_back(nullptr);
  for (std::string& e : env) env_p.push_back(e.data());
  env_p.push_back(nullptr);
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(absl::StrCat("cannot open ", log_path));
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(126);  // the test died before prctl
    dup2(log_fd, STDOUT_FILENO);
    dup2(log_fd, STDERR_FILENO);
    const int devnull = open("/dev/null", O_RDONLY);
    if (devnull >= 0) dup2(devnull, STDIN_FILENO);
    execve(argv_p[0], argv_p.data(), env_p.data());
    _exit(127);
  }
  close(log_fd);
  if (pid < 0) return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  pid_ = pid;
  return absl::OkStatus();
}

bool LoggedProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) pid_ = -1;
  return pid_ > 0;
}

void LoggedProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

void LoggedProcess::Stop(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return;
  kill(pid_, sig);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!Running()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Kill();
}

std::string LoggedProcess::LogTail(size_t n) const { return Tail(ReadWholeFile(log_path_), n); }

AgentdReplica::AgentdReplica(std::string dir, std::string dsn, std::string extra_yaml,
                             int ttl_seconds)
    : dir_(std::move(dir)),
      dsn_(std::move(dsn)),
      extra_yaml_(std::move(extra_yaml)),
      ttl_seconds_(ttl_seconds) {}

absl::Status AgentdReplica::Start() {
  absl::Status st = Spawn();
  return st.ok() ? WaitReady() : st;
}

absl::Status AgentdReplica::Spawn() {
  port_ = FreePort();
  metrics_port_ = FreePort();
  const std::string config = dir_ + "/agentd.yaml";
  std::string yaml = absl::StrCat("listen: ", address(), "\n");
  absl::StrAppend(&yaml, "data_dir: ", dir_, "/data\n");
  absl::StrAppend(&yaml, "metrics_listen: ", metrics_address(), "\n");
  absl::StrAppend(&yaml, "store:\n  type: postgres\n");
  absl::StrAppend(&yaml, "  postgres_dsn_env: ", kDsnEnv, "\n");
  absl::StrAppend(&yaml, "  replica_ttl_seconds: ", ttl_seconds_, "\n");
  WriteWholeFile(config, yaml + extra_yaml_);
  return process_.Start(
      {AGENTD_BINARY, "--config", config, "--log-level", "info"},
      {absl::StrCat(kDsnEnv, "=", dsn_), absl::StrCat("AGENTD_BOOTSTRAP_KEY=", kTestAdminKey)},
      dir_ + "/agentd.log");
}

absl::Status AgentdReplica::WaitReady() {
  return WaitServing(address(), &process_, std::chrono::seconds(30), "agentd");
}

std::shared_ptr<grpc::Channel> AgentdReplica::NewChannel() const {
  return AuthChannel(address(), grpc::InsecureChannelCredentials(), kTestAdminKey);
}

absl::Status NginxFront::Start(const std::vector<std::string>& upstreams) {
  const char* env = std::getenv("NGINX");
  const std::string nginx = env != nullptr && *env != '\0' ? env : "/usr/sbin/nginx";
  if (access(nginx.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        nginx, " not found: install nginx (apt-get install -y nginx-light) or set NGINX"));
  }
  if (access(AGENTD_NGINX_RENDER, R_OK) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(AGENTD_NGINX_RENDER, " not found"));
  }
  port_ = FreePort();
  const CommandResult r = RunCommand(
      absl::StrCat("NGINX=", ShellQuote(nginx), " bash ", ShellQuote(AGENTD_NGINX_RENDER), " ",
                   address(), " ", absl::StrJoin(upstreams, ","), " ", ShellQuote(dir_)),
      dir_);
  if (r.code != 0) {
    return absl::InternalError(absl::StrCat("render.sh failed (exit ", r.code, "): ", r.all()));
  }
  // As root, nginx's workers would run as `nobody`, which cannot use the temp dirs under a
  // root-owned 0700 scratch dir: run them as root (the rendered config has no `user` line).
  std::string globals = "daemon off;";
  if (geteuid() == 0) globals += " user root;";
  absl::Status st = process_.Start({nginx, "-p", dir_, "-c", dir_ + "/nginx.conf", "-g", globals},
                                   {}, dir_ + "/nginx.stderr");
  if (!st.ok()) return st;
  st = WaitServing(address(), &process_, std::chrono::seconds(20), "nginx");
  if (!st.ok()) return absl::Status(st.code(), absl::StrCat(st.message(), "\n", LogTail()));
  return absl::OkStatus();
}

std::shared_ptr<grpc::Channel> NginxFront::NewChannel() const {
  return AuthChannel(address(), grpc::InsecureChannelCredentials(), kTestAdminKey);
}

std::string NginxFront::LogTail() const {
  return absl::StrCat("nginx stderr: ", Tail(ReadWholeFile(dir_ + "/nginx.stderr"), 1500),
                      "\nnginx error.log: ", Tail(ReadWholeFile(dir_ + "/logs/error.log"), 3000));
}

ReplicaSet::~ReplicaSet() {
  nginx_.reset();
  replicas_.clear();
}

absl::Status ReplicaSet::Start(const std::string& dir, const std::string& dsn,
                               const std::string& extra_yaml, int count, int ttl_seconds) {
  std::vector<std::string> upstreams;
  for (int i = 0; i < count; ++i) {
    const std::string sub = absl::StrCat(dir, "/replica", i);
    std::filesystem::create_directories(sub);
    replicas_.push_back(std::make_unique<AgentdReplica>(sub, dsn, extra_yaml, ttl_seconds));
    const absl::Status st = replicas_.back()->Start();
    if (!st.ok()) return absl::Status(st.code(), absl::StrCat("replica ", i, ": ", st.message()));
    upstreams.push_back(replicas_.back()->address());
  }
  std::filesystem::create_directories(dir + "/nginx");
  nginx_ = std::make_unique<NginxFront>(dir + "/nginx");
  return nginx_->Start(upstreams);
}

std::string ReplicaSet::LogTails() const {
  std::string out;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    absl::StrAppend(&out, "---- replica ", i, " (", replicas_[i]->address(), ") log tail:\n",
                    replicas_[i]->LogTail(2500), "\n");
  }
  if (nginx_ != nullptr) absl::StrAppend(&out, "---- ", nginx_->LogTail(), "\n");
  return out;
}

std::vector<AccessLine> ReadAccessLog(const std::string& path, size_t offset) {
  std::vector<AccessLine> out;
  const std::string text = ReadWholeFile(path);
  if (offset > text.size()) return out;
  std::istringstream lines(text.substr(offset));
  for (std::string line; std::getline(lines, line);) {
    // ADDR [TIME] "POST /agentd.v1.X/Y HTTP/2.0" STATUS grpc=T/H session="S" upstream=U, U time=T
    const size_t q1 = line.find('"');
    const size_t q2 = q1 == std::string::npos ? q1 : line.find('"', q1 + 1);
    if (q2 == std::string::npos) continue;
    std::istringstream request(line.substr(q1 + 1, q2 - q1 - 1));
    std::string verb;
    AccessLine a;
    request >> verb >> a.method;
    std::istringstream rest(line.substr(q2 + 1));
    if (!(rest >> a.http_status)) continue;
    const std::string grpc = Field(line, "grpc");
    const size_t slash = grpc.find('/');
    const std::string trailer = grpc.substr(0, slash);
    const std::string header = slash == std::string::npos ? "" : grpc.substr(slash + 1);
    a.grpc_status = trailer != "-" && !trailer.empty() ? trailer : header != "-" ? header : "";
    a.session = Field(line, "session");
    const size_t up = line.find(" upstream=");
    const size_t time = line.rfind(" time=");
    if (up != std::string::npos && time != std::string::npos && time > up) {
      a.upstreams = line.substr(up + 10, time - up - 10);
      const size_t last = a.upstreams.find_last_of(", ");
      a.upstream = last == std::string::npos ? a.upstreams : a.upstreams.substr(last + 1);
      if (a.upstream == "-") a.upstream.clear();
    }
    out.push_back(std::move(a));
  }
  return out;
}

size_t FileSize(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? static_cast<size_t>(st.st_size) : 0;
}

}  // namespace agentd::testing
