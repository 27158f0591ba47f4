// Client-side helpers for the scale-out tests: session calls that carry `x-agentd-session` (as
// the SDKs send it, so a consistent-hash proxy keeps the session on one replica) and the checker
// of a session's event log. Thread-safe (no shared state).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "agentd/v1/session.grpc.pb.h"

namespace agentd::testing {

/// Calls `done` every 20 ms until it returns true (true) or `timeout` has passed (false).
bool PollUntil(std::chrono::milliseconds timeout, const std::function<bool()>& done);

/// "code N: message", for failure messages.
std::string Describe(const grpc::Status& status);

/// Client threads, stopped (`stop` set) and joined by JoinAll or the destructor, so that an
/// ASSERT that returns early never leaves a joinable std::thread behind.
struct Workers {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  void JoinAll() {
    stop = true;
    for (std::thread& t : threads) {
      if (t.joinable()) t.join();
    }
  }
  ~Workers() { JoinAll(); }
};

/// Sets `x-agentd-session: session_id` and a deadline `timeout` from now.
void PrepareSessionCall(grpc::ClientContext* ctx, const std::string& session_id,
                        std::chrono::milliseconds timeout);

/// A RunTurnRequest with one user message.
v1::RunTurnRequest TurnRequest(const std::string& session_id, const std::string& text,
                               v1::BusyPolicy on_busy, const std::string& idempotency_key = "");

/// Creates agent `agent_id` on `model` through `channel`.
grpc::Status CreateAgent(const std::shared_ptr<grpc::Channel>& channel, const std::string& agent_id,
                         const std::string& model);

/// An event's time as a system_clock time point.
std::chrono::system_clock::time_point EventTime(const v1::Event& event);

/// RunTurn with the session header and `timeout`.
grpc::Status RunTurn(v1::SessionService::Stub* stub, const v1::RunTurnRequest& request,
                     v1::TurnResult* result,
                     std::chrono::milliseconds timeout = std::chrono::seconds(30));

/// GetSession with the session header.
grpc::Status GetSession(v1::SessionService::Stub* stub, const std::string& session_id,
                        v1::Session* session);

/// CreateSession with a client-chosen id (and the session header, so a proxy routes it).
grpc::Status CreateSession(v1::SessionService::Stub* stub, const std::string& agent_id,
                           const std::string& session_id);

/// Every event of the session, read with ListEvents in pages of `page_size`.
grpc::Status ListAllEvents(v1::SessionService::Stub* stub, const std::string& session_id,
                           std::vector<v1::Event>* events, int page_size = 25);

/// WatchEvents on a thread of its own, collecting what arrives. Stop() (or the destructor)
/// cancels the call and joins the thread.
class EventWatcher {
 public:
  /// Starts watching `session_id` from `after_seq` through `stub` (which must outlive this).
  EventWatcher(v1::SessionService::Stub* stub, const std::string& session_id, int64_t after_seq);
  ~EventWatcher() { Stop(); }
  EventWatcher(const EventWatcher&) = delete;
  EventWatcher& operator=(const EventWatcher&) = delete;

  /// The seq of the last event received (0 if none yet).
  int64_t last_seq() ABSL_LOCKS_EXCLUDED(mu_);
  /// What arrived so far, in arrival order.
  std::vector<v1::Event> events() ABSL_LOCKS_EXCLUDED(mu_);
  /// Cancels the stream (if still open) and joins; idempotent.
  void Stop();
  /// After Stop(): the stream's final status.
  const grpc::Status& status() const { return status_; }

 private:
  grpc::ClientContext ctx_;
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<v1::Event> events_ ABSL_GUARDED_BY(mu_);
  grpc::Status status_;  // written by the thread before it ends
};

/// What a session's event log says.
struct LogSummary {
  /// Violations: a seq that is not the previous + 1 (starting at 1), an event outside a turn or
  /// of another turn than the open one, a TURN_STARTED while a turn is open (interleaving), a
  /// closing marker of a turn that is not open, a turn still open at the end. Empty = clean.
  std::vector<std::string> problems;
  std::map<std::string, v1::Event> ends;           // turn_id -> TURN_COMPLETED / TURN_FAILED
  std::map<std::string, std::string> turn_of_key;  // idempotency key -> turn_id
  int64_t last_seq = 0;
  int started = 0;
  int completed = 0;
  int failed = 0;
};
/// Checks `events` (one session's, in the order read).
LogSummary SummarizeLog(const std::vector<v1::Event>& events);

/// True if the log has a TURN_COMPLETED for `turn_id`.
bool Completed(const LogSummary& summary, const std::string& turn_id);

/// The first few problems joined, for a failure message.
std::string Problems(const LogSummary& summary, size_t max = 5);

}  // namespace agentd::testing
