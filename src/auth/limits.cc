#include "auth/limits.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/civil_time.h"
#include "common/status_macros.h"

namespace agentd::auth {
namespace {

absl::Time StartOfDay(absl::CivilDay day) { return absl::FromCivil(day, absl::UTCTimeZone()); }

std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

/// Dollars with at least two decimals and as many more (up to six) as the value needs.
std::string FormatUsd(double usd) {
  std::string s = absl::StrFormat("%.6f", usd);
  const size_t dot = s.find('.');
  while (s.size() > dot + 3 && s.back() == '0') s.pop_back();
  return absl::StrCat("$", s);
}

int32_t FirstDayOfMonth(absl::Time now) {
  const absl::CivilMonth month = absl::ToCivilMonth(now, absl::UTCTimeZone());
  return DayOf(StartOfDay(absl::CivilDay(month)));
}

}  // namespace

int32_t DayOf(absl::Time t) {
  return static_cast<int32_t>(absl::ToCivilDay(t, absl::UTCTimeZone()) -
                              absl::CivilDay(1970, 1, 1));
}

std::vector<store::UsageDelta> UsageDeltas(absl::string_view agent_id, absl::string_view session_id,
                                           absl::string_view model, int32_t day,
                                           const v1::Usage& usage) {
  std::vector<store::UsageDelta> deltas;
  deltas.reserve(4);
  auto add = [&](store::UsageDimension dimension, absl::string_view group) {
    store::UsageDelta delta;
    delta.dimension = dimension;
    delta.group = std::string(group);
    delta.day = day;
    delta.usage = usage;
    deltas.push_back(std::move(delta));
  };
  add(store::UsageDimension::kDay, "");
  // Grouped counters need a group; a call without one (e.g. no session) counts in the total only.
  if (!agent_id.empty()) add(store::UsageDimension::kAgent, agent_id);
  if (!session_id.empty()) add(store::UsageDimension::kSession, session_id);
  if (!model.empty()) add(store::UsageDimension::kModel, model);
  return deltas;
}

/// One project's cached limits, usage totals and request bucket.
struct LimitEnforcer::ProjectState {
  absl::Mutex mu;
  bool loaded ABSL_GUARDED_BY(mu) = false;  // false: reload on next use
  absl::Time loaded_at ABSL_GUARDED_BY(mu);
  int32_t day ABSL_GUARDED_BY(mu) = 0;  // the UTC day the totals were read for
  v1::ProjectLimits limits ABSL_GUARDED_BY(mu);
  double month_cost ABSL_GUARDED_BY(mu) = 0;     // USD spent this UTC month
  int64_t today_tokens ABSL_GUARDED_BY(mu) = 0;  // input + output tokens this UTC day
  // Token bucket: capacity bucket_rpm, refilled at bucket_rpm / 60 per second.
  int32_t bucket_rpm ABSL_GUARDED_BY(mu) = 0;
  double bucket_tokens ABSL_GUARDED_BY(mu) = 0;
  absl::Time bucket_time ABSL_GUARDED_BY(mu);
};

LimitEnforcer::LimitEnforcer(store::ContextStore* store, absl::Duration refresh)
    : store_(store), refresh_(refresh) {}

absl::StatusOr<std::shared_ptr<LimitEnforcer::ProjectState>> LimitEnforcer::State(
    const std::string& project_id) {
  std::shared_ptr<ProjectState> st;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = projects_.find(project_id);
    if (it != projects_.end()) st = it->second;
  }
  if (st == nullptr) {
    absl::MutexLock lock(&mu_);
    std::shared_ptr<ProjectState>& slot = projects_[project_id];
    if (slot == nullptr) slot = std::make_shared<ProjectState>();
    st = slot;
  }

  const absl::Time now = absl::Now();
  const int32_t today = DayOf(now);
  absl::MutexLock lock(&st->mu);
  if (st->loaded && now - st->loaded_at < refresh_ && st->day == today) return st;

  // Reload under the project's lock: concurrent turns of the project wait for one read instead
  // of each issuing their own.
  v1::ProjectLimits limits;
  absl::StatusOr<v1::Project> project = store_->GetProject(project_id);
  if (project.ok()) {
    limits = project->limits();
  } else if (!absl::IsNotFound(project.status())) {
    return project.status();
  }  // a project without a record (e.g. data from before projects) is unlimited
  double month_cost = 0;
  int64_t today_tokens = 0;
  if (limits.monthly_budget_usd() > 0 || limits.daily_token_limit() > 0) {
    AGENTD_ASSIGN_OR_RETURN(
        std::vector<store::UsageCounter> counters,
        store_->ReadUsage(project_id, store::UsageDimension::kDay, FirstDayOfMonth(now), today));
    for (const store::UsageCounter& c : counters) {
      month_cost += c.usage.cost_usd();
      if (c.day == today) today_tokens += c.usage.input_tokens() + c.usage.output_tokens();
    }
  }
  st->limits = limits;
  st->month_cost = month_cost;
  st->today_tokens = today_tokens;
  st->day = today;
  st->loaded_at = now;
  st->loaded = true;
  if (limits.requests_per_minute() != st->bucket_rpm) {  // new or changed rate: start full
    st->bucket_rpm = limits.requests_per_minute();
    st->bucket_tokens = st->bucket_rpm;
    st->bucket_time = now;
  }
  return st;
}

absl::StatusOr<v1::ProjectLimits> LimitEnforcer::Limits(const std::string& project_id) {
  AGENTD_ASSIGN_OR_RETURN(std::shared_ptr<ProjectState> st, State(project_id));
  absl::MutexLock lock(&st->mu);
  return st->limits;
}

absl::Status LimitEnforcer::CheckTotals(const std::string& project_id, ProjectState& st) {
  const double budget = st.limits.monthly_budget_usd();
  if (budget > 0 && st.month_cost >= budget) {
    const absl::CivilMonth next = absl::ToCivilMonth(absl::Now(), absl::UTCTimeZone()) + 1;
    return absl::ResourceExhaustedError(absl::StrCat(
        "monthly budget of ", FormatUsd(budget), " exceeded for project ", project_id, " (spent ",
        FormatUsd(st.month_cost), "); resets at ", FormatUtc(StartOfDay(absl::CivilDay(next)))));
  }
  const int64_t token_limit = st.limits.daily_token_limit();
  if (token_limit > 0 && st.today_tokens >= token_limit) {
    const absl::CivilDay tomorrow = absl::ToCivilDay(absl::Now(), absl::UTCTimeZone()) + 1;
    return absl::ResourceExhaustedError(
        absl::StrCat("daily token limit of ", token_limit, " exceeded for project ", project_id,
                     " (used ", st.today_tokens, "); resets at ", FormatUtc(StartOfDay(tomorrow))));
  }
  return absl::OkStatus();
}

absl::Status LimitEnforcer::AdmitTurn(const std::string& project_id) {
  AGENTD_ASSIGN_OR_RETURN(std::shared_ptr<ProjectState> st, State(project_id));
  absl::MutexLock lock(&st->mu);
  // Totals first: a turn refused for its budget does not also use up a request.
  AGENTD_RETURN_IF_ERROR(CheckTotals(project_id, *st));
  const int32_t rpm = st->bucket_rpm;
  if (rpm <= 0) return absl::OkStatus();
  const absl::Time now = absl::Now();
  const double per_second = rpm / 60.0;
  st->bucket_tokens = std::min<double>(
      rpm, st->bucket_tokens + absl::ToDoubleSeconds(now - st->bucket_time) * per_second);
  st->bucket_time = now;
  if (st->bucket_tokens >= 1.0) {
    st->bucket_tokens -= 1.0;
    return absl::OkStatus();
  }
  // Rounded up to the tenth, so a retry after the stated wait finds a token.
  const double wait = std::ceil((1.0 - st->bucket_tokens) / per_second * 10.0) / 10.0;
  return absl::ResourceExhaustedError(
      absl::StrFormat("requests_per_minute limit of %d exceeded for project %s; retry in %.1fs",
                      rpm, project_id, wait));
}

absl::Status LimitEnforcer::CheckStep(const std::string& project_id) {
  AGENTD_ASSIGN_OR_RETURN(std::shared_ptr<ProjectState> st, State(project_id));
  absl::MutexLock lock(&st->mu);
  return CheckTotals(project_id, *st);
}

void LimitEnforcer::Recorded(const std::string& project_id, const v1::Usage& usage) {
  std::shared_ptr<ProjectState> st;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = projects_.find(project_id);
    if (it == projects_.end()) return;  // never checked: the first check reads the store
    st = it->second;
  }
  absl::MutexLock lock(&st->mu);
  // Totals of another day are reloaded on the next check, which also sees this usage.
  if (!st->loaded || st->day != DayOf(absl::Now())) return;
  st->today_tokens += usage.input_tokens() + usage.output_tokens();
  st->month_cost += usage.cost_usd();
}

void LimitEnforcer::Invalidate(const std::string& project_id) {
  std::shared_ptr<ProjectState> st;
  {
    absl::ReaderMutexLock lock(&mu_);
    auto it = projects_.find(project_id);
    if (it == projects_.end()) return;
    st = it->second;
  }
  absl::MutexLock lock(&st->mu);
  st->loaded = false;  // the bucket is kept unless the rate changed
}

}  // namespace agentd::auth
