#include "runtime/validation.h"

#include <nlohmann/json.hpp>

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "runtime/builtin_tools.h"
#include "runtime/json_schema.h"
#include "runtime/limits.h"

namespace agentd::runtime {
namespace {

absl::Status TooLong(const std::string& field, size_t limit) {
  return absl::InvalidArgumentError(absl::StrCat(field, " is longer than ", limit, " bytes"));
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing above U+10FFFF.
bool IsValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 2, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

// A schema text must be a JSON object and compile in the supported subset.
absl::Status ValidateSchema(const std::string& field, const std::string& text) {
  if (text.size() > kMaxSchemaBytes) return TooLong(field, kMaxSchemaBytes);
  AGENTD_RETURN_IF_ERROR(ValidateJson(field, text, /*want_object=*/true));
  auto schema = JsonSchema::CompileText(text);
  if (!schema.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", schema.status().message()));
  }
  return absl::OkStatus();
}

absl::Status ValidateTool(const v1::ToolSpec& tool, size_t index, std::set<std::string>* names,
                          const McpToolCheck& mcp_check) {
  const std::string field = absl::StrCat("agent.tools[", index, "]");
  if (tool.name().empty()) return absl::InvalidArgumentError(field + ".name is required");
  if (tool.requires_approval() && tool.kind() != v1::TOOL_KIND_BUILTIN) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".requires_approval applies to BUILTIN tools (a client tool is run by the caller, "
               "who decides anyway)"));
  }
  if (tool.kind() == v1::TOOL_KIND_BUILTIN &&
      (absl::StartsWith(tool.name(), "mcp:") || absl::StartsWith(tool.name(), "http:"))) {
    if (mcp_check == nullptr) return ValidateBuiltinToolSpec(tool, field);  // "not available"
    if (!names->insert(tool.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("agent.tools: duplicate tool name \"", tool.name(), "\""));
    }
    if (tool.description().size() > kMaxToolDescriptionBytes) {
      return TooLong(field + ".description", kMaxToolDescriptionBytes);
    }
    return mcp_check(tool, field);
  }
  if (tool.name().size() > 64) return TooLong(field + ".name", 64);
  for (char c : tool.name()) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".name \"", tool.name(), "\" may only contain letters, digits, _ and -"));
    }
  }
  if (!names->insert(tool.name()).second) {
    return absl::InvalidArgumentError(absl::StrCat("agent.tools: duplicate tool name \"", tool.name(), "\""));
  }
  if (tool.description().size() > kMaxToolDescriptionBytes) {
    return TooLong(field + ".description", kMaxToolDescriptionBytes);
  }
  if (tool.parameters_json_schema().size() > kMaxSchemaBytes) {
    return TooLong(field + ".parameters_json_schema", kMaxSchemaBytes);
  }
  switch (tool.kind()) {
    case v1::TOOL_KIND_UNSPECIFIED:  // a tool without a kind is a client tool
    case v1::TOOL_KIND_CLIENT:
      if (tool.parameters_json_schema().empty()) return absl::OkStatus();
      return ValidateSchema(absl::StrCat(field, ".parameters_json_schema (tool \"", tool.name(), "\")"),
                            tool.parameters_json_schema());
    case v1::TOOL_KIND_BUILTIN:
      return ValidateBuiltinToolSpec(tool, field);
    default:
      return absl::InvalidArgumentError(field + ".kind is not a known tool kind");
  }
}

}  // namespace

absl::Status ValidateJson(const std::string& field, const std::string& text, bool want_object) {
  nlohmann::json parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return absl::InvalidArgumentError(field + " is not valid JSON");
  if (want_object && !parsed.is_object()) {
    return absl::InvalidArgumentError(field + " must be a JSON object");
  }
  return absl::OkStatus();
}

absl::Status ValidateMetadata(const google::protobuf::Map<std::string, std::string>& metadata) {
  if (metadata.size() > kMaxMetadataEntries) {
    return absl::InvalidArgumentError(
        absl::StrCat("metadata has more than ", kMaxMetadataEntries, " entries"));
  }
  for (const auto& [k, v] : metadata) {
    if (k.empty()) return absl::InvalidArgumentError("metadata keys must not be empty");
    if (k.size() > kMaxMetadataKeyBytes) return TooLong("metadata key", kMaxMetadataKeyBytes);
    if (v.size() > kMaxMetadataValueBytes) {
      return TooLong(absl::StrCat("metadata[\"", k, "\"]"), kMaxMetadataValueBytes);
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateAgentSpec(const v1::Agent& agent,
                               const std::function<bool(const std::string&)>& model_exists,
                               const McpToolCheck& mcp_check) {
  if (agent.name().size() > kMaxNameBytes) return TooLong("agent.name", kMaxNameBytes);
  if (agent.model().empty()) return absl::InvalidArgumentError("agent.model is required");
  if (!model_exists(agent.model())) {
    return absl::InvalidArgumentError(
        absl::StrCat("agent.model \"", agent.model(), "\" is not a configured model"));
  }
  if (agent.instructions().size() > kMaxInstructionsBytes) {
    return TooLong("agent.instructions", kMaxInstructionsBytes);
  }
  if (!IsValidUtf8(agent.instructions()) || !IsValidUtf8(agent.name())) {
    return absl::InvalidArgumentError("agent.name and agent.instructions must be UTF-8");
  }
  if (agent.tools_size() > static_cast<int>(kMaxTools)) {
    return absl::InvalidArgumentError(absl::StrCat("agent.tools has more than ", kMaxTools, " tools"));
  }
  std::set<std::string> names;
  for (int i = 0; i < agent.tools_size(); ++i) {
    auto st = ValidateTool(agent.tools(i), i, &names, mcp_check);
    if (!st.ok()) return st;
  }
  const v1::ContextPolicy& cp = agent.context_policy();
  if (cp.max_context_tokens() < 0 || cp.max_context_tokens() > kMaxContextTokens) {
    return absl::InvalidArgumentError(absl::StrCat(
        "agent.context_policy.max_context_tokens must be between 0 and ", kMaxContextTokens));
  }
  if (cp.keep_last_events() < 0) {
    return absl::InvalidArgumentError("agent.context_policy.keep_last_events must be >= 0");
  }
  if (!v1::ContextStrategy_IsValid(cp.strategy())) {
    return absl::InvalidArgumentError("agent.context_policy.strategy is not a known strategy");
  }
  if (agent.max_steps_per_turn() < 0 || agent.max_steps_per_turn() > kMaxStepsPerTurn) {
    return absl::InvalidArgumentError(
        absl::StrCat("agent.max_steps_per_turn must be between 0 and ", kMaxStepsPerTurn));
  }
  if (!agent.output_schema_json().empty()) {
    AGENTD_RETURN_IF_ERROR(ValidateSchema("agent.output_schema_json", agent.output_schema_json()));
  }
  if (agent.max_validation_retries() < 0 ||
      agent.max_validation_retries() > kMaxValidationRetries) {
    return absl::InvalidArgumentError(absl::StrCat(
        "agent.max_validation_retries must be between 0 (server default) and ",
        kMaxValidationRetries));
  }
  return ValidateMetadata(agent.metadata());
}

absl::Status ValidateRunTurnRequest(const v1::RunTurnRequest& request) {
  auto st = ValidateId("session_id", request.session_id());
  if (!st.ok()) return st;
  if (!request.idempotency_key().empty()) {
    st = ValidateId("idempotency_key", request.idempotency_key());
    if (!st.ok()) return st;
  }
  if (request.input().empty() && request.tool_results().empty() && request.approvals().empty()) {
    return absl::InvalidArgumentError("a turn needs input messages, tool_results or approvals");
  }
  if (request.input_size() > static_cast<int>(kMaxInputMessages)) {
    return absl::InvalidArgumentError(
        absl::StrCat("input has more than ", kMaxInputMessages, " messages"));
  }
  for (int i = 0; i < request.input_size(); ++i) {
    const v1::InputMessage& m = request.input(i);
    const std::string field = absl::StrCat("input[", i, "]");
    if (m.role() != v1::ROLE_USER && m.role() != v1::ROLE_SYSTEM &&
        m.role() != v1::ROLE_ASSISTANT && m.role() != v1::ROLE_UNSPECIFIED) {
      return absl::InvalidArgumentError(
          field + ".role must be USER, SYSTEM or ASSISTANT (tool output goes in tool_results)");
    }
    if (m.text().size() > kMaxTextBytes) return TooLong(field + ".text", kMaxTextBytes);
    if (!IsValidUtf8(m.text())) return absl::InvalidArgumentError(field + ".text must be UTF-8");
  }
  if (request.tool_results_size() > static_cast<int>(kMaxToolResults)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tool_results has more than ", kMaxToolResults, " entries"));
  }
  std::set<std::string> ids;
  for (int i = 0; i < request.tool_results_size(); ++i) {
    const v1::ToolResult& r = request.tool_results(i);
    const std::string field = absl::StrCat("tool_results[", i, "]");
    if (r.tool_call_id().empty()) return absl::InvalidArgumentError(field + ".tool_call_id is required");
    if (r.tool_call_id().size() > 256) return TooLong(field + ".tool_call_id", 256);
    if (!ids.insert(r.tool_call_id()).second) {
      // API.md: tool results that don't match the pending calls (each takes exactly one).
      return absl::FailedPreconditionError(absl::StrCat(
          "tool_results: more than one result for tool call \"", r.tool_call_id(),
          "\" (each pending call takes exactly one result or approval)"));
    }
    if (r.output().size() > kMaxTextBytes) return TooLong(field + ".output", kMaxTextBytes);
    if (!IsValidUtf8(r.output())) return absl::InvalidArgumentError(field + ".output must be UTF-8");
  }
  if (request.approvals_size() > static_cast<int>(kMaxToolResults)) {
    return absl::InvalidArgumentError(
        absl::StrCat("approvals has more than ", kMaxToolResults, " entries"));
  }
  for (int i = 0; i < request.approvals_size(); ++i) {
    const v1::ToolApproval& a = request.approvals(i);
    const std::string field = absl::StrCat("approvals[", i, "]");
    if (a.tool_call_id().empty()) return absl::InvalidArgumentError(field + ".tool_call_id is required");
    if (a.tool_call_id().size() > 256) return TooLong(field + ".tool_call_id", 256);
    if (!ids.insert(a.tool_call_id()).second) {
      return absl::FailedPreconditionError(absl::StrCat(
          "approvals: more than one answer (result or approval) for tool call \"",
          a.tool_call_id(), "\" (each pending call takes exactly one)"));
    }
    if (a.reason().size() > kMaxToolDescriptionBytes) {
      return TooLong(field + ".reason", kMaxToolDescriptionBytes);
    }
    if (!IsValidUtf8(a.reason())) return absl::InvalidArgumentError(field + ".reason must be UTF-8");
  }
  if (request.expected_last_seq() < 0) {
    return absl::InvalidArgumentError("expected_last_seq must be >= 0");
  }
  if (!v1::BusyPolicy_IsValid(request.on_busy())) {
    return absl::InvalidArgumentError("on_busy is not a known busy policy");
  }
  if (request.model_override().size() > kMaxNameBytes) {
    return TooLong("model_override", kMaxNameBytes);
  }
  return absl::OkStatus();
}

absl::StatusOr<int32_t> NormalizePageSize(int32_t page_size, int32_t default_size) {
  if (page_size < 0) return absl::InvalidArgumentError("page_size must be >= 0");
  if (page_size == 0) return default_size;
  return std::min(page_size, kMaxPageSize);
}

}  // namespace agentd::runtime
