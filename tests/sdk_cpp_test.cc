// The C++ SDK (include/agentd/client.h) against an in-process agentd: the tool loop, streaming
// (callback and iterator), sessions, forks, state, events, watch, memory, errors and options.
// Retries and metadata are in sdk_cpp_retry_test.cc.
#include <stdlib.h>

#include <thread>

#include "absl/time/clock.h"
#include "sdk_cpp_test_util.h"

namespace agentd::sdktest {
namespace {

constexpr char kWeatherCall[] = R"(/tool get_weather {"city":"Paris"})";

int CountType(const std::vector<v1::Event>& events, v1::EventType type) {
  int n = 0;
  for (const v1::Event& e : events) n += e.type() == type;
  return n;
}

TEST_F(SdkTest, ToolLoopRunsTheHandlerAndSumsTheTurns) {
  auto client = NewClient();
  std::vector<std::string> seen;
  ToolRegistry tools = WeatherTools(&seen);
  Session session = NewSession(*client, tools);

  auto result = session.Run(kWeatherCall, tools);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status, v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(result->output_text, "sunny in Paris");
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], R"({"city":"Paris"})");
  EXPECT_EQ(result->turns, 2);
  EXPECT_TRUE(result->required_tool_calls.empty());
  // Two model calls (the tool call, then the answer), summed over the two turns.
  EXPECT_EQ(result->usage.model_calls(), 2);
  EXPECT_GT(result->usage.input_tokens(), result->last.usage().input_tokens());
  EXPECT_EQ(CountType(result->events, v1::EVENT_TYPE_TOOL_CALL), 1);
  EXPECT_EQ(CountType(result->events, v1::EVENT_TYPE_TOOL_RESULT), 1);
  EXPECT_EQ(CountType(result->events, v1::EVENT_TYPE_TURN_STARTED), 2);
  auto got = session.Get();
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(result->last_seq, got->last_seq());
  EXPECT_EQ(static_cast<int64_t>(result->events.size()), got->last_seq());
  EXPECT_EQ(got->status(), v1::SESSION_STATUS_IDLE);
}

TEST_F(SdkTest, HandlerErrorGoesBackAsAnErrorResult) {
  auto client = NewClient();
  ToolRegistry tools = WeatherTools();
  Session session = NewSession(*client, tools);
  auto result = session.Run(R"(/tool get_weather {"city":"Atlantis"})", tools);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status, v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(result->output_text, "no weather station in Atlantis");
  bool found = false;
  for (const v1::Event& e : result->events) {
    if (e.type() != v1::EVENT_TYPE_TOOL_RESULT) continue;
    found = true;
    EXPECT_TRUE(e.tool_result().is_error());
    EXPECT_EQ(e.tool_result().output(), "no weather station in Atlantis");
  }
  EXPECT_TRUE(found);
}

TEST_F(SdkTest, CallWithoutHandlerStopsAtRequiresAction) {
  auto client = NewClient();
  ToolRegistry all = WeatherTools();
  all.Add("get_time", nullptr, "The time");
  Session session = NewSession(*client, all);
  ToolRegistry only_weather = WeatherTools();

  auto result = session.Run("/tool get_time {}", only_weather);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status, v1::TURN_STATUS_REQUIRES_ACTION);
  EXPECT_EQ(result->turns, 1);
  ASSERT_EQ(result->required_tool_calls.size(), 1u);
  EXPECT_EQ(result->required_tool_calls[0].name(), "get_time");
  // A registered name without a handler counts as no handler too.
  auto again = session.Get();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->status(), v1::SESSION_STATUS_REQUIRES_ACTION);

  ExpectAnswerCompletesTurn(session, result->required_tool_calls[0].id(), "noon");
}

TEST_F(SdkTest, MaxToolRoundsStopsTheLoop) {
  auto client = NewClient();
  std::vector<std::string> seen;
  ToolRegistry tools = WeatherTools(&seen);
  Session session = NewSession(*client, tools, "scripted");
  // The scripted model asks for the tool three times in a row, then answers.
  for (int i = 1; i <= 3; ++i) {
    backend::ScriptedReply reply;
    reply.tool_calls.push_back(
        testing::Call("call_" + std::to_string(i), "get_weather", R"({"city":"Oslo"})"));
    harness_.scripted().Push(reply);
  }
  RunOptions options;
  options.max_tool_rounds = 2;
  auto result = session.Run("weather?", tools, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status, v1::TURN_STATUS_REQUIRES_ACTION);
  EXPECT_EQ(result->turns, 3);
  EXPECT_EQ(seen.size(), 2u);
  ASSERT_EQ(result->required_tool_calls.size(), 1u);
  EXPECT_EQ(result->required_tool_calls[0].id(), "call_3");
  EXPECT_EQ(result->usage.model_calls(), 3);

  // Answering the last call by hand finishes the turn (the model, now echo-like, repeats it).
  ExpectAnswerCompletesTurn(session, "call_3", "rainy in Oslo");
}

TEST_F(SdkTest, StreamWithCallbackAcrossAToolRound) {
  auto client = NewClient();
  ToolRegistry tools = WeatherTools();
  Session session = NewSession(*client, tools);
  std::vector<v1::TurnEvent> seen;
  auto result =
      session.Stream(kWeatherCall, tools, [&](const v1::TurnEvent& ev) { seen.push_back(ev); });
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->status, v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(result->output_text, "sunny in Paris");
  EXPECT_EQ(result->turns, 2);

  std::string text;
  int results = 0;
  std::vector<v1::Event> events;
  for (const v1::TurnEvent& ev : seen) {
    if (ev.has_delta()) text += ev.delta().text();
    if (ev.has_event()) events.push_back(ev.event());
    if (ev.has_result()) ++results;
  }
  EXPECT_EQ(text, "sunny in Paris");
  EXPECT_EQ(results, 2);
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(seen.back().has_result());
  EXPECT_EQ(seen.back().result().status(), v1::TURN_STATUS_COMPLETED);
  // Every durable event streamed once, in seq order, and the same as the totals.
  ASSERT_EQ(events.size(), result->events.size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].seq(), static_cast<int64_t>(i + 1));
    EXPECT_EQ(events[i].seq(), result->events[i].seq());
  }
  EXPECT_EQ(CountType(events, v1::EVENT_TYPE_TOOL_RESULT), 1);
}

TEST_F(SdkTest, StreamAsIterator) {
  auto client = NewClient();
  ToolRegistry tools = WeatherTools();
  Session session = NewSession(*client, tools);
  auto stream = session.StartStream(kWeatherCall, tools);
  v1::TurnEvent ev;
  std::string text;
  int results = 0, tool_calls = 0;
  while (stream->Next(&ev)) {
    if (ev.has_delta()) text += ev.delta().text();
    if (ev.has_event() && ev.event().type() == v1::EVENT_TYPE_TOOL_CALL) ++tool_calls;
    if (ev.has_result()) ++results;
  }
  EXPECT_FALSE(stream->Next(&ev));  // stays over
  auto result = stream->Finish();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->output_text, "sunny in Paris");
  EXPECT_EQ(text, "sunny in Paris");
  EXPECT_EQ(results, 2);
  EXPECT_EQ(tool_calls, 1);

  // Finishing early cancels the run and says so.
  auto early = session.StartStream("hello again");
  ASSERT_TRUE(early->Next(&ev));
  auto cut = early->Finish();
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kCancelled);
}

TEST_F(SdkTest, IdempotencyKeyReturnsTheFirstResult) {
  auto client = NewClient();
  Session session = NewSession(*client);
  RunOptions options;
  options.idempotency_key = "my-key-1";
  auto first = session.Run("hello", {}, options);
  auto second = session.Run("hello", {}, options);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->last.turn_id(), second->last.turn_id());
  EXPECT_EQ(TurnsStarted(session.id()), 1);
  auto other = session.Run("different body", {}, options);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kInvalidArgument) << other.status();
}

TEST_F(SdkTest, ErrorsKeepTheServersCodeAndMessage) {
  auto client = NewClient();
  Session session = NewSession(*client);

  ClientOptions wrong = Options();
  wrong.api_key = "agd-not-a-real-key";
  auto stranger = NewClient(wrong);
  auto denied = stranger->ListAgents();
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kUnauthenticated) << denied.status();

  auto missing = client->GetSession("sess_does_not_exist");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("sess_does_not_exist"), absl::string_view::npos)
      << missing.status();
  auto bad = client->OpenSession("bad id!").Get();
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
  auto bad_json = session.PutState("k", "{not json");
  EXPECT_EQ(bad_json.status().code(), absl::StatusCode::kInvalidArgument) << bad_json.status();
  auto no_agent = client->CreateSession("agent_missing");
  EXPECT_EQ(no_agent.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SdkTest, BusySessionAndCancel) {
  auto client = NewClient();
  Session session = NewSession(*client, {}, "scripted");
  backend::ScriptedReply slow;
  slow.text = "late";
  slow.delay = absl::Seconds(20);
  harness_.scripted().Push(slow);

  absl::StatusOr<TurnResult> first;
  std::thread runner([&] { first = session.Run("take your time"); });
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  for (;;) {
    auto s = session.Get();
    ASSERT_TRUE(s.ok()) << s.status();
    if (s->status() == v1::SESSION_STATUS_RUNNING) break;
    ASSERT_LT(absl::Now(), give_up) << "the turn never started";
    absl::SleepFor(absl::Milliseconds(5));
  }
  auto busy = session.Run("me too");
  EXPECT_EQ(busy.status().code(), absl::StatusCode::kFailedPrecondition) << busy.status();

  auto cancelled = session.Cancel();
  ASSERT_TRUE(cancelled.ok()) << cancelled.status();
  EXPECT_EQ(cancelled->status(), v1::TURN_STATUS_CANCELLED);
  runner.join();
  // The RPC succeeded: a cancelled turn is an OK StatusOr saying CANCELLED.
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->status, v1::TURN_STATUS_CANCELLED);
  EXPECT_FALSE(first->error.empty());

  auto idle = session.Cancel();
  EXPECT_EQ(idle.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(SdkTest, ForkRunsItsOwnHistory) {
  auto client = NewClient();
  Session session = NewSession(*client);
  ASSERT_TRUE(session.Run("one").ok());
  auto two = session.Run("two");
  ASSERT_TRUE(two.ok());
  ASSERT_TRUE(session.Run("three").ok());

  auto fork = session.Fork(two->last_seq, "my-fork");
  ASSERT_TRUE(fork.ok()) << fork.status();
  EXPECT_EQ(fork->id(), "my-fork");
  auto other = fork->Run("two bis");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->output_text, "two bis");

  auto parent_events = session.Events();
  auto fork_events = fork->Events();
  ASSERT_TRUE(parent_events.ok() && fork_events.ok());
  ASSERT_GT(fork_events->size(), static_cast<size_t>(two->last_seq));
  for (int64_t i = 0; i < two->last_seq; ++i) {
    v1::Event mine = (*fork_events)[i], theirs = (*parent_events)[i];
    EXPECT_EQ(mine.session_id(), fork->id());
    mine.clear_session_id();
    theirs.clear_session_id();
    EXPECT_EQ(mine.SerializeAsString(), theirs.SerializeAsString()) << i;
  }
  EXPECT_EQ((*fork_events)[two->last_seq].type(), v1::EVENT_TYPE_TURN_STARTED);
  auto meta = fork->Get();
  ASSERT_TRUE(meta.ok());
  EXPECT_EQ(meta->parent_session_id(), session.id());
  EXPECT_EQ(meta->fork_seq(), two->last_seq);
  EXPECT_EQ(parent_events->back().seq(), session.Get()->last_seq());  // parent untouched
}

TEST_F(SdkTest, StateCompareAndSet) {
  auto client = NewClient();
  Session session = NewSession(*client);
  auto first = session.PutState("cart", R"({"items":1})");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->version(), 1);
  auto v2 = session.PutState("cart", R"({"items":2})", 1);
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_EQ(v2->version(), 2);
  auto stale = session.PutState("cart", R"({"items":3})", 1);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kAborted);
  auto got = session.GetState("cart");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->value_json(), R"({"items":2})");
  auto all = session.ListState();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].version(), 2);
}

TEST_F(SdkTest, EventsPaging) {
  auto client = NewClient();
  Session session = NewSession(*client);
  for (const char* text : {"a", "b", "c"}) ASSERT_TRUE(session.Run(text).ok());
  auto all = session.Events();
  ASSERT_TRUE(all.ok());
  const int64_t last = session.Get()->last_seq();
  ASSERT_EQ(static_cast<int64_t>(all->size()), last);
  auto first5 = session.Events(0, 5);
  ASSERT_TRUE(first5.ok());
  ASSERT_EQ(first5->size(), 5u);
  EXPECT_EQ(first5->back().seq(), 5);
  auto rest = session.Events(5);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(static_cast<int64_t>(rest->size()), last - 5);
  EXPECT_EQ(rest->front().seq(), 6);
  auto none = session.Events(last);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(session.Events(0, -1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SdkTest, WatchDeliversHistoryThenLiveEvents) {
  auto client = NewClient();
  Session session = NewSession(*client);
  ASSERT_TRUE(session.Run("before").ok());
  const int64_t before = session.Get()->last_seq();

  std::vector<v1::Event> watched;
  absl::Status watch_status;
  std::thread watcher([&] {
    int completed = 0;
    watch_status = session.Watch(
        0,
        [&](const v1::Event& e) {
          watched.push_back(e);
          completed += e.type() == v1::EVENT_TYPE_TURN_COMPLETED;
          return completed < 2;  // the history's turn, then the live one
        },
        absl::Seconds(20));
  });
  ASSERT_TRUE(session.Run("during").ok());
  watcher.join();
  EXPECT_TRUE(watch_status.ok()) << watch_status;
  ASSERT_EQ(static_cast<int64_t>(watched.size()), session.Get()->last_seq());
  for (size_t i = 0; i < watched.size(); ++i) EXPECT_EQ(watched[i].seq(), int64_t(i + 1));
  EXPECT_GT(static_cast<int64_t>(watched.size()), before);

  // With nothing new, the timeout ends the watch, OK.
  int late = 0;
  const absl::Time start = absl::Now();
  absl::Status idle = session.Watch(
      session.Get()->last_seq(),
      [&](const v1::Event&) {
        ++late;
        return true;
      },
      absl::Milliseconds(300));
  EXPECT_TRUE(idle.ok()) << idle;
  EXPECT_EQ(late, 0);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));

  auto gone = client->OpenSession("sess_nope").Watch(0, [](const v1::Event&) { return true; });
  EXPECT_EQ(gone.code(), absl::StatusCode::kNotFound);
}

TEST_F(SdkTest, MemoryPutAndSearch) {
  auto client = NewClient();
  v1::PutMemoryRequest put;
  put.set_namespace_("users/alice/preferences");
  put.set_text("Alice prefers window seats on trains");
  auto rec = client->PutMemory(put);
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_FALSE(rec->key().empty());
  auto found = client->SearchMemory("users/alice/", "window seats");
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_FALSE(found->empty());
  EXPECT_EQ((*found)[0].record().key(), rec->key());
  auto got = client->GetMemory("users/alice/preferences", rec->key());
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(client->DeleteMemory("users/alice/preferences", rec->key()).ok());
  EXPECT_EQ(client->GetMemory("users/alice/preferences", rec->key()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SdkTest, AgentsAndSessionsListing) {
  auto client = NewClient();
  auto a = client->CreateAgent("lister", "echo", "", WeatherTools());
  ASSERT_TRUE(a.ok());
  ASSERT_EQ(a->tools_size(), 1);
  EXPECT_EQ(a->tools(0).kind(), v1::TOOL_KIND_CLIENT);
  v1::Agent update = *a;
  update.set_instructions("v2");
  auto b = client->UpdateAgent(update);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->version(), 2);
  EXPECT_EQ(client->GetAgent(a->agent_id(), 1)->instructions(), "");
  SessionOptions so;
  so.session_id = "listed-session";
  so.metadata["user"] = "alice";
  ASSERT_TRUE(client->CreateSession(a->agent_id(), so).ok());
  auto sessions = client->ListSessions(a->agent_id());
  ASSERT_TRUE(sessions.ok());
  ASSERT_EQ(sessions->size(), 1u);
  EXPECT_EQ((*sessions)[0].agent_version(), 2);
  EXPECT_EQ((*sessions)[0].metadata().at("user"), "alice");
  auto agents = client->ListAgents();
  ASSERT_TRUE(agents.ok());
  EXPECT_EQ(agents->size(), 1u);
  EXPECT_TRUE(client->OpenSession("listed-session").Delete().ok());
  EXPECT_TRUE(client->DeleteAgent(a->agent_id()).ok());
  EXPECT_EQ(client->GetAgent(a->agent_id()).status().code(), absl::StatusCode::kNotFound);
}

// Environment defaults: AGENTD_ADDR / AGENTD_API_KEY fill what the options leave empty.
TEST_F(SdkTest, EnvironmentDefaults) {
  setenv("AGENTD_ADDR", harness_.address().c_str(), 1);
  setenv("AGENTD_API_KEY", harness_.admin_key().c_str(), 1);
  auto from_env = Client::Create();
  ASSERT_TRUE(from_env.ok()) << from_env.status();
  EXPECT_TRUE((*from_env)->ListAgents().ok());

  // Options win over the environment.
  ClientOptions explicit_key;
  explicit_key.api_key = "agd-wrong";
  auto wrong = Client::Create(explicit_key);
  ASSERT_TRUE(wrong.ok());
  EXPECT_EQ((*wrong)->ListAgents().status().code(), absl::StatusCode::kUnauthenticated);

  unsetenv("AGENTD_API_KEY");
  auto no_key = Client::Create();
  ASSERT_TRUE(no_key.ok());
  EXPECT_EQ((*no_key)->ListAgents().status().code(), absl::StatusCode::kUnauthenticated);
  unsetenv("AGENTD_ADDR");
}

TEST_F(SdkTest, BadOptionsAreRejectedAtCreate) {
  ClientOptions o = Options();
  o.api_key = "has space";
  auto spaced = Client::Create(o);
  EXPECT_EQ(spaced.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(spaced.status().message().find("has space"), absl::string_view::npos);
  o = Options();
  o.tls_ca_file = "/nonexistent/ca.pem";
  EXPECT_EQ(Client::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options();
  o.tls_cert_file = "/etc/hostname";
  EXPECT_EQ(Client::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options();
  o.max_attempts = 0;
  EXPECT_EQ(Client::Create(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SdkUnitTest, IdempotencyKeysAreFreshIds) {
  const std::string a = NewIdempotencyKey(), b = NewIdempotencyKey();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.size(), 5u + 32u);
  EXPECT_EQ(a.rfind("idem_", 0), 0u);
}

TEST(SdkUnitTest, ToolRegistrySpecs) {
  ToolRegistry tools;
  tools.Add("b", [](const std::string&) -> absl::StatusOr<std::string> { return "x"; });
  tools.Add(
      "a", [](const std::string&) -> absl::StatusOr<std::string> { return "y"; }, "A");
  ASSERT_EQ(tools.size(), 2u);
  auto specs = tools.Specs();
  EXPECT_EQ(specs[0].name(), "a");
  EXPECT_EQ(specs[1].parameters_json_schema(), R"({"type":"object"})");
  EXPECT_EQ(specs[0].kind(), v1::TOOL_KIND_CLIENT);
  EXPECT_NE(tools.Find("a"), nullptr);
  EXPECT_EQ(tools.Find("c"), nullptr);
}

}  // namespace
}  // namespace agentd::sdktest
