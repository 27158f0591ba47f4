// A blocking HTTP POST on a libcurl easy handle, for server-side tools (MCP, HTTP tools).
//
// Why blocking: tool calls run on a turn worker, which already blocks on commits; a tool call is
// one request at a time per turn, so a dedicated event loop (as the model router has) buys
// nothing here. The call honours a deadline (curl's timeout) and a cancellation predicate polled
// by curl's progress callback (about once a second while idle, more often while data flows).
//
// The body is handed to `on_body` as it arrives, so that a caller reading a text/event-stream
// answer can stop as soon as it has what it waits for (on_body returns false: the transfer is
// ended and the result is OK with `stopped` set).
#pragma once

#include <functional>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace agentd::tools {

struct HttpPostRequest {
  std::string url;
  std::string method = "POST";          // POST, or GET/PUT/PATCH/DELETE for HTTP tools
  std::map<std::string, std::string> headers;  // values are secrets: never logged or echoed
  std::string body;
  absl::Time deadline = absl::InfiniteFuture();
  /// Polled during the transfer; true aborts it with CANCELLED.
  std::function<bool()> cancelled;
  /// Called once the status line and headers are in (before any body bytes).
  std::function<void(long status, const std::map<std::string, std::string>& headers)> on_headers;
  /// Receives the body as it arrives; returning false ends the transfer early. Absent: the body
  /// is collected into HttpPostResponse::body (up to max_body_bytes).
  std::function<bool(absl::string_view chunk)> on_body;
  size_t max_body_bytes = 32 << 20;
};

struct HttpPostResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // lower-case names; last value wins
  std::string body;                            // when no on_body was given
  bool stopped = false;                        // on_body ended the transfer
};

/// Performs the request. DEADLINE_EXCEEDED when the deadline passes, CANCELLED when
/// `cancelled` turned true, UNAVAILABLE for connection errors and cut transfers,
/// RESOURCE_EXHAUSTED for a body over max_body_bytes. Any HTTP status is an OK result.
/// Error messages never contain header values. Thread-safe (one easy handle per call).
absl::StatusOr<HttpPostResponse> HttpPost(const HttpPostRequest& request);

}  // namespace agentd::tools
