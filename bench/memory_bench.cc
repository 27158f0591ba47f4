// memory_bench: long-term memory search (BM25 over the RocksDB inverted index) at scale.
//
// Loads --records synthetic memory records (--words words each, drawn from a --vocab word
// vocabulary with a Zipf(--zipf) distribution, so a few words are in almost every record and
// most are rare) into a RocksDbStore through PutMemory, spread over --namespaces namespaces
// "users/u<i>/notes". Then times --queries SearchMemory calls of 2–4 words drawn from the same
// distribution (top_k 10), once over the whole project and once restricted to one user's
// namespace prefix, and reports p50/p90/p99/max latency and the load rate.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "bench_util.h"
#include "store/rocksdb_store.h"

namespace agentd {
namespace {

using Clock = std::chrono::steady_clock;

using bench::MicrosSince;
using bench::Percentile;

uint64_t DirBytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

struct Options {
  int records = 100000;
  int words = 50;
  int vocab = 30000;
  double zipf = 1.0;
  int queries = 1000;
  int namespaces = 1000;
  int top_k = 10;
  std::string dir = "/tmp/agentd-memory-bench";
  std::string durability = "relaxed";
  bool reopen = false;
  bool reuse = false;
  uint32_t seed = 42;
};

class Corpus {
 public:
  Corpus(const Options& o) : rng_(o.seed) {
    std::vector<double> weights(static_cast<size_t>(o.vocab));
    for (size_t r = 0; r < weights.size(); ++r) {
      weights[r] = 1.0 / std::pow(static_cast<double>(r + 1), o.zipf);
    }
    word_ = std::discrete_distribution<int>(weights.begin(), weights.end());
  }
  std::string Words(int n) {
    std::string text;
    for (int i = 0; i < n; ++i) absl::StrAppend(&text, i ? " " : "", "w", word_(rng_));
    return text;
  }
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

 private:
  std::mt19937 rng_;
  std::discrete_distribution<int> word_;
};

struct QueryStats {
  std::vector<double> micros;
  double results = 0;
};

absl::Status TimeQueries(store::RocksDbStore& db, Corpus& corpus, const Options& o, bool per_user,
                         QueryStats* out) {
  for (int i = -100; i < o.queries; ++i) {  // the first 100 warm up and are not counted
    const std::string query = corpus.Words(corpus.Uniform(2, 4));
    const std::string prefix =
        per_user ? absl::StrCat("users/u", corpus.Uniform(0, o.namespaces - 1), "/") : "";
    const Clock::time_point t0 = Clock::now();
    absl::StatusOr<std::vector<store::ScoredMemoryRecord>> r =
        db.SearchMemory("bench", prefix, query, o.top_k);
    const double us = MicrosSince(t0);
    if (!r.ok()) return r.status();
    if (i < 0) continue;
    out->micros.push_back(us);
    out->results += static_cast<double>(r->size());
  }
  out->results /= std::max(1, o.queries);
  return absl::OkStatus();
}

void Report(const char* what, const QueryStats& s) {
  std::printf("%-28s p50 %8.0f us  p90 %8.0f us  p99 %8.0f us  max %8.0f us  (%.1f results)\n",
              what, Percentile(s.micros, 0.50), Percentile(s.micros, 0.90),
              Percentile(s.micros, 0.99), Percentile(s.micros, 1.0), s.results);
}

int Search(store::RocksDbStore& db, Corpus& corpus, const Options& o);

absl::StatusOr<std::unique_ptr<store::RocksDbStore>> Open(const Options& o) {
  store::RocksDbStoreOptions so;
  so.path = o.dir;
  so.durability = o.durability == "sync" ? store::Durability::kSync : store::Durability::kRelaxed;
  return store::RocksDbStore::Open(so);
}

int Run(const Options& o) {
  if (!o.reuse) std::filesystem::remove_all(o.dir);
  auto opened = Open(o);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<store::RocksDbStore> db = *std::move(opened);
  Corpus corpus(o);

  if (o.reuse) {
    std::printf("reusing the records in %s\n", o.dir.c_str());
    return Search(*db, corpus, o);
  }
  std::printf("loading %d records of %d words (vocabulary %d, zipf %.2f, %d namespaces, %s)\n",
              o.records, o.words, o.vocab, o.zipf, o.namespaces, o.durability.c_str());
  std::vector<double> put_micros;
  put_micros.reserve(static_cast<size_t>(o.records));
  const double cpu0 = bench::CpuSeconds();
  const Clock::time_point load0 = Clock::now();
  for (int i = 0; i < o.records; ++i) {
    v1::MemoryRecord r;
    r.set_namespace_(absl::StrCat("users/u", i % o.namespaces, "/notes"));
    r.set_key(absl::StrCat("m", i));
    r.set_text(corpus.Words(o.words));
    const Clock::time_point t0 = Clock::now();
    absl::StatusOr<v1::MemoryRecord> st = db->PutMemory("bench", r);
    put_micros.push_back(MicrosSince(t0));
    if (!st.ok()) {
      std::fprintf(stderr, "put %d: %s\n", i, st.status().ToString().c_str());
      return 1;
    }
  }
  const double load_s = MicrosSince(load0) / 1e6;
  std::printf(
      "load: %.1f s, %.0f records/s, put p50 %.0f us p99 %.0f us, %.1f CPU s, "
      "data dir %.0f MiB\n",
      load_s, o.records / load_s, Percentile(put_micros, 0.5), Percentile(put_micros, 0.99),
      bench::CpuSeconds() - cpu0, static_cast<double>(DirBytes(o.dir)) / (1 << 20));

  if (o.reopen) {
    db.reset();
    opened = Open(o);
    if (!opened.ok()) {
      std::fprintf(stderr, "reopen: %s\n", opened.status().ToString().c_str());
      return 1;
    }
    db = *std::move(opened);
    std::printf("reopened the store (cold block cache)\n");
  }

  return Search(*db, corpus, o);
}

int Search(store::RocksDbStore& db, Corpus& corpus, const Options& o) {
  QueryStats all, user;
  absl::Status st = TimeQueries(db, corpus, o, /*per_user=*/false, &all);
  if (st.ok()) st = TimeQueries(db, corpus, o, /*per_user=*/true, &user);
  if (!st.ok()) {
    std::fprintf(stderr, "search: %s\n", st.ToString().c_str());
    return 1;
  }
  std::printf("%d queries of 2-4 words, top_k %d:\n", o.queries, o.top_k);
  Report("  whole project", all);
  Report("  one user's namespace", user);
  return 0;
}

}  // namespace
}  // namespace agentd

int main(int argc, char** argv) {
  agentd::Options o;
  CLI::App app{"memory_bench: SearchMemory latency over a large memory index"};
  app.add_option("--records", o.records, "memory records to load")->check(CLI::PositiveNumber);
  app.add_option("--words", o.words, "words per record")->check(CLI::PositiveNumber);
  app.add_option("--vocab", o.vocab, "vocabulary size")->check(CLI::PositiveNumber);
  app.add_option("--zipf", o.zipf, "Zipf exponent of word frequencies")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--queries", o.queries, "timed queries per phase")->check(CLI::PositiveNumber);
  app.add_option("--namespaces", o.namespaces, "users the records are spread over")
      ->check(CLI::PositiveNumber);
  app.add_option("--top-k", o.top_k, "results per query")->check(CLI::Range(1, 1000));
  app.add_option("--dir", o.dir, "data dir (deleted first)");
  app.add_option("--durability", o.durability, "sync or relaxed")
      ->check(CLI::IsMember({"sync", "relaxed"}));
  app.add_flag("--reopen", o.reopen, "close and reopen the store before the queries");
  app.add_flag("--reuse", o.reuse, "query the records a previous run left in --dir (no load)");
  app.add_option("--seed", o.seed, "random seed");
  CLI11_PARSE(app, argc, argv);
  return agentd::Run(o);
}
