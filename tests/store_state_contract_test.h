// The ContextStore contract, part 3: per-session tool state, forks and expiry (the "state,
// fork and retention" methods of store/context_store.h, and what they change in the session
// methods). Run it wherever StoreContractTest runs, with the same harness:
//
//   INSTANTIATE_TYPED_TEST_SUITE_P(Postgres, StoreStateContractTest,
//                                  ::testing::Types<PostgresHarness>);
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/time_util.h"
#include "store/context_store.h"
#include "store_contract_test.h"

namespace agentd::store {

template <typename Harness>
class StoreStateContractTest : public StoreContractTest<Harness> {
 protected:
  static StateMutation Mut(const std::string& key, const std::string& value,
                           int64_t expected_version = 0) {
    return StateMutation{key, value, expected_version};
  }

  /// A session whose expire_time is `from_now` away (negative: already expired).
  static storage::SessionRecord Expiring(const std::string& id, absl::Duration from_now) {
    storage::SessionRecord r = StoreContractTest<Harness>::MakeSession(id, "a");
    *r.mutable_session()->mutable_expire_time() = ToProto(absl::Now() + from_now);
    return r;
  }

  /// A fork of `parent` at `fork_seq` named `id`.
  static storage::SessionRecord Fork(const std::string& id, const std::string& parent,
                                     int64_t fork_seq) {
    storage::SessionRecord r = StoreContractTest<Harness>::MakeSession(id, "a");
    r.mutable_session()->set_parent_session_id(parent);
    r.mutable_session()->set_fork_seq(fork_seq);
    return r;
  }

  std::vector<std::string> Texts(const std::string& project, const std::string& session) {
    std::vector<std::string> texts;
    for (const v1::Event& e : this->AllEvents(project, session)) {
      EXPECT_EQ(e.session_id(), session);
      texts.push_back(absl::StrCat(e.seq(), ":", e.message().text()));
    }
    return texts;
  }

  std::vector<std::string> StateKeys(const std::string& project, const std::string& session) {
    absl::StatusOr<std::vector<v1::StateEntry>> entries = this->store().ListState(project, session);
    EXPECT_TRUE(entries.ok()) << entries.status();
    std::vector<std::string> keys;
    if (!entries.ok()) return keys;
    for (const v1::StateEntry& e : *entries)
      keys.push_back(absl::StrCat(e.key(), "@", e.version()));
    return keys;
  }
};

TYPED_TEST_SUITE_P(StoreStateContractTest);

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// ---- Tool state ------------------------------------------------------------------------------

TYPED_TEST_P(StoreStateContractTest, PutStateVersionsAndCompareAndSet) {
  auto& s = this->store();
  STORE_EXPECT_CODE(s.PutState("p", "s", this->Mut("k", "1")), kNotFound);
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s", "a")));
  STORE_EXPECT_CODE(s.GetState("p", "s", "k"), kNotFound);

  absl::StatusOr<v1::StateEntry> e = s.PutState("p", "s", this->Mut("k", "1"));
  STORE_ASSERT_OK(e);
  EXPECT_EQ(e->key(), "k");
  EXPECT_EQ(e->value_json(), "1");
  EXPECT_EQ(e->version(), 1);
  EXPECT_EQ(s.PutState("p", "s", this->Mut("k", "2"))->version(), 2);  // unconditional
  EXPECT_EQ(s.PutState("p", "s", this->Mut("k", "3", 2))->version(), 3);
  STORE_EXPECT_CODE(s.PutState("p", "s", this->Mut("k", "stale", 2)), kAborted);
  STORE_EXPECT_CODE(s.PutState("p", "s", this->Mut("new", "x", 1)), kAborted);  // missing = 0
  absl::StatusOr<v1::StateEntry> got = s.GetState("p", "s", "k");
  STORE_ASSERT_OK(got);
  EXPECT_EQ(got->value_json(), "3");
  EXPECT_EQ(got->version(), 3);
  STORE_EXPECT_CODE(s.GetState("p", "s", "new"), kNotFound);

  STORE_ASSERT_OK(s.PutState("p", "s", this->Mut("b/2", "{}")));
  STORE_ASSERT_OK(s.PutState("p", "s", this->Mut("a", "[]")));
  EXPECT_THAT(this->StateKeys("p", "s"), ElementsAre("a@1", "b/2@1", "k@3"));
  STORE_EXPECT_CODE(s.ListState("p", "missing"), kNotFound);
  STORE_EXPECT_CODE(s.GetState("p", "missing", "k"), kNotFound);
  // State is per session and per project.
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s2", "a")));
  STORE_ASSERT_OK(s.CreateSession("q", this->MakeSession("s", "a")));
  EXPECT_THAT(this->StateKeys("p", "s2"), IsEmpty());
  EXPECT_THAT(this->StateKeys("q", "s"), IsEmpty());
}

TYPED_TEST_P(StoreStateContractTest, BadStateKeysAndValuesAreInvalidArgument) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s", "a")));
  for (const std::string& bad :
       {std::string(), std::string(257, 'k'), std::string("a\nb"), std::string("tab\t"),
        std::string("\x7f"), std::string("caf\xc3\xa9")}) {
    STORE_EXPECT_CODE(s.PutState("p", "s", this->Mut(bad, "1")), kInvalidArgument);
    STORE_EXPECT_CODE(s.GetState("p", "s", bad), kInvalidArgument);
  }
  STORE_ASSERT_OK(s.PutState("p", "s", this->Mut(std::string(256, 'k'), "1")));
  STORE_ASSERT_OK(s.PutState("p", "s", this->Mut(" ~printable ~", "1")));
  STORE_EXPECT_CODE(s.PutState("p", "s", this->Mut("big", std::string((1 << 20) + 1, '1'))),
                    kInvalidArgument);
  STORE_ASSERT_OK(s.PutState("p", "s", this->Mut("big", std::string(1 << 20, '1'))));
  STORE_EXPECT_CODE(s.PutState("p", "s", this->Mut("k", "1", -1)), kInvalidArgument);
}

TYPED_TEST_P(StoreStateContractTest, ConcurrentCompareAndSetLosesNoUpdate) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s", "a")));
  STORE_ASSERT_OK(s.PutState("p", "s", this->Mut("counter", "0")));
  constexpr int kThreads = 8;
  constexpr int kIncrements = 40;
  std::atomic<int> aborted{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kIncrements; ++i) {
        for (;;) {  // read, add one, write back only if nobody wrote in between
          absl::StatusOr<v1::StateEntry> cur = s.GetState("p", "s", "counter");
          if (!cur.ok()) {
            ++failures;
            return;
          }
          const int next = std::stoi(cur->value_json()) + 1;
          absl::StatusOr<v1::StateEntry> put =
              s.PutState("p", "s", this->Mut("counter", std::to_string(next), cur->version()));
          if (put.ok()) break;
          if (!absl::IsAborted(put.status())) {
            ++failures;
            return;
          }
          ++aborted;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  absl::StatusOr<v1::StateEntry> final_entry = s.GetState("p", "s", "counter");
  STORE_ASSERT_OK(final_entry);
  EXPECT_EQ(final_entry->value_json(), std::to_string(kThreads * kIncrements));
  EXPECT_EQ(final_entry->version(), 1 + kThreads * kIncrements);
  std::printf("state CAS: %d increments, %d aborted attempts\n", kThreads * kIncrements,
              aborted.load());
}

TYPED_TEST_P(StoreStateContractTest, StateCommitsWithTheSessionWrite) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s", "a")));
  SessionWrite w = this->NextWrite("p", *s.GetSession("p", "s"), {"one"});
  w.state = {this->Mut("x", "1"), this->Mut("x", "2", 1), this->Mut("y", "\"y\"")};
  STORE_ASSERT_OK(s.CommitSessionWrite(w));
  EXPECT_THAT(this->StateKeys("p", "s"), ElementsAre("x@2", "y@1"));
  EXPECT_EQ(s.GetState("p", "s", "x")->value_json(), "2");

  // One stale mutation rejects the whole write: no event, no state, no revision bump.
  absl::StatusOr<storage::SessionRecord> before = s.GetSession("p", "s");
  STORE_ASSERT_OK(before);
  SessionWrite bad = this->NextWrite("p", *before, {"two"}, "idem");
  bad.state = {this->Mut("z", "1"), this->Mut("x", "3", 1)};
  STORE_EXPECT_CODE(s.CommitSessionWrite(bad), kAborted);
  EXPECT_THAT(this->StateKeys("p", "s"), ElementsAre("x@2", "y@1"));
  EXPECT_EQ(this->AllEvents("p", "s").size(), 1u);
  EXPECT_EQ(s.GetSession("p", "s")->revision(), before->revision());
  EXPECT_FALSE(s.GetIdempotency("p", "s", "idem")->has_value());
  bad.state = {this->Mut("", "1")};
  STORE_EXPECT_CODE(s.CommitSessionWrite(bad), kInvalidArgument);
  EXPECT_EQ(this->AllEvents("p", "s").size(), 1u);

  // PutState does not change the session record: a writer holding its revision is not disturbed.
  STORE_ASSERT_OK(s.PutState("p", "s", this->Mut("x", "9")));
  SessionWrite next = this->NextWrite("p", *before, {"two"});
  next.state = {this->Mut("x", "10", 3)};
  STORE_ASSERT_OK(s.CommitSessionWrite(next));
  EXPECT_EQ(s.GetState("p", "s", "x")->version(), 4);
}

TYPED_TEST_P(StoreStateContractTest, DeleteSessionRemovesState) {
  auto& s = this->store();
  for (const char* id : {"s1", "s10"}) {
    STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession(id, "a")));
    STORE_ASSERT_OK(s.PutState("p", id, this->Mut("k", "1")));
  }
  STORE_ASSERT_OK(s.DeleteSession("p", "s1"));
  STORE_EXPECT_CODE(s.GetState("p", "s1", "k"), kNotFound);
  EXPECT_THAT(this->StateKeys("p", "s10"), ElementsAre("k@1"));
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s1", "a")));
  EXPECT_THAT(this->StateKeys("p", "s1"), IsEmpty());
}

// ---- Forks -----------------------------------------------------------------------------------

TYPED_TEST_P(StoreStateContractTest, ForkReadsTheParentUpToForkSeqThenItsOwn) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("root", "a")));
  STORE_ASSERT_OK(this->Append("p", "root", 5));
  STORE_ASSERT_OK(s.PutState("p", "root", this->Mut("k", "\"root\"")));
  STORE_ASSERT_OK(s.PutState("p", "root", this->Mut("k", "\"root2\"")));

  STORE_ASSERT_OK(s.ForkSession("p", this->Fork("f3", "root", 3)));
  absl::StatusOr<storage::SessionRecord> f3 = s.GetSession("p", "f3");
  STORE_ASSERT_OK(f3);
  EXPECT_EQ(f3->session().last_seq(), 3);
  EXPECT_EQ(f3->session().parent_session_id(), "root");
  EXPECT_EQ(f3->session().fork_seq(), 3);
  EXPECT_THAT(this->Texts("p", "f3"), ElementsAre("1:p/root-1", "2:p/root-2", "3:p/root-3"));
  EXPECT_THAT(this->StateKeys("p", "f3"), ElementsAre("k@2"));  // copied, version kept
  EXPECT_EQ(s.GetState("p", "f3", "k")->value_json(), "\"root2\"");

  // Each side appends on its own; the fork's seqs continue after fork_seq.
  STORE_ASSERT_OK(this->Append("p", "f3", 2));
  STORE_ASSERT_OK(this->Append("p", "root", 1));
  STORE_ASSERT_OK(s.PutState("p", "f3", this->Mut("k", "\"fork\"")));
  EXPECT_THAT(this->Texts("p", "f3"),
              ElementsAre("1:p/root-1", "2:p/root-2", "3:p/root-3", "4:p/f3-4", "5:p/f3-5"));
  EXPECT_EQ(this->AllEvents("p", "root").size(), 6u);
  EXPECT_EQ(s.GetState("p", "root", "k")->value_json(), "\"root2\"");

  // Fork of a fork, before, at and after the first fork point.
  STORE_ASSERT_OK(s.ForkSession("p", this->Fork("ff2", "f3", 2)));
  STORE_ASSERT_OK(s.ForkSession("p", this->Fork("ff3", "f3", 3)));
  STORE_ASSERT_OK(s.ForkSession("p", this->Fork("ff4", "f3", 4)));
  EXPECT_THAT(this->Texts("p", "ff2"), ElementsAre("1:p/root-1", "2:p/root-2"));
  EXPECT_THAT(this->Texts("p", "ff3"), ElementsAre("1:p/root-1", "2:p/root-2", "3:p/root-3"));
  EXPECT_THAT(this->Texts("p", "ff4"),
              ElementsAre("1:p/root-1", "2:p/root-2", "3:p/root-3", "4:p/f3-4"));
  STORE_ASSERT_OK(this->Append("p", "ff2", 1));
  EXPECT_THAT(this->Texts("p", "ff2"), ElementsAre("1:p/root-1", "2:p/root-2", "3:p/ff2-3"));
  STORE_ASSERT_OK(s.ForkSession("p", this->Fork("fff", "ff2", 3)));
  STORE_ASSERT_OK(this->Append("p", "fff", 1));
  EXPECT_THAT(this->Texts("p", "fff"),
              ElementsAre("1:p/root-1", "2:p/root-2", "3:p/ff2-3", "4:p/fff-4"));

  // after_seq and limit slice across the chain.
  absl::StatusOr<std::vector<v1::Event>> page = s.ReadEvents("p", "fff", 1, 2);
  STORE_ASSERT_OK(page);
  EXPECT_THAT(this->Seqs(*page), ElementsAre(2, 3));
  page = s.ReadEvents("p", "fff", 3, 10);
  STORE_ASSERT_OK(page);
  EXPECT_THAT(this->Seqs(*page), ElementsAre(4));

  // An empty fork reads nothing of its parent.
  STORE_ASSERT_OK(s.ForkSession("p", this->Fork("empty", "root", 0)));
  EXPECT_THAT(this->AllEvents("p", "empty"), IsEmpty());
  STORE_ASSERT_OK(this->Append("p", "empty", 1));
  EXPECT_THAT(this->Texts("p", "empty"), ElementsAre("1:p/empty-1"));
  EXPECT_THAT(this->StateKeys("p", "empty"), ElementsAre("k@2"));
}

TYPED_TEST_P(StoreStateContractTest, ForkErrors) {
  auto& s = this->store();
  STORE_EXPECT_CODE(s.ForkSession("p", this->Fork("c", "missing", 0)), kNotFound);
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("root", "a")));
  STORE_ASSERT_OK(this->Append("p", "root", 2));
  STORE_EXPECT_CODE(s.ForkSession("p", this->Fork("c", "root", 3)), kInvalidArgument);
  STORE_EXPECT_CODE(s.ForkSession("p", this->Fork("c", "root", -1)), kInvalidArgument);
  STORE_EXPECT_CODE(s.ForkSession("p", this->Fork("root", "root", 1)), kInvalidArgument);
  STORE_EXPECT_CODE(s.ForkSession("p", this->Fork("", "root", 1)), kInvalidArgument);
  STORE_EXPECT_CODE(s.GetSession("p", "c"), kNotFound);
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("taken", "a")));
  STORE_EXPECT_CODE(s.ForkSession("p", this->Fork("taken", "root", 1)), kAlreadyExists);
  STORE_EXPECT_CODE(s.ForkSession("q", this->Fork("c", "root", 1)), kNotFound);  // other project
}

TYPED_TEST_P(StoreStateContractTest, ForkLeavesTheParentsRevisionAndWritesAlone) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("root", "a")));
  STORE_ASSERT_OK(this->Append("p", "root", 2));
  absl::StatusOr<storage::SessionRecord> held = s.GetSession("p", "root");  // a turn's copy
  STORE_ASSERT_OK(held);
  STORE_ASSERT_OK(s.ForkSession("p", this->Fork("child", "root", 2)));
  EXPECT_EQ(s.GetSession("p", "root")->revision(), held->revision());
  // The writer's record knows nothing of the fork; the store keeps the link.
  STORE_ASSERT_OK(s.CommitSessionWrite(this->NextWrite("p", *held, {"after"})));
  STORE_EXPECT_CODE(s.DeleteSession("p", "root"), kFailedPrecondition);
  EXPECT_THAT(this->Texts("p", "child"), ElementsAre("1:p/root-1", "2:p/root-2"));
}

TYPED_TEST_P(StoreStateContractTest, ParentWithForksCannotBeDeleted) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("root", "a")));
  STORE_ASSERT_OK(this->Append("p", "root", 3));
  STORE_ASSERT_OK(s.ForkSession("p", this->Fork("mid", "root", 2)));
  STORE_ASSERT_OK(s.ForkSession("p", this->Fork("leaf", "mid", 1)));
  STORE_ASSERT_OK(s.ForkSession("p", this->Fork("empty", "root", 0)));  // holds nothing
  absl::Status st = s.DeleteSession("p", "root");
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("1 fork"), absl::string_view::npos) << st;
  STORE_EXPECT_CODE(s.DeleteSession("p", "mid"), kFailedPrecondition);
  STORE_ASSERT_OK(s.DeleteSession("p", "leaf"));
  STORE_ASSERT_OK(s.DeleteSession("p", "mid"));
  STORE_ASSERT_OK(s.DeleteSession("p", "root"));
  STORE_EXPECT_CODE(s.GetSession("p", "root"), kNotFound);
  EXPECT_THAT(this->AllEvents("p", "empty"), IsEmpty());
}

// ---- Expiry ----------------------------------------------------------------------------------

TYPED_TEST_P(StoreStateContractTest, ExpiredSessionIsNotFoundOnEveryPath) {
  auto& s = this->store();
  // Created live, with events, state and an idempotency record; then its time passes.
  STORE_ASSERT_OK(s.CreateSession("p", this->Expiring("s", absl::Seconds(1))));
  STORE_ASSERT_OK(s.CreateSession("p", this->Expiring("live", absl::Hours(1))));
  STORE_ASSERT_OK(this->Append("p", "s", 2, "idem"));
  STORE_ASSERT_OK(s.PutState("p", "s", this->Mut("k", "1")));
  const storage::SessionRecord held = *s.GetSession("p", "s");
  EXPECT_TRUE(s.GetIdempotency("p", "s", "idem")->has_value());
  absl::SleepFor(FromProto(held.session().expire_time()) - absl::Now() + absl::Milliseconds(20));

  STORE_EXPECT_CODE(s.GetSession("p", "s"), kNotFound);
  STORE_EXPECT_CODE(s.ReadEvents("p", "s", 0, 10), kNotFound);
  STORE_EXPECT_CODE(s.GetState("p", "s", "k"), kNotFound);
  STORE_EXPECT_CODE(s.ListState("p", "s"), kNotFound);
  STORE_EXPECT_CODE(s.PutState("p", "s", this->Mut("k", "2")), kNotFound);
  STORE_EXPECT_CODE(s.CommitSessionWrite(this->NextWrite("p", held, {"late"})), kNotFound);
  STORE_EXPECT_CODE(s.ForkSession("p", this->Fork("f", "s", 1)), kNotFound);
  STORE_EXPECT_CODE(s.DeleteSession("p", "s"), kNotFound);
  absl::StatusOr<std::optional<storage::IdempotencyRecord>> idem =
      s.GetIdempotency("p", "s", "idem");
  STORE_ASSERT_OK(idem);
  EXPECT_FALSE(idem->has_value());
  EXPECT_THAT(this->SessionPages("p", {}, 10), ElementsAre(ElementsAre("live")));
  std::vector<std::string> seen;
  STORE_ASSERT_OK(s.ForEachSessionWithStatus(
      v1::SESSION_STATUS_IDLE, [&](const std::string&, const storage::SessionRecord& r) {
        seen.push_back(r.session().session_id());
        return absl::OkStatus();
      }));
  EXPECT_THAT(seen, ElementsAre("live"));

  // The id can be used again at once, and the new session starts empty.
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("s", "a")));
  EXPECT_THAT(this->AllEvents("p", "s"), IsEmpty());
  EXPECT_THAT(this->StateKeys("p", "s"), IsEmpty());
  EXPECT_FALSE(s.GetIdempotency("p", "s", "idem")->has_value());
  EXPECT_EQ(s.GetSession("p", "s")->revision(), 1);
}

TYPED_TEST_P(StoreStateContractTest, DeleteExpiredSessionsRemovesDueSessions) {
  auto& s = this->store();
  STORE_EXPECT_CODE(s.DeleteExpiredSessions(absl::Now(), 0), kInvalidArgument);
  for (int i = 0; i < 5; ++i) {
    const std::string id = absl::StrCat("old", i);
    STORE_ASSERT_OK(s.CreateSession("p", this->Expiring(id, absl::Hours(1) + absl::Seconds(i))));
    STORE_ASSERT_OK(this->Append("p", id, 2, "k"));
    STORE_ASSERT_OK(s.PutState("p", id, this->Mut("k", "1")));
  }
  // Sweeps at a later `now` (the contract lets the caller choose it).
  const absl::Time later = absl::Now() + absl::Hours(2);
  STORE_ASSERT_OK(s.CreateSession("q", this->Expiring("young", absl::Hours(3))));
  STORE_ASSERT_OK(s.CreateSession("q", this->MakeSession("forever", "a")));
  absl::StatusOr<int64_t> n = s.DeleteExpiredSessions(absl::Now(), 100);
  STORE_ASSERT_OK(n);
  EXPECT_EQ(*n, 0);
  n = s.DeleteExpiredSessions(later, 2);
  STORE_ASSERT_OK(n);
  EXPECT_EQ(*n, 2);
  n = s.DeleteExpiredSessions(later, 100);
  STORE_ASSERT_OK(n);
  EXPECT_EQ(*n, 3);
  n = s.DeleteExpiredSessions(later, 100);
  STORE_ASSERT_OK(n);
  EXPECT_EQ(*n, 0);
  // A later sweep removes what is due by then, and nothing that never expires.
  n = s.DeleteExpiredSessions(later + absl::Hours(2), 100);
  STORE_ASSERT_OK(n);
  EXPECT_EQ(*n, 1);
  EXPECT_THAT(this->SessionPages("q", {}, 10), ElementsAre(ElementsAre("forever")));
  // Removed means gone, also for a new session with an old id.
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("old0", "a")));
  EXPECT_THAT(this->AllEvents("p", "old0"), IsEmpty());
  EXPECT_THAT(this->StateKeys("p", "old0"), IsEmpty());
  EXPECT_FALSE(s.GetIdempotency("p", "old0", "k")->has_value());
}

TYPED_TEST_P(StoreStateContractTest, ExpiryWaitsForForksThatReadTheParent) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->Expiring("parent", absl::Hours(1))));
  STORE_ASSERT_OK(this->Append("p", "parent", 2));
  STORE_ASSERT_OK(s.ForkSession("p", this->Fork("child", "parent", 2)));  // never expires
  const absl::Time later = absl::Now() + absl::Hours(2);
  EXPECT_EQ(*s.DeleteExpiredSessions(later, 100), 0);  // the child still reads it
  EXPECT_THAT(this->Texts("p", "child"), ElementsAre("1:p/parent-1", "2:p/parent-2"));
  STORE_ASSERT_OK(s.DeleteSession("p", "child"));
  EXPECT_EQ(*s.DeleteExpiredSessions(later, 100), 1);

  // A parent and its fork that expire together go in one sweep, whichever of the two the
  // index lists first (ids of equal expire_time are ordered by length, then bytes).
  for (const auto& [parent, fork] : {std::pair<std::string, std::string>{"p1", "fork-of-p1"},
                                     std::pair<std::string, std::string>{"parent-2", "f2"}}) {
    storage::SessionRecord r = this->Expiring(parent, absl::Hours(1));
    STORE_ASSERT_OK(s.CreateSession("p", r));
    STORE_ASSERT_OK(this->Append("p", parent, 1));
    storage::SessionRecord f = this->Fork(fork, parent, 1);
    *f.mutable_session()->mutable_expire_time() = r.session().expire_time();
    STORE_ASSERT_OK(s.ForkSession("p", f));
  }
  EXPECT_EQ(*s.DeleteExpiredSessions(later, 100), 4);
  EXPECT_THAT(this->SessionPages("p", {}, 10), ElementsAre(IsEmpty()));
}

TYPED_TEST_P(StoreStateContractTest, DeletingAParentClearsItsExpiredForks) {
  auto& s = this->store();
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("parent", "a")));
  STORE_ASSERT_OK(this->Append("p", "parent", 1));
  storage::SessionRecord fork = this->Fork("fork", "parent", 1);
  *fork.mutable_session()->mutable_expire_time() = ToProto(absl::Now() + absl::Seconds(1));
  STORE_ASSERT_OK(s.ForkSession("p", fork));
  STORE_EXPECT_CODE(s.DeleteSession("p", "parent"), kFailedPrecondition);
  absl::SleepFor(FromProto(fork.session().expire_time()) - absl::Now() + absl::Milliseconds(20));
  STORE_ASSERT_OK(s.DeleteSession("p", "parent"));  // the expired fork no longer holds it
  STORE_ASSERT_OK(s.CreateSession("p", this->MakeSession("fork", "a")));
  EXPECT_THAT(this->AllEvents("p", "fork"), IsEmpty());
}

REGISTER_TYPED_TEST_SUITE_P(StoreStateContractTest, PutStateVersionsAndCompareAndSet,
                            BadStateKeysAndValuesAreInvalidArgument,
                            ConcurrentCompareAndSetLosesNoUpdate, StateCommitsWithTheSessionWrite,
                            DeleteSessionRemovesState, ForkReadsTheParentUpToForkSeqThenItsOwn,
                            ForkErrors, ForkLeavesTheParentsRevisionAndWritesAlone,
                            ParentWithForksCannotBeDeleted, ExpiredSessionIsNotFoundOnEveryPath,
                            DeleteExpiredSessionsRemovesDueSessions,
                            ExpiryWaitsForForksThatReadTheParent,
                            DeletingAParentClearsItsExpiredForks);

}  // namespace agentd::store
