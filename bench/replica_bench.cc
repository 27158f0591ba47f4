// replica_bench: turns/s and turn latency of single-node RocksDB against agentd replicas that
// share one PostgreSQL database, with the same closed-loop load in the same process.
//
// Shapes (all in-process AgentdServer instances on 127.0.0.1:0, `durability: sync`; the
// PostgreSQL store then runs with synchronous_commit on):
//   rocksdb    one server on a RocksDB data dir of its own;
//   pg_1       one server on PostgreSQL;
//   pg_3_hash  three servers on one database; a session always goes to the replica its id
//              hashes to (what a consistent-hash proxy on x-agentd-session does);
//   pg_3_rr    the same three, round-robin per turn: every turn of a session lands on a
//              different replica than its previous turn (no affinity: that replica's history
//              cache is stale, so the turn reads the session's log from the database).
// PostgreSQL is a throwaway cluster (tests/testing/pg_cluster.h); every shape gets a fresh
// database (and RocksDB a fresh dir) in every round. The model is the built-in `echo` (answers
// inline: the figures are runtime + store), and with --model fake|both also the fake OpenAI
// server (tests/testing/fake_openai.h) answering at once over HTTP.
//
// Load: N sessions, one client thread each with blocking RunTurn calls (closed loop), a short
// warm-up, then M measured turns per session; each turn is one 200-byte user message and must
// return OK, TURN_STATUS_COMPLETED, the expected text and an advancing last_seq. Shapes run
// interleaved in rounds (the order rotated each round) and the summary quotes per-shape medians
// over the rounds, because the machine is shared and noisy.
//
// CPU: `cpu_ms/turn` is this process (clients + every replica; getrusage). `pg_cpu_ms/turn` is
// the PostgreSQL cluster (postmaster, its live children and the children it has reaped, from
// /proc). `other_load_cores` is what the rest of the machine kept busy meanwhile.
// `pg_wal_syncs/turn` and `pg_wal_kib/turn` come from pg_stat_wal (cluster-wide; read after a
// 1.5 s pause so that the backends have flushed their statistics).
//
// Output: a table per round and a summary of medians, and `RESULT {json}` lines. Exit code 1 if
// any turn failed, 2 if setup failed. See docs/benchmarks.md.
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "agentd/v1/session.grpc.pb.h"
#include "bench_util.h"
#include "replica_pg_stats.h"
#include "server/server.h"
#include "spdlog/spdlog.h"
#include "testing/auth_channel.h"
#include "testing/fake_openai.h"
#include "testing/pg_cluster.h"
#include "testing/server_harness.h"
#include "testing/temp_dir.h"

namespace {

namespace v1 = agentd::v1;
using agentd::bench::CpuSeconds;
using agentd::bench::DbName;
using agentd::bench::LoadAverage;
using agentd::bench::MicrosSince;
using agentd::bench::Percentile;
using agentd::bench::PgClusterCpuSeconds;
using agentd::bench::PostmasterPid;
using agentd::bench::ReadWalStats;
using agentd::bench::SystemBusySeconds;
using agentd::bench::WalStats;
using agentd::testing::PgCluster;
using Clock = std::chrono::steady_clock;

constexpr char kBenchKey[] = "agd-replica-bench-bootstrap-admin-key";
constexpr char kDsnEnv[] = "AGENTD_REPLICA_BENCH_DSN";
constexpr size_t kInputBytes = 200;
constexpr auto kCallTimeout = std::chrono::seconds(60);
constexpr int kChannelsPerReplica = 2;
constexpr size_t kMaxErrorSamples = 5;
constexpr auto kStatsPause = std::chrono::milliseconds(1500);
const char kFakeText[] = "Hello from the fake model.";

enum class Routing { kHash, kRoundRobin };

struct Shape {
  const char* name;
  bool postgres;
  int replicas;
  Routing routing;
};
const Shape kShapes[] = {{"rocksdb", false, 1, Routing::kHash},
                         {"pg_1", true, 1, Routing::kHash},
                         {"pg_3_hash", true, 3, Routing::kHash},
                         {"pg_3_rr", true, 3, Routing::kRoundRobin}};

struct Case {
  Shape shape;
  std::string model;  // "echo" | "fake"
  std::string label() const { return absl::StrCat(shape.name, "/", model); }
};

struct Options {
  int sessions = 32;
  int turns = 50;
  int warmup = 2;
  int rounds = 3;
  std::string model = "echo";
  std::vector<std::string> shapes;  // empty = all
  bool wal_stats = true;  // pg_stat_wal per turn (costs two 1.5 s pauses per PostgreSQL case)
};

// ---- One session's closed loop -----------------------------------------------------------------

/// A replica as the clients see it: its server and a few channels to it.
struct Replica {
  std::unique_ptr<agentd::server::AgentdServer> server;
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::vector<std::unique_ptr<v1::SessionService::Stub>> stubs;
};

/// 64-bit FNV-1a: the stand-in for the proxy's consistent hash of the session id.
uint64_t HashId(const std::string& id) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : id) h = (h ^ c) * 1099511628211ull;
  return h;
}

/// One session's client, driven by one thread.
class SessionClient {
 public:
  SessionClient(int index, const Case& c, std::vector<Replica>* replicas)
      : index_(index),
        id_(absl::StrCat("bench-session-", index)),
        case_(c),
        replicas_(replicas),
        home_(static_cast<int>(HashId(id_) % static_cast<uint64_t>(replicas->size()))) {}

  /// The replica that serves the session's turn number `turn` (0 = its first turn).
  int ReplicaFor(int64_t turn) const {
    if (case_.shape.routing == Routing::kHash) return home_;
    return static_cast<int>((index_ + turn) % static_cast<int64_t>(replicas_->size()));
  }

  grpc::Status Create(const std::string& agent_id) {
    v1::CreateSessionRequest req;
    req.set_agent_id(agent_id);
    req.set_session_id(id_);
    v1::Session session;
    grpc::ClientContext ctx;
    Prepare(&ctx);
    return Stub(ReplicaFor(0))->CreateSession(&ctx, req, &session);
  }

  /// Runs `turns` turns back to back; keeps their latencies when `record`.
  void Run(int turns, bool record) {
    for (int i = 0; i < turns; ++i) {
      v1::RunTurnRequest req;
      req.set_session_id(id_);
      v1::InputMessage* in = req.add_input();
      in->set_role(v1::ROLE_USER);
      std::string text = absl::StrCat(id_, " turn ", turn_, ": ");
      text.resize(kInputBytes, 'a' + static_cast<char>(turn_ % 26));
      in->set_text(text);
      v1::TurnResult result;
      grpc::ClientContext ctx;
      Prepare(&ctx);
      const Clock::time_point t0 = Clock::now();
      const grpc::Status st = Stub(ReplicaFor(turn_))->RunTurn(&ctx, req, &result);
      const double ms = MicrosSince(t0) / 1000;
      ++turn_;
      const std::string error = Check(st, result, case_.model == "echo" ? text : kFakeText);
      if (!error.empty()) {
        ++errors_;
        if (error_samples_.size() < kMaxErrorSamples) error_samples_.push_back(id_ + ": " + error);
        continue;
      }
      last_seq_ = result.last_seq();
      if (record) latencies_ms_.push_back(ms);
    }
  }

  int home() const { return home_; }
  int64_t errors() const { return errors_; }
  const std::vector<double>& latencies_ms() const { return latencies_ms_; }
  const std::vector<std::string>& error_samples() const { return error_samples_; }

 private:
  v1::SessionService::Stub* Stub(int replica) {
    return (*replicas_)[replica].stubs[index_ % kChannelsPerReplica].get();
  }

  void Prepare(grpc::ClientContext* ctx) const {
    ctx->AddMetadata("x-agentd-session", id_);
    ctx->set_deadline(std::chrono::system_clock::now() + kCallTimeout);
  }

  std::string Check(const grpc::Status& st, const v1::TurnResult& r, const std::string& want) {
    if (!st.ok()) return absl::StrCat("rpc status ", st.error_code(), ": ", st.error_message());
    if (r.status() != v1::TURN_STATUS_COMPLETED) {
      return absl::StrCat("turn status ", v1::TurnStatus_Name(r.status()), ": ", r.error());
    }
    if (r.output_text() != want) return "unexpected output text: " + r.output_text().substr(0, 60);
    if (r.last_seq() <= last_seq_) return absl::StrCat("last_seq did not advance: ", r.last_seq());
    return "";
  }

  const int index_;
  const std::string id_;
  const Case case_;
  std::vector<Replica>* const replicas_;
  const int home_;
  int64_t turn_ = 0;
  int64_t last_seq_ = 0;
  int64_t errors_ = 0;
  std::vector<double> latencies_ms_;
  std::vector<std::string> error_samples_;
};

/// Runs every client's `turns` on a thread of its own, all released at once.
void RunAll(std::vector<std::unique_ptr<SessionClient>>& clients, int turns, bool record) {
  absl::Notification go;
  std::vector<std::thread> threads;
  threads.reserve(clients.size());
  for (auto& c : clients) {
    threads.emplace_back([&go, &c, turns, record] {
      go.WaitForNotification();
      c->Run(turns, record);
    });
  }
  go.Notify();
  for (std::thread& t : threads) t.join();
}

// ---- One case of one round ---------------------------------------------------------------------

struct Result {
  std::string label;
  int round = 0;
  int64_t turns = 0, errors = 0;
  double wall_s = 0, turns_per_s = 0, p50_ms = 0, p99_ms = 0;
  double cpu_ms_per_turn = 0;
  std::optional<double> pg_cpu_ms_per_turn, wal_syncs_per_turn, wal_kib_per_turn;
  double other_load_cores = 0, load_before = 0, load_after = 0;
  std::vector<int> sessions_per_replica;
  std::vector<std::string> error_samples;
};

class Bench {
 public:
  Bench(Options options, PgCluster* cluster, long postmaster,
        agentd::testing::FakeOpenAiServer* fake)
      : options_(std::move(options)), cluster_(cluster), postmaster_(postmaster), fake_(fake) {}

  /// Runs one case on fresh servers and a fresh store; nullopt (message on stderr) if setup failed.
  std::optional<Result> Run(const Case& c, int round) {
    agentd::testing::TempDir dir;
    std::string dbname;
    if (c.shape.postgres) {
      absl::StatusOr<std::string> dsn = cluster_->NewDatabase();
      if (!dsn.ok()) return Fail(c, "new database: " + dsn.status().ToString());
      dbname = DbName(*dsn);
      setenv(kDsnEnv, dsn->c_str(), 1);
    }
    std::vector<Replica> replicas(c.shape.replicas);
    std::optional<Result> result =
        Start(c, dir, &replicas) ? Measure(c, round, &replicas) : std::nullopt;
    for (Replica& r : replicas) {
      r.stubs.clear();
      r.channels.clear();
      if (r.server) r.server->Shutdown(absl::Seconds(2));
    }
    replicas.clear();
    if (!dbname.empty()) {
      (void)cluster_->Exec("postgres", "DROP DATABASE " + dbname + " WITH (FORCE)");
    }
    return result;
  }

 private:
  std::nullopt_t Fail(const Case& c, const std::string& what) {
    std::fprintf(stderr, "replica_bench: %s: %s\n", c.label().c_str(), what.c_str());
    return std::nullopt;
  }

  bool Start(const Case& c, const agentd::testing::TempDir& dir, std::vector<Replica>* replicas) {
    for (int i = 0; i < c.shape.replicas; ++i) {
      agentd::server::ServerOptions o;
      o.config.listen = "127.0.0.1:0";
      o.config.data_dir = dir.Sub(absl::StrCat("replica", i));
      std::filesystem::create_directories(o.config.data_dir);
      o.config.durability = "sync";
      if (c.shape.postgres) {
        o.config.store.type = "postgres";
        o.config.store.postgres_dsn_env = kDsnEnv;
      }
      if (c.model == "fake") agentd::testing::AddFakeOpenAiModel(&o.config, fake_->base_url());
      o.bootstrap_key = kBenchKey;
      auto started = agentd::server::AgentdServer::Start(std::move(o));
      if (!started.ok()) {
        Fail(c, "starting agentd: " + started.status().ToString());
        return false;
      }
      Replica& r = (*replicas)[i];
      r.server = *std::move(started);
      for (int k = 0; k < kChannelsPerReplica; ++k) {
        grpc::ChannelArguments args;
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one TCP connection per channel
        r.channels.push_back(agentd::testing::AuthChannel(
            r.server->address(), grpc::InsecureChannelCredentials(), kBenchKey, args));
        r.stubs.push_back(v1::SessionService::NewStub(r.channels.back()));
      }
    }
    return true;
  }

  std::optional<Result> Measure(const Case& c, int round, std::vector<Replica>* replicas) {
    v1::CreateAgentRequest req;
    req.mutable_agent()->set_name("replica-bench");
    req.mutable_agent()->set_model(c.model == "echo" ? "echo" : "gpt");
    v1::Agent agent;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + kCallTimeout);
    grpc::Status st =
        v1::AgentService::NewStub((*replicas)[0].channels[0])->CreateAgent(&ctx, req, &agent);
    if (!st.ok()) return Fail(c, "CreateAgent: " + st.error_message());
    Result r;
    r.label = c.label();
    r.round = round;
    // Hash routing: how many sessions each replica owns (round-robin spreads every session).
    if (c.shape.routing == Routing::kHash) r.sessions_per_replica.assign(replicas->size(), 0);
    std::vector<std::unique_ptr<SessionClient>> clients;
    for (int i = 0; i < options_.sessions; ++i) {
      clients.push_back(std::make_unique<SessionClient>(i, c, replicas));
      st = clients.back()->Create(agent.agent_id());
      if (!st.ok()) return Fail(c, "CreateSession: " + st.error_message());
      if (c.shape.routing == Routing::kHash) ++r.sessions_per_replica[clients.back()->home()];
    }
    RunAll(clients, options_.warmup, /*record=*/false);  // its errors are counted below too
    const bool pg = c.shape.postgres, wal = pg && options_.wal_stats;
    if (wal) std::this_thread::sleep_for(kStatsPause);
    const WalStats wal0 = wal ? ReadWalStats(*cluster_) : WalStats{};
    r.load_before = LoadAverage();
    const double cpu0 = CpuSeconds(), pg0 = PgClusterCpuSeconds(postmaster_);
    const double busy0 = SystemBusySeconds();
    const Clock::time_point t0 = Clock::now();
    RunAll(clients, options_.turns, /*record=*/true);
    r.wall_s = MicrosSince(t0) / 1e6;
    const double cpu = CpuSeconds() - cpu0, pg_cpu = PgClusterCpuSeconds(postmaster_) - pg0;
    const double busy = SystemBusySeconds() - busy0;
    r.load_after = LoadAverage();

    std::vector<double> all;
    for (const auto& client : clients) {
      all.insert(all.end(), client->latencies_ms().begin(), client->latencies_ms().end());
      r.errors += client->errors();
      for (const std::string& e : client->error_samples()) {
        if (r.error_samples.size() < kMaxErrorSamples) r.error_samples.push_back(e);
      }
    }
    r.turns = static_cast<int64_t>(all.size());
    const double turns = static_cast<double>(std::max<int64_t>(1, r.turns));
    r.turns_per_s = r.wall_s > 0 ? static_cast<double>(r.turns) / r.wall_s : 0;
    r.p50_ms = Percentile(all, 0.50);
    r.p99_ms = Percentile(all, 0.99);
    r.cpu_ms_per_turn = cpu * 1000 / turns;
    r.other_load_cores = std::max(0.0, (busy - cpu - pg_cpu) / std::max(1e-9, r.wall_s));
    if (pg) r.pg_cpu_ms_per_turn = pg_cpu * 1000 / turns;
    if (wal) {
      std::this_thread::sleep_for(kStatsPause);
      const WalStats wal1 = ReadWalStats(*cluster_);
      r.wal_syncs_per_turn = (wal1.syncs - wal0.syncs) / turns;
      r.wal_kib_per_turn = (wal1.bytes - wal0.bytes) / 1024 / turns;
    }
    return r;
  }

  const Options options_;
  PgCluster* const cluster_;
  const long postmaster_;
  agentd::testing::FakeOpenAiServer* const fake_;
};

// ---- Output ------------------------------------------------------------------------------------

std::string Opt(const std::optional<double>& v, const char* fmt, const char* none) {
  if (!v) return none;
  char buf[32];
  std::snprintf(buf, sizeof(buf), fmt, *v);
  return buf;
}

void PrintHeader() {
  std::printf("%-16s %5s %7s %9s %8s %8s %6s %8s %8s %8s %9s %8s %6s\n", "case", "round", "turns",
              "turns/s", "p50_ms", "p99_ms", "errors", "cpu_ms", "pg_cpu", "total", "wal_sync",
              "wal_kib", "other");
}

void PrintRow(const Result& r, const char* round) {
  const double total = r.cpu_ms_per_turn + r.pg_cpu_ms_per_turn.value_or(0);
  std::printf("%-16s %5s %7" PRId64 " %9.1f %8.2f %8.2f %6" PRId64
              " %8.3f %8s %8.3f %9s %8s %6.2f\n",
              r.label.c_str(), round, r.turns, r.turns_per_s, r.p50_ms, r.p99_ms, r.errors,
              r.cpu_ms_per_turn, Opt(r.pg_cpu_ms_per_turn, "%.3f", "-").c_str(), total,
              Opt(r.wal_syncs_per_turn, "%.2f", "-").c_str(),
              Opt(r.wal_kib_per_turn, "%.1f", "-").c_str(), r.other_load_cores);
}

void PrintJson(const Result& r, const std::string& kind, const Options& o) {
  std::string per_replica;
  for (int n : r.sessions_per_replica)
    absl::StrAppend(&per_replica, per_replica.empty() ? "" : ",", n);
  std::printf(
      "RESULT {\"bench\":\"replica_bench\",\"kind\":\"%s\",\"case\":\"%s\",\"round\":%d,"
      "\"sessions\":%d,\"turns_per_session\":%d,\"turns\":%" PRId64 ",\"errors\":%" PRId64
      ",\"turns_per_s\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"wall_s\":%.3f,"
      "\"process_cpu_ms_per_turn\":%.4f,\"pg_cpu_ms_per_turn\":%s,\"pg_wal_syncs_per_turn\":%s,"
      "\"pg_wal_kib_per_turn\":%s,\"sessions_per_replica\":[%s],\"other_load_cores\":%.2f,"
      "\"loadavg_1m_before\":%.2f,\"loadavg_1m_after\":%.2f}\n",
      kind.c_str(), r.label.c_str(), r.round, o.sessions, o.turns, r.turns, r.errors, r.turns_per_s,
      r.p50_ms, r.p99_ms, r.wall_s, r.cpu_ms_per_turn,
      Opt(r.pg_cpu_ms_per_turn, "%.4f", "null").c_str(),
      Opt(r.wal_syncs_per_turn, "%.3f", "null").c_str(),
      Opt(r.wal_kib_per_turn, "%.2f", "null").c_str(), per_replica.c_str(), r.other_load_cores,
      r.load_before, r.load_after);
}

/// Per-field medians of one case's rounds (errors: the sum; a field's median is over the rounds).
Result Median(const std::vector<Result>& rounds) {
  auto med = [&](auto field) {
    std::vector<double> v;
    for (const Result& r : rounds) v.push_back(field(r));
    std::sort(v.begin(), v.end());
    return v.size() % 2 == 1 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  auto med_opt = [&](auto field) -> std::optional<double> {
    if (!field(rounds[0])) return std::nullopt;
    return med([&](const Result& r) { return field(r).value_or(0); });
  };
  Result m = rounds[0];
  m.round = 0;
  m.errors = 0;
  for (const Result& r : rounds) m.errors += r.errors;
  m.turns_per_s = med([](const Result& r) { return r.turns_per_s; });
  m.p50_ms = med([](const Result& r) { return r.p50_ms; });
  m.p99_ms = med([](const Result& r) { return r.p99_ms; });
  m.wall_s = med([](const Result& r) { return r.wall_s; });
  m.cpu_ms_per_turn = med([](const Result& r) { return r.cpu_ms_per_turn; });
  m.pg_cpu_ms_per_turn = med_opt([](const Result& r) { return r.pg_cpu_ms_per_turn; });
  m.wal_syncs_per_turn = med_opt([](const Result& r) { return r.wal_syncs_per_turn; });
  m.wal_kib_per_turn = med_opt([](const Result& r) { return r.wal_kib_per_turn; });
  m.other_load_cores = med([](const Result& r) { return r.other_load_cores; });
  m.load_before = med([](const Result& r) { return r.load_before; });
  m.load_after = med([](const Result& r) { return r.load_after; });
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "replica_bench: turns/s and turn latency, single-node RocksDB vs agentd replicas on one "
      "PostgreSQL (1 replica; 3 with session affinity; 3 round-robin per turn)"};
  Options options;
  bool quick = false;
  app.add_option("--sessions", options.sessions, "concurrent sessions, one client thread each (32)")
      ->check(CLI::Range(1, 1024));
  app.add_option("--turns", options.turns, "measured turns per session (50)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--warmup", options.warmup, "warm-up turns per session, not measured (2)")
      ->check(CLI::Range(0, 1000));
  app.add_option("--rounds", options.rounds, "rounds; the case order rotates each round (3)")
      ->check(CLI::Range(1, 100));
  app.add_option("--model", options.model,
                 "echo (inline), fake (fake OpenAI server over HTTP, 0 ms) or both (echo)")
      ->check(CLI::IsMember({"echo", "fake", "both"}));
  app.add_option("--shapes", options.shapes, "only these shapes (rocksdb pg_1 pg_3_hash pg_3_rr)")
      ->delimiter(',')
      ->check(CLI::IsMember({"rocksdb", "pg_1", "pg_3_hash", "pg_3_rr"}));
  app.add_flag("--quick", quick,
               "8 sessions x 10 turns, 1 warm-up, 1 round, no WAL statistics (seconds; for CI)");
  CLI11_PARSE(app, argc, argv);
  if (quick) {
    options.sessions = std::min(options.sessions, 8);
    options.turns = std::min(options.turns, 10);
    options.warmup = std::min(options.warmup, 1);
    options.rounds = 1;
    options.wal_stats = false;
  }
  spdlog::set_level(spdlog::level::warn);  // the replicas' start/stop lines would bury the table
  // As agentd's main() does: Debian's Abseil leaves mutex deadlock detection on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  std::vector<Case> cases;
  for (const std::string& model : {std::string("echo"), std::string("fake")}) {
    if (options.model != model && options.model != "both") continue;
    for (const Shape& shape : kShapes) {
      const auto& only = options.shapes;
      if (only.empty() || std::find(only.begin(), only.end(), shape.name) != only.end()) {
        cases.push_back({shape, model});
      }
    }
  }

  absl::StatusOr<std::unique_ptr<PgCluster>> cluster = PgCluster::Start();
  if (!cluster.ok()) {
    std::fprintf(stderr, "replica_bench: PostgreSQL cluster: %s\n",
                 cluster.status().ToString().c_str());
    return 2;
  }
  const long postmaster = PostmasterPid(**cluster);
  std::unique_ptr<agentd::testing::FakeOpenAiServer> fake;
  if (options.model != "echo") {
    fake = std::make_unique<agentd::testing::FakeOpenAiServer>();
    fake->set_record_requests(false);
  }
  auto setting = [&](const char* name) {
    return (*cluster)->Query("postgres", absl::StrCat("SHOW ", name)).value_or("?");
  };
  std::printf(
      "replica_bench: %d sessions x %d turns (+%d warm-up), %d round(s), input %zu bytes, "
      "durability sync, %u hw threads, load %.2f\n"
      "PostgreSQL %s on 127.0.0.1:%d (postmaster %ld): fsync %s, synchronous_commit (agentd "
      "sets it per connection), wal_sync_method %s, shared_buffers %s\n",
      options.sessions, options.turns, options.warmup, options.rounds, kInputBytes,
      std::thread::hardware_concurrency(), LoadAverage(), setting("server_version").c_str(),
      (*cluster)->port(), postmaster, setting("fsync").c_str(), setting("wal_sync_method").c_str(),
      setting("shared_buffers").c_str());
  std::fflush(stdout);

  Bench bench(options, cluster->get(), postmaster, fake.get());
  std::map<std::string, std::vector<Result>> by_case;
  std::vector<Result> all;
  int exit_code = 0;
  for (int round = 1; round <= options.rounds && exit_code != 2; ++round) {
    for (size_t k = 0; k < cases.size(); ++k) {
      const Case& c = cases[(k + static_cast<size_t>(round - 1)) % cases.size()];
      std::optional<Result> r = bench.Run(c, round);
      if (!r) {
        exit_code = 2;
        break;
      }
      PrintJson(*r, "round", options);
      std::fflush(stdout);
      if (r->errors > 0) exit_code = std::max(exit_code, 1);
      by_case[r->label].push_back(*r);
      all.push_back(*std::move(r));
    }
  }

  std::printf(
      "\nper round (cpu_ms: this process per turn, clients and replicas; pg_cpu: the "
      "PostgreSQL cluster per turn; wal_*: pg_stat_wal per turn; other: cores busy "
      "elsewhere)\n");
  PrintHeader();
  for (const Result& r : all) PrintRow(r, std::to_string(r.round).c_str());
  std::printf(
      "\nmedians over %d round(s) (errors: sum over the rounds; total: the sum of the "
      "two CPU medians)\n",
      options.rounds);
  PrintHeader();
  for (const Case& c : cases) {
    auto it = by_case.find(c.label());
    if (it == by_case.end()) continue;
    const Result m = Median(it->second);
    PrintRow(m, "med");
    PrintJson(m, "median", options);
  }
  for (const Case& c : cases) {
    auto it = by_case.find(c.label());
    if (it == by_case.end() || c.shape.replicas < 2 || c.shape.routing != Routing::kHash) continue;
    std::string split;
    for (int n : it->second[0].sessions_per_replica)
      absl::StrAppend(&split, split.empty() ? "" : "/", n);
    std::printf("%s: sessions per replica by hash (home replica): %s\n", c.label().c_str(),
                split.c_str());
    break;
  }
  for (const Result& r : all) {
    for (const std::string& e : r.error_samples) {
      std::printf("error (%s, round %d): %s\n", r.label.c_str(), r.round, e.c_str());
    }
  }
  return exit_code;
}
