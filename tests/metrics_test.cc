// Metrics: the registry and its text exposition, the evhttp server wrapper (src/http), and the
// /metrics endpoint of an in-process agentd scraped over HTTP before and after real turns.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "http/http_server.h"
#include "metrics/agentd_metrics.h"
#include "metrics/metrics.h"
#include "testing/fake_openai.h"
#include "testing/server_harness.h"
#include "testing/temp_dir.h"

namespace agentd {
namespace {

using testing::Ctx;
using testing::ServerHarness;

// ---- a minimal HTTP client (libcurl) ---------------------------------------------------------

struct HttpResult {
  long status = 0;
  std::string body;
  std::string headers;  // raw header block
  CURLcode code = CURLE_OK;
};

struct ClientState {
  HttpResult* result;
  std::function<void(const std::string&)> on_chunk;
};

size_t CollectBody(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<ClientState*>(user);
  std::string chunk(data, size * n);
  st->result->body += chunk;
  if (st->on_chunk) st->on_chunk(chunk);
  return size * n;
}

size_t CollectHeader(char* data, size_t size, size_t n, void* user) {
  static_cast<HttpResult*>(user)->headers.append(data, size * n);
  return size * n;
}

HttpResult Http(const std::string& method, const std::string& url, const std::string& body = "",
                std::function<void(const std::string&)> on_chunk = nullptr, long timeout_ms = 10000) {
  HttpResult r;
  ClientState st{&r, std::move(on_chunk)};
  CURL* easy = curl_easy_init();
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "HEAD") curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  if (!body.empty()) curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &CollectBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &st);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &CollectHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &r);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  r.code = curl_easy_perform(easy);
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r.status);
  curl_easy_cleanup(easy);
  return r;
}

// ---- exposition parser: the checks a Prometheus scraper makes -------------------------------

struct Exposition {
  std::map<std::string, double> samples;      // `name{labels}` as rendered → value
  std::map<std::string, std::string> types;   // family → type
  double Get(const std::string& key) const {
    auto it = samples.find(key);
    return it == samples.end() ? 0 : it->second;
  }
  bool Has(const std::string& key) const { return samples.count(key) > 0; }
};

// Fails the test (and returns what it could parse) on any line a scraper would reject.
Exposition Parse(const std::string& text) {
  static const std::regex kSample(
      R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")"
      R"((?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})? ([^ ]+)$)");
  static const std::regex kComment(R"(^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$)");
  Exposition e;
  std::set<std::string> helps;
  EXPECT_FALSE(text.empty());
  EXPECT_TRUE(absl::EndsWith(text, "\n"));
  for (absl::string_view raw : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    const std::string line(raw);
    std::smatch m;
    if (std::regex_match(line, m, kComment)) {
      const std::string name = m[2];
      EXPECT_TRUE(absl::StartsWith(name, "agentd_")) << line;
      if (m[1] == "HELP") {
        EXPECT_TRUE(helps.insert(name).second) << "HELP twice: " << name;
      } else {
        EXPECT_TRUE(e.types.emplace(name, m[3]).second) << "TYPE twice: " << name;
        const std::set<std::string> known = {"counter", "gauge", "histogram"};
        EXPECT_TRUE(known.count(m[3])) << line;
      }
      continue;
    }
    if (!std::regex_match(line, m, kSample)) {
      ADD_FAILURE() << "not a sample or comment: " << line;
      continue;
    }
    const std::string name = m[1];
    std::string family = name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      if (!e.types.count(family) && absl::EndsWith(name, suffix)) {
        family = name.substr(0, name.size() - strlen(suffix));
      }
    }
    EXPECT_TRUE(e.types.count(family)) << "sample before its TYPE: " << line;
    const std::string value = m[3];
    double v = 0;
    if (value == "+Inf") {
      v = HUGE_VAL;
    } else {
      char* end = nullptr;
      v = std::strtod(value.c_str(), &end);
      EXPECT_EQ(*end, '\0') << line;
    }
    EXPECT_TRUE(e.samples.emplace(name + std::string(m[2]), v).second) << "duplicate: " << line;
  }
  return e;
}

// ---- registry --------------------------------------------------------------------------------

TEST(MetricsRegistryTest, RendersEveryTypeOnceWithEscapedLabels) {
  metrics::Registry r;
  auto* c = r.AddCounter("agentd_test_total", "A counter.\nSecond line \\ here.", {"kind"});
  c->WithLabels({"a\"b\\c\nd"})->Inc(3);
  EXPECT_EQ(c->WithLabels({"a\"b\\c\nd"}), c->WithLabels({"a\"b\\c\nd"}));  // one child
  r.AddGauge("agentd_test_gauge", "A gauge.")->Get()->Set(-2.5);
  auto* h = r.AddHistogram("agentd_test_seconds", "A histogram.", {}, {0.1, 1})->Get();
  h->Observe(0.05);
  h->Observe(0.1);  // upper bounds are inclusive
  h->Observe(0.5);
  h->Observe(7);
  r.AddFloatCounter("agentd_test_usd_total", "Money.")->Get()->Add(0.25);
  r.AddCallback("agentd_test_cb", "Callback.", metrics::MetricType::kGauge, {"x"},
                [](metrics::SampleSink& sink) { sink.Add({"1"}, 42); });
  const std::string text = r.Render();
  Exposition e = Parse(text);
  EXPECT_TRUE(absl::StrContains(text, "# HELP agentd_test_total A counter.\\nSecond line \\\\ here.\n"));
  EXPECT_EQ(e.Get(R"(agentd_test_total{kind="a\"b\\c\nd"})"), 3);
  EXPECT_EQ(e.Get("agentd_test_gauge"), -2.5);
  EXPECT_EQ(e.Get(R"(agentd_test_seconds_bucket{le="0.1"})"), 2);
  EXPECT_EQ(e.Get(R"(agentd_test_seconds_bucket{le="1"})"), 3);
  EXPECT_EQ(e.Get(R"(agentd_test_seconds_bucket{le="+Inf"})"), 4);
  EXPECT_EQ(e.Get("agentd_test_seconds_count"), 4);
  EXPECT_DOUBLE_EQ(e.Get("agentd_test_seconds_sum"), 7.65);
  EXPECT_EQ(e.Get("agentd_test_usd_total"), 0.25);
  EXPECT_EQ(e.Get(R"(agentd_test_cb{x="1"})"), 42);
  EXPECT_EQ(e.types["agentd_test_seconds"], "histogram");
  EXPECT_EQ(metrics::FormatValue(0.1), "0.1");
  EXPECT_EQ(metrics::FormatValue(1e20), "1e+20");
}

TEST(MetricsRegistryTest, ConcurrentUpdatesAreNotLost) {
  metrics::Registry r;
  metrics::Counter* c = r.AddCounter("agentd_c_total", "c")->Get();
  metrics::Histogram* h = r.AddHistogram("agentd_h_seconds", "h", {}, {1})->Get();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50000; ++i) {
        c->Inc();
        h->Observe(i % 2 == 0 ? 0.5 : 2);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c->Value(), 200000u);
  const auto s = h->Read();
  EXPECT_EQ(s.cumulative[0], 100000u);
  EXPECT_EQ(s.cumulative[1], 200000u);
  EXPECT_DOUBLE_EQ(s.sum, 100000 * 0.5 + 100000 * 2.0);
}

TEST(MetricsRegistryTest, CatalogCachesChildrenAndCountsCodes) {
  metrics::AgentdMetrics m;
  m.AddModel("gpt");
  ASSERT_NE(m.Model("gpt"), nullptr);
  EXPECT_EQ(m.Model("nope"), nullptr);
  m.Model("gpt")->CallDone(absl::StatusCode::kOk, 0.2);
  m.Model("gpt")->CallDone(absl::StatusCode::kUnavailable, 0.3);
  m.Model("gpt")->CallDone(absl::StatusCode::kUnavailable, 0.3);
  m.Model("gpt")->Usage(100, 20, 0.5);
  m.TurnRejected(absl::StatusCode::kNotFound);
  m.TurnFinished(metrics::TurnOutcome::kRequiresAction, 0.01);
  Exposition e = Parse(m.registry().Render());
  EXPECT_EQ(e.Get(R"(agentd_model_calls_total{model="gpt",code="OK"})"), 1);
  EXPECT_EQ(e.Get(R"(agentd_model_calls_total{model="gpt",code="UNAVAILABLE"})"), 2);
  EXPECT_EQ(e.Get(R"(agentd_model_call_duration_seconds_count{model="gpt"})"), 3);
  EXPECT_EQ(e.Get(R"(agentd_model_tokens_total{model="gpt",type="input"})"), 100);
  EXPECT_EQ(e.Get(R"(agentd_model_tokens_total{model="gpt",type="output"})"), 20);
  EXPECT_EQ(e.Get(R"(agentd_model_cost_usd_total{model="gpt"})"), 0.5);
  EXPECT_EQ(e.Get(R"(agentd_turns_rejected_total{code="NOT_FOUND"})"), 1);
  EXPECT_EQ(e.Get(R"(agentd_turns_total{status="requires_action"})"), 1);
  EXPECT_TRUE(e.Has(R"(agentd_turns_total{status="completed"})"));  // zero, but present
}

// ---- the HTTP server wrapper -----------------------------------------------------------------

class HttpServerTest : public ::testing::Test {
 protected:
  void Start(std::vector<http::Route> routes) {
    auto s = http::HttpServer::Start("127.0.0.1:0", std::move(routes));
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = *std::move(s);
    base_ = "http://" + server_->address();
  }
  std::unique_ptr<http::HttpServer> server_;
  std::string base_;
};

TEST_F(HttpServerTest, RoutesRequestsAndAnswers404And405) {
  Start({{"POST", "/echo", [](std::shared_ptr<http::Exchange> ex) {
            ex->Respond(201, "text/plain",
                        ex->method() + " " + ex->path() + "?" + ex->query() + " " +
                            ex->header("X-Test") + " " + ex->body(),
                        {{"X-Reply", "yes"}});
          }}});
  EXPECT_GT(server_->port(), 0);
  HttpResult r = Http("POST", base_ + "/echo?a=1", "hello");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "POST /echo?a=1  hello");
  EXPECT_TRUE(absl::StrContains(r.headers, "X-Reply: yes"));
  EXPECT_EQ(Http("GET", base_ + "/nope").status, 404);
  HttpResult wrong = Http("GET", base_ + "/echo");
  EXPECT_EQ(wrong.status, 405);
  EXPECT_TRUE(absl::StrContains(wrong.headers, "Allow: POST"));
}

TEST_F(HttpServerTest, AnswersLaterFromAnotherThreadAndStreamsChunks) {
  std::thread worker;
  absl::Notification first_chunk_seen;
  Start({{"GET", "/later",
          [&](std::shared_ptr<http::Exchange> ex) {
            worker = std::thread([ex] { ex->Respond(200, "text/plain", "done later"); });
          }},
         {"GET", "/stream", [&](std::shared_ptr<http::Exchange> ex) {
            ex->StartStream(200, "text/event-stream");
            ex->Write("data: one\n\n");
            // The second chunk is written only once the client has the first one: the stream
            // really is incremental, not buffered until End().
            worker = std::thread([ex, &first_chunk_seen] {
              first_chunk_seen.WaitForNotification();
              ex->Write("data: two\n\n");
              ex->End();
            });
          }}});
  HttpResult later = Http("GET", base_ + "/later");
  worker.join();
  EXPECT_EQ(later.status, 200);
  EXPECT_EQ(later.body, "done later");

  HttpResult stream = Http("GET", base_ + "/stream", "", [&](const std::string& chunk) {
    if (absl::StrContains(chunk, "one") && !first_chunk_seen.HasBeenNotified()) {
      first_chunk_seen.Notify();
    }
  });
  worker.join();
  EXPECT_EQ(stream.status, 200);
  EXPECT_EQ(stream.body, "data: one\n\ndata: two\n\n");
  EXPECT_TRUE(absl::StrContains(stream.headers, "Transfer-Encoding: chunked"));
}

TEST_F(HttpServerTest, DroppedExchangeGets500AndShutdownReleasesPendingOnes) {
  std::shared_ptr<http::Exchange> held;
  absl::Notification arrived;
  Start({{"GET", "/drop", [](std::shared_ptr<http::Exchange>) {}},
         {"GET", "/hold", [&](std::shared_ptr<http::Exchange> ex) {
            held = ex;
            arrived.Notify();
          }}});
  EXPECT_EQ(Http("GET", base_ + "/drop").status, 500);
  HttpResult pending;
  std::thread client([&] { pending = Http("GET", base_ + "/hold"); });
  arrived.WaitForNotification();
  server_->Shutdown();  // the client is cut off, not left hanging
  client.join();
  EXPECT_NE(pending.code, CURLE_OK);
  EXPECT_NE(pending.code, CURLE_OPERATION_TIMEDOUT);
  held->Respond(200, "text/plain", "too late");  // ignored, no crash
  server_.reset();
  held.reset();  // outlives the server: must not touch freed libevent state
}

TEST(HttpServerAddressTest, RejectsMalformedAddressesAndTakenPorts) {
  EXPECT_EQ(http::HttpServer::Start("nonsense", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(http::HttpServer::Start("127.0.0.1:99999", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto first = http::HttpServer::Start("127.0.0.1:0", {});
  ASSERT_TRUE(first.ok());
  auto second = http::HttpServer::Start((*first)->address(), {});
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
}

// ---- agentd's /metrics ------------------------------------------------------------------------

using testing::Eventually;

class MetricsEndpointTest : public ::testing::Test {
 protected:
  void Start(int breaker_cooldown_ms = 60000) {
    h_ = std::make_unique<ServerHarness>([this, breaker_cooldown_ms](server::Config* c) {
      c->metrics_listen = "127.0.0.1:0";
      c->router.max_retries = 0;
      c->router.breaker_failures = 1;
      c->router.breaker_cooldown_ms = breaker_cooldown_ms;
      testing::AddFakeOpenAiModel(c, fake_.base_url(), {2.0, 8.0});
    });
  }
  Exposition Scrape() {
    HttpResult r = Http("GET", "http://" + h_->server().metrics_address() + "/metrics");
    EXPECT_EQ(r.status, 200);
    EXPECT_TRUE(absl::StrContains(r.headers, "Content-Type: text/plain; version=0.0.4"));
    return Parse(r.body);
  }
  std::string Session(const std::string& model, const std::vector<std::string>& tools = {}) {
    return h_->CreateSession(h_->CreateAgent(model, "", tools).agent_id()).session_id();
  }

  testing::FakeOpenAiServer fake_;
  std::unique_ptr<ServerHarness> h_;  // declared last: stopped before the fake goes away
};

TEST_F(MetricsEndpointTest, NumbersMoveAfterTurns) {
  Start();
  ASSERT_FALSE(h_->server().metrics_address().empty());
  const Exposition before = Scrape();
  EXPECT_GT(before.Get("agentd_process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(before.Get("agentd_process_cpu_seconds_total"), 0);
  EXPECT_GT(before.Get("agentd_process_open_fds"), 0);
  EXPECT_EQ(before.types.at("agentd_build_info"), "gauge");

  v1::TurnResult out;
  const std::string echo = Session("echo");
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(h_->Send(echo, "hi", &out).ok());
  // Tokens and cost by model: the scripted model reports exact counts (price 1 / 2 USD per Mtok).
  const std::string scripted = Session("scripted", {"lookup"});
  backend::ScriptedReply reply;
  reply.text = "answer";
  reply.input_tokens = 1000;
  reply.output_tokens = 200;
  h_->scripted().Push(reply);
  ASSERT_TRUE(h_->Send(scripted, "q", &out).ok());
  backend::ScriptedReply call;
  call.tool_calls.push_back(testing::Call("c1", "lookup", "{}"));
  h_->scripted().Push(call);
  ASSERT_TRUE(h_->Send(scripted, "q2", &out).ok());
  EXPECT_EQ(out.status(), v1::TURN_STATUS_REQUIRES_ACTION);
  // A failed turn (non-retryable model error) and a rejected call (no such session).
  const std::string failing = Session("scripted");
  backend::ScriptedReply bad;
  bad.error = absl::InvalidArgumentError("bad request");
  h_->scripted().Push(bad);
  h_->Send(failing, "q", &out);
  EXPECT_EQ(h_->Send("no-such-session", "q", &out).error_code(), grpc::StatusCode::NOT_FOUND);

  // A cancelled turn, seen in flight first.
  const std::string slow = Session("scripted");
  backend::ScriptedReply wait;
  wait.text = "slow";
  wait.delay = absl::Seconds(30);
  h_->scripted().Push(wait);
  grpc::Status slow_status;
  std::thread runner([&] {
    v1::TurnResult r;
    slow_status = h_->Send(slow, "q", &r);
  });
  EXPECT_TRUE(Eventually([&] { return Scrape().Get("agentd_turns_in_flight") == 1; },
                         absl::Seconds(5)));
  Exposition during = Scrape();
  EXPECT_EQ(during.Get("agentd_active_sessions"), 1);
  v1::CancelTurnRequest cancel;
  cancel.set_session_id(slow);
  ASSERT_TRUE(h_->sessions().CancelTurn(Ctx().get(), cancel, &out).ok());
  runner.join();

  const Exposition after = Scrape();
  auto delta = [&](const std::string& key) { return after.Get(key) - before.Get(key); };
  EXPECT_EQ(delta(R"(agentd_turns_total{status="completed"})"), 4);
  EXPECT_EQ(delta(R"(agentd_turns_total{status="requires_action"})"), 1);
  EXPECT_EQ(delta(R"(agentd_turns_total{status="failed"})"), 1);
  EXPECT_EQ(delta(R"(agentd_turns_total{status="cancelled"})"), 1);
  EXPECT_EQ(delta(R"(agentd_turns_rejected_total{code="NOT_FOUND"})"), 1);
  EXPECT_EQ(delta("agentd_turn_duration_seconds_count"), 7);
  EXPECT_GT(delta("agentd_turn_duration_seconds_sum"), 0);
  EXPECT_EQ(delta(R"(agentd_model_calls_total{model="echo",code="OK"})"), 3);
  EXPECT_EQ(delta(R"(agentd_model_calls_total{model="scripted",code="OK"})"), 2);
  EXPECT_EQ(delta(R"(agentd_model_calls_total{model="scripted",code="INVALID_ARGUMENT"})"), 1);
  EXPECT_EQ(delta(R"(agentd_model_calls_total{model="scripted",code="CANCELLED"})"), 1);
  EXPECT_EQ(delta(R"(agentd_model_call_duration_seconds_count{model="scripted"})"), 4);
  EXPECT_GE(delta(R"(agentd_model_tokens_total{model="scripted",type="input"})"), 1000);
  EXPECT_GE(delta(R"(agentd_model_tokens_total{model="scripted",type="output"})"), 200);
  EXPECT_GT(delta(R"(agentd_model_tokens_total{model="echo",type="input"})"), 0);
  EXPECT_GE(delta(R"(agentd_model_cost_usd_total{model="scripted"})"), 0.0014 - 1e-12);
  // Every turn commits at least its outcome; in sync durability each is an fsync.
  EXPECT_GE(delta("agentd_store_commit_duration_seconds_count"), 7);
  EXPECT_EQ(after.Get("agentd_turns_in_flight"), 0);
  EXPECT_EQ(after.Get("agentd_turns_queued"), 0);
  EXPECT_EQ(after.Get("agentd_active_sessions"), 0);
  EXPECT_GE(after.Get("agentd_cached_sessions"), 3);
  EXPECT_GE(after.Get("agentd_process_cpu_seconds_total"),
            before.Get("agentd_process_cpu_seconds_total"));
  // Histogram buckets are cumulative and end at the count.
  EXPECT_EQ(after.Get(R"(agentd_turn_duration_seconds_bucket{le="+Inf"})"),
            after.Get("agentd_turn_duration_seconds_count"));
  EXPECT_LE(after.Get(R"(agentd_turn_duration_seconds_bucket{le="0.001"})"),
            after.Get(R"(agentd_turn_duration_seconds_bucket{le="0.01"})"));
}

TEST_F(MetricsEndpointTest, CircuitBreakerStateAndBackendErrors) {
  Start(/*breaker_cooldown_ms=*/1500);
  const std::string key = R"(agentd_backend_circuit_state{model="gpt",deployment="0",backend="fake",backend_model="fake-gpt"})";
  EXPECT_EQ(Scrape().Get(key), 0);
  ASSERT_TRUE(Scrape().Has(key));
  testing::FakeReply fail;
  fail.mode = testing::FakeMode::kStatus500;
  fake_.Push(fail);
  v1::TurnResult out;
  EXPECT_EQ(h_->Send(Session("gpt"), "q", &out).error_code(), grpc::StatusCode::UNAVAILABLE);
  const Exposition open = Scrape();
  EXPECT_EQ(open.Get(R"(agentd_model_calls_total{model="gpt",code="UNAVAILABLE"})"), 1);
  EXPECT_EQ(open.Get(R"(agentd_turns_total{status="failed"})"), 1);  // recorded, so not rejected
  EXPECT_EQ(open.Get(key), 2);
  // After the cooldown the next call is a probe: half-open.
  EXPECT_TRUE(Eventually([&] { return Scrape().Get(key) == 1; }, absl::Seconds(10)));
  ASSERT_TRUE(h_->Send(Session("gpt"), "q", &out).ok());  // the probe succeeds: closed
  const Exposition closed = Scrape();
  EXPECT_EQ(closed.Get(key), 0);
  EXPECT_EQ(closed.Get(R"(agentd_model_tokens_total{model="gpt",type="input"})"), 11);
  EXPECT_EQ(closed.Get(R"(agentd_model_tokens_total{model="gpt",type="output"})"), 7);
  EXPECT_DOUBLE_EQ(closed.Get(R"(agentd_model_cost_usd_total{model="gpt"})"),
                   (11 * 2.0 + 7 * 8.0) / 1e6);
}

TEST_F(MetricsEndpointTest, OnlyGetMetricsIsServed) {
  Start();
  const std::string base = "http://" + h_->server().metrics_address();
  EXPECT_EQ(Http("GET", base + "/").status, 404);
  EXPECT_EQ(Http("GET", base + "/metricsx").status, 404);
  HttpResult post = Http("POST", base + "/metrics", "x");
  EXPECT_EQ(post.status, 405);
  EXPECT_TRUE(absl::StrContains(post.headers, "Allow: GET"));
  EXPECT_EQ(Http("HEAD", base + "/metrics").status, 405);
}

TEST(MetricsConfigTest, OffByDefaultAndBadAddressesFailStart) {
  ServerHarness off;
  EXPECT_TRUE(off.server().metrics_address().empty());

  testing::TempDir dir;
  server::ServerOptions options;
  options.config.listen = "127.0.0.1:0";
  options.config.data_dir = dir.Sub("data");
  options.config.metrics_listen = "not-an-address";
  auto bad = server::AgentdServer::Start(options);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "metrics_listen")) << bad.status();
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("data")));  // refused before touching the data dir
  // The other listeners' addresses too (they were found bad only after the bootstrap).
  options.config.metrics_listen.clear();
  for (auto field : {&server::Config::health_listen, &server::Config::http_listen}) {
    server::ServerOptions other = options;
    other.config.*field = "127.0.0.1:99999";
    auto refused = server::AgentdServer::Start(other);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(refused.status().message(), "_listen")) << refused.status();
    EXPECT_FALSE(std::filesystem::exists(dir.Sub("data")));
  }

  auto taken = http::HttpServer::Start("127.0.0.1:0", {});
  ASSERT_TRUE(taken.ok());
  options.config.metrics_listen = (*taken)->address();
  auto busy = server::AgentdServer::Start(options);
  ASSERT_FALSE(busy.ok());
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kUnavailable) << busy.status();
  EXPECT_TRUE(absl::StrContains(busy.status().message(), "metrics_listen")) << busy.status();
}

}  // namespace
}  // namespace agentd
