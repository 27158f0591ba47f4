#include "backend/openai_mapping.h"

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/json_text.h"

namespace agentd::backend::openai {
namespace {

using nlohmann::json;

constexpr size_t kMaxMessageBytes = 500;

// Cuts `s` to at most `max` bytes without splitting a UTF-8 sequence.
std::string Truncate(absl::string_view s, size_t max = kMaxMessageBytes) {
  if (s.size() <= max) return std::string(s);
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return absl::StrCat(s.substr(0, n), "...");
}

// The string at obj[key], or "" when absent, null or not a string.
std::string Str(const json& obj, const char* key) {
  if (!obj.is_object()) return "";
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

int64_t Int(const json& obj, const char* key) {
  if (!obj.is_object()) return 0;
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number()) return 0;
  return it->get<int64_t>();
}

// Message content: a string, null, or (some servers) an array of {"type":"text","text":...}.
std::string ContentText(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  std::string text;
  if (content.is_array()) {
    for (const json& part : content) {
      if (part.is_string())
        text += part.get<std::string>();
      else
        text += Str(part, "text");
    }
  }
  return text;
}

// `function.arguments` is a JSON-encoded string; a few servers send the object itself.
std::string Arguments(const json& function) {
  if (!function.is_object()) return "";
  auto it = function.find("arguments");
  if (it == function.end() || it->is_null()) return "";
  if (it->is_string()) return it->get<std::string>();
  return it->dump();
}

struct ProviderError {
  std::string message;
  std::string type;
  std::string code;
  int numeric_code = 0;
};

// Reads {"error":{"message","type","code"}}, {"error":"..."} or {"object":"error","message",...}.
ProviderError ExtractProviderError(const json& body) {
  ProviderError e;
  const json* src = &body;
  if (body.is_object()) {
    auto it = body.find("error");
    if (it != body.end()) {
      if (it->is_string()) {
        e.message = it->get<std::string>();
        return e;
      }
      if (it->is_object()) src = &*it;
    }
  }
  e.message = Str(*src, "message");
  e.type = Str(*src, "type");
  if (src->is_object()) {
    auto code = src->find("code");
    if (code != src->end()) {
      if (code->is_string())
        e.code = code->get<std::string>();
      else if (code->is_number_integer())
        e.numeric_code = code->get<int>();
    }
  }
  return e;
}

bool Mentions(const ProviderError& e, absl::string_view what) {
  return e.code == what || e.type == what;
}

absl::Status Classify(int http_status, const ProviderError& e, absl::string_view fallback) {
  std::string message = Truncate(e.message.empty() ? fallback : absl::string_view(e.message));
  const bool context_length = Mentions(e, "context_length_exceeded") ||
                              absl::StrContains(e.message, "maximum context length");
  if (http_status == 429) {
    if (Mentions(e, "insufficient_quota")) return absl::ResourceExhaustedError(message);
    return absl::UnavailableError(message);
  }
  if (http_status == 408 || http_status >= 500) return absl::UnavailableError(message);
  if (http_status == 400 && context_length) return absl::FailedPreconditionError(message);
  if (http_status == 401 || http_status == 403) return absl::PermissionDeniedError(message);
  if (http_status >= 400) return absl::InvalidArgumentError(message);
  return absl::UnavailableError(message);
}

// An `error` object inside a 2xx body or a stream chunk: classified by its code.
absl::Status InBandError(const json& body) {
  ProviderError e = ExtractProviderError(body);
  int as_http = 500;
  if (e.numeric_code >= 400 && e.numeric_code <= 599) as_http = e.numeric_code;
  if (Mentions(e, "insufficient_quota")) as_http = 429;
  if (Mentions(e, "context_length_exceeded")) as_http = 400;
  return Classify(as_http, e, "provider reported an error");
}

absl::StatusOr<json> ParseJson(absl::string_view text, absl::string_view what) {
  json parsed = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return absl::UnavailableError(
        absl::StrCat("malformed JSON in ", what, ": ", Truncate(text, 120)));
  }
  return parsed;
}

const char* RoleName(v1::Role role) {
  switch (role) {
    case v1::ROLE_SYSTEM:
      return "system";
    case v1::ROLE_USER:
      return "user";
    case v1::ROLE_ASSISTANT:
      return "assistant";
    case v1::ROLE_TOOL:
      return "tool";
    default:
      return nullptr;
  }
}

/// Appends `m` as a Chat Completions message object; false if it has no role.
bool AppendChatMessage(std::string* out, const ChatMessage& m) {
  const char* role = RoleName(m.role);
  if (role == nullptr) return false;
  out->append("{\"content\":");
  const bool calls = m.role == v1::ROLE_ASSISTANT && !m.tool_calls.empty();
  if (calls && m.text.empty()) {
    out->append("null");
  } else {
    common::AppendJsonString(out, m.text);
  }
  out->append(",\"role\":\"").append(role).push_back('"');
  if (m.role == v1::ROLE_TOOL) {
    out->append(",\"tool_call_id\":");
    common::AppendJsonString(out, m.tool_call_id);
  } else if (calls) {
    out->append(",\"tool_calls\":[");
    for (size_t c = 0; c < m.tool_calls.size(); ++c) {
      const v1::ToolCall& tc = m.tool_calls[c];
      if (c > 0) out->push_back(',');
      out->append("{\"function\":{\"arguments\":");
      common::AppendJsonString(out, tc.arguments_json().empty() ? "{}" : tc.arguments_json());
      out->append(",\"name\":");
      common::AppendJsonString(out, tc.name());
      out->append("},\"id\":");
      common::AppendJsonString(out, tc.id());
      out->append(",\"type\":\"function\"}");
    }
    out->push_back(']');
  }
  out->push_back('}');
  return true;
}

}  // namespace

absl::StatusOr<std::string> EncodeChatMessage(const ChatMessage& message) {
  std::string out;
  out.reserve(message.text.size() + 64);
  if (!AppendChatMessage(&out, message)) return absl::InvalidArgumentError("message has no role");
  return out;
}

absl::StatusOr<ChatMessage> DecodeChatMessage(absl::string_view encoded) {
  json obj = json::parse(encoded.begin(), encoded.end(), nullptr, /*allow_exceptions=*/false);
  if (!obj.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a chat message object: ", Truncate(encoded, 120)));
  }
  ChatMessage m;
  const std::string role = Str(obj, "role");
  for (v1::Role r : {v1::ROLE_SYSTEM, v1::ROLE_USER, v1::ROLE_ASSISTANT, v1::ROLE_TOOL}) {
    if (role == RoleName(r)) m.role = r;
  }
  if (m.role == v1::ROLE_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat("chat message without a known role: ", role));
  }
  if (auto content = obj.find("content"); content != obj.end()) m.text = ContentText(*content);
  m.tool_call_id = Str(obj, "tool_call_id");
  if (auto calls = obj.find("tool_calls"); calls != obj.end() && calls->is_array()) {
    for (const json& c : *calls) {
      v1::ToolCall& tc = m.tool_calls.emplace_back();
      tc.set_id(Str(c, "id"));
      const json* function = c.is_object() && c.contains("function") ? &c["function"] : nullptr;
      if (function != nullptr) {
        tc.set_name(Str(*function, "name"));
        tc.set_arguments_json(Arguments(*function));
      }
    }
  }
  return m;
}

absl::Status ExpandElidedMessages(std::vector<ChatMessage>* messages) {
  for (ChatMessage& m : *messages) {
    if (!m.elided) continue;
    if (m.encoded == nullptr) return absl::InternalError("elided chat message without encoding");
    absl::StatusOr<ChatMessage> full = DecodeChatMessage(*m.encoded);
    if (!full.ok()) return full.status();
    full->encoded = std::move(m.encoded);
    m = *std::move(full);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> BuildChatRequestBody(const ModelRequest& request) {
  // Written straight into the body (no JSON tree): this runs for every model call, over the
  // whole context window. Keys in sorted order, the way nlohmann::json would dump them; invalid
  // UTF-8 in user text is replaced rather than thrown on (common/json_text.h). A message that
  // carries its encoding (ChatMessage::encoded) is copied as is.
  // One allocation for the whole body (a regrowth would copy the context once more): room for
  // escapes in text that is not encoded yet, and for the tools.
  size_t reserve = 256 + request.model.size();
  for (const ChatMessage& m : request.messages) {
    if (m.encoded != nullptr) {
      reserve += m.encoded->size() + 1;
      continue;
    }
    reserve += m.text.size() + m.text.size() / 4 + 64 + m.tool_call_id.size();
    for (const v1::ToolCall& tc : m.tool_calls) {
      reserve += tc.arguments_json().size() * 5 / 4 + tc.name().size() + tc.id().size() + 96;
    }
  }
  for (const ToolDefinition& t : request.tools) {
    reserve += t.name.size() + t.description.size() * 5 / 4 + t.parameters_json_schema.size() + 96;
  }
  std::string out;
  out.reserve(reserve);
  out.append("{\"messages\":[");
  for (size_t i = 0; i < request.messages.size(); ++i) {
    const ChatMessage& m = request.messages[i];
    if (i > 0) out.push_back(',');
    if (m.encoded != nullptr) {
      out.append(*m.encoded);
    } else if (!AppendChatMessage(&out, m)) {
      return absl::InvalidArgumentError(absl::StrCat("message ", i, " has no role"));
    }
  }
  out.append("],\"model\":");
  common::AppendJsonString(&out, request.model);
  out.append(request.stream ? ",\"stream\":true,\"stream_options\":{\"include_usage\":true}"
                            : ",\"stream\":false");
  if (!request.tools.empty()) {
    out.append(",\"tools\":[");
    for (size_t i = 0; i < request.tools.size(); ++i) {
      const ToolDefinition& t = request.tools[i];
      json parameters = {{"type", "object"}, {"properties", json::object()}};
      if (!absl::StripAsciiWhitespace(t.parameters_json_schema).empty()) {
        parameters = json::parse(t.parameters_json_schema, nullptr, /*allow_exceptions=*/false);
        if (!parameters.is_object()) {
          return absl::InvalidArgumentError(
              absl::StrCat("tool '", t.name, "': parameters schema is not a JSON object"));
        }
      }
      if (i > 0) out.push_back(',');
      out.append("{\"function\":{\"description\":");
      common::AppendJsonString(&out, t.description);
      out.append(",\"name\":");
      common::AppendJsonString(&out, t.name);
      out.append(",\"parameters\":");
      out.append(common::DumpJson(parameters));
      out.append("},\"type\":\"function\"}");
    }
    out.push_back(']');
  }
  out.push_back('}');
  return out;
}

absl::StatusOr<ModelResponse> ParseChatResponse(absl::string_view body) {
  absl::StatusOr<json> parsed = ParseJson(body, "response");
  if (!parsed.ok()) return parsed.status();
  const json& root = *parsed;
  if (!root.is_object()) return absl::UnavailableError("response is not a JSON object");
  if (root.contains("error") && !root["error"].is_null()) return InBandError(root);
  auto choices = root.find("choices");
  if (choices == root.end() || !choices->is_array()) {
    return absl::UnavailableError("response has no `choices` array");
  }
  if (choices->empty()) return absl::UnavailableError("response has empty `choices`");
  const json& choice = (*choices)[0];
  if (!choice.is_object()) return absl::UnavailableError("response choice is not an object");

  ModelResponse response;
  auto message = choice.find("message");
  if (message != choice.end() && message->is_object()) {
    if (auto content = message->find("content"); content != message->end()) {
      response.text = ContentText(*content);
    }
    auto calls = message->find("tool_calls");
    if (calls != message->end() && calls->is_array()) {
      for (const json& c : *calls) {
        v1::ToolCall tc;
        tc.set_id(Str(c, "id"));
        if (tc.id().empty()) tc.set_id(absl::StrCat("call_", response.tool_calls.size()));
        const json function = c.is_object() ? c.value("function", json::object()) : json();
        tc.set_name(Str(function, "name"));
        tc.set_arguments_json(Arguments(function));
        response.tool_calls.push_back(std::move(tc));
      }
    }
  }
  response.finish_reason = Str(choice, "finish_reason");
  if (auto usage = root.find("usage"); usage != root.end()) {
    response.input_tokens = Int(*usage, "prompt_tokens");
    response.output_tokens = Int(*usage, "completion_tokens");
  }
  return response;
}

absl::Status ChatStreamAccumulator::AddData(absl::string_view data, std::string* delta) {
  delta->clear();
  if (done_) return absl::OkStatus();
  if (absl::StripAsciiWhitespace(data) == "[DONE]") {
    done_ = true;
    return absl::OkStatus();
  }
  absl::StatusOr<json> parsed = ParseJson(data, "stream chunk");
  if (!parsed.ok()) return parsed.status();
  const json& chunk = *parsed;
  if (!chunk.is_object()) return absl::UnavailableError("stream chunk is not a JSON object");
  if (chunk.contains("error") && !chunk["error"].is_null()) return InBandError(chunk);

  if (auto usage = chunk.find("usage"); usage != chunk.end() && usage->is_object()) {
    input_tokens_ = Int(*usage, "prompt_tokens");
    output_tokens_ = Int(*usage, "completion_tokens");
  }
  auto choices = chunk.find("choices");
  if (choices == chunk.end() || !choices->is_array() || choices->empty()) return absl::OkStatus();
  const json& choice = (*choices)[0];
  if (!choice.is_object()) return absl::UnavailableError("stream choice is not an object");
  if (std::string reason = Str(choice, "finish_reason"); !reason.empty()) {
    finish_reason_ = std::move(reason);
  }
  auto d = choice.find("delta");
  if (d == choice.end() || !d->is_object()) return absl::OkStatus();
  if (auto content = d->find("content"); content != d->end()) {
    *delta = ContentText(*content);
    text_ += *delta;
  }
  auto calls = d->find("tool_calls");
  if (calls == d->end() || !calls->is_array()) return absl::OkStatus();
  for (const json& c : *calls) {
    if (!c.is_object()) return absl::UnavailableError("stream tool call is not an object");
    int64_t index;
    if (auto it = c.find("index"); it != c.end() && it->is_number_integer()) {
      index = it->get<int64_t>();
    } else if (!Str(c, "id").empty() || tool_calls_.empty()) {
      index = tool_calls_.empty() ? 0 : tool_calls_.rbegin()->first + 1;  // no index: new call
    } else {
      index = tool_calls_.rbegin()->first;  // no index, no id: continues the last call
    }
    PartialToolCall& partial = tool_calls_[index];
    if (partial.id.empty()) partial.id = Str(c, "id");
    const json function = c.value("function", json::object());
    if (partial.name.empty()) partial.name = Str(function, "name");
    partial.arguments += Arguments(function);
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelResponse> ChatStreamAccumulator::Finish() {
  if (!done_ && finish_reason_.empty()) {
    return absl::UnavailableError("stream was cut: it ended without a finish_reason or [DONE]");
  }
  if (!done_) return absl::UnavailableError("stream was cut: it ended before data: [DONE]");
  if (finish_reason_.empty()) {
    return absl::UnavailableError("stream ended with [DONE] but no chunk carried a finish_reason");
  }
  ModelResponse response;
  response.text = std::move(text_);
  for (auto& [index, partial] : tool_calls_) {
    v1::ToolCall tc;
    tc.set_id(partial.id.empty() ? absl::StrCat("call_", index) : std::move(partial.id));
    tc.set_name(std::move(partial.name));
    tc.set_arguments_json(std::move(partial.arguments));
    response.tool_calls.push_back(std::move(tc));
  }
  response.finish_reason = std::move(finish_reason_);
  response.input_tokens = input_tokens_;
  response.output_tokens = output_tokens_;
  tool_calls_.clear();
  return response;
}

std::optional<absl::Duration> ParseRetryAfter(absl::string_view retry_after,
                                              absl::string_view retry_after_ms) {
  double value = 0;
  if (absl::SimpleAtod(absl::StripAsciiWhitespace(retry_after_ms), &value) && value >= 0 &&
      std::isfinite(value)) {
    return absl::Milliseconds(value);
  }
  if (absl::SimpleAtod(absl::StripAsciiWhitespace(retry_after), &value) && value >= 0 &&
      std::isfinite(value)) {
    return absl::Seconds(value);
  }
  return std::nullopt;
}

absl::Status HttpErrorStatus(int http_status, absl::string_view body,
                             std::optional<absl::Duration> retry_after) {
  ProviderError e;
  json parsed = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_discarded()) e = ExtractProviderError(parsed);
  const std::string fallback =
      absl::StrCat("HTTP ", http_status, body.empty() ? "" : ": ", Truncate(body, 200));
  absl::Status status = Classify(http_status, e, fallback);
  if (!e.message.empty()) {
    status =
        absl::Status(status.code(), absl::StrCat("HTTP ", http_status, ": ", status.message()));
  }
  status.SetPayload(kHttpStatusPayload, absl::Cord(std::to_string(http_status)));
  if (retry_after.has_value() && absl::IsUnavailable(status)) {
    status.SetPayload(kRetryAfterPayload,
                      absl::Cord(std::to_string(absl::ToInt64Milliseconds(*retry_after))));
  }
  return status;
}

}  // namespace agentd::backend::openai
