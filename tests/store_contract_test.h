// The ContextStore contract suite (store/context_store.h), run against every implementation.
//
// To run it on a store, write a harness: a default-constructible type that owns whatever the
// store needs (a temp dir, a database) and returns a fresh, empty store from NewStore(). Then,
// in that store's test file, inside namespace agentd::store (include this header in exactly one
// .cc per binary):
//
//   struct PostgresHarness {
//     PgTestCluster cluster;  // a throwaway database per test
//     std::unique_ptr<ContextStore> NewStore() { return *PostgresStore::Open(cluster.dsn()); }
//   };
//   INSTANTIATE_TYPED_TEST_SUITE_P(Postgres, StoreContractTest, ::testing::Types<PostgresHarness>);
//
// The tenancy methods (projects, API keys, usage, audit) have their own suite with the same
// harness, in store_tenancy_contract_test.h: instantiate StoreTenancyContractTest next to it.
//
// One harness per test; the store is destroyed before its harness. Lists are compared in order
// only for ids of equal length: the order of ids of different lengths is left to the store.
#pragma once

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "store/context_store.h"

namespace agentd::store {
namespace store_contract {

inline absl::Status ToStatus(const absl::Status& s) { return s; }
template <typename T>
absl::Status ToStatus(const absl::StatusOr<T>& s) {
  return s.status();
}

inline bool ProtoEq(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

}  // namespace store_contract

#define STORE_ASSERT_OK(expr)                                                             \
  do {                                                                                    \
    const ::absl::Status store_status_ = ::agentd::store::store_contract::ToStatus(expr); \
    ASSERT_TRUE(store_status_.ok()) << store_status_.ToString();                          \
  } while (0)

#define STORE_EXPECT_CODE(expr, code_)                                                      \
  do {                                                                                      \
    const ::absl::Status store_status_ = ::agentd::store::store_contract::ToStatus(expr);   \
    EXPECT_EQ(store_status_.code(), ::absl::StatusCode::code_) << store_status_.ToString(); \
  } while (0)

template <typename Harness>
class StoreContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = harness_.NewStore();
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override { store_.reset(); }

  ContextStore& store() { return *store_; }

  static v1::Agent MakeAgent(const std::string& id, int64_t version, const std::string& model) {
    v1::Agent a;
    a.set_agent_id(id);
    a.set_version(version);
    a.set_name("agent " + id);
    a.set_model(model);
    a.set_instructions("be brief");
    (*a.mutable_metadata())["k"] = "v";
    return a;
  }

  static storage::SessionRecord MakeSession(const std::string& id, const std::string& agent_id,
                                            v1::SessionStatus status = v1::SESSION_STATUS_IDLE) {
    storage::SessionRecord r;
    r.mutable_session()->set_session_id(id);
    r.mutable_session()->set_agent_id(agent_id);
    r.mutable_session()->set_agent_version(1);
    r.mutable_session()->set_status(status);
    return r;
  }

  static v1::Event MakeEvent(const std::string& session_id, int64_t seq, const std::string& text) {
    v1::Event e;
    e.set_session_id(session_id);
    e.set_seq(seq);
    e.set_type(v1::EVENT_TYPE_MESSAGE);
    e.mutable_message()->set_role(v1::ROLE_USER);
    e.mutable_message()->set_text(text);
    return e;
  }

  /// A write of `texts` as new events on top of `current` (the stored record).
  static SessionWrite NextWrite(const std::string& project, const storage::SessionRecord& current,
                                const std::vector<std::string>& texts,
                                const std::string& idempotency_key = "") {
    SessionWrite w;
    w.project_id = project;
    w.session_id = current.session().session_id();
    w.expected_revision = current.revision();
    w.record = current;
    int64_t seq = current.session().last_seq();
    for (const std::string& text : texts) w.events.push_back(MakeEvent(w.session_id, ++seq, text));
    w.record.mutable_session()->set_last_seq(seq);
    w.idempotency_key = idempotency_key;
    if (!idempotency_key.empty()) {
      w.idempotency.set_request_digest("digest-" + idempotency_key);
      w.idempotency.set_result(absl::StrCat("result of ", idempotency_key, " at ", seq));
    }
    return w;
  }

  /// Appends `n` events ("<session>-<seq>") in one write.
  absl::Status Append(const std::string& project, const std::string& session, int n,
                      const std::string& idempotency_key = "") {
    absl::StatusOr<storage::SessionRecord> current = store().GetSession(project, session);
    if (!current.ok()) return current.status();
    std::vector<std::string> texts;
    for (int i = 1; i <= n; ++i) {
      texts.push_back(absl::StrCat(project, "/", session, "-", current->session().last_seq() + i));
    }
    return store().CommitSessionWrite(NextWrite(project, *current, texts, idempotency_key));
  }

  std::vector<v1::Event> AllEvents(const std::string& project, const std::string& session) {
    absl::StatusOr<std::vector<v1::Event>> events = store().ReadEvents(project, session, 0, 100000);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? *std::move(events) : std::vector<v1::Event>();
  }

  static std::vector<int64_t> Seqs(const std::vector<v1::Event>& events) {
    std::vector<int64_t> seqs;
    for (const v1::Event& e : events) seqs.push_back(e.seq());
    return seqs;
  }

  /// Every page of ListSessions, each page's ids.
  std::vector<std::vector<std::string>> SessionPages(const std::string& project,
                                                     const SessionFilter& filter, int32_t size) {
    std::vector<std::vector<std::string>> pages;
    std::string token;
    do {
      absl::StatusOr<SessionPage> page = store().ListSessions(project, filter, size, token);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok() || pages.size() > 10000) break;
      pages.emplace_back();
      for (const v1::Session& s : page->sessions) pages.back().push_back(s.session_id());
      token = page->next_page_token;
    } while (!token.empty());
    return pages;
  }

  std::vector<std::vector<std::string>> AgentPages(const std::string& project, int32_t size) {
    std::vector<std::vector<std::string>> pages;
    std::string token;
    do {
      absl::StatusOr<AgentPage> page = store().ListAgents(project, size, token);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok() || pages.size() > 10000) break;
      pages.emplace_back();
      for (const v1::Agent& a : page->agents) pages.back().push_back(a.agent_id());
      token = page->next_page_token;
    } while (!token.empty());
    return pages;
  }

  Harness harness_;  // declared first: outlives store_
  std::unique_ptr<ContextStore> store_;
};

TYPED_TEST_SUITE_P(StoreContractTest);

// ---- Agents ------------------------------------------------------------------------------

TYPED_TEST_P(StoreContractTest, AgentVersionsAndLatest) {
  auto& s = this->store();
  const v1::Agent v1 = this->MakeAgent("a1", 1, "m1");
  STORE_ASSERT_OK(s.PutAgentVersion("p", v1, 0));
  STORE_ASSERT_OK(s.PutAgentVersion("p", this->MakeAgent("a1", 2, "m2"), 1));

  absl::StatusOr<v1::Agent> latest = s.GetAgent("p", "a1", 0);
  STORE_ASSERT_OK(latest);
  EXPECT_EQ(latest->version(), 2);
  EXPECT_EQ(latest->model(), "m2");
  absl::StatusOr<v1::Agent> first = s.GetAgent("p", "a1", 1);
  STORE_ASSERT_OK(first);
  EXPECT_TRUE(store_contract::ProtoEq(*first, v1)) << first->DebugString();
  STORE_EXPECT_CODE(s.GetAgent("p", "a1", 3), kNotFound);
  STORE_EXPECT_CODE(s.GetAgent("p", "nope", 0), kNotFound);
}

TYPED_TEST_P(StoreContractTest, CreatingAnExistingAgentIsAlreadyExists) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.PutAgentVersion("p", this->MakeAgent("a1", 1, "m"), 0));
  STORE_EXPECT_CODE(s.PutAgentVersion("p", this->MakeAgent("a1", 1, "m"), 0), kAlreadyExists);
  STORE_ASSERT_OK(s.DeleteAgent("p", "a1"));
  STORE_EXPECT_CODE(s.PutAgentVersion("p", this->MakeAgent("a1", 1, "m"), 0), kAlreadyExists);
}

TYPED_TEST_P(StoreContractTest, StaleAgentHeadIsAborted) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.PutAgentVersion("p", this->MakeAgent("a1", 1, "m1"), 0));
  STORE_ASSERT_OK(s.PutAgentVersion("p", this->MakeAgent("a1", 2, "m2"), 1));
  STORE_EXPECT_CODE(s.PutAgentVersion("p", this->MakeAgent("a1", 3, "m3"), 1), kAborted);
  STORE_EXPECT_CODE(s.PutAgentVersion("p", this->MakeAgent("a1", 6, "m3"), 5), kAborted);
  absl::StatusOr<v1::Agent> latest = s.GetAgent("p", "a1", 0);
  STORE_ASSERT_OK(latest);
  EXPECT_EQ(latest->model(), "m2");
  STORE_EXPECT_CODE(s.GetAgent("p", "a1", 3), kNotFound);  // the rejected write left nothing
  STORE_EXPECT_CODE(s.PutAgentVersion("p", this->MakeAgent("ghost", 2, "m"), 1), kNotFound);
  STORE_ASSERT_OK(s.DeleteAgent("p", "a1"));
  STORE_EXPECT_CODE(s.PutAgentVersion("p", this->MakeAgent("a1", 3, "m3"), 2), kNotFound);
}

TYPED_TEST_P(StoreContractTest, DeletedAgentIsHiddenButKeepsVersions) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.PutAgentVersion("p", this->MakeAgent("a1", 1, "m1"), 0));
  STORE_ASSERT_OK(s.PutAgentVersion("p", this->MakeAgent("a1", 2, "m2"), 1));
  STORE_ASSERT_OK(s.DeleteAgent("p", "a1"));
  STORE_EXPECT_CODE(s.GetAgent("p", "a1", 0), kNotFound);
  STORE_EXPECT_CODE(s.GetAgent("p", "a1", 1), kNotFound);
  absl::StatusOr<v1::Agent> pinned = s.GetAgent("p", "a1", 1, /*include_deleted=*/true);
  STORE_ASSERT_OK(pinned);
  EXPECT_EQ(pinned->model(), "m1");
  absl::StatusOr<v1::Agent> latest = s.GetAgent("p", "a1", 0, /*include_deleted=*/true);
  STORE_ASSERT_OK(latest);
  EXPECT_EQ(latest->version(), 2);
  STORE_EXPECT_CODE(s.DeleteAgent("p", "a1"), kNotFound);
  STORE_EXPECT_CODE(s.DeleteAgent("p", "never"), kNotFound);
  absl::StatusOr<AgentPage> page = s.ListAgents("p", 10, "");
  STORE_ASSERT_OK(page);
  EXPECT_TRUE(page->agents.empty());
  EXPECT_TRUE(page->next_page_token.empty());
}

TYPED_TEST_P(StoreContractTest, ListAgentsPagesLiveAgentsInOrder) {
  auto& s = this->store();
  for (int i = 11; i >= 0; --i) {  // created out of order
    STORE_ASSERT_OK(
        s.PutAgentVersion("p", this->MakeAgent(absl::StrCat("agent-", i / 10, i % 10), 1, "m"), 0));
  }
  STORE_ASSERT_OK(s.PutAgentVersion("p", this->MakeAgent("agent-03", 2, "m"), 1));
  STORE_ASSERT_OK(s.PutAgentVersion("p", this->MakeAgent("agent-03", 3, "newest"), 2));
  STORE_ASSERT_OK(s.DeleteAgent("p", "agent-05"));
  STORE_ASSERT_OK(s.DeleteAgent("p", "agent-11"));  // a deleted last agent: no empty last page

  using ::testing::ElementsAre;
  EXPECT_THAT(this->AgentPages("p", 4),
              ElementsAre(ElementsAre("agent-00", "agent-01", "agent-02", "agent-03"),
                          ElementsAre("agent-04", "agent-06", "agent-07", "agent-08"),
                          ElementsAre("agent-09", "agent-10")));
  EXPECT_THAT(this->AgentPages("p", 5), ::testing::SizeIs(2));
  EXPECT_THAT(this->AgentPages("p", 0), ::testing::ElementsAre(::testing::SizeIs(10)));

  absl::StatusOr<AgentPage> page = s.ListAgents("p", 4, "");
  STORE_ASSERT_OK(page);
  ASSERT_EQ(page->agents.size(), 4u);
  EXPECT_EQ(page->agents[3].version(), 3);  // the latest version of each agent
  EXPECT_EQ(page->agents[3].model(), "newest");
}

// ---- Sessions ----------------------------------------------------------------------------

TYPED_TEST_P(StoreContractTest, SessionCreateGetAndRevision) {
  auto& s = this->store();
  storage::SessionRecord record = this->MakeSession("s1", "a1");
  record.set_revision(7);  // ignored: the store starts at 1
  (*record.mutable_session()->mutable_metadata())["team"] = "x";
  record.mutable_session()->mutable_usage()->set_input_tokens(5);
  STORE_ASSERT_OK(s.CreateSession("p", record));
  absl::StatusOr<storage::SessionRecord> got = s.GetSession("p", "s1");
  STORE_ASSERT_OK(got);
  EXPECT_EQ(got->revision(), 1);
  EXPECT_TRUE(store_contract::ProtoEq(got->session(), record.session())) << got->DebugString();
  STORE_EXPECT_CODE(s.CreateSession("p", this->MakeSession("s1", "other")), kAlreadyExists);
  STORE_EXPECT_CODE(s.GetSession("p", "s2"), kNotFound);
}

TYPED_TEST_P(StoreContractTest, ListSessionsFiltersAndPages) {
  auto& s = this->store();
  std::vector<std::string> all, agent_a, running, a_running;
  for (int i = 0; i < 20; ++i) {
    const std::string id = absl::StrCat("s-", i / 10, i % 10);
    const std::string agent = i % 2 == 0 ? "a" : "b";
    const auto status = i % 3 == 0 ? v1::SESSION_STATUS_RUNNING : v1::SESSION_STATUS_IDLE;
    STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession(id, agent, status)));
    all.push_back(id);
    if (agent == "a") agent_a.push_back(id);
    if (status == v1::SESSION_STATUS_RUNNING) running.push_back(id);
    if (agent == "a" && status == v1::SESSION_STATUS_RUNNING) a_running.push_back(id);
  }
  auto check = [&](const SessionFilter& filter, int32_t size,
                   const std::vector<std::string>& want) {
    const auto pages = this->SessionPages("p", filter, size);
    std::vector<std::string> flat;
    for (size_t i = 0; i < pages.size(); ++i) {
      if (i + 1 < pages.size()) {
        EXPECT_EQ(pages[i].size(), static_cast<size_t>(size)) << i;
      }
      EXPECT_FALSE(pages[i].empty() && !want.empty()) << "empty page " << i;
      flat.insert(flat.end(), pages[i].begin(), pages[i].end());
    }
    EXPECT_EQ(flat, want) << "agent=" << filter.agent_id << " status=" << filter.status;
    EXPECT_EQ(pages.size(), want.empty() ? 1 : (want.size() + size - 1) / size);
  };
  check({}, 3, all);
  check({"a", v1::SESSION_STATUS_UNSPECIFIED}, 3, agent_a);
  check({"", v1::SESSION_STATUS_RUNNING}, 3, running);
  check({"a", v1::SESSION_STATUS_RUNNING}, 2, a_running);  // exactly two full pages
  check({"nobody", v1::SESSION_STATUS_UNSPECIFIED}, 3, {});
  check({}, 20, all);

  absl::StatusOr<SessionPage> page = s.ListSessions("p", {"b", v1::SESSION_STATUS_IDLE}, 50, "");
  STORE_ASSERT_OK(page);
  ASSERT_FALSE(page->sessions.empty());
  for (const v1::Session& session : page->sessions) {
    EXPECT_EQ(session.agent_id(), "b");
    EXPECT_EQ(session.status(), v1::SESSION_STATUS_IDLE);
  }
}

TYPED_TEST_P(StoreContractTest, PageSizeDefaultsTo50AndIsCappedAt1000) {
  auto& s = this->store();
  for (int i = 0; i <= 1000; ++i) {
    const std::string id = absl::StrCat("s-", absl::Dec(i, absl::kZeroPad4));
    STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession(id, "a")));
  }
  for (int32_t size : {0, -3}) {
    absl::StatusOr<SessionPage> page = s.ListSessions("p", {}, size, "");
    STORE_ASSERT_OK(page);
    EXPECT_EQ(page->sessions.size(), 50u);
    EXPECT_FALSE(page->next_page_token.empty());
  }
  absl::StatusOr<SessionPage> big = s.ListSessions("p", {}, 5000, "");
  STORE_ASSERT_OK(big);
  EXPECT_EQ(big->sessions.size(), 1000u);
  ASSERT_FALSE(big->next_page_token.empty());
  absl::StatusOr<SessionPage> rest = s.ListSessions("p", {}, 5000, big->next_page_token);
  STORE_ASSERT_OK(rest);
  ASSERT_EQ(rest->sessions.size(), 1u);
  EXPECT_EQ(rest->sessions[0].session_id(), "s-1000");
  EXPECT_TRUE(rest->next_page_token.empty());
}

TYPED_TEST_P(StoreContractTest, MalformedPageTokenIsInvalidArgument) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s1", "a")));
  STORE_ASSERT_OK(s.PutAgentVersion("p", this->MakeAgent("a", 1, "m"), 0));
  for (const std::string token : {"not a token!", "\xff\xfe", "%%%"}) {
    STORE_EXPECT_CODE(s.ListSessions("p", {}, 10, token), kInvalidArgument);
    STORE_EXPECT_CODE(s.ListAgents("p", 10, token), kInvalidArgument);
  }
}

TYPED_TEST_P(StoreContractTest, DeleteSessionRemovesEventsAndIdempotency) {
  auto& s = this->store();
  for (const char* id : {"s1", "s10"}) {
    STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession(id, "a")));
    STORE_ASSERT_OK(this->Append("p", id, 3, "key"));
  }
  STORE_ASSERT_OK(s.DeleteSession("p", "s1"));
  STORE_EXPECT_CODE(s.GetSession("p", "s1"), kNotFound);
  STORE_EXPECT_CODE(s.ReadEvents("p", "s1", 0, 10), kNotFound);
  STORE_EXPECT_CODE(s.DeleteSession("p", "s1"), kNotFound);
  absl::StatusOr<std::optional<storage::IdempotencyRecord>> idem =
      s.GetIdempotency("p", "s1", "key");
  STORE_ASSERT_OK(idem);
  EXPECT_FALSE(idem->has_value());

  EXPECT_EQ(this->AllEvents("p", "s10").size(), 3u);  // the neighbour is untouched
  idem = s.GetIdempotency("p", "s10", "key");
  STORE_ASSERT_OK(idem);
  EXPECT_TRUE(idem->has_value());

  // A new session under the old id starts empty.
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s1", "a")));
  EXPECT_TRUE(this->AllEvents("p", "s1").empty());
  idem = s.GetIdempotency("p", "s1", "key");
  STORE_ASSERT_OK(idem);
  EXPECT_FALSE(idem->has_value());
  STORE_ASSERT_OK(this->Append("p", "s1", 1));
  EXPECT_THAT(this->Seqs(this->AllEvents("p", "s1")), ::testing::ElementsAre(1));
}

// ---- CommitSessionWrite ------------------------------------------------------------------

TYPED_TEST_P(StoreContractTest, CommitAppendsEventsAndBumpsRevision) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s", "a")));
  absl::StatusOr<storage::SessionRecord> rec = s.GetSession("p", "s");
  STORE_ASSERT_OK(rec);
  SessionWrite w = this->NextWrite("p", *rec, {"one", "two", "three"}, "turn-1");
  w.record.mutable_session()->mutable_usage()->set_output_tokens(42);
  STORE_ASSERT_OK(s.CommitSessionWrite(w));

  rec = s.GetSession("p", "s");
  STORE_ASSERT_OK(rec);
  EXPECT_EQ(rec->revision(), 2);
  EXPECT_EQ(rec->session().last_seq(), 3);
  EXPECT_EQ(rec->session().usage().output_tokens(), 42);
  const std::vector<v1::Event> events = this->AllEvents("p", "s");
  ASSERT_EQ(events.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(store_contract::ProtoEq(events[i], w.events[i])) << i;

  // A write without events (a status change) keeps last_seq and still bumps the revision.
  SessionWrite status_only = this->NextWrite("p", *rec, {});
  status_only.record.mutable_session()->set_status(v1::SESSION_STATUS_RUNNING);
  status_only.record.set_running_turn_id("turn-2");
  STORE_ASSERT_OK(s.CommitSessionWrite(status_only));
  rec = s.GetSession("p", "s");
  STORE_ASSERT_OK(rec);
  EXPECT_EQ(rec->revision(), 3);
  EXPECT_EQ(rec->session().last_seq(), 3);
  EXPECT_EQ(rec->session().status(), v1::SESSION_STATUS_RUNNING);
  EXPECT_EQ(rec->running_turn_id(), "turn-2");
}

TYPED_TEST_P(StoreContractTest, StaleRevisionIsAbortedAndWritesNothing) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s", "a")));
  absl::StatusOr<storage::SessionRecord> rec = s.GetSession("p", "s");
  STORE_ASSERT_OK(rec);
  STORE_ASSERT_OK(s.CommitSessionWrite(this->NextWrite("p", *rec, {"a"})));
  // Same base revision again: a concurrent writer got there first.
  SessionWrite stale = this->NextWrite("p", *rec, {"b"}, "stale-key");
  STORE_EXPECT_CODE(s.CommitSessionWrite(stale), kAborted);
  stale.expected_revision = 99;
  STORE_EXPECT_CODE(s.CommitSessionWrite(stale), kAborted);

  rec = s.GetSession("p", "s");
  STORE_ASSERT_OK(rec);
  EXPECT_EQ(rec->revision(), 2);
  EXPECT_EQ(this->AllEvents("p", "s").size(), 1u);
  absl::StatusOr<std::optional<storage::IdempotencyRecord>> idem =
      s.GetIdempotency("p", "s", "stale-key");
  STORE_ASSERT_OK(idem);
  EXPECT_FALSE(idem->has_value());
}

TYPED_TEST_P(StoreContractTest, GapsAndMismatchesAreInvalidArgumentAndWriteNothing) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s", "a")));
  STORE_ASSERT_OK(this->Append("p", "s", 2));
  absl::StatusOr<storage::SessionRecord> rec = s.GetSession("p", "s");
  STORE_ASSERT_OK(rec);
  const SessionWrite good = this->NextWrite("p", *rec, {"x", "y"}, "k");
  ASSERT_EQ(good.events[0].seq(), 3);

  std::vector<std::pair<std::string, SessionWrite>> bad;
  bad.emplace_back("gap at start", good);
  for (v1::Event& e : bad.back().second.events) e.set_seq(e.seq() + 1);
  bad.back().second.record.mutable_session()->set_last_seq(5);
  bad.emplace_back("gap in the middle", good);
  bad.back().second.events[1].set_seq(5);
  bad.back().second.record.mutable_session()->set_last_seq(5);
  bad.emplace_back("duplicate seq", good);
  bad.back().second.events[1].set_seq(3);
  bad.back().second.record.mutable_session()->set_last_seq(3);
  bad.emplace_back("overlaps stored events", good);
  bad.back().second.events[0].set_seq(2);
  bad.back().second.events[1].set_seq(3);
  bad.back().second.record.mutable_session()->set_last_seq(3);
  bad.emplace_back("record last_seq too high", good);
  bad.back().second.record.mutable_session()->set_last_seq(5);
  bad.emplace_back("record last_seq too low", good);
  bad.back().second.record.mutable_session()->set_last_seq(3);
  bad.emplace_back("no events but last_seq moved", this->NextWrite("p", *rec, {}, "k"));
  bad.back().second.record.mutable_session()->set_last_seq(3);
  bad.emplace_back("event of another session", good);
  bad.back().second.events[1].set_session_id("other");
  bad.emplace_back("record of another session", good);
  bad.back().second.record.mutable_session()->set_session_id("other");

  for (const auto& [what, write] : bad) {
    SCOPED_TRACE(what);
    STORE_EXPECT_CODE(s.CommitSessionWrite(write), kInvalidArgument);
  }
  absl::StatusOr<storage::SessionRecord> after = s.GetSession("p", "s");
  STORE_ASSERT_OK(after);
  EXPECT_EQ(after->revision(), rec->revision());
  EXPECT_EQ(after->session().last_seq(), 2);
  EXPECT_THAT(this->Seqs(this->AllEvents("p", "s")), ::testing::ElementsAre(1, 2));
  absl::StatusOr<std::optional<storage::IdempotencyRecord>> idem = s.GetIdempotency("p", "s", "k");
  STORE_ASSERT_OK(idem);
  EXPECT_FALSE(idem->has_value());
  STORE_ASSERT_OK(s.CommitSessionWrite(good));  // and the well-formed write still applies
  EXPECT_THAT(this->Seqs(this->AllEvents("p", "s")), ::testing::ElementsAre(1, 2, 3, 4));
}

TYPED_TEST_P(StoreContractTest, CommitToMissingSessionIsNotFound) {
  auto& s = this->store();
  SessionWrite w = this->NextWrite("p", this->MakeSession("ghost", "a"), {"x"});
  w.expected_revision = 1;
  STORE_EXPECT_CODE(s.CommitSessionWrite(w), kNotFound);
  STORE_EXPECT_CODE(s.GetSession("p", "ghost"), kNotFound);
}

TYPED_TEST_P(StoreContractTest, IdempotencyRecordsRoundTrip) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s", "a")));
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("t", "a")));
  absl::StatusOr<storage::SessionRecord> rec = s.GetSession("p", "s");
  STORE_ASSERT_OK(rec);
  SessionWrite w = this->NextWrite("p", *rec, {"hi"}, "req-1");
  w.idempotency.set_request_digest(std::string("\x00\xff\x10 digest", 10));
  w.idempotency.set_result(std::string("\x00result\xfe", 8));
  w.idempotency.mutable_create_time()->set_seconds(1700000000);
  STORE_ASSERT_OK(s.CommitSessionWrite(w));

  absl::StatusOr<std::optional<storage::IdempotencyRecord>> got =
      s.GetIdempotency("p", "s", "req-1");
  STORE_ASSERT_OK(got);
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->request_digest(), w.idempotency.request_digest());
  EXPECT_EQ((*got)->result(), w.idempotency.result());
  EXPECT_TRUE(store_contract::ProtoEq(**got, w.idempotency));
  for (const auto& [session, key] : std::vector<std::pair<std::string, std::string>>{
           {"s", "req-2"}, {"s", "req-10"}, {"s", "req"}, {"t", "req-1"}}) {
    got = s.GetIdempotency("p", session, key);
    STORE_ASSERT_OK(got);
    EXPECT_FALSE(got->has_value()) << session << "/" << key;
  }
}

TYPED_TEST_P(StoreContractTest, ReadEventsAfterSeqAndLimit) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s", "a")));
  for (int i = 0; i < 3; ++i) STORE_ASSERT_OK(this->Append("p", "s", 100));

  const std::vector<v1::Event> all = this->AllEvents("p", "s");
  ASSERT_EQ(all.size(), 300u);
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i].seq(), static_cast<int64_t>(i + 1));

  auto read = [&](int64_t after, int32_t limit) {
    absl::StatusOr<std::vector<v1::Event>> events = s.ReadEvents("p", "s", after, limit);
    EXPECT_TRUE(events.ok()) << events.status();
    return events.ok() ? this->Seqs(*events) : std::vector<int64_t>();
  };
  using ::testing::ElementsAre;
  EXPECT_THAT(read(0, 3), ElementsAre(1, 2, 3));
  EXPECT_THAT(read(8, 3), ElementsAre(9, 10, 11));
  EXPECT_THAT(read(254, 3), ElementsAre(255, 256, 257));
  EXPECT_THAT(read(298, 10), ElementsAre(299, 300));
  EXPECT_THAT(read(300, 10), ElementsAre());
  EXPECT_THAT(read(5000, 10), ElementsAre());
  EXPECT_EQ(read(3, 1000).size(), 297u);
  EXPECT_EQ(read(3, 1000).front(), 4);
  STORE_EXPECT_CODE(s.ReadEvents("p", "s", 0, 0), kInvalidArgument);
  STORE_EXPECT_CODE(s.ReadEvents("p", "s", 0, -1), kInvalidArgument);
  STORE_EXPECT_CODE(s.ReadEvents("p", "ghost", 0, 10), kNotFound);
}

// ---- Tenancy -----------------------------------------------------------------------------

TYPED_TEST_P(StoreContractTest, ProjectsAreIsolated) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.PutAgentVersion("a", this->MakeAgent("x", 1, "model-a"), 0));
  STORE_ASSERT_OK(s.PutAgentVersion("b", this->MakeAgent("x", 1, "model-b"), 0));
  STORE_ASSERT_OK(s.PutAgentVersion("b", this->MakeAgent("only-b", 1, "m"), 0));
  STORE_ASSERT_OK(s.CreateSession("a", this->MakeSession("s", "agent-of-a")));
  STORE_ASSERT_OK(s.CreateSession("b", this->MakeSession("s", "agent-of-b")));
  STORE_ASSERT_OK(this->Append("a", "s", 2, "k"));
  STORE_ASSERT_OK(this->Append("b", "s", 5));

  EXPECT_EQ(s.GetAgent("a", "x", 0)->model(), "model-a");
  EXPECT_EQ(s.GetAgent("b", "x", 0)->model(), "model-b");
  STORE_EXPECT_CODE(s.GetAgent("a", "only-b", 0), kNotFound);
  STORE_EXPECT_CODE(s.DeleteAgent("a", "only-b"), kNotFound);
  EXPECT_THAT(this->AgentPages("a", 10), ::testing::ElementsAre(::testing::ElementsAre("x")));
  EXPECT_EQ(s.GetSession("a", "s")->session().agent_id(), "agent-of-a");
  EXPECT_EQ(s.GetSession("b", "s")->session().agent_id(), "agent-of-b");
  EXPECT_EQ(this->AllEvents("a", "s").size(), 2u);
  EXPECT_EQ(this->AllEvents("b", "s").size(), 5u);
  EXPECT_EQ(this->AllEvents("a", "s")[0].message().text(), "a/s-1");
  EXPECT_FALSE(s.GetIdempotency("b", "s", "k")->has_value());
  EXPECT_TRUE(s.GetIdempotency("a", "s", "k")->has_value());
  STORE_EXPECT_CODE(s.GetSession("c", "s"), kNotFound);

  // Writes in one project do not reach the other.
  absl::StatusOr<storage::SessionRecord> b_rec = s.GetSession("b", "s");
  STORE_ASSERT_OK(b_rec);
  SessionWrite cross = this->NextWrite("c", *b_rec, {"x"});
  STORE_EXPECT_CODE(s.CommitSessionWrite(cross), kNotFound);
  STORE_ASSERT_OK(s.DeleteSession("a", "s"));
  STORE_ASSERT_OK(s.DeleteAgent("a", "x"));
  EXPECT_EQ(this->AllEvents("b", "s").size(), 5u);
  STORE_ASSERT_OK(s.GetAgent("b", "x", 0));
  EXPECT_THAT(this->SessionPages("b", {}, 10), ::testing::ElementsAre(::testing::ElementsAre("s")));
}

TYPED_TEST_P(StoreContractTest, PrefixIdsDoNotBleed) {
  auto& s = this->store();
  using ::testing::UnorderedElementsAre;
  for (const auto& [project, session] : std::vector<std::pair<std::string, std::string>>{
           {"p", "s1"}, {"p", "s10"}, {"pp", "s1"}, {"p", "s"}}) {
    STORE_ASSERT_OK(s.CreateSession(project, this->MakeSession(session, "a")));
  }
  STORE_ASSERT_OK(this->Append("p", "s1", 2, "k"));
  STORE_ASSERT_OK(this->Append("p", "s10", 3, "k"));
  STORE_ASSERT_OK(this->Append("pp", "s1", 4));
  STORE_ASSERT_OK(s.PutAgentVersion("p", this->MakeAgent("x", 1, "m"), 0));
  STORE_ASSERT_OK(s.PutAgentVersion("p", this->MakeAgent("x1", 1, "m"), 0));
  STORE_ASSERT_OK(s.PutAgentVersion("pp", this->MakeAgent("x", 1, "m"), 0));

  for (const auto& [project, session, n] :
       std::vector<std::tuple<std::string, std::string, size_t>>{
           {"p", "s1", 2}, {"p", "s10", 3}, {"pp", "s1", 4}, {"p", "s", 0}}) {
    const std::vector<v1::Event> events = this->AllEvents(project, session);
    EXPECT_EQ(events.size(), n) << project << "/" << session;
    for (const v1::Event& e : events) EXPECT_EQ(e.session_id(), session);
  }
  auto flat_sessions = [&](const std::string& project) {
    std::vector<std::string> flat;
    for (const auto& page : this->SessionPages(project, {}, 10)) {
      flat.insert(flat.end(), page.begin(), page.end());
    }
    return flat;
  };
  EXPECT_THAT(flat_sessions("p"), UnorderedElementsAre("s", "s1", "s10"));
  EXPECT_THAT(flat_sessions("pp"), UnorderedElementsAre("s1"));
  STORE_ASSERT_OK(s.DeleteAgent("p", "x"));
  STORE_ASSERT_OK(s.GetAgent("p", "x1", 0));
  STORE_ASSERT_OK(s.GetAgent("pp", "x", 0));
  EXPECT_THAT(this->AgentPages("p", 10), ::testing::ElementsAre(UnorderedElementsAre("x1")));

  STORE_ASSERT_OK(s.DeleteSession("p", "s1"));
  EXPECT_EQ(this->AllEvents("p", "s10").size(), 3u);
  EXPECT_EQ(this->AllEvents("pp", "s1").size(), 4u);
  EXPECT_TRUE(s.GetIdempotency("p", "s10", "k")->has_value());
  EXPECT_FALSE(s.GetIdempotency("p", "s1", "k")->has_value());
}

TYPED_TEST_P(StoreContractTest, ForEachSessionWithStatusScansAllProjects) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("a", this->MakeSession("s1", "x", v1::SESSION_STATUS_RUNNING)));
  STORE_ASSERT_OK(s.CreateSession("a", this->MakeSession("s4", "x", v1::SESSION_STATUS_IDLE)));
  STORE_ASSERT_OK(s.CreateSession("b", this->MakeSession("s2", "x", v1::SESSION_STATUS_RUNNING)));
  STORE_ASSERT_OK(s.CreateSession("cc", this->MakeSession("s3", "x", v1::SESSION_STATUS_RUNNING)));

  auto collect = [&](v1::SessionStatus status) {
    std::set<std::pair<std::string, std::string>> seen;
    const absl::Status st = s.ForEachSessionWithStatus(
        status, [&](const std::string& project, const storage::SessionRecord& record) {
          EXPECT_EQ(record.session().status(), status);
          EXPECT_EQ(record.revision(), 1);
          seen.emplace(project, record.session().session_id());
          return absl::OkStatus();
        });
    EXPECT_TRUE(st.ok()) << st;
    return seen;
  };
  using P = std::pair<std::string, std::string>;
  EXPECT_THAT(collect(v1::SESSION_STATUS_RUNNING),
              ::testing::UnorderedElementsAre(P{"a", "s1"}, P{"b", "s2"}, P{"cc", "s3"}));
  EXPECT_THAT(collect(v1::SESSION_STATUS_IDLE), ::testing::UnorderedElementsAre(P{"a", "s4"}));
  EXPECT_THAT(collect(v1::SESSION_STATUS_FAILED), ::testing::IsEmpty());

  int calls = 0;
  const absl::Status st = s.ForEachSessionWithStatus(
      v1::SESSION_STATUS_RUNNING, [&](const std::string&, const storage::SessionRecord&) {
        ++calls;
        return absl::CancelledError("stop");
      });
  EXPECT_EQ(st.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(calls, 1);
}

TYPED_TEST_P(StoreContractTest, IdsOutsideOneTo128BytesAreInvalidArgument) {
  auto& s = this->store();
  const std::string long_id(129, 'x');
  STORE_EXPECT_CODE(s.GetSession("", "s"), kInvalidArgument);
  STORE_EXPECT_CODE(s.GetSession(long_id, "s"), kInvalidArgument);
  STORE_EXPECT_CODE(s.CreateSession("p", this->MakeSession("", "a")), kInvalidArgument);
  STORE_EXPECT_CODE(s.CreateSession("p", this->MakeSession(long_id, "a")), kInvalidArgument);
  STORE_EXPECT_CODE(s.PutAgentVersion("p", this->MakeAgent(long_id, 1, "m"), 0), kInvalidArgument);
  STORE_EXPECT_CODE(s.ReadEvents("p", "", 0, 10), kInvalidArgument);
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession(std::string(128, 'x'), "a")));
}

// ---- Concurrency -------------------------------------------------------------------------

TYPED_TEST_P(StoreContractTest, ConcurrentCasCommitsAreGapFree) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s", "a")));
  constexpr int kThreads = 8;
  constexpr int kCommitsPerThread = 20;
  std::atomic<int> aborted{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kCommitsPerThread; ++i) {
        std::vector<std::string> texts = {absl::StrCat("t", t, "-", i, "a")};
        if (i % 2 == 1) texts.push_back(absl::StrCat("t", t, "-", i, "b"));
        for (;;) {
          absl::StatusOr<storage::SessionRecord> rec = s.GetSession("p", "s");
          if (!rec.ok()) {
            ++failures;
            return;
          }
          const absl::Status st = s.CommitSessionWrite(this->NextWrite("p", *rec, texts));
          if (st.ok()) break;
          if (st.code() != absl::StatusCode::kAborted) {
            ADD_FAILURE() << st;
            ++failures;
            return;
          }
          ++aborted;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);

  const int total = kThreads * (kCommitsPerThread + kCommitsPerThread / 2);
  absl::StatusOr<storage::SessionRecord> rec = s.GetSession("p", "s");
  STORE_ASSERT_OK(rec);
  EXPECT_EQ(rec->session().last_seq(), total);
  EXPECT_EQ(rec->revision(), 1 + kThreads * kCommitsPerThread);
  const std::vector<v1::Event> events = this->AllEvents("p", "s");
  ASSERT_EQ(events.size(), static_cast<size_t>(total));
  std::map<std::string, int> seen;
  std::map<int, int> last_step;  // per thread: 2 * commit + part of the last event seen
  for (size_t n = 0; n < events.size(); ++n) {
    EXPECT_EQ(events[n].seq(), static_cast<int64_t>(n + 1));
    const std::string& text = events[n].message().text();
    ++seen[text];
    int t = 0, i = 0;
    char part = 0;
    ASSERT_EQ(sscanf(text.c_str(), "t%d-%d%c", &t, &i, &part), 3) << text;
    const int step = 2 * i + (part == 'b' ? 1 : 0);
    if (last_step.count(t) != 0) {
      EXPECT_GT(step, last_step[t]) << "out of order: " << text;
    }
    last_step[t] = step;
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(total));
  for (const auto& [text, n] : seen) EXPECT_EQ(n, 1) << text;
  ::testing::Test::RecordProperty("cas_retries", aborted.load());
}

REGISTER_TYPED_TEST_SUITE_P(
    StoreContractTest, AgentVersionsAndLatest, CreatingAnExistingAgentIsAlreadyExists,
    StaleAgentHeadIsAborted, DeletedAgentIsHiddenButKeepsVersions, ListAgentsPagesLiveAgentsInOrder,
    SessionCreateGetAndRevision, ListSessionsFiltersAndPages, PageSizeDefaultsTo50AndIsCappedAt1000,
    MalformedPageTokenIsInvalidArgument, DeleteSessionRemovesEventsAndIdempotency,
    CommitAppendsEventsAndBumpsRevision, StaleRevisionIsAbortedAndWritesNothing,
    GapsAndMismatchesAreInvalidArgumentAndWriteNothing, CommitToMissingSessionIsNotFound,
    IdempotencyRecordsRoundTrip, ReadEventsAfterSeqAndLimit, ProjectsAreIsolated,
    PrefixIdsDoNotBleed, ForEachSessionWithStatusScansAllProjects,
    IdsOutsideOneTo128BytesAreInvalidArgument, ConcurrentCasCommitsAreGapFree);

}  // namespace agentd::store
