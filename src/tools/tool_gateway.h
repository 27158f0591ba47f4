// ToolGateway: every server-side tool agentd runs for agents that is not one of its own
// built-ins — tools of configured MCP servers ("mcp:<server>/<tool>", "mcp:<server>") and
// configured HTTP endpoints ("http:<name>") — behind one set of safety rules (docs/tools.md):
//
// - Allow-lists: a project's ProjectLimits.allowed_tools (unset = everything configured) is
//   checked when an agent names a tool (PERMISSION_DENIED), when a turn offers the tools to the
//   model (tools no longer allowed are left out) and again at every call (an error result), so
//   narrowing a project's list takes effect on running sessions at their next step.
// - Timeouts: each call is bounded by min(turn deadline, now + the tool's timeout). An MCP
//   tool's timeout is its `tools:` entry's timeout_ms, else the server's timeout_ms.
// - Concurrency: calls in flight are limited per MCP server (max_concurrency) and per tool
//   (the tool's max_concurrency); a call over a limit waits for a slot until its deadline (then
//   an error result says the tool was busy). In-flight counts are per process.
// - Retries: only tools marked `idempotent` are retried, after a transport failure (connection
//   error, a timeout of one attempt while the turn's deadline allows more, HTTP 429/502/503/504
//   of an HTTP tool), up to `retries` extra attempts with exponential backoff (100 ms, 200 ms…)
//   inside the deadline. A tool's own error answer (MCP isError, an HTTP 4xx) is never retried.
// - Results: always a ToolResult (failures are is_error results so the model can go on), with
//   served_by ("mcp:<server>" / "http:<name>"), duration_ms of the whole call including waits
//   and retries, and output cut at max_result_bytes with a visible marker (`truncated`).
// - Secrets: header values never reach results, events or logs.
//
// Threading: thread-safe; Call blocks the calling thread (a turn worker).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agentd/v1/agent.pb.h"
#include "agentd/v1/common.pb.h"
#include "agentd/v1/project.pb.h"
#include "agentd/v1/tool.pb.h"
#include "tools/http_tool.h"
#include "tools/mcp_registry.h"

namespace agentd::tools {

/// A project's allow-list of server-side tools (ProjectLimits.allowed_tools).
class ToolAllowList {
 public:
  /// Everything configured is allowed.
  ToolAllowList() = default;
  /// Only `entries` ("mcp:<server>", "mcp:<server>/<tool>", "http:<name>").
  static ToolAllowList Only(std::vector<std::string> entries);
  static ToolAllowList FromLimits(const v1::ProjectLimits& limits);

  bool restricted() const { return restricted_; }
  /// One tool: "mcp:<server>/<tool>" (allowed by that entry or "mcp:<server>"), "http:<name>".
  bool AllowsTool(const std::string& canonical_spec) const;
  /// A spec as an agent names it; "mcp:<server>" needs the whole-server entry.
  bool AllowsSpec(const std::string& spec_name) const;
  /// "mcp:a/x, http:b" or "none" — for messages.
  std::string Describe() const;

 private:
  bool restricted_ = false;
  std::vector<std::string> entries_;
};

struct ToolSettings {
  absl::Duration timeout = absl::Seconds(30);
  int max_concurrency = 0;  // 0 = no limit
  bool idempotent = false;
};

struct HttpToolEntry {
  HttpToolOptions options;
  ToolSettings settings;
  int retries = 2;
};

struct McpServerPolicy {
  int max_concurrency = 0;  // per server, 0 = no limit
  int retries = 2;
  std::map<std::string, ToolSettings> tools;  // per-tool overrides (timeout 0 = the server's)
};

struct ToolGatewayOptions {
  McpRegistryOptions mcp;                          // servers (results: max_result_bytes below)
  std::map<std::string, McpServerPolicy> mcp_policy;  // by server name
  std::vector<HttpToolEntry> http;
  size_t max_result_bytes = 64 * 1024;
  absl::Duration initial_backoff = absl::Milliseconds(100);
};

/// One server-side tool as a turn offers it to the model.
struct ToolBinding {
  enum class Kind { kMcp, kHttp };
  Kind kind = Kind::kMcp;
  std::string model_name;   // what the model calls
  std::string spec_name;    // canonical: "mcp:<server>/<tool>" or "http:<name>"
  std::string server;       // MCP server, or the HTTP tool's name
  std::string tool;         // the MCP server's tool name ("" for HTTP)
  std::string description;
  std::string input_schema_json;
};

class ToolGateway {
 public:
  /// INVALID_ARGUMENT (naming "http_tools[i]...") for an HTTP tool whose URL template or
  /// parameters_json_schema is unusable.
  static absl::StatusOr<std::unique_ptr<ToolGateway>> Create(ToolGatewayOptions options);

  /// Whether a BUILTIN spec name is the gateway's ("mcp:..." or "http:...").
  ~ToolGateway();

  static bool Handles(const std::string& spec_name);
  /// "http__<name>", sanitized like McpRegistry::ModelToolName.
  static std::string HttpModelToolName(const std::string& name);

  /// At agent create/update: the spec names a configured tool (INVALID_ARGUMENT naming `field`
  /// otherwise) that the project may use (PERMISSION_DENIED otherwise).
  absl::Status CheckSpec(const v1::ToolSpec& spec, const ToolAllowList& allow,
                         const std::string& field);

  /// The tools a spec stands for in one turn, without those the project may not use.
  std::vector<ToolBinding> Resolve(const std::string& spec_name, const ToolAllowList& allow,
                                   absl::Time deadline, std::string* warning);

  /// Runs one call under the rules of the header comment. Never fails: errors are results.
  v1::ToolResult Call(const ToolBinding& tool, const nlohmann::json& arguments,
                      const ToolAllowList& allow, absl::Time deadline,
                      const std::function<bool()>& cancelled);

  /// Every configured server and tool with its settings, health and whether `allow` lets the
  /// caller use it. refresh: list every MCP server's tools now (bounded per server).
  v1::ListToolServersResponse List(const ToolAllowList& allow, bool refresh);

  McpRegistry* mcp() { return mcp_.get(); }

 private:
  class Limiter;
  struct Health;
  struct HttpTool;
  struct McpServer;

  explicit ToolGateway(ToolGatewayOptions options);

  ToolSettings McpSettings(const ToolBinding& tool) const;
  /// One attempt; `retryable` says whether a failure may be retried.
  absl::StatusOr<std::pair<std::string, bool>> Attempt(const ToolBinding& tool,
                                                       const nlohmann::json& arguments,
                                                       absl::Time deadline,
                                                       const std::function<bool()>& cancelled,
                                                       bool* retryable);
  Limiter* ToolLimiter(const ToolBinding& tool);
  Limiter* ServerLimiter(const ToolBinding& tool);
  Health* HealthOf(const ToolBinding& tool);

  const size_t max_result_bytes_;
  const absl::Duration initial_backoff_;
  std::unique_ptr<McpRegistry> mcp_;
  std::map<std::string, std::unique_ptr<McpServer>> mcp_servers_;  // fixed after construction
  std::map<std::string, std::unique_ptr<HttpTool>> http_tools_;    // fixed after construction
};

}  // namespace agentd::tools
