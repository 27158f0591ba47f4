// Unit tests of src/auth with a store: the LimitEnforcer (rate, budget and token limits) and the
// ProjectManager (projects, keys, usage, limits, audit), against a real RocksDbStore in a temp
// dir. Keys, policy, the Authenticator and bootstrap are in auth_test.cc.
#include <atomic>
#include <cmath>
#include <limits>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "auth/authenticator.h"
#include "auth/bootstrap.h"
#include "auth/limits.h"
#include "auth/project_manager.h"
#include "auth_test_util.h"

namespace agentd::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using authtest::StoreTest;

// ---- LimitEnforcer ------------------------------------------------------------------------

v1::ProjectLimits Limits(double budget, int64_t tokens, int32_t rpm) {
  v1::ProjectLimits l;
  l.set_monthly_budget_usd(budget);
  l.set_daily_token_limit(tokens);
  l.set_requests_per_minute(rpm);
  return l;
}

v1::Usage MakeUsage(int64_t in, int64_t out, double cost) {
  v1::Usage u;
  u.set_input_tokens(in);
  u.set_output_tokens(out);
  u.set_model_calls(1);
  u.set_cost_usd(cost);
  return u;
}

std::string UtcMidnight(absl::CivilDay day) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromCivil(day, absl::UTCTimeZone()),
                          absl::UTCTimeZone());
}

TEST_F(StoreTest, RequestsPerMinuteBucket) {
  MakeProject("p1", Limits(0, 0, 3));
  LimitEnforcer limits(store_.get(), absl::Hours(1));
  for (int i = 0; i < 3; ++i) ASSERT_OK(limits.AdmitTurn("p1"));
  const absl::Status s = limits.AdmitTurn("p1");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  // 3/min refills one request in 20 s.
  EXPECT_EQ(s.message(), "requests_per_minute limit of 3 exceeded for project p1; retry in 20.0s");
  ASSERT_OK(limits.CheckStep("p1"));  // steps of a running turn are not rate limited
  // A project without a record, or without limits, is unlimited.
  for (int i = 0; i < 100; ++i) ASSERT_OK(limits.AdmitTurn("no-such-project"));
}

TEST_F(StoreTest, RequestsPerMinuteRefill) {
  MakeProject("p1", Limits(0, 0, 600));  // 10 per second
  LimitEnforcer limits(store_.get(), absl::Hours(1));
  int admitted = 0;
  while (limits.AdmitTurn("p1").ok() && admitted < 1000) ++admitted;
  EXPECT_GE(admitted, 600);
  EXPECT_LE(admitted, 610);
  const absl::Status s = limits.AdmitTurn("p1");
  EXPECT_THAT(std::string(s.message()), HasSubstr("retry in 0.1s"));
  absl::SleepFor(absl::Milliseconds(120));
  ASSERT_OK(limits.AdmitTurn("p1"));
}

TEST_F(StoreTest, ConcurrentAdmissionsShareOneBucket) {
  MakeProject("p1", Limits(0, 0, 100));
  LimitEnforcer limits(store_.get(), absl::Hours(1));
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (limits.AdmitTurn("p1").ok()) ++admitted;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_GE(admitted.load(), 100);
  EXPECT_LE(admitted.load(), 102);
}

TEST_F(StoreTest, MonthlyBudget) {
  MakeProject("p1", Limits(1.0, 0, 0));
  const absl::Time now = absl::Now();
  const int32_t today = DayOf(now);
  const absl::CivilMonth month = absl::ToCivilMonth(now, absl::UTCTimeZone());
  const int32_t last_month = DayOf(absl::FromCivil(absl::CivilDay(month), absl::UTCTimeZone())) - 1;
  // Spending of last month does not count.
  ASSERT_OK(store_->AddUsage("p1", UsageDeltas("a", "s", "m", last_month, MakeUsage(1, 1, 50))));
  ASSERT_OK(store_->AddUsage("p1", UsageDeltas("a", "s", "m", today, MakeUsage(1, 1, 0.6))));
  LimitEnforcer limits(store_.get(), absl::Hours(1));
  ASSERT_OK(limits.AdmitTurn("p1"));
  limits.Recorded("p1", MakeUsage(10, 10, 0.5));  // cached: no store write needed to count it
  const absl::Status s = limits.CheckStep("p1");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(),
            absl::StrCat("monthly budget of $1.00 exceeded for project p1 (spent $1.10); "
                         "resets at ",
                         UtcMidnight(absl::CivilDay(month + 1))));
  EXPECT_EQ(limits.AdmitTurn("p1").code(), absl::StatusCode::kResourceExhausted);
  // Raising the budget takes effect after Invalidate.
  ASSERT_OK(store_
                ->SetProjectLimits(
                    "p1", Limits(2.0, 0, 0), NowProto(),
                    NewAuditEvent(v1::AUDIT_ACTION_LIMITS_CHANGED, "p1", "", "t", "OK", ""))
                .status());
  EXPECT_FALSE(limits.CheckStep("p1").ok());
  limits.Invalidate("p1");
  ASSERT_OK(limits.CheckStep("p1"));  // the store says 0.6 (Recorded usage was never stored)
}

TEST_F(StoreTest, DailyTokenLimit) {
  MakeProject("p1", Limits(0, 100, 0));
  const int32_t today = DayOf(absl::Now());
  ASSERT_OK(store_->AddUsage("p1", UsageDeltas("a", "s", "m", today - 1, MakeUsage(500, 500, 0))));
  ASSERT_OK(store_->AddUsage("p1", UsageDeltas("a", "s", "m", today, MakeUsage(40, 40, 0))));
  LimitEnforcer limits(store_.get(), absl::ZeroDuration());  // always read the store
  ASSERT_OK(limits.AdmitTurn("p1"));
  ASSERT_OK(store_->AddUsage("p1", UsageDeltas("a", "s", "m", today, MakeUsage(20, 10, 0))));
  const absl::Status s = limits.AdmitTurn("p1");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  const absl::CivilDay tomorrow = absl::ToCivilDay(absl::Now(), absl::UTCTimeZone()) + 1;
  EXPECT_EQ(s.message(), absl::StrCat("daily token limit of 100 exceeded for project p1 (used "
                                      "110); resets at ",
                                      UtcMidnight(tomorrow)));
}

// ---- ProjectManager -----------------------------------------------------------------------

class ProjectManagerTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    ASSERT_OK(EnsureBootstrap(store_.get(), {dir_.Sub("data"), "operator-key-for-tests"}));
    op_ = Identity{"default", *KeyIdOf("operator-key-for-tests"), v1::API_KEY_ROLE_ADMIN};
    limits_ = std::make_unique<LimitEnforcer>(store_.get(), absl::Hours(1));
    pm_ = std::make_unique<ProjectManager>(store_.get(), limits_.get());
  }
  std::string NewProject(const std::string& name) {
    v1::CreateProjectRequest req;
    req.set_name(name);
    auto p = pm_->CreateProject(op_, call_, req);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? p->project_id() : "";
  }
  /// A key of `project` created through the manager by `caller`.
  absl::StatusOr<v1::CreateApiKeyResponse> NewKey(const Identity& caller,
                                                  const std::string& project, v1::ApiKeyRole role) {
    v1::CreateApiKeyRequest req;
    req.set_project_id(project);
    req.set_role(role);
    req.set_name("test key");
    return pm_->CreateApiKey(caller, call_, req);
  }
  Identity As(const v1::ApiKey& key) {
    return Identity{key.project_id(), key.key_id(), key.role()};
  }

  std::unique_ptr<LimitEnforcer> limits_;
  std::unique_ptr<ProjectManager> pm_;
  Identity op_;
  CallInfo call_{"CreateApiKey", "req-pm", "peer-pm"};
};

TEST_F(ProjectManagerTest, CreateAndListProjects) {
  for (const std::string& bad : {std::string(), std::string(129, 'n'), std::string("a\x01")}) {
    v1::CreateProjectRequest req;
    req.set_name(bad);
    EXPECT_EQ(pm_->CreateProject(op_, call_, req).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  const std::string a = NewProject("Team A");
  EXPECT_THAT(a, MatchesRegex("proj_[0-9a-f]{32}"));
  v1::GetProjectRequest get;
  get.set_project_id(a);
  EXPECT_EQ(pm_->GetProject(op_, get)->name(), "Team A");
  auto all = pm_->ListProjects(op_, {});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->projects_size(), 2);  // default and A

  const auto admin_key = NewKey(op_, a, v1::API_KEY_ROLE_ADMIN);
  ASSERT_TRUE(admin_key.ok()) << admin_key.status();
  const Identity admin = As(admin_key->key());
  auto own = pm_->ListProjects(admin, {});
  ASSERT_EQ(own->projects_size(), 1);
  EXPECT_EQ(own->projects(0).project_id(), a);
  get.set_project_id("default");
  EXPECT_EQ(pm_->GetProject(admin, get).status().code(), absl::StatusCode::kNotFound);
  get.set_project_id("proj_missing");
  EXPECT_EQ(pm_->GetProject(op_, get).status().message(), "project proj_missing not found");
}

TEST_F(ProjectManagerTest, KeysStayInTheirProject) {
  const std::string a = NewProject("A"), b = NewProject("B");
  auto a_admin_key = NewKey(op_, a, v1::API_KEY_ROLE_ADMIN);
  auto b_member_key = NewKey(op_, b, v1::API_KEY_ROLE_MEMBER);
  ASSERT_TRUE(a_admin_key.ok() && b_member_key.ok());
  const Identity a_admin = As(a_admin_key->key());

  // The secret authenticates as a key of A.
  AuditLog audit(store_.get());
  Authenticator authn(store_.get(), &audit);
  auto id = authn.Check(absl::StrCat("Bearer ", a_admin_key->secret()), {"ListApiKeys", "", ""});
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->project_id, a);

  // Another project looks exactly like a missing one.
  auto other = NewKey(a_admin, b, v1::API_KEY_ROLE_READER);
  auto missing = NewKey(a_admin, "proj_missing", v1::API_KEY_ROLE_READER);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(other.status().message(), absl::StrCat("project ", b, " not found"));
  EXPECT_EQ(missing.status().message(), "project proj_missing not found");
  EXPECT_EQ(NewKey(op_, "proj_missing", v1::API_KEY_ROLE_READER).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(NewKey(a_admin, "", v1::API_KEY_ROLE_UNSPECIFIED).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto own = NewKey(a_admin, "", v1::API_KEY_ROLE_READER);
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(own->key().project_id(), a);

  v1::ListApiKeysRequest list;
  list.set_project_id(b);
  EXPECT_EQ(pm_->ListApiKeys(a_admin, list).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(pm_->ListApiKeys(op_, list)->keys_size(), 1);
  list.set_project_id("");
  EXPECT_EQ(pm_->ListApiKeys(a_admin, list)->keys_size(), 2);

  v1::RevokeApiKeyRequest revoke;
  revoke.set_key_id(b_member_key->key().key_id());
  const absl::Status cross = pm_->RevokeApiKey(a_admin, call_, revoke);
  EXPECT_EQ(cross.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cross.message(), absl::StrCat("API key ", revoke.key_id(), " not found"));
  ASSERT_OK(pm_->RevokeApiKey(op_, call_, revoke));  // the operator may
  list.set_project_id(b);
  EXPECT_TRUE(pm_->ListApiKeys(op_, list)->keys(0).revoked());
  revoke.set_key_id("kdoesnotexist");
  EXPECT_EQ(pm_->RevokeApiKey(op_, call_, revoke).code(), absl::StatusCode::kNotFound);
}

TEST_F(ProjectManagerTest, GetUsageGroupsAndSums) {
  const std::string p = NewProject("usage");
  const Identity reader = As(NewKey(op_, p, v1::API_KEY_ROLE_READER)->key());
  const absl::Time now = absl::Now();
  const int32_t today = DayOf(now);
  ASSERT_OK(store_->AddUsage(
      p, UsageDeltas("agent-b", "s1", "small", today - 1, MakeUsage(10, 1, 0.25))));
  ASSERT_OK(
      store_->AddUsage(p, UsageDeltas("agent-a", "s2", "small", today, MakeUsage(5, 2, 0.5))));
  ASSERT_OK(store_->AddUsage(p, UsageDeltas("agent-b", "s1", "big", today, MakeUsage(1, 1, 1))));

  v1::GetUsageRequest req;
  auto by_day = pm_->GetUsage(reader, req);  // UNSPECIFIED = DAY
  ASSERT_TRUE(by_day.ok()) << by_day.status();
  ASSERT_EQ(by_day->rows_size(), 2);
  const absl::CivilDay civil_today = absl::ToCivilDay(now, absl::UTCTimeZone());
  EXPECT_EQ(by_day->rows(0).group(), absl::FormatCivilTime(civil_today - 1));
  EXPECT_EQ(by_day->rows(1).group(), absl::FormatCivilTime(civil_today));
  EXPECT_EQ(by_day->rows(1).usage().input_tokens(), 6);
  EXPECT_EQ(by_day->total().input_tokens(), 16);
  EXPECT_EQ(by_day->total().model_calls(), 3);
  EXPECT_DOUBLE_EQ(by_day->total().cost_usd(), 1.75);

  req.set_group_by(v1::USAGE_GROUP_BY_AGENT);
  auto by_agent = pm_->GetUsage(reader, req);
  ASSERT_EQ(by_agent->rows_size(), 2);
  EXPECT_EQ(by_agent->rows(0).group(), "agent-a");
  EXPECT_EQ(by_agent->rows(1).group(), "agent-b");
  EXPECT_EQ(by_agent->rows(1).usage().input_tokens(), 11);  // summed over both days

  req.set_group_by(v1::USAGE_GROUP_BY_MODEL);
  *req.mutable_start_time() = ToProto(absl::FromCivil(civil_today, absl::UTCTimeZone()));
  auto by_model = pm_->GetUsage(reader, req);  // today only
  ASSERT_EQ(by_model->rows_size(), 2);
  EXPECT_EQ(by_model->rows(0).group(), "big");
  EXPECT_EQ(by_model->total().input_tokens(), 6);

  req.set_group_by(v1::USAGE_GROUP_BY_SESSION);
  *req.mutable_end_time() = ToProto(absl::FromCivil(civil_today - 2, absl::UTCTimeZone()));
  EXPECT_EQ(pm_->GetUsage(reader, req).status().code(), absl::StatusCode::kInvalidArgument);
  req.set_project_id("default");
  EXPECT_EQ(pm_->GetUsage(reader, req).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ProjectManagerTest, SetLimitsValidatesAuditsAndInvalidates) {
  LimitEnforcer& limits = *limits_;
  const std::string p = NewProject("limited");
  const Identity admin = As(NewKey(op_, p, v1::API_KEY_ROLE_ADMIN)->key());
  const double inf = std::numeric_limits<double>::infinity();
  for (const v1::ProjectLimits& bad : {Limits(-1, 0, 0), Limits(std::nan(""), 0, 0),
                                       Limits(inf, 0, 0), Limits(0, -5, 0), Limits(0, 0, -1)}) {
    v1::SetLimitsRequest req;
    *req.mutable_limits() = bad;
    EXPECT_EQ(pm_->SetLimits(admin, call_, req).status().code(), absl::StatusCode::kInvalidArgument)
        << bad.DebugString();
  }
  ASSERT_OK(limits.AdmitTurn(p));  // cached: unlimited
  v1::SetLimitsRequest req;
  *req.mutable_limits() = Limits(12.5, 1000, 1);
  auto updated = pm_->SetLimits(admin, call_, req);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->limits().requests_per_minute(), 1);
  ASSERT_OK(limits.AdmitTurn(p));  // the new bucket of 1
  EXPECT_EQ(limits.AdmitTurn(p).code(), absl::StatusCode::kResourceExhausted);

  req.set_project_id("default");
  EXPECT_EQ(pm_->SetLimits(admin, call_, req).status().code(), absl::StatusCode::kNotFound);
  bool audited = false;
  for (const v1::AuditEvent& e : Audit(p)) {
    if (e.action() != v1::AUDIT_ACTION_LIMITS_CHANGED) continue;
    audited = true;
    EXPECT_THAT(e.detail(), HasSubstr("monthly_budget_usd 0"));
    EXPECT_THAT(e.detail(), HasSubstr("monthly_budget_usd 12.5"));
    EXPECT_THAT(e.detail(), HasSubstr("requests_per_minute 1"));
    EXPECT_EQ(e.key_id(), admin.key_id);
  }
  EXPECT_TRUE(audited);
}

TEST_F(ProjectManagerTest, ListAuditEventsShowsKeyCreationAndRevocation) {
  const std::string p = NewProject("audited");
  auto admin_key = NewKey(op_, p, v1::API_KEY_ROLE_ADMIN);
  const Identity admin = As(admin_key->key());
  auto member_key = NewKey(admin, "", v1::API_KEY_ROLE_MEMBER);
  v1::RevokeApiKeyRequest revoke;
  revoke.set_key_id(member_key->key().key_id());
  ASSERT_OK(pm_->RevokeApiKey(admin, call_, revoke));

  auto events = pm_->ListAuditEvents(admin, {});
  ASSERT_TRUE(events.ok()) << events.status();
  std::vector<v1::AuditAction> actions;
  for (const v1::AuditEvent& e : events->events()) {
    actions.push_back(e.action());
    EXPECT_THAT(e.DebugString(), Not(HasSubstr(admin_key->secret())));
    EXPECT_THAT(e.DebugString(), Not(HasSubstr(member_key->secret())));
  }
  EXPECT_EQ(actions, (std::vector<v1::AuditAction>{
                         v1::AUDIT_ACTION_PROJECT_CREATED, v1::AUDIT_ACTION_API_KEY_CREATED,
                         v1::AUDIT_ACTION_API_KEY_CREATED, v1::AUDIT_ACTION_API_KEY_REVOKED}));
  const v1::AuditEvent& created = events->events(2);
  EXPECT_EQ(created.detail(),
            absl::StrCat("key ", member_key->key().key_id(), " role MEMBER name test key"));
  EXPECT_EQ(created.key_id(), admin.key_id);
  EXPECT_EQ(created.request_id(), "req-pm");
  EXPECT_EQ(created.peer(), "peer-pm");

  v1::ListAuditEventsRequest req;
  req.set_project_id("default");
  EXPECT_EQ(pm_->ListAuditEvents(admin, req).status().code(), absl::StatusCode::kNotFound);
  req.set_project_id(p);
  EXPECT_EQ(pm_->ListAuditEvents(op_, req)->events_size(), 4);
  req.set_page_size(1);
  auto first = pm_->ListAuditEvents(op_, req);
  EXPECT_EQ(first->events_size(), 1);
  EXPECT_FALSE(first->next_page_token().empty());
  *req.mutable_start_time() = NowProto();
  *req.mutable_end_time() = ToProto(absl::Now() - absl::Hours(1));
  EXPECT_EQ(pm_->ListAuditEvents(op_, req).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace agentd::auth
