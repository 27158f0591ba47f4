// ModelRouter: resolves the model names agents use to deployments on registered backends, and
// makes each call as reliable as the deployments allow.
//
// It is itself an InferenceBackend: Start(request) reads request.model as the configured model
// name. Per call it
//  - picks a deployment by weight among those whose circuit breaker lets calls through;
//  - waits for a concurrency permit of the deployment's backend (`max_concurrency`, with a
//    bounded wait queue);
//  - retries retryable failures (UNAVAILABLE: 5xx, 429 rate limits, connection errors, cut or
//    malformed streams) with exponential backoff and full jitter, honouring Retry-After, never
//    past the call's deadline;
//  - moves to the model's `fallback` models, in order, when its deployments are exhausted (or
//    out of quota);
//  - ends with UNAVAILABLE naming the last error when everything failed; other errors
//    (INVALID_ARGUMENT, FAILED_PRECONDITION for context_length_exceeded, …) end it at once.
// Cancel() and the deadline reach the backend call in flight.
// Threading: configure (RegisterBackend/AddModel) before serving; Start() is thread-safe;
// callbacks run on backend threads or the router's timer thread.
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "backend/inference_backend.h"
#include "backend/timer_queue.h"

namespace agentd::metrics {
class AgentdMetrics;
}

namespace agentd::backend {

struct Price {
  double input_per_mtok = 0;
  double output_per_mtok = 0;
};

struct Deployment {
  std::string backend;  // registered backend name
  std::string model;    // model name sent to that backend
  int32_t weight = 1;
};

struct ModelSpec {
  std::string name;
  std::vector<Deployment> deployments;
  std::vector<std::string> fallback;
  int64_t context_window = 0;
  Price price;
};

struct RouterOptions {
  int32_t max_retries = 2;                               // extra attempts per model
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  int32_t breaker_failures = 5;                          // consecutive failures that open it
  absl::Duration breaker_cooldown = absl::Seconds(10);   // open → half-open (one probe)
  /// Per-attempt counts, latency, tokens and cost by configured model (null = not measured).
  /// Every configured model must have been added to it (AgentdMetrics::AddModel).
  metrics::AgentdMetrics* metrics = nullptr;
};

/// Per-backend limits given at registration.
struct BackendLimits {
  int32_t max_concurrency = 0;  // 0 = unlimited
  int32_t max_queue = 0;        // waiting calls beyond max_concurrency; 0 = 4 × max_concurrency
};

/// Circuit-breaker view of one deployment (for metrics and tests).
struct DeploymentHealth {
  std::string model;
  std::string backend;
  std::string backend_model;
  bool open = false;
  bool half_open = false;  // cooldown over: the next call is a probe
  int32_t consecutive_failures = 0;
};

class ModelRouter final : public InferenceBackend {
 public:
  /// Registers the built-in `echo` backend and model.
  explicit ModelRouter(RouterOptions options = {});
  ~ModelRouter() override;

  /// ALREADY_EXISTS on a duplicate name.
  absl::Status RegisterBackend(const std::string& name, std::shared_ptr<InferenceBackend> backend,
                               BackendLimits limits = {});
  /// INVALID_ARGUMENT for an unknown backend, a weight < 1, or a duplicate model. Fallbacks must
  /// name models added before Validate() is called.
  absl::Status AddModel(ModelSpec spec);
  /// Checks that every fallback names a known model and none is its own fallback.
  absl::Status Validate() const;

  /// True if `model` is a configured model name (or `echo`).
  bool HasModel(const std::string& model) const;
  /// True if a call to `model` may reach a backend that sends ChatMessage::encoded (one of its
  /// deployments or of its fallbacks' is such a backend).
  bool ModelUsesEncodedMessages(const std::string& model) const;
  /// The configured context window of `model` in tokens (0 = not configured or unknown model).
  int64_t ContextWindow(const std::string& model) const {
    auto it = models_.find(model);
    return it == models_.end() ? 0 : it->second.context_window;
  }
  /// Cost in USD of a call with these token counts on `model` (0 for unknown / free models).
  double Cost(const std::string& model, int64_t input_tokens, int64_t output_tokens) const;
  /// Configured model names, sorted.
  std::vector<std::string> ModelNames() const;
  std::vector<DeploymentHealth> Health() const;

  std::shared_ptr<ModelCall> Start(const ModelRequest& request, ModelCallbacks callbacks) override;
  /// The same, taking the request over: the router keeps it for retries and fallbacks, so
  /// a caller that is done with it saves a copy of the whole context.
  std::shared_ptr<ModelCall> Start(ModelRequest&& request, ModelCallbacks callbacks);

 private:
  class RoutedCall;
  /// `model`, then its fallbacks in order, each once: the models a call to it may try.
  std::vector<std::string> Chain(const std::string& model) const;
  struct Backend {
    std::shared_ptr<InferenceBackend> impl;
    BackendLimits limits;
    int32_t in_flight = 0;
    std::deque<std::weak_ptr<RoutedCall>> waiting;
  };
  struct DeploymentState {
    int32_t consecutive_failures = 0;
    absl::Time open_until = absl::InfinitePast();
    bool probing = false;  // half-open probe in flight
  };
  using DeploymentKey = std::pair<std::string, size_t>;  // model name, deployment index

  // Called by RoutedCall.
  /// A deployment of `model` to try now (weighted among those the breaker lets through,
  /// preferring ones not in `avoid`), or -1 if none is available.
  int PickDeployment(const ModelSpec& spec, const std::vector<size_t>& avoid);
  /// True: a permit was taken. False: `call` was queued (resumed by ReleasePermit) or, if the
  /// queue is full, nothing happened and `*queue_full` is set.
  bool AcquirePermit(const std::string& backend, const std::shared_ptr<RoutedCall>& call,
                     bool* queue_full);
  void ReleasePermit(const std::string& backend);
  void ForgetWaiter(const std::string& backend, const RoutedCall* call);
  void RecordOutcome(const std::string& model, size_t index, bool success);
  std::shared_ptr<InferenceBackend> BackendImpl(const std::string& name);

  const RouterOptions options_;
  std::map<std::string, ModelSpec> models_;  // immutable after configuration
  TimerQueue timers_;
  mutable absl::Mutex mu_;
  std::map<std::string, Backend> backends_ ABSL_GUARDED_BY(mu_);
  std::map<DeploymentKey, DeploymentState> deployments_ ABSL_GUARDED_BY(mu_);
};

/// Whether a failed call may be retried (on this model or a fallback).
bool IsRetryable(const absl::Status& status);

}  // namespace agentd::backend
