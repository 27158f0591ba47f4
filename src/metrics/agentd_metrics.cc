#include "metrics/agentd_metrics.h"

#include <vector>

namespace agentd::metrics {
namespace {

// Latency buckets in seconds. A turn spans one fsync (~0.3 ms here) to minutes of model calls;
// a model call, a local echo (µs) to a slow provider; a commit, an fsync to a stalled disk.
const std::vector<double> kTurnBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                          0.25,   0.5,   1,      2.5,   5,    10,    30,    60,
                                          120,    300};
const std::vector<double> kModelCallBuckets = {0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                               0.5,    1,     2.5,   5,    10,    30,   60,  120};
const std::vector<double> kCommitBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                            0.01,   0.025,   0.05,   0.1,   0.25,   1};

constexpr std::array<const char*, kTurnOutcomes> kOutcomeNames = {"completed", "requires_action",
                                                                  "failed", "cancelled"};

}  // namespace

void CodeCounters::Inc(absl::StatusCode code) {
  const int raw = static_cast<int>(code);
  const size_t i = raw >= 0 && raw < kStatusCodes ? static_cast<size_t>(raw) : kStatusCodes;
  Counter* c = children_[i].load(std::memory_order_acquire);
  if (c == nullptr) {
    // First use of this code: the family dedups, so racing threads get the same child.
    std::vector<std::string> labels = fixed_labels_;
    labels.push_back(i == kStatusCodes ? "UNKNOWN" : absl::StatusCodeToString(code));
    c = family_->WithLabels(labels);
    children_[i].store(c, std::memory_order_release);
  }
  c->Inc();
}

ModelMetrics::ModelMetrics(const std::string& model, CounterFamily* calls,
                           HistogramFamily* durations, CounterFamily* tokens,
                           FloatCounterFamily* cost)
    : calls_(calls, {model}),
      duration_(durations->WithLabels({model})),
      input_tokens_(tokens->WithLabels({model, "input"})),
      output_tokens_(tokens->WithLabels({model, "output"})),
      cost_(cost->WithLabels({model})) {}

void ModelMetrics::CallDone(absl::StatusCode code, double seconds) {
  calls_.Inc(code);
  duration_->Observe(seconds);
}

void ModelMetrics::Usage(int64_t input_tokens, int64_t output_tokens, double cost_usd) {
  if (input_tokens > 0) input_tokens_->Inc(static_cast<uint64_t>(input_tokens));
  if (output_tokens > 0) output_tokens_->Inc(static_cast<uint64_t>(output_tokens));
  cost_->Add(cost_usd);
}

AgentdMetrics::AgentdMetrics() {
  // Registration order is the exposition order.
  CounterFamily* turns = registry_.AddCounter(
      "agentd_turns_total", "Turns that ran and recorded an outcome, by final status.",
      {"status"});
  for (int i = 0; i < kTurnOutcomes; ++i) turns_[i] = turns->WithLabels({kOutcomeNames[i]});
  turns_rejected_ = std::make_unique<CodeCounters>(
      registry_.AddCounter("agentd_turns_rejected_total",
                           "RunTurn/StreamTurn calls answered with a non-OK status without "
                           "running a turn, by gRPC status code.",
                           {"code"}),
      std::vector<std::string>{});
  turn_duration_ = registry_
                       .AddHistogram("agentd_turn_duration_seconds",
                                     "Turn latency from submission (queue wait included) until "
                                     "its outcome is durable.",
                                     {}, kTurnBuckets)
                       ->Get();
  model_calls_ = registry_.AddCounter(
      "agentd_model_calls_total",
      "Backend attempts of model calls (retries and fallbacks count separately), by configured "
      "model and status code.",
      {"model", "code"});
  model_call_duration_ = registry_.AddHistogram(
      "agentd_model_call_duration_seconds", "Latency of one backend attempt, by configured model.",
      {"model"}, kModelCallBuckets);
  model_tokens_ = registry_.AddCounter(
      "agentd_model_tokens_total", "Tokens reported by the backends, by model and type.",
      {"model", "type"});
  model_cost_ = registry_.AddFloatCounter(
      "agentd_model_cost_usd_total", "Cost in USD of model calls at the configured prices, by model.",
      {"model"});
  store_commit_ = registry_
                      .AddHistogram("agentd_store_commit_duration_seconds",
                                    "Latency of a session commit (one WriteBatch: events, record, "
                                    "usage; fsynced in sync durability).",
                                    {}, kCommitBuckets)
                      ->Get();
}

void AgentdMetrics::TurnFinished(TurnOutcome outcome, double seconds) {
  turns_[static_cast<size_t>(outcome)]->Inc();
  turn_duration_->Observe(seconds);
}

void AgentdMetrics::TurnRejected(absl::StatusCode code) { turns_rejected_->Inc(code); }

void AgentdMetrics::StoreCommit(double seconds) { store_commit_->Observe(seconds); }

void AgentdMetrics::AddModel(const std::string& name) {
  auto& slot = models_[name];
  if (slot == nullptr) {
    slot = std::make_unique<ModelMetrics>(name, model_calls_, model_call_duration_, model_tokens_,
                                          model_cost_);
  }
}

ModelMetrics* AgentdMetrics::Model(const std::string& name) const {
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : it->second.get();
}

}  // namespace agentd::metrics
