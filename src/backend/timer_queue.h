// A single thread that runs callbacks at given times (backoff timers, scripted delays).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace agentd::backend {

class TimerQueue {
 public:
  using TimerId = uint64_t;

  TimerQueue();
  /// Stops the thread; pending callbacks are dropped without running.
  ~TimerQueue();
  TimerQueue(const TimerQueue&) = delete;
  TimerQueue& operator=(const TimerQueue&) = delete;

  /// Runs `fn` on the timer thread at `when` (or as soon as possible if it has passed).
  TimerId Schedule(absl::Time when, std::function<void()> fn);
  /// Removes a pending callback; true if it had not started.
  bool Cancel(TimerId id);

 private:
  void Loop();

  absl::Mutex mu_;
  absl::CondVar cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  TimerId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Ordered by (time, id) so equal times run in scheduling order.
  std::map<std::pair<absl::Time, TimerId>, std::function<void()>> pending_ ABSL_GUARDED_BY(mu_);
  std::map<TimerId, absl::Time> when_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace agentd::backend
