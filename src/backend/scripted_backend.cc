#include "backend/scripted_backend.h"

#include <atomic>

#include "backend/echo_backend.h"

namespace agentd::backend {

// Shared state of one delayed call: whichever of timer / deadline / Cancel() comes first
// completes it, exactly once.
class ScriptedBackend::Call final : public ModelCall,
                                    public std::enable_shared_from_this<ScriptedBackend::Call> {
 public:
  Call(TimerQueue* timers, ModelCallbacks callbacks)
      : timers_(timers), callbacks_(std::move(callbacks)) {}

  void Arm(absl::Time when, absl::StatusOr<ModelResponse> outcome) {
    auto self = shared_from_this();
    timer_ = timers_->Schedule(when, [self, outcome = std::move(outcome)]() mutable {
      self->Finish(std::move(outcome));
    });
  }

  void Delta(const std::string& text) {
    if (callbacks_.on_delta && !done_.load()) callbacks_.on_delta(text);
  }

  void Finish(absl::StatusOr<ModelResponse> outcome) {
    if (done_.exchange(true)) return;
    callbacks_.on_done(std::move(outcome));
  }

  void Cancel() override {
    if (timers_->Cancel(timer_)) Finish(absl::CancelledError("model call cancelled"));
  }

 private:
  TimerQueue* timers_;
  ModelCallbacks callbacks_;
  TimerQueue::TimerId timer_ = 0;
  std::atomic<bool> done_{false};
};

ScriptedBackend::ScriptedBackend() : timers_(std::make_unique<TimerQueue>()) {}
ScriptedBackend::~ScriptedBackend() { timers_.reset(); }

void ScriptedBackend::Push(ScriptedReply reply) {
  absl::MutexLock lock(&mu_);
  replies_.push_back(std::move(reply));
}

std::vector<ModelRequest> ScriptedBackend::requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

size_t ScriptedBackend::pending_replies() const {
  absl::MutexLock lock(&mu_);
  return replies_.size();
}

std::shared_ptr<ModelCall> ScriptedBackend::Start(const ModelRequest& request,
                                                   ModelCallbacks callbacks) {
  ScriptedReply reply;
  bool scripted = false;
  {
    absl::MutexLock lock(&mu_);
    requests_.push_back(request);
    if (!replies_.empty()) {
      reply = std::move(replies_.front());
      replies_.pop_front();
      scripted = true;
    }
  }
  if (!scripted) return EchoBackend().Start(request, std::move(callbacks));

  absl::StatusOr<ModelResponse> outcome = absl::UnknownError("unset");
  if (!reply.error.ok()) {
    outcome = reply.error;
  } else {
    ModelResponse response;
    response.text = reply.text;
    response.tool_calls = reply.tool_calls;
    int64_t estimated_input = 0;
    for (const ChatMessage& m : request.messages) estimated_input += EstimateTokens(m.text) + 4;
    response.input_tokens = reply.input_tokens >= 0 ? reply.input_tokens : estimated_input;
    response.output_tokens =
        reply.output_tokens >= 0 ? reply.output_tokens : EstimateTokens(reply.text);
    response.finish_reason = reply.tool_calls.empty() ? "stop" : "tool_calls";
    response.served_by = "scripted";
    outcome = std::move(response);
  }
  std::vector<std::string> deltas = reply.deltas;
  if (deltas.empty() && reply.error.ok() && !reply.text.empty()) deltas.push_back(reply.text);

  auto call = std::make_shared<Call>(timers_.get(), std::move(callbacks));
  const absl::Time now = absl::Now();
  if (reply.delay <= absl::ZeroDuration() && request.deadline > now) {
    for (const std::string& d : deltas) call->Delta(d);
    call->Finish(std::move(outcome));
    return call;
  }
  for (const std::string& d : deltas) call->Delta(d);
  if (request.deadline < now + reply.delay) {
    call->Arm(request.deadline, absl::DeadlineExceededError("model call deadline exceeded"));
  } else {
    call->Arm(now + reply.delay, std::move(outcome));
  }
  return call;
}

}  // namespace agentd::backend
