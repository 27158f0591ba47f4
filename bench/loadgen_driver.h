// loadgen: drives agent steps on sessions of a running agentd with gRPC's callback API (no thread
// per session), in a closed loop (N sessions × M steps) or an open loop (fixed arrival rate).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agentd/v1/session.grpc.pb.h"
#include "loadgen_stats.h"

namespace agentd::bench::loadgen {

using Clock = std::chrono::steady_clock;

/// How a step's tool call is answered: not at all (echo model), by agentd itself (a BUILTIN
/// tool such as state_get: one RunTurn per step), or by loadgen (a CLIENT tool: the turn ends
/// REQUIRES_ACTION and a second RunTurn carries the tool result).
enum class ToolMode { kNone, kBuiltin, kClient };

/// What every step sends and checks. Read-only while steps run.
struct Workload {
  std::string authorization;  // "Bearer <key>"
  ToolMode tool = ToolMode::kNone;
  size_t message_bytes = 200;       // the user message of a step
  size_t tool_result_bytes = 1024;  // client mode: the tool output loadgen sends back
  bool check_echo = false;          // echo model: the answer must equal the message
  std::chrono::milliseconds timeout{30000};
};

/// Counts of failed steps by kind ("rpc:UNAVAILABLE", "turn:TURN_STATUS_FAILED",
/// "check:no_tool_step", ...), and a few example messages.
struct Errors {
  std::map<std::string, int64_t> by_kind;
  std::vector<std::string> samples;
  int64_t total() const;
  void Add(const std::string& kind, const std::string& message);
  void Merge(const Errors& other);
};

class SessionRunner;

/// Told when a runner finished a step (on a gRPC callback thread).
class StepListener {
 public:
  virtual ~StepListener() = default;
  virtual void OnStepDone(SessionRunner* runner) = 0;
};

/// One session's steps, strictly one at a time. A step = RunTurn with the user message (plus,
/// in client mode, RunTurn with the tool results after REQUIRES_ACTION), checked. Not
/// thread-safe: its calls are sequential, so one thread at a time touches it.
class SessionRunner {
 public:
  SessionRunner(v1::SessionService::Stub* stub, std::string session_id, const Workload* workload);

  /// Starts the next step; its latency counts from `scheduled` (the send time in a closed loop,
  /// the arrival time in an open loop). `listener` is told when it finished.
  void StartStep(Clock::time_point scheduled, StepListener* listener);

  /// Whether finished steps are kept as samples (off during warm-up).
  void set_record(bool on) { record_ = on; }
  /// Steps left in a closed loop (the loop's bookkeeping).
  int budget = 0;

  const std::string& session_id() const { return session_id_; }
  const std::vector<Sample>& samples() const { return samples_; }
  const Errors& errors() const { return errors_; }
  /// Recorded steps that saw the model's tool call and its result.
  int64_t tool_steps() const { return tool_steps_; }
  /// Model calls reported by the turns' usage (recorded steps).
  int64_t model_calls() const { return model_calls_; }

 private:
  void Issue();
  void OnReply(const grpc::Status& status);
  void Finish(const std::string& error_kind, const std::string& message);

  v1::SessionService::Stub* const stub_;
  const std::string session_id_;
  const Workload* const workload_;
  StepListener* listener_ = nullptr;
  std::unique_ptr<grpc::ClientContext> ctx_;
  v1::RunTurnRequest request_;
  v1::TurnResult response_;
  std::string message_;
  Clock::time_point scheduled_;
  int32_t turn_index_ = 0;  // of the step in flight (1-based)
  int rounds_ = 0;          // RunTurn calls in this step
  bool saw_tool_call_ = false, saw_tool_result_ = false;
  int64_t step_model_calls_ = 0;
  int64_t last_seq_ = 0;
  bool record_ = true;
  std::vector<Sample> samples_;
  Errors errors_;
  int64_t tool_steps_ = 0;
  int64_t model_calls_ = 0;
};

/// Result of one loop over a set of runners.
struct LoopResult {
  double wall_s = 0;      // first send → last step done
  int64_t issued = 0;     // steps started
  int64_t max_queue = 0;  // open loop: most arrivals waiting for an idle session
};

/// Closed loop: every runner runs `steps` steps back to back; runners run concurrently.
LoopResult RunClosedLoop(const std::vector<SessionRunner*>& runners, int steps);

/// Open loop: steps arrive at `rate` per second for `duration_s`; each goes to an idle runner,
/// or waits (FIFO) for one, its latency still counted from its arrival time. Returns when every
/// arrived step has finished.
LoopResult RunOpenLoop(const std::vector<SessionRunner*>& runners, double rate, double duration_s);

}  // namespace agentd::bench::loadgen
