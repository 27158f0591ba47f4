// Request validation: shape, sizes and JSON. Pure functions; INVALID_ARGUMENT naming the field.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agentd/v1/agent.pb.h"
#include "agentd/v1/session.pb.h"
#include "google/protobuf/map.h"

namespace agentd::runtime {

/// Largest Agent.max_validation_retries (0 = the server default, kDefaultValidationRetries).
inline constexpr int32_t kMaxValidationRetries = 10;

/// Checks every field of an agent definition (not agent_id/version/times, which the server
/// sets). `model_exists` answers whether a model name is routable. Tool parameter schemas and
/// output_schema_json must compile in the supported JSON Schema subset (json_schema.h); BUILTIN
/// tools must be agentd's (builtin_tools.h).
/// Checks a BUILTIN "mcp:..." / "http:..." ToolSpec (ToolGateway::CheckSpec, with the project's
/// allow-list); `field` names it in errors.
using McpToolCheck =
    std::function<absl::Status(const v1::ToolSpec& tool, const std::string& field)>;

/// `mcp_check` null: "mcp:..." and "http:..." tools are refused (no tool servers configured).
absl::Status ValidateAgentSpec(const v1::Agent& agent,
                               const std::function<bool(const std::string&)>& model_exists,
                               const McpToolCheck& mcp_check = nullptr);

absl::Status ValidateMetadata(const google::protobuf::Map<std::string, std::string>& metadata);

/// Shape of a turn request (ids, roles, sizes). State-dependent checks happen in the turn.
absl::Status ValidateRunTurnRequest(const v1::RunTurnRequest& request);

/// OK if `text` parses as JSON; if `want_object`, it must be an object.
absl::Status ValidateJson(const std::string& field, const std::string& text, bool want_object);

/// Page size: negative → INVALID_ARGUMENT; 0 → `default_size`; capped at kMaxPageSize.
absl::StatusOr<int32_t> NormalizePageSize(int32_t page_size, int32_t default_size);

}  // namespace agentd::runtime
