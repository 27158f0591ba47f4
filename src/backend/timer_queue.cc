#include "backend/timer_queue.h"

#include "common/thread_name.h"

namespace agentd::backend {

TimerQueue::TimerQueue() : thread_([this] { Loop(); }) {}

TimerQueue::~TimerQueue() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    cv_.Signal();
  }
  thread_.join();
}

TimerQueue::TimerId TimerQueue::Schedule(absl::Time when, std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  TimerId id = next_id_++;
  pending_.emplace(std::make_pair(when, id), std::move(fn));
  when_.emplace(id, when);
  cv_.Signal();
  return id;
}

bool TimerQueue::Cancel(TimerId id) {
  absl::MutexLock lock(&mu_);
  auto it = when_.find(id);
  if (it == when_.end()) return false;
  pending_.erase(std::make_pair(it->second, id));
  when_.erase(it);
  return true;
}

void TimerQueue::Loop() {
  NameThisThread("agentd-timers");
  absl::MutexLock lock(&mu_);
  while (!stop_) {
    if (pending_.empty()) {
      cv_.Wait(&mu_);
      continue;
    }
    auto first = pending_.begin();
    const absl::Time due = first->first.first;
    if (due > absl::Now()) {
      cv_.WaitWithDeadline(&mu_, due);  // woken early by Schedule() or the destructor
      continue;
    }
    std::function<void()> fn = std::move(first->second);
    when_.erase(first->first.second);
    pending_.erase(first);
    mu_.Unlock();
    fn();
    mu_.Lock();
  }
}

}  // namespace agentd::backend
