// ThreadSanitizer annotations for Debian's (uninstrumented) absl::Mutex and absl::CondVar.
//
// Linked only into -DAGENTD_SANITIZE=thread builds (scripts/sanitizers.sh tsan). Debian ships
// Abseil as shared libraries built without TSan, and absl::Mutex::Lock/Unlock/Await are out of
// line, so TSan never sees the happens-before edge an unlock -> lock pair creates and would report
// every access guarded by an absl::Mutex as a race. Building our own Abseil is not an option (we
// use Debian's packages), so this file interposes the Mutex/CondVar entry points: the executable's
// definitions win over the shared library's (ELF symbol interposition, also for calls made from
// gRPC's own shared libraries), each forwards to the real function found with dlsym(RTLD_NEXT)
// and tells TSan about the synchronization with __tsan_acquire/__tsan_release on the mutex:
//   - every way of taking the lock acquires after it returns (TryLock: when it succeeds);
//   - every way of releasing it (Unlock, and the wait inside Await/CondVar::Wait) releases first;
//   - a Condition is evaluated by Abseil while it holds the lock, maybe on another thread, so it
//     is wrapped to acquire before it reads the guarded state and release after.
// Reader locks are treated like writer locks (this can only hide races between two readers,
// which read-only access cannot have).
#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#define AGENTD_STRINGIZE_INNER(x) #x
#define AGENTD_STRINGIZE(x) AGENTD_STRINGIZE_INNER(x)

namespace {

// The mangled name of an absl member (`suffix` follows the inline namespace).
void* Real(const char* suffix) {
  const std::string ns = AGENTD_STRINGIZE(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  const std::string name =
      "_ZN4absl" + (ns.empty() ? std::string() : std::to_string(ns.size()) + ns) + suffix;
  void* fn = dlsym(RTLD_NEXT, name.c_str());
  if (fn == nullptr) {
    std::fprintf(stderr, "absl_sync_annotations: %s not found: %s\n", name.c_str(), dlerror());
    std::abort();
  }
  return fn;
}

template <typename Fn>
Fn RealAs(const char* suffix) {
  return reinterpret_cast<Fn>(Real(suffix));
}

struct AcquiringCondition {
  const absl::Condition* inner;
  absl::Mutex* mu;
};

// Abseil evaluates a waiter's condition while it holds the lock, on the waiter's thread or on
// the thread that is unlocking, and may release the lock right after (the waiter keeps waiting).
// So an evaluation is bracketed by acquire and release of its own. Its own reads of `ctx` (on the
// waiter's stack, maybe read by another thread) are not instrumented: absl orders them.
__attribute__((no_sanitize("thread"))) bool EvalAcquiring(void* arg) {
  auto* c = static_cast<AcquiringCondition*>(arg);
  absl::Mutex* mu = c->mu;
  const absl::Condition* inner = c->inner;
  __tsan_acquire(const_cast<absl::Condition*>(inner));  // the Condition was built on the waiter's thread (WithCondition)
  __tsan_acquire(mu);
  const bool met = inner->Eval();
  __tsan_release(mu);
  return met;
}

using VoidFn = void (*)(absl::Mutex*);
using BoolFn = bool (*)(absl::Mutex*);
using CondFn = void (*)(absl::Mutex*, const absl::Condition&);
using CondTimeoutFn = bool (*)(absl::Mutex*, const absl::Condition&, absl::Duration);
using CondDeadlineFn = bool (*)(absl::Mutex*, const absl::Condition&, absl::Time);

// Locks through `real` with `cond` wrapped so that its evaluations acquire `mu`.
template <typename Fn, typename... Extra>
auto WithCondition(Fn real, absl::Mutex* mu, const absl::Condition& cond, Extra... extra) {
  AcquiringCondition ctx{&cond, mu};
  absl::Condition wrapped(&EvalAcquiring, static_cast<void*>(&ctx));
  __tsan_release(const_cast<absl::Condition*>(&cond));
  return real(mu, wrapped, extra...);
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = RealAs<VoidFn>("5Mutex4LockEv");
  real(this);
  __tsan_acquire(this);
}

void Mutex::ReaderLock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = RealAs<VoidFn>("5Mutex10ReaderLockEv");
  real(this);
  __tsan_acquire(this);
}

bool Mutex::TryLock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = RealAs<BoolFn>("5Mutex7TryLockEv");
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

bool Mutex::ReaderTryLock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = RealAs<BoolFn>("5Mutex13ReaderTryLockEv");
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}

void Mutex::Unlock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = RealAs<VoidFn>("5Mutex6UnlockEv");
  __tsan_release(this);
  real(this);
}

void Mutex::ReaderUnlock() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = RealAs<VoidFn>("5Mutex12ReaderUnlockEv");
  __tsan_release(this);
  real(this);
}

void Mutex::LockWhen(const Condition& cond) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = RealAs<CondFn>("5Mutex8LockWhenERKNS0_9ConditionE");
  WithCondition(real, this, cond);
  __tsan_acquire(this);
}

void Mutex::ReaderLockWhen(const Condition& cond) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = RealAs<CondFn>("5Mutex14ReaderLockWhenERKNS0_9ConditionE");
  WithCondition(real, this, cond);
  __tsan_acquire(this);
}

bool Mutex::LockWhenWithTimeout(const Condition& cond,
                                absl::Duration timeout) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real =
      RealAs<CondTimeoutFn>("5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const bool met = WithCondition(real, this, cond, timeout);
  __tsan_acquire(this);  // the lock is held on return either way
  return met;
}

bool Mutex::LockWhenWithDeadline(const Condition& cond,
                                 absl::Time deadline) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real =
      RealAs<CondDeadlineFn>("5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const bool met = WithCondition(real, this, cond, deadline);
  __tsan_acquire(this);
  return met;
}

bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond,
                                      absl::Duration timeout) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = RealAs<CondTimeoutFn>(
      "5Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const bool met = WithCondition(real, this, cond, timeout);
  __tsan_acquire(this);
  return met;
}

bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond,
                                       absl::Time deadline) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = RealAs<CondDeadlineFn>(
      "5Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const bool met = WithCondition(real, this, cond, deadline);
  __tsan_acquire(this);
  return met;
}

void Mutex::Await(const Condition& cond) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real = RealAs<CondFn>("5Mutex5AwaitERKNS0_9ConditionE");
  __tsan_release(this);  // Await may unlock while it waits
  WithCondition(real, this, cond);
  __tsan_acquire(this);
}

bool Mutex::AwaitWithTimeout(const Condition& cond,
                             absl::Duration timeout) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real =
      RealAs<CondTimeoutFn>("5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  __tsan_release(this);
  const bool met = WithCondition(real, this, cond, timeout);
  __tsan_acquire(this);
  return met;
}

bool Mutex::AwaitWithDeadline(const Condition& cond,
                              absl::Time deadline) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  static const auto real =
      RealAs<CondDeadlineFn>("5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  __tsan_release(this);
  const bool met = WithCondition(real, this, cond, deadline);
  __tsan_acquire(this);
  return met;
}

using CvWaitFn = void (*)(CondVar*, Mutex*);
using CvTimeoutFn = bool (*)(CondVar*, Mutex*, absl::Duration);
using CvDeadlineFn = bool (*)(CondVar*, Mutex*, absl::Time);

void CondVar::Wait(Mutex* mu) {
  static const auto real = RealAs<CvWaitFn>("7CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  real(this, mu);
  __tsan_acquire(mu);
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  static const auto real =
      RealAs<CvTimeoutFn>("7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  __tsan_release(mu);
  const bool timed_out = real(this, mu, timeout);
  __tsan_acquire(mu);
  return timed_out;
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  static const auto real =
      RealAs<CvDeadlineFn>("7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  __tsan_release(mu);
  const bool timed_out = real(this, mu, deadline);
  __tsan_acquire(mu);
  return timed_out;
}

ABSL_NAMESPACE_END
}  // namespace absl
