// PostgresStore: long-term memory. Records in agentd_memory, one posting row per (term, record)
// in agentd_memory_postings and the project's record count and total length in
// agentd_memory_stats. The tokenizer and the BM25 functions are store/memory_index.h's, so both
// stores rank alike.
//
// Writes lock the project's stats row (SELECT … FOR UPDATE) from the first read to the commit,
// so concurrent writers of one project — on any replica — keep the counters exact. Searches read
// stats, document frequencies, postings and records in one REPEATABLE READ snapshot and score in
// C++: the cost is the number of postings of the query terms under the namespace prefix.
#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "store/memory_index.h"
#include "store/pg_conn.h"
#include "store/pg_store.h"
#include "store/pg_util.h"

namespace agentd::store {
namespace {

using pg::Bytes;
using pg::CheckId;
using pg::Conn;
using pg::Int;
using pg::Param;
using pg::ParseColumn;
using pg::Result;

constexpr size_t kPostingsPerInsert = 500;

/// Appends "doc_id >= $n [AND doc_id < $n+1]" for the doc ids under `prefix`.
void AppendPrefixRange(const std::string& prefix, const char* column, std::string* sql,
                       std::vector<Param>* params) {
  params->push_back(Bytes(prefix));
  absl::StrAppend(sql, " AND ", column, " >= $", params->size());
  const std::string end = schema::PrefixSuccessor(prefix);
  if (!end.empty()) {
    params->push_back(Bytes(end));
    absl::StrAppend(sql, " AND ", column, " < $", params->size());
  }
}

/// Locks the project's memory (its stats row, created when missing) and returns
/// (records, total_length).
absl::StatusOr<std::pair<int64_t, int64_t>> LockStats(Conn& c, const std::string& project_id) {
  AGENTD_RETURN_IF_ERROR(c.Exec("create memory stats",
                                "INSERT INTO agentd_memory_stats (project_id, records, "
                                "total_length) VALUES ($1, 0, 0) ON CONFLICT DO NOTHING",
                                {Bytes(project_id)})
                             .status());
  AGENTD_ASSIGN_OR_RETURN(Result r, c.Exec("lock memory stats",
                                           "SELECT records, total_length FROM agentd_memory_stats "
                                           "WHERE project_id = $1 FOR UPDATE",
                                           {Bytes(project_id)}));
  if (r.rows() == 0) return absl::InternalError("memory stats row vanished");
  return std::make_pair(r.Int(0, 0), r.Int(0, 1));
}

/// Removes a record's postings and its share of the stats. Caller holds the stats lock.
absl::Status Unindex(Conn& c, const std::string& project_id, const std::string& doc_id,
                     int64_t doc_length) {
  AGENTD_RETURN_IF_ERROR(c.Exec("remove postings",
                                "DELETE FROM agentd_memory_postings WHERE project_id = $1 AND "
                                "doc_id = $2",
                                {Bytes(project_id), Bytes(doc_id)})
                             .status());
  return c
      .Exec("update memory stats",
            "UPDATE agentd_memory_stats SET records = records - 1, total_length = total_length - "
            "$2 WHERE project_id = $1",
            {Bytes(project_id), Int(doc_length)})
      .status();
}

}  // namespace

absl::StatusOr<v1::MemoryRecord> PostgresStore::PutMemory(const std::string& project_id,
                                                          const v1::MemoryRecord& record) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckMemoryName(record.namespace_(), record.key()));
  const std::string doc_id = schema::MemoryDocId(record.namespace_(), record.key());
  const memory::AnalyzedText text = memory::Analyze(record.text());
  v1::MemoryRecord stored;
  AGENTD_RETURN_IF_ERROR(pool_->Transaction([&](Conn& c) -> absl::Status {
    AGENTD_RETURN_IF_ERROR(LockStats(c, project_id).status());
    AGENTD_ASSIGN_OR_RETURN(Result old, c.Exec("get memory",
                                               "SELECT record, doc_length FROM agentd_memory "
                                               "WHERE project_id = $1 AND doc_id = $2",
                                               {Bytes(project_id), Bytes(doc_id)}));
    stored = record;
    if (old.rows() > 0) {
      v1::MemoryRecord previous;
      AGENTD_RETURN_IF_ERROR(ParseColumn("memory", doc_id, old.Bytes(0, 0), &previous));
      *stored.mutable_create_time() = previous.create_time();
      AGENTD_RETURN_IF_ERROR(Unindex(c, project_id, doc_id, old.Int(0, 1)));
    } else if (!stored.has_create_time()) {
      *stored.mutable_create_time() = stored.update_time();
    }
    AGENTD_RETURN_IF_ERROR(
        c.Exec("put memory",
               "INSERT INTO agentd_memory (project_id, doc_id, doc_length, record) VALUES ($1, "
               "$2, $3, $4) ON CONFLICT (project_id, doc_id) DO UPDATE SET doc_length = "
               "excluded.doc_length, record = excluded.record",
               {Bytes(project_id), Bytes(doc_id), Int(text.length), pg::Proto(stored)})
            .status());
    for (size_t first = 0; first < text.terms.size(); first += kPostingsPerInsert) {
      const size_t end = std::min(text.terms.size(), first + kPostingsPerInsert);
      std::vector<Param> params = {Bytes(project_id), Bytes(doc_id), Int(text.length)};
      std::string sql =
          "INSERT INTO agentd_memory_postings (project_id, term, doc_id, tf, doc_length) VALUES ";
      for (size_t i = first; i < end; ++i) {
        params.push_back(Bytes(text.terms[i].first));
        params.push_back(Int(text.terms[i].second));
        absl::StrAppend(&sql, i == first ? "" : ", ", "($1, $", params.size() - 1, ", $2, $",
                        params.size(), ", $3)");
      }
      AGENTD_RETURN_IF_ERROR(c.Exec("index memory", sql, params).status());
    }
    return c
        .Exec("update memory stats",
              "UPDATE agentd_memory_stats SET records = records + 1, total_length = total_length "
              "+ $2 WHERE project_id = $1",
              {Bytes(project_id), Int(text.length)})
        .status();
  }));
  return stored;
}

absl::StatusOr<v1::MemoryRecord> PostgresStore::GetMemory(const std::string& project_id,
                                                          const std::string& name_space,
                                                          const std::string& key) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckMemoryName(name_space, key));
  const std::string doc_id = schema::MemoryDocId(name_space, key);
  AGENTD_ASSIGN_OR_RETURN(Result r, pool_->Exec("get memory",
                                                "SELECT record FROM agentd_memory WHERE "
                                                "project_id = $1 AND doc_id = $2",
                                                {Bytes(project_id), Bytes(doc_id)}));
  if (r.rows() == 0) return internal::MemoryNotFound(name_space, key);
  v1::MemoryRecord record;
  AGENTD_RETURN_IF_ERROR(ParseColumn("memory", doc_id, r.Bytes(0, 0), &record));
  return record;
}

absl::StatusOr<MemoryPage> PostgresStore::ListMemories(const std::string& project_id,
                                                       const std::string& namespace_prefix,
                                                       int32_t page_size,
                                                       const std::string& page_token) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckMemoryPrefix(namespace_prefix));
  const size_t limit = pg::NormalizePageSize(page_size);
  std::vector<Param> params = {Bytes(project_id), Int(static_cast<int64_t>(limit) + 1)};
  std::string sql = "SELECT doc_id, record FROM agentd_memory WHERE project_id = $1";
  AppendPrefixRange(namespace_prefix, "doc_id", &sql, &params);
  if (!page_token.empty()) {
    // The token is the hex of the last doc id returned; the page starts right after it.
    AGENTD_ASSIGN_OR_RETURN(const std::string last, pg::DecodeHexToken(page_token));
    if (!schema::DecodeMemoryDocId(last).has_value()) {
      return absl::InvalidArgumentError("malformed page_token");
    }
    params.push_back(Bytes(last));
    absl::StrAppend(&sql, " AND doc_id > $", params.size());
  }
  sql += " ORDER BY doc_id LIMIT $2";
  AGENTD_ASSIGN_OR_RETURN(Result r, pool_->Exec("list memories", sql, params));
  MemoryPage page;
  for (int i = 0; i < r.rows(); ++i) {
    if (page.records.size() == limit) {
      page.next_page_token = HexEncode(r.Bytes(i - 1, 0));
      break;
    }
    AGENTD_RETURN_IF_ERROR(
        ParseColumn("memory", r.Bytes(i, 0), r.Bytes(i, 1), &page.records.emplace_back()));
  }
  return page;
}

absl::StatusOr<std::vector<ScoredMemoryRecord>> PostgresStore::SearchMemory(
    const std::string& project_id, const std::string& namespace_prefix, const std::string& query,
    int32_t top_k) {
  AGENTD_ASSIGN_OR_RETURN(const std::vector<std::string> terms,
                          internal::CheckSearch(project_id, namespace_prefix, query, top_k));
  std::vector<ScoredMemoryRecord> results;
  if (terms.empty()) return results;

  AGENTD_RETURN_IF_ERROR(
      pool_->Transaction(pg::Pool::Mode::kReadOnlySnapshot, [&](Conn& c) -> absl::Status {
        results.clear();
        AGENTD_ASSIGN_OR_RETURN(Result stats, c.Exec("read memory stats",
                                                     "SELECT records, total_length FROM "
                                                     "agentd_memory_stats WHERE project_id = $1",
                                                     {Bytes(project_id)}));
        if (stats.rows() == 0 || stats.Int(0, 0) <= 0) return absl::OkStatus();
        const int64_t records = stats.Int(0, 0);
        const double avg_length =
            static_cast<double>(stats.Int(0, 1)) / static_cast<double>(records);

        // "term IN ($2, $3, …)": placeholders only, the terms are parameters.
        std::vector<Param> term_params = {Bytes(project_id)};
        std::string in = "(";
        for (const std::string& t : terms) {
          term_params.push_back(Bytes(t));
          absl::StrAppend(&in, term_params.size() > 2 ? ", $" : "$", term_params.size());
        }
        in += ")";
        AGENTD_ASSIGN_OR_RETURN(Result df_r,
                                c.Exec("read document frequencies",
                                       "SELECT term, count(*) FROM agentd_memory_postings WHERE "
                                       "project_id = $1 AND term IN " +
                                           in + " GROUP BY term",
                                       term_params));
        std::map<std::string, double, std::less<>> idf;  // N, df: the project's
        for (int i = 0; i < df_r.rows(); ++i) {
          idf[std::string(df_r.Bytes(i, 0))] =
              memory::Idf(static_cast<uint64_t>(records), static_cast<uint64_t>(df_r.Int(i, 1)));
        }
        if (idf.empty()) return absl::OkStatus();

        std::vector<Param> params = term_params;
        std::string sql =
            "SELECT doc_id, term, tf, doc_length FROM agentd_memory_postings WHERE project_id = "
            "$1 AND term IN " +
            in;
        AppendPrefixRange(namespace_prefix, "doc_id", &sql, &params);
        AGENTD_ASSIGN_OR_RETURN(Result postings, c.Exec("read postings", sql, params));
        // Contributions per doc, by term index, then summed in term order: equal records score
        // exactly equal.
        std::map<std::string, std::vector<double>> contributions;
        for (int i = 0; i < postings.rows(); ++i) {
          const absl::string_view term = postings.Bytes(i, 1);
          const size_t t = static_cast<size_t>(std::lower_bound(terms.begin(), terms.end(), term) -
                                               terms.begin());
          const auto term_idf = idf.find(term);
          if (t >= terms.size() || term_idf == idf.end()) continue;
          std::vector<double>& c_doc = contributions[std::string(postings.Bytes(i, 0))];
          c_doc.resize(terms.size(), 0.0);
          c_doc[t] = term_idf->second *
                     memory::TermWeight(static_cast<uint32_t>(postings.Int(i, 2)),
                                        static_cast<uint32_t>(postings.Int(i, 3)), avg_length);
        }
        std::vector<std::pair<std::string, double>> ranked;
        ranked.reserve(contributions.size());
        for (const auto& [doc_id, parts] : contributions) {
          double score = 0;
          for (const double p : parts) score += p;
          if (score > 0) ranked.emplace_back(doc_id, score);
        }
        const size_t k = std::min(ranked.size(), static_cast<size_t>(top_k));
        std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(k),
                          ranked.end(), [](const auto& a, const auto& b) {
                            return a.second != b.second ? a.second > b.second : a.first < b.first;
                          });
        ranked.resize(k);
        if (ranked.empty()) return absl::OkStatus();

        std::vector<Param> doc_params = {Bytes(project_id)};
        std::string docs_in = "(";
        for (const auto& [doc_id, score] : ranked) {
          doc_params.push_back(Bytes(doc_id));
          absl::StrAppend(&docs_in, doc_params.size() > 2 ? ", $" : "$", doc_params.size());
        }
        docs_in += ")";
        AGENTD_ASSIGN_OR_RETURN(
            Result recs, c.Exec("read memories",
                                "SELECT doc_id, record FROM agentd_memory WHERE project_id = $1 "
                                "AND doc_id IN " +
                                    docs_in,
                                doc_params));
        std::map<std::string, v1::MemoryRecord, std::less<>> by_doc;
        for (int i = 0; i < recs.rows(); ++i) {
          AGENTD_RETURN_IF_ERROR(ParseColumn("memory", recs.Bytes(i, 0), recs.Bytes(i, 1),
                                             &by_doc[std::string(recs.Bytes(i, 0))]));
        }
        for (const auto& [doc_id, score] : ranked) {
          auto it = by_doc.find(doc_id);
          if (it == by_doc.end()) {
            return absl::DataLossError(absl::StrCat(
                "corrupt memory index: a posting names the missing record ", HexEncode(doc_id)));
          }
          results.push_back({std::move(it->second), score});
        }
        return absl::OkStatus();
      }));
  return results;
}

absl::Status PostgresStore::DeleteMemory(const std::string& project_id,
                                         const std::string& name_space, const std::string& key) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  AGENTD_RETURN_IF_ERROR(internal::CheckMemoryName(name_space, key));
  const std::string doc_id = schema::MemoryDocId(name_space, key);
  return pool_->Transaction([&](Conn& c) -> absl::Status {
    AGENTD_RETURN_IF_ERROR(LockStats(c, project_id).status());
    AGENTD_ASSIGN_OR_RETURN(Result old, c.Exec("get memory",
                                               "SELECT doc_length FROM agentd_memory WHERE "
                                               "project_id = $1 AND doc_id = $2",
                                               {Bytes(project_id), Bytes(doc_id)}));
    if (old.rows() == 0) return internal::MemoryNotFound(name_space, key);
    AGENTD_RETURN_IF_ERROR(c.Exec("delete memory",
                                  "DELETE FROM agentd_memory WHERE project_id = $1 AND doc_id = $2",
                                  {Bytes(project_id), Bytes(doc_id)})
                               .status());
    return Unindex(c, project_id, doc_id, old.Int(0, 0));
  });
}

}  // namespace agentd::store
