// Unit tests of the memory search index (store/memory_index.h): tokenizer, value encodings,
// BM25 pieces and RankTopK against a brute-force ranking over in-memory posting lists; the
// memory key layout of store/schema.h; and DATA_LOSS (never a crash) for a corrupt index in a
// real RocksDB store.
#include "store/memory_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "rocksdb/db.h"
#include "store/rocksdb_store.h"
#include "store/schema.h"
#include "testing/temp_dir.h"

namespace agentd::store {
namespace {

using memory::AnalyzedText;

TEST(MemoryTokenizerTest, SplitsLowercasesAndDrops) {
  EXPECT_EQ(memory::Tokenize("Hello, WORLD!  foo_bar x-1 42"),
            (std::vector<std::string>{"hello", "world", "foo", "bar", "x", "1", "42"}));
  // Bytes >= 0x80 are word bytes: UTF-8 words stay whole, and are not case-folded.
  EXPECT_EQ(memory::Tokenize("Café déjà-vu ÉTÉ"),
            (std::vector<std::string>{"café", "déjà", "vu", "ÉtÉ"}));
  EXPECT_EQ(memory::Tokenize("the cat and THE hat is on it"),
            (std::vector<std::string>{"cat", "hat"}));
  EXPECT_EQ(memory::Tokenize(std::string(64, 'a') + " " + std::string(65, 'b') + " c"),
            (std::vector<std::string>{std::string(64, 'a'), "c"}));
  EXPECT_TRUE(memory::Tokenize("").empty());
  EXPECT_TRUE(memory::Tokenize(" .,;!? \n\t").empty());
  EXPECT_TRUE(memory::IsStopword("the"));
  EXPECT_FALSE(memory::IsStopword("not"));
  EXPECT_FALSE(memory::IsStopword("zebra"));
}

TEST(MemoryTokenizerTest, AnalyzeCountsTermsAndLength) {
  const AnalyzedText a = memory::Analyze("b x b, the c b");
  EXPECT_EQ(a.length, 5u);  // "the" is not counted
  EXPECT_EQ(a.terms, (std::vector<std::pair<std::string, uint32_t>>{{"b", 3}, {"c", 1}, {"x", 1}}));
  EXPECT_EQ(memory::QueryTerms("b X b x c"), (std::vector<std::string>{"b", "c", "x"}));
}

TEST(MemoryCodecTest, RoundTripsAndRejectsMalformedValues) {
  memory::Posting p;
  ASSERT_TRUE(memory::DecodePosting(memory::EncodePosting({300, 70000}), &p));
  EXPECT_EQ(p.tf, 300u);
  EXPECT_EQ(p.doc_length, 70000u);
  EXPECT_FALSE(memory::DecodePosting("", &p));
  EXPECT_FALSE(memory::DecodePosting("\x01", &p));
  EXPECT_FALSE(memory::DecodePosting("\x01\x02\x03", &p));
  EXPECT_FALSE(memory::DecodePosting("\x80\x80\x80\x80\x80\x01\x01", &p));  // > 32 bits

  memory::IndexStats s;
  ASSERT_TRUE(memory::DecodeStats(memory::EncodeStats({1ULL << 40, 12345}), &s));
  EXPECT_EQ(s.records, 1ULL << 40);
  EXPECT_EQ(s.total_length, 12345u);
  EXPECT_FALSE(memory::DecodeStats(std::string(11, '\xff'), &s));

  memory::TermStats t;
  ASSERT_TRUE(memory::DecodeTermStats(memory::EncodeTermStats({7, 3, 20}), &t));
  EXPECT_EQ(t.df, 7u);
  EXPECT_EQ(t.max_tf, 3u);
  EXPECT_EQ(t.min_length, 20u);
  EXPECT_FALSE(memory::DecodeTermStats(memory::EncodeStats({1, 2}), &t));

  const AnalyzedText text = memory::Analyze("zeta alpha zeta beta");
  const std::string entry = memory::EncodeDocEntry(text);
  memory::DocEntry d;
  ASSERT_TRUE(memory::DecodeDocEntry(entry, &d));
  EXPECT_EQ(d.length, 4u);
  EXPECT_EQ(d.terms, text.terms);
  uint32_t length = 0, tf = 0;
  ASSERT_TRUE(memory::DocEntryLookup(entry, "zeta", &length, &tf));
  EXPECT_EQ(length, 4u);
  EXPECT_EQ(tf, 2u);
  ASSERT_TRUE(memory::DocEntryLookup(entry, "gamma", &length, &tf));
  EXPECT_EQ(tf, 0u);
  EXPECT_FALSE(memory::DecodeDocEntry(entry.substr(0, entry.size() - 1), &d));
  EXPECT_FALSE(memory::DecodeDocEntry(std::string("\x01\x01"
                                                  "a"
                                                  "\x00",
                                                  4),
                                      &d));  // tf 0
}

TEST(MemoryRankingTest, Bm25Pieces) {
  EXPECT_NEAR(memory::Idf(100, 10), std::log(1 + 90.5 / 10.5), 1e-12);
  EXPECT_GT(memory::Idf(100, 100), 0);  // never zero or negative
  EXPECT_NEAR(memory::TermWeight(2, 10, 10), 2 * 2.2 / (2 + 1.2), 1e-12);
  EXPECT_GT(memory::TermWeight(1, 5, 10), memory::TermWeight(1, 20, 10));
  EXPECT_GT(memory::TermWeight(3, 10, 10), memory::TermWeight(2, 10, 10));
  const memory::TermStats stats{5, 4, 6};
  const double bound = memory::ScoreBound(2.0, stats, 10);
  for (uint32_t tf = 1; tf <= 4; ++tf) {
    for (uint32_t len = 6; len < 100; ++len) {
      EXPECT_LT(2.0 * memory::TermWeight(tf, len, 10), bound);
    }
  }
}

// ---- RankTopK against brute force -----------------------------------------------------------

class VectorCursor final : public memory::PostingCursor {
 public:
  explicit VectorCursor(std::vector<std::pair<std::string, std::string>> postings)
      : postings_(std::move(postings)) {}
  bool Valid() const override { return pos_ < postings_.size(); }
  absl::string_view doc_id() const override { return postings_[pos_].first; }
  absl::string_view value() const override { return postings_[pos_].second; }
  void Next() override { ++pos_; }
  void Seek(absl::string_view doc_id) override {
    while (Valid() && postings_[pos_].first < doc_id) ++pos_;
  }
  absl::Status status() const override { return absl::OkStatus(); }

 private:
  std::vector<std::pair<std::string, std::string>> postings_;  // by doc id
  size_t pos_ = 0;
};

class MapDocs final : public memory::DocLookup {
 public:
  std::map<std::string, std::string> entries;
  absl::StatusOr<absl::string_view> Entry(absl::string_view doc_id) override {
    auto it = entries.find(std::string(doc_id));
    if (it == entries.end()) return absl::DataLossError("missing doc entry");
    return absl::string_view(it->second);
  }
};

TEST(MemoryRankingTest, RankTopKMatchesBruteForce) {
  std::mt19937 rng(1);
  for (int trial = 0; trial < 400; ++trial) {
    // A corpus of 1..300 docs over a skewed vocabulary of 30 words, some with equal texts.
    std::vector<double> weights;
    for (int i = 0; i < 30; ++i) weights.push_back(1.0 / (i + 1));
    std::discrete_distribution<int> word(weights.begin(), weights.end());
    const int n_docs = 1 + static_cast<int>(rng() % 300);
    std::map<std::string, AnalyzedText> docs;
    for (int d = 0; d < n_docs; ++d) {
      std::string text;
      if (d > 0 && rng() % 10 == 0) {
        text = "w1 w2";  // duplicates make exact ties
      } else {
        const int len = 1 + static_cast<int>(rng() % 20);
        for (int i = 0; i < len; ++i) absl::StrAppend(&text, "w", word(rng), " ");
      }
      docs[absl::StrCat("ns", rng() % 3, std::string(1, '\0'), "d", d)] = memory::Analyze(text);
    }
    double total = 0;
    std::map<std::string, std::vector<std::pair<std::string, std::string>>> postings;
    std::map<std::string, memory::TermStats> term_stats;
    MapDocs lookup;
    for (const auto& [id, a] : docs) {
      total += a.length;
      lookup.entries[id] = memory::EncodeDocEntry(a);
      for (const auto& [t, tf] : a.terms) {
        postings[t].emplace_back(id, memory::EncodePosting({tf, a.length}));
        memory::TermStats& s = term_stats[t];
        ++s.df;
        s.max_tf = std::max(s.max_tf, tf);
        s.min_length = std::min(s.min_length, a.length);
      }
    }
    const double avg = total / static_cast<double>(docs.size());
    std::vector<std::string> query;
    const int q_len = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < q_len; ++i) query.push_back(absl::StrCat("w", word(rng)));
    std::sort(query.begin(), query.end());
    query.erase(std::unique(query.begin(), query.end()), query.end());
    const size_t k = std::vector<size_t>{1, 2, 5, 10, 50}[rng() % 5];

    std::vector<std::unique_ptr<VectorCursor>> cursors;
    std::vector<memory::RankTerm> terms;
    std::map<std::string, double> want;
    for (const std::string& t : query) {
      if (postings.count(t) == 0) continue;
      const double idf = memory::Idf(docs.size(), term_stats[t].df);
      cursors.push_back(std::make_unique<VectorCursor>(postings[t]));
      terms.push_back({t, idf, memory::ScoreBound(idf, term_stats[t], avg), cursors.back().get()});
      for (const auto& [id, a] : docs) {
        for (const auto& [term, tf] : a.terms) {
          if (term == t) want[id] += idf * memory::TermWeight(tf, a.length, avg);
        }
      }
    }
    std::vector<std::pair<std::string, double>> expected(want.begin(), want.end());
    std::sort(expected.begin(), expected.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    if (expected.size() > k) expected.resize(k);

    absl::StatusOr<std::vector<memory::RankedDoc>> got =
        memory::RankTopK(std::move(terms), avg, k, &lookup);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(got->size(), expected.size()) << "trial " << trial;
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_NEAR((*got)[i].score, expected[i].second, 1e-9) << "trial " << trial << " rank " << i;
      EXPECT_NEAR(want[(*got)[i].doc_id], (*got)[i].score, 1e-9) << "trial " << trial;
      if (i > 0) {
        const memory::RankedDoc& prev = (*got)[i - 1];
        EXPECT_TRUE(prev.score > (*got)[i].score ||
                    (prev.score == (*got)[i].score && prev.doc_id < (*got)[i].doc_id))
            << "trial " << trial << " rank " << i;
      }
    }
  }
}

TEST(MemoryRankingTest, CorruptPostingIsDataLoss) {
  // k = 1: "a" is the seed (scored from its doc entry); "b" is reached by the walk.
  VectorCursor walk({{"a", memory::EncodePosting({1, 1})}, {"b", "\xff"}});
  MapDocs lookup;
  lookup.entries["a"] = lookup.entries["b"] = memory::EncodeDocEntry(memory::Analyze("x"));
  std::vector<memory::RankTerm> terms = {{"x", 1.0, 3.0, &walk}};
  EXPECT_EQ(memory::RankTopK(terms, 1.0, 1, &lookup).status().code(), absl::StatusCode::kDataLoss);
  // A doc entry that is missing is DATA_LOSS too.
  VectorCursor seed({{"c", memory::EncodePosting({1, 1})}});
  terms = {{"x", 1.0, 3.0, &seed}};
  EXPECT_EQ(memory::RankTopK(terms, 1.0, 1, &lookup).status().code(), absl::StatusCode::kDataLoss);
}

// ---- Key layout --------------------------------------------------------------------------------

TEST(MemorySchemaTest, DocIdsSortByNamespaceThenKeyAndPrefixesAreStringPrefixes) {
  const std::string a = schema::MemoryRecordKey("p", schema::MemoryDocId("users/a", "z"));
  const std::string a_x = schema::MemoryRecordKey("p", schema::MemoryDocId("users/a/x", "a"));
  const std::string ab = schema::MemoryRecordKey("p", schema::MemoryDocId("users/ab", "a"));
  const std::string b = schema::MemoryRecordKey("p", schema::MemoryDocId("users/b", "a"));
  EXPECT_LT(a, a_x);
  EXPECT_LT(a_x, ab);
  EXPECT_LT(ab, b);
  const std::string prefix = schema::MemoryRecordPrefix("p", "users/a");
  for (const std::string& k : {a, a_x, ab}) EXPECT_EQ(k.compare(0, prefix.size(), prefix), 0);
  EXPECT_NE(b.compare(0, prefix.size(), prefix), 0);
  // Projects: "p" never covers "pp".
  const std::string pp = schema::MemoryRecordKey("pp", schema::MemoryDocId("users/a", "z"));
  const std::string p_all = schema::MemoryRecordPrefix("p", "");
  EXPECT_NE(pp.compare(0, p_all.size(), p_all), 0);
  // Index keys of one project stay inside lp(project).
  for (const std::string& k : {schema::MemoryStatsKey("p"), schema::MemoryTermKey("p", "t"),
                               schema::MemoryPostingKey("p", "t", schema::MemoryDocId("n", "k")),
                               schema::MemoryDocKey("p", schema::MemoryDocId("n", "k"))}) {
    EXPECT_EQ(k.compare(0, p_all.size(), p_all), 0);
  }
  const std::string doc_id = schema::MemoryDocId("users/a", "k");  // parts view into it
  auto parts = schema::DecodeMemoryDocId(doc_id);
  ASSERT_TRUE(parts.has_value());
  EXPECT_EQ(parts->name_space, "users/a");
  EXPECT_EQ(parts->key, "k");
  EXPECT_FALSE(schema::DecodeMemoryDocId("no-separator").has_value());
  EXPECT_FALSE(schema::DecodeMemoryDocId(std::string("\0k", 2)).has_value());
  EXPECT_FALSE(schema::DecodeMemoryDocId(std::string("ns\0", 3)).has_value());
}

// ---- A corrupt index in a real store ------------------------------------------------------------

TEST(MemoryStoreCorruptionTest, CorruptIndexValuesAreDataLoss) {
  testing::TempDir dir;
  const std::string path = dir.Sub("data");
  {
    auto store = RocksDbStore::Open({path, Durability::kRelaxed});
    ASSERT_TRUE(store.ok()) << store.status();
    v1::MemoryRecord r;
    r.set_namespace_("n");
    r.set_key("k");
    r.set_text("zebra stripes");
    ASSERT_TRUE((*store)->PutMemory("p", r).ok());
  }
  // Overwrite the zebra posting with garbage through plain RocksDB.
  {
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const schema::ColumnFamilyInfo& info : schema::kColumnFamilies) {
      cfs.emplace_back(info.name, rocksdb::ColumnFamilyOptions());
    }
    rocksdb::DB* raw = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DBOptions options;
    std::vector<std::string> existing;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(options, path, &existing).ok());
    for (const std::string& name : existing) {
      if (std::none_of(cfs.begin(), cfs.end(), [&](const auto& d) { return d.name == name; })) {
        cfs.emplace_back(name, rocksdb::ColumnFamilyOptions());
      }
    }
    ASSERT_TRUE(rocksdb::DB::Open(options, path, cfs, &handles, &raw).ok());
    rocksdb::ColumnFamilyHandle* index = handles[schema::Index(schema::ColumnFamily::kMemoryIndex)];
    ASSERT_TRUE(raw->Put({}, index,
                         schema::MemoryPostingKey("p", "zebra", schema::MemoryDocId("n", "k")),
                         "\xff")
                    .ok());
    for (rocksdb::ColumnFamilyHandle* h : handles)
      ASSERT_TRUE(raw->DestroyColumnFamilyHandle(h).ok());
    delete raw;
  }
  auto store = RocksDbStore::Open({path, Durability::kRelaxed});
  ASSERT_TRUE(store.ok()) << store.status();
  // "n"/"a" sorts first: it is the seed (scored from its doc entry), and the walk then reads
  // the corrupt posting of "n"/"k".
  v1::MemoryRecord r2;
  r2.set_namespace_("n");
  r2.set_key("a");
  r2.set_text("zebra");
  ASSERT_TRUE((*store)->PutMemory("p", r2).ok());
  EXPECT_EQ((*store)->SearchMemory("p", "", "zebra", 1).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_TRUE((*store)->GetMemory("p", "n", "k").ok());
}

}  // namespace
}  // namespace agentd::store
