// The ContextStore contract, part 3: long-term memory (PutMemory, GetMemory, ListMemories,
// SearchMemory, DeleteMemory). Run it wherever StoreContractTest runs, with the same harness
// (see store_contract_test.h):
//
//   INSTANTIATE_TYPED_TEST_SUITE_P(Postgres, StoreMemoryContractTest,
//                                  ::testing::Types<PostgresHarness>);
//
// ReopenKeepsRecordsAndIndex destroys the store and calls the harness's NewStore() a second
// time, expecting the same data back (RocksDbHarness reopens its data dir).
//
// Ranking is checked against a reference BM25 (k1 = 1.2, b = 0.75, idf = ln(1 + (N − df + 0.5)
// / (df + 0.5)), project-wide N, df and avgdl) over texts of lowercase words separated by
// spaces, which every tokenizer of docs/memory.md splits the same way.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "store/context_store.h"
#include "store_contract_test.h"

namespace agentd::store {

template <typename Harness>
class StoreMemoryContractTest : public StoreContractTest<Harness> {
 protected:
  using Name = std::pair<std::string, std::string>;  // (namespace, key)

  static google::protobuf::Timestamp Ts(int seconds) {
    google::protobuf::Timestamp ts;
    ts.set_seconds(1700000000 + seconds);
    return ts;
  }

  static v1::MemoryRecord Mem(const std::string& ns, const std::string& key,
                              const std::string& text, int time = 0) {
    v1::MemoryRecord r;
    r.set_namespace_(ns);
    r.set_key(key);
    r.set_text(text);
    (*r.mutable_metadata())["source"] = "test";
    *r.mutable_create_time() = Ts(time);
    *r.mutable_update_time() = Ts(time);
    return r;
  }

  absl::StatusOr<v1::MemoryRecord> Put(const std::string& project, const std::string& ns,
                                       const std::string& key, const std::string& text,
                                       int time = 0) {
    return this->store().PutMemory(project, Mem(ns, key, text, time));
  }

  /// "namespace|key" of each result, in order.
  std::vector<std::string> Search(const std::string& project, const std::string& prefix,
                                  const std::string& query, int32_t top_k = 10) {
    absl::StatusOr<std::vector<ScoredMemoryRecord>> r =
        this->store().SearchMemory(project, prefix, query, top_k);
    EXPECT_TRUE(r.ok()) << r.status();
    std::vector<std::string> out;
    if (!r.ok()) return out;
    for (const ScoredMemoryRecord& s : *r) {
      EXPECT_GT(s.score, 0);
      out.push_back(s.record.namespace_() + "|" + s.record.key());
    }
    return out;
  }

  /// Every page of ListMemories, as "namespace|key" lists.
  std::vector<std::vector<std::string>> Pages(const std::string& project, const std::string& prefix,
                                              int32_t size) {
    std::vector<std::vector<std::string>> pages;
    std::string token;
    do {
      absl::StatusOr<MemoryPage> page = this->store().ListMemories(project, prefix, size, token);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok() || pages.size() > 10000) break;
      pages.emplace_back();
      for (const v1::MemoryRecord& r : page->records) {
        pages.back().push_back(r.namespace_() + "|" + r.key());
      }
      token = page->next_page_token;
    } while (!token.empty());
    return pages;
  }

  std::vector<std::string> ListAll(const std::string& project, const std::string& prefix) {
    std::vector<std::string> all;
    for (const auto& page : Pages(project, prefix, 1000))
      all.insert(all.end(), page.begin(), page.end());
    return all;
  }

  void Reopen() {
    this->store_.reset();
    this->store_ = this->harness_.NewStore();
    ASSERT_NE(this->store_, nullptr);
  }

  struct Scored {
    std::string name;  // "namespace|key"
    double score;
  };

  /// Reference BM25 over `docs` (texts of space-separated lowercase words): the top_k docs
  /// under `prefix`, best first, ties by (namespace, key).
  static std::vector<Scored> ReferenceSearch(const std::map<Name, std::string>& docs,
                                             const std::string& prefix, const std::string& query,
                                             size_t top_k) {
    std::map<Name, std::map<std::string, int>> tf;
    std::map<Name, int> length;
    std::map<std::string, int> df;
    double total = 0;
    for (const auto& [name, text] : docs) {
      for (absl::string_view w : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
        ++tf[name][std::string(w)];
        ++length[name];
        ++total;
      }
      for (const auto& [w, n] : tf[name]) ++df[w];
    }
    std::set<std::string> terms;
    for (absl::string_view w : absl::StrSplit(query, ' ', absl::SkipEmpty())) terms.emplace(w);
    const double n = static_cast<double>(docs.size());
    const double avgdl = total / n;
    std::vector<std::pair<Name, double>> scored;
    for (const auto& [name, text] : docs) {
      if (name.first.compare(0, prefix.size(), prefix) != 0) continue;
      double score = 0;
      for (const std::string& t : terms) {
        auto it = tf[name].find(t);
        if (it == tf[name].end()) continue;
        const double d = df[t];
        const double idf = std::log(1 + (n - d + 0.5) / (d + 0.5));
        const double f = it->second;
        score += idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * length[name] / avgdl));
      }
      if (score > 0) scored.emplace_back(name, score);
    }
    std::sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    std::vector<Scored> out;
    for (size_t i = 0; i < scored.size() && i < top_k; ++i) {
      out.push_back({scored[i].first.first + "|" + scored[i].first.second, scored[i].second});
    }
    return out;
  }

  /// Checks SearchMemory against ReferenceSearch: the same scores in the same order, each
  /// returned record carrying its reference score (near-ties may swap), ties by name.
  void ExpectMatchesReference(const std::string& project, const std::map<Name, std::string>& docs,
                              const std::string& prefix, const std::string& query, int32_t k) {
    SCOPED_TRACE(absl::StrCat("prefix \"", prefix, "\" query \"", query, "\" top_k ", k));
    absl::StatusOr<std::vector<ScoredMemoryRecord>> got =
        this->store().SearchMemory(project, prefix, query, k);
    ASSERT_TRUE(got.ok()) << got.status();
    const std::vector<Scored> want = ReferenceSearch(docs, prefix, query, static_cast<size_t>(k));
    const std::vector<Scored> all = ReferenceSearch(docs, prefix, query, docs.size());
    ASSERT_EQ(got->size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      const ScoredMemoryRecord& r = (*got)[i];
      const std::string name = r.record.namespace_() + "|" + r.record.key();
      EXPECT_NEAR(r.score, want[i].score, 1e-9 * want[i].score) << "rank " << i;
      auto ref =
          std::find_if(all.begin(), all.end(), [&](const Scored& s) { return s.name == name; });
      ASSERT_NE(ref, all.end()) << name << " should not match";
      EXPECT_NEAR(r.score, ref->score, 1e-9 * ref->score) << name;
      EXPECT_EQ(r.record.text(), docs.at({r.record.namespace_(), r.record.key()})) << name;
      if (i > 0) {
        const ScoredMemoryRecord& prev = (*got)[i - 1];
        EXPECT_TRUE(
            prev.score > r.score ||
            (prev.score == r.score && std::make_pair(prev.record.namespace_(), prev.record.key()) <
                                          std::make_pair(r.record.namespace_(), r.record.key())))
            << "rank " << i << " out of order";
      }
    }
  }
};

TYPED_TEST_SUITE_P(StoreMemoryContractTest);

TYPED_TEST_P(StoreMemoryContractTest, PutGetAndReplaceKeepsCreateTime) {
  absl::StatusOr<v1::MemoryRecord> first = this->Put("p", "users/alice", "color", "likes blue", 1);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->text(), "likes blue");
  EXPECT_EQ(first->create_time().seconds(), this->Ts(1).seconds());
  absl::StatusOr<v1::MemoryRecord> got = this->store().GetMemory("p", "users/alice", "color");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(store_contract::ProtoEq(*got, *first));
  EXPECT_EQ(got->metadata().at("source"), "test");

  absl::StatusOr<v1::MemoryRecord> second = this->Put("p", "users/alice", "color", "likes red", 5);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->create_time().seconds(), this->Ts(1).seconds());
  EXPECT_EQ(second->update_time().seconds(), this->Ts(5).seconds());
  got = this->store().GetMemory("p", "users/alice", "color");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(store_contract::ProtoEq(*got, *second));
  EXPECT_EQ(got->text(), "likes red");

  // A new record without create_time gets its update_time.
  v1::MemoryRecord bare = this->Mem("users/alice", "food", "pizza", 7);
  bare.clear_create_time();
  absl::StatusOr<v1::MemoryRecord> stored = this->store().PutMemory("p", bare);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->create_time().seconds(), this->Ts(7).seconds());
}

TYPED_TEST_P(StoreMemoryContractTest, MissingRecordsAreNotFound) {
  STORE_EXPECT_CODE(this->store().GetMemory("p", "users/alice", "nope"), kNotFound);
  STORE_EXPECT_CODE(this->store().DeleteMemory("p", "users/alice", "nope"), kNotFound);
  STORE_ASSERT_OK(this->Put("p", "users/alice", "k", "hello"));
  STORE_ASSERT_OK(this->store().DeleteMemory("p", "users/alice", "k"));
  STORE_EXPECT_CODE(this->store().GetMemory("p", "users/alice", "k"), kNotFound);
  STORE_EXPECT_CODE(this->store().DeleteMemory("p", "users/alice", "k"), kNotFound);
  EXPECT_TRUE(this->ListAll("p", "").empty());
}

TYPED_TEST_P(StoreMemoryContractTest, ListByNamespacePrefixPagesInOrder) {
  for (const auto& [ns, key] :
       std::vector<std::pair<std::string, std::string>>{{"users/b", "k1"},
                                                        {"users/a", "k2"},
                                                        {"users/ab", "k1"},
                                                        {"users/a/x", "k1"},
                                                        {"users/a", "k1"},
                                                        {"users", "k1"},
                                                        {"teams/a", "k1"},
                                                        {"users/a", "k3"}}) {
    STORE_ASSERT_OK(this->Put("p", ns, key, "text of " + ns + " " + key));
  }
  // (namespace, key) order; "users/a" is a string prefix: it covers "users/a/x" and "users/ab".
  const std::vector<std::string> under_a = {"users/a|k1", "users/a|k2", "users/a|k3",
                                            "users/a/x|k1", "users/ab|k1"};
  EXPECT_EQ(this->Pages("p", "users/a", 2),
            (std::vector<std::vector<std::string>>{
                {"users/a|k1", "users/a|k2"}, {"users/a|k3", "users/a/x|k1"}, {"users/ab|k1"}}));
  EXPECT_EQ(this->ListAll("p", "users/a"), under_a);
  EXPECT_EQ(this->ListAll("p", "users/a/"), (std::vector<std::string>{"users/a/x|k1"}));
  EXPECT_EQ(this->ListAll("p", "users/ab"), (std::vector<std::string>{"users/ab|k1"}));
  EXPECT_EQ(this->ListAll("p", "nobody"), std::vector<std::string>{});
  const std::vector<std::string> all = this->ListAll("p", "");
  EXPECT_EQ(all.size(), 8u);
  EXPECT_EQ(all.front(), "teams/a|k1");
  EXPECT_EQ(all[1], "users|k1");
  // A page that ends exactly at the last record has no token.
  EXPECT_EQ(this->Pages("p", "users/a", 5).size(), 1u);
  // Records are complete in lists.
  absl::StatusOr<MemoryPage> page = this->store().ListMemories("p", "users/ab", 10, "");
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->records.size(), 1u);
  EXPECT_EQ(page->records[0].text(), "text of users/ab k1");
  EXPECT_TRUE(page->next_page_token.empty());
}

TYPED_TEST_P(StoreMemoryContractTest, SearchNamespacePrefixIsAStringPrefix) {
  STORE_ASSERT_OK(this->Put("p", "users/a", "k", "espresso"));
  STORE_ASSERT_OK(this->Put("p", "users/ab", "k", "espresso"));
  STORE_ASSERT_OK(this->Put("p", "users/a/x", "k", "espresso"));
  STORE_ASSERT_OK(this->Put("p", "users/b", "k", "espresso"));
  EXPECT_EQ(this->Search("p", "users/a", "espresso"),
            (std::vector<std::string>{"users/a|k", "users/a/x|k", "users/ab|k"}));
  EXPECT_EQ(this->Search("p", "users/a/", "espresso"), (std::vector<std::string>{"users/a/x|k"}));
  EXPECT_EQ(this->Search("p", "", "espresso").size(), 4u);
  EXPECT_TRUE(this->Search("p", "users/c", "espresso").empty());
}

TYPED_TEST_P(StoreMemoryContractTest, MemoryOfProjectsIsIsolated) {
  STORE_ASSERT_OK(this->Put("p", "n", "k", "secret of p"));
  STORE_ASSERT_OK(this->Put("p", "n", "only-p", "common words here"));
  STORE_ASSERT_OK(this->Put("pp", "n", "k", "common other"));
  EXPECT_EQ(this->store().GetMemory("p", "n", "k")->text(), "secret of p");
  EXPECT_EQ(this->store().GetMemory("pp", "n", "k")->text(), "common other");
  STORE_EXPECT_CODE(this->store().GetMemory("pp", "n", "only-p"), kNotFound);
  EXPECT_EQ(this->ListAll("pp", ""), (std::vector<std::string>{"n|k"}));
  EXPECT_TRUE(this->Search("pp", "", "secret").empty());
  EXPECT_EQ(this->Search("p", "", "secret"), (std::vector<std::string>{"n|k"}));
  // Statistics are per project: pp's one record sees N = 1, whatever p holds.
  this->ExpectMatchesReference("pp", {{{"n", "k"}, "common other"}}, "", "common", 10);
  STORE_ASSERT_OK(this->store().DeleteMemory("p", "n", "k"));
  EXPECT_EQ(this->store().GetMemory("pp", "n", "k")->text(), "common other");
  EXPECT_EQ(this->Search("pp", "", "common"), (std::vector<std::string>{"n|k"}));
}

TYPED_TEST_P(StoreMemoryContractTest, RankingFollowsBm25) {
  for (int i = 0; i < 10; ++i) {
    STORE_ASSERT_OK(this->Put("p", "filler", absl::StrCat("f", i), "common words everywhere"));
  }
  STORE_ASSERT_OK(this->Put("p", "n", "rare", "common zebra"));
  STORE_ASSERT_OK(this->Put("p", "n", "common", "common common"));
  // The rare term outweighs a repeated common one.
  std::vector<std::string> r = this->Search("p", "", "common zebra", 3);
  ASSERT_FALSE(r.empty());
  EXPECT_EQ(r[0], "n|rare");
  // tf: two occurrences beat one in records of equal length.
  STORE_ASSERT_OK(this->Put("p", "tf", "two", "apple apple pear"));
  STORE_ASSERT_OK(this->Put("p", "tf", "one", "apple pear pear"));
  EXPECT_EQ(this->Search("p", "tf", "apple"), (std::vector<std::string>{"tf|two", "tf|one"}));
  // Length normalization: the same tf in a shorter record scores higher.
  STORE_ASSERT_OK(this->Put("p", "len", "long", "kiwi plum fig grape lime lemon melon date"));
  STORE_ASSERT_OK(this->Put("p", "len", "short", "kiwi plum"));
  EXPECT_EQ(this->Search("p", "len", "kiwi"), (std::vector<std::string>{"len|short", "len|long"}));
  // Equal scores come in (namespace, key) order; top_k cuts the list.
  STORE_ASSERT_OK(this->Put("p", "tie/b", "k1", "walnut"));
  STORE_ASSERT_OK(this->Put("p", "tie/a", "k2", "walnut"));
  STORE_ASSERT_OK(this->Put("p", "tie/a", "k1", "walnut"));
  EXPECT_EQ(this->Search("p", "tie", "walnut"),
            (std::vector<std::string>{"tie/a|k1", "tie/a|k2", "tie/b|k1"}));
  EXPECT_EQ(this->Search("p", "tie", "walnut", 2),
            (std::vector<std::string>{"tie/a|k1", "tie/a|k2"}));
  // Only matching records (score > 0); unknown terms and empty queries find nothing.
  EXPECT_TRUE(this->Search("p", "", "unheard").empty());
  EXPECT_TRUE(this->Search("p", "", "").empty());
  EXPECT_TRUE(this->Search("p", "", " ,;! ").empty());
}

TYPED_TEST_P(StoreMemoryContractTest, TokenizerRules) {
  STORE_ASSERT_OK(this->Put("p", "n", "k1", "Hello, WORLD! It's the café-au-lait hour."));
  const std::string long_word(65, 'x');
  const std::string max_word(64, 'y');
  STORE_ASSERT_OK(this->Put("p", "n", "k2", long_word + " " + max_word + " x2y"));
  EXPECT_EQ(this->Search("p", "", "hello"), (std::vector<std::string>{"n|k1"}));
  EXPECT_EQ(this->Search("p", "", "WoRlD?"), (std::vector<std::string>{"n|k1"}));
  EXPECT_EQ(this->Search("p", "", "café"), (std::vector<std::string>{"n|k1"}));
  EXPECT_EQ(this->Search("p", "", "lait"), (std::vector<std::string>{"n|k1"}));
  EXPECT_EQ(this->Search("p", "", "s"), (std::vector<std::string>{"n|k1"}));
  EXPECT_TRUE(this->Search("p", "", "the").empty());   // stopword
  EXPECT_TRUE(this->Search("p", "", "CAFÉ").empty());  // only ASCII letters are lowercased
  EXPECT_TRUE(this->Search("p", "", long_word).empty());
  EXPECT_EQ(this->Search("p", "", max_word), (std::vector<std::string>{"n|k2"}));
  EXPECT_EQ(this->Search("p", "", "X2Y"), (std::vector<std::string>{"n|k2"}));
}

TYPED_TEST_P(StoreMemoryContractTest, SearchNeverReturnsStaleText) {
  STORE_ASSERT_OK(this->Put("p", "n", "k", "alpha beta"));
  absl::StatusOr<std::vector<ScoredMemoryRecord>> r =
      this->store().SearchMemory("p", "", "alpha", 10);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].record.text(), "alpha beta");

  STORE_ASSERT_OK(this->Put("p", "n", "k", "gamma beta"));
  EXPECT_TRUE(this->Search("p", "", "alpha").empty());
  r = this->store().SearchMemory("p", "", "gamma beta", 10);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 1u);
  EXPECT_EQ((*r)[0].record.text(), "gamma beta");
  this->ExpectMatchesReference("p", {{{"n", "k"}, "gamma beta"}}, "", "gamma beta", 10);

  STORE_ASSERT_OK(this->store().DeleteMemory("p", "n", "k"));
  EXPECT_TRUE(this->Search("p", "", "gamma").empty());
  EXPECT_TRUE(this->Search("p", "", "beta").empty());
  // The project's statistics start over from nothing.
  STORE_ASSERT_OK(this->Put("p", "n", "k2", "delta"));
  this->ExpectMatchesReference("p", {{{"n", "k2"}, "delta"}}, "", "delta", 10);
}

TYPED_TEST_P(StoreMemoryContractTest, SearchMatchesReferenceBm25UnderChurn) {
  std::mt19937 rng(7);
  // Word i is drawn with weight 1/(i+1): a few words are in most records, most are rare.
  std::vector<double> weights;
  for (int i = 0; i < 40; ++i) weights.push_back(1.0 / (i + 1));
  std::discrete_distribution<int> word(weights.begin(), weights.end());
  auto text = [&](int max_len) {
    std::string t;
    const int len = std::uniform_int_distribution<int>(1, max_len)(rng);
    for (int i = 0; i < len; ++i) absl::StrAppend(&t, i ? " " : "", "w", word(rng));
    return t;
  };
  const std::vector<std::string> spaces = {"a", "a/b", "ab", "b", "b/c/d"};
  std::map<typename TestFixture::Name, std::string> docs;
  for (int op = 0; op < 400; ++op) {
    const std::string ns = spaces[rng() % spaces.size()];
    const std::string key = absl::StrCat("k", rng() % 60);
    if (rng() % 5 == 0) {
      const absl::Status st = this->store().DeleteMemory("p", ns, key);
      EXPECT_EQ(st.code(),
                docs.erase({ns, key}) ? absl::StatusCode::kOk : absl::StatusCode::kNotFound);
      continue;
    }
    docs[{ns, key}] = text(25);
    STORE_ASSERT_OK(this->Put("p", ns, key, docs[{ns, key}]));
  }
  ASSERT_FALSE(docs.empty());
  const std::vector<std::string> prefixes = {"", "a", "a/", "ab", "b", "b/c/d", "c"};
  for (int q = 0; q < 60; ++q) {
    const std::string query = text(4);
    const std::string prefix = prefixes[rng() % prefixes.size()];
    const int32_t k = std::vector<int32_t>{1, 3, 10, 100}[rng() % 4];
    this->ExpectMatchesReference("p", docs, prefix, query, k);
  }
}

TYPED_TEST_P(StoreMemoryContractTest, ConcurrentWritersKeepTheIndexExact) {
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      std::mt19937 rng(100 + t);
      for (int op = 0; op < 60; ++op) {
        const std::string key = absl::StrCat("k", rng() % 12);
        if (rng() % 4 == 0) {
          const absl::Status st = this->store().DeleteMemory("p", "n", key);
          EXPECT_TRUE(st.ok() || absl::IsNotFound(st)) << st;
        } else {
          const std::string text = absl::StrCat("w", rng() % 5, " w", rng() % 9, " t", t);
          EXPECT_TRUE(this->Put("p", "n", key, text).ok());
        }
      }
    });
  }
  for (std::thread& th : threads) th.join();
  // Whatever interleaving happened, the index must describe exactly the records that exist.
  std::map<typename TestFixture::Name, std::string> docs;
  absl::StatusOr<MemoryPage> page = this->store().ListMemories("p", "", 1000, "");
  ASSERT_TRUE(page.ok()) << page.status();
  for (const v1::MemoryRecord& r : page->records) docs[{r.namespace_(), r.key()}] = r.text();
  if (docs.empty()) return;
  for (const char* q : {"w0", "w1 w2", "t0 t3", "w4 w8 t1", "w3 w5 w7 t2"}) {
    this->ExpectMatchesReference("p", docs, "", q, 100);
  }
}

TYPED_TEST_P(StoreMemoryContractTest, ReopenKeepsRecordsAndIndex) {
  std::map<typename TestFixture::Name, std::string> docs = {
      {{"users/a", "k1"}, "tea lemon slice"},
      {{"users/a", "k2"}, "coffee black no sugar"},
      {{"users/b", "k1"}, "tea green jasmine tea"}};
  for (const auto& [name, text] : docs)
    STORE_ASSERT_OK(this->Put("p", name.first, name.second, text));
  STORE_ASSERT_OK(this->Put("p", "users/b", "k2", "to be deleted tea"));
  STORE_ASSERT_OK(this->store().DeleteMemory("p", "users/b", "k2"));
  this->Reopen();
  EXPECT_EQ(this->store().GetMemory("p", "users/a", "k2")->text(), "coffee black no sugar");
  STORE_EXPECT_CODE(this->store().GetMemory("p", "users/b", "k2"), kNotFound);
  this->ExpectMatchesReference("p", docs, "", "tea", 10);
  this->ExpectMatchesReference("p", docs, "users/a", "tea coffee", 10);
  STORE_ASSERT_OK(this->Put("p", "users/a", "k1", "lemon water"));
  docs[{"users/a", "k1"}] = "lemon water";
  this->ExpectMatchesReference("p", docs, "", "tea lemon", 10);
}

TYPED_TEST_P(StoreMemoryContractTest, BadInputIsInvalidArgumentAndWritesNothing) {
  STORE_EXPECT_CODE(this->Put("", "n", "k", "t"), kInvalidArgument);
  STORE_EXPECT_CODE(this->Put("p", "", "k", "t"), kInvalidArgument);
  STORE_EXPECT_CODE(this->Put("p", std::string("a\0b", 3), "k", "t"), kInvalidArgument);
  STORE_EXPECT_CODE(this->Put("p", std::string(257, 'n'), "k", "t"), kInvalidArgument);
  STORE_EXPECT_CODE(this->Put("p", "n", "", "t"), kInvalidArgument);
  STORE_EXPECT_CODE(this->Put("p", "n", std::string(129, 'k'), "t"), kInvalidArgument);
  STORE_ASSERT_OK(this->Put("p", std::string(256, 'n'), std::string(128, 'k'), "longest names"));
  STORE_EXPECT_CODE(this->store().GetMemory("p", "", "k"), kInvalidArgument);
  STORE_EXPECT_CODE(this->store().DeleteMemory("p", "n", ""), kInvalidArgument);
  STORE_EXPECT_CODE(this->store().SearchMemory("p", "", "q", 0), kInvalidArgument);
  STORE_EXPECT_CODE(this->store().SearchMemory("p", std::string(257, 'n'), "q", 5),
                    kInvalidArgument);
  std::string many;
  for (int i = 0; i < 65; ++i) absl::StrAppend(&many, "term", i, " ");
  STORE_EXPECT_CODE(this->store().SearchMemory("p", "", many, 5), kInvalidArgument);
  STORE_EXPECT_CODE(this->store().ListMemories("p", "", 10, "zz"), kInvalidArgument);
  STORE_EXPECT_CODE(this->store().ListMemories("p", "", 10, "6e"), kInvalidArgument);
  EXPECT_EQ(this->ListAll("p", ""),
            (std::vector<std::string>{std::string(256, 'n') + "|" + std::string(128, 'k')}));
}

REGISTER_TYPED_TEST_SUITE_P(StoreMemoryContractTest, PutGetAndReplaceKeepsCreateTime,
                            MissingRecordsAreNotFound, ListByNamespacePrefixPagesInOrder,
                            SearchNamespacePrefixIsAStringPrefix, MemoryOfProjectsIsIsolated,
                            RankingFollowsBm25, TokenizerRules, SearchNeverReturnsStaleText,
                            SearchMatchesReferenceBm25UnderChurn,
                            ConcurrentWritersKeepTheIndexExact, ReopenKeepsRecordsAndIndex,
                            BadInputIsInvalidArgumentAndWritesNothing);

}  // namespace agentd::store
