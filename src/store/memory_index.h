// The long-term memory search index, independent of RocksDB: the tokenizer, the varint value
// encodings of the memory_index family (layout: store/schema.h, "Long-term memory") and BM25
// top-k ranking over posting cursors. docs/memory.md states the same rules for users.
// Everything here is a pure function or a single-threaded object; include only from src/store
// (and the store's tests).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace agentd::store::memory {

/// BM25 parameters (Robertson/Lucene): term-frequency saturation and length normalization.
inline constexpr double kBm25K1 = 1.2;
inline constexpr double kBm25B = 0.75;
/// A query with more distinct terms than this is INVALID_ARGUMENT.
inline constexpr size_t kMaxQueryTerms = 64;

// ---- Tokenizer -------------------------------------------------------------------------------
// Word bytes are ASCII letters and digits and every byte >= 0x80 (so UTF-8 letters of other
// scripts stay inside words); everything else separates words. ASCII letters are lowercased.
// Tokens longer than kMaxMemoryTermLength (64) bytes and a short list of English stopwords
// ("the", "and", "is"…) are dropped and not counted in the text's length.

/// The kept tokens of `text`, in order (duplicates included).
std::vector<std::string> Tokenize(absl::string_view text);

/// True for the stopwords Tokenize drops (`token` already lowercase).
bool IsStopword(absl::string_view token);

/// The distinct terms of a text with their counts, and its length in kept tokens.
struct AnalyzedText {
  std::vector<std::pair<std::string, uint32_t>> terms;  // ascending by term
  uint32_t length = 0;
};
AnalyzedText Analyze(absl::string_view text);

/// The distinct terms of a query, ascending.
std::vector<std::string> QueryTerms(absl::string_view query);

// ---- Values of the memory_index family (unsigned LEB128 varints) -------------------------------

struct Posting {
  uint32_t tf = 0;          // occurrences of the term in the record
  uint32_t doc_length = 0;  // the record's length in tokens
};
std::string EncodePosting(const Posting& posting);
/// False when `value` is not exactly two varints fitting 32 bits.
bool DecodePosting(absl::string_view value, Posting* posting);

struct IndexStats {
  uint64_t records = 0;       // the project's memory records
  uint64_t total_length = 0;  // sum of their lengths in tokens
};
std::string EncodeStats(const IndexStats& stats);
bool DecodeStats(absl::string_view value, IndexStats* stats);

/// A term's statistics (the df record): how many records have it, and bounds over its postings
/// that make its score bound tight. max_tf only grows and min_length only shrinks while the term
/// has postings (a delete leaves them, so they stay bounds), and the record goes when df is 0.
struct TermStats {
  uint64_t df = 0;
  uint32_t max_tf = 0;               // >= every posting's tf
  uint32_t min_length = UINT32_MAX;  // <= every posting's doc_length
};
std::string EncodeTermStats(const TermStats& stats);
bool DecodeTermStats(absl::string_view value, TermStats* stats);

/// What a record put into the index: its length and distinct terms (ascending) with their tf.
struct DocEntry {
  uint32_t length = 0;
  std::vector<std::pair<std::string, uint32_t>> terms;
};
/// varint(length), then lp(term) varint(tf) per distinct term, ascending.
std::string EncodeDocEntry(const AnalyzedText& text);
/// False unless `value` is such an encoding (terms 1..64 bytes, tf >= 1).
bool DecodeDocEntry(absl::string_view value, DocEntry* entry);
/// Reads one term's tf (0 if the record lacks it) and the length from an encoded doc entry
/// without decoding the rest. False when the entry is malformed.
bool DocEntryLookup(absl::string_view value, absl::string_view term, uint32_t* length,
                    uint32_t* tf);

// ---- Ranking ---------------------------------------------------------------------------------
// score(d) = Σ over distinct query terms t in d of
//              idf(t) · tf·(k1+1) / (tf + k1·(1 − b + b·|d|/avgdl))
// idf(t)   = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))   (always > 0)
// N, df and avgdl are the project's (not the namespace prefix's) statistics.

double Idf(uint64_t records, uint64_t df);
/// The tf part of a term's contribution (in (0, k1+1) for tf >= 1).
double TermWeight(uint32_t tf, uint32_t doc_length, double avg_length);

/// A term's postings in doc-id order (doc_id = namespace 00 key), restricted to the namespace
/// prefix being searched. Single-threaded; moves only forward.
class PostingCursor {
 public:
  virtual ~PostingCursor() = default;
  /// False past the last posting or after an error (then status() says which).
  virtual bool Valid() const = 0;
  /// The current posting (precondition: Valid()). The views stay valid until the cursor moves.
  virtual absl::string_view doc_id() const = 0;
  virtual absl::string_view value() const = 0;
  virtual void Next() = 0;
  /// Moves to the first posting whose doc id is >= `doc_id` (never backwards).
  virtual void Seek(absl::string_view doc_id) = 0;
  virtual absl::Status status() const = 0;
};

/// Point lookups of doc entries (the forward index), from the same snapshot as the cursors.
class DocLookup {
 public:
  virtual ~DocLookup() = default;
  /// The encoded doc entry of `doc_id`, valid until the next call; DATA_LOSS when missing.
  virtual absl::StatusOr<absl::string_view> Entry(absl::string_view doc_id) = 0;
};

struct RankTerm {
  std::string term;
  double idf = 0;
  /// > every contribution the term can make: idf · TermWeight(max_tf, min_length, avgdl),
  /// raised by a relative 1e-9 against rounding (ScoreBound).
  double bound = 0;
  PostingCursor* cursor = nullptr;  // not owned
};

double ScoreBound(double idf, const TermStats& stats, double avg_length);

struct RankedDoc {
  std::string doc_id;
  double score = 0;
};

/// The (at most) k best docs by BM25 over `terms`, best first; equal scores in doc-id order,
/// i.e. by (namespace, key). Only docs with a posting of some term (score > 0) are returned.
///
/// Exact top-k with MaxScore pruning. Terms are ordered by score bound. First the k first
/// postings of the term with the highest bound (the rarest, usually) are scored in full from
/// their doc entries, so the k-th best score — the bar — starts high. Then the posting lists
/// are merged in doc-id order, but only those of the "essential" terms: once the bar reaches
/// the sum of the smallest bounds, those terms cannot bring a doc into the top k on their own,
/// so their lists are no longer walked, only probed (a few Next steps, then a Seek) for the docs
/// the essential lists produce, and only while the doc could still pass the bar. Scores are
/// summed in one fixed term order, so equal records score exactly equal.
/// DATA_LOSS for a posting or doc entry that does not decode; a cursor's or lookup's error is
/// returned as is.
absl::StatusOr<std::vector<RankedDoc>> RankTopK(std::vector<RankTerm> terms, double avg_length,
                                                size_t k, DocLookup* docs);

}  // namespace agentd::store::memory
