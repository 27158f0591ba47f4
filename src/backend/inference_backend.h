// The InferenceBackend contract: how the turn engine asks a model for one step.
//
// Ownership and threading:
//  - Start() never blocks on the network. Callbacks may run on the caller's thread before
//    Start() returns (the echo backend completes inline) or later on a backend-owned thread;
//    callers must not hold locks across Start() that their callbacks take. `on_delta` is called zero or more times,
//    then `on_done` exactly once; no callback runs after `on_done` returns.
//  - The returned ModelCall handle may be used to cancel; Cancel() after completion is a no-op.
//    A cancelled call still calls `on_done` (with CANCELLED) exactly once.
//  - The backend keeps the callbacks alive until `on_done` has returned.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agentd/v1/common.pb.h"

namespace agentd::obs {
struct RequestContext;
}

namespace agentd::backend {

/// One message of the model's context (Chat Completions shape).
struct ChatMessage {
  v1::Role role = v1::ROLE_UNSPECIFIED;
  std::string text;
  std::vector<v1::ToolCall> tool_calls;  // assistant messages
  std::string tool_call_id;              // tool messages
  /// Optional: this message as a Chat Completions message object, exactly as
  /// openai::EncodeChatMessage writes it from the fields above. A caller that sends the same
  /// message in many calls (the turn engine, for a session's earlier events) keeps it, and
  /// the OpenAI-compatible backend copies it instead of escaping the text again. Other
  /// backends read the fields above.
  std::shared_ptr<const std::string> encoded;
  /// True if the caller left text, tool_calls and tool_call_id empty because `encoded` holds
  /// them (the turn engine does, for messages it already sent once: copying a whole context
  /// window per call was most of the cost of assembling a request). Only a backend whose
  /// UsesEncodedMessages() is true receives such messages: ModelRouter decodes them for any
  /// other (openai::ExpandElidedMessages).
  bool elided = false;
};

struct ToolDefinition {
  std::string name;
  std::string description;
  std::string parameters_json_schema;
};

struct ModelRequest {
  std::string model;  // the deployment's model name as the backend knows it
  std::vector<ChatMessage> messages;
  std::vector<ToolDefinition> tools;
  absl::Time deadline = absl::InfiniteFuture();
  bool stream = false;  // deltas wanted
  /// The request this call serves (metrics/trace_context.h), null if none: its ids go into log
  /// lines, and HTTP backends send `traceparent` with its trace id and a new span id.
  std::shared_ptr<const obs::RequestContext> context;
};

struct ModelResponse {
  std::string text;
  std::vector<v1::ToolCall> tool_calls;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  std::string finish_reason;  // "stop", "tool_calls", "length"
  std::string served_by;      // backend/deployment that answered
  std::string served_model;   // set by the router: the configured model (or fallback) that served
  int32_t attempts = 1;       // set by the router: calls made, including retries and fallbacks
};

struct ModelCallbacks {
  std::function<void(absl::string_view text)> on_delta;       // may be empty
  /// May be empty. Called (by the router) before a retry or fallback attempt when an earlier
  /// attempt of this call already streamed deltas: they are void, new ones follow.
  std::function<void()> on_reset;
  std::function<void(absl::StatusOr<ModelResponse>)> on_done;  // required
};

class ModelCall {
 public:
  virtual ~ModelCall() = default;
  /// Asks the call to stop; `on_done` then reports CANCELLED (unless it already finished).
  virtual void Cancel() = 0;
};

class InferenceBackend {
 public:
  virtual ~InferenceBackend() = default;
  /// Starts one model call. See the file comment for threading. `request` is the caller's
  /// and may change once Start() returns or `on_done` has been called: a backend copies (or
  /// encodes) what it needs before it hands the call off, so a router that retries passes the
  /// same request again without copying the context.
  virtual std::shared_ptr<ModelCall> Start(const ModelRequest& request,
                                           ModelCallbacks callbacks) = 0;
  /// True if this backend sends ChatMessage::encoded when a message carries it (so callers
  /// that could keep encodings know they are worth making).
  virtual bool UsesEncodedMessages() const { return false; }
};

/// Status payload a backend attaches to a retryable failure: how long the provider asked to
/// wait before retrying, in decimal milliseconds. The router honours it.
inline constexpr char kRetryAfterPayload[] = "agentd.dev/retry-after-ms";
/// Status payload: the HTTP status code of the failed response, decimal.
inline constexpr char kHttpStatusPayload[] = "agentd.dev/http-status";

/// The delay a provider asked for (kRetryAfterPayload), if `status` carries one.
inline std::optional<absl::Duration> RetryAfter(const absl::Status& status) {
  auto payload = status.GetPayload(kRetryAfterPayload);
  int64_t ms = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &ms) || ms < 0) {
    return std::nullopt;
  }
  return absl::Milliseconds(ms);
}

/// The HTTP status of the response that produced `status` (kHttpStatusPayload), if any.
inline std::optional<int> HttpStatus(const absl::Status& status) {
  auto payload = status.GetPayload(kHttpStatusPayload);
  int code = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &code)) return std::nullopt;
  return code;
}

/// A ModelCall for calls that completed inline (nothing left to cancel).
class CompletedCall final : public ModelCall {
 public:
  void Cancel() override {}
};

}  // namespace agentd::backend
