// McpRegistry: agentd's configured MCP servers (config `mcp_servers:`) and the tools they lend
// to agents, as BUILTIN ToolSpecs named "mcp:<server>/<tool>" (one tool) or "mcp:<server>"
// (every tool the server lists and allows).
//
// Names the model sees: an MCP tool is offered to the model as "mcp__<server>__<tool>", with
// every character outside [A-Za-z0-9_-] replaced by '_' (OpenAI function names); a name longer
// than 64 characters keeps its first 55 and ends with '_' and 8 hex digits of a hash of the full
// name. ModelToolName() is the one place this mapping lives.
//
// Tool lists: tools/list is fetched lazily and cached per server; the cache is dropped after
// kToolsCacheTtl, when the server announces notifications/tools/list_changed, or when a new
// session starts. allowed_tools (empty = all) is applied to every list and every call.
//
// Results (ResultText): the text content blocks of a tools/call result, joined by newlines;
// other blocks become a one-line placeholder ("[image image/png, 1234 bytes of base64
// omitted]"), and structuredContent is used when there is no content. Truncate() cuts output
// longer than a cap (at a UTF-8 boundary) and ends it with a visible marker "[agentd: output
// truncated: N of M bytes shown]". Timeouts, limits, retries, allow-lists of projects and the
// ToolResult itself are ToolGateway's (tool_gateway.h).
//
// Threading: thread-safe; calls block the calling thread (a turn worker).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agentd/v1/common.pb.h"
#include "tools/mcp_client.h"

namespace agentd::tools {

struct McpServerOptions {
  std::string name;
  std::string url;
  std::map<std::string, std::string> headers;  // resolved values (secrets)
  absl::Duration timeout = absl::Seconds(30);  // per call, within the turn's deadline
  std::vector<std::string> allowed_tools;      // empty = all
};

struct McpRegistryOptions {
  std::vector<McpServerOptions> servers;
  /// Bound of the tools/list done to check an agent's ToolSpec at create/update.
  absl::Duration validate_timeout = absl::Seconds(3);
};

/// One MCP tool as a turn offers it to the model.
struct McpToolBinding {
  std::string model_name;  // what the model calls (see ModelToolName)
  std::string server;
  std::string tool;        // the server's name for it
  std::string description;
  std::string input_schema_json;
};

class McpRegistry {
 public:
  static constexpr absl::Duration kToolsCacheTtl = absl::Seconds(60);

  explicit McpRegistry(McpRegistryOptions options);

  /// "mcp__<server>__<tool>", sanitized and bounded to 64 characters (header comment).
  static std::string ModelToolName(const std::string& server, const std::string& tool);
  /// Splits "mcp:<server>[/<tool>]"; false if `spec_name` does not have that shape.
  static bool ParseSpecName(const std::string& spec_name, std::string* server, std::string* tool);

  std::vector<std::string> ServerNames() const;

  /// Checks a BUILTIN "mcp:..." ToolSpec at agent create/update: INVALID_ARGUMENT (naming
  /// `field`) for a malformed name, an unknown server, a tool outside allowed_tools, a
  /// parameters_json_schema (the server sets it), or a tool the server does not list. A server
  /// that cannot be reached within validate_timeout is not an error (it is connected lazily).
  absl::Status CheckSpec(const std::string& spec_name, const std::string& parameters_json_schema,
                         const std::string& field);

  /// The tools a spec stands for, for one turn. When the server cannot be listed, a single-tool
  /// spec still yields its tool (schema {"type":"object"}, calls then fail visibly) and a
  /// whole-server spec yields none; `*warning` says why.
  std::vector<McpToolBinding> Resolve(const std::string& spec_name, absl::Time deadline,
                                      std::string* warning);

  /// Calls the tool (arguments already validated) by `deadline` (the caller applies timeouts:
  /// ToolGateway). A tool outside allowed_tools or an unknown server is FAILED_PRECONDITION;
  /// otherwise McpClient::CallTool's statuses (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED...).
  absl::StatusOr<McpCallResult> CallTool(const McpToolBinding& tool, const nlohmann::json& arguments,
                                         absl::Time deadline, const std::function<bool()>& cancelled);

  /// The server's allowed tools: the cache unless `refresh` or stale, else tools/list.
  absl::StatusOr<std::vector<McpTool>> ListTools(const std::string& server, absl::Time deadline,
                                                 bool refresh);
  /// The configured options of a server (null if unknown).
  const McpServerOptions* options(const std::string& server);

  /// The client of a server (null if unknown). For tests and `tools list`.
  McpClient* client(const std::string& server);

  /// Cuts `text` to `max_bytes` with the visible marker; returns whether it cut.
  static bool Truncate(std::string* text, size_t max_bytes);
  /// The model-facing text of a tools/call result.
  static std::string ResultText(const McpCallResult& result);

 private:
  struct Server {
    McpServerOptions options;
    std::unique_ptr<McpClient> client;
    absl::Mutex mu;
    std::vector<McpTool> tools ABSL_GUARDED_BY(mu);
    bool listed ABSL_GUARDED_BY(mu) = false;
    absl::Time listed_at ABSL_GUARDED_BY(mu);
    int64_t generation ABSL_GUARDED_BY(mu) = -1;
  };

  Server* Find(const std::string& name);
  bool Allowed(const Server& s, const std::string& tool) const;
  /// The server's allowed tools, from the cache (unless `refresh`) or a fresh tools/list.
  absl::StatusOr<std::vector<McpTool>> Tools(Server* s, absl::Time deadline, bool refresh = false);

  const absl::Duration validate_timeout_;
  std::map<std::string, std::unique_ptr<Server>> servers_;  // fixed after construction
};

}  // namespace agentd::tools
