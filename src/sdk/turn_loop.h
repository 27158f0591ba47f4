// TurnLoop: one Run()/Stream() of a Session, from the user's text through every tool round
// until the turn completes, fails, or needs a call the registry cannot answer. Internal.
//
// Each RunTurn/StreamTurn request of the loop has its own idempotency key (the run's base key
// for the first, "<base>.r<N>" for the N-th tool round), and every retry of a request reuses
// its key, so the server answers a retry with the first attempt's recorded result.
//
// Threading: one thread at a time (the caller's); tool handlers run on it.
#pragma once

#include <grpcpp/client_context.h>
#include <grpcpp/support/sync_stream.h>

#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agentd/client.h"
#include "sdk/core.h"
#include "sdk/retry.h"

namespace agentd::internal {

class TurnLoop {
 public:
  /// `tools` must outlive the loop. `text` is the user message of the first turn.
  TurnLoop(std::shared_ptr<Core> core, std::string session_id, const ToolRegistry* tools,
           RunOptions options, const std::string& text);
  ~TurnLoop();

  /// The whole loop with unary RunTurn calls.
  absl::StatusOr<TurnResult> Run();

  /// Streaming: the next event of the run (across tool rounds); false once it is over.
  bool Next(v1::TurnEvent* event);
  /// Streaming: the outcome; cancels the stream if the run is not over.
  absl::StatusOr<TurnResult> Finish();

 private:
  /// Folds one turn's result into the totals and decides what comes next: true when the
  /// handlers answered every required call and `request_` now holds the tool-results turn.
  bool Advance(const v1::TurnResult& turn);
  /// Ends a streamed run with `status` (OK: the totals are the outcome).
  void End(absl::Status status);
  void OpenStream();
  void CloseStream();

  const std::shared_ptr<Core> core_;
  const std::string session_id_;
  const ToolRegistry* const tools_;
  const RunOptions options_;
  const absl::Duration deadline_;
  std::string base_key_;
  v1::RunTurnRequest request_;
  int rounds_ = 0;
  TurnResult total_;

  // Streaming state (ctx_ declared before reader_: the reader goes first).
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientReader<v1::TurnEvent>> reader_;
  std::optional<Retrier> retrier_;  // of the current request
  std::optional<v1::TurnResult> turn_result_;
  bool deltas_sent_ = false;  // text deltas of the current attempt reached the caller
  bool done_ = false;
  absl::Status final_status_;
};

}  // namespace agentd::internal
