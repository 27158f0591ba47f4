// Tool state, forks, replay and retention through the gRPC API of an in-process server (and
// SessionManager::SweepExpired over a real store); export/import: session_transfer_test.cc.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "agentd/v1/project.grpc.pb.h"
#include "common/time_util.h"
#include "runtime/session_manager.h"
#include "runtime/session_transfer.h"
#include "store/rocksdb_store.h"
#include "session_state_fixture.h"
#include "testing/server_harness.h"
#include "testing/temp_dir.h"

namespace agentd {
namespace {

using session_state_test::ContextText;
using session_state_test::SessionStateTest;
using testing::Call;
using testing::Ctx;
using testing::ServerHarness;

// ---- Tool state ------------------------------------------------------------------------------

TEST_F(SessionStateTest, PutGetListStateWithVersions) {
  const std::string sid = h_.CreateSession(h_.CreateAgent("echo").agent_id()).session_id();
  v1::StateEntry e;
  ASSERT_TRUE(PutState(sid, "cart", R"({"items":[1,2]})", 0, &e).ok());
  EXPECT_EQ(e.version(), 1);
  ASSERT_TRUE(PutState(sid, "cart", R"({"items":[1,2,3]})", 1, &e).ok());
  EXPECT_EQ(e.version(), 2);
  EXPECT_EQ(PutState(sid, "cart", "{}", 1, &e).error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(PutState(sid, "cart", "{not json", 0, &e).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(PutState(sid, "", "1", 0, &e).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(PutState(sid, "bad\nkey", "1", 0, &e).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(PutState(sid, "big", std::string((1 << 20) + 1, '1'), 0, &e).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(PutState("nope", "k", "1", 0, &e).error_code(), grpc::StatusCode::NOT_FOUND);
  // Nesting is capped (printing a deeper value for state_get would overflow a thread's stack).
  auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  const grpc::Status deep = PutState(sid, "deep", nested(129), 0, &e);
  EXPECT_EQ(deep.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(deep.error_message().find("deeper than 128"), std::string::npos) << deep.error_message();
  EXPECT_EQ(PutState(sid, "deep", nested(100000), 0, &e).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(PutState(sid, "deep", nested(128), 0, &e).ok());
  ASSERT_TRUE(PutState(sid, "a", "\"first\"", 0, &e).ok());

  v1::GetStateRequest get;
  get.set_session_id(sid);
  get.set_key("cart");
  ASSERT_TRUE(h_.sessions().GetState(Ctx().get(), get, &e).ok());
  EXPECT_EQ(e.value_json(), R"({"items":[1,2,3]})");
  EXPECT_EQ(e.version(), 2);
  get.set_key("missing");
  EXPECT_EQ(h_.sessions().GetState(Ctx().get(), get, &e).error_code(), grpc::StatusCode::NOT_FOUND);

  v1::ListStateRequest list;
  list.set_session_id(sid);
  v1::ListStateResponse all;
  ASSERT_TRUE(h_.sessions().ListState(Ctx().get(), list, &all).ok());
  ASSERT_EQ(all.entries_size(), 3);
  EXPECT_EQ(all.entries(0).key(), "a");
  EXPECT_EQ(all.entries(1).key(), "cart");
  EXPECT_EQ(all.entries(2).key(), "deep");
}

// ---- Forks -----------------------------------------------------------------------------------

TEST_F(SessionStateTest, ForkedSessionContinuesFromTheParentsHistory) {
  v1::Agent agent = h_.CreateAgent("scripted", "Be helpful.");
  v1::CreateSessionRequest create;
  create.set_agent_id(agent.agent_id());
  (*create.mutable_metadata())["team"] = "blue";
  v1::Session parent;
  ASSERT_TRUE(h_.sessions().CreateSession(Ctx().get(), create, &parent).ok());
  h_.scripted().Push({.text = "first answer"});
  h_.scripted().Push({.text = "second answer"});
  v1::TurnResult r1, r2;
  ASSERT_TRUE(h_.Send(parent.session_id(), "one", &r1).ok());
  ASSERT_TRUE(h_.Send(parent.session_id(), "two", &r2).ok());
  v1::StateEntry e;
  ASSERT_TRUE(PutState(parent.session_id(), "k", "42", 0, &e).ok());

  v1::Session child;
  ASSERT_TRUE(Fork(parent.session_id(), r1.last_seq(), &child, "child-1").ok());
  EXPECT_EQ(child.session_id(), "child-1");
  EXPECT_EQ(child.parent_session_id(), parent.session_id());
  EXPECT_EQ(child.fork_seq(), r1.last_seq());
  EXPECT_EQ(child.last_seq(), r1.last_seq());
  EXPECT_EQ(child.status(), v1::SESSION_STATUS_IDLE);
  EXPECT_EQ(child.agent_version(), parent.agent_version());
  EXPECT_EQ(child.metadata().at("team"), "blue");

  // A turn on the child sees the parent's first turn, not its second.
  h_.scripted().Push({.text = "child answer"});
  v1::TurnResult rc;
  ASSERT_TRUE(h_.Send("child-1", "three", &rc).ok());
  const std::string context = ContextText(h_.scripted().requests().back());
  EXPECT_NE(context.find("one|first answer|"), std::string::npos) << context;
  EXPECT_EQ(context.find("two"), std::string::npos) << context;
  EXPECT_NE(context.find("three"), std::string::npos) << context;
  EXPECT_EQ(rc.events(0).seq(), r1.last_seq() + 1);

  std::vector<v1::Event> events = h_.AllEvents("child-1");
  ASSERT_EQ(events.size(), static_cast<size_t>(rc.last_seq()));
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].seq(), static_cast<int64_t>(i + 1));
    EXPECT_EQ(events[i].session_id(), "child-1");
  }
  EXPECT_EQ(h_.AllEvents(parent.session_id()).size(), static_cast<size_t>(r2.last_seq()));

  // State was copied; at_seq 0 forks at the latest seq; errors.
  v1::GetStateRequest get;
  get.set_session_id("child-1");
  get.set_key("k");
  ASSERT_TRUE(h_.sessions().GetState(Ctx().get(), get, &e).ok());
  EXPECT_EQ(e.value_json(), "42");
  v1::Session latest;
  ASSERT_TRUE(Fork(parent.session_id(), 0, &latest).ok());
  EXPECT_EQ(latest.fork_seq(), r2.last_seq());
  EXPECT_EQ(Fork(parent.session_id(), r2.last_seq() + 1, &latest).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Fork(parent.session_id(), -1, &latest).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Fork("missing", 0, &latest).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Fork(parent.session_id(), 1, &latest, "child-1").error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Fork(parent.session_id(), 1, &latest, "bad id!").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // The parent cannot go while forks read it.
  v1::DeleteSessionRequest del;
  del.set_session_id(parent.session_id());
  google::protobuf::Empty empty;
  grpc::Status st = h_.sessions().DeleteSession(Ctx().get(), del, &empty);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("2 fork"), std::string::npos) << st.error_message();
}

TEST_F(SessionStateTest, ForkKeepsPendingToolCallsAndForksARunningSession) {
  v1::Agent agent = h_.CreateAgent("scripted", "", {"lookup"});
  const std::string sid = h_.CreateSession(agent.agent_id()).session_id();
  h_.scripted().Push({.text = "", .tool_calls = {Call("c1", "lookup", R"({"q":"x"})")}});
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(sid, "look it up", &r).ok());
  ASSERT_EQ(r.status(), v1::TURN_STATUS_REQUIRES_ACTION);

  // Forked at the end of the REQUIRES_ACTION turn (not its latest seq), the fork owes the call.
  h_.scripted().Push({.text = "later"});
  v1::TurnResult answer;
  v1::RunTurnRequest req;
  req.set_session_id(sid);
  v1::ToolResult* tr = req.add_tool_results();
  tr->set_tool_call_id("c1");
  tr->set_output("found");
  ASSERT_TRUE(h_.Run(req, &answer).ok());
  v1::Session fork;
  ASSERT_TRUE(Fork(sid, r.last_seq(), &fork).ok());
  EXPECT_EQ(fork.status(), v1::SESSION_STATUS_REQUIRES_ACTION);
  ASSERT_EQ(fork.pending_tool_calls_size(), 1);
  EXPECT_EQ(fork.pending_tool_calls(0).id(), "c1");
  h_.scripted().Push({.text = "fork done"});
  req.set_session_id(fork.session_id());
  tr->set_output("found elsewhere");
  ASSERT_TRUE(h_.Run(req, &answer).ok());
  EXPECT_EQ(answer.output_text(), "fork done");

  // A session with a turn in flight can be forked at its committed seq. The session shows
  // RUNNING as soon as the turn starts; its opening events (one write) commit alongside the
  // model call, so wait until they are in before reading the seq the fork must land on.
  const int64_t before = GetSession(sid).last_seq();
  h_.scripted().Push({.text = "slow", .delay = absl::Milliseconds(800)});
  std::thread slow([&] {
    v1::TurnResult out;
    EXPECT_TRUE(h_.Send(sid, "slow one", &out).ok());
  });
  v1::Session running;
  for (int i = 0; i < 200 && (running.status() != v1::SESSION_STATUS_RUNNING ||
                              running.last_seq() <= before);
       ++i) {
    absl::SleepFor(absl::Milliseconds(5));
    running = GetSession(sid);
  }
  ASSERT_EQ(running.status(), v1::SESSION_STATUS_RUNNING);
  ASSERT_GT(running.last_seq(), before);
  v1::Session mid;
  ASSERT_TRUE(Fork(sid, 0, &mid).ok());
  EXPECT_EQ(mid.fork_seq(), running.last_seq());
  EXPECT_EQ(mid.status(), v1::SESSION_STATUS_IDLE);  // inside a turn
  slow.join();
  EXPECT_GT(GetSession(sid).last_seq(), mid.fork_seq());  // the slow reply is not in the fork
}

// ---- Retention -------------------------------------------------------------------------------

TEST_F(SessionStateTest, SessionsExpireAfterTheirTtl) {
  v1::Agent agent = h_.CreateAgent("echo");
  v1::CreateSessionRequest req;
  req.set_agent_id(agent.agent_id());
  req.set_ttl_seconds(1);
  v1::Session s;
  ASSERT_TRUE(h_.sessions().CreateSession(Ctx().get(), req, &s).ok());
  ASSERT_TRUE(s.has_expire_time());
  EXPECT_NEAR(absl::ToDoubleMilliseconds(FromProto(s.expire_time()) - FromProto(s.create_time())),
              1000, 1);
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(s.session_id(), "quick", &r).ok());
  v1::Session fork;
  ASSERT_TRUE(Fork(s.session_id(), 0, &fork).ok());
  EXPECT_EQ(fork.expire_time().seconds(), s.expire_time().seconds());  // no longer retention
  EXPECT_EQ(fork.expire_time().nanos(), s.expire_time().nanos());

  absl::SleepFor(FromProto(s.expire_time()) + absl::Milliseconds(50) - absl::Now());
  grpc::Status st;
  GetSession(s.session_id(), &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  v1::ListEventsRequest le;
  le.set_session_id(s.session_id());
  v1::ListEventsResponse events;
  EXPECT_EQ(h_.sessions().ListEvents(Ctx().get(), le, &events).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(h_.Send(s.session_id(), "late", &r).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(SessionIds().empty());
}

TEST(SweepExpiredTest, SweeperRemovesExpiredSessions) {
  testing::TempDir dir;
  auto store = store::RocksDbStore::Open({dir.Sub("data"), store::Durability::kRelaxed});
  ASSERT_TRUE(store.ok());
  runtime::TurnDeps deps;
  deps.store = store->get();
  runtime::HistoryCache history(16);
  deps.history = &history;
  runtime::SessionManager sessions(deps);
  for (int i = 0; i < 2500; ++i) {
    storage::SessionRecord r;
    r.mutable_session()->set_session_id("s" + std::to_string(i));
    r.mutable_session()->set_agent_id("a");
    *r.mutable_session()->mutable_expire_time() =
        ToProto(absl::Now() + absl::Seconds(i < 2100 ? 1 : 3600));
    ASSERT_TRUE((*store)->CreateSession("p", r).ok());
  }
  absl::StatusOr<int64_t> removed = sessions.SweepExpired(absl::Now());
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 0);
  removed = sessions.SweepExpired(absl::Now() + absl::Seconds(2));  // several batches
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 2100);
  absl::StatusOr<store::SessionPage> left = (*store)->ListSessions("p", {}, 1000, "");
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->sessions.size(), 400u);
}

// ---- Replay ----------------------------------------------------------------------------------

TEST_F(SessionStateTest, ReplayRerunsTheInputsOnAnotherModel) {
  v1::Agent agent = h_.CreateAgent("echo");
  const std::string sid = h_.CreateSession(agent.agent_id()).session_id();
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(sid, "first question", &r).ok());
  ASSERT_TRUE(h_.Send(sid, "second question", &r).ok());
  const std::vector<std::string> before = SessionIds();

  v1::ReplaySessionResponse echo;
  grpc::Status st = Replay(sid, "echo", &echo);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(echo.results_size(), 2);
  EXPECT_EQ(echo.results(0).output_text(), "first question");
  EXPECT_EQ(echo.results(1).output_text(), "second question");
  EXPECT_EQ(echo.session().parent_session_id(), sid);
  EXPECT_EQ(echo.session().fork_seq(), 0);
  EXPECT_EQ(echo.session().last_seq(), echo.results(1).last_seq());

  h_.scripted().Push({.text = "scripted one"});
  h_.scripted().Push({.text = "scripted two"});
  v1::ReplaySessionResponse scripted;
  st = Replay(sid, "scripted", &scripted);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(scripted.results_size(), 2);
  EXPECT_EQ(scripted.results(0).output_text(), "scripted one");
  EXPECT_EQ(scripted.results(1).output_text(), "scripted two");
  const std::vector<backend::ModelRequest> requests = h_.scripted().requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_NE(ContextText(requests[1]).find("first question|scripted one|second question"),
            std::string::npos)
      << ContextText(requests[1]);
  // The source is untouched.
  EXPECT_EQ(GetSession(sid).last_seq(), r.last_seq());
  EXPECT_EQ(SessionIds().size(), before.size() + 2);

  v1::ReplaySessionResponse none;
  EXPECT_EQ(Replay(sid, "no-such-model", &none).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Replay("missing", "echo", &none).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(SessionIds().size(), before.size() + 2);
}

TEST_F(SessionStateTest, ReplayAnswersToolCallsFromTheRecording) {
  v1::Agent agent = h_.CreateAgent("scripted", "", {"weather", "clock"});
  const std::string sid = h_.CreateSession(agent.agent_id()).session_id();
  h_.scripted().Push({.text = "", .tool_calls = {Call("c1", "weather", R"({"city":"Paris"})")}});
  h_.scripted().Push({.text = "It is sunny."});
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(sid, "weather in Paris?", &r).ok());
  ASSERT_EQ(r.status(), v1::TURN_STATUS_REQUIRES_ACTION);
  v1::RunTurnRequest answer;
  answer.set_session_id(sid);
  v1::ToolResult* tr = answer.add_tool_results();
  tr->set_tool_call_id("c1");
  tr->set_output("sunny, 24C");
  ASSERT_TRUE(h_.Run(answer, &r).ok());
  ASSERT_EQ(r.status(), v1::TURN_STATUS_COMPLETED);

  // The replayed model asks for the same tool (new call id) and for one never recorded.
  h_.scripted().Push(
      {.text = "",
       .tool_calls = {Call("n1", "weather", R"({"city":"Paris"})"), Call("n2", "clock", "{}")}});
  h_.scripted().Push({.text = "Sunny, and I do not know the time."});
  v1::ReplaySessionResponse replay;
  grpc::Status st = Replay(sid, "scripted", &replay);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(replay.results_size(), 2);
  EXPECT_EQ(replay.results(0).status(), v1::TURN_STATUS_REQUIRES_ACTION);
  EXPECT_EQ(replay.results(1).status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(replay.results(1).output_text(), "Sunny, and I do not know the time.");
  std::vector<v1::ToolResult> answers;
  for (const v1::Event& e : replay.results(1).events()) {
    if (e.type() == v1::EVENT_TYPE_TOOL_RESULT) answers.push_back(e.tool_result());
  }
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].tool_call_id(), "n1");
  EXPECT_EQ(answers[0].output(), "sunny, 24C");
  EXPECT_FALSE(answers[0].is_error());
  EXPECT_EQ(answers[1].tool_call_id(), "n2");
  EXPECT_TRUE(answers[1].is_error());
  EXPECT_NE(answers[1].output().find("no recorded result"), std::string::npos);
}

TEST_F(SessionStateTest, FailedReplayLeavesNoSession) {
  v1::Agent agent = h_.CreateAgent("echo");
  const std::string sid = h_.CreateSession(agent.agent_id()).session_id();
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(sid, "question", &r).ok());
  const std::vector<std::string> before = SessionIds();
  h_.scripted().Push({.error = absl::InvalidArgumentError("the model refuses")});
  v1::ReplaySessionResponse replay;
  grpc::Status st = Replay(sid, "scripted", &replay);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(SessionIds(), before);

  // A replay whose deadline passes mid-turn is cancelled and removed too.
  h_.scripted().Push({.text = "too late", .delay = absl::Seconds(3)});
  v1::ReplaySessionRequest req;
  req.set_session_id(sid);
  req.set_model("scripted");
  st = h_.sessions().ReplaySession(Ctx(0.3).get(), req, &replay);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  std::vector<std::string> now = SessionIds();
  for (int i = 0; i < 100 && now != before; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    now = SessionIds();
  }
  EXPECT_EQ(now, before);
}

}  // namespace
}  // namespace agentd
