// Retry rules of the C++ SDK (docs/sdk-cpp.md "Retries and idempotency"): which failures of
// which calls are retried, and the backoff between attempts. Internal (not installed).
#pragma once

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace agentd::internal {

/// What a call may safely repeat after a failure it cannot see the end of.
enum class RetryClass {
  /// Creates, unconditional writes, CancelTurn: a second run could apply twice. Never retried.
  kNever,
  /// Reads, deletes, compare-and-set writes, keyed upserts: retried on UNAVAILABLE.
  kSafe,
  /// Turns sent with an idempotency key: retried on UNAVAILABLE, and on ABORTED once an attempt
  /// was UNAVAILABLE (the server is still running the first attempt under the same key).
  kTurn,
};

struct RetryPolicy {
  int max_attempts = 4;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
};

/// The pause before retry number `retry` (1 = the first retry): exponential from
/// initial_backoff, capped at max_backoff, with "equal jitter" (uniform in [d/2, d]) so that
/// clients cut off together do not come back together.
absl::Duration BackoffDelay(const RetryPolicy& policy, int retry);

/// Payload (absl::Status::SetPayload) of a turn call's failure that is the outcome of a turn
/// the server ran and recorded as failed (its trailing metadata `x-agentd-turn-id`; the value is
/// the turn id). Such a failure is final: retrying would only record another failed turn.
inline constexpr char kRecordedTurnPayload[] = "agentd.dev/recorded-turn";

/// Counts the attempts of one call and decides, after each failure, whether to go again.
/// Not thread-safe: one per call.
class Retrier {
 public:
  Retrier(const RetryPolicy& policy, RetryClass retry_class)
      : policy_(policy), class_(retry_class) {}

  /// After a failed attempt: true (having slept the backoff) when another attempt should be
  /// made; false when `status` is final (also when it carries kRecordedTurnPayload).
  bool ShouldRetry(const absl::Status& status);
  /// Progress was made (a stream delivered data): the next failure starts a fresh count.
  void Reset() { attempts_ = 1; }
  int attempts() const { return attempts_; }

 private:
  bool Retryable(absl::StatusCode code) const;

  const RetryPolicy policy_;
  const RetryClass class_;
  int attempts_ = 1;
  bool saw_unavailable_ = false;
};

}  // namespace agentd::internal
