// HistoryCache: the recent sessions' event logs kept in memory, so a turn does not re-read its
// whole history from the store at every turn. Bounded by session count (LRU).
//
// Ownership: entries are shared_ptrs; the turn that owns a session (one at a time per session,
// guaranteed by SessionManager) is the only one that appends to its entry. An entry is trusted
// only if its last_seq equals the stored session's last_seq, so a stale entry (another process
// wrote, or a commit failed) is simply reloaded.
#pragma once

#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "agentd/v1/common.pb.h"
#include "runtime/context_builder.h"

namespace agentd::runtime {

struct SessionHistory {
  int64_t last_seq = 0;
  std::vector<v1::Event> events;  // seq 1..last_seq, in order
  /// Chat Completions encodings of events (by index) that were in a model context, kept so
  /// each is encoded once (RenderContext; null = not encoded, or left the window for good).
  EncodedMessages encoded;
};

class HistoryCache {
 public:
  explicit HistoryCache(size_t max_sessions) : max_sessions_(max_sessions) {}

  /// The cached history of `key` if its last_seq is `last_seq`, else null.
  std::shared_ptr<SessionHistory> Get(const std::string& key, int64_t last_seq);
  /// Inserts or replaces the entry of `key`, evicting the least recently used beyond the bound.
  void Put(const std::string& key, std::shared_ptr<SessionHistory> history);
  void Erase(const std::string& key);
  /// Sessions cached now.
  size_t size() ABSL_LOCKS_EXCLUDED(mu_) {
    absl::MutexLock lock(&mu_);
    return entries_.size();
  }

 private:
  struct Entry {
    std::shared_ptr<SessionHistory> history;
    std::list<std::string>::iterator lru;
  };
  const size_t max_sessions_;
  absl::Mutex mu_;
  std::list<std::string> lru_ ABSL_GUARDED_BY(mu_);  // front = most recent
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace agentd::runtime
