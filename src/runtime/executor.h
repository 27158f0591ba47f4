// Executor: a fixed pool of worker threads that run turns. Turn work blocks on store commits
// (an fsync each, in sync durability); running it here instead of on gRPC's few callback
// threads or a backend's I/O thread keeps those responsive, and lets many commits wait at the
// same time so RocksDB can group them into one fsync.
#pragma once

#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace agentd::runtime {

class Executor {
 public:
  explicit Executor(int threads);
  /// Runs what is already queued, then joins the workers.
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  /// Queues `fn` to run on a worker. Thread-safe.
  void Schedule(std::function<void()> fn);
  /// True on one of this process's executor worker threads.
  static bool OnWorkerThread();

 private:
  void Work();

  absl::Mutex mu_;
  absl::CondVar cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace agentd::runtime
