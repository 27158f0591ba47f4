#include "runtime/executor.h"

#include "common/thread_name.h"

namespace agentd::runtime {
namespace {
thread_local bool on_worker = false;
}  // namespace

Executor::Executor(int threads) {
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
}

Executor::~Executor() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    cv_.SignalAll();
  }
  for (auto& t : threads_) t.join();
}

void Executor::Schedule(std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(fn));
  cv_.Signal();
}

bool Executor::OnWorkerThread() { return on_worker; }

void Executor::Work() {
  NameThisThread("agentd-turn");
  on_worker = true;
  for (;;) {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      while (queue_.empty() && !stop_) cv_.Wait(&mu_);
      if (queue_.empty()) return;  // stopping and drained
      fn = std::move(queue_.front());
      queue_.pop_front();
    }
    fn();
  }
}

}  // namespace agentd::runtime
