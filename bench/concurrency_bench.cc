// concurrency_bench: N turns in flight at once against a slow model.
//
// A FakeOpenAiServer (answering every chat completion after --latency-ms) runs in a CHILD
// process, forked before this process creates any thread, so the two sides' sockets do not share
// one descriptor table (each in-flight turn is one fd on each side). agentd runs in-process
// (AgentdServer: temp data dir, durability sync, one `openai` backend with max_concurrency 20000
// pointed at the fake, one model on it). The bench creates N sessions (async unary calls, a
// bounded window), runs a small warm-up, then fires N RunTurn calls at once with the gRPC
// callback client API over a few channels and waits for all of them.
//
// Measured: wall time from the first call issued to the last completion, per-turn latency,
// errors (any non-OK status, non-COMPLETED turn or wrong output), this process's thread count
// (/proc/self/task) before and at peak during the run, RSS (VmRSS sampled, VmHWM, ru_maxrss),
// process CPU, and, polled from the child, when the fake had received every request and when it
// had answered every one (so the run splits into send / model wait / finish).
// One level per process (so peak RSS belongs to that level); run it again with --turns for
// scaling. `other_load_cores` reports how busy the rest of the machine was meanwhile; the
// "run window" line gives CLOCK_MONOTONIC bounds for `perf record -k CLOCK_MONOTONIC` +
// `perf report --time`. Output: a human-readable table and one `RESULT {json}` line; exit code
// 1 if any turn failed, 2 if setup failed. See docs/benchmarks.md "Inference routing".
#include <dirent.h>
#include <fcntl.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench_util.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "agentd/v1/session.grpc.pb.h"
#include "server/server.h"
#include "testing/fake_openai.h"

namespace {

using agentd::bench::CpuSeconds;
using agentd::bench::LoadAverage;
using agentd::bench::SystemBusySeconds;
using agentd::bench::WriteAll;

using Clock = std::chrono::steady_clock;
namespace v1 = agentd::v1;

constexpr int kDefaultTurns = 10000;
constexpr int kQuickTurns = 1000;
constexpr int kDefaultLatencyMs = 1000;
constexpr int kDefaultWarmup = 64;
constexpr int kCreateWindow = 256;  // CreateSession calls in flight during setup
constexpr auto kCallTimeout = std::chrono::seconds(60);
constexpr size_t kInputBytes = 200;
constexpr int kSampleEveryMs = 10;
constexpr char kBenchKey[] = "agd-concurrency-bench-admin-key";  // in-process bootstrap key
constexpr int kFdSampleEvery = 50;  // fd count every 500 ms (10k entries cost ~10 ms)
constexpr int kMaxErrorSamples = 10;
const char kFakeText[] = "Hello from the fake model.";
const char kModel[] = "fake-model";
constexpr double kTargetWallS = 3.0;
constexpr double kTargetRssMib = 1024;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

/// CPU time of the calling thread (user + system).
double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

/// utime + stime from a /proc stat file (a process's or a thread's); 0 if unreadable.
double StatCpuSeconds(const std::string& path) {
  std::ifstream in(path);
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream fields(stat.substr(paren + 2));
  std::string f;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> f; ++i) {  // field 3 is the state
    if (i == 14) utime = std::atof(f.c_str());
    if (i == 15) stime = std::atof(f.c_str());
  }
  return (utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// utime + stime of another process (the fake child); 0 if unreadable.
double ProcessCpuSeconds(pid_t pid) {
  return StatCpuSeconds("/proc/" + std::to_string(pid) + "/stat");
}

/// Name and CPU seconds of each live thread of this process, by thread id (agentd names its
/// own: agentd-turn, agentd-openai, …; gRPC's are grpc_global_tim, default-executo, …).
std::map<std::string, std::pair<std::string, double>> CpuByThread() {
  std::map<std::string, std::pair<std::string, double>> out;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return out;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const std::string task = std::string("/proc/self/task/") + e->d_name;
    std::ifstream comm(task + "/comm");
    std::string name;
    if (!std::getline(comm, name)) continue;
    out[e->d_name] = {name, StatCpuSeconds(task + "/stat")};
  }
  closedir(dir);
  return out;
}

int ThreadCount() {
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n;
}

/// A "VmXXX:  1234 kB" field of /proc/self/status, in KiB (-1 if missing).
long StatusKib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t len = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, len, field) == 0 && line.size() > len && line[len] == ':') {
      return std::strtol(line.c_str() + len + 1, nullptr, 10);
    }
  }
  return -1;
}

int OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the DIR's own fd
}

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

// ---- The fake model server in a child process ---------------------------------------------

std::optional<std::string> ReadLine(int fd) {
  std::string line;
  char c;
  for (;;) {
    const ssize_t n = read(fd, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    if (c == '\n') return line;
    line.push_back(c);
  }
}

struct FakeStats {
  long count = 0, in_flight = 0, max_in_flight = 0;
};

/// The child's side: serve until the command pipe closes. Commands: 's' → "count in_flight
/// max_in_flight\n". Never returns.
[[noreturn]] void RunFakeChild(int cmd_fd, int reply_fd, int latency_ms) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the bench
  signal(SIGPIPE, SIG_IGN);
  int code = 0;
  try {
    agentd::testing::FakeOpenAiServer fake;
    fake.set_record_requests(false);
    agentd::testing::FakeReply reply;
    reply.text = kFakeText;
    reply.latency_ms = latency_ms;
    fake.SetDefault(reply);
    WriteAll(reply_fd, std::to_string(fake.port()) + "\n");
    char c;
    for (;;) {
      const ssize_t n = read(cmd_fd, &c, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // the bench closed the pipe (or died)
      if (c == 's') {
        WriteAll(reply_fd, std::to_string(fake.request_count()) + " " +
                               std::to_string(fake.in_flight()) + " " +
                               std::to_string(fake.max_in_flight()) + "\n");
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concurrency_bench (fake child): %s\n", e.what());
    WriteAll(reply_fd, "error\n");
    code = 1;
  }
  _exit(code);
}

class FakeChild {
 public:
  /// Forks the child; call before this process creates any thread.
  static std::unique_ptr<FakeChild> Start(int latency_ms) {
    int to_child[2], from_child[2];
    if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0) return nullptr;
    const pid_t pid = fork();
    if (pid < 0) return nullptr;
    if (pid == 0) {
      close(to_child[1]);
      close(from_child[0]);
      RunFakeChild(to_child[0], from_child[1], latency_ms);
    }
    close(to_child[0]);
    close(from_child[1]);
    auto child = std::unique_ptr<FakeChild>(new FakeChild(pid, to_child[1], from_child[0]));
    auto line = ReadLine(child->reply_fd_);
    if (!line || std::atoi(line->c_str()) <= 0) return nullptr;
    child->port_ = std::atoi(line->c_str());
    return child;
  }

  ~FakeChild() {
    close(cmd_fd_);  // the child exits on EOF
    close(reply_fd_);
    int status = 0;
    waitpid(pid_, &status, 0);
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }

  /// Thread-safe.
  std::optional<FakeStats> Stats() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!WriteAll(cmd_fd_, "s")) return std::nullopt;
    auto line = ReadLine(reply_fd_);
    FakeStats s;
    if (!line || std::sscanf(line->c_str(), "%ld %ld %ld", &s.count, &s.in_flight,
                             &s.max_in_flight) != 3) {
      return std::nullopt;
    }
    return s;
  }

 private:
  FakeChild(pid_t pid, int cmd_fd, int reply_fd) : pid_(pid), cmd_fd_(cmd_fd), reply_fd_(reply_fd) {}
  const pid_t pid_;
  const int cmd_fd_;
  const int reply_fd_;
  int port_ = 0;
  std::mutex mu_;
};

// ---- Sampler: threads, RSS and the fake's progress during the run -------------------------

class Sampler {
 public:
  Sampler(FakeChild* fake, long fake_target_count)
      : fake_(fake), target_(fake_target_count), t0_(Clock::now()) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Sampler() { Stop(); }

  void Stop() {
    if (stop_.exchange(true)) return;
    thread_.join();
  }
  /// Starts recording peaks from now (earlier samples are discarded).
  void Arm(Clock::time_point t0) {
    absl::MutexLock lock(&mu_);
    t0_ = t0;
    armed_ = true;
    peak_threads_ = 0;
    peak_rss_kib_ = 0;
    peak_fds_ = 0;
    all_received_s_.reset();
    all_answered_s_.reset();
    peak_fake_in_flight_ = 0;
  }

  int peak_threads() const { absl::MutexLock l(&mu_); return peak_threads_; }
  long peak_rss_kib() const { absl::MutexLock l(&mu_); return peak_rss_kib_; }
  int peak_fds() const { absl::MutexLock l(&mu_); return peak_fds_; }
  long peak_fake_in_flight() const { absl::MutexLock l(&mu_); return peak_fake_in_flight_; }
  std::optional<double> all_received_s() const { absl::MutexLock l(&mu_); return all_received_s_; }
  std::optional<double> all_answered_s() const { absl::MutexLock l(&mu_); return all_answered_s_; }

 private:
  void Run() {
    while (!stop_.load()) {
      const int threads = ThreadCount();
      const long rss = StatusKib("VmRSS");
      // /proc/self/fd lists one entry per socket (10k+): read it rarely, it is not cheap.
      const int fds = (samples_++ % kFdSampleEvery == 0) ? OpenFds() : -1;
      std::optional<FakeStats> fs = fake_->Stats();
      const Clock::time_point now = Clock::now();
      {
        absl::MutexLock lock(&mu_);
        if (armed_) {
          peak_threads_ = std::max(peak_threads_, threads);
          peak_rss_kib_ = std::max(peak_rss_kib_, rss);
          peak_fds_ = std::max(peak_fds_, fds);
          if (fs) {
            peak_fake_in_flight_ = std::max(peak_fake_in_flight_, fs->in_flight);
            if (!all_received_s_ && fs->count >= target_) all_received_s_ = Seconds(now - t0_);
            if (all_received_s_ && !all_answered_s_ && fs->in_flight == 0) {
              all_answered_s_ = Seconds(now - t0_);
            }
          }
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(kSampleEveryMs));
    }
  }

  FakeChild* const fake_;
  const long target_;
  std::atomic<bool> stop_{false};
  int64_t samples_ = 0;  // sampler thread only
  mutable absl::Mutex mu_;
  Clock::time_point t0_ ABSL_GUARDED_BY(mu_);
  bool armed_ ABSL_GUARDED_BY(mu_) = false;
  int peak_threads_ ABSL_GUARDED_BY(mu_) = 0;
  long peak_rss_kib_ ABSL_GUARDED_BY(mu_) = 0;
  int peak_fds_ ABSL_GUARDED_BY(mu_) = 0;
  long peak_fake_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  std::optional<double> all_received_s_ ABSL_GUARDED_BY(mu_);
  std::optional<double> all_answered_s_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

// ---- Client ---------------------------------------------------------------------------------

// Every call carries the in-process server's admin key, as clients must (API.md "Metadata").
void Authorize(grpc::ClientContext* ctx) {
  ctx->AddMetadata("authorization", std::string("Bearer ") + kBenchKey);
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& addr) {
  grpc::ChannelArguments args;
  // Without this, channels with equal arguments share one subchannel, i.e. one TCP connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
}

/// Creates `n` sessions of `agent_id` with async unary calls, `kCreateWindow` in flight.
class SessionCreator {
 public:
  SessionCreator(std::vector<std::unique_ptr<v1::SessionService::Stub>>* stubs,
                 std::string agent_id, int n)
      : stubs_(stubs), agent_id_(std::move(agent_id)), ids_(n), calls_(n), done_(n) {}

  /// The ids, or nullopt (with the first error on stderr) if any call failed.
  std::optional<std::vector<std::string>> Run() {
    const int n = static_cast<int>(ids_.size());
    for (int i = 0; i < std::min(n, kCreateWindow); ++i) Issue(next_.fetch_add(1));
    done_.Wait();
    if (failed_.load()) {
      std::fprintf(stderr, "concurrency_bench: CreateSession: %s\n", first_error_.c_str());
      return std::nullopt;
    }
    return ids_;
  }

 private:
  struct Call {
    grpc::ClientContext ctx;
    v1::CreateSessionRequest request;
    v1::Session response;
  };

  void Issue(int i) {
    if (i >= static_cast<int>(ids_.size())) return;
    calls_[i] = std::make_unique<Call>();
    Call* c = calls_[i].get();
    c->ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    Authorize(&c->ctx);
    c->request.set_agent_id(agent_id_);
    (*stubs_)[i % stubs_->size()]->async()->CreateSession(
        &c->ctx, &c->request, &c->response, [this, i, c](grpc::Status st) {
          if (st.ok()) {
            ids_[i] = c->response.session_id();
          } else if (!failed_.exchange(true)) {
            first_error_ = st.error_message();
          }
          calls_[i].reset();
          Issue(next_.fetch_add(1));
          done_.DecrementCount();
        });
  }

  std::vector<std::unique_ptr<v1::SessionService::Stub>>* stubs_;
  const std::string agent_id_;
  std::vector<std::string> ids_;
  std::vector<std::unique_ptr<Call>> calls_;
  std::atomic<int> next_{0};
  std::atomic<bool> failed_{false};
  std::string first_error_;
  absl::BlockingCounter done_;
};

struct TurnCall {
  grpc::ClientContext ctx;
  v1::RunTurnRequest request;
  v1::TurnResult response;
  grpc::Status status;
  Clock::time_point start, end;
};

std::string InputText(int i) {
  std::string text = "concurrent turn " + std::to_string(i) + ": ";
  static constexpr char kFiller[] = "the quick brown fox jumps over the lazy dog. ";
  while (text.size() < kInputBytes) text += kFiller;
  text.resize(kInputBytes);
  return text;
}

/// Fires one RunTurn per session at once; returns when every call has completed.
std::vector<std::unique_ptr<TurnCall>> FireTurns(
    std::vector<std::unique_ptr<v1::SessionService::Stub>>& stubs,
    const std::vector<std::string>& sessions, Clock::time_point* t0, Clock::time_point* t_issued,
    double* issue_cpu_s, const std::function<void(Clock::time_point)>& on_start) {
  const int n = static_cast<int>(sessions.size());
  std::vector<std::unique_ptr<TurnCall>> calls(n);
  for (int i = 0; i < n; ++i) {  // built before the clock starts
    calls[i] = std::make_unique<TurnCall>();
    TurnCall* c = calls[i].get();
    c->ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    Authorize(&c->ctx);
    c->request.set_session_id(sessions[i]);
    v1::InputMessage* in = c->request.add_input();
    in->set_role(v1::ROLE_USER);
    in->set_text(InputText(i));
  }
  absl::BlockingCounter done(n);
  const double cpu0 = ThreadCpuSeconds();
  *t0 = Clock::now();
  if (on_start) on_start(*t0);
  for (int i = 0; i < n; ++i) {
    TurnCall* c = calls[i].get();
    c->start = Clock::now();
    stubs[i % stubs.size()]->async()->RunTurn(&c->ctx, &c->request, &c->response,
                                              [c, &done](grpc::Status st) {
                                                c->end = Clock::now();
                                                c->status = std::move(st);
                                                done.DecrementCount();
                                              });
  }
  *t_issued = Clock::now();
  *issue_cpu_s = ThreadCpuSeconds() - cpu0;
  done.Wait();
  return calls;
}

std::optional<std::string> MakeTempDir() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "agentd-concurrency-bench-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) return std::nullopt;
  return tmpl;
}

struct Result {
  int turns = 0;
  int latency_ms = 0;
  int channels = 0;
  std::string durability;
  std::string deadlock_detection;
  int64_t completed = 0;
  int64_t errors = 0;
  double wall_s = 0, issue_s = 0;
  double issue_cpu_s = 0;  // CPU of the issuing thread while it issued
  double mono_start_s = 0, mono_end_s = 0;
  double p50_ms = 0, p90_ms = 0, p99_ms = 0, max_ms = 0;
  std::optional<double> fake_all_received_s, fake_all_answered_s;
  long fake_max_in_flight = 0;
  long fake_requests = 0;
  int threads_start = 0, threads_before = 0, threads_peak = 0, threads_after = 0;
  double rss_before_mib = 0, rss_peak_mib = 0, vmhwm_mib = 0, maxrss_mib = 0;
  int fds_before = 0, fds_peak = 0;
  double setup_s = 0;
  double create_sessions_s = 0;  // part of setup_s
  double cpu_s = 0;
  double fake_cpu_s = 0;        // the child
  double other_load_cores = 0;  // cores other processes kept busy during the run
  double load_before = 0, load_after = 0;
  // CPU seconds during the run by thread name (threads that ended during the run are missing).
  std::map<std::string, double> cpu_by_thread;
};

std::string Opt(const std::optional<double>& v, const char* fmt) {
  if (!v) return "null";
  char buf[32];
  std::snprintf(buf, sizeof(buf), fmt, *v);
  return buf;
}

void PrintTable(const Result& r) {
  std::printf("%7s %7s %8s %8s %8s %8s %8s %7s %9s %9s %8s %15s %16s %11s %11s\n", "turns",
              "lat_ms", "wall_s", "issue_s", "p50_ms", "p99_ms", "max_ms", "errors", "fake_recv",
              "fake_done", "fake_max", "threads(b>peak)", "rss_mib(b>peak)", "cpu_ms/turn",
              "other_cores");
  std::printf("%7d %7d %8.3f %8.3f %8.1f %8.1f %8.1f %7" PRId64
              " %9s %9s %8ld %7d>%-7d %7.0f>%-8.0f %11.3f %11.2f\n",
              r.turns, r.latency_ms, r.wall_s, r.issue_s, r.p50_ms, r.p99_ms, r.max_ms, r.errors,
              Opt(r.fake_all_received_s, "%.3f").c_str(), Opt(r.fake_all_answered_s, "%.3f").c_str(),
              r.fake_max_in_flight, r.threads_before, r.threads_peak, r.rss_before_mib,
              r.rss_peak_mib, r.turns > 0 ? r.cpu_s * 1000 / r.turns : 0, r.other_load_cores);
}

std::string ByThreadJson(const Result& r) {
  std::string out;
  for (const auto& [name, cpu] : r.cpu_by_thread) {
    char buf[160];
    std::snprintf(buf, sizeof(buf), "%s\"%s\":%.3f", out.empty() ? "" : ",", name.c_str(), cpu);
    out += buf;
  }
  return out;
}

void PrintJson(const Result& r) {
  std::printf(
      "RESULT {\"bench\":\"concurrency\",\"turns\":%d,\"latency_ms\":%d,\"channels\":%d,"
      "\"durability\":\"%s\",\"absl_deadlock_detection\":\"%s\",\"completed\":%" PRId64 ",\"errors\":%" PRId64
      ",\"wall_s\":%.3f,\"issue_s\":%.3f,\"issue_thread_cpu_s\":%.3f,\"p50_ms\":%.1f,\"p90_ms\":%.1f,\"p99_ms\":%.1f,"
      "\"max_ms\":%.1f,\"fake_all_received_s\":%s,\"fake_all_answered_s\":%s,"
      "\"fake_max_in_flight\":%ld,\"fake_requests\":%ld,\"threads_start\":%d,"
      "\"threads_before\":%d,\"threads_peak\":%d,\"threads_after\":%d,\"rss_before_mib\":%.1f,"
      "\"rss_peak_mib\":%.1f,\"vmhwm_mib\":%.1f,\"ru_maxrss_mib\":%.1f,\"fds_before\":%d,"
      "\"fds_peak\":%d,\"setup_s\":%.3f,\"create_sessions_s\":%.3f,\"process_cpu_s\":%.3f,\"process_cpu_ms_per_turn\":%.3f,"
      "\"fake_cpu_s\":%.3f,\"other_load_cores\":%.2f,\"loadavg_1m_before\":%.2f,"
      "\"loadavg_1m_after\":%.2f,\"cpu_s_by_thread\":{%s}}\n",
      r.turns, r.latency_ms, r.channels, r.durability.c_str(), r.deadlock_detection.c_str(),
      r.completed, r.errors, r.wall_s,
      r.issue_s, r.issue_cpu_s, r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms,
      Opt(r.fake_all_received_s, "%.3f").c_str(), Opt(r.fake_all_answered_s, "%.3f").c_str(),
      r.fake_max_in_flight, r.fake_requests, r.threads_start, r.threads_before, r.threads_peak,
      r.threads_after, r.rss_before_mib, r.rss_peak_mib, r.vmhwm_mib, r.maxrss_mib, r.fds_before,
      r.fds_peak, r.setup_s, r.create_sessions_s, r.cpu_s, r.turns > 0 ? r.cpu_s * 1000 / r.turns : 0, r.fake_cpu_s,
      r.other_load_cores, r.load_before, r.load_after, ByThreadJson(r).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"concurrency_bench: N concurrent RunTurn calls against a slow fake model"};
  std::optional<int> turns_opt;
  int latency_ms = kDefaultLatencyMs;
  int channels = 4;
  int warmup = kDefaultWarmup;
  std::string durability = "sync";
  bool quick = false;
  app.add_option("--turns", turns_opt, "concurrent turns (one per session; default 10000)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--latency-ms", latency_ms, "the fake model's answer delay (default 1000)")
      ->check(CLI::Range(0, 60000));
  app.add_option("--channels", channels, "gRPC channels (TCP connections) to spread over (default 4)")
      ->check(CLI::Range(1, 64));
  app.add_option("--warmup", warmup, "turns run (concurrently, own sessions) before measuring (default 64)")
      ->check(CLI::Range(0, 10000));
  int turn_threads = agentd::server::Config{}.turn_threads;
  app.add_option("--turn-threads", turn_threads, "agentd's turn_threads (default: agentd's)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--durability", durability, "sync|relaxed (default sync)")
      ->check(CLI::IsMember({"sync", "relaxed"}));
  std::string deadlock_detection = "default";
  app.add_option("--absl-deadlock-detection", deadlock_detection,
                 "default|off: 'off' calls absl::SetMutexDeadlockDetectionMode(kIgnore) first "
                 "(Debian's Abseil is built without NDEBUG, so detection is on by default, as in "
                 "the agentd binary)")
      ->check(CLI::IsMember({"default", "off"}));
  app.add_flag("--quick", quick, "1000 turns (for CI)");
  CLI11_PARSE(app, argc, argv);
  if (deadlock_detection == "off") {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
  const int turns = turns_opt.value_or(quick ? kQuickTurns : kDefaultTurns);

  // Each in-flight turn holds one socket here (to the fake) and one in the child.
  rlimit nofile{};
  getrlimit(RLIMIT_NOFILE, &nofile);
  nofile.rlim_cur = nofile.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &nofile) != 0) std::perror("concurrency_bench: setrlimit");
  getrlimit(RLIMIT_NOFILE, &nofile);
  if (nofile.rlim_cur < static_cast<rlim_t>(turns) + 1000) {
    std::fprintf(stderr,
                 "concurrency_bench: warning: RLIMIT_NOFILE %lu is tight for %d turns (one socket "
                 "per turn plus the store's files)\n",
                 static_cast<unsigned long>(nofile.rlim_cur), turns);
  }

  // Fork first: no thread exists yet.
  std::unique_ptr<FakeChild> fake = FakeChild::Start(latency_ms);
  if (fake == nullptr) {
    std::fprintf(stderr, "concurrency_bench: cannot start the fake model server child\n");
    return 2;
  }
  const Clock::time_point setup0 = Clock::now();
  Result r;
  r.turns = turns;
  r.latency_ms = latency_ms;
  r.channels = channels;
  r.durability = durability;
  r.deadlock_detection = deadlock_detection;
  r.threads_start = ThreadCount();

  auto dir = MakeTempDir();
  if (!dir) {
    std::fprintf(stderr, "concurrency_bench: cannot create a temp dir\n");
    return 2;
  }
  const std::string data_dir = *dir;
  agentd::server::ServerOptions server_options;
  {
    agentd::server::Config& cfg = server_options.config;
    cfg.listen = "127.0.0.1:0";
    cfg.data_dir = data_dir;
    cfg.durability = durability;
    cfg.turn_threads = turn_threads;
    server_options.bootstrap_key = kBenchKey;
    agentd::server::BackendConfig b;
    b.name = "fake";
    b.type = "openai";
    b.base_url = "http://127.0.0.1:" + std::to_string(fake->port()) + "/v1";
    b.max_concurrency = 20000;
    b.timeout_ms = 60000;
    cfg.backends.push_back(b);
    agentd::server::ModelConfig m;
    m.name = kModel;
    m.deployments.push_back({"fake", kModel, 1});
    cfg.models.push_back(m);
  }
  auto started = agentd::server::AgentdServer::Start(std::move(server_options));
  if (!started.ok()) {
    std::fprintf(stderr, "concurrency_bench: starting agentd: %s\n",
                 std::string(started.status().message()).c_str());
    std::filesystem::remove_all(data_dir);
    return 2;
  }
  std::unique_ptr<agentd::server::AgentdServer> server = *std::move(started);
  const std::string addr = "127.0.0.1:" + std::to_string(server->port());

  std::printf(
      "concurrency_bench: agentd in-process at %s (data dir %s, durability %s), fake model in "
      "child pid %d on port %d answering after %d ms, %u hw threads, %d channel(s), "
      "RLIMIT_NOFILE %lu, %d turns (+%d warm-up)\n",
      addr.c_str(), data_dir.c_str(), durability.c_str(), static_cast<int>(fake->pid()),
      fake->port(), latency_ms, std::thread::hardware_concurrency(), channels,
      static_cast<unsigned long>(nofile.rlim_cur), turns, warmup);
  std::fflush(stdout);

  int exit_code = 0;
  std::vector<std::string> error_samples;
  {
    std::vector<std::shared_ptr<grpc::Channel>> chans;
    std::vector<std::unique_ptr<v1::SessionService::Stub>> stubs;
    for (int i = 0; i < channels; ++i) {
      auto ch = NewChannel(addr);
      if (!ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
        std::fprintf(stderr, "concurrency_bench: cannot connect to %s\n", addr.c_str());
        return 2;
      }
      stubs.push_back(v1::SessionService::NewStub(ch));
      chans.push_back(std::move(ch));
    }
    std::string agent_id;
    {
      auto agents = v1::AgentService::NewStub(chans[0]);
      grpc::ClientContext ctx;
      Authorize(&ctx);
      v1::CreateAgentRequest request;
      request.mutable_agent()->set_name("concurrency-bench");
      request.mutable_agent()->set_model(kModel);
      v1::Agent agent;
      const grpc::Status st = agents->CreateAgent(&ctx, request, &agent);
      if (!st.ok()) {
        std::fprintf(stderr, "concurrency_bench: CreateAgent: %s\n", st.error_message().c_str());
        return 2;
      }
      agent_id = agent.agent_id();
    }
    const Clock::time_point create0 = Clock::now();
    auto sessions = SessionCreator(&stubs, agent_id, turns + warmup).Run();
    if (!sessions) return 2;
    r.create_sessions_s = Seconds(Clock::now() - create0);
    std::vector<std::string> warm(sessions->begin() + turns, sessions->end());
    sessions->resize(turns);

    Clock::time_point t0, t_issued;
    if (!warm.empty()) {
      double unused_cpu = 0;
      auto calls = FireTurns(stubs, warm, &t0, &t_issued, &unused_cpu, nullptr);
      for (const auto& c : calls) {
        if (!c->status.ok() || c->response.status() != v1::TURN_STATUS_COMPLETED) {
          std::fprintf(stderr, "concurrency_bench: warm-up turn failed: %s%s\n",
                       c->status.error_message().c_str(), c->response.error().c_str());
          exit_code = 1;
        }
      }
    }
    r.setup_s = Seconds(Clock::now() - setup0);
    const long fake_before = fake->Stats().value_or(FakeStats{}).count;

    Sampler sampler(fake.get(), fake_before + turns);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let things settle
    r.threads_before = ThreadCount();  // includes the sampler thread
    r.rss_before_mib = static_cast<double>(StatusKib("VmRSS")) / 1024;
    r.fds_before = OpenFds();
    r.load_before = LoadAverage();
    const double cpu0 = CpuSeconds();
    const double child_cpu0 = ProcessCpuSeconds(fake->pid());
    const double busy0 = SystemBusySeconds();
    const auto by_thread0 = CpuByThread();

    auto calls = FireTurns(stubs, *sessions, &t0, &t_issued, &r.issue_cpu_s,
                           [&sampler](Clock::time_point t) { sampler.Arm(t); });
    const Clock::time_point t_end = Clock::now();
    r.cpu_s = CpuSeconds() - cpu0;
    // Per thread, then summed by name (a thread that started during the run counts from 0).
    for (const auto& [tid, name_cpu] : CpuByThread()) {
      auto before = by_thread0.find(tid);
      const double cpu0 = before == by_thread0.end() ? 0 : before->second.second;
      r.cpu_by_thread[name_cpu.first] += std::max(0.0, name_cpu.second - cpu0);
    }
    r.fake_cpu_s = ProcessCpuSeconds(fake->pid()) - child_cpu0;
    const double other = SystemBusySeconds() - busy0 - r.cpu_s - r.fake_cpu_s;
    r.other_load_cores = std::max(0.0, other / Seconds(t_end - t0));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // one more sample
    sampler.Stop();
    r.load_after = LoadAverage();
    r.threads_after = ThreadCount();
    r.threads_peak = std::max(sampler.peak_threads(), r.threads_before);
    r.rss_peak_mib = static_cast<double>(sampler.peak_rss_kib()) / 1024;
    r.vmhwm_mib = static_cast<double>(StatusKib("VmHWM")) / 1024;
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    r.maxrss_mib = static_cast<double>(ru.ru_maxrss) / 1024;
    r.fds_peak = sampler.peak_fds();
    r.fake_all_received_s = sampler.all_received_s();
    r.fake_all_answered_s = sampler.all_answered_s();
    auto fs = fake->Stats().value_or(FakeStats{});
    r.fake_max_in_flight = fs.max_in_flight;
    r.fake_requests = fs.count - fake_before;
    r.wall_s = Seconds(t_end - t0);
    r.mono_start_s = Seconds(t0.time_since_epoch());
    r.mono_end_s = Seconds(t_end.time_since_epoch());
    r.issue_s = Seconds(t_issued - t0);

    std::vector<double> lat;
    lat.reserve(calls.size());
    for (const auto& c : calls) {
      std::string error;
      if (!c->status.ok()) {
        error = "rpc status " + std::to_string(c->status.error_code()) + ": " +
                c->status.error_message();
      } else if (c->response.status() != v1::TURN_STATUS_COMPLETED) {
        error = "turn status " + v1::TurnStatus_Name(c->response.status()) + ": " +
                c->response.error();
      } else if (c->response.output_text() != kFakeText) {
        error = "unexpected output: " + c->response.output_text();
      }
      if (!error.empty()) {
        ++r.errors;
        if (error_samples.size() < kMaxErrorSamples) {
          error_samples.push_back(c->request.session_id() + ": " + error);
        }
        continue;
      }
      ++r.completed;
      lat.push_back(std::chrono::duration<double, std::milli>(c->end - c->start).count());
    }
    std::sort(lat.begin(), lat.end());
    r.p50_ms = Percentile(lat, 0.5);
    r.p90_ms = Percentile(lat, 0.9);
    r.p99_ms = Percentile(lat, 0.99);
    r.max_ms = lat.empty() ? 0 : lat.back();
  }
  PrintJson(r);
  std::printf("\n");
  PrintTable(r);
  std::printf(
      "(wall_s: first RunTurn issued -> last completed; issue_s: time to issue all calls; "
      "fake_recv/fake_done: when the fake model had received / answered every request, from the "
      "first issue (%d ms polls); fake_max: most requests open at the fake at once; "
      "threads/rss: this process (agentd + bench client), just before firing > peak sampled every "
      "%d ms; cpu_ms/turn: this process (agentd + client, not the fake child) during the run; "
      "other_cores: cores other processes kept busy meanwhile)\n",
      kSampleEveryMs, kSampleEveryMs);
  std::printf(
      "threads: start %d, before %d, peak %d (%+d), after %d | rss: before %.0f MiB, peak %.0f MiB, "
      "VmHWM %.0f MiB | fds: before %d, peak %d | issuing thread CPU %.2f s | fake child CPU %.2f s "
      "| setup %.2f s (of which %d CreateSession calls, %d in flight: %.2f s) | absl deadlock "
      "detection: %s\n",
      r.threads_start, r.threads_before, r.threads_peak, r.threads_peak - r.threads_before,
      r.threads_after, r.rss_before_mib, r.rss_peak_mib, r.vmhwm_mib, r.fds_before, r.fds_peak,
      r.issue_cpu_s, r.fake_cpu_s, r.setup_s, turns + warmup, kCreateWindow, r.create_sessions_s,
      r.deadlock_detection.c_str());
  std::printf("cpu by thread during the run (s; agentd's threads, gRPC's of both sides, the bench's):");
  for (const auto& [name, cpu] : r.cpu_by_thread) {
    if (cpu >= 0.005) std::printf(" %s %.2f", name.c_str(), cpu);
  }
  std::printf("\n");
  std::printf("targets: wall < %.0f s: %s; errors 0: %s; VmHWM < %.0f MiB: %s; threads during the "
              "run: %+d\n",
              kTargetWallS, r.wall_s < kTargetWallS ? "met" : "NOT met",
              r.errors == 0 ? "met" : "NOT met", kTargetRssMib,
              r.vmhwm_mib < kTargetRssMib ? "met" : "NOT met", r.threads_peak - r.threads_before);
  // For `perf record -k CLOCK_MONOTONIC` + `perf report --time START,END` (steady_clock is
  // CLOCK_MONOTONIC on Linux).
  std::printf("run window (CLOCK_MONOTONIC s): %.6f,%.6f\n", r.mono_start_s, r.mono_end_s);
  for (const std::string& e : error_samples) std::printf("error: %s\n", e.c_str());
  if (r.errors > 0) exit_code = 1;

  server->Shutdown(absl::Seconds(5));
  server.reset();
  fake.reset();
  std::error_code ec;
  std::filesystem::remove_all(data_dir, ec);
  std::fflush(stdout);
  return exit_code;
}
