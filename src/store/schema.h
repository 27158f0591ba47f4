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
//
// Ordering: keys order ids by (length, bytes) ("shortlex"), so lists ordered "by id" are in
// that order: "s2" < "s10" < "sa1".
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "common/ids.h"

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
};

struct ColumnFamilyInfo {
  ColumnFamily id;
  const char* name;  // the RocksDB column family name (persisted)
};

/// Registry: kColumnFamilies[static_cast<size_t>(cf)].id == cf for every family.
inline constexpr std::array<ColumnFamilyInfo, 8> kColumnFamilies = {{
    {ColumnFamily::kDefault, "default"},
    {ColumnFamily::kMeta, "meta"},
    {ColumnFamily::kAgents, "agents"},
    {ColumnFamily::kSessions, "sessions"},
    {ColumnFamily::kEvents, "events"},
    {ColumnFamily::kIdempotency, "idempotency"},
    {ColumnFamily::kState, "state"},
    {ColumnFamily::kMemory, "memory"},
}};

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

/// lp(project): the prefix of all of a project's keys in agents and sessions.
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

}  // namespace agentd::store::schema
