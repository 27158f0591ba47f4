// AgentdMetrics: the catalog of agentd's Prometheus metrics (every name, help text, label set
// and bucket list is here; docs/operations.md "Metrics" lists them) and the cached children the
// hot paths update.
//
// Ownership: the server creates one AgentdMetrics and passes a pointer to the router
// (RouterOptions::metrics), the turn engine (TurnDeps::metrics) and the HTTP endpoint; null
// everywhere means "not measured" (unit tests). Gauges that other components own (turns in
// flight, sessions, circuit breakers) are registered by the server as scrape-time callbacks.
//
// Cost on the hot path: a turn's outcome is an array index and two relaxed atomic adds plus a
// histogram observation; a model call's counters are looked up by model once per call through a
// map that is frozen before serving, and its per-status-code child is created on first use and
// then read through an atomic pointer. Nothing here allocates after a child exists.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "metrics/metrics.h"

namespace agentd::metrics {

/// How a turn that ran ended (agentd_turns_total{status}).
enum class TurnOutcome { kCompleted = 0, kRequiresAction = 1, kFailed = 2, kCancelled = 3 };
inline constexpr int kTurnOutcomes = 4;
/// Canonical status codes 0..16 (OK .. UNAUTHENTICATED).
inline constexpr int kStatusCodes = 17;

/// Counters of one status-code-labelled family for a fixed set of other label values, with the
/// child for each code created on first use and then read lock-free.
class CodeCounters {
 public:
  CodeCounters(CounterFamily* family, std::vector<std::string> fixed_labels)
      : family_(family), fixed_labels_(std::move(fixed_labels)) {}
  void Inc(absl::StatusCode code);

 private:
  CounterFamily* const family_;
  const std::vector<std::string> fixed_labels_;
  std::array<std::atomic<Counter*>, kStatusCodes + 1> children_{};  // last: out-of-range codes
};

/// The metrics of one configured model.
class ModelMetrics {
 public:
  ModelMetrics(const std::string& model, CounterFamily* calls, HistogramFamily* durations,
               CounterFamily* tokens, FloatCounterFamily* cost);
  /// One backend attempt of this model ended with `code` after `seconds`. Thread-safe.
  void CallDone(absl::StatusCode code, double seconds);
  /// Tokens and cost of a successful attempt. Thread-safe.
  void Usage(int64_t input_tokens, int64_t output_tokens, double cost_usd);

 private:
  CodeCounters calls_;
  Histogram* const duration_;
  Counter* const input_tokens_;
  Counter* const output_tokens_;
  FloatCounter* const cost_;
};

class AgentdMetrics {
 public:
  AgentdMetrics();
  AgentdMetrics(const AgentdMetrics&) = delete;
  AgentdMetrics& operator=(const AgentdMetrics&) = delete;

  Registry& registry() { return registry_; }

  /// A turn ran and its outcome is durable; `seconds` from submission (queue wait included).
  void TurnFinished(TurnOutcome outcome, double seconds);
  /// A RunTurn/StreamTurn call was answered with a non-OK status and no turn outcome was
  /// recorded (invalid request, session busy or missing, limits, draining, store failure).
  void TurnRejected(absl::StatusCode code);
  /// One synced (or, in relaxed durability, WAL-only) session commit took `seconds`.
  void StoreCommit(double seconds);

  /// Registers a configured model. Call for every model before serving (not thread-safe
  /// against Model()).
  void AddModel(const std::string& name);
  /// The metrics of a model added with AddModel, else null. Lock-free; thread-safe once
  /// serving.
  ModelMetrics* Model(const std::string& name) const;

 private:
  Registry registry_;
  std::array<Counter*, kTurnOutcomes> turns_{};
  std::unique_ptr<CodeCounters> turns_rejected_;
  Histogram* turn_duration_;
  Histogram* store_commit_;
  CounterFamily* model_calls_;
  HistogramFamily* model_call_duration_;
  CounterFamily* model_tokens_;
  FloatCounterFamily* model_cost_;
  absl::flat_hash_map<std::string, std::unique_ptr<ModelMetrics>> models_;
};

/// Seconds since `start` on the steady clock.
inline double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// Registers agentd_process_* (resident and virtual memory from /proc/self/statm, CPU seconds,
/// open fds, start time) and agentd_build_info on `registry`.
void RegisterProcessMetrics(Registry* registry);

}  // namespace agentd::metrics
