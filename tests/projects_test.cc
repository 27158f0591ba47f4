// Projects end to end: usage counted per model call (by agent, session, model and day, in the
// step's own write), limits enforced before any model call, audit records, and the key-secret
// canary (a secret never reaches logs, audit records or the data dir).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "agentd/v1/project.grpc.pb.h"
#include "common/ids.h"
#include "testing/log_capture.h"
#include "testing/server_harness.h"

namespace agentd {
namespace {

using testing::Ctx;
using testing::ServerHarness;

// The harness's `scripted` model costs $1 per million input tokens and $2 per million output.
constexpr int64_t kIn = 100;
constexpr int64_t kOut = 50;
constexpr double kTurnCost = (kIn * 1.0 + kOut * 2.0) / 1e6;  // 0.0002

class ProjectsTest : public ::testing::Test {
 protected:
  ProjectsTest() : projects_(v1::ProjectService::NewStub(h_.channel())) {}

  void PushReplies(int n) {
    for (int i = 0; i < n; ++i) {
      backend::ScriptedReply r;
      r.text = "ok";
      r.input_tokens = kIn;
      r.output_tokens = kOut;
      h_.scripted().Push(r);
    }
  }

  grpc::Status SetLimits(const v1::ProjectLimits& limits, const std::string& project = "") {
    v1::SetLimitsRequest req;
    req.set_project_id(project);
    *req.mutable_limits() = limits;
    v1::Project p;
    return projects_->SetLimits(Ctx().get(), req, &p);
  }

  v1::GetUsageResponse Usage(v1::UsageGroupBy by) {
    v1::GetUsageRequest req;
    req.set_group_by(by);
    v1::GetUsageResponse resp;
    grpc::Status st = projects_->GetUsage(Ctx().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return resp;
  }

  int64_t LastSeq(const std::string& session_id) {
    v1::GetSessionRequest req;
    req.set_session_id(session_id);
    v1::Session s;
    EXPECT_TRUE(h_.sessions().GetSession(Ctx().get(), req, &s).ok());
    return s.last_seq();
  }

  ServerHarness h_;
  std::unique_ptr<v1::ProjectService::Stub> projects_;
};

TEST_F(ProjectsTest, UsageIsCountedByAgentSessionModelAndDay) {
  const v1::Agent a1 = h_.CreateAgent("scripted");
  const v1::Agent a2 = h_.CreateAgent("scripted");
  const std::string s1 = h_.CreateSession(a1.agent_id()).session_id();
  const std::string s2 = h_.CreateSession(a2.agent_id()).session_id();
  PushReplies(3);
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(s1, "one", &r).ok());
  ASSERT_TRUE(h_.Send(s1, "two", &r).ok());
  ASSERT_TRUE(h_.Send(s2, "three", &r).ok());

  auto check = [&] {
    v1::GetUsageResponse by_agent = Usage(v1::USAGE_GROUP_BY_AGENT);
    ASSERT_EQ(by_agent.rows_size(), 2);
    for (const v1::UsageRow& row : by_agent.rows()) {
      const int turns = row.group() == a1.agent_id() ? 2 : 1;
      EXPECT_TRUE(row.group() == a1.agent_id() || row.group() == a2.agent_id()) << row.group();
      EXPECT_EQ(row.usage().input_tokens(), turns * kIn);
      EXPECT_EQ(row.usage().output_tokens(), turns * kOut);
      EXPECT_EQ(row.usage().model_calls(), turns);
      EXPECT_NEAR(row.usage().cost_usd(), turns * kTurnCost, 1e-12);
    }
    EXPECT_EQ(by_agent.total().model_calls(), 3);
    EXPECT_NEAR(by_agent.total().cost_usd(), 3 * kTurnCost, 1e-12);

    v1::GetUsageResponse by_session = Usage(v1::USAGE_GROUP_BY_SESSION);
    ASSERT_EQ(by_session.rows_size(), 2);
    v1::GetUsageResponse by_model = Usage(v1::USAGE_GROUP_BY_MODEL);
    ASSERT_EQ(by_model.rows_size(), 1);
    EXPECT_EQ(by_model.rows(0).group(), "scripted");
    EXPECT_EQ(by_model.rows(0).usage().input_tokens(), 3 * kIn);
    v1::GetUsageResponse by_day = Usage(v1::USAGE_GROUP_BY_DAY);
    ASSERT_EQ(by_day.rows_size(), 1);
    EXPECT_EQ(by_day.rows(0).group().size(), 10u) << by_day.rows(0).group();  // YYYY-MM-DD
    EXPECT_EQ(by_day.total().output_tokens(), 3 * kOut);

    // Session.usage agrees with the counters.
    v1::GetSessionRequest get;
    get.set_session_id(s1);
    v1::Session s;
    ASSERT_TRUE(h_.sessions().GetSession(Ctx().get(), get, &s).ok());
    EXPECT_EQ(s.usage().input_tokens(), 2 * kIn);
    EXPECT_EQ(s.usage().model_calls(), 2);
  };
  check();
  h_.Restart();  // counters are durable
  projects_ = v1::ProjectService::NewStub(h_.channel());
  check();

  // A time range that ends before today holds nothing.
  v1::GetUsageRequest req;
  req.set_group_by(v1::USAGE_GROUP_BY_DAY);
  req.mutable_start_time()->set_seconds(0);
  req.mutable_end_time()->set_seconds(86400);
  v1::GetUsageResponse old;
  ASSERT_TRUE(projects_->GetUsage(Ctx().get(), req, &old).ok());
  EXPECT_EQ(old.rows_size(), 0);
  EXPECT_EQ(old.total().model_calls(), 0);
  // end before start is an error.
  req.mutable_start_time()->set_seconds(86400 * 2);
  EXPECT_EQ(projects_->GetUsage(Ctx().get(), req, &old).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ProjectsTest, MonthlyBudgetRejectsTheNextTurnBeforeAnyModelCall) {
  const std::string sid = h_.CreateSession(h_.CreateAgent("scripted").agent_id()).session_id();
  v1::ProjectLimits limits;
  limits.set_monthly_budget_usd(kTurnCost / 2);  // the first turn is admitted and overshoots
  ASSERT_TRUE(SetLimits(limits).ok());
  PushReplies(2);
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(sid, "first", &r).ok());
  const int64_t seq = LastSeq(sid);
  const size_t calls = h_.scripted().requests().size();
  grpc::Status st = h_.Send(sid, "second", &r);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(st.error_message(), "monthly budget")) << st.error_message();
  EXPECT_TRUE(absl::StrContains(st.error_message(), "resets at")) << st.error_message();
  EXPECT_EQ(h_.scripted().requests().size(), calls) << "the model was called";
  EXPECT_EQ(LastSeq(sid), seq) << "a rejected turn appended events";

  // Raising the budget takes effect on the next call.
  limits.set_monthly_budget_usd(1.0);
  ASSERT_TRUE(SetLimits(limits).ok());
  EXPECT_TRUE(h_.Send(sid, "third", &r).ok());
}

TEST_F(ProjectsTest, BudgetIsCheckedBeforeEveryStepOfATurn) {
  const std::string sid = h_.CreateSession(h_.CreateAgent("scripted").agent_id()).session_id();
  v1::ProjectLimits limits;
  limits.set_monthly_budget_usd(kTurnCost / 2);
  ASSERT_TRUE(SetLimits(limits).ok());
  // Step 1 calls a tool the agent does not have: its error goes back to the model in step 2,
  // which the spent budget must stop.
  backend::ScriptedReply step1;
  step1.input_tokens = kIn;
  step1.output_tokens = kOut;
  v1::ToolCall call;
  call.set_id("c1");
  call.set_name("no_such_tool");
  call.set_arguments_json("{}");
  step1.tool_calls.push_back(call);
  h_.scripted().Push(step1);
  PushReplies(1);
  v1::TurnResult r;
  grpc::Status st = h_.Send(sid, "go", &r);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  EXPECT_EQ(h_.scripted().requests().size(), 1u);
  // The turn is recorded as failed, with the first step's usage counted.
  const std::vector<v1::Event> events = h_.AllEvents(sid);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type(), v1::EVENT_TYPE_TURN_FAILED);
  EXPECT_TRUE(absl::StrContains(events.back().turn().error(), "monthly budget"));
  EXPECT_EQ(Usage(v1::USAGE_GROUP_BY_DAY).total().model_calls(), 1);
}

TEST_F(ProjectsTest, ConcurrentTurnsOvershootOnlyByTheStepsInFlight) {
  constexpr int kSessions = 6;
  const std::string agent = h_.CreateAgent("scripted").agent_id();
  std::vector<std::string> sids;
  for (int i = 0; i < kSessions; ++i) sids.push_back(h_.CreateSession(agent).session_id());
  v1::ProjectLimits limits;
  limits.set_monthly_budget_usd(kTurnCost / 2);
  ASSERT_TRUE(SetLimits(limits).ok());
  for (int i = 0; i < 2 * kSessions; ++i) {
    backend::ScriptedReply r;
    r.text = "slow";
    r.input_tokens = kIn;
    r.output_tokens = kOut;
    r.delay = absl::Milliseconds(300);  // all admitted before any spends
    h_.scripted().Push(r);
  }
  std::vector<std::thread> threads;
  std::vector<grpc::StatusCode> codes(kSessions);
  for (int i = 0; i < kSessions; ++i) {
    threads.emplace_back([&, i] {
      v1::TurnResult r;
      codes[i] = h_.Send(sids[i], "go", &r).error_code();
    });
  }
  for (auto& t : threads) t.join();
  int ok = 0;
  for (auto c : codes) ok += c == grpc::StatusCode::OK;
  EXPECT_GE(ok, 1);
  // Spent: at most the budget plus one step per turn that was in flight.
  const double spent = Usage(v1::USAGE_GROUP_BY_DAY).total().cost_usd();
  EXPECT_LE(spent, limits.monthly_budget_usd() + kSessions * kTurnCost + 1e-12);
  EXPECT_NEAR(spent, ok * kTurnCost, 1e-12);
  // Now the budget is spent: the next turn is refused before any model call.
  v1::TurnResult r;
  EXPECT_EQ(h_.Send(sids[0], "again", &r).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
}

TEST_F(ProjectsTest, DailyTokenLimit) {
  const std::string sid = h_.CreateSession(h_.CreateAgent("scripted").agent_id()).session_id();
  v1::ProjectLimits limits;
  limits.set_daily_token_limit(kIn + kOut - 1);
  ASSERT_TRUE(SetLimits(limits).ok());
  PushReplies(2);
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(sid, "first", &r).ok());
  grpc::Status st = h_.Send(sid, "second", &r);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(st.error_message(), "daily token limit")) << st.error_message();
  EXPECT_TRUE(absl::StrContains(st.error_message(), "resets at")) << st.error_message();
}

TEST_F(ProjectsTest, RequestsPerMinute) {
  const std::string sid = h_.CreateSession(h_.CreateAgent("echo").agent_id()).session_id();
  v1::ProjectLimits limits;
  limits.set_requests_per_minute(2);
  ASSERT_TRUE(SetLimits(limits).ok());
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(sid, "one", &r).ok());
  ASSERT_TRUE(h_.Send(sid, "two", &r).ok());
  const int64_t seq = LastSeq(sid);
  grpc::Status st = h_.Send(sid, "three", &r);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(absl::StrContains(st.error_message(), "requests_per_minute")) << st.error_message();
  EXPECT_TRUE(absl::StrContains(st.error_message(), "retry in")) << st.error_message();
  EXPECT_EQ(LastSeq(sid), seq);
  // Lifting the limit lets the next request through.
  limits.set_requests_per_minute(0);
  ASSERT_TRUE(SetLimits(limits).ok());
  EXPECT_TRUE(h_.Send(sid, "four", &r).ok());
}

TEST_F(ProjectsTest, LimitsBelongToOneProject) {
  // Project default is out of budget; a new project is not.
  v1::ProjectLimits limits;
  limits.set_requests_per_minute(1);
  ASSERT_TRUE(SetLimits(limits).ok());
  const std::string sid = h_.CreateSession(h_.CreateAgent("echo").agent_id()).session_id();
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(sid, "one", &r).ok());
  EXPECT_EQ(h_.Send(sid, "two", &r).error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);

  v1::CreateProjectRequest preq;
  preq.set_name("other");
  v1::Project other;
  ASSERT_TRUE(projects_->CreateProject(Ctx().get(), preq, &other).ok());
  v1::CreateApiKeyRequest kreq;
  kreq.set_project_id(other.project_id());
  kreq.set_role(v1::API_KEY_ROLE_MEMBER);
  kreq.set_name("m");
  v1::CreateApiKeyResponse key;
  ASSERT_TRUE(projects_->CreateApiKey(Ctx().get(), kreq, &key).ok());
  auto with_key = [&] {
    auto c = Ctx();
    c->AddMetadata("authorization", "Bearer " + key.secret());
    return c;
  };
  v1::CreateAgentRequest areq;
  areq.mutable_agent()->set_name("a");
  areq.mutable_agent()->set_model("echo");
  v1::Agent agent;
  ASSERT_TRUE(h_.agents().CreateAgent(with_key().get(), areq, &agent).ok());
  v1::CreateSessionRequest sreq;
  sreq.set_agent_id(agent.agent_id());
  v1::Session s;
  ASSERT_TRUE(h_.sessions().CreateSession(with_key().get(), sreq, &s).ok());
  v1::RunTurnRequest treq;
  treq.set_session_id(s.session_id());
  treq.add_input()->set_text("hi");
  for (int i = 0; i < 3; ++i) {
    grpc::Status st = h_.sessions().RunTurn(with_key().get(), treq, &r);
    EXPECT_TRUE(st.ok()) << st.error_message();
  }
}

TEST_F(ProjectsTest, SetLimitsValidatesAndIsAudited) {
  v1::ProjectLimits bad;
  bad.set_monthly_budget_usd(-1);
  EXPECT_EQ(SetLimits(bad).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  bad.set_monthly_budget_usd(std::numeric_limits<double>::quiet_NaN());
  EXPECT_EQ(SetLimits(bad).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::ProjectLimits limits;
  limits.set_daily_token_limit(1000);
  ASSERT_TRUE(SetLimits(limits).ok());
  v1::GetProjectRequest get;
  v1::Project p;
  ASSERT_TRUE(projects_->GetProject(Ctx().get(), get, &p).ok());
  EXPECT_EQ(p.project_id(), "default");
  EXPECT_EQ(p.limits().daily_token_limit(), 1000);

  v1::ListAuditEventsRequest areq;
  v1::ListAuditEventsResponse audit;
  ASSERT_TRUE(projects_->ListAuditEvents(Ctx().get(), areq, &audit).ok());
  int changes = 0;
  for (const v1::AuditEvent& e : audit.events()) {
    if (e.action() == v1::AUDIT_ACTION_LIMITS_CHANGED) {
      ++changes;
      EXPECT_EQ(e.outcome(), "OK");
      EXPECT_FALSE(e.key_id().empty());
      EXPECT_EQ(e.method(), "SetLimits");
    }
  }
  EXPECT_EQ(changes, 1);  // the rejected calls changed nothing
}

TEST(ProjectsCanaryTest, KeySecretsNeverReachLogsAuditOrTheDataDir) {
  testing::LogCapture logs;
  ServerHarness h;
  auto projects = v1::ProjectService::NewStub(h.channel());
  v1::CreateApiKeyRequest kreq;
  kreq.set_role(v1::API_KEY_ROLE_MEMBER);
  kreq.set_name("canary");
  v1::CreateApiKeyResponse created;
  ASSERT_TRUE(projects->CreateApiKey(Ctx().get(), kreq, &created).ok());
  const std::string secret = created.secret();
  ASSERT_GT(secret.size(), 40u);
  // The secret part of the key (after "agd_<key id>_") is the canary.
  const std::string canary = secret.substr(secret.rfind('_') + 1);
  ASSERT_GE(canary.size(), 32u);
  const std::string wrong_canary = NewId("") + NewId("");  // 256 random bits, hex

  auto with = [](const std::string& header) {
    auto c = Ctx();
    c->AddMetadata("authorization", header);
    return c;
  };
  v1::ListAgentsRequest lreq;
  v1::ListAgentsResponse lresp;
  EXPECT_TRUE(h.agents().ListAgents(with("Bearer " + secret).get(), lreq, &lresp).ok());
  // A wrong secret under the right key id, a garbage key, a READER-level denial: all audited.
  const std::string wrong = secret.substr(0, secret.rfind('_') + 1) + wrong_canary;
  EXPECT_EQ(h.agents().ListAgents(with("Bearer " + wrong).get(), lreq, &lresp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(h.agents().ListAgents(with("Bearer garbage-" + wrong_canary).get(), lreq, &lresp)
                .error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  v1::CreateProjectRequest preq;
  preq.set_name("nope");
  v1::Project p;
  EXPECT_EQ(projects->CreateProject(with("Bearer " + secret).get(), preq, &p).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  v1::RevokeApiKeyRequest rreq;
  rreq.set_key_id(created.key().key_id());
  google::protobuf::Empty empty;
  ASSERT_TRUE(projects->RevokeApiKey(Ctx().get(), rreq, &empty).ok());
  EXPECT_EQ(h.agents().ListAgents(with("Bearer " + secret).get(), lreq, &lresp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  // The audit log has the story, by key id, without any secret.
  v1::ListAuditEventsRequest areq;
  areq.set_page_size(1000);
  v1::ListAuditEventsResponse audit;
  ASSERT_TRUE(projects->ListAuditEvents(Ctx().get(), areq, &audit).ok());
  int auth_failures = 0, denials = 0, created_n = 0, revoked_n = 0;
  for (const v1::AuditEvent& e : audit.events()) {
    const std::string bytes = e.SerializeAsString();
    EXPECT_FALSE(absl::StrContains(bytes, canary)) << e.DebugString();
    EXPECT_FALSE(absl::StrContains(bytes, wrong_canary)) << e.DebugString();
    EXPECT_FALSE(absl::StrContains(bytes, h.admin_key())) << e.DebugString();
    switch (e.action()) {
      case v1::AUDIT_ACTION_AUTHENTICATION_FAILED: ++auth_failures; break;
      case v1::AUDIT_ACTION_PERMISSION_DENIED:
        ++denials;
        EXPECT_EQ(e.key_id(), created.key().key_id());
        EXPECT_EQ(e.method(), "CreateProject");
        break;
      case v1::AUDIT_ACTION_API_KEY_CREATED: created_n += e.detail().find(created.key().key_id()) != std::string::npos; break;
      case v1::AUDIT_ACTION_API_KEY_REVOKED: ++revoked_n; break;
      default: break;
    }
  }
  EXPECT_EQ(auth_failures, 3);
  EXPECT_EQ(denials, 1);
  EXPECT_EQ(created_n, 1);
  EXPECT_EQ(revoked_n, 1);

  h.Stop();
  const std::string log_text = logs.text();
  EXPECT_TRUE(absl::StrContains(log_text, "UNAUTHENTICATED")) << "the capture saw nothing";
  EXPECT_FALSE(absl::StrContains(log_text, canary)) << "key secret leaked to the log";
  EXPECT_FALSE(absl::StrContains(log_text, wrong_canary)) << "presented secret leaked to the log";
  EXPECT_FALSE(absl::StrContains(log_text, h.admin_key()));
  int files = 0;
  bool saw_audit = false;  // the scan reads what the server wrote
  for (const auto& entry : std::filesystem::recursive_directory_iterator(h.data_dir())) {
    if (!entry.is_regular_file()) continue;
    ++files;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_FALSE(absl::StrContains(bytes, canary)) << "key secret stored in " << entry.path();
    EXPECT_FALSE(absl::StrContains(bytes, wrong_canary)) << entry.path();
    EXPECT_FALSE(absl::StrContains(bytes, h.admin_key())) << entry.path();
    saw_audit = saw_audit || absl::StrContains(bytes, created.key().key_id());
  }
  EXPECT_GT(files, 3);
  EXPECT_TRUE(saw_audit);
}

}  // namespace
}  // namespace agentd
