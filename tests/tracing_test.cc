// Tracing and logs: W3C traceparent parsing, propagation from the RPC's metadata to the backend's
// HTTP request (a FakeOpenAiServer records the headers it got), and the request and trace ids on
// log lines in both formats, including lines logged on backend threads.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "metrics/log_format.h"
#include "metrics/trace_context.h"
#include "testing/fake_openai.h"
#include "testing/server_harness.h"

namespace agentd {
namespace {

using testing::Ctx;
using testing::ServerHarness;

constexpr char kTraceId[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kParentId[] = "00f067aa0ba902b7";
const std::string kValid = std::string("00-") + kTraceId + "-" + kParentId + "-01";

// ---- parsing ----------------------------------------------------------------------------------

TEST(TraceparentTest, ParsesValidHeaders) {
  auto tp = obs::ParseTraceparent(kValid);
  ASSERT_TRUE(tp.has_value());
  EXPECT_EQ(tp->trace_id, kTraceId);
  EXPECT_EQ(tp->parent_id, kParentId);
  EXPECT_EQ(tp->flags, 1);
  EXPECT_EQ(obs::ParseTraceparent(std::string("00-") + kTraceId + "-" + kParentId + "-00")->flags, 0);
  // A later version may append fields after the flags.
  auto future = obs::ParseTraceparent(std::string("cc-") + kTraceId + "-" + kParentId + "-ff-extra");
  ASSERT_TRUE(future.has_value());
  EXPECT_EQ(future->flags, 0xff);
  EXPECT_EQ(obs::FormatTraceparent(kTraceId, kParentId, 1), kValid);
}

TEST(TraceparentTest, RejectsInvalidHeaders) {
  const std::string t = kTraceId, p = kParentId;
  const std::vector<std::string> invalid = {
      "",
      "garbage",
      "00-" + t + "-" + p,                                   // no flags
      "00-" + t + "-" + p + "-1",                            // flags one digit
      "00-" + t + "-" + p + "-001",                          // version 00 must be exactly 55 chars
      "00-" + t + "-" + p + "-01-extra",                     // ditto
      "ff-" + t + "-" + p + "-01",                           // version ff is invalid
      "0g-" + t + "-" + p + "-01",                           // version not hex
      "00-" + std::string(32, '0') + "-" + p + "-01",        // all-zero trace id
      "00-" + t + "-" + std::string(16, '0') + "-01",        // all-zero parent id
      "00-4BF92F3577B34DA6A3CE929D0E0E4736-" + p + "-01",    // upper case
      "00-" + t.substr(0, 31) + "-" + p + "-01",             // short trace id
      "00-" + t + "-" + p.substr(0, 15) + "x-01",            // non-hex parent id
      "00_" + t + "-" + p + "-01",                           // wrong separator
      "cc-" + t + "-" + p + "-01x",                          // later version: '-' must follow
  };
  for (const std::string& v : invalid) {
    EXPECT_FALSE(obs::ParseTraceparent(v).has_value()) << v;
  }
}

TEST(TraceparentTest, NewIdsAreValidAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string trace = obs::NewTraceId(), span = obs::NewSpanId();
    ASSERT_TRUE(obs::ParseTraceparent(obs::FormatTraceparent(trace, span, 0)).has_value());
    EXPECT_TRUE(seen.insert(trace).second);
  }
}

TEST(ContextScopeTest, NestsRestoresAndStaysOnItsThread) {
  auto outer = std::make_shared<obs::RequestContext>();
  outer->request_id = "req-outer";
  auto inner = std::make_shared<obs::RequestContext>();
  EXPECT_EQ(obs::CurrentLogContext().request, nullptr);
  {
    obs::ContextScope a(outer.get(), "sess", "turn");
    EXPECT_EQ(obs::CurrentRequest(), outer);
    {
      obs::ContextScope same(outer.get());  // re-installing keeps the turn's ids
      EXPECT_EQ(obs::CurrentLogContext().turn_id, "turn");
      obs::ContextScope b(inner.get());
      EXPECT_EQ(obs::CurrentLogContext().request, inner.get());
      EXPECT_TRUE(obs::CurrentLogContext().session_id.empty());
      std::thread([] { EXPECT_EQ(obs::CurrentLogContext().request, nullptr); }).join();
    }
    EXPECT_EQ(obs::CurrentLogContext().request, outer.get());
    EXPECT_EQ(obs::CurrentLogContext().session_id, "sess");
  }
  EXPECT_EQ(obs::CurrentLogContext().request, nullptr);
  obs::RequestContext on_stack;  // not owned by a shared_ptr: no shared ownership to hand out
  obs::ContextScope c(&on_stack);
  EXPECT_EQ(obs::CurrentRequest(), nullptr);
}

// ---- propagation through a real server ----------------------------------------------------------

// Captures the default logger's output in a given format, at debug level, while alive.
class FormatCapture {
 public:
  explicit FormatCapture(obs::LogFormat format)
      : sink_(std::make_shared<spdlog::sinks::ostream_sink_mt>(out_)) {
    sink_->set_formatter(obs::MakeFormatter(format));
    sink_->set_level(spdlog::level::debug);
    auto logger = spdlog::default_logger();
    old_level_ = logger->level();
    logger->sinks().push_back(sink_);
    logger->set_level(spdlog::level::debug);
  }
  ~FormatCapture() {
    auto logger = spdlog::default_logger();
    auto& sinks = logger->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    logger->set_level(old_level_);
  }
  std::vector<std::string> Lines() {
    spdlog::default_logger()->flush();
    std::vector<std::string> lines;
    for (absl::string_view l : absl::StrSplit(out_.str(), '\n', absl::SkipEmpty())) {
      lines.emplace_back(l);
    }
    return lines;
  }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::sinks::ostream_sink_mt> sink_;
  spdlog::level::level_enum old_level_;
};

class TracingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    h_ = std::make_unique<ServerHarness>([this](server::Config* c) {
      c->router.max_retries = 2;
      c->router.initial_backoff_ms = 1;
      c->router.max_backoff_ms = 5;
      c->router.breaker_failures = 1000;
      testing::AddFakeOpenAiModel(c, fake_.base_url());
    });
    session_ = h_->CreateSession(h_->CreateAgent("gpt").agent_id()).session_id();
  }

  // RunTurn with the given metadata (empty values are not sent).
  grpc::Status Turn(const std::string& traceparent, const std::string& request_id = "") {
    auto ctx = Ctx();
    if (!traceparent.empty()) ctx->AddMetadata("traceparent", traceparent);
    if (!request_id.empty()) ctx->AddMetadata("x-agentd-request-id", request_id);
    v1::RunTurnRequest req;
    req.set_session_id(session_);
    req.add_input()->set_text("hello");
    v1::TurnResult out;
    return h_->sessions().RunTurn(ctx.get(), req, &out);
  }

  // The traceparent headers the fake received since `from`, parsed (fails on invalid ones).
  std::vector<obs::TraceParent> Received(size_t from = 0) {
    std::vector<obs::TraceParent> out;
    auto all = fake_.request_headers();
    for (size_t i = from; i < all.size(); ++i) {
      auto it = all[i].find("traceparent");
      EXPECT_NE(it, all[i].end()) << "request " << i << " has no traceparent";
      if (it == all[i].end()) continue;
      auto tp = obs::ParseTraceparent(it->second);
      EXPECT_TRUE(tp.has_value()) << it->second;
      if (tp) out.push_back(*tp);
    }
    return out;
  }

  testing::FakeOpenAiServer fake_;
  std::unique_ptr<ServerHarness> h_;  // declared last: stopped before the fake goes away
  std::string session_;
};

TEST_F(TracingTest, TraceparentReachesTheBackendWithANewSpanPerAttempt) {
  testing::FakeReply fail;
  fail.mode = testing::FakeMode::kStatus503;
  fake_.Push(fail);  // the first attempt fails, the retry succeeds
  ASSERT_TRUE(Turn(kValid).ok());
  std::vector<obs::TraceParent> got = Received();
  ASSERT_EQ(got.size(), 2u);
  for (const obs::TraceParent& tp : got) {
    EXPECT_EQ(tp.trace_id, kTraceId);    // same trace
    EXPECT_NE(tp.parent_id, kParentId);  // agentd's own span
    EXPECT_EQ(tp.flags, 1);              // the caller's sampling decision is kept
  }
  EXPECT_NE(got[0].parent_id, got[1].parent_id);  // one span per HTTP attempt
}

TEST_F(TracingTest, InvalidOrAbsentTraceparentStartsANewTrace) {
  const std::string t = kTraceId, p = kParentId;
  const std::vector<std::string> cases = {
      "",                                                   // absent
      "00-" + std::string(32, '0') + "-" + p + "-01",       // zero trace id
      "00-" + t + "-" + std::string(16, '0') + "-01",       // zero parent id
      "00-" + t.substr(0, 30) + "-" + p + "-01",            // short
      "ff-" + t + "-" + p + "-01",                          // version ff
      "00-" + t + "-" + p + "-1",                           // flags
  };
  std::set<std::string> traces;
  for (const std::string& header : cases) {
    const size_t before = fake_.request_headers().size();
    ASSERT_TRUE(Turn(header).ok()) << header;
    std::vector<obs::TraceParent> got = Received(before);
    ASSERT_EQ(got.size(), 1u) << header;
    EXPECT_NE(got[0].trace_id, kTraceId) << header;  // not taken from the invalid header
    EXPECT_EQ(got[0].flags, 0) << header;             // agentd's own trace: not sampled
    traces.insert(got[0].trace_id);
  }
  EXPECT_EQ(traces.size(), cases.size());  // a new trace each time
}

TEST_F(TracingTest, JsonLogLinesCarryRequestAndTraceIds) {
  FormatCapture capture(obs::LogFormat::kJson);
  testing::FakeReply fail;
  fail.mode = testing::FakeMode::kStatus500;
  fake_.Push(fail);  // logged (debug) by the router on the backend's I/O thread
  ASSERT_TRUE(Turn(kValid, "req-tracing-json").ok());
  ASSERT_EQ(Turn("", "req-tracing-missing").ok(), true);
  v1::RunTurnRequest missing;
  missing.set_session_id("no-such-session");
  missing.add_input()->set_text("x");
  auto ctx = Ctx();
  ctx->AddMetadata("x-agentd-request-id", "req-tracing-404");
  v1::TurnResult out;
  EXPECT_FALSE(h_->sessions().RunTurn(ctx.get(), missing, &out).ok());

  bool saw_retry = false, saw_done = false, saw_404 = false;
  std::string generated_trace;
  for (const std::string& line : capture.Lines()) {
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
    ASSERT_TRUE(j.is_object());
    for (const char* key : {"time", "level", "message", "request_id", "trace_id", "fields"}) {
      EXPECT_TRUE(j.contains(key)) << key << " missing: " << line;
    }
    EXPECT_TRUE(j["fields"].is_object());
    EXPECT_TRUE(absl::EndsWith(j["time"].get<std::string>(), "Z")) << line;
    const std::string message = j["message"];
    if (j["request_id"] == "req-tracing-json") {
      EXPECT_EQ(j["trace_id"], kTraceId) << line;
      EXPECT_EQ(j["fields"]["method"], "RunTurn") << line;
      saw_retry = saw_retry || absl::StrContains(message, "failed (attempt 1)");
      saw_done = saw_done || absl::StrContains(message, "RunTurn OK");
    }
    if (j["request_id"] == "req-tracing-404") {
      EXPECT_TRUE(j["trace_id"].is_string()) << line;
      generated_trace = j["trace_id"];
      saw_404 = saw_404 || absl::StrContains(message, "NOT_FOUND");
    }
    // Any line about a model call failing belongs to a request.
    if (absl::StrContains(message, "failed (attempt")) {
      EXPECT_EQ(j["request_id"], "req-tracing-json") << line;
    }
  }
  EXPECT_TRUE(saw_retry) << "the router's retry line (backend thread) lacks the ids";
  EXPECT_TRUE(saw_done);
  EXPECT_TRUE(saw_404);
  EXPECT_EQ(generated_trace.size(), 32u);
}

TEST_F(TracingTest, TextLogLinesCarryRequestAndTraceIds) {
  FormatCapture capture(obs::LogFormat::kText);
  testing::FakeReply fail;
  fail.mode = testing::FakeMode::kStatus500;
  fake_.Push(fail);
  ASSERT_TRUE(Turn(kValid, "req-tracing-text").ok());
  const std::string prefix = std::string("[req-tracing-text trace=") + kTraceId + "] ";
  int tagged = 0;
  for (const std::string& line : capture.Lines()) {
    if (absl::StrContains(line, "failed (attempt 1)") || absl::StrContains(line, "RunTurn OK")) {
      EXPECT_TRUE(absl::StrContains(line, prefix)) << line;
      EXPECT_TRUE(absl::StrContains(line, "Z debug ")) << line;
      ++tagged;
    }
  }
  EXPECT_EQ(tagged, 2);
}

}  // namespace
}  // namespace agentd
