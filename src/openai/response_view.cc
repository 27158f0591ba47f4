#include "openai/response_view.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/ids.h"

namespace agentd::openai {
namespace {

constexpr absl::string_view kRespPrefix = "resp_";
constexpr absl::string_view kTurnPrefix = "turn_";
constexpr size_t kTurnHex = 32;

bool IsLowerHex(absl::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f'); });
}

}  // namespace

std::string MakeResponseId(const std::string& session_id, const std::string& turn_id) {
  absl::string_view hex = turn_id;
  if (!absl::ConsumePrefix(&hex, kTurnPrefix) || hex.size() != kTurnHex) return "";
  return absl::StrCat(kRespPrefix, hex, session_id);
}

absl::StatusOr<ResponseId> ParseResponseId(const std::string& id) {
  absl::string_view rest = id;
  auto not_found = absl::NotFoundError(absl::StrCat("response \"", id, "\" not found"));
  if (!absl::ConsumePrefix(&rest, kRespPrefix) || rest.size() <= kTurnHex ||
      !IsLowerHex(rest.substr(0, kTurnHex))) {
    return not_found;
  }
  ResponseId out;
  out.turn_id = absl::StrCat(kTurnPrefix, rest.substr(0, kTurnHex));
  out.session_id = std::string(rest.substr(kTurnHex));
  if (!ValidateId("session_id", out.session_id).ok()) return not_found;
  return out;
}

void FoldTurnEvents(const std::vector<v1::Event>& events, const std::string& turn_id,
                    TurnView* view) {
  for (const v1::Event& e : events) {
    if (e.turn_id() != turn_id) continue;
    switch (e.type()) {
      case v1::EVENT_TYPE_TURN_STARTED:
        view->found = true;
        view->first_seq = e.seq();
        view->created_unix = e.time().seconds();
        break;
      case v1::EVENT_TYPE_MESSAGE:
        if (e.message().role() == v1::ROLE_ASSISTANT) {
          view->output_text = e.message().text();
          if (!e.message().model().empty()) view->model = e.message().model();
        }
        break;
      case v1::EVENT_TYPE_TOOL_CALL:
        view->open_calls.push_back(e.tool_call());
        break;
      case v1::EVENT_TYPE_TOOL_RESULT: {
        auto& calls = view->open_calls;
        calls.erase(std::remove_if(calls.begin(), calls.end(),
                                   [&](const v1::ToolCall& c) {
                                     return c.id() == e.tool_result().tool_call_id();
                                   }),
                    calls.end());
        break;
      }
      case v1::EVENT_TYPE_TURN_COMPLETED:
      case v1::EVENT_TYPE_TURN_FAILED:
        view->finished = true;
        view->last_seq = e.seq();
        view->status = e.turn().status();
        view->error = e.turn().error();
        view->usage = e.turn().usage();
        break;
      default:
        break;
    }
  }
}

json MessageItem(const std::string& turn_id, const std::string& text, const char* status) {
  json content = json::array();
  content.push_back({{"type", "output_text"}, {"text", text}, {"annotations", json::array()}});
  return {{"type", "message"},
          {"id", absl::StrCat("msg_", turn_id.size() > 5 ? turn_id.substr(5) : turn_id)},
          {"status", status},
          {"role", "assistant"},
          {"content", std::move(content)}};
}

json FunctionCallItem(const v1::ToolCall& call, const char* status) {
  if (call.requires_approval()) {
    // OpenAI's shape for a remote tool call waiting for approval. The model's name for an MCP
    // tool is mcp__<server>__<tool>; other server-side tools are agentd's.
    std::string server = "agentd";
    std::string name = call.name();
    if (absl::StartsWith(name, "mcp__")) {
      const size_t sep = name.find("__", 5);
      if (sep != std::string::npos) {
        server = name.substr(5, sep - 5);
        name = name.substr(sep + 2);
      }
    }
    return {{"type", "mcp_approval_request"}, {"id", call.id()},       {"server_label", server},
            {"name", name},                   {"arguments", call.arguments_json()}};
  }
  return {{"type", "function_call"}, {"id", absl::StrCat("fc_", call.id())}, {"call_id", call.id()},
          {"name", call.name()},     {"arguments", call.arguments_json()},   {"status", status}};
}

json OutputItems(const std::string& turn_id, const std::string& text,
                 const std::vector<v1::ToolCall>& calls) {
  json out = json::array();
  if (!text.empty() || calls.empty()) out.push_back(MessageItem(turn_id, text, "completed"));
  for (const v1::ToolCall& c : calls) out.push_back(FunctionCallItem(c, "completed"));
  return out;
}

json UsageJson(const v1::Usage& usage) {
  return {{"input_tokens", usage.input_tokens()},
          {"input_tokens_details", {{"cached_tokens", 0}}},
          {"output_tokens", usage.output_tokens()},
          {"output_tokens_details", {{"reasoning_tokens", 0}}},
          {"total_tokens", usage.input_tokens() + usage.output_tokens()}};
}

std::string StatusName(v1::TurnStatus status) {
  switch (status) {
    case v1::TURN_STATUS_COMPLETED:
    case v1::TURN_STATUS_REQUIRES_ACTION:  // the function calls are the output
      return "completed";
    case v1::TURN_STATUS_FAILED:
      return "failed";
    case v1::TURN_STATUS_CANCELLED:
      return "cancelled";
    default:
      return "in_progress";
  }
}

json ResponseJson(const ResponseMeta& meta, const std::string& status, const json& output,
                  const v1::Usage* usage, const std::string& error) {
  auto opt = [](const std::string& s) { return s.empty() ? json(nullptr) : json(s); };
  json r = {{"id", meta.id},
            {"object", "response"},
            {"created_at", meta.created_unix},
            {"status", status},
            {"error", nullptr},
            {"incomplete_details", nullptr},
            {"instructions", opt(meta.instructions)},
            {"model", meta.model},
            {"output", output},
            {"parallel_tool_calls", true},
            {"previous_response_id", opt(meta.previous_response_id)},
            {"store", meta.store},
            {"temperature", nullptr},
            {"top_p", nullptr},
            {"tool_choice", "auto"},
            {"tools", json::array()},
            {"text", {{"format", {{"type", "text"}}}}},
            {"metadata", json::object()},
            {"usage", usage == nullptr ? json(nullptr) : UsageJson(*usage)}};
  if (!meta.session_id.empty() && meta.store) {
    r["conversation"] = {{"id", meta.session_id}};
  }
  if (status == "failed") {
    r["error"] = {{"code", "server_error"}, {"message", error.empty() ? "turn failed" : error}};
  }
  return r;
}

}  // namespace agentd::openai
