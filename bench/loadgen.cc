// loadgen: async gRPC load generator against a running agentd (issue #8).
//
// Creates its own agent (a ~2 KB system prompt, the model given by --model) and sessions through
// the public API, then runs agent steps: a 200-byte user message per step; with a tool-calling
// model (bench/mock-openai) the step is model call → tool call → 1 KB tool result → model call →
// final answer, all persisted by agentd before the reply.
//   closed loop: --sessions N × --turns M (each session's steps sequential, sessions concurrent)
//   open loop:   --rate R steps/s for --duration S, latency from each step's scheduled arrival
// Reports steps/s, latency p50/p90/p99/max overall and by turn index within a session, errors by
// kind, and with --server-pid the server's CPU seconds and bytes written per step, with
// --data-dir the final data-dir size; a table and one `RESULT {json}` line. Before the measured
// loop a floor probe (loadgen_floor.h, --floor-calls) measures the gRPC round trip and the
// fdatasync a step cannot go below, reported next to it. Exit code 1 if any step failed, 2 if
// the run could not be set up (or a floor call failed).
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "agentd/v1/session.grpc.pb.h"
#include "bench_util.h"
#include "loadgen_driver.h"
#include "loadgen_floor.h"
#include "loadgen_stats.h"
#include "nlohmann/json.hpp"
#include "testing/metrics_scrape.h"

namespace {

namespace v1 = agentd::v1;
namespace lg = agentd::bench::loadgen;
using nlohmann::json;

struct Options {
  std::string addr = "127.0.0.1:7700";
  std::string api_key;
  std::string model = "echo";
  std::string tool = "auto";  // auto|none|builtin|client
  std::string tool_name;      // default: state_get (builtin), lookup (client)
  int sessions = 16;
  int turns = 20;
  double rate = 0;  // > 0: open loop
  double duration_s = 10;
  int channels = 4;
  int warmup_steps = 1;
  size_t system_prompt_bytes = 2048;
  size_t message_bytes = 200;
  size_t tool_result_bytes = 1024;
  int max_context_tokens = 0;
  int timeout_ms = 30000;
  int server_pid = 0;
  int mock_pid = 0;
  int64_t floor_calls = 1000;  // 0: no floor probe
  std::string metrics;  // agentd's metrics_listen HOST:PORT: model time per step, overhead
  std::string data_dir;
  std::string csv;
  std::string label;
};

std::string Filled(const std::string& head, size_t bytes) {
  return lg::FilledText(head, bytes,
                        " You are a careful assistant. Use the tools you are given, cite what"
                        " they return, and answer briefly.");
}

/// Connections, agent and sessions, made with blocking calls before the measured run.
class Setup {
 public:
  Setup(const Options& o, const lg::Workload& w) : o_(o), w_(w) {}

  bool Connect() {
    for (int i = 0; i < o_.channels; ++i) {
      grpc::ChannelArguments args;
      // Without this, channels with equal arguments share one TCP connection.
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      auto ch = grpc::CreateCustomChannel(o_.addr, grpc::InsecureChannelCredentials(), args);
      if (!ch->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
        return Fail("cannot connect to " + o_.addr);
      }
      stubs_.push_back(v1::SessionService::NewStub(ch));
      channels_.push_back(std::move(ch));
    }
    return true;
  }

  bool CreateAgent() {
    auto agents = v1::AgentService::NewStub(channels_[0]);
    v1::CreateAgentRequest req;
    v1::Agent* a = req.mutable_agent();
    a->set_name("loadgen");
    a->set_model(o_.model);
    a->set_instructions(Filled("You are the loadgen benchmark agent.", o_.system_prompt_bytes));
    if (o_.max_context_tokens > 0) {
      a->mutable_context_policy()->set_max_context_tokens(o_.max_context_tokens);
    }
    if (w_.tool == lg::ToolMode::kBuiltin) {
      v1::ToolSpec* t = a->add_tools();
      t->set_name(o_.tool_name);
      t->set_kind(v1::TOOL_KIND_BUILTIN);
    } else if (w_.tool == lg::ToolMode::kClient) {
      v1::ToolSpec* t = a->add_tools();
      t->set_name(o_.tool_name);
      t->set_description("Looks a key up and returns the document stored under it.");
      t->set_parameters_json_schema(
          R"({"type":"object","properties":{"key":{"type":"string"}},"required":["key"]})");
      t->set_kind(v1::TOOL_KIND_CLIENT);
    }
    v1::Agent agent;
    auto ctx = Context();
    const grpc::Status st = agents->CreateAgent(ctx.get(), req, &agent);
    if (!st.ok()) return Fail("CreateAgent: " + st.error_message());
    agent_id_ = agent.agent_id();
    return true;
  }

  /// Creates `n` sessions (builtin tool mode: each gets the 1 KB document under "doc" that the
  /// model's state_get call reads); runners spread over the channels.
  bool CreateRunners(int n, std::vector<std::unique_ptr<lg::SessionRunner>>* out) {
    const std::string doc = json(Filled("doc:", o_.tool_result_bytes - 2)).dump();
    for (int i = 0; i < n; ++i) {
      v1::SessionService::Stub* stub = stubs_[out->size() % stubs_.size()].get();
      v1::CreateSessionRequest req;
      req.set_agent_id(agent_id_);
      v1::Session session;
      auto ctx = Context();
      grpc::Status st = stub->CreateSession(ctx.get(), req, &session);
      if (!st.ok()) return Fail("CreateSession: " + st.error_message());
      if (w_.tool == lg::ToolMode::kBuiltin) {
        v1::PutStateRequest put;
        put.set_session_id(session.session_id());
        put.set_key("doc");
        put.set_value_json(doc);
        v1::StateEntry entry;
        auto put_ctx = Context();
        st = stub->PutState(put_ctx.get(), put, &entry);
        if (!st.ok()) return Fail("PutState: " + st.error_message());
      }
      out->push_back(std::make_unique<lg::SessionRunner>(stub, session.session_id(), &w_));
    }
    return true;
  }

  /// The connections the steps use (the floor probe runs over them too).
  const std::vector<std::shared_ptr<grpc::Channel>>& channels() const { return channels_; }

 private:
  std::unique_ptr<grpc::ClientContext> Context() const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", w_.authorization);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return ctx;
  }
  static bool Fail(const std::string& message) {
    std::fprintf(stderr, "loadgen: %s\n", message.c_str());
    return false;
  }

  const Options& o_;
  const lg::Workload& w_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<v1::SessionService::Stub>> stubs_;
  std::string agent_id_;
};

/// Readings of the machine, this process and the watched processes at one moment.
struct Snapshot {
  double system_busy_s = 0, self_cpu_s = 0;
  std::optional<lg::ProcReading> server, mock;
  double model_s = -1;  // agentd_model_call_duration_seconds_sum (-1: not scraped)
  static Snapshot Take(const Options& o) {
    Snapshot s;
    if (!o.metrics.empty()) {
      s.model_s = agentd::testing::ScrapeSum(o.metrics, "agentd_model_call_duration_seconds_sum");
    }
    s.system_busy_s = agentd::bench::SystemBusySeconds();
    s.self_cpu_s = agentd::bench::CpuSeconds();
    if (o.server_pid > 0) s.server = lg::ReadProc(o.server_pid);
    if (o.mock_pid > 0) s.mock = lg::ReadProc(o.mock_pid);
    return s;
  }
};

// Rounded to 3 decimals, so the RESULT line stays readable.
double R3(double x) { return std::round(x * 1000) / 1000; }

json SummaryJson(const lg::LatencySummary& s) {
  return {{"n", s.n}, {"p50_ms", R3(s.p50)}, {"p90_ms", R3(s.p90)}, {"p99_ms", R3(s.p99)},
          {"max_ms", R3(s.max)}};
}

void PrintSummaryRow(const std::string& label, const lg::LatencySummary& s) {
  std::printf("  %-12s %8zu %9.3f %9.3f %9.3f %9.3f\n", label.c_str(), s.n, s.p50, s.p90, s.p99,
              s.max);
}

lg::ToolMode ParseToolMode(const Options& o) {
  if (o.tool == "builtin") return lg::ToolMode::kBuiltin;
  if (o.tool == "client") return lg::ToolMode::kClient;
  if (o.tool == "none") return lg::ToolMode::kNone;
  return o.model == "echo" ? lg::ToolMode::kNone : lg::ToolMode::kBuiltin;
}

/// Runs the floor probe over the steps' channels; nullopt (after saying why) if a call failed.
std::optional<lg::Floor> RunFloorProbe(const Options& o, const Setup& setup) {
  lg::FloorOptions f;
  f.rpc_calls = o.floor_calls;
  f.rpc_in_flight = std::min(o.sessions, 64);  // as many in flight as the steps (warm-up cap)
  f.rpc_timeout = std::chrono::milliseconds(o.timeout_ms);
  f.server_pid = o.server_pid;
  f.data_dir = o.data_dir;
  lg::Floor result;
  std::string error;
  if (!lg::MeasureFloor(setup.channels(), f, &result, &error)) {
    std::fprintf(stderr, "loadgen: floor probe: %s\n", error.c_str());
    return std::nullopt;
  }
  return result;
}

json FloorJson(const lg::Floor& f) {
  json j = {{"rpc_calls", f.rpc.calls},
            {"rpc_in_flight", f.rpc.in_flight},
            {"rpc_p50_ms", R3(f.rpc.latency.p50)},
            {"rpc_p99_ms", R3(f.rpc.latency.p99)},
            {"rpc_per_s", R3(f.rpc.per_s)},
            {"rpc_loadgen_cpu_ms", R3(f.rpc.loadgen_cpu_ms)}};
  if (f.rpc.server_cpu_ms) j["rpc_server_cpu_ms"] = R3(*f.rpc.server_cpu_ms);
  if (f.fsync) {
    j["fsync_p50_ms"] = R3(f.fsync->latency.p50);
    j["fsync_p99_ms"] = R3(f.fsync->latency.p99);
  }
  return j;
}

const char* ToolModeName(lg::ToolMode m) {
  switch (m) {
    case lg::ToolMode::kBuiltin:
      return "builtin";
    case lg::ToolMode::kClient:
      return "client";
    case lg::ToolMode::kNone:
      break;
  }
  return "none";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"loadgen: async gRPC load generator for a running agentd"};
  Options o;
  app.add_option("--addr", o.addr, "agentd gRPC address (default 127.0.0.1:7700)");
  app.add_option("--api-key", o.api_key, "API key (MEMBER or ADMIN)")->envname("AGENTD_API_KEY");
  app.add_option("--model", o.model, "the agent's model (default echo)");
  app.add_option("--tool", o.tool,
                 "auto|none|builtin|client: how the model's tool call is answered (auto: none "
                 "for echo, else builtin = agentd's state_get reading a 1 KB document)")
      ->check(CLI::IsMember({"auto", "none", "builtin", "client"}));
  app.add_option("--tool-name", o.tool_name,
                 "the tool's name (default state_get for builtin, lookup for client; must match "
                 "mock-openai --tool-name)");
  app.add_option("--sessions", o.sessions, "concurrent sessions (default 16)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--turns", o.turns, "closed loop: steps per session (default 20)")
      ->check(CLI::Range(1, 10000000));
  app.add_option("--rate", o.rate, "open loop: arrivals per second (> 0 selects the open loop)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--duration", o.duration_s, "open loop: seconds of arrivals (default 10)")
      ->check(CLI::PositiveNumber);
  app.add_option("--channels", o.channels, "gRPC channels (TCP connections, default 4)")
      ->check(CLI::Range(1, 256));
  app.add_option("--warmup-steps", o.warmup_steps,
                 "steps per warm-up session (one per session, on their own sessions; 0 = none)")
      ->check(CLI::Range(0, 1000));
  app.add_option("--system-prompt-bytes", o.system_prompt_bytes, "default 2048");
  app.add_option("--message-bytes", o.message_bytes, "user message per step (default 200)");
  app.add_option("--tool-result-bytes", o.tool_result_bytes, "default 1024")
      ->check(CLI::Range(16, 1 << 20));
  app.add_option("--max-context-tokens", o.max_context_tokens,
                 "agent context_policy.max_context_tokens (0 = server default)");
  app.add_option("--timeout-ms", o.timeout_ms, "deadline per RunTurn (default 30000)");
  app.add_option("--server-pid", o.server_pid, "agentd's pid: CPU and bytes written per step");
  app.add_option("--mock-pid", o.mock_pid, "the model server's pid: its CPU per step");
  app.add_option("--data-dir", o.data_dir, "agentd's data dir: its size after the run");
  app.add_option("--metrics", o.metrics,
                 "agentd's metrics_listen HOST:PORT: model time per step and the runtime "
                 "overhead (step latency minus it)");
  app.add_option("--floor-calls", o.floor_calls,
                 "floor probe before the measured loop: this many grpc.health.v1.Health/Check "
                 "calls over the steps' channels, min(--sessions, 64) in flight, and with "
                 "--data-dir 500 2 KB appends + fdatasync in its parent dir (default 1000; 0 = "
                 "no probe)")
      ->check(CLI::Range(int64_t{0}, int64_t{10000000}));
  app.add_option("--csv", o.csv, "write latency by turn index to this CSV file");
  app.add_option("--label", o.label, "free text copied into the RESULT line");
  CLI11_PARSE(app, argc, argv);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  if (o.api_key.empty()) {
    std::fprintf(stderr, "loadgen: set --api-key or AGENTD_API_KEY\n");
    return 2;
  }

  lg::Workload w;
  w.authorization = "Bearer " + o.api_key;
  w.tool = ParseToolMode(o);
  w.message_bytes = o.message_bytes;
  w.tool_result_bytes = o.tool_result_bytes;
  w.check_echo = o.model == "echo";
  w.timeout = std::chrono::milliseconds(o.timeout_ms);
  if (o.tool_name.empty()) o.tool_name = w.tool == lg::ToolMode::kClient ? "lookup" : "state_get";
  const bool open_loop = o.rate > 0;

  Setup setup(o, w);
  std::vector<std::unique_ptr<lg::SessionRunner>> runners, warmup;
  const int warmup_sessions = o.warmup_steps > 0 ? std::min(o.sessions, 64) : 0;
  if (!setup.Connect() || !setup.CreateAgent() || !setup.CreateRunners(o.sessions, &runners) ||
      !setup.CreateRunners(warmup_sessions, &warmup)) {
    return 2;
  }
  auto raw = [](const std::vector<std::unique_ptr<lg::SessionRunner>>& v) {
    std::vector<lg::SessionRunner*> out;
    for (const auto& r : v) out.push_back(r.get());
    return out;
  };
  lg::Errors errors;
  if (!warmup.empty()) {
    for (auto& r : warmup) r->set_record(false);
    lg::RunClosedLoop(raw(warmup), o.warmup_steps);
    for (const auto& r : warmup) errors.Merge(r->errors());
  }
  // After the warm-up (connections and agentd warm), before the measured loop's snapshots.
  std::optional<lg::Floor> floor_probe;
  if (o.floor_calls > 0) {
    floor_probe = RunFloorProbe(o, setup);
    if (!floor_probe) return 2;
  }

  const double load_before = agentd::bench::LoadAverage();
  const Snapshot before = Snapshot::Take(o);
  const lg::LoopResult loop = open_loop ? lg::RunOpenLoop(raw(runners), o.rate, o.duration_s)
                                        : lg::RunClosedLoop(raw(runners), o.turns);
  const Snapshot after = Snapshot::Take(o);
  const double load_after = agentd::bench::LoadAverage();

  std::vector<lg::Sample> samples;
  int64_t tool_steps = 0, model_calls = 0;
  for (const auto& r : runners) {
    samples.insert(samples.end(), r->samples().begin(), r->samples().end());
    errors.Merge(r->errors());
    tool_steps += r->tool_steps();
    model_calls += r->model_calls();
  }
  std::vector<double> all;
  all.reserve(samples.size());
  for (const lg::Sample& s : samples) all.push_back(s.ms);
  const lg::LatencySummary overall = lg::Summarize(all);
  const auto buckets = lg::ByBucket(samples);
  const double steps = static_cast<double>(samples.size());
  const double steps_per_s = loop.wall_s > 0 ? steps / loop.wall_s : 0;

  json result = {{"mode", open_loop ? "open" : "closed"},
                 {"model", o.model},
                 {"tool", ToolModeName(w.tool)},
                 {"sessions", o.sessions},
                 {"channels", o.channels},
                 {"steps", samples.size()},
                 {"issued", loop.issued},
                 {"errors", errors.total()},
                 {"wall_s", R3(loop.wall_s)},
                 {"steps_per_s", R3(steps_per_s)},
                 {"p50_ms", R3(overall.p50)},
                 {"p90_ms", R3(overall.p90)},
                 {"p99_ms", R3(overall.p99)},
                 {"max_ms", R3(overall.max)},
                 {"tool_steps", tool_steps},
                 {"model_calls", model_calls},
                 {"loadavg_1m_before", load_before},
                 {"loadavg_1m_after", load_after}};
  if (open_loop) {
    result["rate"] = o.rate;
    result["duration_s"] = o.duration_s;
    result["max_queue"] = loop.max_queue;
  } else {
    result["turns_per_session"] = o.turns;
  }
  if (!o.label.empty()) result["label"] = o.label;
  json by_index = json::object();
  for (const auto& [label, s] : buckets) by_index[label] = SummaryJson(s);
  result["by_turn_index"] = by_index;
  json errors_json = json::object();
  for (const auto& [kind, count] : errors.by_kind) errors_json[kind] = count;
  result["errors_by_kind"] = errors_json;

  double watched_cpu = after.self_cpu_s - before.self_cpu_s;
  result["loadgen_cpu_ms_per_step"] = steps > 0 ? R3(watched_cpu * 1000 / steps) : 0.0;
  if (before.server && after.server && steps > 0) {
    const double cpu = after.server->cpu_s - before.server->cpu_s;
    watched_cpu += cpu;
    result["server_cpu_ms_per_step"] = R3(cpu * 1000 / steps);
    if (before.server->write_bytes >= 0 && after.server->write_bytes >= 0) {
      result["server_write_bytes_per_step"] = std::round(
          static_cast<double>(after.server->write_bytes - before.server->write_bytes) / steps);
    }
  }
  if (before.mock && after.mock && steps > 0) {
    const double cpu = after.mock->cpu_s - before.mock->cpu_s;
    watched_cpu += cpu;
    result["mock_cpu_ms_per_step"] = R3(cpu * 1000 / steps);
  }
  if (loop.wall_s > 0) {
    // Cores kept busy by everything else on the machine during the run.
    const double other =
        (after.system_busy_s - before.system_busy_s - watched_cpu) / loop.wall_s;
    result["other_load_cores"] = R3(std::max(0.0, other));
  }
  if (!o.data_dir.empty()) result["data_dir_bytes"] = lg::DirBytes(o.data_dir);
  if (before.model_s >= 0 && after.model_s >= 0 && steps > 0) {
    // Runtime overhead: what a step takes beyond the model calls agentd made for it (their
    // HTTP round trips and the mock's own work, as agentd's backend timed them). The model
    // time is a mean per step, so the overhead percentiles are estimates.
    const double model_ms = (after.model_s - before.model_s) * 1000 / steps;
    result["model_ms_per_step"] = R3(model_ms);
    result["overhead_p50_ms"] = R3(std::max(0.0, overall.p50 - model_ms));
    result["overhead_p99_ms"] = R3(std::max(0.0, overall.p99 - model_ms));
    if (floor_probe && floor_probe->fsync) {
      // What is left of the overhead once the step's own gRPC round trip and one durable
      // commit (the floor's p50s) are taken off: agentd's own share.
      const double overhead = std::max(0.0, overall.p50 - model_ms);
      const double floor_ms = floor_probe->rpc.latency.p50 + floor_probe->fsync->latency.p50;
      result["overhead_beyond_floor_p50_ms"] = R3(std::max(0.0, overhead - floor_ms));
    }
  }
  if (floor_probe) result["floor"] = FloorJson(*floor_probe);

  std::printf("loadgen: %s loop, %d sessions, %d channels, model %s, tool %s, agentd %s\n",
              open_loop ? "open" : "closed", o.sessions, o.channels, o.model.c_str(),
              ToolModeName(w.tool), o.addr.c_str());
  std::printf("  steps %.0f in %.3f s = %.1f steps/s, errors %lld\n", steps, loop.wall_s,
              steps_per_s, static_cast<long long>(errors.total()));
  std::printf("  %-12s %8s %9s %9s %9s %9s\n", "turn index", "n", "p50_ms", "p90_ms", "p99_ms",
              "max_ms");
  PrintSummaryRow("all", overall);
  for (const auto& [label, s] : buckets) PrintSummaryRow(label, s);
  for (const char* key :
       {"server_cpu_ms_per_step", "server_write_bytes_per_step", "mock_cpu_ms_per_step",
        "loadgen_cpu_ms_per_step", "model_ms_per_step", "overhead_p50_ms", "overhead_p99_ms",
        "overhead_beyond_floor_p50_ms", "data_dir_bytes", "other_load_cores"}) {
    if (result.contains(key)) std::printf("  %s: %s\n", key, result[key].dump().c_str());
  }
  if (floor_probe) std::printf("  %s\n", lg::DescribeFloor(*floor_probe).c_str());
  for (const auto& [kind, count] : errors.by_kind) {
    std::printf("  errors %s: %lld\n", kind.c_str(), static_cast<long long>(count));
  }
  for (const std::string& e : errors.samples) std::printf("  error: %s\n", e.c_str());
  std::printf("RESULT %s\n", result.dump().c_str());
  if (!o.csv.empty() && !lg::WriteIndexCsv(o.csv, samples)) {
    std::fprintf(stderr, "loadgen: cannot write %s\n", o.csv.c_str());
    return 2;
  }
  std::fflush(stdout);
  return errors.total() > 0 ? 1 : 0;
}
