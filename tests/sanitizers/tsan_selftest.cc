// Proves the TSan run can fail, and that absl_sync_annotations.cc gives TSan the edges of
// Debian's absl::Mutex without hiding real races. scripts/sanitizers.sh tsan runs every mode:
//   tsan_selftest race      two threads write a counter with no lock      -> TSan must report
//   tsan_selftest mutex     the same, each write under absl::MutexLock    -> no report
//   tsan_selftest condvar   a value handed over with absl::CondVar        -> no report
//   tsan_selftest await     a value handed over with Mutex::Await(cond)   -> no report
//   tsan_selftest lockwhen  a value handed over with Mutex::LockWhen      -> no report
// Exit code 0 = no report (TSan exits 66 when it reported, with halt_on_error=1).
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "absl/synchronization/mutex.h"

namespace {

// Not atomic on purpose: only the mutex (when used) orders the accesses.
long counter = 0;

int RaceOrMutex(bool locked) {
  absl::Mutex mu;
  auto work = [&] {
    for (int i = 0; i < 10000; ++i) {
      if (locked) {
        absl::MutexLock lock(&mu);
        ++counter;
      } else {
        ++counter;
      }
    }
  };
  std::thread a(work), b(work);
  a.join();
  b.join();
  std::printf("counter %ld\n", counter);
  return 0;
}

struct Handoff {
  absl::Mutex mu;
  absl::CondVar cv;
  bool ready = false;
  std::string value;  // written by the producer before `ready`
};

int HandOver(const std::string& how) {
  Handoff h;
  std::thread producer([&] {
    absl::MutexLock lock(&h.mu);
    h.value = "payload";
    h.ready = true;
    h.cv.Signal();
  });
  std::string got;
  if (how == "condvar") {
    absl::MutexLock lock(&h.mu);
    while (!h.ready) h.cv.Wait(&h.mu);
    got = h.value;
  } else if (how == "await") {
    absl::MutexLock lock(&h.mu);
    h.mu.Await(absl::Condition(+[](Handoff* x) { return x->ready; }, &h));
    got = h.value;
  } else {
    h.mu.LockWhen(absl::Condition(+[](Handoff* x) { return x->ready; }, &h));
    got = h.value;
    h.mu.Unlock();
  }
  producer.join();
  std::printf("got %s\n", got.c_str());
  return got == "payload" ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "race" || mode == "mutex") return RaceOrMutex(mode == "mutex");
  if (mode == "condvar" || mode == "await" || mode == "lockwhen") return HandOver(mode);
  std::fprintf(stderr, "usage: tsan_selftest race|mutex|condvar|await|lockwhen\n");
  return 2;
}
