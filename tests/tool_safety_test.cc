// Server-side tool safety through real turns (in-process agentd, RocksDB in a temp dir, the
// scripted model, the fake MCP server and an HTTP endpoint on loopback): requires_approval
// (REQUIRES_ACTION, durable across a restart, approve / reject, wrong answers refused),
// per-project allow-lists (operator-only, checked at agent create and at every call), HTTP
// tools in a turn (secret headers never recorded), retries only for idempotent tools,
// per-tool concurrency and timeouts, and ToolService.ListToolServers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "agentd/v1/project.grpc.pb.h"
#include "agentd/v1/tool.grpc.pb.h"
#include "agentctl_runner.h"
#include "http/http_server.h"
#include "mcp/fake_mcp_server.h"
#include "testing/server_harness.h"
#include "testing/temp_dir.h"
#include "tools/tool_gateway.h"

namespace agentd {
namespace {

using nlohmann::json;
using testing::Call;
using testing::Ctx;
using testing::FakeMcpServer;
using testing::ServerHarness;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "weather-secret-token-42";

// An HTTP API for the HTTP tools: /weather/<city> answers JSON; /flaky answers 503 to the
// first `flaky_failures` requests; /slow answers after 300 ms. Records what it received.
class WeatherApi {
 public:
  WeatherApi() {
    std::vector<http::Route> routes;
    routes.push_back({"GET", "/weather/", [this](std::shared_ptr<http::Exchange> ex) {
                        Record(*ex);
                        const std::string city = ex->path().substr(9);
                        ex->Respond(200, "application/json",
                                    json({{"city", city}, {"temp_c", 21}}).dump());
                      }, /*prefix=*/true});
    routes.push_back({"POST", "/flaky", [this](std::shared_ptr<http::Exchange> ex) {
                        Record(*ex);
                        if (flaky_seen_.fetch_add(1) < flaky_failures) {
                          ex->Respond(503, "text/plain", "busy");
                        } else {
                          ex->Respond(200, "text/plain", "ok after retries");
                        }
                      }});
    routes.push_back({"POST", "/slow", [this](std::shared_ptr<http::Exchange> ex) {
                        Record(*ex);
                        const int now = in_flight_.fetch_add(1) + 1;
                        int seen = max_in_flight_.load();
                        while (now > seen && !max_in_flight_.compare_exchange_weak(seen, now)) {}
                        threads_.emplace_back([this, ex] {
                          absl::SleepFor(absl::Milliseconds(300));
                          in_flight_.fetch_sub(1);
                          ex->Respond(200, "text/plain", "slow done");
                        });
                      }});
    auto server = http::HttpServer::Start("127.0.0.1:0", std::move(routes));
    EXPECT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  ~WeatherApi() {
    server_->Shutdown();
    for (std::thread& t : threads_) t.join();
  }

  std::string url(const std::string& path) const { return "http://" + server_->address() + path; }
  std::vector<std::string> authorizations() {
    absl::MutexLock lock(&mu_);
    return authorizations_;
  }
  int requests() { return requests_.load(); }
  int max_in_flight() { return max_in_flight_.load(); }

  std::atomic<int> flaky_failures{2};

 private:
  void Record(const http::Exchange& ex) {
    requests_.fetch_add(1);
    absl::MutexLock lock(&mu_);
    authorizations_.push_back(ex.header("authorization"));
  }

  absl::Mutex mu_;
  std::vector<std::string> authorizations_ ABSL_GUARDED_BY(mu_);
  std::atomic<int> requests_{0};
  std::atomic<int> flaky_seen_{0};
  std::atomic<int> in_flight_{0};
  std::atomic<int> max_in_flight_{0};
  std::vector<std::thread> threads_;  // only touched on the server's loop thread
  std::unique_ptr<http::HttpServer> server_;
};

class ToolSafetyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("AGENTD_TEST_WEATHER_TOKEN", kSecret, 1);
    FakeMcpServer::Options mo;
    mo.slow_tool_ms = 2000;
    mcp_ = std::make_unique<FakeMcpServer>(mo);
    harness_ = std::make_unique<ServerHarness>([this](server::Config* c) {
      server::McpServerConfig fake;
      fake.name = "fake";
      fake.url = mcp_->url();
      fake.tools["slow"].timeout_ms = 200;
      c->mcp_servers.push_back(fake);
      server::HttpToolConfig weather;
      weather.name = "weather";
      weather.description = "Current weather of a city.";
      weather.method = "GET";
      weather.url = api_.url("/weather/{city}");
      weather.headers["Authorization"] = "env:AGENTD_TEST_WEATHER_TOKEN";
      weather.parameters_json_schema =
          R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})";
      c->http_tools.push_back(weather);
      server::HttpToolConfig flaky;
      flaky.name = "flaky";
      flaky.url = api_.url("/flaky");
      flaky.idempotent = true;
      c->http_tools.push_back(flaky);
      server::HttpToolConfig once = flaky;
      once.name = "once";
      once.idempotent = false;
      c->http_tools.push_back(once);
      server::HttpToolConfig slow;
      slow.name = "slow";
      slow.url = api_.url("/slow");
      slow.max_concurrency = 1;
      c->http_tools.push_back(slow);
    });
    projects_ = v1::ProjectService::NewStub(harness_->channel());
    tools_ = v1::ToolService::NewStub(harness_->channel());
  }

  v1::Agent Agent(const std::vector<std::pair<std::string, bool>>& tools) {
    v1::CreateAgentRequest req;
    req.mutable_agent()->set_model("scripted");
    for (const auto& [name, approval] : tools) {
      v1::ToolSpec* spec = req.mutable_agent()->add_tools();
      spec->set_name(name);
      spec->set_kind(v1::TOOL_KIND_BUILTIN);
      spec->set_requires_approval(approval);
    }
    v1::Agent agent;
    grpc::Status st = harness_->agents().CreateAgent(Ctx().get(), req, &agent);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return agent;
  }

  std::string NewSession(const std::vector<std::pair<std::string, bool>>& tools) {
    return harness_->CreateSession(Agent(tools).agent_id()).session_id();
  }

  void Push(std::vector<v1::ToolCall> calls, const std::string& text = "") {
    harness_->PushReply(std::move(calls), text);
  }

  std::vector<v1::ToolResult> Results(const std::string& session_id) {
    return harness_->ToolResults(session_id);
  }

  v1::Session Get(const std::string& session_id) {
    v1::GetSessionRequest req;
    req.set_session_id(session_id);
    v1::Session s;
    EXPECT_TRUE(harness_->sessions().GetSession(Ctx().get(), req, &s).ok());
    return s;
  }

  grpc::Status Approve(const std::string& session_id, const std::string& call_id, bool approved,
                       v1::TurnResult* out, const std::string& reason = "") {
    v1::RunTurnRequest req;
    req.set_session_id(session_id);
    v1::ToolApproval* a = req.add_approvals();
    a->set_tool_call_id(call_id);
    a->set_approved(approved);
    a->set_reason(reason);
    return harness_->Run(req, out);
  }

  grpc::Status SetAllowedTools(const std::string& project_id, std::vector<std::string> tools,
                               const std::string& key = "") {
    v1::SetLimitsRequest req;
    req.set_project_id(project_id);
    for (const std::string& t : tools) req.mutable_limits()->mutable_allowed_tools()->add_tools(t);
    auto ctx = Ctx();
    if (!key.empty()) ctx->AddMetadata("authorization", "Bearer " + key);
    v1::Project p;
    return projects_->SetLimits(ctx.get(), req, &p);
  }

  WeatherApi api_;
  std::unique_ptr<FakeMcpServer> mcp_;
  std::unique_ptr<ServerHarness> harness_;
  std::unique_ptr<v1::ProjectService::Stub> projects_;
  std::unique_ptr<v1::ToolService::Stub> tools_;
};

TEST_F(ToolSafetyTest, ApprovalStopsTheTurnDurablyAndApprovedCallsRun) {
  const std::string session = NewSession({{"mcp:fake/echo", true}});
  Push({Call("c1", "mcp__fake__echo", R"({"message":"launch"})")});
  v1::TurnResult result;
  ASSERT_TRUE(harness_->Send(session, "go", &result).ok());
  EXPECT_EQ(result.status(), v1::TURN_STATUS_REQUIRES_ACTION);
  ASSERT_EQ(result.required_tool_calls_size(), 1);
  EXPECT_EQ(result.required_tool_calls(0).id(), "c1");
  EXPECT_TRUE(result.required_tool_calls(0).requires_approval());
  EXPECT_EQ(mcp_->Count("tools/call"), 0) << "nothing runs before approval";

  // The wait survives a restart.
  harness_->Restart();
  v1::Session s = Get(session);
  EXPECT_EQ(s.status(), v1::SESSION_STATUS_REQUIRES_ACTION);
  ASSERT_EQ(s.pending_tool_calls_size(), 1);
  EXPECT_TRUE(s.pending_tool_calls(0).requires_approval());

  // A tool result is not an approval, and an approval for an unknown call is refused.
  v1::RunTurnRequest wrong;
  wrong.set_session_id(session);
  wrong.add_tool_results()->set_tool_call_id("c1");
  EXPECT_EQ(harness_->Run(wrong, &result).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Approve(session, "nope", true, &result).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(mcp_->Count("tools/call"), 0);

  Push({}, "launched");
  grpc::Status st = Approve(session, "c1", true, &result);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(result.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(result.output_text(), "launched");
  EXPECT_EQ(mcp_->Count("tools/call"), 1);
  const auto results = Results(session);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].tool_call_id(), "c1");
  EXPECT_EQ(results[0].output(), "Echo: launch");
  EXPECT_EQ(results[0].served_by(), "mcp:fake");
  EXPECT_EQ(Get(session).status(), v1::SESSION_STATUS_IDLE);
}

TEST_F(ToolSafetyTest, RejectedCallsNeverRunAndTellTheModelWhy) {
  const std::string session = NewSession({{"mcp:fake/echo", true}});
  Push({Call("c1", "mcp__fake__echo", R"({"message":"rm -rf"})")});
  v1::TurnResult result;
  ASSERT_TRUE(harness_->Send(session, "go", &result).ok());
  ASSERT_EQ(result.status(), v1::TURN_STATUS_REQUIRES_ACTION);
  Push({}, "understood");
  ASSERT_TRUE(Approve(session, "c1", false, &result, "too dangerous").ok());
  EXPECT_EQ(result.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(mcp_->Count("tools/call"), 0);
  const auto results = Results(session);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].is_error());
  EXPECT_THAT(results[0].output(), HasSubstr("rejected by the approver: too dangerous"));
}

TEST_F(ToolSafetyTest, MixedClientAndApprovalCallsAreAnsweredTogether) {
  v1::CreateAgentRequest req;
  req.mutable_agent()->set_model("scripted");
  v1::ToolSpec* client = req.mutable_agent()->add_tools();
  client->set_name("ask_user");
  client->set_kind(v1::TOOL_KIND_CLIENT);
  v1::ToolSpec* guarded = req.mutable_agent()->add_tools();
  guarded->set_name("mcp:fake/echo");
  guarded->set_kind(v1::TOOL_KIND_BUILTIN);
  guarded->set_requires_approval(true);
  v1::ToolSpec* free_tool = req.mutable_agent()->add_tools();
  free_tool->set_name("http:weather");
  free_tool->set_kind(v1::TOOL_KIND_BUILTIN);
  v1::Agent agent;
  ASSERT_TRUE(harness_->agents().CreateAgent(Ctx().get(), req, &agent).ok());
  const std::string session = harness_->CreateSession(agent.agent_id()).session_id();

  Push({Call("u1", "ask_user", "{}"), Call("g1", "mcp__fake__echo", R"({"message":"x"})"),
        Call("w1", "http__weather", R"({"city":"Oslo"})")});
  v1::TurnResult result;
  ASSERT_TRUE(harness_->Send(session, "go", &result).ok());
  ASSERT_EQ(result.status(), v1::TURN_STATUS_REQUIRES_ACTION);
  ASSERT_EQ(result.required_tool_calls_size(), 2);
  EXPECT_FALSE(result.required_tool_calls(0).requires_approval());
  EXPECT_TRUE(result.required_tool_calls(1).requires_approval());
  EXPECT_EQ(api_.requests(), 1) << "the unguarded server tool ran at once";

  // Only the client's result: the approval is missing.
  v1::RunTurnRequest partial;
  partial.set_session_id(session);
  v1::ToolResult* r = partial.add_tool_results();
  r->set_tool_call_id("u1");
  r->set_output("yes");
  grpc::Status st = harness_->Run(partial, &result);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(st.error_message(), HasSubstr("g1"));

  v1::RunTurnRequest both = partial;
  v1::ToolApproval* a = both.add_approvals();
  a->set_tool_call_id("g1");
  a->set_approved(true);
  Push({}, "all done");
  st = harness_->Run(both, &result);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(result.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(mcp_->Count("tools/call"), 1);
}

TEST_F(ToolSafetyTest, ReplayNeverRunsToolsThatNeedApproval) {
  const std::string session = NewSession({{"mcp:fake/echo", true}});
  Push({Call("c1", "mcp__fake__echo", R"({"message":"once"})")});
  v1::TurnResult result;
  ASSERT_TRUE(harness_->Send(session, "go", &result).ok());
  Push({}, "done");
  ASSERT_TRUE(Approve(session, "c1", true, &result).ok());
  ASSERT_EQ(mcp_->Count("tools/call"), 1);

  // The replay's model asks for the same call: it is rejected, not run again.
  Push({Call("r1", "mcp__fake__echo", R"({"message":"once"})")});
  Push({}, "replayed");
  v1::ReplaySessionRequest req;
  req.set_session_id(session);
  req.set_model("scripted");
  v1::ReplaySessionResponse resp;
  grpc::Status st = harness_->sessions().ReplaySession(Ctx().get(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(mcp_->Count("tools/call"), 1);
  ASSERT_EQ(resp.results_size(), 2);
  EXPECT_EQ(resp.results(0).status(), v1::TURN_STATUS_REQUIRES_ACTION);
  EXPECT_EQ(resp.results(1).status(), v1::TURN_STATUS_COMPLETED);
  const auto results = Results(resp.session().session_id());
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].is_error());
  EXPECT_THAT(results[0].output(), HasSubstr("a replay does not run tools that need approval"));
}

TEST_F(ToolSafetyTest, BadApprovalRequestsAreRejected) {
  v1::CreateAgentRequest req;
  req.mutable_agent()->set_model("scripted");
  v1::ToolSpec* client = req.mutable_agent()->add_tools();
  client->set_name("ask_user");
  client->set_kind(v1::TOOL_KIND_CLIENT);
  client->set_requires_approval(true);
  v1::Agent agent;
  grpc::Status st = harness_->agents().CreateAgent(Ctx().get(), req, &agent);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("requires_approval"));

  const std::string session = NewSession({{"mcp:fake/echo", true}});
  v1::RunTurnRequest dup;
  dup.set_session_id(session);
  dup.add_approvals()->set_tool_call_id("c1");
  dup.add_approvals()->set_tool_call_id("c1");
  v1::TurnResult result;
  // Two answers for one call don't match the pending calls (API.md: FAILED_PRECONDITION).
  EXPECT_EQ(harness_->Run(dup, &result).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  v1::RunTurnRequest empty_id;
  empty_id.set_session_id(session);
  empty_id.add_approvals();
  EXPECT_EQ(harness_->Run(empty_id, &result).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // An approval while nothing is pending.
  EXPECT_EQ(Approve(session, "c1", true, &result).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ToolSafetyTest, HttpToolRunsInATurnWithoutRecordingItsSecret) {
  const std::string session = NewSession({{"http:weather", false}});
  Push({Call("w1", "http__weather", R"({"city":"São Paulo"})")});
  Push({}, "warm");
  v1::TurnResult result;
  ASSERT_TRUE(harness_->Send(session, "weather?", &result).ok());
  EXPECT_EQ(result.status(), v1::TURN_STATUS_COMPLETED);
  const auto requests = harness_->scripted().requests();
  ASSERT_FALSE(requests.empty());
  ASSERT_EQ(requests[0].tools.size(), 1u);
  EXPECT_EQ(requests[0].tools[0].name, "http__weather");
  EXPECT_EQ(requests[0].tools[0].description, "Current weather of a city.");
  EXPECT_THAT(requests[0].tools[0].parameters_json_schema, HasSubstr("city"));

  const auto results = Results(session);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].is_error()) << results[0].output();
  EXPECT_EQ(results[0].served_by(), "http:weather");
  EXPECT_THAT(results[0].output(), HasSubstr("\"temp_c\":21"));
  EXPECT_THAT(results[0].output(), HasSubstr("Paulo"));  // the city the API saw in its path
  ASSERT_EQ(api_.authorizations().size(), 1u);
  EXPECT_EQ(api_.authorizations()[0], kSecret);
  for (const v1::Event& e : harness_->AllEvents(session)) {
    EXPECT_THAT(e.DebugString(), Not(HasSubstr(kSecret)));
  }

  // A model's arguments that break the schema never reach the API.
  Push({Call("w2", "http__weather", R"({"town":"Oslo"})")});
  Push({}, "sorry");
  ASSERT_TRUE(harness_->Send(session, "again", &result).ok());
  EXPECT_EQ(api_.requests(), 1);
  EXPECT_TRUE(Results(session).back().is_error());
}

TEST_F(ToolSafetyTest, OnlyIdempotentToolsAreRetried) {
  const std::string session = NewSession({{"http:flaky", false}, {"http:once", false}});
  api_.flaky_failures = 2;
  Push({Call("f1", "http__flaky", "{}")});
  Push({}, "ok");
  v1::TurnResult result;
  ASSERT_TRUE(harness_->Send(session, "flaky", &result).ok());
  auto results = Results(session);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_FALSE(results[0].is_error()) << results[0].output();
  EXPECT_EQ(results[0].output(), "ok after retries");
  EXPECT_EQ(api_.requests(), 3);

  // Same endpoint, not idempotent: one attempt, and its failure is the result.
  WeatherApi& api = api_;
  const int before = api.requests();
  api_.flaky_failures = 100;
  Push({Call("o1", "http__once", "{}")});
  Push({}, "failed");
  ASSERT_TRUE(harness_->Send(session, "once", &result).ok());
  results = Results(session);
  EXPECT_TRUE(results.back().is_error());
  EXPECT_THAT(results.back().output(), HasSubstr("503"));
  EXPECT_EQ(api.requests(), before + 1);
}

TEST_F(ToolSafetyTest, PerToolTimeoutCutsASlowMcpCall) {
  // mcp fake "slow" answers after 2 s; its tools: entry allows 200 ms.
  const std::string session = NewSession({{"mcp:fake/slow", false}});
  Push({Call("s1", "mcp__fake__slow", "{}")});
  Push({}, "gave up");
  v1::TurnResult result;
  const absl::Time start = absl::Now();
  ASSERT_TRUE(harness_->Send(session, "slow", &result).ok());
  EXPECT_LT(absl::Now() - start, absl::Seconds(1.5));
  auto results = Results(session);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_TRUE(results[0].is_error());
  EXPECT_THAT(results[0].output(), HasSubstr("did not answer within 200 ms"));

}

TEST_F(ToolSafetyTest, ConcurrencyLimitMakesCallsWaitForASlot) {
  // The gateway on its own, with one HTTP tool limited to one call at a time.
  tools::ToolGatewayOptions o;
  tools::HttpToolEntry slow;
  slow.options.name = "slow";
  slow.options.url = api_.url("/slow");
  slow.settings.max_concurrency = 1;
  o.http.push_back(slow);
  auto gateway = tools::ToolGateway::Create(std::move(o));
  ASSERT_TRUE(gateway.ok()) << gateway.status();
  std::string warning;
  const auto bindings =
      (*gateway)->Resolve("http:slow", tools::ToolAllowList(), absl::InfiniteFuture(), &warning);
  ASSERT_EQ(bindings.size(), 1u) << warning;
  const tools::ToolBinding tool = bindings[0];

  v1::ToolResult first;
  std::thread t([&] {
    first = (*gateway)->Call(tool, json::object(), tools::ToolAllowList(),
                             absl::Now() + absl::Seconds(10), nullptr);
  });
  ASSERT_TRUE(testing::Eventually([&] { return api_.requests() == 1; }, absl::Seconds(5)));
  // While the first call holds the only slot, a call whose deadline comes first never runs.
  v1::ToolResult busy = (*gateway)->Call(tool, json::object(), tools::ToolAllowList(),
                                         absl::Now() + absl::Milliseconds(100), nullptr);
  EXPECT_TRUE(busy.is_error());
  EXPECT_THAT(busy.output(), HasSubstr("max_concurrency"));
  // One with time to wait runs after the first.
  v1::ToolResult second = (*gateway)->Call(tool, json::object(), tools::ToolAllowList(),
                                           absl::Now() + absl::Seconds(10), nullptr);
  t.join();
  EXPECT_FALSE(first.is_error()) << first.output();
  EXPECT_FALSE(second.is_error()) << second.output();
  EXPECT_EQ(api_.requests(), 2);
  EXPECT_EQ(api_.max_in_flight(), 1);

  // A project whose list leaves the tool out cannot call it, even with a binding in hand.
  v1::ToolResult denied = (*gateway)->Call(tool, json::object(), tools::ToolAllowList::Only({}),
                                           absl::Now() + absl::Seconds(1), nullptr);
  EXPECT_TRUE(denied.is_error());
  EXPECT_THAT(denied.output(), HasSubstr("not allowed"));
  EXPECT_EQ(api_.requests(), 2);
}

TEST_F(ToolSafetyTest, ProjectAllowListsAreTheOperatorsAndHoldAtEveryCall) {
  v1::CreateProjectRequest preq;
  preq.set_name("tenant");
  v1::Project tenant;
  ASSERT_TRUE(projects_->CreateProject(Ctx().get(), preq, &tenant).ok());
  auto key_of = [&](v1::ApiKeyRole role) {
    v1::CreateApiKeyRequest kreq;
    kreq.set_project_id(tenant.project_id());
    kreq.set_role(role);
    kreq.set_name("k");
    v1::CreateApiKeyResponse key;
    EXPECT_TRUE(projects_->CreateApiKey(Ctx().get(), kreq, &key).ok());
    return key.secret();
  };
  const std::string admin = key_of(v1::API_KEY_ROLE_ADMIN);
  const std::string member = key_of(v1::API_KEY_ROLE_MEMBER);

  // Only the operator sets the list; entries are checked.
  EXPECT_EQ(SetAllowedTools(tenant.project_id(), {"mcp:fake"}, admin).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(SetAllowedTools(tenant.project_id(), {"ftp:x"}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(SetAllowedTools(tenant.project_id(), {"mcp:fake/echo", "http:weather"}).ok());
  // The tenant's admin may still change budgets: the list is kept.
  {
    v1::SetLimitsRequest req;
    req.set_project_id(tenant.project_id());
    req.mutable_limits()->set_requests_per_minute(1000);
    auto ctx = Ctx();
    ctx->AddMetadata("authorization", "Bearer " + admin);
    v1::Project p;
    ASSERT_TRUE(projects_->SetLimits(ctx.get(), req, &p).ok());
    ASSERT_TRUE(p.limits().has_allowed_tools());
    EXPECT_EQ(p.limits().allowed_tools().tools_size(), 2);
  }

  auto create = [&](const std::string& tool, v1::Agent* out) {
    v1::CreateAgentRequest req;
    req.mutable_agent()->set_model("scripted");
    v1::ToolSpec* spec = req.mutable_agent()->add_tools();
    spec->set_name(tool);
    spec->set_kind(v1::TOOL_KIND_BUILTIN);
    auto ctx = Ctx();
    ctx->AddMetadata("authorization", "Bearer " + member);
    return harness_->agents().CreateAgent(ctx.get(), req, out);
  };
  v1::Agent agent;
  EXPECT_EQ(create("mcp:fake/add", &agent).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(create("mcp:fake", &agent).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(create("http:flaky", &agent).error_code(), grpc::StatusCode::PERMISSION_DENIED);
  grpc::Status st = create("mcp:fake/echo", &agent);
  ASSERT_TRUE(st.ok()) << st.error_message();

  // The tenant sees what it may use.
  {
    v1::ListToolServersRequest req;
    auto ctx = Ctx();
    ctx->AddMetadata("authorization", "Bearer " + member);
    v1::ListToolServersResponse resp;
    ASSERT_TRUE(tools_->ListToolServers(ctx.get(), req, &resp).ok());
    std::map<std::string, bool> allowed;
    for (const v1::ToolServer& s : resp.servers()) {
      for (const v1::ToolInfo& t : s.tools()) allowed[t.spec_name()] = t.allowed();
    }
    EXPECT_TRUE(allowed.at("mcp:fake/echo"));
    EXPECT_FALSE(allowed.at("mcp:fake/add"));
    EXPECT_TRUE(allowed.at("http:weather"));
    EXPECT_FALSE(allowed.at("http:flaky"));
  }

  // The operator narrows the list: the running agent's next call is refused, not run.
  ASSERT_TRUE(SetAllowedTools(tenant.project_id(), {"http:weather"}).ok());
  v1::CreateSessionRequest sreq;
  sreq.set_agent_id(agent.agent_id());
  v1::Session session;
  {
    auto ctx = Ctx();
    ctx->AddMetadata("authorization", "Bearer " + member);
    ASSERT_TRUE(harness_->sessions().CreateSession(ctx.get(), sreq, &session).ok());
  }
  Push({Call("e1", "mcp__fake__echo", R"({"message":"hi"})")});
  Push({}, "no tool");
  v1::RunTurnRequest treq;
  treq.set_session_id(session.session_id());
  treq.add_input()->set_text("echo");
  v1::TurnResult result;
  {
    auto ctx = Ctx();
    ctx->AddMetadata("authorization", "Bearer " + member);
    st = harness_->sessions().RunTurn(ctx.get(), treq, &result);
  }
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(mcp_->Count("tools/call"), 0);
  const auto requests = harness_->scripted().requests();
  ASSERT_FALSE(requests.empty());
  EXPECT_TRUE(requests[0].tools.empty()) << "a tool no longer allowed is not offered";

  // "*" lifts the restriction.
  ASSERT_TRUE(SetAllowedTools(tenant.project_id(), {"*"}).ok());
  EXPECT_TRUE(create("mcp:fake/add", &agent).ok());
}

TEST_F(ToolSafetyTest, ListToolServersShowsSettingsAndHealth) {
  v1::ListToolServersRequest req;
  req.set_refresh(true);
  v1::ListToolServersResponse resp;
  grpc::Status st = tools_->ListToolServers(Ctx().get(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(resp.servers_size(), 5);  // fake (mcp) + 4 HTTP tools
  const v1::ToolServer& fake = resp.servers(0);
  EXPECT_EQ(fake.name(), "fake");
  EXPECT_EQ(fake.kind(), "mcp");
  EXPECT_TRUE(fake.healthy()) << fake.last_error();
  EXPECT_TRUE(fake.has_last_contact_time());
  ASSERT_EQ(fake.tools_size(), 5);
  for (const v1::ToolInfo& t : fake.tools()) {
    EXPECT_TRUE(t.allowed());
    if (t.name() == "slow") {
      EXPECT_EQ(t.timeout_ms(), 200);
    }
  }
  bool saw_weather = false;
  for (const v1::ToolServer& s : resp.servers()) {
    EXPECT_THAT(s.DebugString(), Not(HasSubstr(kSecret)));
    if (s.name() != "weather") continue;
    saw_weather = true;
    EXPECT_EQ(s.kind(), "http");
    ASSERT_EQ(s.tools_size(), 1);
    EXPECT_EQ(s.tools(0).model_name(), "http__weather");
    EXPECT_EQ(s.tools(0).spec_name(), "http:weather");
  }
  EXPECT_TRUE(saw_weather);
}

TEST_F(ToolSafetyTest, AgentctlListsToolsApprovesCallsAndSetsAllowLists) {
  testing::TempDir scratch;
  auto cli = [&](const std::vector<std::string>& args) {
    return testing::RunAgentctl(
        {harness_->address(), harness_->admin_key(), args, "", scratch.path()});
  };
  testing::CliResult list = cli({"tools", "list", "--refresh"});
  ASSERT_EQ(list.code, 0) << list.all();
  EXPECT_THAT(list.out, HasSubstr("mcp:fake/echo"));
  EXPECT_THAT(list.out, HasSubstr("http:weather"));
  EXPECT_THAT(list.out, HasSubstr("mcp__fake__echo"));
  EXPECT_THAT(list.out, HasSubstr("ok at"));
  EXPECT_THAT(list.all(), Not(HasSubstr(kSecret)));
  testing::CliResult as_json = cli({"tools", "list", "-o", "json"});
  ASSERT_EQ(as_json.code, 0) << as_json.all();
  EXPECT_EQ(json::parse(as_json.out)["servers"].size(), 5u);

  // A call waiting for approval, approved from the command line.
  const std::string session = NewSession({{"mcp:fake/echo", true}});
  Push({Call("c9", "mcp__fake__echo", R"({"message":"from cli"})")});
  testing::CliResult sent = cli({"send", session, "go"});
  ASSERT_EQ(sent.code, 0) << sent.all();
  EXPECT_THAT(sent.out, HasSubstr("approval"));
  EXPECT_THAT(sent.out, HasSubstr("--approve c9"));
  Push({}, "approved and done");
  testing::CliResult approved = cli({"send", session, "--approve", "c9"});
  ASSERT_EQ(approved.code, 0) << approved.all();
  EXPECT_THAT(approved.out, HasSubstr("approved and done"));
  EXPECT_EQ(mcp_->Count("tools/call"), 1);

  // The operator narrows the default project's tools; `limits get` shows it; "*" undoes it.
  testing::CliResult set = cli({"limits", "set", "--allowed-tools", "mcp:fake/echo,http:weather"});
  ASSERT_EQ(set.code, 0) << set.all();
  EXPECT_THAT(set.out, HasSubstr("mcp:fake/echo, http:weather"));
  testing::CliResult narrowed = cli({"tools", "list"});
  EXPECT_THAT(narrowed.out, HasSubstr("no"));
  testing::CliResult budget = cli({"limits", "set", "--monthly-budget-usd", "5"});
  ASSERT_EQ(budget.code, 0) << budget.all();
  EXPECT_THAT(budget.out, HasSubstr("mcp:fake/echo, http:weather")) << "other flags keep the list";
  testing::CliResult all = cli({"limits", "set", "--allowed-tools", "*"});
  ASSERT_EQ(all.code, 0) << all.all();
  testing::CliResult bad = cli({"limits", "set", "--allowed-tools", "ftp:nope"});
  EXPECT_EQ(bad.code, 1);
  EXPECT_THAT(bad.err, HasSubstr("INVALID_ARGUMENT"));
}

}  // namespace
}  // namespace agentd
