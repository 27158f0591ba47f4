// agentd turns that call tools of the real MCP reference server
// (@modelcontextprotocol/server-everything, Streamable HTTP on loopback), driven by the scripted
// model of the in-process harness: echo and get-sum, allowed_tools, a schema violation, a tool
// error, a slow tool past its timeout and past the turn's deadline, truncation, the server
// down, and a server restart (the session expires; agentd initializes again).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "mcp/everything_server.h"
#include "testing/free_port.h"
#include "testing/server_harness.h"

namespace agentd {
namespace {

using nlohmann::json;
using testing::Call;
using testing::Ctx;
using testing::EverythingServer;
using testing::ServerHarness;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kToken[] = "mcp-test-secret-0123456789";

class McpEverythingTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    everything_ = new EverythingServer();
    absl::Status st = everything_->Start();
    ASSERT_TRUE(st.ok()) << st;
  }
  static void TearDownTestSuite() {
    delete everything_;
    everything_ = nullptr;
  }

  void SetUp() override {
    setenv("AGENTD_TEST_MCP_TOKEN", kToken, 1);
    down_port_ = testing::FreePort();
    harness_ = std::make_unique<ServerHarness>([this](server::Config* c) {
      c->max_tool_result_bytes = 1024;
      server::McpServerConfig ev;
      ev.name = "everything";
      ev.url = everything_->url();
      ev.headers["Authorization"] = "env:AGENTD_TEST_MCP_TOKEN";
      ev.timeout_ms = 1500;
      ev.allowed_tools = {"echo", "get-sum", "trigger-long-running-operation"};
      c->mcp_servers.push_back(ev);
      server::McpServerConfig all = ev;
      all.name = "all";
      all.allowed_tools.clear();
      all.timeout_ms = 30000;
      c->mcp_servers.push_back(all);
      server::McpServerConfig down;
      down.name = "down";
      down.url = "http://127.0.0.1:" + std::to_string(down_port_) + "/mcp";
      c->mcp_servers.push_back(down);
    });
  }

  grpc::Status CreateAgent(const std::vector<std::string>& tools, v1::Agent* out) {
    v1::CreateAgentRequest req;
    req.mutable_agent()->set_model("scripted");
    for (const std::string& t : tools) {
      v1::ToolSpec* spec = req.mutable_agent()->add_tools();
      spec->set_name(t);
      spec->set_kind(v1::TOOL_KIND_BUILTIN);
    }
    return harness_->agents().CreateAgent(Ctx().get(), req, out);
  }

  std::string NewSession(const std::vector<std::string>& tools) {
    v1::Agent agent;
    grpc::Status st = CreateAgent(tools, &agent);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return harness_->CreateSession(agent.agent_id()).session_id();
  }

  void Push(std::vector<v1::ToolCall> calls, const std::string& text = "") {
    harness_->PushReply(std::move(calls), text);
  }

  std::vector<v1::ToolResult> Results(const std::string& session_id) {
    return harness_->ToolResults(session_id);
  }

  static EverythingServer* everything_;
  int down_port_ = 0;
  std::unique_ptr<ServerHarness> harness_;
};

EverythingServer* McpEverythingTest::everything_ = nullptr;

TEST_F(McpEverythingTest, EchoAndGetSumRunInATurnAndAreRecorded) {
  const std::string session =
      NewSession({"mcp:everything/echo", "mcp:everything/get-sum"});
  Push({Call("c1", "mcp__everything__echo", R"({"message":"hello mcp"})"),
        Call("c2", "mcp__everything__get-sum", R"({"a":2,"b":40})")});
  Push({}, "done");
  v1::TurnResult result;
  grpc::Status st = harness_->Send(session, "use the tools", &result);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(result.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(result.output_text(), "done");

  // The model was offered the server's own descriptions and schemas.
  const auto requests = harness_->scripted().requests();
  ASSERT_EQ(requests.size(), 2u);
  ASSERT_EQ(requests[0].tools.size(), 2u);
  EXPECT_EQ(requests[0].tools[0].name, "mcp__everything__echo");
  EXPECT_FALSE(requests[0].tools[0].description.empty());
  EXPECT_THAT(requests[0].tools[0].parameters_json_schema, HasSubstr("\"message\""));
  EXPECT_EQ(requests[0].tools[1].name, "mcp__everything__get-sum");

  int calls = 0;
  for (const v1::Event& e : harness_->AllEvents(session)) calls += e.type() == v1::EVENT_TYPE_TOOL_CALL;
  EXPECT_EQ(calls, 2);
  const auto results = Results(session);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].tool_call_id(), "c1");
  EXPECT_THAT(results[0].output(), HasSubstr("hello mcp"));
  EXPECT_FALSE(results[0].is_error());
  EXPECT_EQ(results[0].served_by(), "mcp:everything");
  EXPECT_GE(results[0].duration_ms(), 0);
  EXPECT_EQ(results[1].tool_call_id(), "c2");
  EXPECT_THAT(results[1].output(), HasSubstr("42"));
  EXPECT_FALSE(results[1].is_error());
  // The model's second step saw both results.
  EXPECT_GE(requests[1].messages.size(), requests[0].messages.size() + 3);
}

TEST_F(McpEverythingTest, WholeServerSpecOffersOnlyAllowedTools) {
  const std::string session = NewSession({"mcp:everything"});
  Push({}, "nothing to do");
  v1::TurnResult result;
  ASSERT_TRUE(harness_->Send(session, "hi", &result).ok());
  const auto requests = harness_->scripted().requests();
  ASSERT_EQ(requests.size(), 1u);
  std::vector<std::string> names;
  for (const auto& t : requests[0].tools) names.push_back(t.name);
  EXPECT_THAT(names, ::testing::UnorderedElementsAre("mcp__everything__echo",
                                                     "mcp__everything__get-sum",
                                                     "mcp__everything__trigger-long-running-operation"));
}

TEST_F(McpEverythingTest, BadSpecsAreRefusedAtCreate) {
  v1::Agent agent;
  grpc::Status st = CreateAgent({"mcp:nowhere/echo"}, &agent);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("unknown MCP server \"nowhere\""));
  st = CreateAgent({"mcp:everything/get-env"}, &agent);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("allowed_tools"));
  st = CreateAgent({"mcp:all/no-such-tool"}, &agent);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("has no tool \"no-such-tool\""));
  st = CreateAgent({"mcp:everything/"}, &agent);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // A server that cannot be reached now is connected lazily: not an error at create.
  EXPECT_TRUE(CreateAgent({"mcp:down/echo"}, &agent).ok());
}

TEST_F(McpEverythingTest, SchemaViolationIsFedBackWithoutCallingTheServer) {
  const std::string session = NewSession({"mcp:everything/get-sum"});
  Push({Call("c1", "mcp__everything__get-sum", R"({"a":"two","b":3})")});
  Push({Call("c2", "mcp__everything__get-sum", R"({"a":2,"b":3})")});
  Push({}, "5");
  v1::TurnResult result;
  ASSERT_TRUE(harness_->Send(session, "sum", &result).ok());
  EXPECT_EQ(result.status(), v1::TURN_STATUS_COMPLETED);
  const auto results = Results(session);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_TRUE(results[0].is_error());
  EXPECT_THAT(results[0].output(), HasSubstr("invalid arguments"));
  EXPECT_THAT(results[0].output(), HasSubstr("/a"));
  EXPECT_EQ(results[0].served_by(), "") << "never reached the server";
  EXPECT_FALSE(results[1].is_error());
  EXPECT_THAT(results[1].output(), HasSubstr("5"));
}

TEST_F(McpEverythingTest, ToolErrorIsAnErrorResultAndTheLoopGoesOn) {
  // Nothing listens on port 1: the server's fetch fails at once and it answers isError.
  const std::string session = NewSession({"mcp:all/gzip-file-as-resource"});
  Push({Call("c1", "mcp__all__gzip-file-as-resource",
             R"({"name":"x.gz","data":"http://127.0.0.1:1/x"})")});
  Push({}, "gave up");
  v1::TurnResult result;
  ASSERT_TRUE(harness_->Send(session, "go", &result).ok());
  EXPECT_EQ(result.status(), v1::TURN_STATUS_COMPLETED);
  const auto results = Results(session);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].is_error()) << results[0].output();
  EXPECT_EQ(results[0].served_by(), "mcp:all");
  EXPECT_THAT(results[0].output(), Not(HasSubstr("[agentd: output truncated")));
}

TEST_F(McpEverythingTest, SlowToolPastItsTimeoutIsCancelledAndTheTurnContinues) {
  const std::string session = NewSession({"mcp:everything/trigger-long-running-operation"});
  Push({Call("c1", "mcp__everything__trigger-long-running-operation", R"({"duration":10,"steps":2})")});
  Push({}, "too slow");
  v1::TurnResult result;
  const absl::Time start = absl::Now();
  ASSERT_TRUE(harness_->Send(session, "go", &result).ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(6));
  EXPECT_EQ(result.status(), v1::TURN_STATUS_COMPLETED);
  const auto results = Results(session);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].is_error());
  EXPECT_THAT(results[0].output(), HasSubstr("did not answer within 1500 ms"));
  EXPECT_THAT(results[0].output(), HasSubstr("cancelled"));
  EXPECT_GE(results[0].duration_ms(), 1400);
  EXPECT_LT(results[0].duration_ms(), 4000);
}

TEST_F(McpEverythingTest, SlowToolPastTheTurnDeadlineFailsTheTurnWithTheCallRecorded) {
  const std::string session = NewSession({"mcp:all/trigger-long-running-operation"});
  Push({Call("c1", "mcp__all__trigger-long-running-operation", R"({"duration":10,"steps":2})")});
  v1::RunTurnRequest req;
  req.set_session_id(session);
  req.add_input()->set_text("go");
  v1::TurnResult result;
  auto ctx = Ctx(2.0);
  grpc::Status st = harness_->sessions().RunTurn(ctx.get(), req, &result);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  // The turn ends on the server shortly after its deadline; its tool result is durable.
  v1::Session s;
  const absl::Time until = absl::Now() + absl::Seconds(10);
  do {
    v1::GetSessionRequest get;
    get.set_session_id(session);
    ASSERT_TRUE(harness_->sessions().GetSession(Ctx().get(), get, &s).ok());
  } while (s.status() == v1::SESSION_STATUS_RUNNING && absl::Now() < until);
  EXPECT_NE(s.status(), v1::SESSION_STATUS_RUNNING);
  const auto results = Results(session);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].is_error());
  EXPECT_THAT(results[0].output(), HasSubstr("cancelled"));
  EXPECT_LT(results[0].duration_ms(), 5000);
}

TEST_F(McpEverythingTest, CancelTurnDuringAToolCallStopsItPromptly) {
  const std::string session = NewSession({"mcp:all/trigger-long-running-operation"});
  Push({Call("c1", "mcp__all__trigger-long-running-operation", R"({"duration":20,"steps":4})")});
  v1::RunTurnRequest req;
  req.set_session_id(session);
  req.add_input()->set_text("go");
  grpc::Status turn_status;
  v1::TurnResult turn_result;
  std::thread turn([&] { turn_status = harness_->sessions().RunTurn(Ctx(30).get(), req, &turn_result); });
  // Wait until the tool call is in flight (the server has the call), then cancel the turn.
  v1::Session s;
  ASSERT_TRUE(testing::Eventually(
      [&] {
        v1::GetSessionRequest get;
        get.set_session_id(session);
        return harness_->sessions().GetSession(Ctx().get(), get, &s).ok() &&
               s.status() == v1::SESSION_STATUS_RUNNING && !harness_->scripted().requests().empty();
      },
      absl::Seconds(10)));
  absl::SleepFor(absl::Milliseconds(300));  // let the tools/call request reach the server
  const absl::Time cancel_at = absl::Now();
  v1::CancelTurnRequest cancel;
  cancel.set_session_id(session);
  v1::TurnResult cancelled;
  grpc::Status st = harness_->sessions().CancelTurn(Ctx().get(), cancel, &cancelled);
  turn.join();
  ASSERT_TRUE(st.ok()) << st.error_message();
  // The blocking tools/call noticed the cancellation within curl's progress poll (~1 s), not
  // after the operation's 20 s.
  EXPECT_LT(absl::Now() - cancel_at, absl::Seconds(4));
  EXPECT_EQ(cancelled.status(), v1::TURN_STATUS_CANCELLED);
  ASSERT_TRUE(turn_status.ok()) << turn_status.error_message();
  EXPECT_EQ(turn_result.status(), v1::TURN_STATUS_CANCELLED);
  v1::GetSessionRequest get;
  get.set_session_id(session);
  ASSERT_TRUE(harness_->sessions().GetSession(Ctx().get(), get, &s).ok());
  EXPECT_NE(s.status(), v1::SESSION_STATUS_RUNNING);
  // The session goes on afterwards.
  Push({}, "next");
  v1::TurnResult next;
  ASSERT_TRUE(harness_->Send(session, "again", &next).ok());
  EXPECT_EQ(next.status(), v1::TURN_STATUS_COMPLETED);
}

TEST_F(McpEverythingTest, LargeOutputIsTruncatedVisibly) {
  const std::string session = NewSession({"mcp:everything/echo"});
  const std::string big(3000, 'z');
  Push({Call("c1", "mcp__everything__echo", json{{"message", big}}.dump())});
  Push({}, "ok");
  v1::TurnResult result;
  ASSERT_TRUE(harness_->Send(session, "go", &result).ok());
  const auto results = Results(session);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].is_error());
  EXPECT_TRUE(results[0].truncated());
  EXPECT_THAT(results[0].output(), HasSubstr("[agentd: output truncated: 1024 of "));
  EXPECT_LT(results[0].output().size(), 1200u);
}

TEST_F(McpEverythingTest, ServerDownGivesAnErrorResultNotAFailedTurn) {
  const std::string session = NewSession({"mcp:down/echo"});
  Push({Call("c1", "mcp__down__echo", R"({"message":"x"})")});
  Push({}, "it is down");
  v1::TurnResult result;
  ASSERT_TRUE(harness_->Send(session, "go", &result).ok());
  EXPECT_EQ(result.status(), v1::TURN_STATUS_COMPLETED);
  const auto requests = harness_->scripted().requests();
  ASSERT_EQ(requests[0].tools.size(), 1u) << "a named tool is still offered";
  EXPECT_EQ(requests[0].tools[0].name, "mcp__down__echo");
  const auto results = Results(session);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].is_error());
  EXPECT_THAT(results[0].output(), HasSubstr("MCP server \"down\""));
  EXPECT_EQ(results[0].served_by(), "mcp:down");
}

TEST_F(McpEverythingTest, SecretsStayOutOfEvents) {
  const std::string session = NewSession({"mcp:everything/echo"});
  Push({Call("c1", "mcp__everything__echo", R"({"message":"hi"})")});
  Push({}, "ok");
  v1::TurnResult result;
  ASSERT_TRUE(harness_->Send(session, "go", &result).ok());
  for (const v1::Event& e : harness_->AllEvents(session)) {
    EXPECT_THAT(e.DebugString(), Not(HasSubstr(kToken)));
  }
}

// Runs last in the suite: restarts the shared server on the same port.
TEST_F(McpEverythingTest, ZzRestartedServerSessionIsReinitialized) {
  const std::string session = NewSession({"mcp:everything/echo"});
  Push({Call("c1", "mcp__everything__echo", R"({"message":"before"})")});
  Push({}, "ok");
  v1::TurnResult result;
  ASSERT_TRUE(harness_->Send(session, "go", &result).ok());
  const int port = everything_->port();
  everything_->Stop();
  ASSERT_TRUE(everything_->Start(port).ok());
  Push({Call("c2", "mcp__everything__echo", R"({"message":"after"})")});
  Push({}, "ok");
  ASSERT_TRUE(harness_->Send(session, "again", &result).ok());
  const auto results = Results(session);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_FALSE(results[1].is_error()) << results[1].output();
  EXPECT_THAT(results[1].output(), HasSubstr("after"));
}

}  // namespace
}  // namespace agentd
