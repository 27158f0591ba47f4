#include "runtime/event_hub.h"

#include <limits>

#include "absl/strings/str_cat.h"

namespace agentd::runtime {

std::string EventHub::Key(const std::string& project_id, const std::string& session_id) {
  return absl::StrCat(project_id, "/", session_id);
}

uint64_t EventHub::Subscribe(const std::string& key, Listener listener) {
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  listeners_[key].emplace(id, std::move(listener));
  return id;
}

void EventHub::Unsubscribe(const std::string& key, uint64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = listeners_.find(key);
  if (it == listeners_.end()) return;
  it->second.erase(id);
  if (it->second.empty()) listeners_.erase(it);
}

void EventHub::Publish(const std::string& key, const std::vector<v1::Event>& events) {
  if (events.empty()) return;
  absl::MutexLock lock(&mu_);
  auto it = listeners_.find(key);
  if (it == listeners_.end()) return;
  for (auto& [id, listener] : it->second) listener.on_events(events);
}

void EventHub::Close(const std::string& key) {
  absl::MutexLock lock(&mu_);
  auto it = listeners_.find(key);
  if (it == listeners_.end()) return;
  for (auto& [id, listener] : it->second) {
    if (listener.on_closed) listener.on_closed();
  }
  listeners_.erase(it);
}

void EventHub::Notice(const std::string& key, int64_t last_seq) {
  absl::MutexLock lock(&mu_);
  auto it = listeners_.find(key);
  if (it == listeners_.end()) return;
  for (auto& [id, listener] : it->second) {
    if (listener.on_notice) listener.on_notice(last_seq);
  }
}

void EventHub::NoticeAll() {
  absl::MutexLock lock(&mu_);
  for (auto& [key, m] : listeners_) {
    for (auto& [id, listener] : m) {
      if (listener.on_notice) listener.on_notice(std::numeric_limits<int64_t>::max());
    }
  }
}

size_t EventHub::watcher_count() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [key, m] : listeners_) n += m.size();
  return n;
}

}  // namespace agentd::runtime
