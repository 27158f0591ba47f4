// McpClient: a Model Context Protocol client over the Streamable HTTP transport, for one
// configured MCP server (https://modelcontextprotocol.io/specification, transport
// "Streamable HTTP").
//
// Every JSON-RPC message is one HTTP POST to the server's endpoint, with
// `Accept: application/json, text/event-stream`; the server answers a request either with a
// JSON body or with an SSE stream carrying the response (and possibly notifications and
// server-to-client requests before it). Notifications are answered with 202.
//
// Session: the connection is made lazily, by the first call: `initialize` (offering
// kProtocolVersions[0]; the server's answer must be one of kProtocolVersions), then
// `notifications/initialized`. The `Mcp-Session-Id` the server returns is sent on every later
// message, with `MCP-Protocol-Version`. A 404 on a message carrying a session id means the
// session expired (e.g. the server restarted): the client initializes again once and resends.
// So does a 400 whose body mentions the session (what TypeScript-SDK servers answer).
// A failed initialize is retried by the next call (the server may be down for a while).
//
// Cancellation: when a tools/call passes its deadline or its cancel predicate turns true, the
// client sends `notifications/cancelled` for its request id (best effort, within
// cancel_timeout) and returns DEADLINE_EXCEEDED / CANCELLED.
//
// `notifications/tools/list_changed` seen in any SSE answer bumps tools_generation(), so that a
// cache of tools/list (McpRegistry) knows to fetch again. Server-to-client requests (sampling,
// elicitation, roots, ping) are not supported: the client declares no capabilities for them and
// ignores them.
//
// Secrets: header values (e.g. Authorization) are never logged, and are removed from every
// error message (replaced by "[redacted]") in case a server echoes them.
//
// Threading: thread-safe. Calls run on the caller's thread and block (see http_post.h); any
// number may run at once, sharing the session.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace agentd::tools {

/// Protocol versions this client speaks, newest first.
inline const std::vector<std::string>& McpProtocolVersions() {
  static const std::vector<std::string> kVersions = {"2025-11-25", "2025-06-18", "2025-03-26"};
  return kVersions;
}

struct McpClientOptions {
  std::string name;  // the configured server name, for messages
  std::string url;   // the MCP endpoint, e.g. http://127.0.0.1:3001/mcp
  std::map<std::string, std::string> headers;  // resolved values (secrets)
  /// Upper bound of one request (the caller's deadline may be earlier).
  absl::Duration timeout = absl::Seconds(30);
  /// Budget of the best-effort notifications/cancelled after a call gave up.
  absl::Duration cancel_timeout = absl::Seconds(1);
  /// Largest answer accepted (JSON body or one SSE event).
  size_t max_response_bytes = 16 << 20;
};

struct McpTool {
  std::string name;
  std::string description;
  nlohmann::json input_schema;  // a JSON object (the server's inputSchema)
};

struct McpCallResult {
  nlohmann::json content = nlohmann::json::array();  // the result's content blocks
  nlohmann::json structured_content;                 // null when absent
  bool is_error = false;
};

class McpClient {
 public:
  explicit McpClient(McpClientOptions options);

  /// Every tool of the server (tools/list, following nextCursor). `cancelled` may be null.
  absl::StatusOr<std::vector<McpTool>> ListTools(absl::Time deadline,
                                                 const std::function<bool()>& cancelled = nullptr);

  /// tools/call. A result with isError is an OK McpCallResult with is_error set; a JSON-RPC
  /// error is INVALID_ARGUMENT (invalid params, e.g. an unknown tool) or UNKNOWN; transport
  /// failures are UNAVAILABLE; DEADLINE_EXCEEDED / CANCELLED after sending
  /// notifications/cancelled.
  absl::StatusOr<McpCallResult> CallTool(const std::string& tool, const nlohmann::json& arguments,
                                         absl::Time deadline,
                                         const std::function<bool()>& cancelled = nullptr);

  /// Incremented whenever the server announces notifications/tools/list_changed, and when a
  /// new session starts.
  int64_t tools_generation() const { return tools_generation_.load(); }
  /// The negotiated protocol version ("" before the first successful initialize).
  std::string protocol_version() const;
  /// The current Mcp-Session-Id ("" if none).
  std::string session_id() const;
  const std::string& name() const { return options_.name; }

  /// Removes every configured header value from `text` (for error messages).
  std::string Redact(std::string text) const;

 private:
  struct Session {
    bool initialized = false;
    std::string id;        // Mcp-Session-Id ("" if the server uses none)
    std::string version;   // negotiated protocol version
  };

  /// Sends one request and returns its `result`; re-initializes once on an expired session.
  absl::StatusOr<nlohmann::json> Request(const std::string& method, nlohmann::json params,
                                         absl::Time deadline, const std::function<bool()>& cancelled,
                                         int64_t* id_out = nullptr);
  /// Initializes unless a session is up; returns the session to use.
  absl::StatusOr<Session> EnsureSession(absl::Time deadline, const std::function<bool()>& cancelled);
  absl::StatusOr<Session> Initialize(absl::Time deadline, const std::function<bool()>& cancelled);
  /// POSTs `message`; for a request (`id` >= 0) returns the response message with that id,
  /// for a notification returns null once accepted. NOT_FOUND (internal) = session expired.
  /// `session_header`, if given, receives the answer's Mcp-Session-Id (initialize).
  absl::StatusOr<nlohmann::json> Post(const nlohmann::json& message, int64_t id,
                                      const Session& session, absl::Time deadline,
                                      const std::function<bool()>& cancelled,
                                      std::string* session_header = nullptr);
  void Notify(const std::string& method, nlohmann::json params, const Session& session,
              absl::Time deadline);
  /// Handles a message from the server that is not the awaited response.
  void OnServerMessage(const nlohmann::json& message);
  absl::Status Decorate(const absl::Status& status) const;

  const McpClientOptions options_;
  std::atomic<int64_t> next_id_{1};
  std::atomic<int64_t> tools_generation_{0};
  absl::Mutex init_mu_;  // one initialize at a time; held across it (blocking I/O)
  mutable absl::Mutex mu_ ABSL_ACQUIRED_AFTER(init_mu_);
  Session session_ ABSL_GUARDED_BY(mu_);
};

}  // namespace agentd::tools
