#include "backend/model_router.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>

#include "absl/random/random.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "backend/echo_backend.h"
#include "backend/openai_mapping.h"
#include "metrics/agentd_metrics.h"
#include "metrics/trace_context.h"

namespace agentd::backend {
namespace {

bool HasElided(const ModelRequest& request) {
  return std::any_of(request.messages.begin(), request.messages.end(),
                     [](const ChatMessage& m) { return m.elided; });
}

}  // namespace

bool IsRetryable(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable;
}

// One routed model call: attempts, backoff, fallbacks. Owned by shared_ptrs held by the caller
// (as its ModelCall), by the backend call in flight, by timers and by a backend's wait queue
// (weakly). `mu_` guards the phase fields; the routing state is touched by one phase at a time.
class ModelRouter::RoutedCall final : public ModelCall,
                                      public std::enable_shared_from_this<RoutedCall> {
 public:
  RoutedCall(ModelRouter* router, ModelRequest request, ModelCallbacks callbacks)
      : router_(router),
        request_(std::move(request)),
        callbacks_(std::move(callbacks)),
        chain_(router_->Chain(request_.model)) {}

  void Attempt() {
    obs::ContextScope log_scope(request_.context.get());  // also on timer threads
    bool cancelled;
    {
      absl::MutexLock lock(&mu_);
      if (done_) return;
      cancelled = cancelled_;
    }
    if (cancelled) {
      Finish(absl::CancelledError("model call cancelled"));
      return;
    }
    if (absl::Now() >= request_.deadline) {
      Finish(absl::DeadlineExceededError("model call deadline exceeded"));
      return;
    }
    const ModelSpec& spec = router_->models_.at(chain_[pos_]);
    const int idx = router_->PickDeployment(spec, failed_);
    if (idx < 0) {
      last_error_ = absl::UnavailableError(
          absl::StrCat("every deployment of model \"", spec.name, "\" has its circuit breaker open"));
      NextModelOrFail();
      return;
    }
    const std::string& backend = spec.deployments[idx].backend;
    auto self = shared_from_this();
    {
      // Set before queueing: a permit may be handed over (Resume) as soon as we are queued.
      absl::MutexLock lock(&mu_);
      waiting_backend_ = backend;
      waiting_index_ = idx;
    }
    bool queue_full = false;
    if (router_->AcquirePermit(backend, self, &queue_full)) {
      {
        absl::MutexLock lock(&mu_);
        waiting_backend_.clear();
      }
      StartOn(static_cast<size_t>(idx));
      return;
    }
    if (queue_full) {
      {
        absl::MutexLock lock(&mu_);
        waiting_backend_.clear();
      }
      last_error_ = absl::UnavailableError(
          absl::StrCat("backend \"", backend, "\" is at max_concurrency and its queue is full"));
      failed_.push_back(idx);
      RetryOrNext(std::nullopt);
      return;
    }
    absl::MutexLock lock(&mu_);
    if (!waiting_backend_.empty()) {  // not resumed yet: bound the wait by the deadline
      timer_ = router_->timers_.Schedule(request_.deadline, [self] { self->OnWaitDeadline(); });
    }
  }

  /// A permit of `waiting_backend_` was handed to this call.
  void Resume() {
    size_t idx;
    std::string backend;
    bool done;
    {
      absl::MutexLock lock(&mu_);
      backend = waiting_backend_;
      idx = static_cast<size_t>(waiting_index_);
      waiting_backend_.clear();
      if (timer_ != 0) router_->timers_.Cancel(timer_);
      timer_ = 0;
      done = done_;
    }
    if (done) {
      router_->ReleasePermit(backend);
      return;
    }
    StartOn(idx);
  }

  void Cancel() override {
    std::shared_ptr<ModelCall> inner;
    std::string waiting;
    TimerQueue::TimerId timer;
    {
      absl::MutexLock lock(&mu_);
      if (done_ || cancelled_) return;
      cancelled_ = true;
      inner = inner_;
      waiting = waiting_backend_;
      timer = timer_;
    }
    if (inner) {
      inner->Cancel();  // its on_done finishes this call
    } else if (!waiting.empty()) {
      router_->ForgetWaiter(waiting, this);
      Finish(absl::CancelledError("model call cancelled"));
    } else if (timer != 0 && router_->timers_.Cancel(timer)) {
      Finish(absl::CancelledError("model call cancelled"));
    }
    // Otherwise the call is between phases; the next phase sees cancelled_.
  }

 private:
  void OnWaitDeadline() {
    std::string backend;
    {
      absl::MutexLock lock(&mu_);
      if (waiting_backend_.empty()) return;  // resumed meanwhile
      backend = waiting_backend_;
      waiting_backend_.clear();
      timer_ = 0;
    }
    router_->ForgetWaiter(backend, this);
    Finish(absl::DeadlineExceededError(
        absl::StrCat("model call deadline exceeded while waiting for backend \"", backend, "\"")));
  }

  void StartOn(size_t idx) {
    const ModelSpec& spec = router_->models_.at(chain_[pos_]);
    const Deployment& d = spec.deployments[idx];
    // Attempts run one at a time, and a backend reads the request only inside Start(): the
    // kept request goes to it as is (no copy of the context), named for this deployment.
    request_.model = d.model;
    ++attempts_;
    ++attempts_on_model_;
    const int64_t attempt = attempts_;
    auto self = shared_from_this();
    ModelCallbacks cb;
    if (streamed_.exchange(false) && callbacks_.on_reset) callbacks_.on_reset();
    if (callbacks_.on_delta) {
      cb.on_delta = [self](absl::string_view text) {
        self->streamed_.store(true);
        self->callbacks_.on_delta(text);
      };
    }
    cb.on_done = [self, idx, attempt](absl::StatusOr<ModelResponse> r) {
      self->OnAttemptDone(idx, attempt, std::move(r));
    };
    std::shared_ptr<InferenceBackend> backend = router_->BackendImpl(d.backend);
    attempt_start_ = std::chrono::steady_clock::now();
    const ModelRequest* request = &request_;
    if (!backend->UsesEncodedMessages() && HasElided(request_)) {
      // A fallback that reads message fields: decoded once, kept for later attempts.
      if (expanded_ == nullptr) {
        auto copy = std::make_unique<ModelRequest>(request_);
        if (absl::Status st = openai::ExpandElidedMessages(&copy->messages); !st.ok()) {
          cb.on_done(std::move(st));
          return;
        }
        expanded_ = std::move(copy);
      }
      expanded_->model = d.model;
      request = expanded_.get();
    }
    std::shared_ptr<ModelCall> call = backend->Start(*request, std::move(cb));
    bool cancel_now = false;
    {
      absl::MutexLock lock(&mu_);
      if (!done_ && finished_attempt_ < attempt) {
        inner_ = call;
        cancel_now = cancelled_;
      }
    }
    if (cancel_now) call->Cancel();
  }

  void OnAttemptDone(size_t idx, int64_t attempt, absl::StatusOr<ModelResponse> r) {
    obs::ContextScope log_scope(request_.context.get());
    const ModelSpec& spec = router_->models_.at(chain_[pos_]);
    const Deployment& d = spec.deployments[idx];
    router_->ReleasePermit(d.backend);
    const absl::StatusCode code = r.ok() ? absl::StatusCode::kOk : r.status().code();
    if (router_->options_.metrics != nullptr) {
      if (metrics::ModelMetrics* m = router_->options_.metrics->Model(spec.name)) {
        m->CallDone(code, metrics::SecondsSince(attempt_start_));
        if (r.ok()) {
          m->Usage(r->input_tokens, r->output_tokens,
                   router_->Cost(spec.name, r->input_tokens, r->output_tokens));
        }
      }
    }
    const bool deployment_fault = IsRetryable(r.status()) || code == absl::StatusCode::kResourceExhausted;
    if (code != absl::StatusCode::kCancelled && code != absl::StatusCode::kDeadlineExceeded) {
      router_->RecordOutcome(spec.name, idx, !deployment_fault);
    }
    bool cancelled;
    {
      absl::MutexLock lock(&mu_);
      inner_.reset();
      finished_attempt_ = attempt;
      cancelled = cancelled_;
    }
    if (r.ok()) {
      r->served_by = absl::StrCat(d.backend, "/", d.model);
      r->served_model = spec.name;
      r->attempts = static_cast<int32_t>(attempts_);
      Finish(std::move(r));
      return;
    }
    if (cancelled) {
      Finish(absl::CancelledError("model call cancelled"));
      return;
    }
    const absl::Status status = r.status();
    if (code == absl::StatusCode::kDeadlineExceeded) {
      Finish(status);
    } else if (code == absl::StatusCode::kResourceExhausted) {  // out of quota: try fallbacks
      last_error_ = status;
      NextModelOrFail();
    } else if (!IsRetryable(status)) {
      Finish(status);
    } else {
      spdlog::debug("model {} via {}/{} failed (attempt {}): {}", spec.name, d.backend, d.model,
                    attempts_, std::string(status.message()));
      last_error_ = status;
      failed_.push_back(idx);
      RetryOrNext(RetryAfter(status));
    }
  }

  void RetryOrNext(std::optional<absl::Duration> retry_after) {
    const RouterOptions& o = router_->options_;
    if (attempts_on_model_ >= 1 + o.max_retries) {
      NextModelOrFail();
      return;
    }
    const double cap = std::min(absl::ToDoubleSeconds(o.max_backoff),
                                absl::ToDoubleSeconds(o.initial_backoff) *
                                    std::pow(2.0, std::max<int64_t>(0, attempts_on_model_ - 1)));
    thread_local absl::BitGen gen;
    absl::Duration backoff = absl::Seconds(absl::Uniform<double>(gen, 0.0, std::max(cap, 1e-6)));
    if (retry_after && *retry_after > backoff) backoff = *retry_after;
    if (absl::Now() + backoff >= request_.deadline) {
      FailUnavailable("the next retry would pass the call's deadline");
      return;
    }
    auto self = shared_from_this();
    absl::MutexLock lock(&mu_);
    if (done_) return;
    timer_ = router_->timers_.Schedule(absl::Now() + backoff, [self] {
      {
        absl::MutexLock l(&self->mu_);
        self->timer_ = 0;
      }
      self->Attempt();
    });
  }

  void NextModelOrFail() {
    ++pos_;
    attempts_on_model_ = 0;
    failed_.clear();
    if (pos_ >= chain_.size()) {
      FailUnavailable("");
      return;
    }
    spdlog::debug("model {} exhausted; falling back to {}", chain_[pos_ - 1], chain_[pos_]);
    Attempt();
  }

  void FailUnavailable(const std::string& why) {
    Finish(absl::UnavailableError(absl::StrCat(
        "model \"", chain_.front(), "\" is unavailable after ", attempts_, " attempt(s)",
        chain_.size() > 1 ? " including fallbacks" : "", why.empty() ? "" : "; ", why,
        last_error_.ok() ? "" : "; last error: ", last_error_.message())));
  }

  void Finish(absl::StatusOr<ModelResponse> outcome) {
    ModelCallbacks callbacks;
    {
      absl::MutexLock lock(&mu_);
      if (done_) return;
      done_ = true;
      if (timer_ != 0) router_->timers_.Cancel(timer_);
      timer_ = 0;
      callbacks = std::move(callbacks_);
    }
    callbacks.on_done(std::move(outcome));
  }

  ModelRouter* const router_;
  ModelRequest request_;  // .model is rewritten per attempt (StartOn); the rest is fixed
  std::unique_ptr<ModelRequest> expanded_;  // request_ with elided messages decoded (StartOn)
  ModelCallbacks callbacks_;
  std::vector<std::string> chain_;  // the model, then its fallbacks
  size_t pos_ = 0;
  int64_t attempts_ = 0;
  int64_t attempts_on_model_ = 0;
  std::vector<size_t> failed_;  // deployments of the current model that failed this call
  absl::Status last_error_;
  std::atomic<bool> streamed_{false};  // an attempt streamed deltas since the last reset
  // Start of the attempt in flight (one at a time; set before the backend can answer).
  std::chrono::steady_clock::time_point attempt_start_;

  absl::Mutex mu_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  int64_t finished_attempt_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<ModelCall> inner_ ABSL_GUARDED_BY(mu_);
  TimerQueue::TimerId timer_ ABSL_GUARDED_BY(mu_) = 0;
  std::string waiting_backend_ ABSL_GUARDED_BY(mu_);
  int waiting_index_ ABSL_GUARDED_BY(mu_) = -1;
};

ModelRouter::ModelRouter(RouterOptions options) : options_(options) {
  absl::MutexLock lock(&mu_);
  backends_["echo"].impl = std::make_shared<EchoBackend>();
  ModelSpec echo;
  echo.name = "echo";
  echo.deployments.push_back({"echo", "echo", 1});
  models_["echo"] = echo;
}

ModelRouter::~ModelRouter() = default;

absl::Status ModelRouter::RegisterBackend(const std::string& name,
                                          std::shared_ptr<InferenceBackend> backend,
                                          BackendLimits limits) {
  absl::MutexLock lock(&mu_);
  if (backends_.count(name)) {
    return absl::AlreadyExistsError(absl::StrCat("backend \"", name, "\" is already registered"));
  }
  if (limits.max_queue == 0) limits.max_queue = 4 * limits.max_concurrency;
  Backend& b = backends_[name];
  b.impl = std::move(backend);
  b.limits = limits;
  return absl::OkStatus();
}

absl::Status ModelRouter::AddModel(ModelSpec spec) {
  if (spec.name.empty()) return absl::InvalidArgumentError("model name is empty");
  if (models_.count(spec.name)) {
    return absl::InvalidArgumentError(absl::StrCat("model \"", spec.name, "\" is defined twice"));
  }
  if (spec.deployments.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("model \"", spec.name, "\" has no deployments"));
  }
  absl::MutexLock lock(&mu_);
  for (const Deployment& d : spec.deployments) {
    if (d.weight < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("model \"", spec.name, "\": deployment weights must be >= 1"));
    }
    if (!backends_.count(d.backend)) {
      return absl::InvalidArgumentError(
          absl::StrCat("model \"", spec.name, "\" names unknown backend \"", d.backend, "\""));
    }
  }
  std::string name = spec.name;
  models_.emplace(std::move(name), std::move(spec));
  return absl::OkStatus();
}

absl::Status ModelRouter::Validate() const {
  for (const auto& [name, spec] : models_) {
    for (const std::string& f : spec.fallback) {
      if (f == name) return absl::InvalidArgumentError(absl::StrCat("model \"", name, "\" falls back to itself"));
      if (!models_.count(f)) {
        return absl::InvalidArgumentError(
            absl::StrCat("model \"", name, "\" falls back to unknown model \"", f, "\""));
      }
    }
  }
  return absl::OkStatus();
}

bool ModelRouter::HasModel(const std::string& model) const { return models_.count(model) > 0; }

std::vector<std::string> ModelRouter::Chain(const std::string& model) const {
  std::vector<std::string> chain = {model};
  auto it = models_.find(model);
  if (it != models_.end()) {
    for (const std::string& f : it->second.fallback) {
      if (std::find(chain.begin(), chain.end(), f) == chain.end()) chain.push_back(f);
    }
  }
  return chain;
}

bool ModelRouter::ModelUsesEncodedMessages(const std::string& model) const {
  if (!models_.count(model)) return false;
  absl::MutexLock lock(&mu_);
  for (const std::string& name : Chain(model)) {
    auto spec = models_.find(name);
    if (spec == models_.end()) continue;
    for (const Deployment& d : spec->second.deployments) {
      auto b = backends_.find(d.backend);
      if (b != backends_.end() && b->second.impl->UsesEncodedMessages()) return true;
    }
  }
  return false;
}

double ModelRouter::Cost(const std::string& model, int64_t input_tokens,
                         int64_t output_tokens) const {
  auto it = models_.find(model);
  if (it == models_.end()) return 0;
  return (static_cast<double>(input_tokens) * it->second.price.input_per_mtok +
          static_cast<double>(output_tokens) * it->second.price.output_per_mtok) /
         1e6;
}

std::vector<std::string> ModelRouter::ModelNames() const {
  std::vector<std::string> names;
  for (const auto& [name, spec] : models_) names.push_back(name);
  return names;
}

std::vector<DeploymentHealth> ModelRouter::Health() const {
  std::vector<DeploymentHealth> out;
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  for (const auto& [name, spec] : models_) {
    for (size_t i = 0; i < spec.deployments.size(); ++i) {
      DeploymentHealth h{name, spec.deployments[i].backend, spec.deployments[i].model};
      auto it = deployments_.find({name, i});
      if (it != deployments_.end()) {
        h.open = it->second.open_until > now;
        h.half_open = !h.open && it->second.consecutive_failures >= options_.breaker_failures;
        h.consecutive_failures = it->second.consecutive_failures;
      }
      out.push_back(h);
    }
  }
  return out;
}

std::shared_ptr<ModelCall> ModelRouter::Start(const ModelRequest& request,
                                              ModelCallbacks callbacks) {
  return Start(ModelRequest(request), std::move(callbacks));
}

std::shared_ptr<ModelCall> ModelRouter::Start(ModelRequest&& request, ModelCallbacks callbacks) {
  if (!models_.count(request.model)) {
    callbacks.on_done(
        absl::InvalidArgumentError(absl::StrCat("model \"", request.model, "\" is not configured")));
    return std::make_shared<CompletedCall>();
  }
  auto call = std::make_shared<RoutedCall>(this, std::move(request), std::move(callbacks));
  call->Attempt();
  return call;
}

std::shared_ptr<InferenceBackend> ModelRouter::BackendImpl(const std::string& name) {
  absl::MutexLock lock(&mu_);
  return backends_.at(name).impl;
}

int ModelRouter::PickDeployment(const ModelSpec& spec, const std::vector<size_t>& avoid) {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  std::vector<size_t> fresh, usable;
  for (size_t i = 0; i < spec.deployments.size(); ++i) {
    const DeploymentState& st = deployments_[{spec.name, i}];
    const bool open = st.open_until > now;
    const bool half_open = !open && st.consecutive_failures >= options_.breaker_failures;
    if (open || (half_open && st.probing)) continue;
    usable.push_back(i);
    if (std::find(avoid.begin(), avoid.end(), i) == avoid.end()) fresh.push_back(i);
  }
  const std::vector<size_t>& pool = fresh.empty() ? usable : fresh;
  if (pool.empty()) return -1;
  size_t chosen = pool.front();
  if (pool.size() > 1) {
    int64_t total = 0;
    for (size_t i : pool) total += spec.deployments[i].weight;
    thread_local absl::BitGen gen;
    int64_t pick = absl::Uniform<int64_t>(gen, 0, total);
    for (size_t i : pool) {
      if (pick < spec.deployments[i].weight) {
        chosen = i;
        break;
      }
      pick -= spec.deployments[i].weight;
    }
  }
  DeploymentState& st = deployments_[{spec.name, chosen}];
  if (st.consecutive_failures >= options_.breaker_failures) st.probing = true;  // half-open probe
  return static_cast<int>(chosen);
}

bool ModelRouter::AcquirePermit(const std::string& backend, const std::shared_ptr<RoutedCall>& call,
                                bool* queue_full) {
  absl::MutexLock lock(&mu_);
  Backend& b = backends_.at(backend);
  if (b.limits.max_concurrency <= 0 || b.in_flight < b.limits.max_concurrency) {
    ++b.in_flight;
    return true;
  }
  if (static_cast<int32_t>(b.waiting.size()) >= b.limits.max_queue) {
    *queue_full = true;
    return false;
  }
  b.waiting.push_back(call);
  return false;
}

void ModelRouter::ReleasePermit(const std::string& backend) {
  std::shared_ptr<RoutedCall> next;
  {
    absl::MutexLock lock(&mu_);
    Backend& b = backends_.at(backend);
    while (!b.waiting.empty() && next == nullptr) {
      next = b.waiting.front().lock();
      b.waiting.pop_front();
    }
    if (next == nullptr) --b.in_flight;  // else the permit passes to `next`
  }
  if (next) next->Resume();
}

void ModelRouter::ForgetWaiter(const std::string& backend, const RoutedCall* call) {
  absl::MutexLock lock(&mu_);
  auto& q = backends_.at(backend).waiting;
  q.erase(std::remove_if(q.begin(), q.end(),
                         [call](const std::weak_ptr<RoutedCall>& w) {
                           auto p = w.lock();
                           return p == nullptr || p.get() == call;
                         }),
          q.end());
}

void ModelRouter::RecordOutcome(const std::string& model, size_t index, bool success) {
  absl::MutexLock lock(&mu_);
  DeploymentState& st = deployments_[{model, index}];
  st.probing = false;
  if (success) {
    st.consecutive_failures = 0;
    st.open_until = absl::InfinitePast();
    return;
  }
  ++st.consecutive_failures;
  if (st.consecutive_failures >= options_.breaker_failures) {
    st.open_until = absl::Now() + options_.breaker_cooldown;
    spdlog::warn("circuit breaker open for model {} deployment {} after {} consecutive failures",
                 model, index, st.consecutive_failures);
  }
}

}  // namespace agentd::backend
