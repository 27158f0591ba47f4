// The crash test's driver and checker (issue #9, item 1): run a real agentd child under a turn
// load, kill -9 it at a random moment, restart it on the same data dir, and after every restart
// check what a client was promised:
//   - every acknowledged turn (RunTurn returned OK) still has its events, byte-identical, at the
//     seqs the result named;
//   - each session's seqs are gap-free from 1 and end at the session's last_seq;
//   - no session is left RUNNING (startup recovery records the interrupted turn as failed);
//   - the turn whose RPC the kill cut off, retried with its idempotency_key, answers the stored
//     result if it had completed, or runs once; a second retry answers byte-identically; and no
//     idempotency_key ever has two turns that were not interrupted by a crash (an attempt cut off
//     mid-turn is recorded TURN_FAILED by recovery and, as docs/api.md says, a retry of a failed
//     call runs again).
// Half the sessions use the inline `echo` model (a turn is one WriteBatch), half a fake
// OpenAI-compatible model with a few ms of latency (the turn's opening events commit first, so
// kills land while sessions are durably RUNNING).
//
// The checker counts violations instead of stopping at the first, so the control run
// (`durability: none`, no WAL) can show that it does detect lost acknowledged turns.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace agentd::testing {

struct CrashOptions {
  int cycles = 10;
  std::string durability = "sync";  // the child's config value: sync | relaxed | none
  int echo_sessions = 4;            // sessions on the inline echo model
  int slow_sessions = 4;            // sessions on the fake model (latency below)
  int model_latency_ms = 15;
  int min_kill_ms = 50;  // the kill comes a uniformly random 50..400 ms into each cycle's load
  int max_kill_ms = 400;
  uint32_t seed = 12345;
  // Control run: stop the child with SIGTERM after setup (a clean close flushes the memtables,
  // so agents and sessions survive without a WAL) and kill only once a cycle has this many
  // acknowledged turns, so every cycle has something to lose.
  bool clean_restart_after_setup = false;
  int min_acks_before_kill = 0;
};

struct CrashReport {
  int cycles = 0;                       // kill -9 + restart + check rounds completed
  int64_t acked_turns = 0;              // distinct acknowledged turns (retries answered included)
  int64_t acked_checks = 0;             // acknowledged turns verified, summed over all checks
  int64_t lost = 0;                     // distinct acknowledged turns missing or changed at a check
  int64_t gap_sessions = 0;             // checks that found a seq gap or last_seq mismatch
  int64_t stuck_running = 0;            // checks that found a session RUNNING after restart
  int64_t duplicates = 0;               // idempotency keys with two turns not cut off by a crash
  int64_t retries = 0;                  // unacknowledged turns retried after a restart
  int64_t retries_replayed = 0;         //   answered from the stored result (it had completed)
  int64_t retries_ran = 0;              //   ran (it had not committed, or was cut off mid-turn)
  int64_t retries_after_interrupt = 0;  // of retries_ran: the first attempt had started and was
                                        // recorded failed by recovery (TURN_STARTED twice)
  int64_t retry_mismatches = 0;         // second retry not byte-identical to the first, or failed
  int64_t interrupted_turns = 0;        // turns recovery recorded as failed (cut off by a kill)
  std::map<std::string, int64_t> rpc_errors;  // load RPC errors by status code name
  std::vector<std::string> failures;          // the first few violations, for messages
  double wall_seconds = 0;

  bool clean() const {
    return lost == 0 && gap_sessions == 0 && stuck_running == 0 && duplicates == 0 &&
           retry_mismatches == 0;
  }
  /// One line of figures (the script greps the "crash test:" prefix).
  std::string Summary(const std::string& label) const;
};

/// Runs `options.cycles` kill -9 cycles against a fresh agentd child in a temp dir. Setup
/// problems (the child does not start, CreateAgent fails) are gtest failures; violations are
/// counted in the report.
CrashReport RunCrashCycles(const CrashOptions& options);

/// The cycle count from the environment variable `name` if set (a positive integer), else
/// `fallback`.
int CyclesFromEnv(const char* name, int fallback);

}  // namespace agentd::testing
