// A programmable backend for tests: replies are queued with Push() and served in order; with
// the queue empty it behaves like `echo`. A reply can stream deltas, request tool calls, fail
// with any status, or take time (served from a timer thread, honouring deadline and Cancel()).
#pragma once

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "backend/inference_backend.h"
#include "backend/timer_queue.h"

namespace agentd::backend {

struct ScriptedReply {
  std::string text;
  std::vector<v1::ToolCall> tool_calls;
  absl::Status error;                  // non-OK: the call fails with it (after `delay`)
  absl::Duration delay = absl::ZeroDuration();
  std::vector<std::string> deltas;     // streamed first; default: the text as one delta
  int64_t input_tokens = -1;           // -1 = estimated
  int64_t output_tokens = -1;
};

class ScriptedBackend final : public InferenceBackend {
 public:
  ScriptedBackend();
  ~ScriptedBackend() override;

  /// Queues a reply for a later call. Thread-safe.
  void Push(ScriptedReply reply);
  /// Every request received so far, in order. Thread-safe.
  std::vector<ModelRequest> requests() const;
  size_t pending_replies() const;

  std::shared_ptr<ModelCall> Start(const ModelRequest& request, ModelCallbacks callbacks) override;

 private:
  class Call;

  mutable absl::Mutex mu_;
  std::deque<ScriptedReply> replies_ ABSL_GUARDED_BY(mu_);
  std::vector<ModelRequest> requests_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<TimerQueue> timers_;  // declared last: destroyed first, so no callback outlives us
};

}  // namespace agentd::backend
