// Turns end to end through the gRPC API on a real server with a real RocksDB.
#include <gtest/gtest.h>

#include <thread>

#include "absl/synchronization/notification.h"
#include "testing/server_harness.h"

namespace agentd {
namespace {

using testing::Ctx;
using testing::ServerHarness;

using testing::Call;

std::vector<v1::EventType> Types(const std::vector<v1::Event>& events) {
  std::vector<v1::EventType> t;
  for (const auto& e : events) t.push_back(e.type());
  return t;
}

class TurnTest : public ::testing::Test {
 protected:
  ServerHarness h_;
};

TEST_F(TurnTest, EchoTurnAppendsDurableEventsAndUsage) {
  v1::Agent agent = h_.CreateAgent("echo", "You are terse.");
  v1::Session s = h_.CreateSession(agent.agent_id());
  EXPECT_EQ(s.status(), v1::SESSION_STATUS_IDLE);
  EXPECT_EQ(s.agent_version(), 1);

  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(s.session_id(), "hello agentd", &r).ok());
  EXPECT_EQ(r.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(r.output_text(), "hello agentd");
  EXPECT_EQ(r.last_seq(), 4);
  EXPECT_EQ(Types({r.events().begin(), r.events().end()}),
            (std::vector<v1::EventType>{v1::EVENT_TYPE_TURN_STARTED, v1::EVENT_TYPE_MESSAGE,
                                        v1::EVENT_TYPE_MESSAGE, v1::EVENT_TYPE_TURN_COMPLETED}));
  EXPECT_EQ(r.usage().model_calls(), 1);
  EXPECT_GT(r.usage().input_tokens(), 0);

  auto events = h_.AllEvents(s.session_id());
  ASSERT_EQ(events.size(), 4u);
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].seq(), static_cast<int64_t>(i + 1));
    EXPECT_EQ(events[i].turn_id(), r.turn_id());
    EXPECT_EQ(events[i].session_id(), s.session_id());
    EXPECT_GT(events[i].time().seconds(), 0);
  }
  EXPECT_EQ(events[1].message().role(), v1::ROLE_USER);
  EXPECT_EQ(events[2].message().role(), v1::ROLE_ASSISTANT);
  EXPECT_EQ(events[2].message().text(), "hello agentd");

  v1::GetSessionRequest get;
  get.set_session_id(s.session_id());
  v1::Session after;
  ASSERT_TRUE(h_.sessions().GetSession(Ctx().get(), get, &after).ok());
  EXPECT_EQ(after.last_seq(), 4);
  EXPECT_EQ(after.status(), v1::SESSION_STATUS_IDLE);
  EXPECT_EQ(after.usage().model_calls(), 1);
}

TEST_F(TurnTest, ContextCarriesInstructionsAndHistory) {
  v1::Agent agent = h_.CreateAgent("scripted", "Be helpful.");
  v1::Session s = h_.CreateSession(agent.agent_id());
  h_.scripted().Push({.text = "first answer"});
  h_.scripted().Push({.text = "second answer"});
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(s.session_id(), "one", &r).ok());
  ASSERT_TRUE(h_.Send(s.session_id(), "two", &r).ok());
  EXPECT_EQ(r.output_text(), "second answer");
  auto requests = h_.scripted().requests();
  ASSERT_EQ(requests.size(), 2u);
  const auto& msgs = requests[1].messages;
  ASSERT_EQ(msgs.size(), 4u);
  EXPECT_EQ(msgs[0].role, v1::ROLE_SYSTEM);
  EXPECT_EQ(msgs[0].text, "Be helpful.");
  EXPECT_EQ(msgs[1].text, "one");
  EXPECT_EQ(msgs[2].text, "first answer");
  EXPECT_EQ(msgs[2].role, v1::ROLE_ASSISTANT);
  EXPECT_EQ(msgs[3].text, "two");
  EXPECT_EQ(requests[1].model, "scripted-model");
  // Priced at 1 $/Mtok in, 2 $/Mtok out.
  EXPECT_GT(r.usage().cost_usd(), 0);
}

TEST_F(TurnTest, ClientToolRoundTrip) {
  v1::Agent agent = h_.CreateAgent("scripted", "", {"get_weather"});
  v1::Session s = h_.CreateSession(agent.agent_id());
  h_.scripted().Push({.text = "let me check", .tool_calls = {Call("call_1", "get_weather", R"({"city":"Paris"})")}});
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(s.session_id(), "weather in Paris?", &r).ok());
  ASSERT_EQ(r.status(), v1::TURN_STATUS_REQUIRES_ACTION);
  ASSERT_EQ(r.required_tool_calls_size(), 1);
  EXPECT_EQ(r.required_tool_calls(0).id(), "call_1");
  EXPECT_EQ(r.required_tool_calls(0).arguments_json(), R"({"city":"Paris"})");

  v1::GetSessionRequest get;
  get.set_session_id(s.session_id());
  v1::Session waiting;
  ASSERT_TRUE(h_.sessions().GetSession(Ctx().get(), get, &waiting).ok());
  EXPECT_EQ(waiting.status(), v1::SESSION_STATUS_REQUIRES_ACTION);

  // A new message without the tool result is refused, and nothing is appended.
  v1::TurnResult refused;
  grpc::Status st = h_.Send(s.session_id(), "hello?", &refused);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("call_1"), std::string::npos);

  // A result for an unknown call is refused.
  v1::RunTurnRequest wrong;
  wrong.set_session_id(s.session_id());
  wrong.add_tool_results()->set_tool_call_id("call_999");
  EXPECT_EQ(h_.Run(wrong, &refused).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(h_.AllEvents(s.session_id()).size(), static_cast<size_t>(r.last_seq()));

  h_.scripted().Push({.text = "It is sunny in Paris."});
  v1::RunTurnRequest answer;
  answer.set_session_id(s.session_id());
  v1::ToolResult* tr = answer.add_tool_results();
  tr->set_tool_call_id("call_1");
  tr->set_output("sunny, 21C");
  v1::TurnResult done;
  ASSERT_TRUE(h_.Run(answer, &done).ok());
  EXPECT_EQ(done.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(done.output_text(), "It is sunny in Paris.");

  // The model saw: user, assistant with the tool call, the tool result.
  auto req = h_.scripted().requests().back();
  ASSERT_EQ(req.messages.size(), 3u);
  EXPECT_EQ(req.messages[1].tool_calls.size(), 1u);
  EXPECT_EQ(req.messages[2].role, v1::ROLE_TOOL);
  EXPECT_EQ(req.messages[2].tool_call_id, "call_1");
  EXPECT_EQ(req.messages[2].text, "sunny, 21C");
  ASSERT_EQ(req.tools.size(), 1u);
  EXPECT_EQ(req.tools[0].name, "get_weather");

  auto events = h_.AllEvents(s.session_id());
  std::vector<v1::EventType> types = Types(events);
  EXPECT_EQ(std::count(types.begin(), types.end(), v1::EVENT_TYPE_TOOL_CALL), 1);
  EXPECT_EQ(std::count(types.begin(), types.end(), v1::EVENT_TYPE_TOOL_RESULT), 1);
}

TEST_F(TurnTest, ModelCallingUndeclaredToolGetsErrorResultAndContinues) {
  v1::Agent agent = h_.CreateAgent("scripted", "", {"get_weather"});
  v1::Session s = h_.CreateSession(agent.agent_id());
  h_.scripted().Push({.tool_calls = {Call("c1", "rm_rf", "{}")}});
  h_.scripted().Push({.tool_calls = {Call("c2", "get_weather", "not json")}});
  h_.scripted().Push({.text = "sorry"});
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(s.session_id(), "go", &r).ok());
  EXPECT_EQ(r.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(r.output_text(), "sorry");
  EXPECT_EQ(r.usage().model_calls(), 3);
  int errors = 0;
  for (const auto& e : r.events()) {
    if (e.has_tool_result() && e.tool_result().is_error()) ++errors;
  }
  EXPECT_EQ(errors, 2);
}

TEST_F(TurnTest, MaxStepsPerTurnStopsALoopingModel) {
  v1::CreateAgentRequest req;
  req.mutable_agent()->set_model("scripted");
  req.mutable_agent()->set_max_steps_per_turn(2);
  v1::Agent agent;
  ASSERT_TRUE(h_.agents().CreateAgent(Ctx().get(), req, &agent).ok());
  v1::Session s = h_.CreateSession(agent.agent_id());
  for (int i = 0; i < 5; ++i) h_.scripted().Push({.tool_calls = {Call("c" + std::to_string(i), "nope", "{}")}});
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(s.session_id(), "loop", &r).ok());
  EXPECT_EQ(r.status(), v1::TURN_STATUS_FAILED);
  EXPECT_NE(r.error().find("max_steps_per_turn"), std::string::npos);
  EXPECT_EQ(r.usage().model_calls(), 2);
  EXPECT_EQ(r.events(r.events_size() - 1).type(), v1::EVENT_TYPE_TURN_FAILED);
}

TEST_F(TurnTest, IdempotentRetryReturnsFirstResultAndAppendsNothing) {
  v1::Agent agent = h_.CreateAgent("echo");
  v1::Session s = h_.CreateSession(agent.agent_id());
  v1::RunTurnRequest req;
  req.set_session_id(s.session_id());
  req.set_idempotency_key("key-1");
  req.add_input()->set_text("once");
  v1::TurnResult first, again;
  ASSERT_TRUE(h_.Run(req, &first).ok());
  ASSERT_TRUE(h_.Run(req, &again).ok());
  EXPECT_EQ(first.SerializeAsString(), again.SerializeAsString());
  EXPECT_EQ(h_.AllEvents(s.session_id()).size(), 4u);

  req.mutable_input(0)->set_text("different body");
  grpc::Status st = h_.Run(req, &again);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(h_.AllEvents(s.session_id()).size(), 4u);

  // Survives a restart.
  h_.Restart();
  req.mutable_input(0)->set_text("once");
  v1::TurnResult after_restart;
  ASSERT_TRUE(h_.Run(req, &after_restart).ok());
  EXPECT_EQ(first.SerializeAsString(), after_restart.SerializeAsString());
}

TEST_F(TurnTest, IdempotencyKeyWhileRunningIsAborted) {
  v1::Agent agent = h_.CreateAgent("scripted");
  v1::Session s = h_.CreateSession(agent.agent_id());
  h_.scripted().Push({.text = "slow", .delay = absl::Milliseconds(500)});
  v1::RunTurnRequest req;
  req.set_session_id(s.session_id());
  req.set_idempotency_key("k");
  req.add_input()->set_text("x");
  v1::TurnResult first;
  grpc::Status first_status;
  std::thread t([&] { first_status = h_.Run(req, &first); });
  // Wait until the first turn is durably running.
  for (int i = 0; i < 500 && h_.scripted().requests().empty(); ++i) absl::SleepFor(absl::Milliseconds(2));
  v1::TurnResult second;
  EXPECT_EQ(h_.Run(req, &second).error_code(), grpc::StatusCode::ABORTED);
  t.join();
  ASSERT_TRUE(first_status.ok());
  EXPECT_EQ(first.output_text(), "slow");
}

// A caller that gave up (deadline, cancel) never saw a result: its turn is not remembered
// under the idempotency key, so the retry that follows a timeout runs the turn.
TEST_F(TurnTest, RetryAfterTheCallerGaveUpRunsTheTurnAgain) {
  v1::Agent agent = h_.CreateAgent("scripted");
  v1::Session s = h_.CreateSession(agent.agent_id());
  h_.scripted().Push({.text = "too late", .delay = absl::Seconds(5)});
  v1::RunTurnRequest req;
  req.set_session_id(s.session_id());
  req.set_idempotency_key("retry-me");
  req.add_input()->set_text("hello");
  v1::TurnResult r;
  EXPECT_EQ(h_.sessions().RunTurn(Ctx(0.3).get(), req, &r).error_code(),
            grpc::StatusCode::DEADLINE_EXCEEDED);
  for (int i = 0; i < 300; ++i) {
    auto events = h_.AllEvents(s.session_id());
    if (!events.empty() && events.back().type() == v1::EVENT_TYPE_TURN_FAILED) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(h_.AllEvents(s.session_id()).back().type(), v1::EVENT_TYPE_TURN_FAILED);

  h_.scripted().Push({.text = "in time"});
  v1::TurnResult retried;
  ASSERT_TRUE(h_.Run(req, &retried).ok());
  EXPECT_EQ(retried.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(retried.output_text(), "in time");
  // Now it is remembered: a second retry returns it and appends nothing.
  const size_t events = h_.AllEvents(s.session_id()).size();
  v1::TurnResult again;
  ASSERT_TRUE(h_.Run(req, &again).ok());
  EXPECT_EQ(again.SerializeAsString(), retried.SerializeAsString());
  EXPECT_EQ(h_.AllEvents(s.session_id()).size(), events);
}

TEST_F(TurnTest, ExpectedLastSeqMismatchIsAborted) {
  v1::Agent agent = h_.CreateAgent("echo");
  v1::Session s = h_.CreateSession(agent.agent_id());
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(s.session_id(), "a", &r).ok());
  v1::RunTurnRequest req;
  req.set_session_id(s.session_id());
  req.add_input()->set_text("b");
  req.set_expected_last_seq(3);
  EXPECT_EQ(h_.Run(req, &r).error_code(), grpc::StatusCode::ABORTED);
  req.set_expected_last_seq(4);
  EXPECT_TRUE(h_.Run(req, &r).ok());
  EXPECT_EQ(r.last_seq(), 8);
}

TEST_F(TurnTest, BusySessionRejectsOrEnqueues) {
  v1::Agent agent = h_.CreateAgent("scripted");
  v1::Session s = h_.CreateSession(agent.agent_id());
  h_.scripted().Push({.text = "slow", .delay = absl::Milliseconds(400)});
  v1::TurnResult first;
  grpc::Status first_status;
  std::thread t([&] { first_status = h_.Send(s.session_id(), "first", &first); });
  for (int i = 0; i < 500 && h_.scripted().requests().empty(); ++i) absl::SleepFor(absl::Milliseconds(2));

  v1::TurnResult rejected;
  grpc::Status st = h_.Send(s.session_id(), "second", &rejected);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  v1::RunTurnRequest queued;
  queued.set_session_id(s.session_id());
  queued.set_on_busy(v1::BUSY_POLICY_ENQUEUE);
  queued.add_input()->set_text("third");
  v1::TurnResult third;
  ASSERT_TRUE(h_.Run(queued, &third).ok());
  t.join();
  ASSERT_TRUE(first_status.ok());
  EXPECT_EQ(third.output_text(), "third");
  EXPECT_EQ(third.events(0).seq(), first.last_seq() + 1);  // ran after the first, in order
  auto events = h_.AllEvents(s.session_id());
  EXPECT_EQ(events.size(), 8u);
}

TEST_F(TurnTest, ModelFailureIsRecordedAndLeavesNoTraceInLaterContext) {
  v1::Agent agent = h_.CreateAgent("scripted");
  v1::Session s = h_.CreateSession(agent.agent_id());
  // The router retries UNAVAILABLE twice (max_retries 2): three failures exhaust it.
  for (int i = 0; i < 3; ++i) h_.scripted().Push({.error = absl::UnavailableError("backend down")});
  v1::TurnResult r;
  v1::RunTurnRequest lost;
  lost.set_session_id(s.session_id());
  lost.add_input()->set_text("lost?");
  auto ctx = Ctx();
  grpc::Status st = h_.sessions().RunTurn(ctx.get(), lost, &r);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  // The failure is the recorded turn's: its id is in the trailing metadata (SDKs don't retry).
  auto trailing = ctx->GetServerTrailingMetadata();
  ASSERT_EQ(trailing.count("x-agentd-turn-id"), 1u);
  EXPECT_EQ(h_.scripted().requests().size(), 3u);
  auto events = h_.AllEvents(s.session_id());
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type(), v1::EVENT_TYPE_TURN_FAILED);
  EXPECT_NE(events.back().turn().error().find("backend down"), std::string::npos);
  const grpc::string_ref named = trailing.find("x-agentd-turn-id")->second;
  EXPECT_EQ(std::string(named.data(), named.size()), events.back().turn_id());

  v1::GetSessionRequest get;
  get.set_session_id(s.session_id());
  v1::Session failed;
  ASSERT_TRUE(h_.sessions().GetSession(Ctx().get(), get, &failed).ok());
  EXPECT_EQ(failed.status(), v1::SESSION_STATUS_FAILED);

  h_.scripted().Push({.text = "ok now"});
  ASSERT_TRUE(h_.Send(s.session_id(), "again", &r).ok());
  auto req = h_.scripted().requests().back();
  ASSERT_EQ(req.messages.size(), 1u);  // the failed turn's input is not in the context
  EXPECT_EQ(req.messages[0].text, "again");
}

TEST_F(TurnTest, FailedToolResultTurnRestoresPendingCalls) {
  v1::Agent agent = h_.CreateAgent("scripted", "", {"t"});
  v1::Session s = h_.CreateSession(agent.agent_id());
  h_.scripted().Push({.tool_calls = {Call("c1", "t", "{}")}});
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(s.session_id(), "go", &r).ok());
  for (int i = 0; i < 3; ++i) h_.scripted().Push({.error = absl::UnavailableError("down")});
  v1::RunTurnRequest answer;
  answer.set_session_id(s.session_id());
  answer.add_tool_results()->set_tool_call_id("c1");
  EXPECT_EQ(h_.Run(answer, &r).error_code(), grpc::StatusCode::UNAVAILABLE);
  v1::GetSessionRequest get;
  get.set_session_id(s.session_id());
  v1::Session again;
  ASSERT_TRUE(h_.sessions().GetSession(Ctx().get(), get, &again).ok());
  EXPECT_EQ(again.status(), v1::SESSION_STATUS_REQUIRES_ACTION);
  ASSERT_EQ(again.pending_tool_calls_size(), 1);
  h_.scripted().Push({.text = "done"});
  ASSERT_TRUE(h_.Run(answer, &r).ok());
  EXPECT_EQ(r.status(), v1::TURN_STATUS_COMPLETED);
}

TEST_F(TurnTest, TransientModelFailureIsRetriedWithinTheTurn) {
  v1::Agent agent = h_.CreateAgent("scripted");
  v1::Session s = h_.CreateSession(agent.agent_id());
  h_.scripted().Push({.error = absl::UnavailableError("blip")});
  h_.scripted().Push({.text = "recovered"});
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(s.session_id(), "hi", &r).ok());
  EXPECT_EQ(r.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(r.output_text(), "recovered");
  EXPECT_EQ(h_.scripted().requests().size(), 2u);
  EXPECT_EQ(r.usage().model_calls(), 1);
  // The assistant message names the model and the deployment that served it.
  EXPECT_EQ(r.events(2).message().model(), "scripted (scripted/scripted-model)");
}

TEST_F(TurnTest, DeadlineExceededFailsTheTurn) {
  v1::Agent agent = h_.CreateAgent("scripted");
  v1::Session s = h_.CreateSession(agent.agent_id());
  h_.scripted().Push({.text = "too late", .delay = absl::Seconds(5)});
  v1::RunTurnRequest req;
  req.set_session_id(s.session_id());
  req.add_input()->set_text("hurry");
  v1::TurnResult r;
  const absl::Time start = absl::Now();
  grpc::Status st = h_.sessions().RunTurn(Ctx(0.3).get(), req, &r);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  // The turn is recorded as failed and the session is usable again.
  for (int i = 0; i < 200; ++i) {
    auto events = h_.AllEvents(s.session_id());
    if (!events.empty() && events.back().type() == v1::EVENT_TYPE_TURN_FAILED) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  EXPECT_EQ(h_.AllEvents(s.session_id()).back().type(), v1::EVENT_TYPE_TURN_FAILED);
  ASSERT_TRUE(h_.Send(s.session_id(), "again", &r).ok());
}

TEST_F(TurnTest, CancelTurnStopsARunningTurn) {
  v1::Agent agent = h_.CreateAgent("scripted");
  v1::Session s = h_.CreateSession(agent.agent_id());
  h_.scripted().Push({.text = "never", .delay = absl::Seconds(30)});
  v1::TurnResult r;
  grpc::Status run_status;
  std::thread t([&] { run_status = h_.sessions().RunTurn(Ctx(60).get(), [&] {
    v1::RunTurnRequest req;
    req.set_session_id(s.session_id());
    req.add_input()->set_text("long");
    return req;
  }(), &r); });
  for (int i = 0; i < 500 && h_.scripted().requests().empty(); ++i) absl::SleepFor(absl::Milliseconds(2));
  // While the model is thinking (nothing of the turn committed yet) the session reads RUNNING.
  v1::GetSessionRequest get;
  get.set_session_id(s.session_id());
  v1::Session running;
  ASSERT_TRUE(h_.sessions().GetSession(Ctx().get(), get, &running).ok());
  EXPECT_EQ(running.status(), v1::SESSION_STATUS_RUNNING);
  v1::CancelTurnRequest cancel;
  cancel.set_session_id(s.session_id());
  v1::TurnResult cancelled;
  const absl::Time start = absl::Now();
  ASSERT_TRUE(h_.sessions().CancelTurn(Ctx().get(), cancel, &cancelled).ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(cancelled.status(), v1::TURN_STATUS_CANCELLED);
  t.join();
  ASSERT_TRUE(run_status.ok());
  EXPECT_EQ(r.status(), v1::TURN_STATUS_CANCELLED);
  EXPECT_EQ(r.turn_id(), cancelled.turn_id());
  EXPECT_EQ(h_.AllEvents(s.session_id()).back().type(), v1::EVENT_TYPE_TURN_FAILED);
  ASSERT_TRUE(h_.sessions().GetSession(Ctx().get(), get, &running).ok());
  EXPECT_NE(running.status(), v1::SESSION_STATUS_RUNNING);

  // Nothing running now.
  EXPECT_EQ(h_.sessions().CancelTurn(Ctx().get(), cancel, &cancelled).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

// A client that will never send its tool results can cancel them: each pending call gets an
// error result (the log stays valid for the model), the session is IDLE and takes new input.
TEST_F(TurnTest, CancelTurnClosesPendingToolCalls) {
  v1::Agent agent = h_.CreateAgent("scripted", "", {"get_weather"});
  v1::Session s = h_.CreateSession(agent.agent_id());
  h_.scripted().Push({.text = "checking",
                      .tool_calls = {Call("call_1", "get_weather", R"({"city":"Paris"})"),
                                     Call("call_2", "get_weather", R"({"city":"Oslo"})")}});
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(s.session_id(), "weather?", &r).ok());
  ASSERT_EQ(r.status(), v1::TURN_STATUS_REQUIRES_ACTION);

  v1::CancelTurnRequest cancel;
  cancel.set_session_id(s.session_id());
  v1::TurnResult cancelled;
  ASSERT_TRUE(h_.sessions().CancelTurn(Ctx().get(), cancel, &cancelled).ok());
  EXPECT_EQ(cancelled.status(), v1::TURN_STATUS_CANCELLED);
  EXPECT_NE(cancelled.turn_id(), r.turn_id());
  EXPECT_EQ(Types({cancelled.events().begin(), cancelled.events().end()}),
            (std::vector<v1::EventType>{v1::EVENT_TYPE_TURN_STARTED, v1::EVENT_TYPE_TOOL_RESULT,
                                        v1::EVENT_TYPE_TOOL_RESULT,
                                        v1::EVENT_TYPE_TURN_COMPLETED}));
  EXPECT_EQ(cancelled.events(1).tool_result().tool_call_id(), "call_1");
  EXPECT_EQ(cancelled.events(2).tool_result().tool_call_id(), "call_2");
  EXPECT_TRUE(cancelled.events(1).tool_result().is_error());
  EXPECT_EQ(cancelled.events(3).turn().status(), v1::TURN_STATUS_CANCELLED);
  EXPECT_EQ(cancelled.last_seq(), r.last_seq() + 4);
  // Stored as returned.
  auto events = h_.AllEvents(s.session_id());
  ASSERT_EQ(events.size(), static_cast<size_t>(cancelled.last_seq()));
  EXPECT_EQ(events.back().SerializeAsString(), cancelled.events(3).SerializeAsString());

  v1::GetSessionRequest get;
  get.set_session_id(s.session_id());
  v1::Session now;
  ASSERT_TRUE(h_.sessions().GetSession(Ctx().get(), get, &now).ok());
  EXPECT_EQ(now.status(), v1::SESSION_STATUS_IDLE);
  EXPECT_EQ(now.pending_tool_calls_size(), 0);
  EXPECT_EQ(now.last_seq(), cancelled.last_seq());

  // Nothing pending any more; new input runs, and the model sees every call answered.
  v1::TurnResult again;
  EXPECT_EQ(h_.sessions().CancelTurn(Ctx().get(), cancel, &again).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  h_.scripted().Push({.text = "ok, something else"});
  ASSERT_TRUE(h_.Send(s.session_id(), "never mind", &again).ok());
  EXPECT_EQ(again.status(), v1::TURN_STATUS_COMPLETED);
  auto req = h_.scripted().requests().back();
  ASSERT_EQ(req.messages.size(), 5u);  // user, assistant + 2 calls, 2 tool results, user
  EXPECT_EQ(req.messages[1].tool_calls.size(), 2u);
  EXPECT_EQ(req.messages[2].tool_call_id, "call_1");
  EXPECT_NE(req.messages[2].text.find("cancelled"), std::string::npos);
  EXPECT_EQ(req.messages[3].tool_call_id, "call_2");
  EXPECT_EQ(req.messages[4].text, "never mind");
}

}  // namespace
}  // namespace agentd
