// The ContextStore contract, part 2: projects, API keys, usage counters and the audit log
// (the "tenancy" methods of store/context_store.h). Run it wherever StoreContractTest runs, with
// the same harness (see store_contract_test.h):
//
//   INSTANTIATE_TYPED_TEST_SUITE_P(Postgres, StoreTenancyContractTest,
//                                  ::testing::Types<PostgresHarness>);
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/time_util.h"
#include "store/context_store.h"
#include "store_contract_test.h"

namespace agentd::store {

template <typename Harness>
class StoreTenancyContractTest : public StoreContractTest<Harness> {
 protected:
  static absl::Time T(int seconds) { return absl::FromUnixSeconds(1700000000 + seconds); }

  static google::protobuf::Timestamp Ts(int seconds) {
    google::protobuf::Timestamp ts;
    ts.set_seconds(1700000000 + seconds);
    return ts;
  }

  static v1::AuditEvent Audit(const std::string& project, const std::string& audit_id,
                              absl::Time time,
                              v1::AuditAction action = v1::AUDIT_ACTION_PERMISSION_DENIED) {
    v1::AuditEvent e;
    e.set_audit_id(audit_id);
    *e.mutable_time() = ToProto(time);
    e.set_project_id(project);
    e.set_action(action);
    e.set_key_id("key-caller");
    e.set_method("Test");
    e.set_outcome("OK");
    e.set_detail("detail of " + audit_id);
    return e;
  }

  static v1::Project MakeProject(const std::string& id) {
    v1::Project p;
    p.set_project_id(id);
    p.set_name("project " + id);
    p.mutable_limits()->set_monthly_budget_usd(12.5);
    p.mutable_limits()->set_daily_token_limit(1000);
    *p.mutable_create_time() = Ts(0);
    *p.mutable_update_time() = Ts(0);
    return p;
  }

  absl::Status CreateProject(const std::string& id) {
    return this->store().CreateProject(
        MakeProject(id), Audit(id, "audit-create-" + id, T(0), v1::AUDIT_ACTION_PROJECT_CREATED));
  }

  static storage::ApiKeyRecord MakeKey(const std::string& key_id, const std::string& project) {
    storage::ApiKeyRecord r;
    r.mutable_key()->set_key_id(key_id);
    r.mutable_key()->set_project_id(project);
    r.mutable_key()->set_role(v1::API_KEY_ROLE_MEMBER);
    r.mutable_key()->set_name("key " + key_id);
    *r.mutable_key()->mutable_create_time() = Ts(1);
    r.set_salt(std::string("\x00salt\xff", 6));
    r.set_hash(std::string(32, '\x7f'));
    return r;
  }

  static UsageDelta Delta(UsageDimension dimension, const std::string& group, int32_t day,
                          int64_t input, int64_t output = 0, double cost = 0) {
    UsageDelta d;
    d.dimension = dimension;
    d.group = group;
    d.day = day;
    d.usage.set_input_tokens(input);
    d.usage.set_output_tokens(output);
    d.usage.set_model_calls(1);
    d.usage.set_cost_usd(cost);
    return d;
  }

  /// ReadUsage as (group, day, input_tokens) triples, in the store's order.
  std::vector<std::tuple<std::string, int32_t, int64_t>> Usage(const std::string& project,
                                                               UsageDimension dimension,
                                                               int32_t first_day = 0,
                                                               int32_t last_day = 100000) {
    absl::StatusOr<std::vector<UsageCounter>> counters =
        this->store().ReadUsage(project, dimension, first_day, last_day);
    EXPECT_TRUE(counters.ok()) << counters.status();
    std::vector<std::tuple<std::string, int32_t, int64_t>> out;
    if (!counters.ok()) return out;
    for (const UsageCounter& c : *counters)
      out.emplace_back(c.group, c.day, c.usage.input_tokens());
    return out;
  }

  /// Every page of ListAudit: each page's audit ids.
  std::vector<std::vector<std::string>> AuditPages(const std::string& project, absl::Time start,
                                                   absl::Time end, int32_t size) {
    std::vector<std::vector<std::string>> pages;
    std::string token;
    do {
      absl::StatusOr<AuditPage> page = this->store().ListAudit(project, start, end, size, token);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok() || pages.size() > 10000) break;
      pages.emplace_back();
      for (const v1::AuditEvent& e : page->events) {
        EXPECT_EQ(e.project_id(), project);
        pages.back().push_back(e.audit_id());
      }
      token = page->next_page_token;
    } while (!token.empty());
    return pages;
  }

  std::vector<std::string> AuditIds(const std::string& project,
                                    absl::Time start = absl::InfinitePast(),
                                    absl::Time end = absl::InfiniteFuture()) {
    std::vector<std::string> flat;
    for (const auto& page : AuditPages(project, start, end, 1000)) {
      flat.insert(flat.end(), page.begin(), page.end());
    }
    return flat;
  }
};

TYPED_TEST_SUITE_P(StoreTenancyContractTest);

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using UsageTriple = std::tuple<std::string, int32_t, int64_t>;

// ---- Projects ----------------------------------------------------------------------------

TYPED_TEST_P(StoreTenancyContractTest, ProjectCreateGetAndDuplicate) {
  auto& s = this->store();
  const v1::Project project = this->MakeProject("proj-1");
  STORE_ASSERT_OK(s.CreateProject(project, this->Audit("proj-1", "audit-1", this->T(0))));
  absl::StatusOr<v1::Project> got = s.GetProject("proj-1");
  STORE_ASSERT_OK(got);
  EXPECT_TRUE(store_contract::ProtoEq(*got, project)) << got->DebugString();

  v1::Project again = this->MakeProject("proj-1");
  again.set_name("other");
  STORE_EXPECT_CODE(s.CreateProject(again, this->Audit("proj-1", "audit-2", this->T(1))),
                    kAlreadyExists);
  EXPECT_EQ(s.GetProject("proj-1")->name(), "project proj-1");
  EXPECT_THAT(this->AuditIds("proj-1"), ElementsAre("audit-1"));  // the rejected one left none
  STORE_EXPECT_CODE(s.GetProject("proj-2"), kNotFound);
  STORE_EXPECT_CODE(s.GetProject("proj-"), kNotFound);
}

TYPED_TEST_P(StoreTenancyContractTest, ListProjectsPagesInOrder) {
  auto& s = this->store();
  for (int i = 11; i >= 0; --i) {  // created out of order
    STORE_ASSERT_OK(this->CreateProject(absl::StrCat("proj-", i / 10, i % 10)));
  }
  auto pages = [&](int32_t size) {
    std::vector<std::vector<std::string>> out;
    std::string token;
    do {
      absl::StatusOr<ProjectPage> page = s.ListProjects(size, token);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok() || out.size() > 100) break;
      out.emplace_back();
      for (const v1::Project& p : page->projects) out.back().push_back(p.project_id());
      token = page->next_page_token;
    } while (!token.empty());
    return out;
  };
  EXPECT_THAT(pages(5),
              ElementsAre(ElementsAre("proj-00", "proj-01", "proj-02", "proj-03", "proj-04"),
                          ElementsAre("proj-05", "proj-06", "proj-07", "proj-08", "proj-09"),
                          ElementsAre("proj-10", "proj-11")));
  EXPECT_THAT(pages(4), ::testing::SizeIs(3));  // exactly full pages: no empty last page
  EXPECT_THAT(pages(0), ElementsAre(::testing::SizeIs(12)));
  absl::StatusOr<ProjectPage> first = s.ListProjects(1, "");
  STORE_ASSERT_OK(first);
  ASSERT_EQ(first->projects.size(), 1u);
  EXPECT_TRUE(store_contract::ProtoEq(first->projects[0], this->MakeProject("proj-00")));
  for (const std::string token : {"not a token!", "\xff\xfe", "%%%"}) {
    STORE_EXPECT_CODE(s.ListProjects(10, token), kInvalidArgument);
  }
}

TYPED_TEST_P(StoreTenancyContractTest, SetProjectLimitsReplacesLimits) {
  auto& s = this->store();
  STORE_ASSERT_OK(this->CreateProject("proj-1"));
  v1::ProjectLimits limits;
  limits.set_requests_per_minute(60);
  const v1::AuditEvent audit =
      this->Audit("proj-1", "audit-limits", this->T(5), v1::AUDIT_ACTION_LIMITS_CHANGED);
  absl::StatusOr<v1::Project> updated = s.SetProjectLimits("proj-1", limits, this->Ts(5), audit);
  STORE_ASSERT_OK(updated);
  EXPECT_TRUE(store_contract::ProtoEq(updated->limits(), limits)) << updated->DebugString();
  EXPECT_EQ(updated->update_time().seconds(), this->Ts(5).seconds());
  EXPECT_EQ(updated->name(), "project proj-1");
  EXPECT_EQ(updated->create_time().seconds(), this->Ts(0).seconds());
  absl::StatusOr<v1::Project> got = s.GetProject("proj-1");
  STORE_ASSERT_OK(got);
  EXPECT_TRUE(store_contract::ProtoEq(*got, *updated)) << got->DebugString();

  STORE_EXPECT_CODE(s.SetProjectLimits("proj-2", limits, this->Ts(6),
                                       this->Audit("proj-2", "audit-x", this->T(6))),
                    kNotFound);
  EXPECT_THAT(this->AuditIds("proj-2"), IsEmpty());
  absl::StatusOr<AuditPage> page =
      s.ListAudit("proj-1", absl::InfinitePast(), absl::InfiniteFuture(), 10, "");
  STORE_ASSERT_OK(page);
  ASSERT_EQ(page->events.size(), 2u);
  EXPECT_TRUE(store_contract::ProtoEq(page->events[1], audit)) << page->events[1].DebugString();
}

// ---- API keys ----------------------------------------------------------------------------

TYPED_TEST_P(StoreTenancyContractTest, ApiKeysCreateGetAndList) {
  auto& s = this->store();
  STORE_ASSERT_OK(this->CreateProject("pa"));
  STORE_ASSERT_OK(this->CreateProject("pb"));
  int second = 0;
  for (const auto& [key, project] : std::vector<std::pair<std::string, std::string>>{
           {"key-a2", "pa"}, {"key-b1", "pb"}, {"key-a1", "pa"}}) {
    STORE_ASSERT_OK(s.CreateApiKey(this->MakeKey(key, project),
                                   this->Audit(project, "audit-" + key, this->T(++second))));
  }
  absl::StatusOr<storage::ApiKeyRecord> got = s.GetApiKey("key-a1");
  STORE_ASSERT_OK(got);
  EXPECT_TRUE(store_contract::ProtoEq(*got, this->MakeKey("key-a1", "pa"))) << got->DebugString();
  auto ids = [&](const std::string& project) {
    std::vector<std::string> out;
    absl::StatusOr<std::vector<v1::ApiKey>> keys = s.ListApiKeys(project);
    EXPECT_TRUE(keys.ok()) << keys.status();
    if (keys.ok()) {
      for (const v1::ApiKey& k : *keys) out.push_back(k.key_id());
    }
    return out;
  };
  EXPECT_THAT(ids("pa"), ElementsAre("key-a1", "key-a2"));
  EXPECT_THAT(ids("pb"), ElementsAre("key-b1"));
  EXPECT_THAT(ids("pc"), IsEmpty());
  EXPECT_THAT(ids("p"), IsEmpty());

  // Key ids are global: taken in any project is taken.
  STORE_EXPECT_CODE(
      s.CreateApiKey(this->MakeKey("key-b1", "pa"), this->Audit("pa", "audit-dup", this->T(2))),
      kAlreadyExists);
  STORE_EXPECT_CODE(
      s.CreateApiKey(this->MakeKey("key-c1", "pc"), this->Audit("pc", "audit-c", this->T(2))),
      kNotFound);
  STORE_EXPECT_CODE(s.GetApiKey("key-c1"), kNotFound);
  EXPECT_EQ(s.GetApiKey("key-b1")->key().project_id(), "pb");
  EXPECT_THAT(this->AuditIds("pa"), ElementsAre("audit-create-pa", "audit-key-a2", "audit-key-a1"));
  EXPECT_THAT(this->AuditIds("pc"), IsEmpty());
}

TYPED_TEST_P(StoreTenancyContractTest, RevokeApiKey) {
  auto& s = this->store();
  STORE_ASSERT_OK(this->CreateProject("pa"));
  STORE_ASSERT_OK(this->CreateProject("pb"));
  STORE_ASSERT_OK(
      s.CreateApiKey(this->MakeKey("key-a1", "pa"), this->Audit("pa", "audit-k1", this->T(1))));
  STORE_ASSERT_OK(
      s.CreateApiKey(this->MakeKey("key-b1", "pb"), this->Audit("pb", "audit-k2", this->T(1))));

  // Another project's key is NOT_FOUND and stays as it was.
  STORE_EXPECT_CODE(
      s.RevokeApiKey("pa", "key-b1", this->Ts(2), this->Audit("pa", "audit-r0", this->T(2))),
      kNotFound);
  EXPECT_FALSE(s.GetApiKey("key-b1")->key().revoked());
  STORE_EXPECT_CODE(
      s.RevokeApiKey("pa", "key-zz", this->Ts(2), this->Audit("pa", "audit-r1", this->T(2))),
      kNotFound);

  absl::StatusOr<v1::ApiKey> revoked =
      s.RevokeApiKey("pa", "key-a1", this->Ts(3), this->Audit("pa", "audit-r2", this->T(3)));
  STORE_ASSERT_OK(revoked);
  EXPECT_TRUE(revoked->revoked());
  EXPECT_EQ(revoked->revoke_time().seconds(), this->Ts(3).seconds());
  EXPECT_EQ(revoked->name(), "key key-a1");
  absl::StatusOr<storage::ApiKeyRecord> stored = s.GetApiKey("key-a1");
  STORE_ASSERT_OK(stored);
  EXPECT_TRUE(store_contract::ProtoEq(stored->key(), *revoked));
  EXPECT_EQ(stored->hash(), this->MakeKey("key-a1", "pa").hash());

  // Idempotent: OK, and the first revoke_time stays.
  absl::StatusOr<v1::ApiKey> again =
      s.RevokeApiKey("pa", "key-a1", this->Ts(9), this->Audit("pa", "audit-r3", this->T(9)));
  STORE_ASSERT_OK(again);
  EXPECT_TRUE(again->revoked());
  EXPECT_EQ(again->revoke_time().seconds(), this->Ts(3).seconds());
  absl::StatusOr<std::vector<v1::ApiKey>> keys = s.ListApiKeys("pa");
  STORE_ASSERT_OK(keys);
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_TRUE(keys->at(0).revoked());
  // Only the revoke that changed something is in the audit log.
  EXPECT_THAT(this->AuditIds("pa"), ElementsAre("audit-create-pa", "audit-k1", "audit-r2"));
}

// ---- Usage -------------------------------------------------------------------------------

TYPED_TEST_P(StoreTenancyContractTest, UsageMergesAddUpAcrossWrites) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s1", "a1")));
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<storage::SessionRecord> rec = s.GetSession("p", "s1");
    STORE_ASSERT_OK(rec);
    SessionWrite w = this->NextWrite("p", *rec, {absl::StrCat("step ", i)});
    w.usage = {this->Delta(UsageDimension::kDay, "", 100, 10, 1, 0.25),
               this->Delta(UsageDimension::kAgent, "a1", 100, 10, 1, 0.25),
               this->Delta(UsageDimension::kSession, "s1", 100, 10, 1, 0.25),
               this->Delta(UsageDimension::kModel, "m1", 100, 10, 1, 0.25)};
    STORE_ASSERT_OK(s.CommitSessionWrite(w));
  }
  STORE_ASSERT_OK(s.AddUsage("p", {this->Delta(UsageDimension::kDay, "", 100, 5, 2, 0.5),
                                   this->Delta(UsageDimension::kModel, "m2", 100, 7)}));
  STORE_ASSERT_OK(s.AddUsage("p", {}));

  absl::StatusOr<std::vector<UsageCounter>> day = s.ReadUsage("p", UsageDimension::kDay, 0, 1000);
  STORE_ASSERT_OK(day);
  ASSERT_EQ(day->size(), 1u);
  const UsageCounter& total = day->at(0);
  EXPECT_EQ(total.group, "");
  EXPECT_EQ(total.day, 100);
  EXPECT_EQ(total.usage.input_tokens(), 35);
  EXPECT_EQ(total.usage.output_tokens(), 5);
  EXPECT_EQ(total.usage.model_calls(), 4);
  EXPECT_DOUBLE_EQ(total.usage.cost_usd(), 1.25);
  EXPECT_THAT(this->Usage("p", UsageDimension::kAgent), ElementsAre(UsageTriple{"a1", 100, 30}));
  EXPECT_THAT(this->Usage("p", UsageDimension::kSession), ElementsAre(UsageTriple{"s1", 100, 30}));
  EXPECT_THAT(this->Usage("p", UsageDimension::kModel),
              ElementsAre(UsageTriple{"m1", 100, 30}, UsageTriple{"m2", 100, 7}));
}

TYPED_TEST_P(StoreTenancyContractTest, ReadUsageFiltersByDimensionAndDay) {
  auto& s = this->store();
  std::vector<UsageDelta> deltas;
  for (int32_t day : {20, 10, 12, 11}) {
    deltas.push_back(this->Delta(UsageDimension::kAgent, "g2", day, day));
    deltas.push_back(this->Delta(UsageDimension::kAgent, "g1", day, 100 + day));
    deltas.push_back(this->Delta(UsageDimension::kDay, "", day, 1000 + day));
  }
  STORE_ASSERT_OK(s.AddUsage("p", deltas));

  EXPECT_THAT(this->Usage("p", UsageDimension::kAgent, 11, 12),
              ElementsAre(UsageTriple{"g1", 11, 111}, UsageTriple{"g1", 12, 112},
                          UsageTriple{"g2", 11, 11}, UsageTriple{"g2", 12, 12}));
  EXPECT_THAT(this->Usage("p", UsageDimension::kAgent, 13, 20),
              ElementsAre(UsageTriple{"g1", 20, 120}, UsageTriple{"g2", 20, 20}));
  EXPECT_THAT(this->Usage("p", UsageDimension::kDay, 10, 11),
              ElementsAre(UsageTriple{"", 10, 1010}, UsageTriple{"", 11, 1011}));
  EXPECT_THAT(this->Usage("p", UsageDimension::kDay, 12, 12),
              ElementsAre(UsageTriple{"", 12, 1012}));
  EXPECT_THAT(this->Usage("p", UsageDimension::kDay, 0, std::numeric_limits<int32_t>::max()),
              ::testing::SizeIs(4));
  EXPECT_THAT(this->Usage("p", UsageDimension::kDay, 21, 30), IsEmpty());
  EXPECT_THAT(this->Usage("p", UsageDimension::kDay, 12, 11), IsEmpty());  // first > last
  EXPECT_THAT(this->Usage("p", UsageDimension::kSession), IsEmpty());
  EXPECT_THAT(this->Usage("p", UsageDimension::kModel), IsEmpty());
}

TYPED_TEST_P(StoreTenancyContractTest, UsageOfPrefixIdsDoesNotBleed) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.AddUsage("p", {this->Delta(UsageDimension::kDay, "", 7, 1),
                                   this->Delta(UsageDimension::kSession, "s1", 7, 2),
                                   this->Delta(UsageDimension::kSession, "s10", 7, 3)}));
  STORE_ASSERT_OK(s.AddUsage("pp", {this->Delta(UsageDimension::kDay, "", 7, 10),
                                    this->Delta(UsageDimension::kSession, "s1", 7, 20)}));
  EXPECT_THAT(this->Usage("p", UsageDimension::kDay), ElementsAre(UsageTriple{"", 7, 1}));
  EXPECT_THAT(this->Usage("pp", UsageDimension::kDay), ElementsAre(UsageTriple{"", 7, 10}));
  EXPECT_THAT(this->Usage("p", UsageDimension::kSession, 7, 7),
              ::testing::UnorderedElementsAre(UsageTriple{"s1", 7, 2}, UsageTriple{"s10", 7, 3}));
  EXPECT_THAT(this->Usage("pp", UsageDimension::kSession), ElementsAre(UsageTriple{"s1", 7, 20}));
  EXPECT_THAT(this->Usage("ppp", UsageDimension::kDay), IsEmpty());
}

TYPED_TEST_P(StoreTenancyContractTest, RejectedCommitAddsNoUsage) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s", "a")));
  absl::StatusOr<storage::SessionRecord> rec = s.GetSession("p", "s");
  STORE_ASSERT_OK(rec);
  SessionWrite first = this->NextWrite("p", *rec, {"a"});
  first.usage = {this->Delta(UsageDimension::kDay, "", 3, 1)};
  STORE_ASSERT_OK(s.CommitSessionWrite(first));

  SessionWrite stale = this->NextWrite("p", *rec, {"b"});  // the same base revision again
  stale.usage = {this->Delta(UsageDimension::kDay, "", 3, 100)};
  STORE_EXPECT_CODE(s.CommitSessionWrite(stale), kAborted);
  SessionWrite gap = stale;
  gap.expected_revision = rec->revision() + 1;
  gap.events[0].set_seq(5);
  gap.record.mutable_session()->set_last_seq(5);
  STORE_EXPECT_CODE(s.CommitSessionWrite(gap), kInvalidArgument);
  SessionWrite missing = this->NextWrite("p", this->MakeSession("ghost", "a"), {"x"});
  missing.usage = stale.usage;
  STORE_EXPECT_CODE(s.CommitSessionWrite(missing), kNotFound);
  EXPECT_THAT(this->Usage("p", UsageDimension::kDay), ElementsAre(UsageTriple{"", 3, 1}));
}

TYPED_TEST_P(StoreTenancyContractTest, InvalidUsageDeltaRejectsTheWholeWrite) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s", "a")));
  absl::StatusOr<storage::SessionRecord> rec = s.GetSession("p", "s");
  STORE_ASSERT_OK(rec);
  const UsageDelta good = this->Delta(UsageDimension::kDay, "", 3, 1);
  std::vector<std::pair<std::string, UsageDelta>> bad = {
      {"empty group", this->Delta(UsageDimension::kAgent, "", 3, 1)},
      {"group too long", this->Delta(UsageDimension::kModel, std::string(129, 'm'), 3, 1)},
      {"group on a day total", this->Delta(UsageDimension::kDay, "g", 3, 1)},
      {"negative day", this->Delta(UsageDimension::kSession, "s", -1, 1)},
      {"unknown dimension", this->Delta(static_cast<UsageDimension>(9), "g", 3, 1)},
  };
  for (const auto& [what, delta] : bad) {
    SCOPED_TRACE(what);
    SessionWrite w = this->NextWrite("p", *rec, {"x"}, "idem");
    w.usage = {good, delta};
    STORE_EXPECT_CODE(s.CommitSessionWrite(w), kInvalidArgument);
    STORE_EXPECT_CODE(s.AddUsage("p", {good, delta}), kInvalidArgument);
  }
  absl::StatusOr<storage::SessionRecord> after = s.GetSession("p", "s");
  STORE_ASSERT_OK(after);
  EXPECT_EQ(after->revision(), rec->revision());
  EXPECT_THAT(this->AllEvents("p", "s"), IsEmpty());
  EXPECT_FALSE(s.GetIdempotency("p", "s", "idem")->has_value());
  for (UsageDimension d : {UsageDimension::kDay, UsageDimension::kAgent, UsageDimension::kSession,
                           UsageDimension::kModel}) {
    EXPECT_THAT(this->Usage("p", d), IsEmpty()) << static_cast<int>(d);
  }
}

// ---- Audit -------------------------------------------------------------------------------

TYPED_TEST_P(StoreTenancyContractTest, AuditListsByTimeRangeAndPages) {
  auto& s = this->store();
  // Appended out of time order; ids of one length ("audit-NN").
  for (int i = 24; i >= 0; --i) {
    STORE_ASSERT_OK(s.AppendAudit(
        this->Audit("p", absl::StrCat("audit-", i / 10, i % 10), this->T(i)), /*sync=*/i % 5 == 0));
  }
  STORE_ASSERT_OK(s.AppendAudit(this->Audit("pp", "audit-pp", this->T(3)), false));
  STORE_ASSERT_OK(s.AppendAudit(this->Audit("q", "audit-q", this->T(3)), true));

  const auto pages = this->AuditPages("p", absl::InfinitePast(), absl::InfiniteFuture(), 10);
  ASSERT_EQ(pages.size(), 3u);
  EXPECT_EQ(pages[0].size(), 10u);
  EXPECT_EQ(pages[1].size(), 10u);
  EXPECT_EQ(pages[2].size(), 5u);
  EXPECT_EQ(pages[0].front(), "audit-00");
  EXPECT_EQ(pages[1].front(), "audit-10");
  EXPECT_EQ(pages[2].back(), "audit-24");
  EXPECT_THAT(this->AuditPages("p", absl::InfinitePast(), absl::InfiniteFuture(), 5),
              ::testing::SizeIs(5));  // exactly full pages: no empty last page

  // [start, end): start included, end excluded.
  EXPECT_THAT(this->AuditIds("p", this->T(5), this->T(8)),
              ElementsAre("audit-05", "audit-06", "audit-07"));
  EXPECT_THAT(this->AuditPages("p", this->T(5), this->T(15), 4),
              ElementsAre(ElementsAre("audit-05", "audit-06", "audit-07", "audit-08"),
                          ElementsAre("audit-09", "audit-10", "audit-11", "audit-12"),
                          ElementsAre("audit-13", "audit-14")));
  EXPECT_THAT(this->AuditIds("p", this->T(24) + absl::Milliseconds(1), absl::InfiniteFuture()),
              IsEmpty());
  EXPECT_THAT(this->AuditIds("p", this->T(8), this->T(5)), IsEmpty());
  EXPECT_THAT(this->AuditIds("pp"), ElementsAre("audit-pp"));
  EXPECT_THAT(this->AuditIds("q"), ElementsAre("audit-q"));
  EXPECT_THAT(this->AuditIds("ppp"), IsEmpty());

  absl::StatusOr<AuditPage> page = s.ListAudit("p", this->T(3), this->T(4), 10, "");
  STORE_ASSERT_OK(page);
  ASSERT_EQ(page->events.size(), 1u);
  EXPECT_TRUE(store_contract::ProtoEq(page->events[0], this->Audit("p", "audit-03", this->T(3))));
  for (const std::string token : {"not a token!", "\xff\xfe", "%%%"}) {
    STORE_EXPECT_CODE(s.ListAudit("p", absl::InfinitePast(), absl::InfiniteFuture(), 10, token),
                      kInvalidArgument);
  }
  // A token of another project's listing never reveals that project's records.
  STORE_ASSERT_OK(s.AppendAudit(this->Audit("pp", "audit-pp2", this->T(4)), false));
  absl::StatusOr<AuditPage> q_page =
      s.ListAudit("pp", absl::InfinitePast(), absl::InfiniteFuture(), 1, "");
  STORE_ASSERT_OK(q_page);
  ASSERT_FALSE(q_page->next_page_token.empty());
  absl::StatusOr<AuditPage> cross =
      s.ListAudit("p", absl::InfinitePast(), absl::InfiniteFuture(), 10, q_page->next_page_token);
  if (cross.ok()) {
    for (const v1::AuditEvent& e : cross->events) EXPECT_EQ(e.project_id(), "p");
  }
}

TYPED_TEST_P(StoreTenancyContractTest, AuditRecordsWithTheSameTimeAreAllKept) {
  auto& s = this->store();
  for (const char* id : {"audit-b", "audit-a", "audit-c"}) {
    STORE_ASSERT_OK(s.AppendAudit(this->Audit("p", id, this->T(1)), false));
  }
  EXPECT_THAT(this->AuditIds("p"),
              ::testing::UnorderedElementsAre("audit-a", "audit-b", "audit-c"));
  EXPECT_THAT(this->AuditPages("p", absl::InfinitePast(), absl::InfiniteFuture(), 1),
              ::testing::SizeIs(3));
}

TYPED_TEST_P(StoreTenancyContractTest, DeleteAuditBeforeRemovesOnlyOlderRecords) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.DeleteAuditBefore(this->T(100)));  // nothing to delete
  for (const std::string project : {"p", "pp", "q"}) {
    for (int i = 0; i < 10; ++i) {
      STORE_ASSERT_OK(
          s.AppendAudit(this->Audit(project, absl::StrCat("audit-", i), this->T(i)), false));
    }
  }
  STORE_ASSERT_OK(s.DeleteAuditBefore(this->T(5)));
  for (const std::string project : {"p", "pp", "q"}) {
    EXPECT_THAT(this->AuditIds(project),
                ElementsAre("audit-5", "audit-6", "audit-7", "audit-8", "audit-9"))
        << project;
  }
  STORE_ASSERT_OK(s.DeleteAuditBefore(this->T(5)));  // again: no change
  EXPECT_EQ(this->AuditIds("pp").size(), 5u);
  STORE_ASSERT_OK(s.AppendAudit(this->Audit("p", "audit-late", this->T(2)), false));
  STORE_ASSERT_OK(s.DeleteAuditBefore(this->T(9)));
  EXPECT_THAT(this->AuditIds("p"), ElementsAre("audit-9"));
  EXPECT_THAT(this->AuditIds("q"), ElementsAre("audit-9"));
  STORE_ASSERT_OK(s.DeleteAuditBefore(absl::InfiniteFuture()));
  EXPECT_THAT(this->AuditIds("p"), IsEmpty());
  EXPECT_THAT(this->AuditIds("q"), IsEmpty());
}

TYPED_TEST_P(StoreTenancyContractTest, BadIdsAreInvalidArgumentAndWriteNothing) {
  auto& s = this->store();
  const std::string long_id(129, 'x');
  for (const std::string& bad : {std::string(), long_id}) {
    SCOPED_TRACE(bad.size());
    STORE_EXPECT_CODE(s.CreateProject(this->MakeProject(bad), this->Audit("p", "a1", this->T(0))),
                      kInvalidArgument);
    STORE_EXPECT_CODE(s.GetProject(bad), kInvalidArgument);
    STORE_EXPECT_CODE(s.GetApiKey(bad), kInvalidArgument);
    STORE_EXPECT_CODE(s.ListApiKeys(bad), kInvalidArgument);
    STORE_EXPECT_CODE(s.ReadUsage(bad, UsageDimension::kDay, 0, 10), kInvalidArgument);
    STORE_EXPECT_CODE(s.AddUsage(bad, {this->Delta(UsageDimension::kDay, "", 1, 1)}),
                      kInvalidArgument);
    STORE_EXPECT_CODE(s.ListAudit(bad, absl::InfinitePast(), absl::InfiniteFuture(), 10, ""),
                      kInvalidArgument);
    STORE_EXPECT_CODE(s.AppendAudit(this->Audit(bad, "a1", this->T(0)), false), kInvalidArgument);
    STORE_EXPECT_CODE(s.AppendAudit(this->Audit("p", bad, this->T(0)), false), kInvalidArgument);
    // A bad audit event rejects the mutation it describes.
    STORE_EXPECT_CODE(s.CreateProject(this->MakeProject("p"), this->Audit("p", bad, this->T(0))),
                      kInvalidArgument);
    STORE_EXPECT_CODE(s.GetProject("p"), kNotFound);
  }
  STORE_ASSERT_OK(this->CreateProject("p"));
  STORE_EXPECT_CODE(s.CreateApiKey(this->MakeKey(long_id, "p"), this->Audit("p", "a2", this->T(0))),
                    kInvalidArgument);
  STORE_EXPECT_CODE(s.RevokeApiKey("p", "", this->Ts(0), this->Audit("p", "a3", this->T(0))),
                    kInvalidArgument);
  STORE_EXPECT_CODE(s.ReadUsage("p", static_cast<UsageDimension>(0), 0, 10), kInvalidArgument);
  EXPECT_THAT(this->AuditIds("p"), ElementsAre("audit-create-p"));
}

REGISTER_TYPED_TEST_SUITE_P(StoreTenancyContractTest, ProjectCreateGetAndDuplicate,
                            ListProjectsPagesInOrder, SetProjectLimitsReplacesLimits,
                            ApiKeysCreateGetAndList, RevokeApiKey, UsageMergesAddUpAcrossWrites,
                            ReadUsageFiltersByDimensionAndDay, UsageOfPrefixIdsDoesNotBleed,
                            RejectedCommitAddsNoUsage, InvalidUsageDeltaRejectsTheWholeWrite,
                            AuditListsByTimeRangeAndPages, AuditRecordsWithTheSameTimeAreAllKept,
                            DeleteAuditBeforeRemovesOnlyOlderRecords,
                            BadIdsAreInvalidArgumentAndWriteNothing);

}  // namespace agentd::store
