// The whole on-disk schema of the RocksDB store: column families, key layout and the format
// version. docs/storage.md explains it with diagrams; keep the two in step.
//
// Key components:
//   lp(x)   = 1 byte length, then the bytes of x (ids are 1..kMaxIdLength = 128 bytes). Because the
//             length comes first, no project's (or session's, or agent's) key prefix is a prefix
//             of another's: "p" → 01 70, "pp" → 02 70 70; "s1" → 02 73 31, "s10" → 03 73 31 30.
//   be64(n) = n as 8 bytes big-endian, so that byte order is numeric order (seq 2 < 10 < 256).
//
// Column families and their keys (values are serialized protobuf messages):
//   meta         "format"                                 → storage::FormatInfo
//   agents       lp(project) lp(agent_id) be64(version)   → storage::AgentHead (version 0)
//                                                           | v1::Agent (version >= 1)
//   sessions     lp(project) lp(session_id)               → storage::SessionRecord
//   events       lp(project) lp(session_id) be64(seq)     → v1::Event
//   idempotency  lp(project) lp(session_id) key           → storage::IdempotencyRecord
//   state        lp(project) lp(session_id) key           → v1::StateEntry (see "Tool state")
//   memory       lp(project) namespace 00 key             → v1::MemoryRecord ("Long-term memory")
//   projects     lp(project)                              → v1::Project
//   api_keys     lp(key_id)                               → storage::ApiKeyRecord (key ids are
//                                                           global: no project prefix)
//   usage        lp(project) dim [lp(group)] be32(day)    → v1::Usage, written only by Merge
//                                                           (UsageAddOperator, rocksdb_tenancy.cc)
//   audit        lp(project) be64(micros) audit_id        → v1::AuditEvent
//   memory_index lp(project) kind ...                     → varints ("Long-term memory")
//   expiry       kind be64(micros) lp(project) lp(session) [key] → "" (see "the expiry index")
//
//   dim    = one byte, the UsageDimension value (1 day, 2 agent, 3 session, 4 model); kDay keys
//            have no lp(group). A project's counters of one dimension are the prefix
//            lp(project) dim; one group's days are lp(project) dim lp(group).
//   be32(day) = the UTC day number (days since 1970-01-01, >= 0) as 4 bytes big-endian.
//   micros = the record's time in unix microseconds, negatives clamped to 0, so a project's audit
//            records sort by time; audit_id (1..kMaxIdLength bytes) makes the key unique.
//
// Ordering: keys order ids by (length, bytes) ("shortlex"), so lists ordered "by id" are in
// that order: "s2" < "s10" < "sa1".
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/ids.h"
#include "store/context_store.h"

namespace agentd::store::schema {

/// The on-disk format this build writes and understands. Bump it only with a migration; a
/// binary refuses to open a data dir whose format is newer than this.
inline constexpr int32_t kFormatVersion = 1;

/// Key of the FormatInfo record in the meta column family.
inline constexpr absl::string_view kFormatKey = "format";

/// Meta key whose FormatInfo (version kExpiryIndexVersion) says the expiry index covers every
/// session and idempotency record (written once the index was built for an older data dir).
inline constexpr absl::string_view kExpiryIndexKey = "expiry_index";
inline constexpr int32_t kExpiryIndexVersion = 1;

/// Column families. PERSISTED: the values index kColumnFamilies and the names are on disk.
/// Never reorder or renumber; add new families at the end.
enum class ColumnFamily : uint8_t {
  kDefault = 0,  // required by RocksDB; unused by agentd
  kMeta = 1,
  kAgents = 2,
  kSessions = 3,
  kEvents = 4,
  kIdempotency = 5,
  kState = 6,
  kMemory = 7,
  kProjects = 8,
  kApiKeys = 9,
  kUsage = 10,
  kAudit = 11,
  kMemoryIndex = 12,  // long-term memory: BM25 inverted index and its statistics
  kExpiry = 13,       // expiry index: sessions by expire_time, idempotency records by age
};

struct ColumnFamilyInfo {
  ColumnFamily id;
  const char* name;  // the RocksDB column family name (persisted)
};

/// Registry: kColumnFamilies[static_cast<size_t>(cf)].id == cf for every family.
inline constexpr std::array<ColumnFamilyInfo, 14> kColumnFamilies = {{
    {ColumnFamily::kDefault, "default"},
    {ColumnFamily::kMeta, "meta"},
    {ColumnFamily::kAgents, "agents"},
    {ColumnFamily::kSessions, "sessions"},
    {ColumnFamily::kEvents, "events"},
    {ColumnFamily::kIdempotency, "idempotency"},
    {ColumnFamily::kState, "state"},
    {ColumnFamily::kMemory, "memory"},
    {ColumnFamily::kProjects, "projects"},
    {ColumnFamily::kApiKeys, "api_keys"},
    {ColumnFamily::kUsage, "usage"},
    {ColumnFamily::kAudit, "audit"},
    {ColumnFamily::kMemoryIndex, "memory_index"},
    {ColumnFamily::kExpiry, "expiry"},
}};

/// The name of the usage family's merge operator. PERSISTED (RocksDB records it in the OPTIONS
/// file): a change of its semantics needs a new name and a format bump.
inline constexpr const char* kUsageMergeOperatorName = "agentd.UsageAdd";

inline constexpr size_t Index(ColumnFamily cf) { return static_cast<size_t>(cf); }
inline constexpr const char* Name(ColumnFamily cf) { return kColumnFamilies[Index(cf)].name; }

/// The version component of an agent's head key.
inline constexpr uint64_t kAgentHeadVersion = 0;

// ---- Key components --------------------------------------------------------------------------

/// True when `id` can be a length-prefixed key component (1..kMaxIdLength bytes).
inline bool IsValidKeyComponent(absl::string_view id) {
  return !id.empty() && id.size() <= kMaxIdLength;
}

/// Appends lp(id). Precondition: IsValidKeyComponent(id) (the store checks it first).
inline void AppendLengthPrefixed(std::string* out, absl::string_view id) {
  out->push_back(static_cast<char>(static_cast<uint8_t>(id.size())));
  out->append(id.data(), id.size());
}

inline void AppendBigEndian64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>(static_cast<uint8_t>(v >> shift)));
  }
}

inline void AppendBigEndian32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>(static_cast<uint8_t>(v >> shift)));
  }
}

/// Reads lp(x) from the front of `*in` and advances it. False (and `*in` unspecified) when the
/// length byte is missing, 0, larger than kMaxIdLength or larger than what remains.
inline bool ConsumeLengthPrefixed(absl::string_view* in, absl::string_view* out) {
  if (in->empty()) return false;
  const size_t n = static_cast<uint8_t>((*in)[0]);
  if (n == 0 || n > kMaxIdLength || in->size() < 1 + n) return false;
  *out = in->substr(1, n);
  in->remove_prefix(1 + n);
  return true;
}

/// Reads be64 from the front of `*in` and advances it. False when fewer than 8 bytes remain.
inline bool ConsumeBigEndian64(absl::string_view* in, uint64_t* out) {
  if (in->size() < 8) return false;
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>((*in)[i]);
  in->remove_prefix(8);
  *out = v;
  return true;
}

/// Reads be32 from the front of `*in` and advances it. False when fewer than 4 bytes remain.
inline bool ConsumeBigEndian32(absl::string_view* in, uint32_t* out) {
  if (in->size() < 4) return false;
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<uint8_t>((*in)[i]);
  in->remove_prefix(4);
  *out = v;
  return true;
}

/// True for the UsageDimension values that exist (a byte of the usage key).
inline bool IsValidUsageDimension(UsageDimension d) {
  switch (d) {
    case UsageDimension::kDay:
    case UsageDimension::kAgent:
    case UsageDimension::kSession:
    case UsageDimension::kModel:
      return true;
  }
  return false;
}

/// The time component of an audit key: unix microseconds (rounded down), negatives (and
/// InfinitePast) clamped to 0; InfiniteFuture becomes INT64_MAX.
inline uint64_t AuditKeyMicros(absl::Time t) {
  const int64_t micros = absl::ToUnixMicros(t);
  return micros < 0 ? 0 : static_cast<uint64_t>(micros);
}

/// The smallest key greater than every key that starts with `prefix`, for iterate_upper_bound
/// and DeleteRange. Empty when no such key exists (prefix empty or all 0xff).
inline std::string PrefixSuccessor(absl::string_view prefix) {
  std::string s(prefix);
  while (!s.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(s.back());
    if (last != 0xff) {
      ++last;
      return s;
    }
    s.pop_back();
  }
  return s;
}

// ---- Encoders (preconditions: every id passes IsValidKeyComponent) ---------------------------

/// lp(project): the prefix of all of a project's keys in agents, sessions, events, idempotency,
/// usage and audit (and the whole key in projects).
inline std::string ProjectPrefix(absl::string_view project_id) {
  std::string k;
  AppendLengthPrefixed(&k, project_id);
  return k;
}

/// lp(project) lp(id): a session key, and the prefix of a session's events / idempotency keys or
/// of an agent's version keys.
inline std::string EntityPrefix(absl::string_view project_id, absl::string_view id) {
  std::string k;
  k.reserve(2 + project_id.size() + id.size() + 8);
  AppendLengthPrefixed(&k, project_id);
  AppendLengthPrefixed(&k, id);
  return k;
}

inline std::string AgentKey(absl::string_view project_id, absl::string_view agent_id,
                            uint64_t version) {
  std::string k = EntityPrefix(project_id, agent_id);
  AppendBigEndian64(&k, version);
  return k;
}

inline std::string AgentHeadKey(absl::string_view project_id, absl::string_view agent_id) {
  return AgentKey(project_id, agent_id, kAgentHeadVersion);
}

inline std::string SessionKey(absl::string_view project_id, absl::string_view session_id) {
  return EntityPrefix(project_id, session_id);
}

inline std::string EventKey(absl::string_view project_id, absl::string_view session_id,
                            uint64_t seq) {
  std::string k = EntityPrefix(project_id, session_id);
  AppendBigEndian64(&k, seq);
  return k;
}

/// The idempotency key is the key's tail, stored as is (1..kMaxIdLength bytes).
inline std::string IdempotencyKey(absl::string_view project_id, absl::string_view session_id,
                                  absl::string_view key) {
  std::string k = EntityPrefix(project_id, session_id);
  k.append(key.data(), key.size());
  return k;
}

/// projects: lp(project).
inline std::string ProjectKey(absl::string_view project_id) { return ProjectPrefix(project_id); }

/// api_keys: lp(key_id).
inline std::string ApiKeyKey(absl::string_view key_id) {
  std::string k;
  AppendLengthPrefixed(&k, key_id);
  return k;
}

/// lp(project) dim: the prefix of a project's usage counters of one dimension.
inline std::string UsagePrefix(absl::string_view project_id, UsageDimension dimension) {
  std::string k = ProjectPrefix(project_id);
  k.push_back(static_cast<char>(static_cast<uint8_t>(dimension)));
  return k;
}

/// lp(project) dim lp(group): the prefix of one group's days (dimension != kDay).
inline std::string UsageGroupPrefix(absl::string_view project_id, UsageDimension dimension,
                                    absl::string_view group) {
  std::string k = UsagePrefix(project_id, dimension);
  AppendLengthPrefixed(&k, group);
  return k;
}

/// A usage counter key. Preconditions: IsValidUsageDimension(dimension), day >= 0, and group is
/// empty for kDay and a valid key component otherwise.
inline std::string UsageKey(absl::string_view project_id, UsageDimension dimension,
                            absl::string_view group, int32_t day) {
  std::string k = dimension == UsageDimension::kDay
                      ? UsagePrefix(project_id, dimension)
                      : UsageGroupPrefix(project_id, dimension, group);
  AppendBigEndian32(&k, static_cast<uint32_t>(day));
  return k;
}

/// lp(project) be64(micros): where a project's audit records at or after `micros` start.
inline std::string AuditTimeKey(absl::string_view project_id, uint64_t micros) {
  std::string k = ProjectPrefix(project_id);
  AppendBigEndian64(&k, micros);
  return k;
}

/// An audit record key. Precondition: audit_id is a valid key component.
inline std::string AuditKey(absl::string_view project_id, uint64_t micros,
                            absl::string_view audit_id) {
  std::string k = AuditTimeKey(project_id, micros);
  k.append(audit_id.data(), audit_id.size());
  return k;
}

// ---- Decoders: nullopt for any malformed key, never a crash ----------------------------------
// The string_views in the results point into the decoded key: keep it alive.

struct AgentKeyParts {
  absl::string_view project_id;
  absl::string_view agent_id;
  uint64_t version = 0;
};

struct SessionKeyParts {
  absl::string_view project_id;
  absl::string_view session_id;
};

struct EventKeyParts {
  absl::string_view project_id;
  absl::string_view session_id;
  uint64_t seq = 0;
};

struct IdempotencyKeyParts {
  absl::string_view project_id;
  absl::string_view session_id;
  absl::string_view key;
};

struct UsageKeyParts {
  absl::string_view project_id;
  UsageDimension dimension = UsageDimension::kDay;
  absl::string_view group;  // empty for kDay
  int32_t day = 0;
};

struct AuditKeyParts {
  absl::string_view project_id;
  uint64_t micros = 0;
  absl::string_view audit_id;
};

inline std::optional<AgentKeyParts> DecodeAgentKey(absl::string_view key) {
  AgentKeyParts p;
  if (!ConsumeLengthPrefixed(&key, &p.project_id) || !ConsumeLengthPrefixed(&key, &p.agent_id) ||
      !ConsumeBigEndian64(&key, &p.version) || !key.empty()) {
    return std::nullopt;
  }
  return p;
}

inline std::optional<SessionKeyParts> DecodeSessionKey(absl::string_view key) {
  SessionKeyParts p;
  if (!ConsumeLengthPrefixed(&key, &p.project_id) || !ConsumeLengthPrefixed(&key, &p.session_id) ||
      !key.empty()) {
    return std::nullopt;
  }
  return p;
}

inline std::optional<EventKeyParts> DecodeEventKey(absl::string_view key) {
  EventKeyParts p;
  if (!ConsumeLengthPrefixed(&key, &p.project_id) || !ConsumeLengthPrefixed(&key, &p.session_id) ||
      !ConsumeBigEndian64(&key, &p.seq) || !key.empty()) {
    return std::nullopt;
  }
  return p;
}

inline std::optional<IdempotencyKeyParts> DecodeIdempotencyKey(absl::string_view key) {
  IdempotencyKeyParts p;
  if (!ConsumeLengthPrefixed(&key, &p.project_id) || !ConsumeLengthPrefixed(&key, &p.session_id) ||
      !IsValidKeyComponent(key)) {
    return std::nullopt;
  }
  p.key = key;
  return p;
}

/// The project id of a projects key, or of an api_keys key's key id (both are one lp(id)).
inline std::optional<absl::string_view> DecodeSingleIdKey(absl::string_view key) {
  absl::string_view id;
  if (!ConsumeLengthPrefixed(&key, &id) || !key.empty()) return std::nullopt;
  return id;
}

inline std::optional<absl::string_view> DecodeProjectKey(absl::string_view key) {
  return DecodeSingleIdKey(key);
}

inline std::optional<absl::string_view> DecodeApiKeyKey(absl::string_view key) {
  return DecodeSingleIdKey(key);
}

/// Rejects an unknown dimension byte, a group on a kDay key, a missing group on another
/// dimension, and a day >= 2^31 (days are written from non-negative int32 values).
inline std::optional<UsageKeyParts> DecodeUsageKey(absl::string_view key) {
  UsageKeyParts p;
  if (!ConsumeLengthPrefixed(&key, &p.project_id) || key.empty()) return std::nullopt;
  p.dimension = static_cast<UsageDimension>(static_cast<uint8_t>(key[0]));
  key.remove_prefix(1);
  if (!IsValidUsageDimension(p.dimension)) return std::nullopt;
  if (p.dimension != UsageDimension::kDay && !ConsumeLengthPrefixed(&key, &p.group)) {
    return std::nullopt;
  }
  uint32_t day = 0;
  if (!ConsumeBigEndian32(&key, &day) || !key.empty() || day > 0x7fffffffu) return std::nullopt;
  p.day = static_cast<int32_t>(day);
  return p;
}

inline std::optional<AuditKeyParts> DecodeAuditKey(absl::string_view key) {
  AuditKeyParts p;
  if (!ConsumeLengthPrefixed(&key, &p.project_id) || !ConsumeBigEndian64(&key, &p.micros) ||
      !IsValidKeyComponent(key)) {
    return std::nullopt;
  }
  p.audit_id = key;
  return p;
}

// ---- Tool state and the expiry index (rocksdb_state.cc, rocksdb_retention.cc) ----------
//   state   lp(project) lp(session_id) key                → v1::StateEntry
//           key = the state key as is (1..kMaxStateKeyBytes printable ASCII bytes); a session's
//           state is the prefix lp(project) lp(session_id), ordered by key bytes.
//   expiry  kind be64(micros) lp(project) lp(session_id) [key] → "" (an index: the records it
//           points to hold the truth; an entry whose record is gone or differs is dropped)
//           kind 1 (kSession): micros = the session's expire_time; no key.
//           kind 2 (kIdempotency): micros = the idempotency record's create_time; key = the
//           idempotency key. Both sort by time, so a sweep reads only what is due.

/// Longest tool-state key, and largest value_json, a session may store.
inline constexpr size_t kMaxStateKeyBytes = 256;
inline constexpr size_t kMaxStateValueBytes = 1 << 20;

/// A state key is 1..kMaxStateKeyBytes bytes of printable ASCII (0x20..0x7e).
inline bool IsValidStateKey(absl::string_view key) {
  if (key.empty() || key.size() > kMaxStateKeyBytes) return false;
  for (const char c : key) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/// The first byte of an expiry index key. PERSISTED: never renumber.
enum class ExpiryKind : uint8_t {
  kSession = 1,
  kIdempotency = 2,
};

/// Unix microseconds of an expiry key: same clamping as AuditKeyMicros.
inline uint64_t ExpiryKeyMicros(absl::Time t) { return AuditKeyMicros(t); }

/// Precondition (also for the decoders' inverse): IsValidStateKey(key).
inline std::string StateKey(absl::string_view project_id, absl::string_view session_id,
                            absl::string_view key) {
  std::string k = EntityPrefix(project_id, session_id);
  k.append(key.data(), key.size());
  return k;
}

/// kind be64(micros): where the index entries of `kind` due at or before `micros` end
/// (exclusive bound: pass micros + 1).
inline std::string ExpiryTimeKey(ExpiryKind kind, uint64_t micros) {
  std::string k(1, static_cast<char>(static_cast<uint8_t>(kind)));
  AppendBigEndian64(&k, micros);
  return k;
}

/// `tail` is empty for kSession and the idempotency key for kIdempotency.
inline std::string ExpiryKey(ExpiryKind kind, uint64_t micros, absl::string_view project_id,
                             absl::string_view session_id, absl::string_view tail = {}) {
  std::string k = ExpiryTimeKey(kind, micros);
  AppendLengthPrefixed(&k, project_id);
  AppendLengthPrefixed(&k, session_id);
  k.append(tail.data(), tail.size());
  return k;
}

struct StateKeyParts {
  absl::string_view project_id;
  absl::string_view session_id;
  absl::string_view key;
};

struct ExpiryKeyParts {
  ExpiryKind kind = ExpiryKind::kSession;
  uint64_t micros = 0;
  absl::string_view project_id;
  absl::string_view session_id;
  absl::string_view tail;  // the idempotency key (kIdempotency)
};

inline std::optional<StateKeyParts> DecodeStateKey(absl::string_view key) {
  StateKeyParts p;
  if (!ConsumeLengthPrefixed(&key, &p.project_id) || !ConsumeLengthPrefixed(&key, &p.session_id) ||
      !IsValidStateKey(key)) {
    return std::nullopt;
  }
  p.key = key;
  return p;
}

/// Rejects an unknown kind, a tail on a kSession key and a missing or oversized tail on a
/// kIdempotency key.
inline std::optional<ExpiryKeyParts> DecodeExpiryKey(absl::string_view key) {
  ExpiryKeyParts p;
  if (key.empty()) return std::nullopt;
  p.kind = static_cast<ExpiryKind>(static_cast<uint8_t>(key[0]));
  key.remove_prefix(1);
  if (!ConsumeBigEndian64(&key, &p.micros) || !ConsumeLengthPrefixed(&key, &p.project_id) ||
      !ConsumeLengthPrefixed(&key, &p.session_id)) {
    return std::nullopt;
  }
  switch (p.kind) {
    case ExpiryKind::kSession:
      if (!key.empty()) return std::nullopt;
      return p;
    case ExpiryKind::kIdempotency:
      if (!IsValidKeyComponent(key)) return std::nullopt;
      p.tail = key;
      return p;
  }
  return std::nullopt;
}

// ---- Long-term memory (families memory and memory_index) -----------------------------------
//
// A record is addressed by (namespace, key): namespace 1..kMaxMemoryNamespaceLength bytes that
// never contain 00 (the runtime allows only [A-Za-z0-9._:/-]), key 1..kMaxMemoryKeyLength bytes.
// Its doc id is `namespace 00 key`: because 00 sorts below every namespace byte, byte order of
// doc ids is (namespace, key) order, and the doc ids whose namespace starts with a string P are
// exactly the keys starting with P (prefix semantics on the namespace string: "users/a" covers
// "users/a", "users/ab" and "users/a/x"). A namespace is not length-prefixed (it may be 256
// bytes long); the 00 terminator is what keeps "users/a" 00 "k" apart from "users/ab" 00 "k".
//
//   memory        lp(project) doc_id                         → v1::MemoryRecord
//   memory_index  lp(project) 01                             → stats:   varint(records)
//                                                                        varint(total tokens)
//                 lp(project) 02 lp(term)                    → df:      varint(records with term)
//                 lp(project) 03 lp(term) doc_id             → posting: varint(tf)
//                                                                        varint(record's tokens)
//                 lp(project) 04 doc_id                      → doc:     varint(record's tokens)
//                                                                        lp(term)... (its distinct
//                                                                        terms, ascending)
// Terms are 1..kMaxMemoryTermLength bytes. A term's postings are the range lp(project) 03
// lp(term), in doc-id order, so one namespace prefix is one sub-range of it. The doc entry lists
// what a record put into the index, so that a replace or delete removes exactly that (whatever
// tokenizer wrote it). Every change to a record writes the record, its postings, the df counters
// and the stats in one batch.

inline constexpr size_t kMaxMemoryNamespaceLength = 256;
inline constexpr size_t kMaxMemoryKeyLength = 128;
inline constexpr size_t kMaxMemoryTermLength = 64;

/// The byte after lp(project) in a memory_index key. PERSISTED: never renumber.
enum class MemoryIndexKind : uint8_t {
  kStats = 1,
  kTerm = 2,
  kPosting = 3,
  kDoc = 4,
};

/// True when (namespace, key) can be encoded: namespace 1..256 bytes without 00, key 1..128.
inline bool IsValidMemoryName(absl::string_view name_space, absl::string_view key) {
  return !name_space.empty() && name_space.size() <= kMaxMemoryNamespaceLength &&
         name_space.find('\0') == absl::string_view::npos && !key.empty() &&
         key.size() <= kMaxMemoryKeyLength;
}

/// namespace 00 key. Precondition: IsValidMemoryName(name_space, key).
inline std::string MemoryDocId(absl::string_view name_space, absl::string_view key) {
  std::string id;
  id.reserve(name_space.size() + 1 + key.size());
  id.append(name_space.data(), name_space.size());
  id.push_back('\0');
  id.append(key.data(), key.size());
  return id;
}

/// memory: lp(project) doc_id.
inline std::string MemoryRecordKey(absl::string_view project_id, absl::string_view doc_id) {
  std::string k = ProjectPrefix(project_id);
  k.append(doc_id.data(), doc_id.size());
  return k;
}

/// memory: lp(project) namespace_prefix, the prefix of every record whose namespace starts with
/// `namespace_prefix` (all of the project's records when it is empty).
inline std::string MemoryRecordPrefix(absl::string_view project_id,
                                      absl::string_view namespace_prefix) {
  return MemoryRecordKey(project_id, namespace_prefix);
}

inline std::string MemoryIndexPrefix(absl::string_view project_id, MemoryIndexKind kind) {
  std::string k = ProjectPrefix(project_id);
  k.push_back(static_cast<char>(static_cast<uint8_t>(kind)));
  return k;
}

inline std::string MemoryStatsKey(absl::string_view project_id) {
  return MemoryIndexPrefix(project_id, MemoryIndexKind::kStats);
}

/// Precondition for the term keys: 1 <= term.size() <= kMaxMemoryTermLength.
inline std::string MemoryTermKey(absl::string_view project_id, absl::string_view term) {
  std::string k = MemoryIndexPrefix(project_id, MemoryIndexKind::kTerm);
  AppendLengthPrefixed(&k, term);
  return k;
}

/// lp(project) 03 lp(term): the prefix of one term's postings.
inline std::string MemoryPostingPrefix(absl::string_view project_id, absl::string_view term) {
  std::string k = MemoryIndexPrefix(project_id, MemoryIndexKind::kPosting);
  AppendLengthPrefixed(&k, term);
  return k;
}

inline std::string MemoryPostingKey(absl::string_view project_id, absl::string_view term,
                                    absl::string_view doc_id) {
  std::string k = MemoryPostingPrefix(project_id, term);
  k.append(doc_id.data(), doc_id.size());
  return k;
}

inline std::string MemoryDocKey(absl::string_view project_id, absl::string_view doc_id) {
  std::string k = MemoryIndexPrefix(project_id, MemoryIndexKind::kDoc);
  k.append(doc_id.data(), doc_id.size());
  return k;
}

struct MemoryDocIdParts {
  absl::string_view name_space;
  absl::string_view key;
};

/// Splits `namespace 00 key` at its first 00; nullopt unless both parts pass
/// IsValidMemoryName. The parts view into `doc_id`, which must outlive them.
inline std::optional<MemoryDocIdParts> DecodeMemoryDocId(absl::string_view doc_id) {
  const size_t sep = doc_id.find('\0');
  if (sep == absl::string_view::npos) return std::nullopt;
  MemoryDocIdParts p{doc_id.substr(0, sep), doc_id.substr(sep + 1)};
  if (!IsValidMemoryName(p.name_space, p.key)) return std::nullopt;
  return p;
}

}  // namespace agentd::store::schema
