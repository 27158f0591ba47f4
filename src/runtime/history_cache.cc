#include "runtime/history_cache.h"

namespace agentd::runtime {

std::shared_ptr<SessionHistory> HistoryCache::Get(const std::string& key, int64_t last_seq) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  if (it->second.history->last_seq != last_seq) {
    lru_.erase(it->second.lru);
    entries_.erase(it);
    return nullptr;
  }
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.history;
}

void HistoryCache::Put(const std::string& key, std::shared_ptr<SessionHistory> history) {
  if (max_sessions_ == 0) return;
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    it->second.history = std::move(history);
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return;
  }
  lru_.push_front(key);
  entries_.emplace(key, Entry{std::move(history), lru_.begin()});
  while (entries_.size() > max_sessions_) {
    entries_.erase(lru_.back());
    lru_.pop_back();
  }
}

void HistoryCache::Erase(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

}  // namespace agentd::runtime
