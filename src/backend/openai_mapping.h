// Pure functions between agentd's backend types and the OpenAI Chat Completions wire format
// (POST /chat/completions): request bodies, non-streaming responses, streamed chunks, HTTP errors.
// No I/O and no globals: everything here is unit-tested without a server.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "backend/inference_backend.h"

namespace agentd::backend::openai {

// The status payload keys are the backend contract's (inference_backend.h).
using backend::kHttpStatusPayload;
using backend::kRetryAfterPayload;

/// The JSON body for `request`: model, messages, stream (+ stream_options.include_usage when
/// streaming) and tools (only when there are any). INVALID_ARGUMENT for a message without a role
/// or a tool whose parameter schema is not a JSON object.
[[nodiscard]] absl::StatusOr<std::string> BuildChatRequestBody(const ModelRequest& request);

/// One message as the object BuildChatRequestBody writes for it (ChatMessage::encoded is not
/// consulted); INVALID_ARGUMENT without a role. For callers that keep encodings across calls.
[[nodiscard]] absl::StatusOr<std::string> EncodeChatMessage(const ChatMessage& message);

/// The message an EncodeChatMessage output stands for (role, text, tool calls with id, name
/// and arguments, tool_call_id); INVALID_ARGUMENT if `encoded` is not such an object. Text that
/// was not valid UTF-8 comes back with the replacements the encoding made.
[[nodiscard]] absl::StatusOr<ChatMessage> DecodeChatMessage(absl::string_view encoded);

/// Restores the fields of every elided message (ChatMessage::elided) from its encoding, for a
/// backend that reads fields. The encodings stay attached.
[[nodiscard]] absl::Status ExpandElidedMessages(std::vector<ChatMessage>* messages);

/// Parses a non-streaming 2xx response body. `served_by` is left empty. UNAVAILABLE (retryable)
/// for malformed JSON or empty `choices`; an `error` object in the body maps like an HTTP error.
[[nodiscard]] absl::StatusOr<ModelResponse> ParseChatResponse(absl::string_view body);

/// Assembles one streamed response from the `data:` payloads of its SSE events, in order.
/// Not thread-safe: one accumulator per stream.
class ChatStreamAccumulator {
 public:
  /// Consumes one event's data (a JSON chunk or "[DONE]"). Sets `*delta` to the content text the
  /// chunk adds (empty if none). Returns an error for malformed JSON or an in-stream `error`.
  /// Data after [DONE] is ignored.
  [[nodiscard]] absl::Status AddData(absl::string_view data, std::string* delta);

  /// True once "[DONE]" was seen.
  bool done() const { return done_; }

  /// The assembled response; UNAVAILABLE if the stream ended without a finish_reason or without
  /// [DONE] (a cut stream is never a partial success).
  [[nodiscard]] absl::StatusOr<ModelResponse> Finish();

 private:
  struct PartialToolCall {
    std::string id;
    std::string name;
    std::string arguments;
  };

  std::string text_;
  std::map<int64_t, PartialToolCall> tool_calls_;  // by the chunk's `index`
  std::string finish_reason_;
  int64_t input_tokens_ = 0;
  int64_t output_tokens_ = 0;
  bool done_ = false;
};

/// The delay asked for by `Retry-After: <seconds>` or `retry-after-ms: <ms>` (the latter wins).
/// Either value may be empty (header absent). HTTP-date forms are not supported (nullopt).
std::optional<absl::Duration> ParseRetryAfter(absl::string_view retry_after,
                                              absl::string_view retry_after_ms);

/// The status for a non-2xx response:
///   429 + `insufficient_quota` → RESOURCE_EXHAUSTED; other 429, 408, 5xx → UNAVAILABLE;
///   400 + `context_length_exceeded` → FAILED_PRECONDITION; 401/403 → PERMISSION_DENIED;
///   other 4xx → INVALID_ARGUMENT; anything else → UNAVAILABLE.
/// The message is the provider's (truncated); the HTTP status is attached as kHttpStatusPayload
/// and, for UNAVAILABLE only, `retry_after` as kRetryAfterPayload.
[[nodiscard]] absl::Status HttpErrorStatus(int http_status, absl::string_view body,
                                           std::optional<absl::Duration> retry_after);

}  // namespace agentd::backend::openai
