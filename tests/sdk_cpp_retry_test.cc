// The C++ SDK's retries and metadata, seen through a recording client interceptor: which calls
// are retried, that a retried turn keeps its idempotency key (so the server runs it once), and
// that every call carries `authorization` and every session-scoped call `x-agentd-session`.
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "sdk_cpp_test_util.h"

namespace agentd::sdktest {
namespace {

TEST_F(SdkTest, RetriedTurnKeepsItsKeyAndRunsOnce) {
  auto client = RecordingClient();
  Session session = NewSession(*client);
  recorder_->Clear();
  // The server runs the turn; the client is told UNAVAILABLE twice, as if the answers were lost.
  recorder_->FailNext("/RunTurn", 2, grpc::StatusCode::UNAVAILABLE);
  auto result = session.Run("hello");
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status, v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(result->output_text, "hello");
  auto calls = recorder_->Calls("/RunTurn");
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_FALSE(calls[0].idempotency_key.empty());
  EXPECT_EQ(calls[1].idempotency_key, calls[0].idempotency_key);
  EXPECT_EQ(calls[2].idempotency_key, calls[0].idempotency_key);
  EXPECT_EQ(TurnsStarted(session.id()), 1);
  // The answer is the first (only) run's.
  EXPECT_EQ(result->last_seq, session.Get()->last_seq());
}

TEST_F(SdkTest, RetriedToolRoundsKeepTheirOwnKeys) {
  auto client = RecordingClient();
  ToolRegistry tools;
  tools.Add("get_weather", [this](const std::string&) -> absl::StatusOr<std::string> {
    // Runs between the two requests: the tool-results turn's first answer is lost too.
    recorder_->FailNext("/RunTurn", 1, grpc::StatusCode::UNAVAILABLE);
    return std::string("sunny in Rome");
  });
  Session session = NewSession(*client, tools);
  recorder_->Clear();
  recorder_->FailNext("/RunTurn", 1, grpc::StatusCode::UNAVAILABLE);
  RunOptions options;
  options.idempotency_key = "weather-run-1";
  auto result = session.Run(R"(/tool get_weather {"city":"Rome"})", tools, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->output_text, "sunny in Rome");
  EXPECT_EQ(result->turns, 2);
  std::vector<std::string> keys;
  for (const RecordedCall& c : recorder_->Calls("/RunTurn")) keys.push_back(c.idempotency_key);
  EXPECT_EQ(keys, (std::vector<std::string>{"weather-run-1", "weather-run-1", "weather-run-1.r1",
                                            "weather-run-1.r1"}));
  EXPECT_EQ(TurnsStarted(session.id()), 2);
}

TEST_F(SdkTest, RetriedStreamKeepsItsKeyAndResetsTheText) {
  auto client = RecordingClient();
  Session session = NewSession(*client);
  recorder_->Clear();
  recorder_->FailNext("/StreamTurn", 1, grpc::StatusCode::UNAVAILABLE);
  std::vector<v1::TurnEvent> seen;
  auto result = session.Stream("streamed", {}, [&](const v1::TurnEvent& e) { seen.push_back(e); });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->output_text, "streamed");
  EXPECT_EQ(result->turns, 1);
  auto calls = recorder_->Calls("/StreamTurn");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0].idempotency_key, calls[1].idempotency_key);
  EXPECT_EQ(TurnsStarted(session.id()), 1);
  // The first attempt's text was streamed, then withdrawn by a reset before the retry's answer.
  std::string text;
  bool reset = false;
  for (const v1::TurnEvent& e : seen) {
    if (!e.has_delta()) continue;
    if (e.delta().reset()) {
      reset = true;
      text.clear();
    }
    text += e.delta().text();
  }
  EXPECT_TRUE(reset);
  EXPECT_TRUE(text.empty() || text == "streamed") << text;
  ASSERT_TRUE(seen.back().has_result());
  EXPECT_EQ(seen.back().result().output_text(), "streamed");
}

TEST_F(SdkTest, RetriesStopAfterMaxAttempts) {
  ClientOptions o = Options();
  o.max_attempts = 3;
  auto client = RecordingClient(o);
  Session session = NewSession(*client);
  recorder_->Clear();
  recorder_->FailNext("/RunTurn", 100, grpc::StatusCode::UNAVAILABLE);
  auto result = session.Run("lost");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(recorder_->Calls("/RunTurn").size(), 3u);
  EXPECT_EQ(TurnsStarted(session.id()), 1);  // three attempts, one run
}

// The server ran the turn and recorded it as failed (every deployment down after its own
// retries): its UNAVAILABLE names the turn (x-agentd-turn-id) and is final for the SDK.
TEST_F(SdkTest, ATurnTheServerRecordedAsFailedIsNotRetried) {
  auto client = RecordingClient();
  Session session = NewSession(*client, {}, "scripted");
  recorder_->Clear();
  // The router makes 3 attempts per turn (max_retries 2); 6 failures would cover a retry.
  for (int i = 0; i < 6; ++i) {
    harness_.scripted().Push({.error = absl::UnavailableError("backend down")});
  }
  auto result = session.Run("anyone?");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable) << result.status();
  EXPECT_EQ(recorder_->Calls("/RunTurn").size(), 1u);
  EXPECT_EQ(TurnsStarted(session.id()), 1);

  auto stream = session.StartStream("still nobody?");
  v1::TurnEvent event;
  while (stream->Next(&event)) {
  }
  EXPECT_EQ(stream->Finish().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(recorder_->Calls("/StreamTurn").size(), 1u);
  EXPECT_EQ(TurnsStarted(session.id()), 2);
}

TEST_F(SdkTest, NonRetryableFailuresAreNotRetried) {
  auto client = RecordingClient();
  Session session = NewSession(*client);
  recorder_->Clear();

  // Codes other than UNAVAILABLE: never retried, whatever the call.
  recorder_->FailNext("/GetSession", 1, grpc::StatusCode::INTERNAL);
  EXPECT_EQ(session.Get().status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(recorder_->Calls("/GetSession").size(), 1u);
  recorder_->FailNext("/RunTurn", 1, grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(session.Run("x").status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(recorder_->Calls("/RunTurn").size(), 1u);
  EXPECT_EQ(session.Get().status().code(), absl::StatusCode::kOk);  // fault used up

  // UNAVAILABLE on calls that could apply twice: not retried.
  recorder_->FailNext("/PutState", 1, grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(session.PutState("k", "1").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(recorder_->Calls("/PutState").size(), 1u);
  EXPECT_EQ(session.GetState("k")->version(), 1);  // it had been applied once
  recorder_->FailNext("/CreateSession", 1, grpc::StatusCode::UNAVAILABLE);
  auto agent = client->ListAgents();
  ASSERT_TRUE(agent.ok() && !agent->empty());
  EXPECT_EQ(client->CreateSession((*agent)[0].agent_id()).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(recorder_->Calls("/CreateSession").size(), 1u);
  recorder_->FailNext("/CreateAgent", 1, grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(client->CreateAgent("x", "echo", "").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(recorder_->Calls("/CreateAgent").size(), 1u);

  // Reads are retried.
  recorder_->FailNext("/ListEvents", 2, grpc::StatusCode::UNAVAILABLE);
  EXPECT_TRUE(session.Events().ok());
  EXPECT_EQ(recorder_->Calls("/ListEvents").size(), 3u);
}

TEST_F(SdkTest, CompareAndSetRetryReportsItsOwnWrite) {
  auto client = RecordingClient();
  Session session = NewSession(*client);
  ASSERT_TRUE(session.PutState("counter", "1").ok());
  recorder_->Clear();
  // Applied by the server, reported lost: the retry finds version 2 holding our value.
  recorder_->FailNext("/PutState", 1, grpc::StatusCode::UNAVAILABLE);
  auto put = session.PutState("counter", "2", 1);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->version(), 2);
  EXPECT_EQ(put->value_json(), "2");
  EXPECT_EQ(recorder_->Calls("/PutState").size(), 2u);
  EXPECT_EQ(session.GetState("counter")->version(), 2);  // written once
}

TEST_F(SdkTest, UnreachableServerIsUnavailableAfterRetries) {
  RefusingPort port;
  ClientOptions o = Options();
  o.address = port.address();
  o.max_attempts = 3;
  auto client = RecordingClient(o);
  const absl::Time start = absl::Now();
  auto agents = client->ListAgents();
  EXPECT_EQ(agents.status().code(), absl::StatusCode::kUnavailable) << agents.status();
  EXPECT_EQ(recorder_->Calls("/ListAgents").size(), 3u);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST_F(SdkTest, EverySessionCallCarriesTheSessionHeader) {
  auto client = RecordingClient();
  ToolRegistry tools = WeatherTools();
  Session session = NewSession(*client, tools);
  const std::string bearer = "Bearer " + harness_.admin_key();
  const std::set<std::string> scoped = {
      "GetSession", "DeleteSession", "ForkSession", "RunTurn",  "StreamTurn", "CancelTurn",
      "ListEvents", "WatchEvents",   "GetState",    "PutState", "ListState",  "ReplaySession"};
  std::set<std::string> seen_methods;
  // Every call carries the key; session-scoped ones carry `session_id`, the others nothing.
  auto check = [&](const std::string& session_id) {
    for (const RecordedCall& c : recorder_->Calls()) {
      EXPECT_EQ(c.Header("authorization"), bearer) << c.method;
      const std::string name = c.method.substr(c.method.rfind('/') + 1);
      if (scoped.count(name) || name == "CreateSession") {
        seen_methods.insert(name);
        EXPECT_EQ(c.metadata.count("x-agentd-session"), 1u) << c.method;
        EXPECT_EQ(c.Header("x-agentd-session"), session_id) << c.method;
      } else {
        EXPECT_EQ(c.metadata.count("x-agentd-session"), 0u) << c.method;
      }
    }
    recorder_->Clear();
  };
  recorder_->Clear();
  ASSERT_TRUE(session.Run(R"(/tool get_weather {"city":"Paris"})", tools).ok());
  ASSERT_TRUE(session.Stream("streamed", tools, nullptr).ok());
  ASSERT_TRUE(session.Get().ok());
  ASSERT_TRUE(session.Events().ok());
  ASSERT_TRUE(session.Watch(0, [](const v1::Event&) { return false; }).ok());
  ASSERT_TRUE(session.PutState("k", "1").ok());
  ASSERT_TRUE(session.PutState("k", "2", 1).ok());
  ASSERT_TRUE(session.GetState("k").ok());
  ASSERT_TRUE(session.ListState().ok());
  EXPECT_FALSE(session.Cancel().ok());  // nothing running; the call is still made
  auto replay = session.Replay("echo");
  ASSERT_TRUE(replay.ok()) << replay.status();
  auto fork = session.Fork();
  ASSERT_TRUE(fork.ok());
  ASSERT_TRUE(client->GetAgent(session.Get()->agent_id()).ok());  // not session-scoped
  check(session.id());

  ASSERT_TRUE(fork->Run("on the fork").ok());
  ASSERT_TRUE(fork->Delete().ok());
  check(fork->id());

  // A client-chosen id routes the create; a server-chosen one has no id to send yet.
  auto agent_id = session.Get()->agent_id();
  recorder_->Clear();
  SessionOptions named;
  named.session_id = "chosen-id";
  ASSERT_TRUE(client->CreateSession(agent_id, named).ok());
  check("chosen-id");
  ASSERT_TRUE(client->CreateSession(agent_id).ok());
  auto unnamed = recorder_->Calls("/CreateSession");
  ASSERT_EQ(unnamed.size(), 1u);
  EXPECT_EQ(unnamed[0].metadata.count("x-agentd-session"), 0u);

  std::set<std::string> expected = scoped;
  expected.insert("CreateSession");
  EXPECT_EQ(seen_methods, expected);
}

}  // namespace
}  // namespace agentd::sdktest
