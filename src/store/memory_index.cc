#include "store/memory_index.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <queue>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "store/schema.h"

namespace agentd::store::memory {
namespace {

// Function words that carry no meaning for retrieval (ascending, for binary search). Small on
// purpose: negations ("no", "not") and pronouns that identify people stay searchable.
constexpr std::array<absl::string_view, 33> kStopwords = {
    "a",   "an",   "and",  "are", "as",   "at",    "be",    "but",  "by", "for", "from",
    "had", "has",  "have", "in",  "into", "is",    "it",    "its",  "of", "on",  "or",
    "so",  "than", "that", "the", "then", "there", "these", "this", "to", "was", "with",
};

bool IsWordByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

/// Calls fn(token) for every kept token of `text`.
template <typename Fn>
void ForEachToken(absl::string_view text, Fn&& fn) {
  std::string token;
  auto flush = [&] {
    if (!token.empty() && token.size() <= schema::kMaxMemoryTermLength && !IsStopword(token)) {
      fn(token);
    }
    token.clear();
  };
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (!IsWordByte(c)) {
      flush();
      continue;
    }
    token.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : ch);
  }
  flush();
}

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(static_cast<uint8_t>(v) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

/// Reads a varint from the front of `*in` and advances it. False when truncated or > 64 bits.
bool GetVarint(absl::string_view* in, uint64_t* out) {
  uint64_t v = 0;
  for (int shift = 0; shift <= 63 && !in->empty(); shift += 7) {
    const auto byte = static_cast<uint8_t>(in->front());
    in->remove_prefix(1);
    if (shift == 63 && byte > 1) return false;
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      *out = v;
      return true;
    }
  }
  return false;
}

bool GetVarint32(absl::string_view* in, uint32_t* out) {
  uint64_t v = 0;
  if (!GetVarint(in, &v) || v > UINT32_MAX) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

/// How many postings a probe steps over before it seeks instead.
constexpr int kProbeSteps = 8;

/// The heap order of RankTopK: a before b when a is better (higher score, then smaller doc id),
/// so the top of a std::priority_queue with it is the worst doc kept.
struct Better {
  bool operator()(const RankedDoc& a, const RankedDoc& b) const {
    if (a.score != b.score) return a.score > b.score;
    return a.doc_id < b.doc_id;
  }
};

}  // namespace

bool IsStopword(absl::string_view token) {
  return std::binary_search(kStopwords.begin(), kStopwords.end(), token);
}

std::vector<std::string> Tokenize(absl::string_view text) {
  std::vector<std::string> tokens;
  ForEachToken(text, [&](const std::string& t) { tokens.push_back(t); });
  return tokens;
}

AnalyzedText Analyze(absl::string_view text) {
  std::map<std::string, uint32_t, std::less<>> counts;
  AnalyzedText out;
  ForEachToken(text, [&](const std::string& t) {
    ++counts[t];
    ++out.length;
  });
  out.terms.assign(counts.begin(), counts.end());
  return out;
}

std::vector<std::string> QueryTerms(absl::string_view query) {
  std::vector<std::string> terms = Tokenize(query);
  std::sort(terms.begin(), terms.end());
  terms.erase(std::unique(terms.begin(), terms.end()), terms.end());
  return terms;
}

std::string EncodePosting(const Posting& posting) {
  std::string v;
  PutVarint(&v, posting.tf);
  PutVarint(&v, posting.doc_length);
  return v;
}

bool DecodePosting(absl::string_view value, Posting* posting) {
  return GetVarint32(&value, &posting->tf) && GetVarint32(&value, &posting->doc_length) &&
         value.empty();
}

std::string EncodeStats(const IndexStats& stats) {
  std::string v;
  PutVarint(&v, stats.records);
  PutVarint(&v, stats.total_length);
  return v;
}

bool DecodeStats(absl::string_view value, IndexStats* stats) {
  return GetVarint(&value, &stats->records) && GetVarint(&value, &stats->total_length) &&
         value.empty();
}

std::string EncodeTermStats(const TermStats& stats) {
  std::string v;
  PutVarint(&v, stats.df);
  PutVarint(&v, stats.max_tf);
  PutVarint(&v, stats.min_length);
  return v;
}

bool DecodeTermStats(absl::string_view value, TermStats* stats) {
  return GetVarint(&value, &stats->df) && GetVarint32(&value, &stats->max_tf) &&
         GetVarint32(&value, &stats->min_length) && value.empty();
}

std::string EncodeDocEntry(const AnalyzedText& text) {
  std::string v;
  PutVarint(&v, text.length);
  for (const auto& [term, tf] : text.terms) {
    schema::AppendLengthPrefixed(&v, term);
    PutVarint(&v, tf);
  }
  return v;
}

namespace {

/// Reads the next (term, tf) of a doc entry. False when malformed.
bool NextDocTerm(absl::string_view* in, absl::string_view* term, uint32_t* tf) {
  return schema::ConsumeLengthPrefixed(in, term) && term->size() <= schema::kMaxMemoryTermLength &&
         GetVarint32(in, tf) && *tf > 0;
}

}  // namespace

bool DecodeDocEntry(absl::string_view value, DocEntry* entry) {
  entry->terms.clear();
  if (!GetVarint32(&value, &entry->length)) return false;
  while (!value.empty()) {
    absl::string_view term;
    uint32_t tf = 0;
    if (!NextDocTerm(&value, &term, &tf)) return false;
    // Strictly ascending, as EncodeDocEntry writes them: DocEntryLookup stops at the first
    // larger term, and a repeated term would be unindexed twice.
    if (!entry->terms.empty() && absl::string_view(entry->terms.back().first) >= term) return false;
    entry->terms.emplace_back(term, tf);
  }
  return true;
}

bool DocEntryLookup(absl::string_view value, absl::string_view term, uint32_t* length,
                    uint32_t* tf) {
  *tf = 0;
  if (!GetVarint32(&value, length)) return false;
  while (!value.empty()) {
    absl::string_view t;
    uint32_t n = 0;
    if (!NextDocTerm(&value, &t, &n)) return false;
    if (t == term) {
      *tf = n;
      return true;
    }
    if (t > term) return true;  // terms are ascending
  }
  return true;
}

double Idf(uint64_t records, uint64_t df) {
  const double n = static_cast<double>(records);
  const double d = static_cast<double>(std::min(df, records));
  return std::log(1.0 + (n - d + 0.5) / (d + 0.5));
}

double TermWeight(uint32_t tf, uint32_t doc_length, double avg_length) {
  const double f = tf;
  const double norm = avg_length > 0 ? static_cast<double>(doc_length) / avg_length : 1.0;
  return f * (kBm25K1 + 1) / (f + kBm25K1 * (1 - kBm25B + kBm25B * norm));
}

double ScoreBound(double idf, const TermStats& stats, double avg_length) {
  // TermWeight grows with tf and shrinks with the length: its value at (max_tf, min_length) is
  // above every posting's. The relative 1e-9 keeps rounding from ever letting a real
  // contribution reach the bound, so a doc's score is strictly below the sum of its bounds.
  const uint32_t tf = std::max<uint32_t>(stats.max_tf, 1);
  const uint32_t length = std::min<uint32_t>(stats.min_length, UINT32_MAX - 1);
  return idf * TermWeight(tf, length, avg_length) * (1 + 1e-9);
}

absl::StatusOr<std::vector<RankedDoc>> RankTopK(std::vector<RankTerm> terms, double avg_length,
                                                size_t k, DocLookup* docs) {
  std::vector<RankedDoc> ranked;
  if (k == 0 || terms.empty()) return ranked;
  std::sort(terms.begin(), terms.end(),
            [](const RankTerm& a, const RankTerm& b) { return a.bound < b.bound; });
  const size_t n = terms.size();
  // bound_sum[i]: the most terms 0..i together can add to a score.
  std::vector<double> bound_sum(n);
  for (size_t i = 0; i < n; ++i) bound_sum[i] = terms[i].bound + (i > 0 ? bound_sum[i - 1] : 0);

  std::priority_queue<RankedDoc, std::vector<RankedDoc>, Better> top;
  auto bar = [&] { return top.size() < k ? 0.0 : top.top().score; };
  // Terms [0, essential) are no longer walked, only probed for the docs the others produce.
  size_t essential = 0;
  auto raise_bar = [&] {
    while (top.size() == k && essential < n && bound_sum[essential] <= bar()) ++essential;
  };
  auto offer = [&](const std::string& doc, double score) {
    if (top.size() == k) {
      const RankedDoc& worst = top.top();
      if (score < worst.score || (score == worst.score && doc >= worst.doc_id)) return;
      top.pop();
    }
    top.push({doc, score});
  };
  std::string doc;  // the doc being scored
  // Per-term contributions of the current doc, summed in term order (0 = not present).
  std::vector<double> contribution(n, 0.0);
  auto total = [&] {
    double sum = 0;
    for (double c : contribution) sum += c;
    return sum;
  };
  // Sets every term's contribution from `doc`'s entry (the forward index).
  auto from_entry = [&]() -> absl::Status {
    absl::StatusOr<absl::string_view> entry = docs->Entry(doc);
    if (!entry.ok()) return entry.status();
    for (size_t i = 0; i < n; ++i) {
      uint32_t length = 0, tf = 0;
      if (!DocEntryLookup(*entry, terms[i].term, &length, &tf)) {
        return absl::DataLossError(absl::StrCat("corrupt memory doc entry of ", HexEncode(doc)));
      }
      if (tf > 0) contribution[i] = terms[i].idf * TermWeight(tf, length, avg_length);
    }
    return absl::OkStatus();
  };

  // Adds term i's contribution from its cursor's current posting (which is `doc`'s).
  auto from_posting = [&](size_t i, double* partial) -> absl::Status {
    Posting p;
    if (!DecodePosting(terms[i].cursor->value(), &p) || p.tf == 0) {
      return absl::DataLossError(absl::StrCat("corrupt memory posting of ", HexEncode(doc)));
    }
    contribution[i] = terms[i].idf * TermWeight(p.tf, p.doc_length, avg_length);
    *partial += contribution[i];
    return absl::OkStatus();
  };

  // Seed: the first k docs of the highest-bound term, scored in full. The walk below skips them
  // (they are the docs <= last_seeded that are in `seeded`).
  absl::flat_hash_set<std::string> seeded;
  std::string last_seeded;
  PostingCursor* seed = terms[n - 1].cursor;
  for (size_t s = 0; s < k && seed->Valid(); ++s, seed->Next()) {
    doc.assign(seed->doc_id().data(), seed->doc_id().size());
    std::fill(contribution.begin(), contribution.end(), 0.0);
    if (absl::Status st = from_entry(); !st.ok()) return st;
    offer(doc, total());
    seeded.insert(doc);
    last_seeded = doc;
  }
  raise_bar();

  // The merge of the essential lists; the other terms are probed for the docs it produces.
  while (essential < n) {
    const PostingCursor* first = nullptr;
    for (size_t i = essential; i < n; ++i) {
      const PostingCursor* c = terms[i].cursor;
      if (c->Valid() && (first == nullptr || c->doc_id() < first->doc_id())) first = c;
    }
    if (first == nullptr) break;
    doc.assign(first->doc_id().data(), first->doc_id().size());
    std::fill(contribution.begin(), contribution.end(), 0.0);
    double partial = 0;
    for (size_t i = essential; i < n; ++i) {
      PostingCursor* c = terms[i].cursor;
      if (!c->Valid() || c->doc_id() != doc) continue;
      if (absl::Status st = from_posting(i, &partial); !st.ok()) return st;
      c->Next();
    }
    if (doc <= last_seeded && seeded.count(doc) > 0) continue;
    bool out_of_reach = false;
    for (size_t j = essential; j-- > 0;) {
      // Terms 0..j add less than bound_sum[j]: probe only while that could pass the bar.
      if (partial + bound_sum[j] <= bar()) {
        out_of_reach = true;
        break;
      }
      PostingCursor* c = terms[j].cursor;
      // Docs come in order, so the cursor only moves forward: a few steps are cheaper than a
      // seek when its postings are dense, a seek when they are sparse.
      for (int step = 0; step < kProbeSteps && c->Valid() && c->doc_id() < doc; ++step) c->Next();
      if (c->Valid() && c->doc_id() < doc) c->Seek(doc);
      if (c->Valid() && c->doc_id() == doc) {
        if (absl::Status st = from_posting(j, &partial); !st.ok()) return st;
      }
    }
    if (out_of_reach) continue;
    offer(doc, total());
    raise_bar();
  }
  for (const RankTerm& t : terms) {
    if (absl::Status st = t.cursor->status(); !st.ok()) return st;
  }
  ranked.resize(top.size());
  for (size_t i = ranked.size(); i-- > 0;) {
    ranked[i] = top.top();
    top.pop();
  }
  return ranked;
}

}  // namespace agentd::store::memory
