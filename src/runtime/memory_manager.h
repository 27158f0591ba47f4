// MemoryManager: long-term memory, the domain side of MemoryService (and the place the built-in
// tools memory_search / memory_put can share): request validation, server-assigned keys, times
// and defaults, over the store's memory methods (which index and rank; docs/memory.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agentd/v1/memory.pb.h"
#include "store/context_store.h"

namespace agentd::runtime {

// Limits of long-term memory (INVALID_ARGUMENT beyond them; docs/api.md lists them).
inline constexpr size_t kMaxMemoryNamespaceBytes = 256;
inline constexpr size_t kMaxMemoryKeyBytes = 128;  // = kMaxIdLength: keys are ids
inline constexpr size_t kMaxMemoryTextBytes = size_t{64} * 1024;
inline constexpr size_t kMaxMemoryQueryBytes = 4096;
inline constexpr int32_t kDefaultMemoryTopK = 10;
inline constexpr int32_t kMaxMemoryTopK = 100;
inline constexpr int32_t kDefaultMemoryPageSize = 50;
/// Prefix of server-assigned keys ("mem_" + 32 hex).
inline constexpr absl::string_view kMemoryKeyPrefix = "mem_";

/// A namespace: 1..256 bytes, '/'-separated segments of [A-Za-z0-9._:-], no empty segment (so
/// no leading, trailing or doubled '/'). INVALID_ARGUMENT naming `field` otherwise.
absl::Status ValidateMemoryNamespace(absl::string_view field, absl::string_view name_space);
/// A namespace prefix: 0..256 bytes of [A-Za-z0-9._:/-] (any string prefix of a namespace,
/// e.g. "users/", "users/a"; empty = every namespace).
absl::Status ValidateMemoryNamespacePrefix(absl::string_view field, absl::string_view prefix);
/// A record's text: 1..64 KiB of UTF-8.
absl::Status ValidateMemoryText(absl::string_view field, absl::string_view text);
/// top_k 0 → kDefaultMemoryTopK; 1..kMaxMemoryTopK kept; anything else INVALID_ARGUMENT.
absl::StatusOr<int32_t> NormalizeMemoryTopK(int32_t top_k);

/// Thread-safe; holds only the store, which outlives it. Every method acts in `project_id`,
/// the authenticated caller's project.
class MemoryManager {
 public:
  explicit MemoryManager(store::ContextStore* store) : store_(store) {}

  /// Creates or replaces the record (namespace, key) from record's namespace, key, text and
  /// metadata (times are the server's: create_time is kept on replace, update_time is now).
  /// An empty key gets a new "mem_…" key. Returns the stored record.
  absl::StatusOr<v1::MemoryRecord> Put(const std::string& project_id, v1::MemoryRecord record);
  /// NOT_FOUND if absent.
  absl::StatusOr<v1::MemoryRecord> Get(const std::string& project_id, const std::string& name_space,
                                       const std::string& key);
  /// Records whose namespace starts with `namespace_prefix`, ordered by (namespace, key).
  /// page_size 0 → 50, capped at 1000.
  absl::StatusOr<store::MemoryPage> List(const std::string& project_id,
                                         const std::string& namespace_prefix, int32_t page_size,
                                         const std::string& page_token);
  /// BM25 top_k (0 → 10, max 100) under `namespace_prefix`, best first. `query` must be
  /// 1..4096 bytes of UTF-8; one with no searchable words finds nothing.
  absl::StatusOr<std::vector<store::ScoredMemoryRecord>> Search(const std::string& project_id,
                                                                const std::string& namespace_prefix,
                                                                const std::string& query,
                                                                int32_t top_k);
  /// NOT_FOUND if absent.
  absl::Status Delete(const std::string& project_id, const std::string& name_space,
                      const std::string& key);

 private:
  store::ContextStore* store_;
};

}  // namespace agentd::runtime
