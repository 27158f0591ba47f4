// The backend fault matrix through real turns: an in-process agentd (gRPC + RocksDB) whose model
// routes to an `openai` backend pointed at a FakeOpenAiServer, driven with RunTurn / StreamTurn as
// any client would. Deadlines, cancellation and secret hygiene are in backend_safety_test.cc.
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "testing/fake_openai.h"
#include "testing/server_harness.h"

namespace agentd {
namespace {

using nlohmann::json;
using testing::Ctx;
using testing::FakeMode;
using testing::FakeOpenAiServer;
using testing::FakeReply;
using testing::FakeToolCall;
using testing::ServerHarness;

constexpr int kMaxRetries = 2;
const std::string kOkText = FakeReply().text;  // the fake's default answer

server::BackendConfig OpenAiBackendConfig(const std::string& name, const FakeOpenAiServer& fake) {
  server::BackendConfig b;
  b.name = name;
  b.type = "openai";
  b.base_url = fake.base_url();
  b.timeout_ms = 10000;
  return b;
}

server::ModelConfig Model(const std::string& name,
                          std::vector<server::DeploymentConfig> deployments,
                          std::vector<std::string> fallback = {},
                          server::PriceConfig price = {2.0, 8.0}) {
  server::ModelConfig m;
  m.name = name;
  m.deployments = std::move(deployments);
  m.fallback = std::move(fallback);
  m.price = price;
  return m;
}

FakeReply Reply(FakeMode mode) {
  FakeReply r;
  r.mode = mode;
  return r;
}

v1::RunTurnRequest UserTurn(const std::string& session_id, const std::string& text) {
  v1::RunTurnRequest req;
  req.set_session_id(session_id);
  v1::InputMessage* in = req.add_input();
  in->set_role(v1::ROLE_USER);
  in->set_text(text);
  return req;
}

// What a client saw of one turn, whether it used RunTurn or StreamTurn.
struct TurnOutcome {
  grpc::Status status;
  v1::TurnResult result;
  bool has_result = false;
  std::vector<std::string> deltas;  // StreamTurn only
  std::vector<v1::Event> streamed;  // StreamTurn only
  std::string DeltaText() const { return absl::StrJoin(deltas, ""); }
  bool saw_reset = false;
};

TurnOutcome RunOrStream(ServerHarness& h, const v1::RunTurnRequest& req, bool stream) {
  TurnOutcome out;
  auto ctx = Ctx(10);
  if (!stream) {
    out.status = h.sessions().RunTurn(ctx.get(), req, &out.result);
    out.has_result = out.status.ok();
    return out;
  }
  auto reader = h.sessions().StreamTurn(ctx.get(), req);
  v1::TurnEvent te;
  while (reader->Read(&te)) {
    EXPECT_FALSE(out.has_result) << "the TurnResult must be the last message of the stream";
    if (te.has_delta()) {
      if (te.delta().reset()) {  // the step's call is being retried
        out.deltas.clear();
        out.saw_reset = true;
      }
      out.deltas.push_back(te.delta().text());
    } else if (te.has_event()) {
      out.streamed.push_back(te.event());
    } else if (te.has_result()) {
      out.result = te.result();
      out.has_result = true;
    }
  }
  out.status = reader->Finish();
  return out;
}

std::vector<v1::Event> AssistantMessages(const std::vector<v1::Event>& events) {
  std::vector<v1::Event> out;
  for (const auto& e : events) {
    if (e.type() == v1::EVENT_TYPE_MESSAGE && e.message().role() == v1::ROLE_ASSISTANT) {
      out.push_back(e);
    }
  }
  return out;
}

// The "gpt" model of a config built by FaultMatrixTest::Start.
server::ModelConfig& Gpt(server::Config* c) {
  for (auto& m : c->models) {
    if (m.name == "gpt") return m;
  }
  ADD_FAILURE() << "no model gpt";
  return c->models.front();
}

class FaultMatrixTest : public ::testing::Test {
 protected:
  // Model "gpt" on backend "fake" (fake_), and model "backup" on backend "fake2" (fake2_).
  void Start(std::function<void(server::Config*)> adjust = {}) {
    h_ = std::make_unique<ServerHarness>([this, adjust](server::Config* c) {
      c->router.max_retries = kMaxRetries;
      c->router.initial_backoff_ms = 5;
      c->router.max_backoff_ms = 50;
      c->router.breaker_failures = 1000;
      c->backends.push_back(OpenAiBackendConfig("fake", fake_));
      c->backends.push_back(OpenAiBackendConfig("fake2", fake2_));
      c->models.push_back(Model("gpt", {{"fake", "fake-gpt-4o", 1}}));
      c->models.push_back(Model("backup", {{"fake2", "backup-model", 1}}, {}, {1.0, 3.0}));
      if (adjust) adjust(c);
    });
  }

  std::string NewSession(const std::vector<std::string>& client_tools = {},
                         const std::string& model = "gpt") {
    v1::Agent agent = h_->CreateAgent(model, "", client_tools);
    return h_->CreateSession(agent.agent_id()).session_id();
  }

  v1::Session GetSession(const std::string& session_id) {
    v1::GetSessionRequest get;
    get.set_session_id(session_id);
    v1::Session s;
    EXPECT_TRUE(h_->sessions().GetSession(Ctx().get(), get, &s).ok());
    return s;
  }

  // Asserts the turn failed cleanly: the log ends with TURN_FAILED and holds no assistant
  // message (nothing truncated was stored as complete).
  // Then that the session is consistent (seqs 1..last_seq without gaps, not RUNNING) and
  // resumable: once the fault clears, the next turn on it completes.
  void ExpectFailedWithoutAnswer(const std::string& session_id) {
    auto events = h_->AllEvents(session_id);
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.back().type(), v1::EVENT_TYPE_TURN_FAILED);
    EXPECT_TRUE(AssistantMessages(events).empty()) << AssistantMessages(events)[0].DebugString();
    ExpectConsistent(session_id);
    fake_.SetDefault(FakeReply());
    fake2_.SetDefault(FakeReply());
    TurnOutcome next = RunOrStream(*h_, UserTurn(session_id, "after the fault"), /*stream=*/false);
    ASSERT_TRUE(next.status.ok()) << next.status.error_message();
    EXPECT_EQ(next.result.status(), v1::TURN_STATUS_COMPLETED);
    EXPECT_EQ(next.result.output_text(), kOkText);
    ExpectConsistent(session_id);
    EXPECT_EQ(GetSession(session_id).status(), v1::SESSION_STATUS_IDLE);
  }

  void ExpectConsistent(const std::string& session_id) {
    const auto events = h_->AllEvents(session_id);
    for (size_t i = 0; i < events.size(); ++i) {
      ASSERT_EQ(events[i].seq(), static_cast<int64_t>(i + 1)) << "gap or duplicate in the log";
    }
    const v1::Session s = GetSession(session_id);
    EXPECT_EQ(s.last_seq(), static_cast<int64_t>(events.size()));
    EXPECT_NE(s.status(), v1::SESSION_STATUS_RUNNING);
  }

  FakeOpenAiServer fake_;
  FakeOpenAiServer fake2_;
  std::unique_ptr<ServerHarness> h_;  // declared last: stopped before the fakes go away
};

// ------------------------------------------------------------------------------ 1. success

TEST_F(FaultMatrixTest, OkNonStreamingUsageCostAndServedBy) {
  Start();
  FakeReply ok;
  ok.text = "The answer is 42.";
  ok.prompt_tokens = 1200;
  ok.completion_tokens = 345;
  fake_.Push(ok);
  const std::string sid = NewSession();
  TurnOutcome out = RunOrStream(*h_, UserTurn(sid, "what is the answer?"), /*stream=*/false);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.result.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(out.result.output_text(), "The answer is 42.");
  const double cost = (1200 * 2.0 + 345 * 8.0) / 1e6;
  EXPECT_EQ(out.result.usage().input_tokens(), 1200);
  EXPECT_EQ(out.result.usage().output_tokens(), 345);
  EXPECT_EQ(out.result.usage().model_calls(), 1);
  EXPECT_NEAR(out.result.usage().cost_usd(), cost, 1e-12);

  auto assistant = AssistantMessages(h_->AllEvents(sid));
  ASSERT_EQ(assistant.size(), 1u);
  EXPECT_EQ(assistant[0].message().text(), "The answer is 42.");
  EXPECT_EQ(assistant[0].message().model(), "gpt (fake/fake-gpt-4o)");

  v1::Session s = GetSession(sid);
  EXPECT_EQ(s.usage().input_tokens(), 1200);
  EXPECT_EQ(s.usage().output_tokens(), 345);
  EXPECT_EQ(s.usage().model_calls(), 1);
  EXPECT_NEAR(s.usage().cost_usd(), cost, 1e-12);

  ASSERT_EQ(fake_.request_count(), 1);
  json body = json::parse(fake_.request_bodies()[0]);
  EXPECT_EQ(body["model"], "fake-gpt-4o");
  EXPECT_EQ(body["stream"], false);
  EXPECT_EQ(body["messages"].back()["role"], "user");
  EXPECT_EQ(body["messages"].back()["content"], "what is the answer?");
  EXPECT_EQ(fake2_.request_count(), 0);
}

TEST_F(FaultMatrixTest, OkStreamingDeltasConcatenateToTheText) {
  Start();
  FakeReply ok;
  ok.text = "Streaming works, token by token, all the way.";
  ok.chunk_chars = 4;
  ok.prompt_tokens = 50;
  ok.completion_tokens = 12;
  fake_.Push(ok);
  const std::string sid = NewSession();
  TurnOutcome out = RunOrStream(*h_, UserTurn(sid, "stream please"), /*stream=*/true);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  ASSERT_TRUE(out.has_result);
  EXPECT_EQ(out.result.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_GT(out.deltas.size(), 5u);  // really streamed, not one blob
  EXPECT_EQ(out.DeltaText(), ok.text);
  EXPECT_EQ(out.result.output_text(), ok.text);
  EXPECT_EQ(out.result.usage().input_tokens(), 50);
  EXPECT_EQ(out.result.usage().output_tokens(), 12);
  EXPECT_NEAR(out.result.usage().cost_usd(), (50 * 2.0 + 12 * 8.0) / 1e6, 1e-12);
  auto assistant = AssistantMessages(out.streamed);
  ASSERT_EQ(assistant.size(), 1u);
  EXPECT_EQ(assistant[0].message().text(), ok.text);
  EXPECT_EQ(assistant[0].message().model(), "gpt (fake/fake-gpt-4o)");
  EXPECT_EQ(GetSession(sid).usage().output_tokens(), 12);

  json body = json::parse(fake_.request_bodies().at(0));
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["stream_options"]["include_usage"], true);
}

// ---------------------------------------------------------------------------- 2. tool calls

// The chat message of `role` in `body` at or after `from`, or null.
const json* FindMessage(const json& body, const std::string& role, size_t from = 0) {
  const json& msgs = body["messages"];
  for (size_t i = from; i < msgs.size(); ++i) {
    if (msgs[i]["role"] == role) return &msgs[i];
  }
  return nullptr;
}

TEST_F(FaultMatrixTest, SingleToolCallRoundTripOverTheWire) {
  Start();
  FakeReply call;
  call.text = "";
  call.tool_calls = {{"call_abc", "get_weather", R"({"city":"Paris"})"}};
  fake_.Push(call);
  FakeReply answer;
  answer.text = "Sunny in Paris.";
  fake_.Push(answer);
  const std::string sid = NewSession({"get_weather"});

  TurnOutcome first = RunOrStream(*h_, UserTurn(sid, "weather in Paris?"), /*stream=*/false);
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  ASSERT_EQ(first.result.status(), v1::TURN_STATUS_REQUIRES_ACTION);
  ASSERT_EQ(first.result.required_tool_calls_size(), 1);
  EXPECT_EQ(first.result.required_tool_calls(0).id(), "call_abc");
  EXPECT_EQ(first.result.required_tool_calls(0).name(), "get_weather");
  EXPECT_EQ(json::parse(first.result.required_tool_calls(0).arguments_json()),
            json::parse(R"({"city":"Paris"})"));

  v1::RunTurnRequest results;
  results.set_session_id(sid);
  v1::ToolResult* tr = results.add_tool_results();
  tr->set_tool_call_id("call_abc");
  tr->set_output("sunny, 21C");
  TurnOutcome second = RunOrStream(*h_, results, /*stream=*/false);
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  EXPECT_EQ(second.result.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(second.result.output_text(), "Sunny in Paris.");

  auto bodies = fake_.request_bodies();
  ASSERT_EQ(bodies.size(), 2u);
  json b0 = json::parse(bodies[0]);
  ASSERT_EQ(b0["tools"].size(), 1u);
  EXPECT_EQ(b0["tools"][0]["type"], "function");
  EXPECT_EQ(b0["tools"][0]["function"]["name"], "get_weather");
  json b1 = json::parse(bodies[1]);
  // The first turn's messages come from the session's kept encodings: byte for byte what
  // encoding them afresh (nlohmann's dump of the same document) gives.
  EXPECT_EQ(bodies[1], b1.dump());
  const json* user = FindMessage(b1, "user");
  ASSERT_NE(user, nullptr) << b1.dump();
  EXPECT_EQ((*user)["content"], "weather in Paris?");
  const json* assistant = FindMessage(b1, "assistant");
  ASSERT_NE(assistant, nullptr) << b1.dump();
  ASSERT_EQ((*assistant)["tool_calls"].size(), 1u) << b1.dump();
  const json& tc = (*assistant)["tool_calls"][0];
  EXPECT_EQ(tc["id"], "call_abc");
  EXPECT_EQ(tc["type"], "function");
  EXPECT_EQ(tc["function"]["name"], "get_weather");
  EXPECT_EQ(json::parse(tc["function"]["arguments"].get<std::string>()),
            json::parse(R"({"city":"Paris"})"));
  const json* tool = FindMessage(b1, "tool");
  ASSERT_NE(tool, nullptr) << b1.dump();
  EXPECT_EQ((*tool)["tool_call_id"], "call_abc");
  EXPECT_EQ((*tool)["content"], "sunny, 21C");
  EXPECT_GT(tool - &b1["messages"][0], assistant - &b1["messages"][0]);  // tool after assistant
}

TEST_F(FaultMatrixTest, ParallelToolCallsStreamedRoundTrip) {
  Start();
  FakeReply calls;
  calls.text = "";
  calls.tool_calls = {{"call_w", "get_weather", R"({"city":"Paris","unit":"C"})"},
                      {"call_t", "get_time", R"({"tz":"Asia/Tokyo"})"}};
  fake_.Push(calls);
  FakeReply answer;
  answer.text = "Paris is sunny; it is 9pm in Tokyo.";
  fake_.Push(answer);
  const std::string sid = NewSession({"get_weather", "get_time"});

  TurnOutcome first = RunOrStream(*h_, UserTurn(sid, "weather and time?"), /*stream=*/true);
  ASSERT_TRUE(first.status.ok()) << first.status.error_message();
  ASSERT_EQ(first.result.status(), v1::TURN_STATUS_REQUIRES_ACTION);
  ASSERT_EQ(first.result.required_tool_calls_size(), 2);
  for (int i = 0; i < 2; ++i) {
    const v1::ToolCall& got = first.result.required_tool_calls(i);
    EXPECT_EQ(got.id(), calls.tool_calls[i].id);
    EXPECT_EQ(got.name(), calls.tool_calls[i].name);
    EXPECT_EQ(json::parse(got.arguments_json()), json::parse(calls.tool_calls[i].arguments));
  }
  EXPECT_EQ(GetSession(sid).status(), v1::SESSION_STATUS_REQUIRES_ACTION);

  v1::RunTurnRequest results;  // answered in the other order
  results.set_session_id(sid);
  results.add_tool_results()->set_tool_call_id("call_t");
  results.mutable_tool_results(0)->set_output("21:00");
  results.add_tool_results()->set_tool_call_id("call_w");
  results.mutable_tool_results(1)->set_output("sunny");
  TurnOutcome second = RunOrStream(*h_, results, /*stream=*/true);
  ASSERT_TRUE(second.status.ok()) << second.status.error_message();
  EXPECT_EQ(second.result.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(second.result.output_text(), answer.text);
  EXPECT_EQ(second.DeltaText(), answer.text);

  auto bodies = fake_.request_bodies();
  ASSERT_EQ(bodies.size(), 2u);
  json b1 = json::parse(bodies[1]);
  const json* assistant = FindMessage(b1, "assistant");
  ASSERT_NE(assistant, nullptr) << b1.dump();
  ASSERT_EQ((*assistant)["tool_calls"].size(), 2u) << b1.dump();
  for (size_t i = 0; i < 2; ++i) {
    const json& tc = (*assistant)["tool_calls"][i];
    EXPECT_EQ(tc["id"], calls.tool_calls[i].id);
    EXPECT_EQ(tc["function"]["name"], calls.tool_calls[i].name);
    EXPECT_EQ(json::parse(tc["function"]["arguments"].get<std::string>()),
              json::parse(calls.tool_calls[i].arguments));
  }
  std::map<std::string, std::string> tool_outputs;
  for (const json& m : b1["messages"]) {
    if (m["role"] == "tool")
      tool_outputs[m["tool_call_id"].get<std::string>()] = m["content"].get<std::string>();
  }
  EXPECT_EQ(tool_outputs,
            (std::map<std::string, std::string>{{"call_t", "21:00"}, {"call_w", "sunny"}}));
}

// ------------------------------------------------------------ 3. transient faults, retried

class TransientFaultTest : public FaultMatrixTest,
                           public ::testing::WithParamInterface<std::tuple<FakeMode, bool>> {};

TEST_P(TransientFaultTest, OnceThenOkCompletesOnRetry) {
  const auto [mode, stream] = GetParam();
  Start();
  fake_.Push(Reply(mode));
  const std::string sid = NewSession();
  TurnOutcome out = RunOrStream(*h_, UserTurn(sid, "hi"), stream);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.result.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(out.result.output_text(), kOkText);
  EXPECT_EQ(out.result.usage().model_calls(), 1);
  EXPECT_EQ(fake_.request_count(), 2);
  auto assistant = AssistantMessages(h_->AllEvents(sid));
  ASSERT_EQ(assistant.size(), 1u);
  EXPECT_EQ(assistant[0].message().text(), kOkText);
  // A cut stream's partial deltas are covered by StreamedRetryAfterCutDoesNotDuplicatePartialText.
  if (stream && mode != FakeMode::kCutMidStream) {
    EXPECT_EQ(out.DeltaText(), kOkText);
  }
}

TEST_P(TransientFaultTest, AlwaysFailingIsUnavailableAfterRetriesAndStoresNoAnswer) {
  const auto [mode, stream] = GetParam();
  Start();
  fake_.SetDefault(Reply(mode));
  const std::string sid = NewSession();
  TurnOutcome out = RunOrStream(*h_, UserTurn(sid, "hi"), stream);
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::UNAVAILABLE) << out.status.error_message();
  EXPECT_NE(out.status.error_message().find("\"gpt\""), std::string::npos)
      << out.status.error_message();
  EXPECT_EQ(fake_.request_count(), 1 + kMaxRetries);
  EXPECT_TRUE(AssistantMessages(out.streamed).empty());
  EXPECT_EQ(GetSession(sid).status(), v1::SESSION_STATUS_FAILED);
  ExpectFailedWithoutAnswer(sid);
}

std::string FaultName(const ::testing::TestParamInfo<std::tuple<FakeMode, bool>>& info) {
  static const char* kNames[] = {
      "Ok",           "Status500",     "Status502",   "Status503", "RateLimit",
      "Quota",        "ContextLen",    "Other400",    "Status401", "ResetBeforeHeaders",
      "CutMidStream", "MalformedJson", "EmptyChoices"};
  return std::string(kNames[static_cast<int>(std::get<0>(info.param))]) +
         (std::get<1>(info.param) ? "_Stream" : "_Unary");
}

INSTANTIATE_TEST_SUITE_P(
    Faults, TransientFaultTest,
    ::testing::Combine(::testing::Values(FakeMode::kStatus500, FakeMode::kStatus502,
                                         FakeMode::kStatus503, FakeMode::kResetBeforeHeaders,
                                         FakeMode::kCutMidStream, FakeMode::kMalformedJson,
                                         FakeMode::kEmptyChoices),
                       ::testing::Bool()),
    FaultName);

// A retried stream must not leave the first attempt's partial text in what the client was shown:
// clients print TextDeltas as they come (agentctl: src/cli/turn_commands.cc), so their
// concatenation has to be the turn's text.
// The router signals the retry with TextDelta.reset; a client applying it ends up with exactly
// the stored text.
TEST_F(FaultMatrixTest, StreamedRetryAfterCutResetsThePartialText) {
  Start();
  fake_.Push(Reply(FakeMode::kCutMidStream));
  const std::string sid = NewSession();
  TurnOutcome out = RunOrStream(*h_, UserTurn(sid, "hi"), /*stream=*/true);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.result.output_text(), kOkText);
  EXPECT_EQ(fake_.request_count(), 2);
  EXPECT_EQ(out.DeltaText(), out.result.output_text());
  EXPECT_TRUE(out.saw_reset);
}

// ----------------------------------------------------------------- 4. rate limits and quota

TEST_F(FaultMatrixTest, RateLimitHonoursRetryAfter) {
  Start();
  FakeReply limited = Reply(FakeMode::k429RateLimit);
  limited.retry_after_s = 1;
  fake_.Push(limited);
  const std::string sid = NewSession();
  const absl::Time start = absl::Now();
  TurnOutcome out = RunOrStream(*h_, UserTurn(sid, "hi"), /*stream=*/false);
  const absl::Duration elapsed = absl::Now() - start;
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.result.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(fake_.request_count(), 2);
  EXPECT_GE(elapsed, absl::Milliseconds(950));  // not the 5..50 ms jittered backoff
  EXPECT_LT(elapsed, absl::Seconds(3));
}

TEST_F(FaultMatrixTest, InsufficientQuotaIsNotRetried) {
  Start();
  fake_.SetDefault(Reply(FakeMode::k429InsufficientQuota));
  const std::string sid = NewSession();
  TurnOutcome out = RunOrStream(*h_, UserTurn(sid, "hi"), /*stream=*/false);
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::UNAVAILABLE) << out.status.error_message();
  EXPECT_NE(out.status.error_message().find("quota"), std::string::npos)
      << out.status.error_message();
  EXPECT_EQ(fake_.request_count(), 1);
  ExpectFailedWithoutAnswer(sid);
}

TEST_F(FaultMatrixTest, InsufficientQuotaFallsBackToAnotherProvider) {
  Start([](server::Config* c) { Gpt(c).fallback = {"backup"}; });
  fake_.SetDefault(Reply(FakeMode::k429InsufficientQuota));
  FakeReply ok;
  ok.text = "served by the backup";
  fake2_.SetDefault(ok);
  const std::string sid = NewSession();
  TurnOutcome out = RunOrStream(*h_, UserTurn(sid, "hi"), /*stream=*/false);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.result.output_text(), "served by the backup");
  EXPECT_EQ(fake_.request_count(), 1);
  EXPECT_EQ(fake2_.request_count(), 1);
  EXPECT_EQ(json::parse(fake2_.request_bodies().at(0))["model"], "backup-model");
  auto assistant = AssistantMessages(h_->AllEvents(sid));
  ASSERT_EQ(assistant.size(), 1u);
  EXPECT_EQ(assistant[0].message().model(), "backup (fake2/backup-model)");
  // Priced as the model that served it (backup: 1 $/Mtok in, 3 $/Mtok out).
  EXPECT_NEAR(out.result.usage().cost_usd(), (11 * 1.0 + 7 * 3.0) / 1e6, 1e-12);
}

TEST_F(FaultMatrixTest, InsufficientQuotaFallsBackToEcho) {
  Start([](server::Config* c) { Gpt(c).fallback = {"echo"}; });
  fake_.SetDefault(Reply(FakeMode::k429InsufficientQuota));
  const std::string sid = NewSession();
  TurnOutcome out = RunOrStream(*h_, UserTurn(sid, "echo me back"), /*stream=*/false);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.result.output_text(), "echo me back");
  EXPECT_EQ(fake_.request_count(), 1);
  auto assistant = AssistantMessages(h_->AllEvents(sid));
  ASSERT_EQ(assistant.size(), 1u);
  EXPECT_EQ(assistant[0].message().model(), "echo (echo/echo)");
}

// ------------------------------------------------------------------- 5. context too long

TEST_F(FaultMatrixTest, ContextLengthExceededIsFailedPreconditionWithoutRetry) {
  Start([](server::Config* c) { Gpt(c).fallback = {"backup"}; });
  fake_.SetDefault(Reply(FakeMode::k400ContextLength));
  const std::string sid = NewSession();
  TurnOutcome out = RunOrStream(*h_, UserTurn(sid, "a very long prompt"), /*stream=*/false);
  EXPECT_EQ(out.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << out.status.error_message();
  EXPECT_NE(out.status.error_message().find("maximum context length is 8192 tokens"),
            std::string::npos)
      << out.status.error_message();
  EXPECT_EQ(fake_.request_count(), 1);
  EXPECT_EQ(fake2_.request_count(), 0);  // not a provider fault: no fallback either
  ExpectFailedWithoutAnswer(sid);
}

// ------------------------------------------------------------------------ 7. fallback chain

TEST_F(FaultMatrixTest, FallbackChainServesWhenTheModelIsDown) {
  Start([](server::Config* c) { Gpt(c).fallback = {"backup"}; });
  fake_.SetDefault(Reply(FakeMode::kStatus503));
  FakeReply ok;
  ok.text = "backup to the rescue";
  fake2_.SetDefault(ok);
  const std::string sid = NewSession();
  TurnOutcome out = RunOrStream(*h_, UserTurn(sid, "hi"), /*stream=*/true);
  ASSERT_TRUE(out.status.ok()) << out.status.error_message();
  EXPECT_EQ(out.result.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(out.result.output_text(), "backup to the rescue");
  EXPECT_EQ(out.DeltaText(), "backup to the rescue");
  EXPECT_GE(fake_.request_count(), 1);
  EXPECT_LE(fake_.request_count(), 1 + kMaxRetries);
  EXPECT_EQ(fake2_.request_count(), 1);
  auto assistant = AssistantMessages(h_->AllEvents(sid));
  ASSERT_EQ(assistant.size(), 1u);
  EXPECT_EQ(assistant[0].message().model(), "backup (fake2/backup-model)");
  EXPECT_EQ(out.result.usage().model_calls(), 1);
}

// ------------------------------------------------------------------------ 8. circuit breaker

TEST_F(FaultMatrixTest, OpenBreakerSendsNothingDuringTheCooldown) {
  constexpr int kCooldownMs = 1500;
  Start([](server::Config* c) {
    c->router.breaker_failures = 2;
    c->router.breaker_cooldown_ms = kCooldownMs;
    // Heavily weighted towards the broken deployment, so it is picked first whenever allowed.
    Gpt(c).deployments = {{"fake", "broken", 1000}, {"fake2", "healthy", 1}};
  });
  fake_.SetDefault(Reply(FakeMode::kStatus503));
  const std::string sid = NewSession();
  auto turn = [&] {
    TurnOutcome out = RunOrStream(*h_, UserTurn(sid, "hi"), /*stream=*/false);
    EXPECT_TRUE(out.status.ok()) << out.status.error_message();
    EXPECT_EQ(out.result.status(), v1::TURN_STATUS_COMPLETED);
    auto assistant = AssistantMessages({out.result.events().begin(), out.result.events().end()});
    EXPECT_EQ(assistant.size(), 1u);
    if (!assistant.empty()) {
      EXPECT_EQ(assistant[0].message().model(), "gpt (fake2/healthy)");
    }
  };
  // Two consecutive failures open it (each turn still completes on the healthy deployment).
  for (int i = 0; i < 20 && fake_.request_count() < 2; ++i) turn();
  ASSERT_EQ(fake_.request_count(), 2);
  const absl::Time opened = absl::Now();

  int turns_while_open = 0;
  while (absl::Now() - opened < absl::Milliseconds(kCooldownMs - 500) && turns_while_open < 10) {
    turn();
    ++turns_while_open;
    ASSERT_EQ(fake_.request_count(), 2) << "an open breaker let a call through";
  }
  EXPECT_GE(turns_while_open, 3);

  // After the cooldown one probe goes through; it fails, so the breaker opens again.
  absl::SleepFor(opened + absl::Milliseconds(kCooldownMs + 100) - absl::Now());
  for (int i = 0; i < 5 && fake_.request_count() == 2; ++i) turn();
  EXPECT_EQ(fake_.request_count(), 3);
  for (int i = 0; i < 3; ++i) turn();
  EXPECT_EQ(fake_.request_count(), 3);
}

}  // namespace
}  // namespace agentd
