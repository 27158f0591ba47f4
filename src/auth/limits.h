// LimitEnforcer: project limits checked before every model call, and usage counting.
//
// Limits (v1::ProjectLimits, 0 = unlimited): monthly_budget_usd (cost this UTC calendar month),
// daily_token_limit (input + output tokens this UTC day), requests_per_minute (turn requests,
// a token bucket per project in this process: with N replicas a project may reach N times
// the rate). Usage totals come from the store's kDay counters, cached per project for
// `refresh` and advanced locally as this process commits usage; so concurrent turns overshoot
// a budget by at most the steps already in flight (plus what other replicas spent within
// `refresh`).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agentd/v1/common.pb.h"
#include "store/context_store.h"

namespace agentd::auth {

/// Days since 1970-01-01 UTC.
int32_t DayOf(absl::Time t);

/// The four counters a model call adds to (day total, agent, session, model), for `day`.
std::vector<store::UsageDelta> UsageDeltas(absl::string_view agent_id,
                                           absl::string_view session_id,
                                           absl::string_view model, int32_t day,
                                           const v1::Usage& usage);

class LimitEnforcer {
 public:
  explicit LimitEnforcer(store::ContextStore* store, absl::Duration refresh = absl::Seconds(1));

  /// At the start of a turn: consumes one request from the project's bucket and checks the
  /// budget and the token limit. RESOURCE_EXHAUSTED naming the limit and when it resets
  /// (e.g. "requests_per_minute limit of 60 exceeded for project p; retry in 0.8s").
  absl::Status AdmitTurn(const std::string& project_id);
  /// Before each further model call of a turn: budget and token limit only.
  absl::Status CheckStep(const std::string& project_id);
  /// After usage was committed (same batch as the step's events): advances the cached totals.
  void Recorded(const std::string& project_id, const v1::Usage& usage);
  /// The project's limits as last read (at most `refresh` old), e.g. its tool allow-list.
  absl::StatusOr<v1::ProjectLimits> Limits(const std::string& project_id);
  /// Forget cached limits and totals (SetLimits in this process).
  void Invalidate(const std::string& project_id);

 private:
  struct ProjectState;
  /// The project's state, refreshed from the store when older than refresh_. Never null.
  absl::StatusOr<std::shared_ptr<ProjectState>> State(const std::string& project_id);
  absl::Status CheckTotals(const std::string& project_id, ProjectState& st);

  store::ContextStore* store_;
  const absl::Duration refresh_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<ProjectState>> projects_ ABSL_GUARDED_BY(mu_);
};

}  // namespace agentd::auth
