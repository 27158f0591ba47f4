#include "backend/echo_backend.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace agentd::backend {
namespace {

// `/tool NAME ARGS_JSON` as the newest message, with NAME among the request's tools: the echo
// model asks for that tool (the test/example way to exercise tool loops without a real model).
bool ParseToolCommand(const ModelRequest& request, const ChatMessage& last, v1::ToolCall* call) {
  if (last.role != v1::ROLE_USER) return false;
  absl::string_view text = last.text;
  if (!absl::ConsumePrefix(&text, "/tool ")) return false;
  text = absl::StripLeadingAsciiWhitespace(text);
  const size_t space = text.find_first_of(" \t\n");
  const absl::string_view name = text.substr(0, space);
  absl::string_view args =
      space == absl::string_view::npos ? "" : absl::StripAsciiWhitespace(text.substr(space));
  bool known = false;
  for (const ToolDefinition& tool : request.tools) known = known || tool.name == name;
  if (!known) return false;
  int turn_calls = 0;  // a distinct, deterministic call id per tool call in the context
  for (const ChatMessage& m : request.messages) turn_calls += static_cast<int>(m.tool_calls.size());
  call->set_id(absl::StrCat("call_echo_", turn_calls + 1));
  call->set_name(std::string(name));
  call->set_arguments_json(args.empty() ? "{}" : std::string(args));
  return true;
}

}  // namespace

int64_t EstimateTokens(absl::string_view text) {
  return static_cast<int64_t>((text.size() + 3) / 4);
}

std::shared_ptr<ModelCall> EchoBackend::Start(const ModelRequest& request,
                                                   ModelCallbacks callbacks) {
  ModelResponse response;
  int64_t input_tokens = 0;
  for (const ChatMessage& m : request.messages) {
    input_tokens += EstimateTokens(m.text) + 4;
    if (m.role == v1::ROLE_USER) response.text = m.text;
  }
  response.finish_reason = "stop";
  if (!request.messages.empty()) {
    const ChatMessage& last = request.messages.back();
    v1::ToolCall call;
    if (ParseToolCommand(request, last, &call)) {
      response.text.clear();
      response.tool_calls.push_back(std::move(call));
      response.finish_reason = "tool_calls";
    } else if (last.role == v1::ROLE_TOOL) {
      // After tool results: answer with the results of the newest tool round, in order.
      response.text.clear();
      size_t first = request.messages.size();
      while (first > 0 && request.messages[first - 1].role == v1::ROLE_TOOL) --first;
      for (size_t i = first; i < request.messages.size(); ++i) {
        if (!response.text.empty()) response.text += "\n";
        response.text += request.messages[i].text;
      }
    }
  }
  response.input_tokens = input_tokens;
  response.output_tokens = EstimateTokens(response.text);
  response.served_by = "echo";
  if (callbacks.on_delta && !response.text.empty()) callbacks.on_delta(response.text);
  callbacks.on_done(std::move(response));
  return std::make_shared<CompletedCall>();
}

}  // namespace agentd::backend
