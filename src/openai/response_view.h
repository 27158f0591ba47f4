// How agentd's sessions and turns look as OpenAI Responses objects.
//
// A response is one turn. Its id carries the turn and the session it belongs to:
//   resp_<32 hex of the turn id><session id>
// so the mapping is exactly as durable as the session's events (no second index to keep in step
// with them), and a response id from another project finds nothing, because sessions are read
// under the caller's project.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agentd/v1/session.pb.h"
#include "nlohmann/json.hpp"

namespace agentd::openai {

using nlohmann::json;

struct ResponseId {
  std::string session_id;
  std::string turn_id;  // "turn_" + 32 hex
};

/// The response id of turn `turn_id` of `session_id` ("" when the turn id is not agentd's).
std::string MakeResponseId(const std::string& session_id, const std::string& turn_id);
/// NOT_FOUND (naming `param`'s value) when `id` is not a response id agentd could have made.
absl::StatusOr<ResponseId> ParseResponseId(const std::string& id);

/// A turn as read back from a session's events.
struct TurnView {
  bool found = false;
  bool finished = false;  // its closing marker is recorded
  v1::TurnStatus status = v1::TURN_STATUS_UNSPECIFIED;
  std::string error;
  int64_t first_seq = 0;  // TURN_STARTED
  int64_t last_seq = 0;   // the closing marker (0 while running)
  int64_t created_unix = 0;
  std::string output_text;               // the last assistant text of the turn
  std::string model;                     // the model that produced it
  std::vector<v1::ToolCall> open_calls;  // client calls left unanswered (REQUIRES_ACTION)
  v1::Usage usage;
};

/// Folds `events` (of one session, in seq order, possibly paged: call repeatedly) into `view`.
void FoldTurnEvents(const std::vector<v1::Event>& events, const std::string& turn_id,
                    TurnView* view);

/// What a Responses object needs besides the turn's outcome.
struct ResponseMeta {
  std::string id;
  std::string model;
  std::string instructions;
  std::string previous_response_id;
  std::string session_id;
  bool store = true;
  int64_t created_unix = 0;
};

/// The output items of a finished turn: the message (when there is text or no call) then the
/// function calls, in that order (the streaming events use the same indexes).
json OutputItems(const std::string& turn_id, const std::string& text,
                 const std::vector<v1::ToolCall>& calls);
json MessageItem(const std::string& turn_id, const std::string& text, const char* status);
json FunctionCallItem(const v1::ToolCall& call, const char* status);
json UsageJson(const v1::Usage& usage);
/// A Responses object. `status` is OpenAI's: in_progress, completed, failed, cancelled.
json ResponseJson(const ResponseMeta& meta, const std::string& status, const json& output,
                  const v1::Usage* usage, const std::string& error);
/// OpenAI's status for a finished turn.
std::string StatusName(v1::TurnStatus status);

}  // namespace agentd::openai
