// Input checks and page-token rules every ContextStore implementation applies the same way
// (same rules, same messages), so the RocksDB and PostgreSQL stores answer bad input alike.
// Store implementations only; no storage-engine headers here.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "store/context_store.h"
#include "store/schema.h"

namespace agentd::store::internal {

inline constexpr int32_t kDefaultPageSize = 50;  // ListAgents, ListSessions, ListProjects
inline constexpr int32_t kMaxPageSize = 1000;

inline absl::Status CheckId(absl::string_view field, absl::string_view id) {
  if (schema::IsValidKeyComponent(id)) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, " must be 1..", kMaxIdLength, " bytes long (got ", id.size(), ")"));
}

inline absl::Status CheckIds(absl::string_view project_id, absl::string_view field,
                             absl::string_view id) {
  AGENTD_RETURN_IF_ERROR(CheckId("project_id", project_id));
  return CheckId(field, id);
}

inline absl::Status NotFound(absl::string_view kind, absl::string_view id) {
  return absl::NotFoundError(absl::StrCat(kind, " ", id, " not found"));
}

/// page_size <= 0 → `default_size`; larger than kMaxPageSize → kMaxPageSize.
inline size_t NormalizePageSize(int32_t page_size, int32_t default_size = kDefaultPageSize) {
  if (page_size <= 0) return static_cast<size_t>(default_size);
  return static_cast<size_t>(std::min(page_size, kMaxPageSize));
}

/// The bytes of a page token: tokens are lowercase hex. INVALID_ARGUMENT for anything else.
inline absl::StatusOr<std::string> DecodeHexToken(absl::string_view token) {
  const bool hex = !token.empty() && token.size() % 2 == 0 &&
                   std::all_of(token.begin(), token.end(), [](char c) {
                     return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f');
                   });
  if (!hex) return absl::InvalidArgumentError("malformed page_token");
  return absl::HexStringToBytes(token);
}

/// Page tokens of the id-ordered lists are the hex of the last id returned; the next page
/// starts after that id.
inline absl::StatusOr<std::string> DecodePageToken(absl::string_view token) {
  AGENTD_ASSIGN_OR_RETURN(std::string id, DecodeHexToken(token));
  if (!schema::IsValidKeyComponent(id)) return absl::InvalidArgumentError("malformed page_token");
  return id;
}

/// INVALID_ARGUMENT naming the first bad delta: an unknown dimension, a negative day, a group on
/// a kDay delta or a group that is not 1..kMaxIdLength bytes on another dimension.
absl::Status CheckUsageDeltas(const std::vector<UsageDelta>& deltas);

/// INVALID_ARGUMENT unless `key` is 1..kMaxStateKeyBytes printable ASCII bytes.
absl::Status CheckStateKey(absl::string_view key);

/// INVALID_ARGUMENT naming the first bad mutation: a bad key (CheckStateKey), a value_json over
/// kMaxStateValueBytes or a negative expected_version.
absl::Status CheckStateMutations(const std::vector<StateMutation>& mutations);

/// INVALID_ARGUMENT unless the write's ids are valid, its record and every event carry its
/// session_id, and its usage deltas and state mutations pass their checks.
absl::Status CheckSessionWrite(const SessionWrite& write);

/// The checks of CommitSessionWrite against the stored record: ABORTED unless its revision is
/// write.expected_revision; INVALID_ARGUMENT unless the events continue its last_seq without a
/// gap and write.record's last_seq is the new last one.
absl::Status CheckWriteAgainstStored(const SessionWrite& write,
                                     const storage::SessionRecord& stored);

/// The state entry a mutation writes over a key at version `current` (0 = missing): ABORTED when
/// the mutation expects another version.
absl::StatusOr<v1::StateEntry> NextStateEntry(const std::string& session_id,
                                              const StateMutation& mutation, int64_t current);

/// INVALID_ARGUMENT unless `child` (a fork) has valid session and parent ids that differ and a
/// fork_seq >= 0 (the range against the parent is the store's to check).
absl::Status CheckFork(const std::string& project_id, const storage::SessionRecord& child);

/// INVALID_ARGUMENT unless (namespace, key) is a valid memory name.
absl::Status CheckMemoryName(const std::string& name_space, const std::string& key);
/// INVALID_ARGUMENT unless `namespace_prefix` is at most kMaxMemoryNamespaceLength bytes, no NUL.
absl::Status CheckMemoryPrefix(const std::string& namespace_prefix);
absl::Status MemoryNotFound(absl::string_view name_space, absl::string_view key);

inline constexpr size_t kMaxTopK = 1000;
/// The checks of SearchMemory (ids, prefix, top_k 1..kMaxTopK, at most memory::kMaxQueryTerms
/// distinct terms); returns the query's terms.
absl::StatusOr<std::vector<std::string>> CheckSearch(const std::string& project_id,
                                                     const std::string& namespace_prefix,
                                                     const std::string& query, int32_t top_k);

/// The checks of ReadUsage: a valid project id and a known dimension.
absl::Status CheckUsageRead(const std::string& project_id, UsageDimension dimension);

/// INVALID_ARGUMENT unless `audit` can be keyed: project_id and audit_id 1..kMaxIdLength bytes,
/// time set.
absl::Status CheckAudit(const v1::AuditEvent& audit);

}  // namespace agentd::store::internal
