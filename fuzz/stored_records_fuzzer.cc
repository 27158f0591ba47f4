// Fuzzes the decoding of stored records (store/schema.h, store/memory_index.h and the protobuf
// values of every column family): what agentd reads back from a data dir that may be corrupt,
// truncated or written by another version must be rejected cleanly, never crash.
//
// Input: byte 0 picks the value type; all of the input is also tried as every kind of key and
// as every memory_index value encoding.
// Invariants: a key that decodes re-encodes to the same bytes; a varint value that decodes
// re-encodes to an equal value; a protobuf value that parses survives serialize + parse unchanged;
// DocEntryLookup agrees with DecodeDocEntry.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "agentd/storage/records.pb.h"
#include "agentd/v1/agent.pb.h"
#include "agentd/v1/common.pb.h"
#include "agentd/v1/memory.pb.h"
#include "agentd/v1/project.pb.h"
#include "agentd/v1/session.pb.h"
#include "fuzz_util.h"
#include "google/protobuf/message.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "store/memory_index.h"
#include "store/schema.h"

namespace {

namespace schema = agentd::store::schema;
namespace memory = agentd::store::memory;
namespace v1 = agentd::v1;
namespace storage = agentd::storage;

void CheckKeys(absl::string_view key) {
  if (auto p = schema::DecodeAgentKey(key)) {
    FUZZ_CHECK(schema::AgentKey(p->project_id, p->agent_id, p->version) == key, "agent key");
  }
  if (auto p = schema::DecodeSessionKey(key)) {
    FUZZ_CHECK(schema::SessionKey(p->project_id, p->session_id) == key, "session key");
  }
  if (auto p = schema::DecodeEventKey(key)) {
    FUZZ_CHECK(schema::EventKey(p->project_id, p->session_id, p->seq) == key, "event key");
  }
  if (auto p = schema::DecodeIdempotencyKey(key)) {
    FUZZ_CHECK(schema::IdempotencyKey(p->project_id, p->session_id, p->key) == key,
               "idempotency key");
  }
  if (auto id = schema::DecodeProjectKey(key)) {
    FUZZ_CHECK(schema::ProjectKey(*id) == key, "project key");
  }
  if (auto id = schema::DecodeApiKeyKey(key)) {
    FUZZ_CHECK(schema::ApiKeyKey(*id) == key, "api key key");
  }
  if (auto p = schema::DecodeUsageKey(key)) {
    FUZZ_CHECK(schema::IsValidUsageDimension(p->dimension) && p->day >= 0, "usage key parts");
    FUZZ_CHECK(schema::UsageKey(p->project_id, p->dimension, p->group, p->day) == key, "usage key");
  }
  if (auto p = schema::DecodeAuditKey(key)) {
    FUZZ_CHECK(schema::AuditKey(p->project_id, p->micros, p->audit_id) == key, "audit key");
  }
  if (auto p = schema::DecodeStateKey(key)) {
    FUZZ_CHECK(schema::IsValidStateKey(p->key), "state key parts");
    FUZZ_CHECK(schema::StateKey(p->project_id, p->session_id, p->key) == key, "state key");
  }
  if (auto p = schema::DecodeExpiryKey(key)) {
    FUZZ_CHECK(schema::ExpiryKey(p->kind, p->micros, p->project_id, p->session_id, p->tail) == key,
               "expiry key");
  }
  if (auto p = schema::DecodeMemoryDocId(key)) {
    FUZZ_CHECK(schema::MemoryDocId(p->name_space, p->key) == key, "memory doc id");
  }
  const std::string next = schema::PrefixSuccessor(key);
  FUZZ_CHECK(next.empty() || absl::string_view(next) > key, "PrefixSuccessor is not greater");
}

void CheckIndexValues(absl::string_view value) {
  memory::Posting posting;
  if (memory::DecodePosting(value, &posting)) {
    memory::Posting again;
    FUZZ_CHECK(memory::DecodePosting(memory::EncodePosting(posting), &again) &&
                   again.tf == posting.tf && again.doc_length == posting.doc_length,
               "posting round trip");
  }
  memory::IndexStats stats;
  if (memory::DecodeStats(value, &stats)) {
    memory::IndexStats again;
    FUZZ_CHECK(memory::DecodeStats(memory::EncodeStats(stats), &again) &&
                   again.records == stats.records && again.total_length == stats.total_length,
               "stats round trip");
  }
  memory::TermStats term;
  if (memory::DecodeTermStats(value, &term)) {
    memory::TermStats again;
    FUZZ_CHECK(memory::DecodeTermStats(memory::EncodeTermStats(term), &again) &&
                   again.df == term.df && again.max_tf == term.max_tf &&
                   again.min_length == term.min_length,
               "term stats round trip");
  }
  memory::DocEntry entry;
  const bool decoded = memory::DecodeDocEntry(value, &entry);
  if (decoded) {
    memory::AnalyzedText text;
    text.length = entry.length;
    text.terms = entry.terms;
    memory::DocEntry again;
    FUZZ_CHECK(memory::DecodeDocEntry(memory::EncodeDocEntry(text), &again) &&
                   again.length == entry.length && again.terms == entry.terms,
               "doc entry round trip");
    for (const auto& [t, tf] : entry.terms) {
      uint32_t length = 0, found_tf = 0;
      FUZZ_CHECK(memory::DocEntryLookup(value, t, &length, &found_tf), "lookup of a decoded entry");
      FUZZ_CHECK(length == entry.length && found_tf == tf, "lookup disagrees with decode");
    }
  }
  uint32_t length = 0, tf = 0;
  const bool looked_up = memory::DocEntryLookup(value, "agentd", &length, &tf);
  if (decoded) FUZZ_CHECK(looked_up, "lookup fails on an entry that decodes");
}

// Deterministic (map entries sorted) so that equal messages give equal bytes. Bytes, not
// MessageDifferencer: a stored double may be NaN, which never compares equal to itself.
std::string DeterministicBytes(const google::protobuf::Message& m) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

std::unique_ptr<google::protobuf::Message> ValueMessage(uint8_t selector) {
  switch (selector % 13) {
    case 0: return std::make_unique<storage::SessionRecord>();
    case 1: return std::make_unique<storage::AgentHead>();
    case 2: return std::make_unique<v1::Agent>();
    case 3: return std::make_unique<v1::Event>();
    case 4: return std::make_unique<storage::IdempotencyRecord>();
    case 5: return std::make_unique<v1::TurnResult>();  // IdempotencyRecord.result
    case 6: return std::make_unique<storage::FormatInfo>();
    case 7: return std::make_unique<storage::ApiKeyRecord>();
    case 8: return std::make_unique<v1::StateEntry>();
    case 9: return std::make_unique<v1::MemoryRecord>();
    case 10: return std::make_unique<v1::Project>();
    case 11: return std::make_unique<v1::Usage>();
    default: return std::make_unique<v1::AuditEvent>();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view all(reinterpret_cast<const char*>(data), size);
  CheckKeys(all);
  CheckIndexValues(all);
  (void)memory::QueryTerms(all);
  (void)memory::Analyze(all);
  if (size == 0) return 0;

  const std::unique_ptr<google::protobuf::Message> value = ValueMessage(data[0]);
  if (!value->ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
  const std::string bytes = value->SerializeAsString();
  const std::unique_ptr<google::protobuf::Message> again(value->New());
  FUZZ_CHECK(again->ParseFromString(bytes), "a re-serialized record does not parse");
  FUZZ_CHECK(DeterministicBytes(*value) == DeterministicBytes(*again),
             "a record changed through serialize + parse");
  return 0;
}
