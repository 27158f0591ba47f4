// router_bench: what the inference router adds to one model call.
//
// Cases (all in one process, sequential calls, one caller thread):
//   echo_direct      EchoBackend::Start called directly (the floor of a call through the
//                    InferenceBackend interface);
//   echo_router      ModelRouter::Start on the built-in `echo` model: pure routing cost
//                    (deployment pick, permit, RoutedCall, callbacks), in ns;
//   http_router      ModelRouter -> OpenAiBackend -> FakeOpenAiServer (latency 0) over
//                    loopback HTTP/1.1 keep-alive; the caller waits for on_done;
//   http_backend     OpenAiBackend -> FakeOpenAiServer without the router (splits router cost
//                    from backend cost);
//   http_curl        the same POST (same URL, headers and body bytes) made with one plain
//                    libcurl easy handle reused for keep-alive: the HTTP floor.
// "router+backend overhead" = p50(http_router) - p50(http_curl); target < 100 us.
// The HTTP cases run interleaved in rounds (rotating order) so drift on a noisy machine hits
// them alike. Every call must succeed; failures are counted and make the exit code 1.
//
// Output: a human-readable table, plus one `RESULT {json}` line per case and one summary line.
#include <curl/curl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "backend/echo_backend.h"
#include "backend/model_router.h"
#include "backend/openai_backend.h"
#include "backend/openai_mapping.h"
#include "testing/fake_openai.h"

namespace {

using agentd::bench::CpuSeconds;
using agentd::bench::LoadAverage;
using agentd::bench::SystemBusySeconds;

using Clock = std::chrono::steady_clock;
using agentd::backend::ChatMessage;
using agentd::backend::EchoBackend;
using agentd::backend::InferenceBackend;
using agentd::backend::ModelCallbacks;
using agentd::backend::ModelRequest;
using agentd::backend::ModelResponse;
using agentd::backend::ModelRouter;
using agentd::backend::OpenAiBackend;
using agentd::backend::OpenAiBackendOptions;
using agentd::testing::FakeOpenAiServer;
using agentd::testing::FakeReply;

constexpr int kDefaultEchoCalls = 200000;
constexpr int kDefaultHttpCalls = 5000;
constexpr int kDefaultRounds = 5;
constexpr int kQuickEchoCalls = 20000;
constexpr int kQuickHttpCalls = 500;
constexpr size_t kInputBytes = 200;
constexpr double kTargetOverheadUs = 100;
constexpr int kMaxErrorSamples = 5;
const char kFakeText[] = "Hello from the fake model.";

/// What the rest of the machine did while a section ran: busy cores not used by this process.
class OtherLoad {
 public:
  OtherLoad() : busy0_(SystemBusySeconds()), cpu0_(CpuSeconds()), t0_(Clock::now()), load0_(LoadAverage()) {}
  struct Result {
    double other_cores = 0;  // average cores busy with other processes (0..nproc)
    double load_before = 0, load_after = 0;
  };
  Result Finish() const {
    const double wall = std::chrono::duration<double>(Clock::now() - t0_).count();
    const double other = (SystemBusySeconds() - busy0_) - (CpuSeconds() - cpu0_);
    return {wall > 0 ? std::max(0.0, other / wall) : 0, load0_, LoadAverage()};
  }

 private:
  double busy0_, cpu0_;
  Clock::time_point t0_;
  double load0_;
};

/// Nearest-rank percentile of sorted values (0 for an empty set).
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(sorted.size())));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

/// The request every case sends: a system prompt and a 200-byte user message.
ModelRequest MakeRequest(const std::string& model) {
  ModelRequest r;
  r.model = model;
  ChatMessage sys;
  sys.role = agentd::v1::ROLE_SYSTEM;
  sys.text = "You are a benchmark.";
  r.messages.push_back(sys);
  ChatMessage user;
  user.role = agentd::v1::ROLE_USER;
  static constexpr char kFiller[] = "the quick brown fox jumps over the lazy dog. ";
  while (user.text.size() < kInputBytes) user.text += kFiller;
  user.text.resize(kInputBytes);
  r.messages.push_back(user);
  return r;
}

// ---- One case's samples ---------------------------------------------------------------------

struct Case {
  std::string name;
  std::string unit;  // "ns" or "us"
  std::vector<double> samples;  // in `unit`
  int64_t errors = 0;
  std::vector<std::string> error_samples;
  double cpu_s = 0;   // whole process (includes the fake server's loop thread)
  double wall_s = 0;  // sum of the case's timed phases

  void Error(const std::string& e) {
    ++errors;
    if (error_samples.size() < kMaxErrorSamples) error_samples.push_back(e);
  }
};

struct Summary {
  int64_t calls = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0, mean = 0;
};

Summary Summarize(const Case& c) {
  std::vector<double> v = c.samples;
  std::sort(v.begin(), v.end());
  Summary s;
  s.calls = static_cast<int64_t>(v.size());
  s.p50 = Percentile(v, 0.50);
  s.p90 = Percentile(v, 0.90);
  s.p99 = Percentile(v, 0.99);
  s.max = v.empty() ? 0 : v.back();
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = v.empty() ? 0 : sum / static_cast<double>(v.size());
  return s;
}

// ---- (a) in-process echo ------------------------------------------------------------------

/// `calls` sequential calls of `backend` (inline-completing), timed one by one in ns. The
/// request copy and the callbacks are built outside the timed region; the timed region is
/// Start() + the inline on_done + dropping the returned handle.
void RunInline(InferenceBackend* backend, const ModelRequest& proto, int calls, bool record,
               Case* c) {
  if (record) c->samples.reserve(c->samples.size() + calls);
  const double cpu0 = CpuSeconds();
  const Clock::time_point w0 = Clock::now();
  for (int i = 0; i < calls; ++i) {
    ModelRequest req = proto;
    bool ok = false;
    ModelCallbacks cb;
    cb.on_done = [&ok](absl::StatusOr<ModelResponse> r) {
      ok = r.ok() && r->text.size() == kInputBytes;
    };
    const Clock::time_point t0 = Clock::now();
    { auto call = backend->Start(std::move(req), std::move(cb)); }
    const Clock::time_point t1 = Clock::now();
    if (!ok) {
      c->Error("echo call failed or returned the wrong text");
      continue;
    }
    if (record) c->samples.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
  }
  if (record) {
    c->wall_s += std::chrono::duration<double>(Clock::now() - w0).count();
    c->cpu_s += CpuSeconds() - cpu0;
  }
}

// ---- (b) through OpenAiBackend (with or without the router) ---------------------------------

/// `calls` sequential calls, each waiting for on_done (delivered on the backend's I/O thread).
void RunAsync(InferenceBackend* backend, const ModelRequest& proto, int calls, bool record,
              Case* c) {
  const double cpu0 = CpuSeconds();
  const Clock::time_point w0 = Clock::now();
  for (int i = 0; i < calls; ++i) {
    ModelRequest req = proto;
    absl::Notification done;
    absl::StatusOr<ModelResponse> result = absl::UnknownError("no result");
    ModelCallbacks cb;
    cb.on_done = [&done, &result](absl::StatusOr<ModelResponse> r) {
      result = std::move(r);
      done.Notify();
    };
    const Clock::time_point t0 = Clock::now();
    auto call = backend->Start(std::move(req), std::move(cb));
    done.WaitForNotification();
    const Clock::time_point t1 = Clock::now();
    call.reset();
    if (!result.ok()) {
      c->Error(std::string(result.status().message()));
      continue;
    }
    if (result->text != kFakeText) {
      c->Error("unexpected text: " + result->text);
      continue;
    }
    if (record) c->samples.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  if (record) {
    c->wall_s += std::chrono::duration<double>(Clock::now() - w0).count();
    c->cpu_s += CpuSeconds() - cpu0;
  }
}

// ---- (c) plain libcurl ----------------------------------------------------------------------

size_t AppendBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

/// One easy handle, reused for every call (so its connection is kept alive): the HTTP floor.
class PlainCurl {
 public:
  PlainCurl(const std::string& url, std::string body) : body_(std::move(body)) {
    easy_ = curl_easy_init();
    headers_ = curl_slist_append(headers_, "Content-Type: application/json");
    headers_ = curl_slist_append(headers_, "Expect:");
    curl_easy_setopt(easy_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy_, CURLOPT_POST, 1L);
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body_.size()));
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, body_.data());
    curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &AppendBody);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, &response_);
    curl_easy_setopt(easy_, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy_, CURLOPT_TIMEOUT_MS, 60000L);
  }
  ~PlainCurl() {
    curl_easy_cleanup(easy_);
    curl_slist_free_all(headers_);
  }
  PlainCurl(const PlainCurl&) = delete;
  PlainCurl& operator=(const PlainCurl&) = delete;

  void Run(int calls, bool record, Case* c) {
    const double cpu0 = CpuSeconds();
    const Clock::time_point w0 = Clock::now();
    for (int i = 0; i < calls; ++i) {
      response_.clear();
      const Clock::time_point t0 = Clock::now();
      const CURLcode rc = curl_easy_perform(easy_);
      const Clock::time_point t1 = Clock::now();
      long status = 0;
      curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status);
      if (rc != CURLE_OK || status != 200 || response_.find(kFakeText) == std::string::npos) {
        c->Error("curl: " + std::string(curl_easy_strerror(rc)) + ", HTTP " +
                 std::to_string(status));
        continue;
      }
      if (record) c->samples.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    if (record) {
      c->wall_s += std::chrono::duration<double>(Clock::now() - w0).count();
      c->cpu_s += CpuSeconds() - cpu0;
    }
  }

 private:
  std::string body_;
  std::string response_;
  CURL* easy_ = nullptr;
  curl_slist* headers_ = nullptr;
};

// ---- Output ---------------------------------------------------------------------------------

void PrintHeader() {
  std::printf("%-13s %-4s %9s %10s %10s %10s %10s %10s %8s %12s\n", "case", "unit", "calls", "p50",
              "p90", "p99", "max", "mean", "errors", "cpu/call");
}

void PrintRow(const Case& c, const Summary& s) {
  const double cpu_per_call =
      s.calls > 0 ? c.cpu_s / static_cast<double>(s.calls) * (c.unit == "ns" ? 1e9 : 1e6) : 0;
  std::printf("%-13s %-4s %9" PRId64 " %10.2f %10.2f %10.2f %10.2f %10.2f %8" PRId64 " %9.2f %s\n",
              c.name.c_str(), c.unit.c_str(), s.calls, s.p50, s.p90, s.p99, s.max, s.mean,
              c.errors, cpu_per_call, c.unit.c_str());
}

void PrintJson(const Case& c, const Summary& s, const OtherLoad::Result& env) {
  const char* u = c.unit.c_str();
  const double cpu_per_call =
      s.calls > 0 ? c.cpu_s / static_cast<double>(s.calls) * (c.unit == "ns" ? 1e9 : 1e6) : 0;
  std::printf(
      "RESULT {\"bench\":\"router\",\"case\":\"%s\",\"calls\":%" PRId64
      ",\"p50_%s\":%.2f,\"p90_%s\":%.2f,\"p99_%s\":%.2f,\"max_%s\":%.2f,\"mean_%s\":%.2f,"
      "\"errors\":%" PRId64 ",\"calls_per_s\":%.1f,\"process_cpu_%s_per_call\":%.2f,"
      "\"other_load_cores\":%.2f,\"loadavg_1m_before\":%.2f,\"loadavg_1m_after\":%.2f}\n",
      c.name.c_str(), s.calls, u, s.p50, u, s.p90, u, s.p99, u, s.max, u, s.mean, c.errors,
      c.wall_s > 0 ? static_cast<double>(s.calls) / c.wall_s : 0, u, cpu_per_call,
      env.other_cores, env.load_before, env.load_after);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"router_bench: per-call overhead of ModelRouter (+ OpenAiBackend) vs plain libcurl"};
  std::optional<int> echo_calls_opt, http_calls_opt;
  int rounds = kDefaultRounds;
  bool quick = false;
  app.add_option("--echo-calls", echo_calls_opt, "measured echo calls per echo case (default 200000)");
  app.add_option("--http-calls", http_calls_opt,
                 "measured calls per HTTP case, split over the rounds (default 5000)");
  app.add_option("--rounds", rounds, "interleaved rounds of the HTTP cases (default 5)")
      ->check(CLI::Range(1, 1000));
  std::string deadlock_detection = "default";
  app.add_option("--absl-deadlock-detection", deadlock_detection,
                 "default|off: 'off' calls absl::SetMutexDeadlockDetectionMode(kIgnore) first "
                 "(Debian's Abseil is built without NDEBUG, so detection is on by default, as in "
                 "the agentd binary)")
      ->check(CLI::IsMember({"default", "off"}));
  app.add_flag("--quick", quick, "small counts (finishes in seconds; for CI)");
  CLI11_PARSE(app, argc, argv);
  if (deadlock_detection == "off") {
    absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  }
  const int echo_calls = echo_calls_opt.value_or(quick ? kQuickEchoCalls : kDefaultEchoCalls);
  const int http_calls = http_calls_opt.value_or(quick ? kQuickHttpCalls : kDefaultHttpCalls);
  if (echo_calls < 1 || http_calls < rounds) {
    std::fprintf(stderr, "router_bench: --echo-calls must be >= 1 and --http-calls >= --rounds\n");
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);

  std::printf(
      "router_bench: %u hw threads, input %zu bytes/call, echo %d calls/case, HTTP %d calls/case "
      "in %d interleaved rounds, fake server latency 0 (in-process, 1 libevent thread)\n",
      std::thread::hardware_concurrency(), kInputBytes, echo_calls, http_calls, rounds);
  std::fflush(stdout);

  int exit_code = 0;
  Case echo_direct{"echo_direct", "ns"}, echo_router{"echo_router", "ns"};
  Case http_router{"http_router", "us"}, http_backend{"http_backend", "us"},
      http_curl{"http_curl", "us"};
  std::map<Case*, OtherLoad::Result> loads;

  // (a) Echo: the floor, then through the router. Warm-up 10% first.
  {
    ModelRouter router;
    EchoBackend echo;
    const ModelRequest req = MakeRequest("echo");
    const int warmup = std::max(1, echo_calls / 10);
    for (auto [backend, c] : {std::pair<InferenceBackend*, Case*>{&echo, &echo_direct},
                              std::pair<InferenceBackend*, Case*>{&router, &echo_router}}) {
      RunInline(backend, req, warmup, /*record=*/false, c);
      OtherLoad env;
      RunInline(backend, req, echo_calls, /*record=*/true, c);
      loads[c] = env.Finish();
    }
  }

  // (b), (c): HTTP against the fake server.
  {
    FakeOpenAiServer fake;
    fake.set_record_requests(false);
    FakeReply reply;
    reply.text = kFakeText;
    reply.latency_ms = 0;
    fake.SetDefault(reply);

    OpenAiBackendOptions o;
    o.name = "fake";
    o.base_url = fake.base_url();
    auto backend = std::make_shared<OpenAiBackend>(o);
    ModelRouter router;
    agentd::backend::BackendLimits limits;
    limits.max_concurrency = 256;  // the config default: the permit path is exercised
    if (auto st = router.RegisterBackend("fake", backend, limits); !st.ok()) {
      std::fprintf(stderr, "router_bench: %s\n", std::string(st.message()).c_str());
      return 2;
    }
    agentd::backend::ModelSpec spec;
    spec.name = "bench-model";
    spec.deployments.push_back({"fake", "fake-model", 1});
    if (auto st = router.AddModel(spec); !st.ok()) {
      std::fprintf(stderr, "router_bench: %s\n", std::string(st.message()).c_str());
      return 2;
    }
    const ModelRequest via_router = MakeRequest("bench-model");
    const ModelRequest via_backend = MakeRequest("fake-model");
    // The exact body OpenAiBackend sends for this request.
    auto body = agentd::backend::openai::BuildChatRequestBody(via_backend);
    if (!body.ok()) {
      std::fprintf(stderr, "router_bench: %s\n", std::string(body.status().message()).c_str());
      return 2;
    }
    PlainCurl curl(fake.base_url() + "/chat/completions", *body);

    std::vector<std::function<void(int, bool)>> runs = {
        [&](int n, bool rec) { RunAsync(&router, via_router, n, rec, &http_router); },
        [&](int n, bool rec) { RunAsync(backend.get(), via_backend, n, rec, &http_backend); },
        [&](int n, bool rec) { curl.Run(n, rec, &http_curl); },
    };
    const int warmup = std::max(20, http_calls / 20);
    for (auto& run : runs) run(warmup, /*record=*/false);  // connections up, caches warm
    OtherLoad env;
    const int per_round = http_calls / rounds;
    for (int r = 0; r < rounds; ++r) {
      const int n = r == rounds - 1 ? http_calls - per_round * (rounds - 1) : per_round;
      for (size_t k = 0; k < runs.size(); ++k) runs[(k + r) % runs.size()](n, /*record=*/true);
    }
    const OtherLoad::Result http_env = env.Finish();
    for (Case* c : {&http_router, &http_backend, &http_curl}) loads[c] = http_env;
  }

  // What one timed region's pair of clock reads costs (included in every sample above).
  double clock_ns = 0;
  {
    std::vector<double> v;
    v.reserve(100000);
    for (int i = 0; i < 100000; ++i) {
      const Clock::time_point t0 = Clock::now();
      const Clock::time_point t1 = Clock::now();
      v.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count());
    }
    std::sort(v.begin(), v.end());
    clock_ns = Percentile(v, 0.5);
  }

  std::vector<Case*> cases = {&echo_direct, &echo_router, &http_router, &http_backend, &http_curl};
  std::map<Case*, Summary> summaries;
  for (Case* c : cases) {
    summaries[c] = Summarize(*c);
    PrintJson(*c, summaries[c], loads[c]);
    if (c->errors > 0) exit_code = 1;
  }
  const double echo_routing_ns = summaries[&echo_router].p50 - summaries[&echo_direct].p50;
  const double overhead_us = summaries[&http_router].p50 - summaries[&http_curl].p50;
  const double router_only_us = summaries[&http_router].p50 - summaries[&http_backend].p50;
  const double backend_only_us = summaries[&http_backend].p50 - summaries[&http_curl].p50;
  const OtherLoad::Result& http_env = loads[&http_router];
  std::printf(
      "RESULT {\"bench\":\"router\",\"case\":\"summary\",\"echo_router_p50_ns\":%.2f,"
      "\"echo_routing_over_direct_p50_ns\":%.2f,\"clock_read_p50_ns\":%.2f,"
      "\"router_backend_overhead_p50_us\":%.2f,\"router_only_p50_us\":%.2f,"
      "\"backend_over_curl_p50_us\":%.2f,\"target_overhead_us\":%.0f,\"meets_target\":%s,"
      "\"absl_deadlock_detection\":\"%s\",\"http_other_load_cores\":%.2f}\n",
      summaries[&echo_router].p50, echo_routing_ns, clock_ns, overhead_us, router_only_us,
      backend_only_us, kTargetOverheadUs, overhead_us < kTargetOverheadUs ? "true" : "false",
      deadlock_detection.c_str(), http_env.other_cores);

  std::printf("\n");
  PrintHeader();
  for (Case* c : cases) PrintRow(*c, summaries[c]);
  std::printf(
      "\nrouting cost (echo_router - echo_direct, p50): %.0f ns (one steady_clock read: %.0f ns)\n"
      "router+backend overhead (http_router - http_curl, p50): %.1f us  [target < %.0f us: %s]\n"
      "  of which router (http_router - http_backend): %.1f us; backend (http_backend - "
      "http_curl): %.1f us\n"
      "other processes kept %.2f of %u cores busy during the HTTP cases (absl deadlock "
      "detection: %s)\n"
      "(cpu/call: getrusage of the whole process, including the fake server's loop thread)\n",
      echo_routing_ns, clock_ns, overhead_us, kTargetOverheadUs,
      overhead_us < kTargetOverheadUs ? "met" : "NOT met", router_only_us, backend_only_us,
      http_env.other_cores, std::thread::hardware_concurrency(), deadlock_detection.c_str());
  for (Case* c : cases) {
    for (const std::string& e : c->error_samples) std::printf("error (%s): %s\n", c->name.c_str(), e.c_str());
  }
  curl_global_cleanup();
  return exit_code;
}
