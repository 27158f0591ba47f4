// EventHub: in-process fan-out of durable events to live watchers (WatchEvents, StreamTurn).
//
// Publishers call Publish() after a commit, in seq order per session (the turn that owns a
// session is its only writer in this process). Commits by other processes sharing the store
// arrive as notices (Notice), which listeners turn into reads of the store. Listeners run on the publisher's thread, under the hub's lock:
// they must only enqueue and return, and must not call back into the hub.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "agentd/v1/common.pb.h"

namespace agentd::runtime {

class EventHub {
 public:
  struct Listener {
    std::function<void(const std::vector<v1::Event>&)> on_events;
    std::function<void()> on_closed;  // the session was deleted
    /// Another process sharing the store committed events up to `last_seq` (INT64_MAX: perhaps
    /// anything; notices were missed). The listener reads them from the store itself, from its
    /// own cursor, off this thread. Null: not interested.
    std::function<void(int64_t last_seq)> on_notice;
  };

  /// Key of a session: project and session id (project first, as in storage).
  static std::string Key(const std::string& project_id, const std::string& session_id);

  /// Returns an id for Unsubscribe().
  uint64_t Subscribe(const std::string& key, Listener listener);
  void Unsubscribe(const std::string& key, uint64_t id);
  void Publish(const std::string& key, const std::vector<v1::Event>& events);
  /// Tells every listener of `key` that the session is gone, and drops them.
  void Close(const std::string& key);
  /// A commit notice from another process (see Listener::on_notice).
  void Notice(const std::string& key, int64_t last_seq);
  /// Notices may have been missed: every listener of every session gets on_notice(INT64_MAX).
  void NoticeAll();
  size_t watcher_count() const;

 private:
  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  absl::flat_hash_map<std::string, absl::flat_hash_map<uint64_t, Listener>> listeners_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace agentd::runtime
