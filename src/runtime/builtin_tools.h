// Built-in tools: tools an agent declares with kind BUILTIN and that agentd runs inside the turn
// (no REQUIRES_ACTION round trip). Their descriptions and argument schemas are agentd's
// (docs/context.md lists them); an agent may override the description only.
//
//   state_get     {"key"}                                 → {"key","value","version"}
//   state_put     {"key","value","expected_version"?}     → {"key","version"}
//   memory_search {"query","namespace_prefix"?,"top_k"?}  →
//   {"results":[{namespace,key,text,score}]} memory_put    {"namespace","key"?,"text"} →
//   {"namespace","key"}
//
// Tool state written by state_put is not written at once: it becomes a StateMutation of the
// step's SessionWrite, committed in the same batch as the step's events (and seen by later
// state_get calls of the same step). Memory writes go to the store at once (memory is
// project-wide, not part of a session's log).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agentd/v1/agent.pb.h"
#include "agentd/v1/common.pb.h"
#include "runtime/memory_manager.h"
#include "store/context_store.h"

namespace agentd::runtime {

struct BuiltinToolInfo {
  const char* name;
  const char* description;
  const char* parameters_json_schema;
};

/// Every built-in tool, in a fixed order.
const std::vector<BuiltinToolInfo>& BuiltinTools();
/// The built-in tool called `name`, or null.
const BuiltinToolInfo* FindBuiltinTool(absl::string_view name);

/// Checks a BUILTIN ToolSpec at agent create/update: a known name, and a schema that is empty or
/// agentd's own. `field` names the spec in errors. Names starting with "mcp:" are refused here
/// (the server has no MCP servers); with MCP servers, validation.cc checks them with
/// McpRegistry::CheckSpec instead.
absl::Status ValidateBuiltinToolSpec(const v1::ToolSpec& tool, const std::string& field);
/// Fills agentd's schema, and its description when the spec has none, into a valid BUILTIN spec.
void FillBuiltinToolSpec(v1::ToolSpec* tool);

/// Runs the built-in calls of one turn, step by step. Not thread-safe: owned by the turn.
class BuiltinToolRunner {
 public:
  /// Default and largest `top_k` of memory_search.
  static constexpr int32_t kDefaultTopK = 5;
  static constexpr int32_t kMaxTopK = 50;

  BuiltinToolRunner(store::ContextStore* store, std::string project_id, std::string session_id)
      : store_(store),
        memory_(store),
        project_id_(std::move(project_id)),
        session_id_(std::move(session_id)) {}

  /// Runs `call` (a built-in tool; `args` already validated against its schema) and returns its
  /// result. Failures the model can act on (missing key, version mismatch, store errors) are
  /// results with is_error set, never a failed turn.
  v1::ToolResult Run(const v1::ToolCall& call, const nlohmann::json& args);

  /// The state writes of the current step, in call order, for the step's SessionWrite. Each is
  /// guarded by the version this step saw (a write of a key that did not exist is not: the
  /// store's expected_version 0 means unconditional).
  const std::vector<store::StateMutation>& PendingState() const { return mutations_; }
  bool HasPendingState() const { return !mutations_.empty(); }
  /// The step's writes are durable (or were given up): start a new step.
  void ClearPendingState() {
    pending_.clear();
    mutations_.clear();
  }

  /// The commit carrying PendingState() failed with ABORTED. Re-reads each written key and
  /// drops the writes whose key changed since this step read it; returns, for each state_put
  /// call of a dropped write, the error result that replaces its result. Empty: no key changed
  /// (the abort had another cause).
  absl::StatusOr<std::vector<v1::ToolResult>> DropConflictingWrites();

 private:
  struct PendingKey {
    int64_t read_version = 0;  // stored version when this step first wrote it (0 = missing)
    std::string value_json;    // after this step's writes
    int64_t version = 0;       // after this step's writes
    std::vector<std::string> call_ids;  // state_put calls that wrote it
  };

  v1::ToolResult StateGet(const nlohmann::json& args);
  v1::ToolResult StatePut(const v1::ToolCall& call, const nlohmann::json& args);
  v1::ToolResult MemorySearch(const nlohmann::json& args);
  v1::ToolResult MemoryPut(const nlohmann::json& args);
  /// The current (value, version) of `key` as this step sees it; version 0 = missing.
  absl::StatusOr<std::pair<std::string, int64_t>> Current(const std::string& key);

  store::ContextStore* const store_;
  MemoryManager memory_;  // the MemoryService's rules (namespaces, keys, sizes, times)
  const std::string project_id_;
  const std::string session_id_;
  std::map<std::string, PendingKey> pending_;  // by key
  std::vector<store::StateMutation> mutations_;
};

}  // namespace agentd::runtime
