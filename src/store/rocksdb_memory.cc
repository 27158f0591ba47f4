// RocksDbStore: long-term memory. Records live in the `memory` family, the BM25 index (postings,
// term stats, per-project stats, per-record doc entries) in `memory_index`; layout in
// store/schema.h ("Long-term memory"), tokenizer and ranking in store/memory_index.h.
//
// Writes (PutMemory, DeleteMemory) hold the project's memory lock from the first read to the
// commit: they read the old record, its doc entry, the stats and the term stats of every term
// they touch, and commit record + index changes in one batch. So the counters are exact without
// a merge operator, and searches (which take no lock) see record and index of one snapshot.
#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/snapshot.h"
#include "store/memory_index.h"
#include "store/rocksdb_store.h"
#include "store/rocksdb_util.h"

namespace agentd::store {
namespace {

using internal::Batch;
using internal::CheckId;
using internal::FromRocks;
using internal::GetValue;
using internal::MalformedKey;
using internal::ParseValue;
using internal::PrefixIterator;
using internal::ToSlice;
using internal::ToView;
using schema::ColumnFamily;

/// The lock stripe id of a project's memory writes (never a valid id: ids have no 01 byte).
constexpr absl::string_view kMemoryLockId = "\x01memory";

absl::Status CorruptIndex(absl::string_view what, absl::string_view key) {
  return absl::DataLossError(
      absl::StrCat("corrupt memory index ", what, " (key ", HexEncode(key), ")"));
}

/// Point lookup of a raw value: nullopt when absent.
absl::StatusOr<std::optional<std::string>> GetRaw(rocksdb::DB* db, const rocksdb::ReadOptions& ro,
                                                  rocksdb::ColumnFamilyHandle* cf,
                                                  const std::string& key) {
  std::string value;
  const rocksdb::Status s = db->Get(ro, cf, key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  AGENTD_RETURN_IF_ERROR(FromRocks(s, "get memory index"));
  return std::optional<std::string>(std::move(value));
}

absl::StatusOr<memory::IndexStats> ReadStats(rocksdb::DB* db, const rocksdb::ReadOptions& ro,
                                             rocksdb::ColumnFamilyHandle* cf,
                                             const std::string& project_id) {
  const std::string key = schema::MemoryStatsKey(project_id);
  AGENTD_ASSIGN_OR_RETURN(std::optional<std::string> raw, GetRaw(db, ro, cf, key));
  memory::IndexStats stats;
  if (raw.has_value() && !memory::DecodeStats(*raw, &stats)) return CorruptIndex("stats", key);
  return stats;
}

/// The stats of each term (df 0 when absent), in the order of `terms`.
absl::StatusOr<std::vector<memory::TermStats>> ReadTermStats(
    rocksdb::DB* db, const rocksdb::ReadOptions& ro, rocksdb::ColumnFamilyHandle* cf,
    const std::string& project_id, const std::vector<std::string>& terms) {
  std::vector<memory::TermStats> stats(terms.size());
  if (terms.empty()) return stats;
  std::vector<std::string> keys;
  keys.reserve(terms.size());
  for (const std::string& t : terms) keys.push_back(schema::MemoryTermKey(project_id, t));
  std::vector<rocksdb::Slice> slices(keys.begin(), keys.end());
  std::vector<rocksdb::PinnableSlice> values(keys.size());
  std::vector<rocksdb::Status> statuses(keys.size());
  db->MultiGet(ro, cf, keys.size(), slices.data(), values.data(), statuses.data());
  for (size_t i = 0; i < keys.size(); ++i) {
    if (statuses[i].IsNotFound()) continue;
    AGENTD_RETURN_IF_ERROR(FromRocks(statuses[i], "get memory term"));
    if (!memory::DecodeTermStats(ToView(values[i]), &stats[i]) || stats[i].df == 0) {
      return CorruptIndex("term stats", keys[i]);
    }
  }
  return stats;
}

/// Adds to `batch` the index changes that turn `old_doc` (what the record indexed before; null
/// for a new record) into `new_text` (null for a delete): postings, term stats, the doc entry
/// and the project's stats. Caller holds the project's memory lock.
absl::Status StageIndexChange(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf,
                              const std::string& project_id, const std::string& doc_id,
                              const memory::DocEntry* old_doc, const memory::AnalyzedText* new_text,
                              Batch* batch) {
  // Every term the change touches, ascending, with whether the old / new version has it.
  struct Touched {
    std::string term;
    bool in_old = false;
    uint32_t new_tf = 0;
  };
  std::vector<Touched> touched;
  size_t i = 0, j = 0;
  const size_t n_old = old_doc != nullptr ? old_doc->terms.size() : 0;
  const size_t n_new = new_text != nullptr ? new_text->terms.size() : 0;
  while (i < n_old || j < n_new) {
    if (j == n_new || (i < n_old && old_doc->terms[i].first < new_text->terms[j].first)) {
      touched.push_back({old_doc->terms[i++].first, true, 0});
    } else if (i == n_old || new_text->terms[j].first < old_doc->terms[i].first) {
      touched.push_back({new_text->terms[j].first, false, new_text->terms[j].second});
      ++j;
    } else {
      touched.push_back({old_doc->terms[i++].first, true, new_text->terms[j++].second});
    }
  }
  std::vector<std::string> terms;
  terms.reserve(touched.size());
  for (const Touched& t : touched) terms.push_back(t.term);
  AGENTD_ASSIGN_OR_RETURN(const std::vector<memory::TermStats> term_stats,
                          ReadTermStats(db, {}, cf, project_id, terms));
  AGENTD_ASSIGN_OR_RETURN(memory::IndexStats stats, ReadStats(db, {}, cf, project_id));

  const uint32_t new_length = new_text != nullptr ? new_text->length : 0;
  for (size_t k = 0; k < touched.size(); ++k) {
    const Touched& t = touched[k];
    const bool in_new = t.new_tf > 0;
    const std::string posting_key = schema::MemoryPostingKey(project_id, t.term, doc_id);
    if (in_new) {
      batch->PutBytes(cf, posting_key, memory::EncodePosting({t.new_tf, new_length}));
    } else {
      batch->Delete(cf, posting_key);
    }
    const std::string term_key = schema::MemoryTermKey(project_id, t.term);
    memory::TermStats next = term_stats[k];
    if (t.in_old && next.df == 0) return CorruptIndex("term stats (missing)", term_key);
    if (t.in_old && !in_new) {
      if (--next.df == 0) {
        batch->Delete(cf, term_key);
        continue;
      }
    } else if (in_new) {
      if (!t.in_old) ++next.df;
      next.max_tf = std::max(next.max_tf, t.new_tf);
      next.min_length = std::min(next.min_length, new_length);
    }
    if (next.df != term_stats[k].df || next.max_tf != term_stats[k].max_tf ||
        next.min_length != term_stats[k].min_length) {
      batch->PutBytes(cf, term_key, memory::EncodeTermStats(next));
    }
  }

  const std::string stats_key = schema::MemoryStatsKey(project_id);
  if (old_doc != nullptr) {
    if (stats.records == 0 || stats.total_length < old_doc->length) {
      return CorruptIndex("stats (below zero)", stats_key);
    }
    --stats.records;
    stats.total_length -= old_doc->length;
  }
  const std::string doc_key = schema::MemoryDocKey(project_id, doc_id);
  if (new_text != nullptr) {
    ++stats.records;
    stats.total_length += new_text->length;
    batch->PutBytes(cf, doc_key, memory::EncodeDocEntry(*new_text));
  } else {
    batch->Delete(cf, doc_key);
  }
  if (stats.records == 0) {
    batch->Delete(cf, stats_key);
  } else {
    batch->PutBytes(cf, stats_key, memory::EncodeStats(stats));
  }
  return absl::OkStatus();
}

/// A term's postings under a namespace prefix, read from one snapshot.
class RocksPostingCursor final : public memory::PostingCursor {
 public:
  RocksPostingCursor(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, rocksdb::ReadOptions ro,
                     std::string term_prefix, absl::string_view namespace_prefix)
      : term_prefix_size_(term_prefix.size()) {
    std::string start = std::move(term_prefix);
    start.append(namespace_prefix.data(), namespace_prefix.size());
    upper_ = schema::PrefixSuccessor(start);
    upper_slice_ = ToSlice(upper_);
    ro.iterate_upper_bound = &upper_slice_;
    it_.reset(db->NewIterator(ro, cf));
    it_->Seek(start);
    seek_key_ = start.substr(0, term_prefix_size_);
  }

  bool Valid() const override { return it_->Valid(); }
  absl::string_view doc_id() const override { return ToView(it_->key()).substr(term_prefix_size_); }
  absl::string_view value() const override { return ToView(it_->value()); }
  void Next() override { it_->Next(); }
  void Seek(absl::string_view doc_id) override {
    seek_key_.resize(term_prefix_size_);
    seek_key_.append(doc_id.data(), doc_id.size());
    it_->Seek(seek_key_);
  }
  absl::Status status() const override { return FromRocks(it_->status(), "search memory"); }

 private:
  const size_t term_prefix_size_;
  std::string seek_key_;
  std::string upper_;
  rocksdb::Slice upper_slice_;
  std::unique_ptr<rocksdb::Iterator> it_;
};

/// Doc entries of one project, read from the search's snapshot.
class RocksDocLookup final : public memory::DocLookup {
 public:
  RocksDocLookup(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, const rocksdb::ReadOptions& ro,
                 const std::string& project_id)
      : db_(db),
        cf_(cf),
        ro_(ro),
        key_(schema::MemoryDocKey(project_id, "")),
        prefix_size_(key_.size()) {}

  absl::StatusOr<absl::string_view> Entry(absl::string_view doc_id) override {
    key_.resize(prefix_size_);
    key_.append(doc_id.data(), doc_id.size());
    value_.Reset();
    const rocksdb::Status s = db_->Get(ro_, cf_, key_, &value_);
    if (s.IsNotFound()) return CorruptIndex("doc entry (missing)", key_);
    AGENTD_RETURN_IF_ERROR(FromRocks(s, "get memory doc entry"));
    return ToView(value_);
  }

 private:
  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* cf_;
  const rocksdb::ReadOptions& ro_;
  std::string key_;
  const size_t prefix_size_;
  rocksdb::PinnableSlice value_;
};

}  // namespace

absl::StatusOr<v1::MemoryRecord> RocksDbStore::PutMemory(const std::string& project_id,
                                                         const v1::MemoryRecord& record) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckMemoryName(record.namespace_(), record.key()));
  const std::string doc_id = schema::MemoryDocId(record.namespace_(), record.key());
  const std::string record_key = schema::MemoryRecordKey(project_id, doc_id);
  const memory::AnalyzedText text = memory::Analyze(record.text());
  rocksdb::ColumnFamilyHandle* index = Cf(ColumnFamily::kMemoryIndex);

  absl::MutexLock lock(&StripeFor(project_id, kMemoryLockId));
  AGENTD_ASSIGN_OR_RETURN(
      std::optional<v1::MemoryRecord> old,
      GetValue<v1::MemoryRecord>(db_.get(), {}, Cf(ColumnFamily::kMemory), "memory", record_key));
  std::optional<memory::DocEntry> old_doc;
  if (old.has_value()) {
    const std::string doc_key = schema::MemoryDocKey(project_id, doc_id);
    AGENTD_ASSIGN_OR_RETURN(std::optional<std::string> raw, GetRaw(db_.get(), {}, index, doc_key));
    old_doc.emplace();
    if (!raw.has_value() || !memory::DecodeDocEntry(*raw, &*old_doc)) {
      return CorruptIndex("doc entry (missing or unreadable)", doc_key);
    }
  }
  v1::MemoryRecord stored = record;
  if (old.has_value()) {
    *stored.mutable_create_time() = old->create_time();
  } else if (!stored.has_create_time()) {
    *stored.mutable_create_time() = stored.update_time();
  }
  Batch batch;
  batch.Put(Cf(ColumnFamily::kMemory), record_key, stored);
  AGENTD_RETURN_IF_ERROR(StageIndexChange(db_.get(), index, project_id, doc_id,
                                          old_doc.has_value() ? &*old_doc : nullptr, &text,
                                          &batch));
  AGENTD_RETURN_IF_ERROR(batch.Commit(db_.get(), options_.durability));
  return stored;
}

absl::StatusOr<v1::MemoryRecord> RocksDbStore::GetMemory(const std::string& project_id,
                                                         const std::string& name_space,
                                                         const std::string& key) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckMemoryName(name_space, key));
  const std::string record_key =
      schema::MemoryRecordKey(project_id, schema::MemoryDocId(name_space, key));
  AGENTD_ASSIGN_OR_RETURN(
      std::optional<v1::MemoryRecord> record,
      GetValue<v1::MemoryRecord>(db_.get(), {}, Cf(ColumnFamily::kMemory), "memory", record_key));
  if (!record.has_value()) return internal::MemoryNotFound(name_space, key);
  return *std::move(record);
}

absl::StatusOr<MemoryPage> RocksDbStore::ListMemories(const std::string& project_id,
                                                      const std::string& namespace_prefix,
                                                      int32_t page_size,
                                                      const std::string& page_token) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckMemoryPrefix(namespace_prefix));
  const size_t limit = internal::NormalizePageSize(page_size);
  const std::string prefix = schema::MemoryRecordPrefix(project_id, namespace_prefix);
  std::string start = prefix;
  if (!page_token.empty()) {
    // The token is the hex of the last doc id returned; the page starts right after it.
    AGENTD_ASSIGN_OR_RETURN(const std::string last, internal::DecodeHexToken(page_token));
    if (!schema::DecodeMemoryDocId(last).has_value()) {
      return absl::InvalidArgumentError("malformed page_token");
    }
    std::string after = schema::MemoryRecordKey(project_id, last);
    after.push_back('\0');
    start = std::max(start, after);
  }
  const PrefixIterator it(db_.get(), Cf(ColumnFamily::kMemory), prefix);
  MemoryPage page;
  const size_t project_prefix_size = schema::ProjectPrefix(project_id).size();
  std::string last_doc_id;
  for (it->Seek(start); it->Valid(); it->Next()) {
    if (page.records.size() == limit) {
      page.next_page_token = HexEncode(last_doc_id);
      break;
    }
    const absl::string_view doc_id = ToView(it->key()).substr(project_prefix_size);
    if (!schema::DecodeMemoryDocId(doc_id).has_value()) {
      return MalformedKey("memory", ToView(it->key()));
    }
    AGENTD_RETURN_IF_ERROR(
        ParseValue("memory", ToView(it->key()), it->value(), &page.records.emplace_back()));
    last_doc_id.assign(doc_id.data(), doc_id.size());
  }
  AGENTD_RETURN_IF_ERROR(FromRocks(it->status(), "list memories"));
  return page;
}

absl::StatusOr<std::vector<ScoredMemoryRecord>> RocksDbStore::SearchMemory(
    const std::string& project_id, const std::string& namespace_prefix, const std::string& query,
    int32_t top_k) {
  AGENTD_ASSIGN_OR_RETURN(const std::vector<std::string> terms,
                          internal::CheckSearch(project_id, namespace_prefix, query, top_k));
  std::vector<ScoredMemoryRecord> results;
  if (terms.empty()) return results;

  rocksdb::ManagedSnapshot snapshot(db_.get());
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.snapshot();
  rocksdb::ColumnFamilyHandle* index = Cf(ColumnFamily::kMemoryIndex);
  AGENTD_ASSIGN_OR_RETURN(const memory::IndexStats stats,
                          ReadStats(db_.get(), ro, index, project_id));
  if (stats.records == 0) return results;
  AGENTD_ASSIGN_OR_RETURN(const std::vector<memory::TermStats> term_stats,
                          ReadTermStats(db_.get(), ro, index, project_id, terms));
  const double avg_length =
      static_cast<double>(stats.total_length) / static_cast<double>(stats.records);
  std::vector<std::unique_ptr<RocksPostingCursor>> cursors;
  std::vector<memory::RankTerm> rank_terms;
  for (size_t i = 0; i < terms.size(); ++i) {
    if (term_stats[i].df == 0) continue;
    cursors.push_back(std::make_unique<RocksPostingCursor>(
        db_.get(), index, ro, schema::MemoryPostingPrefix(project_id, terms[i]), namespace_prefix));
    const double idf = memory::Idf(stats.records, term_stats[i].df);
    rank_terms.push_back(
        {terms[i], idf, memory::ScoreBound(idf, term_stats[i], avg_length), cursors.back().get()});
  }
  RocksDocLookup docs(db_.get(), index, ro, project_id);
  AGENTD_ASSIGN_OR_RETURN(
      const std::vector<memory::RankedDoc> ranked,
      memory::RankTopK(std::move(rank_terms), avg_length, static_cast<size_t>(top_k), &docs));

  results.reserve(ranked.size());
  for (const memory::RankedDoc& doc : ranked) {
    const std::string key = schema::MemoryRecordKey(project_id, doc.doc_id);
    AGENTD_ASSIGN_OR_RETURN(
        std::optional<v1::MemoryRecord> record,
        GetValue<v1::MemoryRecord>(db_.get(), ro, Cf(ColumnFamily::kMemory), "memory", key));
    if (!record.has_value()) return CorruptIndex("posting of a missing record", key);
    results.push_back({*std::move(record), doc.score});
  }
  return results;
}

absl::Status RocksDbStore::DeleteMemory(const std::string& project_id,
                                        const std::string& name_space, const std::string& key) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckMemoryName(name_space, key));
  const std::string doc_id = schema::MemoryDocId(name_space, key);
  const std::string record_key = schema::MemoryRecordKey(project_id, doc_id);
  const std::string doc_key = schema::MemoryDocKey(project_id, doc_id);
  rocksdb::ColumnFamilyHandle* index = Cf(ColumnFamily::kMemoryIndex);

  absl::MutexLock lock(&StripeFor(project_id, kMemoryLockId));
  AGENTD_ASSIGN_OR_RETURN(
      const bool exists, internal::KeyExists(db_.get(), {}, Cf(ColumnFamily::kMemory), record_key));
  if (!exists) return internal::MemoryNotFound(name_space, key);
  AGENTD_ASSIGN_OR_RETURN(std::optional<std::string> raw, GetRaw(db_.get(), {}, index, doc_key));
  memory::DocEntry old_doc;
  if (!raw.has_value() || !memory::DecodeDocEntry(*raw, &old_doc)) {
    return CorruptIndex("doc entry (missing or unreadable)", doc_key);
  }
  Batch batch;
  batch.Delete(Cf(ColumnFamily::kMemory), record_key);
  AGENTD_RETURN_IF_ERROR(
      StageIndexChange(db_.get(), index, project_id, doc_id, &old_doc, nullptr, &batch));
  return batch.Commit(db_.get(), options_.durability);
}

}  // namespace agentd::store
