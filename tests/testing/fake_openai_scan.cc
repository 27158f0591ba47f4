#include "testing/fake_openai_scan.h"

#include <string>

namespace agentd::testing {
namespace {

size_t SkipSpace(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) ++i;
  return i;
}

// The position just after `"key"<ws>:<ws>` for the first (or, if `last`, the last) unescaped
// occurrence of the key; npos if none.
size_t ValueAt(std::string_view body, std::string_view key, bool last) {
  const std::string quoted = "\"" + std::string(key) + "\"";
  size_t at = last ? body.rfind(quoted) : body.find(quoted);
  while (at != std::string_view::npos) {
    if (at == 0 || body[at - 1] != '\\') {
      size_t i = SkipSpace(body, at + quoted.size());
      if (i < body.size() && body[i] == ':') return SkipSpace(body, i + 1);
    }
    if (last) {
      if (at == 0) break;
      at = body.rfind(quoted, at - 1);
    } else {
      at = body.find(quoted, at + 1);
    }
  }
  return std::string_view::npos;
}

// A simple string value (no escapes needed for the values read here) at `i`, or nullopt-ish "".
bool StringAt(std::string_view body, size_t i, std::string* out) {
  if (i >= body.size() || body[i] != '"') return false;
  const size_t end = body.find('"', i + 1);
  if (end == std::string_view::npos) return false;
  *out = std::string(body.substr(i + 1, end - i - 1));
  return true;
}

bool TrueAt(std::string_view body, size_t i) { return body.substr(i, 4) == "true"; }

}  // namespace

nlohmann::json ScanChatRequest(std::string_view body) {
  const size_t first = SkipSpace(body, 0);
  if (first >= body.size() || body[first] != '{') return nlohmann::json::value_t::discarded;
  nlohmann::json out = nlohmann::json::object();
  std::string text;
  if (StringAt(body, ValueAt(body, "model", false), &text)) out["model"] = text;
  if (size_t i = ValueAt(body, "stream", false); i != std::string_view::npos) {
    out["stream"] = TrueAt(body, i);
  }
  if (size_t i = ValueAt(body, "include_usage", false); i != std::string_view::npos) {
    out["stream_options"] = {{"include_usage", TrueAt(body, i)}};
  }
  out["messages"] = nlohmann::json::array();
  if (StringAt(body, ValueAt(body, "role", true), &text)) {
    out["messages"].push_back({{"role", text}});
  }
  return out;
}

}  // namespace agentd::testing
