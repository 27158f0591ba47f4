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
//   state        reserved (per-session tool state)
//   memory       reserved (long-term memory)
//   projects     lp(project)                              → v1::Project
//   api_keys     lp(key_id)                               → storage::ApiKeyRecord (key ids are
//                                                           global: no project prefix)
//   usage        lp(project) dim [lp(group)] be32(day)    → v1::Usage, written only by Merge
//                                                           (UsageAddOperator, rocksdb_tenancy.cc)
//   audit        lp(project) be64(micros) audit_id        → v1::AuditEvent
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

/// Column families. PERSISTED: the values index kColumnFamilies and the names are on disk.
/// Never reorder or renumber; add new families at the end.
enum class ColumnFamily : uint8_t {
  kDefault = 0,  // required by RocksDB; unused by agentd
  kMeta = 1,
  kAgents = 2,
  kSessions = 3,
  kEvents = 4,
  kIdempotency = 5,
  kState = 6,   // reserved
  kMemory = 7,  // reserved
  kProjects = 8,
  kApiKeys = 9,
  kUsage = 10,
  kAudit = 11,
};

struct ColumnFamilyInfo {
  ColumnFamily id;
  const char* name;  // the RocksDB column family name (persisted)
};

/// Registry: kColumnFamilies[static_cast<size_t>(cf)].id == cf for every family.
inline constexpr std::array<ColumnFamilyInfo, 12> kColumnFamilies = {{
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

}  // namespace agentd::store::schema
