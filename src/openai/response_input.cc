#include "openai/response_input.h"

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "openai/http_util.h"

namespace agentd::openai {
namespace {

absl::Status Bad(std::string* param, const std::string& field, const std::string& message) {
  *param = field;
  return absl::InvalidArgumentError(message);
}

absl::StatusOr<v1::Role> RoleOf(const std::string& role) {
  if (role == "user") return v1::ROLE_USER;
  if (role == "system" || role == "developer") return v1::ROLE_SYSTEM;
  if (role == "assistant") return v1::ROLE_ASSISTANT;
  return absl::InvalidArgumentError(absl::StrCat("role \"", role, "\" is not supported"));
}

absl::Status ParseItem(const json& item, const std::string& field, ResponseRequest* out,
                       std::string* param) {
  if (!item.is_object()) return Bad(param, field, field + " must be an object");
  auto type = StringField(item, "type");
  if (!type.ok()) return Bad(param, field + ".type", std::string(type.status().message()));
  if (*type == "function_call_output") {
    auto call_id = StringField(item, "call_id");
    if (!call_id.ok() || call_id->empty()) {
      return Bad(param, field + ".call_id", field + ".call_id must be a non-empty string");
    }
    auto it = item.find("output");
    std::string output;
    if (it == item.end() || it->is_null()) {
      return Bad(param, field + ".output", field + ".output is required");
    } else if (it->is_string()) {
      output = it->get<std::string>();
    } else {
      auto text = ContentText(*it, field + ".output");
      if (!text.ok()) return Bad(param, field + ".output", std::string(text.status().message()));
      output = *text;
    }
    v1::ToolResult r;
    r.set_tool_call_id(*call_id);
    r.set_output(output);
    out->tool_results.push_back(std::move(r));
    return absl::OkStatus();
  }
  if (*type == "mcp_approval_response") {
    auto id = StringField(item, "approval_request_id");
    if (!id.ok() || id->empty()) {
      return Bad(param, field + ".approval_request_id",
                 field + ".approval_request_id must be a non-empty string");
    }
    auto approve = item.find("approve");
    if (approve == item.end() || !approve->is_boolean()) {
      return Bad(param, field + ".approve", field + ".approve must be true or false");
    }
    v1::ToolApproval a;
    a.set_tool_call_id(*id);
    a.set_approved(approve->get<bool>());
    auto reason = item.find("reason");
    if (reason != item.end() && !reason->is_null()) {
      if (!reason->is_string()) return Bad(param, field + ".reason", field + ".reason must be a string");
      a.set_reason(reason->get<std::string>());
    }
    out->approvals.push_back(std::move(a));
    return absl::OkStatus();
  }
  if (*type == "function_call" || *type == "reasoning" || *type == "mcp_approval_request") {
    // Earlier output the client echoes back: the session already holds it.
    return absl::OkStatus();
  }
  if (!type->empty() && *type != "message") {
    return Bad(param, field + ".type",
               absl::StrCat("input item type \"", *type, "\" is not supported"));
  }
  auto role_name = StringField(item, "role");
  if (!role_name.ok() || role_name->empty()) {
    return Bad(param, field + ".role", field + ".role must be a string");
  }
  auto role = RoleOf(*role_name);
  if (!role.ok()) return Bad(param, field + ".role", std::string(role.status().message()));
  auto content = item.find("content");
  if (content == item.end()) return Bad(param, field + ".content", field + ".content is required");
  auto text = ContentText(*content, field + ".content");
  if (!text.ok()) return Bad(param, field + ".content", std::string(text.status().message()));
  v1::InputMessage m;
  m.set_role(*role);
  m.set_text(*text);
  out->input.push_back(std::move(m));
  return absl::OkStatus();
}

absl::Status ParseTool(const json& tool, const std::string& field, ResponseRequest* out,
                       std::string* param) {
  if (!tool.is_object()) return Bad(param, field, field + " must be an object");
  auto type = StringField(tool, "type");
  if (!type.ok()) return Bad(param, field + ".type", std::string(type.status().message()));
  if (*type != "function") {
    return Bad(param, field + ".type",
               absl::StrCat("tool type \"", *type, "\" is not supported (only \"function\")"));
  }
  auto name = StringField(tool, "name");
  if (!name.ok() || name->empty()) {
    return Bad(param, field + ".name", field + ".name must be a non-empty string");
  }
  auto description = StringField(tool, "description");
  if (!description.ok())
    return Bad(param, field + ".description", std::string(description.status().message()));
  v1::ToolSpec spec;
  spec.set_name(*name);
  spec.set_description(*description);
  spec.set_kind(v1::TOOL_KIND_CLIENT);
  auto params = tool.find("parameters");
  if (params != tool.end() && !params->is_null()) {
    if (!params->is_object()) {
      return Bad(param, field + ".parameters", field + ".parameters must be a JSON Schema object");
    }
    spec.set_parameters_json_schema(params->dump());
  } else {
    spec.set_parameters_json_schema(R"({"type":"object"})");
  }
  out->tools.push_back(std::move(spec));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> ContentText(const json& content, const std::string& field) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) {
    return absl::InvalidArgumentError(field + " must be a string or an array of content parts");
  }
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    const std::string pf = absl::StrCat(field, "[", i, "]");
    if (!part.is_object()) return absl::InvalidArgumentError(pf + " must be an object");
    auto type = StringField(part, "type");
    if (!type.ok()) return type.status();
    if (*type != "input_text" && *type != "output_text" && *type != "text") {
      return absl::InvalidArgumentError(
          absl::StrCat(pf, ": content part type \"", *type, "\" is not supported (text only)"));
    }
    auto t = StringField(part, "text");
    if (!t.ok()) return absl::InvalidArgumentError(pf + ".text must be a string");
    if (!text.empty() && !t->empty()) text += "\n";
    text += *t;
  }
  return text;
}

absl::StatusOr<ResponseRequest> ParseResponseRequest(const json& body, std::string* param) {
  ResponseRequest out;
  struct StringSpec {
    const char* name;
    std::string* target;
  } strings[] = {{"model", &out.model},
                 {"instructions", &out.instructions},
                 {"previous_response_id", &out.previous_response_id}};
  for (const StringSpec& s : strings) {
    auto v = StringField(body, s.name);
    if (!v.ok()) return Bad(param, s.name, std::string(v.status().message()));
    *s.target = *v;
  }
  auto conv = body.find("conversation");
  if (conv != body.end() && !conv->is_null()) {
    if (conv->is_string()) {
      out.conversation = conv->get<std::string>();
    } else if (conv->is_object() && conv->contains("id") && (*conv)["id"].is_string()) {
      out.conversation = (*conv)["id"].get<std::string>();
    } else {
      return Bad(param, "conversation", "'conversation' must be a string or {\"id\": string}");
    }
  }
  auto stream = BoolField(body, "stream", false);
  if (!stream.ok()) return Bad(param, "stream", std::string(stream.status().message()));
  out.stream = *stream;
  auto store = BoolField(body, "store", true);
  if (!store.ok()) return Bad(param, "store", std::string(store.status().message()));
  out.store = *store;

  auto input = body.find("input");
  if (input == body.end() || input->is_null()) return Bad(param, "input", "'input' is required");
  if (input->is_string()) {
    v1::InputMessage m;
    m.set_role(v1::ROLE_USER);
    m.set_text(input->get<std::string>());
    out.input.push_back(std::move(m));
  } else if (input->is_array()) {
    for (size_t i = 0; i < input->size(); ++i) {
      absl::Status st = ParseItem((*input)[i], absl::StrCat("input[", i, "]"), &out, param);
      if (!st.ok()) return st;
    }
  } else {
    return Bad(param, "input", "'input' must be a string or an array of input items");
  }
  if (out.input.empty() && out.tool_results.empty() && out.approvals.empty()) {
    return Bad(param, "input",
               "'input' has no message, no function_call_output and no mcp_approval_response");
  }
  auto tools = body.find("tools");
  if (tools != body.end() && !tools->is_null()) {
    if (!tools->is_array()) return Bad(param, "tools", "'tools' must be an array");
    for (size_t i = 0; i < tools->size(); ++i) {
      absl::Status st = ParseTool((*tools)[i], absl::StrCat("tools[", i, "]"), &out, param);
      if (!st.ok()) return st;
    }
  }
  if (!out.previous_response_id.empty() && !out.conversation.empty()) {
    return Bad(param, "conversation",
               "'previous_response_id' and 'conversation' cannot be used together");
  }
  if (out.previous_response_id.empty() && out.conversation.empty() && out.model.empty()) {
    return Bad(param, "model", "'model' is required");
  }
  return out;
}

std::string ImplicitAgentId(const ResponseRequest& request) {
  json tools = json::array();
  for (const v1::ToolSpec& t : request.tools) {
    tools.push_back({t.name(), t.description(), t.parameters_json_schema()});
  }
  const json key = {request.model, request.instructions, tools};
  return "oai_" + HexEncode(Sha256(key.dump())).substr(0, 32);
}

}  // namespace agentd::openai
