#include "sdk/retry.h"

#include <algorithm>

#include "absl/random/random.h"

namespace agentd::internal {

absl::Duration BackoffDelay(const RetryPolicy& policy, int retry) {
  absl::Duration d = policy.initial_backoff;
  for (int i = 1; i < retry && d < policy.max_backoff; ++i) d *= 2;
  d = std::min(d, policy.max_backoff);
  if (d <= absl::ZeroDuration()) return absl::ZeroDuration();
  // One generator per thread: absl::BitGen is not thread-safe and costly to seed per call.
  thread_local absl::BitGen gen;
  const double half = absl::ToDoubleMicroseconds(d) / 2;
  return absl::Microseconds(half + absl::Uniform(gen, 0.0, half));
}

bool Retrier::Retryable(absl::StatusCode code) const {
  switch (class_) {
    case RetryClass::kNever:
      return false;
    case RetryClass::kSafe:
      return code == absl::StatusCode::kUnavailable;
    case RetryClass::kTurn:
      // ABORTED on a fresh turn means "expected_last_seq mismatch" or "key still running" and
      // is the caller's business; after an UNAVAILABLE attempt it is our own first attempt.
      return code == absl::StatusCode::kUnavailable ||
             (code == absl::StatusCode::kAborted && saw_unavailable_);
  }
  return false;
}

bool Retrier::ShouldRetry(const absl::Status& status) {
  if (!Retryable(status.code()) || attempts_ >= policy_.max_attempts) return false;
  if (status.GetPayload(kRecordedTurnPayload).has_value()) return false;
  if (status.code() == absl::StatusCode::kUnavailable) saw_unavailable_ = true;
  absl::SleepFor(BackoffDelay(policy_, attempts_));
  ++attempts_;
  return true;
}

}  // namespace agentd::internal
