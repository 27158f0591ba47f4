// e2e_bench: end-to-end turn benchmark over gRPC loopback with the built-in `echo` model.
//
// Starts agentd in-process (or targets --addr), creates one `echo` agent, and for each
// concurrency level N runs a closed loop: N client workers, each issuing sequential unary
// RunTurn calls on its own session. Every turn must return OK with TURN_STATUS_COMPLETED and
// echo its input; anything else is counted (and printed) as an error, and the exit code is 1.
//
// Output: a human-readable table, plus one `RESULT {json}` line per level and client kind.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "absl/synchronization/mutex.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/blocking_counter.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "agentd/v1/session.grpc.pb.h"
#include "server/server.h"

namespace {

using agentd::bench::CpuSeconds;
using agentd::bench::LoadAverage;

using Clock = std::chrono::steady_clock;
namespace v1 = agentd::v1;

constexpr int kDefaultTurnsOneSession = 2000;
constexpr int kDefaultTotalTurns = 20000;
constexpr int kDefaultWarmup = 200;
constexpr int kQuickTurnsOneSession = 200;
constexpr int kQuickTotalTurns = 1000;
constexpr int kQuickWarmup = 20;
constexpr size_t kInputBytes = 200;
constexpr auto kCallTimeout = std::chrono::seconds(60);
constexpr int kMaxErrorSamples = 5;

struct Options {
  std::vector<int> sessions;
  int turns_per_session = 0;  // 0 = derived from total_turns
  int total_turns = 0;        // for levels > 1
  int turns_one_session = 0;  // for level 1
  int warmup = 0;
  std::string durability;
  std::string addr;
  std::string client;
  int channels = 2;
  bool durability_given = false;
  std::string api_key;  // external server: --api-key / AGENTD_API_KEY; in-process: kBenchKey
};

// The in-process server's bootstrap admin key.
constexpr char kBenchKey[] = "agd-e2e-bench-bootstrap-admin-key";

// A context for one call, carrying the API key and the deadline.
std::unique_ptr<grpc::ClientContext> NewContext(const std::string& authorization) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", authorization);
  ctx->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  return ctx;
}

enum class ClientKind { kBlocking, kCallback };
const char* Name(ClientKind k) { return k == ClientKind::kBlocking ? "blocking" : "callback"; }

// ---- One session's closed-loop client --------------------------------------------------

/// Drives sequential turns on one session and checks every result. Owned by one thread at a
/// time: the blocking loop's thread, or (callback mode) whichever gRPC thread runs OnDone.
class Worker {
 public:
  /// `authorization` is the header value for every call; it must outlive the worker.
  Worker(v1::SessionService::Stub* stub, std::string session_id, const std::string* authorization)
      : stub_(stub), session_id_(std::move(session_id)), authorization_(authorization) {}

  /// Sets how many turns the next phase runs and whether their latencies are kept; resets the
  /// phase's error count (error samples are kept across phases).
  void ResetPhase(int turns, bool record) {
    remaining_ = turns;
    record_ = record;
    errors_ = 0;
    latencies_ms_.clear();
    latencies_ms_.reserve(record ? turns : 0);
  }

  /// Blocking client: runs the phase on the calling thread.
  void RunBlocking() {
    while (remaining_ > 0) {
      PrepareCall();
      const grpc::Status status = stub_->RunTurn(ctx_.get(), request_, &response_);
      Complete(status);
    }
  }

  /// Callback client: starts the phase; `done` is decremented when its last turn completes.
  void StartCallback(absl::BlockingCounter* done) {
    done_ = done;
    if (remaining_ == 0) {
      done_->DecrementCount();
      return;
    }
    IssueAsync();
  }

  const std::vector<double>& latencies_ms() const { return latencies_ms_; }
  /// Failed turns of the current (or last) phase.
  int64_t errors() const { return errors_; }
  const std::vector<std::string>& error_samples() const { return error_samples_; }
  const std::string& session_id() const { return session_id_; }

 private:
  void PrepareCall() {
    ctx_ = NewContext(*authorization_);
    request_.Clear();
    request_.set_session_id(session_id_);
    v1::InputMessage* in = request_.add_input();
    in->set_role(v1::ROLE_USER);
    char head[96];
    std::snprintf(head, sizeof(head), "turn %" PRId64 " on %s: ", turn_number_,
                  session_id_.c_str());
    std::string text = head;
    static constexpr char kFiller[] = "the quick brown fox jumps over the lazy dog. ";
    while (text.size() < kInputBytes) text += kFiller;
    text.resize(kInputBytes);
    in->set_text(std::move(text));
    response_.Clear();
    start_ = Clock::now();
  }

  void IssueAsync() {
    PrepareCall();
    stub_->async()->RunTurn(ctx_.get(), &request_, &response_,
                            [this](grpc::Status status) { OnDone(std::move(status)); });
  }

  void OnDone(grpc::Status status) {
    Complete(status);
    if (remaining_ > 0) {
      IssueAsync();
    } else {
      done_->DecrementCount();
    }
  }

  void Complete(const grpc::Status& status) {
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
    --remaining_;
    ++turn_number_;
    std::string error;
    if (!status.ok()) {
      error = "rpc status " + std::to_string(status.error_code()) + ": " + status.error_message();
    } else if (response_.status() != v1::TURN_STATUS_COMPLETED) {
      error = "turn status " + v1::TurnStatus_Name(response_.status()) + ": " + response_.error();
    } else if (response_.output_text() != request_.input(0).text()) {
      error = "echo output does not match the input";
    } else if (response_.last_seq() <= last_seq_) {
      error = "last_seq did not advance (" + std::to_string(response_.last_seq()) + ")";
    }
    if (!error.empty()) {
      ++errors_;
      if (error_samples_.size() < kMaxErrorSamples) {
        error_samples_.push_back(session_id_ + ": " + error);
      }
      return;
    }
    last_seq_ = response_.last_seq();
    if (record_) latencies_ms_.push_back(ms);
  }

  v1::SessionService::Stub* const stub_;
  const std::string session_id_;
  const std::string* const authorization_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  v1::RunTurnRequest request_;
  v1::TurnResult response_;
  Clock::time_point start_;
  int remaining_ = 0;
  bool record_ = false;
  int64_t turn_number_ = 0;
  int64_t last_seq_ = 0;
  absl::BlockingCounter* done_ = nullptr;
  std::vector<double> latencies_ms_;
  int64_t errors_ = 0;
  std::vector<std::string> error_samples_;
};

// ---- Statistics --------------------------------------------------------------------------

/// Nearest-rank percentile of sorted values (0 for an empty set).
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

struct LevelResult {
  int sessions = 0;
  ClientKind client = ClientKind::kCallback;
  int64_t turns = 0;  // successful measured turns
  int64_t errors = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0;
  double p50_first10 = 0, p50_last10 = 0;  // by turn index within each session
  double wall_s = 0;
  double turns_per_s = 0;
  std::optional<double> cpu_ms_per_turn;  // whole process (server + client), in-process only
  double load_before = 0, load_after = 0;
};

LevelResult Summarize(const std::vector<std::unique_ptr<Worker>>& workers) {
  LevelResult r;
  std::vector<double> all, first, last;
  for (const auto& w : workers) {
    const std::vector<double>& l = w->latencies_ms();
    const size_t tenth = std::max<size_t>(1, l.size() / 10);
    all.insert(all.end(), l.begin(), l.end());
    if (l.size() >= 10) {
      first.insert(first.end(), l.begin(), l.begin() + tenth);
      last.insert(last.end(), l.end() - tenth, l.end());
    }
    r.errors += w->errors();
  }
  for (auto* v : {&all, &first, &last}) std::sort(v->begin(), v->end());
  r.turns = static_cast<int64_t>(all.size());
  r.p50 = Percentile(all, 0.50);
  r.p90 = Percentile(all, 0.90);
  r.p99 = Percentile(all, 0.99);
  r.max = all.empty() ? 0 : all.back();
  r.p50_first10 = Percentile(first, 0.50);
  r.p50_last10 = Percentile(last, 0.50);
  return r;
}

// ---- Client setup ------------------------------------------------------------------------

std::shared_ptr<grpc::Channel> NewChannel(const std::string& addr) {
  grpc::ChannelArguments args;
  // Without this, channels with equal arguments share one subchannel, i.e. one TCP connection.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
}

class Bench {
 public:
  Bench(Options options, std::string addr, bool in_process)
      : options_(std::move(options)),
        addr_(std::move(addr)),
        in_process_(in_process),
        authorization_("Bearer " + options_.api_key) {}

  /// Connects and creates the echo agent; false (with a message on stderr) on failure.
  bool Setup() {
    for (int i = 0; i < std::max(1, options_.channels); ++i) {
      auto channel = NewChannel(addr_);
      if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
        std::fprintf(stderr, "e2e_bench: cannot connect to %s\n", addr_.c_str());
        return false;
      }
      stubs_.push_back(v1::SessionService::NewStub(channel));
      channels_.push_back(std::move(channel));
    }
    auto agents = v1::AgentService::NewStub(channels_[0]);
    v1::CreateAgentRequest request;
    request.mutable_agent()->set_name("e2e-bench");
    request.mutable_agent()->set_model("echo");
    v1::Agent agent;
    const grpc::Status st = agents->CreateAgent(NewContext(authorization_).get(), request, &agent);
    if (!st.ok()) {
      std::fprintf(stderr, "e2e_bench: CreateAgent: %s\n", st.error_message().c_str());
      return false;
    }
    agent_id_ = agent.agent_id();
    return true;
  }

  /// Runs one level with one client kind; nullopt if its sessions could not be created.
  std::optional<LevelResult> RunLevel(int sessions, ClientKind client) {
    std::vector<std::unique_ptr<Worker>> workers;
    for (int i = 0; i < sessions; ++i) {
      v1::CreateSessionRequest request;
      request.set_agent_id(agent_id_);
      v1::Session session;
      const grpc::Status st =
          stubs_[0]->CreateSession(NewContext(authorization_).get(), request, &session);
      if (!st.ok()) {
        std::fprintf(stderr, "e2e_bench: CreateSession: %s\n", st.error_message().c_str());
        return std::nullopt;
      }
      created_sessions_.push_back(session.session_id());
      workers.push_back(
          std::make_unique<Worker>(stubs_[i % stubs_.size()].get(), session.session_id(),
                                   &authorization_));
    }
    const int turns = TurnsPerSession(sessions);
    const int warmup =
        options_.warmup <= 0 ? 0 : std::max(1, (options_.warmup + sessions - 1) / sessions);
    if (warmup > 0) RunPhase(workers, client, warmup, /*record=*/false);

    const double load_before = LoadAverage();
    const double cpu0 = CpuSeconds();
    const Clock::time_point t0 = Clock::now();
    RunPhase(workers, client, turns, /*record=*/true);
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    const double cpu = CpuSeconds() - cpu0;
    const double load_after = LoadAverage();

    LevelResult s = Summarize(workers);
    s.sessions = sessions;
    s.client = client;
    s.wall_s = wall;
    s.turns_per_s = wall > 0 ? static_cast<double>(s.turns) / wall : 0;
    if (in_process_ && s.turns > 0) s.cpu_ms_per_turn = cpu * 1000 / static_cast<double>(s.turns);
    s.load_before = load_before;
    s.load_after = load_after;
    for (const auto& w : workers) {
      for (const std::string& e : w->error_samples()) {
        if (error_samples_.size() < kMaxErrorSamples * 4) error_samples_.push_back(e);
      }
    }
    return s;
  }

  /// Deletes the sessions this run created (for an external server; best effort).
  void DeleteSessions() {
    for (const std::string& id : created_sessions_) {
      v1::DeleteSessionRequest request;
      request.set_session_id(id);
      google::protobuf::Empty empty;
      (void)stubs_[0]->DeleteSession(NewContext(authorization_).get(), request, &empty);
    }
  }

  const std::vector<std::string>& error_samples() const { return error_samples_; }
  int64_t warmup_errors() const { return warmup_errors_; }

 private:
  int TurnsPerSession(int sessions) const {
    if (options_.turns_per_session > 0) return options_.turns_per_session;
    if (sessions == 1) return options_.turns_one_session;
    return (options_.total_turns + sessions - 1) / sessions;
  }

  // Every worker runs `turns` turns; returns when all are done. Warm-up errors are kept
  // apart from the level's but fail the run too.
  void RunPhase(std::vector<std::unique_ptr<Worker>>& workers, ClientKind client, int turns,
                bool record) {
    for (auto& w : workers) w->ResetPhase(turns, record);
    if (client == ClientKind::kBlocking) {
      std::vector<std::thread> threads;
      threads.reserve(workers.size());
      for (auto& w : workers) threads.emplace_back([&w] { w->RunBlocking(); });
      for (auto& t : threads) t.join();
    } else {
      absl::BlockingCounter done(static_cast<int>(workers.size()));
      for (auto& w : workers) w->StartCallback(&done);
      done.Wait();
    }
    if (!record) {
      for (const auto& w : workers) warmup_errors_ += w->errors();
    }
  }

  const Options options_;
  const std::string addr_;
  const bool in_process_;
  const std::string authorization_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<v1::SessionService::Stub>> stubs_;
  std::string agent_id_;
  std::vector<std::string> created_sessions_;
  std::vector<std::string> error_samples_;
  int64_t warmup_errors_ = 0;
};

// ---- Output ------------------------------------------------------------------------------

void PrintHeader() {
  std::printf("%-8s %-9s %-10s %8s %8s %8s %8s %8s %9s %9s %10s %7s %10s %11s\n", "sessions",
              "client", "durability", "turns", "p50_ms", "p90_ms", "p99_ms", "max_ms", "p50_1st10",
              "p50_last10", "turns/s", "errors", "cpu_ms/turn", "load(1m)");
}

void PrintRow(const LevelResult& r, const std::string& durability) {
  char cpu[32] = "-";
  if (r.cpu_ms_per_turn) std::snprintf(cpu, sizeof(cpu), "%.3f", *r.cpu_ms_per_turn);
  std::printf("%-8d %-9s %-10s %8" PRId64 " %8.3f %8.3f %8.3f %8.3f %9.3f %10.3f %10.1f %7" PRId64
              " %11s %5.2f>%.2f\n",
              r.sessions, Name(r.client), durability.c_str(), r.turns, r.p50, r.p90, r.p99, r.max,
              r.p50_first10, r.p50_last10, r.turns_per_s, r.errors, cpu, r.load_before,
              r.load_after);
}

void PrintJson(const LevelResult& r, const std::string& durability, bool in_process) {
  char cpu[32] = "null";
  if (r.cpu_ms_per_turn) std::snprintf(cpu, sizeof(cpu), "%.4f", *r.cpu_ms_per_turn);
  std::printf(
      "RESULT {\"sessions\":%d,\"turns\":%" PRId64
      ",\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,\"turns_per_s\":%.1f,"
      "\"errors\":%" PRId64
      ",\"durability\":\"%s\",\"client\":\"%s\",\"server\":\"%s\",\"wall_s\":%.3f,"
      "\"p50_first10pct_ms\":%.3f,\"p50_last10pct_ms\":%.3f,\"process_cpu_ms_per_turn\":%s,"
      "\"loadavg_1m_before\":%.2f,\"loadavg_1m_after\":%.2f}\n",
      r.sessions, r.turns, r.p50, r.p90, r.p99, r.max, r.turns_per_s, r.errors, durability.c_str(),
      Name(r.client), in_process ? "in-process" : "external", r.wall_s, r.p50_first10, r.p50_last10,
      cpu, r.load_before, r.load_after);
}

std::vector<ClientKind> ClientsFor(const std::string& choice, int sessions) {
  if (choice == "blocking") return {ClientKind::kBlocking};
  if (choice == "callback") return {ClientKind::kCallback};
  if (choice == "both") return {ClientKind::kCallback, ClientKind::kBlocking};
  // auto: one session is one thread either way; for more, measure both.
  if (sessions == 1) return {ClientKind::kBlocking};
  return {ClientKind::kCallback, ClientKind::kBlocking};
}

std::optional<std::string> MakeTempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "agentd-e2e-bench-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) return std::nullopt;
  return tmpl;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"e2e_bench: end-to-end RunTurn benchmark over gRPC loopback (echo model)"};
  Options options;
  std::string sessions_list = "1,64";
  bool quick = false;
  std::optional<int> turns_per_session, total_turns, warmup;
  options.durability = "sync";
  options.client = "auto";
  app.add_option("--sessions", sessions_list, "comma-separated concurrency levels (default 1,64)");
  app.add_option("--turns-per-session", turns_per_session,
                 "turns per session (default: 2000 at 1 session; --total-turns split evenly "
                 "otherwise)");
  app.add_option("--total-turns", total_turns,
                 "total measured turns for levels > 1 session (default 20000)");
  app.add_option("--warmup", warmup,
                 "warm-up turns per level, split over its sessions (default 200)");
  auto* durability_opt = app.add_option("--durability", options.durability, "sync|relaxed")
                             ->check(CLI::IsMember({"sync", "relaxed"}));
  app.add_option("--addr", options.addr,
                 "benchmark a running agentd at HOST:PORT instead of starting one in-process");
  app.add_option("--api-key", options.api_key,
                 "API key (MEMBER or ADMIN) for --addr; the in-process server uses its own")
      ->envname("AGENTD_API_KEY");
  app.add_option("--client", options.client,
                 "auto|callback|blocking|both (auto: blocking at 1 session, both otherwise)")
      ->check(CLI::IsMember({"auto", "callback", "blocking", "both"}));
  app.add_option("--channels", options.channels,
                 "gRPC channels (TCP connections) the sessions are spread over (default 2)")
      ->check(CLI::Range(1, 64));
  app.add_flag("--quick", quick, "small counts (finishes in seconds; for CI)");
  CLI11_PARSE(app, argc, argv);
  // As agentd's main() does: Debian's Abseil leaves mutex deadlock detection on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  options.durability_given = durability_opt->count() > 0;

  for (absl::string_view part : absl::StrSplit(sessions_list, ',', absl::SkipWhitespace())) {
    int n = 0;
    if (!absl::SimpleAtoi(part, &n) || n < 1 || n > 4096) {
      std::fprintf(stderr, "e2e_bench: --sessions: \"%s\" is not a count in 1..4096\n",
                   std::string(part).c_str());
      return 2;
    }
    options.sessions.push_back(n);
  }
  if (options.sessions.empty()) {
    std::fprintf(stderr, "e2e_bench: --sessions is empty\n");
    return 2;
  }
  options.turns_per_session = turns_per_session.value_or(0);
  options.turns_one_session = quick ? kQuickTurnsOneSession : kDefaultTurnsOneSession;
  options.total_turns = total_turns.value_or(quick ? kQuickTotalTurns : kDefaultTotalTurns);
  options.warmup = warmup.value_or(quick ? kQuickWarmup : kDefaultWarmup);
  if (options.turns_per_session < 0 || options.total_turns < 1 || options.warmup < 0) {
    std::fprintf(stderr, "e2e_bench: turn counts must be positive\n");
    return 2;
  }

  const bool in_process = options.addr.empty();
  if (in_process) options.api_key = kBenchKey;
  if (options.api_key.empty()) {
    std::fprintf(stderr, "e2e_bench: --addr needs an API key: set --api-key or AGENTD_API_KEY\n");
    return 2;
  }
  std::string durability = options.durability;
  if (!in_process && !options.durability_given) durability = "unknown";

  std::unique_ptr<agentd::server::AgentdServer> server;
  std::string data_dir;
  std::string addr = options.addr;
  if (in_process) {
    auto dir = MakeTempDir();
    if (!dir) {
      std::fprintf(stderr, "e2e_bench: cannot create a temp dir\n");
      return 2;
    }
    data_dir = *dir;
    agentd::server::ServerOptions server_options;
    server_options.config.listen = "127.0.0.1:0";
    server_options.config.data_dir = data_dir;
    server_options.config.durability = options.durability;
    server_options.bootstrap_key = kBenchKey;
    auto started = agentd::server::AgentdServer::Start(std::move(server_options));
    if (!started.ok()) {
      std::fprintf(stderr, "e2e_bench: starting agentd: %s\n",
                   std::string(started.status().message()).c_str());
      std::filesystem::remove_all(data_dir);
      return 2;
    }
    server = *std::move(started);
    addr = "127.0.0.1:" + std::to_string(server->port());
  }

  std::printf(
      "e2e_bench: server %s at %s, data dir %s, durability %s, %u hw threads, "
      "%d channel(s), input %zu bytes/turn\n",
      in_process ? "in-process" : "external", addr.c_str(),
      in_process ? data_dir.c_str() : "(server's)", durability.c_str(),
      std::thread::hardware_concurrency(), options.channels, kInputBytes);
  std::printf(
      "clients: blocking = one thread per session with a blocking stub; callback = "
      "stub->async() callbacks on gRPC's own threads (the realistic server-side client; "
      "in-process it shares gRPC's process-wide callback threads with the server)\n");
  std::fflush(stdout);

  int exit_code = 0;
  {
    Bench bench(options, addr, in_process);
    if (!bench.Setup()) {
      exit_code = 2;
    } else {
      std::vector<LevelResult> results;
      for (int sessions : options.sessions) {
        for (ClientKind client : ClientsFor(options.client, sessions)) {
          auto r = bench.RunLevel(sessions, client);
          if (!r) {
            exit_code = 2;
            break;
          }
          PrintJson(*r, durability, in_process);
          std::fflush(stdout);
          results.push_back(*r);
          if (r->errors > 0) exit_code = 1;
        }
        if (exit_code == 2) break;
      }
      std::printf("\n");
      PrintHeader();
      for (const LevelResult& r : results) PrintRow(r, durability);
      std::printf(
          "(p50_1st10/p50_last10: median of the first/last 10%% of each session's "
          "turns; cpu_ms/turn: getrusage of the whole process, server AND client)\n");
      if (bench.warmup_errors() > 0) {
        std::printf("warm-up errors: %" PRId64 "\n", bench.warmup_errors());
        exit_code = 1;
      }
      for (const std::string& e : bench.error_samples()) std::printf("error: %s\n", e.c_str());
      if (!in_process) bench.DeleteSessions();
    }
  }
  if (server) {
    server->Shutdown(absl::Seconds(5));
    server.reset();
    std::error_code ec;
    std::filesystem::remove_all(data_dir, ec);
  }
  return exit_code;
}
