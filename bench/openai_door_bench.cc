// openai_door_bench: what the OpenAI-compatible HTTP door costs next to gRPC (issue #11, Speed).
//
// One process: agentd in-process (temp data dir, gRPC and http_listen on 127.0.0.1:0), the fake
// OpenAI server (tests/testing/fake_openai.h) as a streaming model backend, and the clients.
// Cases, interleaved in rounds with the order rotated each round (machine drift hits both alike):
//   grpc_turn       unary RunTurn (blocking stub, one channel), 200-byte user message, `echo`
//                   agent, on session S1;
//   http_response   POST /v1/responses {"model":"agent:<id>","conversation":S2,"input":<same>}
//                   over one reused libcurl handle (keep-alive), JSON parsed and checked;
//   *_c<N>          the same with N sessions per case, one thread (stub / curl handle) each;
//   grpc_stream / http_stream   first-delta latency: the fake writes a first content delta, then
//                   drips the rest; latency = client receipt of the first text delta (gRPC
//                   TextDelta / SSE response.output_text.delta) - the fake's stamp of that chunk.
// Targets: p50(http_response) / p50(grpc_turn) <= 1.5; first delta through the door <= 1 ms.
// Every call is checked; any failure is counted, printed, and makes the exit code 1.
// Output: a human-readable table plus `RESULT {json}` lines.
#include <curl/curl.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "agentd/v1/session.grpc.pb.h"
#include "bench_util.h"
#include "nlohmann/json.hpp"
#include "openai_door_clients.h"
#include "server/server.h"
#include "testing/fake_openai.h"

namespace {

using agentd::bench::CpuSeconds;
using agentd::bench::LoadAverage;
using agentd::bench::Percentile;
using agentd::bench::door::Clock;
using agentd::bench::door::GrpcClient;
using agentd::bench::door::HttpClient;
using agentd::bench::door::Ms;
using nlohmann::json;
namespace v1 = agentd::v1;

constexpr char kBenchKey[] = "agd-openai-door-bench-bootstrap-admin-key";
constexpr size_t kInputBytes = 200;
// The streamed answer: the first delta, then (after the drip interval) the rest.
constexpr char kFirstPiece[] = "first-delta-16ch";
constexpr char kRestPiece[] = " and the rest.";
constexpr int kMaxErrorSamples = 10;

std::string MakeInput(const std::string& tag, int64_t n) {
  std::string text = tag + " turn " + std::to_string(n) + ": ";
  static constexpr char kFiller[] = "the quick brown fox jumps over the lazy dog. ";
  while (text.size() < kInputBytes) text += kFiller;
  text.resize(kInputBytes);
  return text;
}

// One case's samples (ms), failures and the process CPU its blocks used.
struct CaseStats {
  std::string name;
  std::vector<double> ms;
  int64_t errors = 0;
  double cpu_s = 0;
  double wall_s = 0;
  std::vector<std::string> error_samples;
  absl::Mutex mu;  // concurrent blocks merge under it

  void Fail(const std::string& what) {
    absl::MutexLock lock(&mu);
    ++errors;
    if (error_samples.size() < kMaxErrorSamples) error_samples.push_back(name + ": " + what);
  }
};

// ---- The bench ---------------------------------------------------------------------------------

struct Options {
  std::string durability = "sync";
  int rounds = 10, turns = 300, warmup = 100;
  int concurrency = 16, concurrent_turns = 20;
  int stream_turns = 20, drip_ms = 20;
};

struct Env {
  std::string http_address;
  std::shared_ptr<grpc::Channel> channel;
  std::string echo_agent, gpt_agent;
  agentd::testing::FakeOpenAiServer* fake = nullptr;
};

/// The sessions and clients of one case at one concurrency.
struct Lane {
  std::string session;
  std::unique_ptr<GrpcClient> grpc;
  std::unique_ptr<HttpClient> http;
  int64_t turn = 0;
};

std::optional<std::string> CreateSession(const Env& env, const std::string& agent) {
  auto stub = v1::SessionService::NewStub(env.channel);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Bearer ") + kBenchKey);
  v1::CreateSessionRequest req;
  req.set_agent_id(agent);
  v1::Session s;
  const grpc::Status st = stub->CreateSession(&ctx, req, &s);
  if (!st.ok()) {
    std::fprintf(stderr, "openai_door_bench: CreateSession: %s\n", st.error_message().c_str());
    return std::nullopt;
  }
  return s.session_id();
}

std::optional<std::string> CreateAgent(const Env& env, const std::string& name,
                                       const std::string& model) {
  auto stub = v1::AgentService::NewStub(env.channel);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", std::string("Bearer ") + kBenchKey);
  v1::CreateAgentRequest req;
  req.mutable_agent()->set_name(name);
  req.mutable_agent()->set_model(model);
  v1::Agent agent;
  const grpc::Status st = stub->CreateAgent(&ctx, req, &agent);
  if (!st.ok()) {
    std::fprintf(stderr, "openai_door_bench: CreateAgent: %s\n", st.error_message().c_str());
    return std::nullopt;
  }
  return agent.agent_id();
}

std::optional<std::vector<Lane>> MakeLanes(const Env& env, bool http, int n,
                                           const std::string& agent) {
  std::vector<Lane> lanes(n);
  for (Lane& l : lanes) {
    auto s = CreateSession(env, agent);
    if (!s) return std::nullopt;
    l.session = *s;
    if (http) {
      l.http = std::make_unique<HttpClient>(env.http_address, kBenchKey);
    } else {
      l.grpc = std::make_unique<GrpcClient>(env.channel, kBenchKey);
    }
  }
  return lanes;
}

/// `turns` non-streaming turns on every lane (one thread per lane when several).
void RunTurns(const Env& env, std::vector<Lane>& lanes, int turns, CaseStats* stats, bool record,
              std::vector<double>* round_ms) {
  auto drive = [&](Lane& lane, std::vector<double>* out) {
    for (int i = 0; i < turns; ++i) {
      const std::string text = MakeInput(lane.session, lane.turn++);
      double ms = 0;
      const std::string err = lane.http
                                  ? lane.http->Respond(env.echo_agent, lane.session, text, &ms)
                                  : lane.grpc->RunTurn(lane.session, text, &ms);
      if (!err.empty()) {
        stats->Fail(err);
      } else if (record) {
        out->push_back(ms);
      }
    }
  };
  std::vector<std::vector<double>> per_lane(lanes.size());
  const double cpu0 = CpuSeconds();
  const Clock::time_point t0 = Clock::now();
  if (lanes.size() == 1) {
    drive(lanes[0], &per_lane[0]);
  } else {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < lanes.size(); ++i) {
      threads.emplace_back([&, i] { drive(lanes[i], &per_lane[i]); });
    }
    for (auto& t : threads) t.join();
  }
  if (!record) return;
  stats->wall_s += std::chrono::duration<double>(Clock::now() - t0).count();
  stats->cpu_s += CpuSeconds() - cpu0;
  for (const auto& v : per_lane) {
    stats->ms.insert(stats->ms.end(), v.begin(), v.end());
    round_ms->insert(round_ms->end(), v.begin(), v.end());
  }
}

/// `turns` streamed turns on `lane`, recording first-delta latencies against the fake's stamps.
void RunStreams(const Env& env, Lane& lane, int turns, CaseStats* stats) {
  const std::string first = kFirstPiece;
  const std::string all = std::string(kFirstPiece) + kRestPiece;
  for (int i = 0; i < turns; ++i) {
    const std::string text = MakeInput(lane.session, lane.turn++);
    const int before = env.fake->first_content().count;
    Clock::time_point got;
    const std::string err =
        lane.http ? lane.http->Stream(env.gpt_agent, lane.session, text, first, all, &got)
                  : lane.grpc->StreamTurn(lane.session, text, first, all, &got);
    const auto stamp = env.fake->first_content();
    if (!err.empty()) {
      stats->Fail(err);
    } else if (stamp.count != before + 1) {
      stats->Fail("the fake stamped " + std::to_string(stamp.count - before) + " first deltas");
    } else {
      stats->ms.push_back(Ms(got - stamp.at));
    }
  }
}

// ---- Output ------------------------------------------------------------------------------------

struct Row {
  const CaseStats* stats;
  int sessions;
};

void PrintRow(const CaseStats& s, int sessions) {
  const double n = static_cast<double>(s.ms.size());
  char cpu[32] = "-", rate[32] = "-";
  if (s.cpu_s > 0 && n > 0) std::snprintf(cpu, sizeof(cpu), "%.3f", s.cpu_s * 1000 / n);
  if (s.wall_s > 0) std::snprintf(rate, sizeof(rate), "%.0f", n / s.wall_s);
  std::printf("%-24s %8d %7zu %8.3f %8.3f %8.3f %8.3f %11s %8s %6" PRId64 "\n", s.name.c_str(),
              sessions, s.ms.size(), Percentile(s.ms, 0.5), Percentile(s.ms, 0.9),
              Percentile(s.ms, 0.99),
              s.ms.empty() ? 0 : *std::max_element(s.ms.begin(), s.ms.end()), cpu, rate, s.errors);
}

void PrintJson(const CaseStats& s, int sessions, const Options& o) {
  const double n = static_cast<double>(s.ms.size());
  std::printf(
      "RESULT {\"bench\":\"openai_door\",\"case\":\"%s\",\"sessions\":%d,\"samples\":%zu,"
      "\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,\"max_ms\":%.4f,"
      "\"process_cpu_ms_per_call\":%.4f,\"calls_per_s\":%.1f,\"errors\":%" PRId64
      ",\"durability\":\"%s\"}\n",
      s.name.c_str(), sessions, s.ms.size(), Percentile(s.ms, 0.5), Percentile(s.ms, 0.9),
      Percentile(s.ms, 0.99), s.ms.empty() ? 0 : *std::max_element(s.ms.begin(), s.ms.end()),
      n > 0 ? s.cpu_s * 1000 / n : 0, s.wall_s > 0 ? n / s.wall_s : 0, s.errors,
      o.durability.c_str());
}

std::optional<std::string> MakeTempDir() {
  std::string tmpl =
      (std::filesystem::temp_directory_path() / "agentd-openai-door-bench-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) return std::nullopt;
  return tmpl;
}

double Median(std::vector<double> v) { return Percentile(std::move(v), 0.5); }

int Run(const Options& o, const Env& env) {
  CaseStats grpc_turn, http_resp, grpc_conc, http_conc, grpc_stream, http_stream;
  grpc_turn.name = "grpc_turn";
  http_resp.name = "http_response";
  grpc_conc.name = "grpc_turn_c" + std::to_string(o.concurrency);
  http_conc.name = "http_response_c" + std::to_string(o.concurrency);
  grpc_stream.name = "grpc_stream_first_delta";
  http_stream.name = "http_stream_first_delta";

  auto g1 = MakeLanes(env, false, 1, env.echo_agent);
  auto h1 = MakeLanes(env, true, 1, env.echo_agent);
  auto gs = MakeLanes(env, false, 1, env.gpt_agent);
  auto hs = MakeLanes(env, true, 1, env.gpt_agent);
  std::optional<std::vector<Lane>> gc, hc;
  if (o.concurrency > 0) {
    gc = MakeLanes(env, false, o.concurrency, env.echo_agent);
    hc = MakeLanes(env, true, o.concurrency, env.echo_agent);
    if (!gc || !hc) return 2;
  }
  if (!g1 || !h1 || !gs || !hs) return 2;

  // Warm-up (not recorded, errors still count): connections, caches, first-use paths.
  std::vector<double> unused;
  RunTurns(env, *g1, o.warmup, &grpc_turn, false, &unused);
  RunTurns(env, *h1, o.warmup, &http_resp, false, &unused);
  if (o.concurrency > 0) {
    RunTurns(env, *gc, 2, &grpc_conc, false, &unused);
    RunTurns(env, *hc, 2, &http_conc, false, &unused);
  }
  CaseStats stream_warm;
  stream_warm.name = "stream_warmup";
  RunStreams(env, (*gs)[0], 2, &stream_warm);
  RunStreams(env, (*hs)[0], 2, &stream_warm);

  std::vector<double> ratios, ratios_conc;
  const double load_before = LoadAverage();
  for (int r = 0; r < o.rounds; ++r) {
    const bool http_first = r % 2 == 1;
    std::vector<double> g_ms, h_ms, gc_ms, hc_ms;
    for (int k = 0; k < 2; ++k) {
      if ((k == 0) != http_first) {
        RunTurns(env, *g1, o.turns, &grpc_turn, true, &g_ms);
      } else {
        RunTurns(env, *h1, o.turns, &http_resp, true, &h_ms);
      }
    }
    if (o.concurrency > 0) {
      for (int k = 0; k < 2; ++k) {
        if ((k == 0) != http_first) {
          RunTurns(env, *gc, o.concurrent_turns, &grpc_conc, true, &gc_ms);
        } else {
          RunTurns(env, *hc, o.concurrent_turns, &http_conc, true, &hc_ms);
        }
      }
    }
    for (int k = 0; k < 2; ++k) {
      if ((k == 0) != http_first) {
        RunStreams(env, (*gs)[0], o.stream_turns, &grpc_stream);
      } else {
        RunStreams(env, (*hs)[0], o.stream_turns, &http_stream);
      }
    }
    const double ratio = Median(g_ms) > 0 ? Median(h_ms) / Median(g_ms) : 0;
    ratios.push_back(ratio);
    std::printf("round %d: p50 grpc_turn %.3f ms, http_response %.3f ms, ratio %.3f", r + 1,
                Median(g_ms), Median(h_ms), ratio);
    if (o.concurrency > 0) {
      const double rc = Median(gc_ms) > 0 ? Median(hc_ms) / Median(gc_ms) : 0;
      ratios_conc.push_back(rc);
      std::printf("; c%d ratio %.3f", o.concurrency, rc);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  const double load_after = LoadAverage();

  std::vector<Row> rows = {{&grpc_turn, 1}, {&http_resp, 1}};
  if (o.concurrency > 0) {
    rows.push_back({&grpc_conc, o.concurrency});
    rows.push_back({&http_conc, o.concurrency});
  }
  rows.push_back({&grpc_stream, 1});
  rows.push_back({&http_stream, 1});
  for (const Row& row : rows) PrintJson(*row.stats, row.sessions, o);

  const double ratio = Median(ratios);
  const double ratio_all =
      Percentile(http_resp.ms, 0.5) / std::max(1e-9, Percentile(grpc_turn.ms, 0.5));
  const double ratio_conc = Median(ratios_conc);
  const double fd50 = Percentile(http_stream.ms, 0.5), fd99 = Percentile(http_stream.ms, 0.99);
  int64_t connects = 0;
  for (auto* lanes : {&*h1, &*hs}) connects += (*lanes)[0].http->connects();
  std::printf(
      "RESULT {\"bench\":\"openai_door\",\"case\":\"summary\",\"ratio_p50_median_of_rounds\":%.3f,"
      "\"ratio_p50_all\":%.3f,\"ratio_p50_concurrent_median_of_rounds\":%.3f,"
      "\"ratio_target\":1.5,\"ratio_met\":%s,\"http_first_delta_p50_ms\":%.4f,"
      "\"http_first_delta_p99_ms\":%.4f,\"grpc_first_delta_p50_ms\":%.4f,"
      "\"grpc_first_delta_p99_ms\":%.4f,\"first_delta_target_ms\":1.0,\"first_delta_p50_met\":%s,"
      "\"first_delta_p99_met\":%s,\"rounds\":%d,\"http_connects_sequential\":%" PRId64
      ",\"durability\":\"%s\",\"loadavg_1m_before\":%.2f,\"loadavg_1m_after\":%.2f}\n",
      ratio, ratio_all, ratio_conc, ratio <= 1.5 ? "true" : "false", fd50, fd99,
      Percentile(grpc_stream.ms, 0.5), Percentile(grpc_stream.ms, 0.99),
      fd50 <= 1.0 ? "true" : "false", fd99 <= 1.0 ? "true" : "false", o.rounds, connects,
      o.durability.c_str(), load_before, load_after);

  std::printf("\n%-24s %8s %7s %8s %8s %8s %8s %11s %8s %6s\n", "case", "sessions", "samples",
              "p50_ms", "p90_ms", "p99_ms", "max_ms", "cpu_ms/call", "calls/s", "errors");
  for (const Row& row : rows) PrintRow(*row.stats, row.sessions);
  std::printf(
      "(turn rows: client-observed latency of a whole turn; first_delta rows: client receipt of "
      "the first text delta - the fake model's stamp of that chunk; cpu_ms/call: getrusage of "
      "the whole process, server AND clients)\n");
  std::printf(
      "ratio p50(http_response)/p50(grpc_turn): median of rounds %.3f, all samples %.3f "
      "-> target <= 1.5 %s\n",
      ratio, ratio_all, ratio <= 1.5 ? "MET" : "NOT MET");
  if (o.concurrency > 0) {
    std::printf("ratio at %d sessions per case: median of rounds %.3f\n", o.concurrency,
                ratio_conc);
  }
  std::printf(
      "first delta through the HTTP door: p50 %.3f ms, p99 %.3f ms -> target <= 1 ms: "
      "p50 %s, p99 %s (gRPC StreamTurn: p50 %.3f ms, p99 %.3f ms)\n",
      fd50, fd99, fd50 <= 1.0 ? "MET" : "NOT MET", fd99 <= 1.0 ? "MET" : "NOT MET",
      Percentile(grpc_stream.ms, 0.5), Percentile(grpc_stream.ms, 0.99));
  std::printf("HTTP connections opened by the sequential clients: %" PRId64
              " (2 = keep-alive held); load(1m) %.2f -> %.2f\n",
              connects, load_before, load_after);

  int64_t errors = 0;
  for (CaseStats* s :
       {&grpc_turn, &http_resp, &grpc_conc, &http_conc, &grpc_stream, &http_stream, &stream_warm}) {
    errors += s->errors;
    for (const std::string& e : s->error_samples) std::printf("error: %s\n", e.c_str());
  }
  return errors > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "openai_door_bench: the OpenAI-compatible HTTP door next to gRPC (turn cost, "
      "first-delta latency)"};
  Options o;
  bool quick = false;
  std::optional<int> rounds, turns, warmup, concurrent_turns, stream_turns;
  app.add_option("--durability", o.durability, "sync|relaxed (default sync)")
      ->check(CLI::IsMember({"sync", "relaxed"}));
  app.add_option("--rounds", rounds, "rounds (default 10; --quick 3)")->check(CLI::Range(1, 1000));
  app.add_option("--turns", turns, "non-streaming turns per case per round (default 300; quick 50)")
      ->check(CLI::Range(1, 1000000));
  app.add_option("--warmup", warmup, "warm-up turns per case (default 100; quick 20)")
      ->check(CLI::Range(0, 1000000));
  app.add_option("--concurrency", o.concurrency,
                 "sessions per case at the concurrent level (default 16; 0 = skip it)")
      ->check(CLI::Range(0, 256));
  app.add_option("--concurrent-turns", concurrent_turns,
                 "turns per session per round at the concurrent level (default 20; quick 5)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--stream-turns", stream_turns,
                 "streamed turns per case per round (default 20; quick 5)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--drip-ms", o.drip_ms,
                 "the fake model's pause between stream chunks (default 20)")
      ->check(CLI::Range(1, 1000));
  app.add_flag("--quick", quick, "small counts (finishes in seconds)");
  CLI11_PARSE(app, argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);  // as agentd's main()
  o.rounds = rounds.value_or(quick ? 3 : 10);
  o.turns = turns.value_or(quick ? 50 : 300);
  o.warmup = warmup.value_or(quick ? 20 : 100);
  o.concurrent_turns = concurrent_turns.value_or(quick ? 5 : 20);
  o.stream_turns = stream_turns.value_or(quick ? 5 : 20);
  curl_global_init(CURL_GLOBAL_DEFAULT);

  std::unique_ptr<agentd::testing::FakeOpenAiServer> fake;
  try {
    fake = std::make_unique<agentd::testing::FakeOpenAiServer>();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "openai_door_bench: fake model: %s\n", e.what());
    return 2;
  }
  fake->set_record_requests(false);
  agentd::testing::FakeReply reply;
  reply.text = std::string(kFirstPiece) + kRestPiece;
  reply.chunk_chars = static_cast<int>(sizeof(kFirstPiece) - 1);
  reply.drip_interval_ms = o.drip_ms;
  fake->SetDefault(reply);

  auto dir = MakeTempDir();
  if (!dir) {
    std::fprintf(stderr, "openai_door_bench: cannot create a temp dir\n");
    return 2;
  }
  agentd::server::ServerOptions so;
  so.config.listen = "127.0.0.1:0";
  so.config.http_listen = "127.0.0.1:0";
  so.config.data_dir = *dir;
  so.config.durability = o.durability;
  so.bootstrap_key = kBenchKey;
  agentd::server::BackendConfig b;
  b.name = "fake";
  b.type = "openai";
  b.base_url = fake->base_url();
  so.config.backends.push_back(b);
  agentd::server::ModelConfig m;
  m.name = "gpt";
  m.deployments.push_back({"fake", "fake-gpt", 1});
  so.config.models.push_back(m);
  auto started = agentd::server::AgentdServer::Start(std::move(so));
  if (!started.ok()) {
    std::fprintf(stderr, "openai_door_bench: starting agentd: %s\n",
                 std::string(started.status().message()).c_str());
    std::filesystem::remove_all(*dir);
    return 2;
  }
  std::unique_ptr<agentd::server::AgentdServer> server = *std::move(started);

  int exit_code = 2;
  {
    Env env;
    env.http_address = server->http_address();
    env.channel = grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());
    env.fake = fake.get();
    auto echo = CreateAgent(env, "door-bench-echo", "echo");
    auto gpt = CreateAgent(env, "door-bench-gpt", "gpt");
    if (echo && gpt) {
      env.echo_agent = *echo;
      env.gpt_agent = *gpt;
      std::printf(
          "openai_door_bench: agentd in-process (gRPC %s, HTTP door %s, durability %s, data dir "
          "%s), %u hw threads; %d rounds x %d turns/case (+%d warm-up), concurrent %d sessions x "
          "%d turns/round, %d streams/case/round (fake drips every %d ms); input %zu bytes\n",
          server->address().c_str(), env.http_address.c_str(), o.durability.c_str(), dir->c_str(),
          std::thread::hardware_concurrency(), o.rounds, o.turns, o.warmup, o.concurrency,
          o.concurrent_turns, o.stream_turns, o.drip_ms, kInputBytes);
      std::fflush(stdout);
      exit_code = Run(o, env);
    }
  }
  server->Shutdown(absl::Seconds(5));
  server.reset();
  fake.reset();
  std::error_code ec;
  std::filesystem::remove_all(*dir, ec);
  curl_global_cleanup();
  return exit_code;
}
