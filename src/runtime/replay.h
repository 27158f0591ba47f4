// ReplaySession: re-runs the user inputs of a session, turn by turn and in order, against another
// model, in a new session forked from the source before its first event (for evaluating a model
// on a real conversation). Each turn goes through SessionManager::SubmitTurn like any other.
//
// The plan is read from the source's log: a source turn that opened with input messages (the
// MESSAGE events right after TURN_STARTED and its tool results, before anything the model
// produced) is replayed with the same messages and `model` as model_override. Tool results that
// opened later turns answered client tool calls; they are the "recorded results" of the input
// turn they followed. When a replayed turn returns REQUIRES_ACTION, each required call is
// answered with the next recorded result for a call of the same tool name, or with an error
// result "no recorded result" when there is none; the answer is a new turn, and so on (at most
// kMaxReplayToolRounds per source turn). Every turn's TurnResult is returned, in order.
//
// Failure: when a turn cannot run or ends with an error status (deadline, cancellation, model
// unavailable), the replay stops, the new session is deleted and the error is returned.
//
// Threading: the replay advances on the threads that finish its turns; no thread waits.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agentd/v1/session.pb.h"

namespace agentd::runtime {

class SessionManager;
class Turn;

/// Tool rounds (REQUIRES_ACTION answered from the recording) one replayed input may take.
inline constexpr int32_t kMaxReplayToolRounds = 64;

class ReplayRun : public std::enable_shared_from_this<ReplayRun> {
 public:
  using Done = std::function<void(const absl::Status&, const v1::ReplaySessionResponse&)>;

  /// One input turn of the source and the client tool results recorded after it, by tool name.
  struct Step {
    std::vector<v1::InputMessage> input;
    absl::flat_hash_map<std::string, std::deque<v1::ToolResult>> recorded;
  };

  /// Validates the request, reads the source, forks it and starts the first turn. `done` is
  /// called exactly once (possibly before Start returns).
  static std::shared_ptr<ReplayRun> Start(SessionManager* sessions, const std::string& project_id,
                                          const v1::ReplaySessionRequest& request,
                                          absl::Time deadline, Done done);
  /// The plan of a source log (exposed for tests).
  static std::vector<Step> Plan(const std::vector<v1::Event>& events);

  /// Stops the replay (the caller went away): the running turn is abandoned, the replay ends
  /// CANCELLED. Safe from any thread, also after the end.
  void Cancel();

  ReplayRun(SessionManager* sessions, std::string project_id, std::string model,
            absl::Time deadline, Done done);

 private:
  void RunNext();
  void Submit(v1::RunTurnRequest request);
  void OnTurn(const absl::Status& status, const v1::TurnResult& result);
  std::vector<v1::ToolResult> Answer(const v1::TurnResult& result);
  void End(const absl::Status& status);

  SessionManager* const sessions_;
  const std::string project_id_;
  const std::string model_;
  const absl::Time deadline_;
  Done done_;

  // Driven by one thread at a time (each turn's finisher starts the next turn).
  std::vector<Step> plan_;
  size_t step_ = 0;
  int32_t rounds_ = 0;
  std::string session_id_;  // the new session
  v1::ReplaySessionResponse response_;

  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;        // turns submitted so far
  std::shared_ptr<Turn> current_ ABSL_GUARDED_BY(mu_);  // the latest one submitted
};

}  // namespace agentd::runtime
