// End-to-end tests of OpenAiBackend against a real HTTP server (FakeOpenAiServer on 127.0.0.1):
// success paths (text, streaming, tool calls, usage, headers), every failure mode and its status
// code, deadlines, Cancel(), 500 concurrent calls on one I/O thread, keep-alive, and shutdown.
//
// Waits use absl::Notification / BlockingCounter; kGuard timeouts are failure guards only.
#include "backend/openai_backend.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <algorithm>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "testing/fake_openai.h"

namespace agentd::backend {
namespace {

using ::agentd::testing::FakeMode;
using ::agentd::testing::FakeOpenAiServer;
using ::agentd::testing::FakeReply;
using ::agentd::testing::FakeToolCall;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kGuard = absl::Seconds(30);
constexpr char kKey[] = "sk-test-SECRET-0123456789";

// Records everything one call reports, and when.
struct Probe {
  absl::Mutex mu;
  std::vector<std::string> deltas ABSL_GUARDED_BY(mu);
  absl::Time first_delta_at ABSL_GUARDED_BY(mu) = absl::InfiniteFuture();
  int done_calls ABSL_GUARDED_BY(mu) = 0;
  bool delta_after_done ABSL_GUARDED_BY(mu) = false;
  absl::StatusOr<ModelResponse> outcome ABSL_GUARDED_BY(mu) = absl::UnknownError("not done");
  absl::Time done_at ABSL_GUARDED_BY(mu);
  absl::Notification done;

  absl::StatusOr<ModelResponse> Wait() {
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(kGuard));
    absl::MutexLock lock(&mu);
    return outcome;
  }
  int done_count() {
    absl::MutexLock lock(&mu);
    return done_calls;
  }
};

ModelCallbacks Callbacks(const std::shared_ptr<Probe>& p,
                         std::function<void()> after_done = nullptr) {
  ModelCallbacks cb;
  cb.on_delta = [p](absl::string_view d) {
    absl::MutexLock lock(&p->mu);
    if (p->done_calls > 0) p->delta_after_done = true;
    if (p->deltas.empty()) p->first_delta_at = absl::Now();
    p->deltas.emplace_back(d);
  };
  cb.on_done = [p, after_done](absl::StatusOr<ModelResponse> r) {
    bool first;
    {
      absl::MutexLock lock(&p->mu);
      first = ++p->done_calls == 1;
      p->outcome = std::move(r);
      p->done_at = absl::Now();
    }
    if (first) p->done.Notify();
    if (after_done) after_done();
  };
  return cb;
}

ModelRequest Req(bool stream, absl::Duration deadline = absl::InfiniteDuration()) {
  ModelRequest r;
  r.model = "fake-model";
  r.stream = stream;
  ChatMessage m;
  m.role = v1::ROLE_USER;
  m.text = "hello";
  r.messages.push_back(m);
  r.deadline = absl::Now() + deadline;
  return r;
}

OpenAiBackendOptions Opts(const FakeOpenAiServer& server, std::string key = kKey) {
  OpenAiBackendOptions o;
  o.name = "fake-deployment";
  o.base_url = server.base_url();
  o.api_key = std::move(key);
  return o;
}

int ThreadCount() {
  int n = 0;
  DIR* dir = opendir("/proc/self/task");
  while (dirent* e = readdir(dir)) n += e->d_name[0] != '.';
  closedir(dir);
  return n;
}

// Local ports of the ESTABLISHED client-side TCP connections to 127.0.0.1:`port`.
std::vector<std::string> ClientConnectionsTo(int port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  std::vector<std::string> local_ports;
  const std::string remote_suffix =
      absl::AsciiStrToUpper(absl::StrCat(":", absl::Hex(port, absl::kZeroPad4)));
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    if (state == "01" && absl::EndsWith(remote, remote_suffix)) {
      local_ports.push_back(local.substr(local.find(':') + 1));
    }
  }
  return local_ports;
}

class OpenAiBackendTest : public ::testing::Test {
 protected:
  FakeOpenAiServer server_;
};

// ------------------------------------------------------------------------------ success paths

TEST_F(OpenAiBackendTest, NonStreamingTextUsageAndRequestShape) {
  FakeReply reply;
  reply.text = "Bonjour";
  reply.prompt_tokens = 21;
  reply.completion_tokens = 4;
  server_.Push(reply);
  OpenAiBackendOptions opts = Opts(server_);
  opts.headers["X-Tenant"] = "acme";
  OpenAiBackend backend(opts);
  auto probe = std::make_shared<Probe>();
  backend.Start(Req(false), Callbacks(probe));
  absl::StatusOr<ModelResponse> r = probe->Wait();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->text, "Bonjour");
  EXPECT_EQ(r->finish_reason, "stop");
  EXPECT_EQ(r->input_tokens, 21);
  EXPECT_EQ(r->output_tokens, 4);
  EXPECT_EQ(r->served_by, "fake-deployment");

  ASSERT_EQ(server_.request_headers().size(), 1u);
  auto headers = server_.request_headers()[0];
  EXPECT_EQ(headers["authorization"], absl::StrCat("Bearer ", kKey));
  EXPECT_EQ(headers["content-type"], "application/json");
  EXPECT_EQ(headers["x-tenant"], "acme");
  nlohmann::json body = nlohmann::json::parse(server_.request_bodies()[0]);
  EXPECT_EQ(body["model"], "fake-model");
  EXPECT_EQ(body["stream"], false);
  EXPECT_EQ(body["messages"][0]["content"], "hello");
}

TEST_F(OpenAiBackendTest, NoAuthorizationWithoutKeyAndTrailingSlashTolerated) {
  OpenAiBackendOptions opts = Opts(server_, "");
  opts.base_url += "/";
  OpenAiBackend backend(opts);
  auto probe = std::make_shared<Probe>();
  backend.Start(Req(false), Callbacks(probe));
  ASSERT_TRUE(probe->Wait().ok());
  EXPECT_EQ(server_.request_headers()[0].count("authorization"), 0u);
}

TEST_F(OpenAiBackendTest, StreamingDeltasArriveBeforeDone) {
  FakeReply reply;
  reply.text = "The quick brown fox jumps over the lazy dog.";
  reply.chunk_chars = 4;
  reply.drip_interval_ms = 20;
  server_.Push(reply);
  OpenAiBackend backend(Opts(server_));
  auto probe = std::make_shared<Probe>();
  backend.Start(Req(true), Callbacks(probe));
  absl::StatusOr<ModelResponse> r = probe->Wait();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->text, reply.text);
  EXPECT_EQ(r->input_tokens, 11);  // from the usage chunk
  EXPECT_EQ(r->output_tokens, 7);
  EXPECT_EQ(r->finish_reason, "stop");
  absl::MutexLock lock(&probe->mu);
  EXPECT_GE(probe->deltas.size(), 5u);
  EXPECT_EQ(absl::StrJoin(probe->deltas, ""), reply.text);
  // The first delta came while the server was still dripping (~11 chunks × 20 ms).
  EXPECT_LT(probe->first_delta_at + absl::Milliseconds(100), probe->done_at);
  EXPECT_FALSE(probe->delta_after_done);
  nlohmann::json body = nlohmann::json::parse(server_.request_bodies()[0]);
  EXPECT_EQ(body["stream_options"]["include_usage"], true);
}

TEST_F(OpenAiBackendTest, ParallelToolCallsStreamingAndNot) {
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "json");
    FakeReply reply;
    reply.text = "";
    reply.tool_calls = {{"call_a", "get_weather", R"({"city":"Paris"})"},
                        {"call_b", "get_time", R"({"tz":"Europe/Rome"})"}};
    server_.Push(reply);
    OpenAiBackend backend(Opts(server_));
    auto probe = std::make_shared<Probe>();
    backend.Start(Req(stream), Callbacks(probe));
    absl::StatusOr<ModelResponse> r = probe->Wait();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->finish_reason, "tool_calls");
    EXPECT_EQ(r->text, "");
    ASSERT_EQ(r->tool_calls.size(), 2u);
    EXPECT_EQ(r->tool_calls[0].id(), "call_a");
    EXPECT_EQ(r->tool_calls[0].name(), "get_weather");
    EXPECT_EQ(nlohmann::json::parse(r->tool_calls[0].arguments_json()),
              nlohmann::json::parse(R"({"city":"Paris"})"));
    EXPECT_EQ(r->tool_calls[1].id(), "call_b");
    EXPECT_EQ(r->tool_calls[1].name(), "get_time");
    EXPECT_EQ(nlohmann::json::parse(r->tool_calls[1].arguments_json()),
              nlohmann::json::parse(R"({"tz":"Europe/Rome"})"));
  }
}

TEST_F(OpenAiBackendTest, ConnectionsAreReused) {
  OpenAiBackend backend(Opts(server_));
  std::vector<std::string> after_first;
  for (int i = 0; i < 10; ++i) {
    auto probe = std::make_shared<Probe>();
    backend.Start(Req(i % 2 == 0), Callbacks(probe));
    ASSERT_TRUE(probe->Wait().ok());
    if (i == 0) after_first = ClientConnectionsTo(server_.port());
  }
  ASSERT_EQ(after_first.size(), 1u);  // kept alive after the first call...
  EXPECT_EQ(ClientConnectionsTo(server_.port()), after_first);  // ...and the same one reused
}

// Calls in flight together each need a connection of their own (HTTP/1.1); when every pooled
// one is busy the backend skips curl's search for a free one (FRESH_CONNECT). A later wave must
// still reuse the connections the first left idle: no new ones, none dropped.
TEST_F(OpenAiBackendTest, ConcurrentCallsOpenOneConnectionEachAndALaterWaveReusesThem) {
  constexpr int kWave = 6;
  FakeReply slow;
  slow.latency_ms = 300;  // long enough that the whole wave is in flight at once
  server_.SetDefault(slow);
  OpenAiBackend backend(Opts(server_));
  std::vector<std::string> after_first;
  for (int wave = 0; wave < 2; ++wave) {
    SCOPED_TRACE(wave);
    std::vector<std::shared_ptr<Probe>> probes;
    for (int i = 0; i < kWave; ++i) {
      probes.push_back(std::make_shared<Probe>());
      backend.Start(Req(i % 2 == 0), Callbacks(probes.back()));
    }
    for (const auto& p : probes) ASSERT_TRUE(p->Wait().ok());
    std::vector<std::string> open = ClientConnectionsTo(server_.port());
    std::sort(open.begin(), open.end());
    if (wave == 0) {
      EXPECT_EQ(open.size(), static_cast<size_t>(kWave));
      after_first = open;
    } else {
      EXPECT_EQ(open, after_first);
    }
  }
}

TEST_F(OpenAiBackendTest, StartFromInsideOnDone) {
  OpenAiBackend backend(Opts(server_));
  auto second = std::make_shared<Probe>();
  auto first = std::make_shared<Probe>();
  backend.Start(Req(false), Callbacks(first, [&backend, second] {
                  backend.Start(Req(true), Callbacks(second));
                }));
  ASSERT_TRUE(first->Wait().ok());
  ASSERT_TRUE(second->Wait().ok());
}

// ------------------------------------------------------------------------------ failure modes

struct FailureCase {
  const char* name;
  FakeMode mode;
  bool stream;
  absl::StatusCode code;
  int http_status;  // 0: none attached
};

class OpenAiFailureTest : public OpenAiBackendTest,
                          public ::testing::WithParamInterface<FailureCase> {};

TEST_P(OpenAiFailureTest, MapsToDocumentedCode) {
  const FailureCase& c = GetParam();
  FakeReply reply;
  reply.mode = c.mode;
  reply.retry_after_s = 3;
  server_.Push(reply);
  OpenAiBackend backend(Opts(server_));
  auto probe = std::make_shared<Probe>();
  backend.Start(Req(c.stream), Callbacks(probe));
  absl::StatusOr<ModelResponse> r = probe->Wait();
  ASSERT_FALSE(r.ok()) << "succeeded with text: " << r->text;
  EXPECT_EQ(r.status().code(), c.code) << r.status();
  EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr(kKey)));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("fake-deployment"));
  if (c.http_status != 0) {
    EXPECT_EQ(HttpStatus(r.status()), c.http_status);
  }
  if (c.mode == FakeMode::k429RateLimit) {
    EXPECT_EQ(RetryAfter(r.status()), absl::Seconds(3));
  }
  if (c.mode == FakeMode::k400ContextLength) {
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("context"));
  }
  absl::SleepFor(absl::Milliseconds(20));
  EXPECT_EQ(probe->done_count(), 1);
}

constexpr auto kUnavailable = absl::StatusCode::kUnavailable;
INSTANTIATE_TEST_SUITE_P(
    AllModes, OpenAiFailureTest,
    ::testing::ValuesIn(std::vector<FailureCase>{
        {"Status500", FakeMode::kStatus500, false, kUnavailable, 500},
        {"Status500Stream", FakeMode::kStatus500, true, kUnavailable, 500},
        {"Status502", FakeMode::kStatus502, false, kUnavailable, 502},
        {"Status503Stream", FakeMode::kStatus503, true, kUnavailable, 503},
        {"RateLimit", FakeMode::k429RateLimit, false, kUnavailable, 429},
        {"RateLimitStream", FakeMode::k429RateLimit, true, kUnavailable, 429},
        {"Quota", FakeMode::k429InsufficientQuota, false, absl::StatusCode::kResourceExhausted,
         429},
        {"QuotaStream", FakeMode::k429InsufficientQuota, true, absl::StatusCode::kResourceExhausted,
         429},
        {"ContextLength", FakeMode::k400ContextLength, false, absl::StatusCode::kFailedPrecondition,
         400},
        {"ContextLengthStream", FakeMode::k400ContextLength, true,
         absl::StatusCode::kFailedPrecondition, 400},
        {"BadRequest", FakeMode::k400Other, false, absl::StatusCode::kInvalidArgument, 400},
        {"Unauthorized", FakeMode::k401, true, absl::StatusCode::kPermissionDenied, 401},
        {"Reset", FakeMode::kResetBeforeHeaders, false, kUnavailable, 0},
        {"ResetStream", FakeMode::kResetBeforeHeaders, true, kUnavailable, 0},
        {"Cut", FakeMode::kCutMidStream, false, kUnavailable, 0},
        {"CutStream", FakeMode::kCutMidStream, true, kUnavailable, 0},
        {"Malformed", FakeMode::kMalformedJson, false, kUnavailable, 0},
        {"MalformedStream", FakeMode::kMalformedJson, true, kUnavailable, 0},
        {"EmptyChoices", FakeMode::kEmptyChoices, false, kUnavailable, 0},
        {"EmptyChoicesStream", FakeMode::kEmptyChoices, true, kUnavailable, 0},
    }),
    [](const ::testing::TestParamInfo<FailureCase>& info) { return info.param.name; });

TEST_F(OpenAiBackendTest, ApiKeyEchoedByProviderIsRedacted) {
  FakeReply denied;
  denied.mode = FakeMode::k401;  // message: "Incorrect API key provided."
  server_.Push(denied);
  OpenAiBackend backend(Opts(server_, "API key"));  // a "key" the provider's message contains
  auto probe = std::make_shared<Probe>();
  backend.Start(Req(false), Callbacks(probe));
  absl::Status s = probe->Wait().status();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("API key")));
  EXPECT_THAT(std::string(s.message()), HasSubstr("[redacted]"));
}

TEST_F(OpenAiBackendTest, ConnectionRefusedIsUnavailable) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);  // nothing listens on this port now
  OpenAiBackendOptions opts = Opts(server_);
  opts.base_url = absl::StrCat("http://127.0.0.1:", ntohs(addr.sin_port), "/v1");
  OpenAiBackend backend(opts);
  auto probe = std::make_shared<Probe>();
  backend.Start(Req(false), Callbacks(probe));
  absl::StatusOr<ModelResponse> r = probe->Wait();
  EXPECT_EQ(r.status().code(), kUnavailable) << r.status();
}

// --------------------------------------------------------------------- deadlines and Cancel()

TEST_F(OpenAiBackendTest, RequestDeadlineHonoured) {
  FakeReply slow;
  slow.latency_ms = 2000;
  server_.Push(slow);
  OpenAiBackend backend(Opts(server_));
  auto probe = std::make_shared<Probe>();
  const absl::Time start = absl::Now();
  backend.Start(Req(false, absl::Milliseconds(300)), Callbacks(probe));
  absl::StatusOr<ModelResponse> r = probe->Wait();
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_GE(took, absl::Milliseconds(295));
  EXPECT_LT(took, absl::Milliseconds(400));
}

TEST_F(OpenAiBackendTest, OptionsTimeoutHonouredMidStream) {
  FakeReply drip;
  drip.drip_interval_ms = 100;
  drip.text = std::string(200, 'x');
  server_.Push(drip);
  OpenAiBackendOptions opts = Opts(server_);
  opts.timeout = absl::Milliseconds(300);
  OpenAiBackend backend(opts);
  auto probe = std::make_shared<Probe>();
  const absl::Time start = absl::Now();
  backend.Start(Req(true), Callbacks(probe));
  absl::StatusOr<ModelResponse> r = probe->Wait();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(400));
  absl::MutexLock lock(&probe->mu);
  EXPECT_FALSE(probe->deltas.empty());  // partial deltas, then a failure: never partial success
}

TEST_F(OpenAiBackendTest, PastDeadlineFailsInline) {
  OpenAiBackend backend(Opts(server_));
  auto probe = std::make_shared<Probe>();
  backend.Start(Req(false, -absl::Seconds(1)), Callbacks(probe));
  EXPECT_TRUE(probe->done.HasBeenNotified());
  EXPECT_EQ(probe->Wait().status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(server_.request_count(), 0);
}

TEST_F(OpenAiBackendTest, CancelSlowCallIsPrompt) {
  FakeReply slow;
  slow.latency_ms = 2000;
  server_.Push(slow);
  OpenAiBackend backend(Opts(server_));
  auto probe = std::make_shared<Probe>();
  std::shared_ptr<ModelCall> call = backend.Start(Req(false), Callbacks(probe));
  absl::SleepFor(absl::Milliseconds(100));
  const absl::Time cancelled_at = absl::Now();
  call->Cancel();
  call->Cancel();  // idempotent
  absl::StatusOr<ModelResponse> r = probe->Wait();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  {
    absl::MutexLock lock(&probe->mu);
    EXPECT_LT(probe->done_at - cancelled_at, absl::Milliseconds(100));
  }
  call->Cancel();  // after completion: no-op
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(probe->done_count(), 1);
}

TEST_F(OpenAiBackendTest, CancelMidStreamFromOnDelta) {
  FakeReply drip;
  drip.drip_interval_ms = 50;
  drip.text = std::string(400, 'y');
  server_.Push(drip);
  OpenAiBackend backend(Opts(server_));
  auto probe = std::make_shared<Probe>();
  auto holder = std::make_shared<std::shared_ptr<ModelCall>>();
  absl::Notification started;
  ModelCallbacks cb = Callbacks(probe);
  cb.on_delta = [probe, holder, &started, inner = cb.on_delta](absl::string_view d) {
    inner(d);
    started.WaitForNotification();
    (*holder)->Cancel();  // from the I/O thread, inside a callback
  };
  *holder = backend.Start(Req(true), std::move(cb));
  started.Notify();
  absl::StatusOr<ModelResponse> r = probe->Wait();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  absl::SleepFor(absl::Milliseconds(150));
  absl::MutexLock lock(&probe->mu);
  EXPECT_EQ(probe->done_calls, 1);
  EXPECT_FALSE(probe->delta_after_done);
  EXPECT_LE(probe->deltas.size(), 2u);
}

// ----------------------------------------------------------------- concurrency and shutdown

TEST_F(OpenAiBackendTest, FiveHundredConcurrentCallsOneIoThread) {
  constexpr int kCalls = 500;
  FakeReply slow;
  slow.latency_ms = 200;
  server_.SetDefault(slow);
  server_.set_record_requests(false);
  OpenAiBackend backend(Opts(server_));
  std::vector<std::shared_ptr<Probe>> probes;
  std::vector<std::shared_ptr<ModelCall>> calls;
  absl::BlockingCounter all_done(kCalls);
  const int threads_before = ThreadCount();
  const absl::Time start = absl::Now();
  for (int i = 0; i < kCalls; ++i) {
    probes.push_back(std::make_shared<Probe>());
    calls.push_back(backend.Start(
        Req(i % 2 == 0), Callbacks(probes.back(), [&all_done] { all_done.DecrementCount(); })));
  }
  const int threads_after_start = ThreadCount();
  all_done.Wait();
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(threads_after_start, threads_before);
  EXPECT_EQ(ThreadCount(), threads_before);
  EXPECT_LT(took, absl::Seconds(3));
  EXPECT_GE(server_.max_in_flight(), kCalls / 2);  // really concurrent, not queued
  int ok = 0;
  absl::Status first_error;
  for (auto& p : probes) {
    absl::StatusOr<ModelResponse> r = p->Wait();
    ok += r.ok();
    if (!r.ok() && first_error.ok()) first_error = r.status();
  }
  EXPECT_EQ(ok, kCalls) << first_error;
  std::cerr << kCalls << " calls (200 ms latency) took " << took << ", threads " << threads_before
            << " -> " << threads_after_start << "\n";
}

TEST_F(OpenAiBackendTest, DestructorCancelsEveryCallExactlyOnce) {
  FakeReply slow;
  slow.latency_ms = 5000;
  server_.SetDefault(slow);
  FakeReply drip;
  drip.drip_interval_ms = 100;
  drip.text = std::string(400, 'z');
  server_.Push(drip);  // the first call streams slowly: cancelled mid-stream
  std::vector<std::shared_ptr<Probe>> probes;
  std::vector<std::shared_ptr<ModelCall>> calls;
  auto backend = std::make_unique<OpenAiBackend>(Opts(server_));
  for (int i = 0; i < 50; ++i) {
    probes.push_back(std::make_shared<Probe>());
    calls.push_back(backend->Start(Req(i == 0), Callbacks(probes.back())));
    // The drip reply goes to the first request the server sees: make that call 0's.
    for (int w = 0; i == 0 && w < 1000 && server_.request_count() < 1; ++w) {
      absl::SleepFor(absl::Milliseconds(2));
    }
  }
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time start = absl::Now();
  backend.reset();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
  for (auto& p : probes) {
    ASSERT_TRUE(p->done.HasBeenNotified());
    EXPECT_EQ(p->Wait().status().code(), absl::StatusCode::kCancelled);
    EXPECT_EQ(p->done_count(), 1);
  }
  for (auto& c : calls) c->Cancel();  // the backend is gone: still a safe no-op
  absl::MutexLock lock(&probes[0]->mu);
  EXPECT_FALSE(probes[0]->deltas.empty());
}

}  // namespace
}  // namespace agentd::backend
