// kill -9 a real agentd child process under a turn load at random moments, restart it on the same
// data dir, and check after every restart that no acknowledged turn was lost or changed, seqs are
// gap-free, no session is stuck RUNNING, and idempotent retries of the cut-off turns duplicate
// nothing (tests/reliability/crash_harness.h has the exact rules).
//
// CI runs a few cycles; AGENTD_CRASH_CYCLES=200 (or scripts/crash-test.sh 200) runs the full
// test. AGENTD_CRASH_SEED picks the kill moments. The control test runs the same checker against
// `durability: none` (no WAL) and requires it to find the losses, so the checker can fail.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "reliability/crash_harness.h"

namespace agentd {
namespace {

using testing::CrashOptions;
using testing::CrashReport;

uint32_t SeedFromEnv() {
  const char* v = std::getenv("AGENTD_CRASH_SEED");
  return v == nullptr ? 12345u : static_cast<uint32_t>(std::strtoul(v, nullptr, 10));
}

// The control run's violations are the expected ones: it shows the first few as "detected".
void Print(const CrashReport& r, const std::string& label, uint32_t seed, bool control = false) {
  std::printf("%s (seed %u)\n", r.Summary(label).c_str(), seed);
  for (size_t i = 0; i < r.failures.size() && (!control || i < 3); ++i) {
    std::printf("  %s: %s\n", control ? "detected" : "violation", r.failures[i].c_str());
  }
  std::fflush(stdout);
}

TEST(CrashTest, KillNineUnderLoadLosesNoAcknowledgedTurn) {
  CrashOptions o;
  o.cycles = testing::CyclesFromEnv("AGENTD_CRASH_CYCLES", 25);
  o.seed = SeedFromEnv();
  const CrashReport r = testing::RunCrashCycles(o);
  Print(r, "durability sync", o.seed);
  ASSERT_EQ(r.cycles, o.cycles);
  EXPECT_GT(r.acked_turns, 0);
  EXPECT_GT(r.retries, 0) << "no kill cut a turn off: the load did not reach the kill";
  EXPECT_EQ(r.lost, 0);
  EXPECT_EQ(r.gap_sessions, 0);
  EXPECT_EQ(r.stuck_running, 0);
  EXPECT_EQ(r.duplicates, 0);
  EXPECT_EQ(r.retry_mismatches, 0);
  EXPECT_TRUE(r.clean());
}

// The same load and checker with the WAL disabled: the kill drops the acknowledged turns still in
// memtables, and the checker must say so.
TEST(CrashTest, ControlWithoutWalDetectsLostTurns) {
  CrashOptions o;
  o.durability = "none";
  o.cycles = testing::CyclesFromEnv("AGENTD_CRASH_CONTROL_CYCLES", 3);
  o.seed = SeedFromEnv();
  // Agents and sessions reach SST files through a clean stop; each cycle kills only after some
  // acknowledged turns, so every cycle has turns to lose (memtables are far from a flush).
  o.clean_restart_after_setup = true;
  o.min_acks_before_kill = 8;
  const CrashReport r = testing::RunCrashCycles(o);
  Print(r, "control: durability none, no WAL", o.seed, /*control=*/true);
  ASSERT_EQ(r.cycles, o.cycles);
  EXPECT_GE(r.acked_turns, 8 * o.cycles);
  EXPECT_GT(r.lost, 0) << "the checker missed the turns a WAL-less crash loses";
  EXPECT_FALSE(r.clean());
}

}  // namespace
}  // namespace agentd
