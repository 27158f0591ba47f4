#include "tools/http_tool.h"

#include <curl/curl.h>

#include <memory>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "common/json_text.h"
#include "common/status_macros.h"

namespace agentd::tools {
namespace {

using nlohmann::json;

constexpr char kDefaultAccept[] = "application/json, text/plain;q=0.9, */*;q=0.5";

bool KnownMethod(absl::string_view m) {
  return m == "GET" || m == "POST" || m == "PUT" || m == "PATCH" || m == "DELETE";
}

bool QueryMethod(absl::string_view m) { return m == "GET" || m == "DELETE"; }

// One piece of a URL template: literal text, or the name of a {placeholder}.
struct Segment {
  bool placeholder = false;
  std::string text;
  size_t pos = 0;  // offset of the literal, or of the '{', in the template
};

bool IsIdentifier(absl::string_view s) {
  if (s.empty() || absl::ascii_isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

// Splits a template into literals and placeholders; INVALID_ARGUMENT for unbalanced braces or a
// placeholder that is not an identifier.
absl::StatusOr<std::vector<Segment>> ParseTemplate(absl::string_view url) {
  std::vector<Segment> out;
  size_t i = 0;
  while (i < url.size()) {
    const size_t open = url.find_first_of("{}", i);
    if (open == absl::string_view::npos) {
      out.push_back({false, std::string(url.substr(i)), i});
      break;
    }
    if (url[open] == '}') {
      return absl::InvalidArgumentError("url has a '}' without a matching '{'");
    }
    if (open > i) out.push_back({false, std::string(url.substr(i, open - i)), i});
    const size_t close = url.find_first_of("{}", open + 1);
    if (close == absl::string_view::npos || url[close] == '{') {
      return absl::InvalidArgumentError("url has a '{' without a matching '}'");
    }
    const absl::string_view name = url.substr(open + 1, close - open - 1);
    if (!IsIdentifier(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("url placeholder {", name.substr(0, 40),
                       "} is not an identifier ([A-Za-z_][A-Za-z0-9_]*)"));
    }
    out.push_back({true, std::string(name), open});
    i = close + 1;
  }
  return out;
}

// RFC 3986: every byte but the unreserved characters becomes %XX.
std::string PercentEncode(absl::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

// The text of a scalar argument: strings as-is, numbers and booleans as their JSON text.
std::string ScalarText(const json& v) {
  return v.is_string() ? v.get<std::string>() : common::DumpJson(v);
}

bool HasHeader(const std::map<std::string, std::string>& headers, absl::string_view name) {
  for (const auto& [n, v] : headers) {
    if (absl::EqualsIgnoreCase(n, name)) return true;
  }
  return false;
}

// RFC 9110 token characters.
bool IsToken(absl::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c)) continue;
    if (absl::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) ==
        absl::string_view::npos) {
      return false;
    }
  }
  return true;
}

// Where the scheme and authority of a template end (the first '/', '?' or '#' after "://"), or
// npos when there is no "://".
size_t AuthorityEnd(absl::string_view url) {
  const size_t sep = url.find("://");
  if (sep == absl::string_view::npos) return absl::string_view::npos;
  const size_t end = url.find_first_of("/?#", sep + 3);
  return end == absl::string_view::npos ? url.size() : end;
}

// Parses `url` (placeholders already substituted) with libcurl's URL parser and checks that it
// has a host. The scheme was checked by the caller.
absl::Status CheckUrlHasHost(const std::string& url) {
  std::unique_ptr<CURLU, void (*)(CURLU*)> u(curl_url(), &curl_url_cleanup);
  if (u == nullptr) return absl::InternalError("curl_url failed");
  const CURLUcode set = curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0);
  if (set == CURLUE_NO_HOST) return absl::InvalidArgumentError("url has no host");
  if (set != CURLUE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("url is not a valid URL (", curl_url_strerror(set), ")"));
  }
  char* host = nullptr;
  const CURLUcode got = curl_url_get(u.get(), CURLUPART_HOST, &host, 0);
  const bool has_host = got == CURLUE_OK && host != nullptr && host[0] != '\0';
  curl_free(host);
  if (!has_host) return absl::InvalidArgumentError("url has no host");
  return absl::OkStatus();
}

absl::Status CheckSchema(const std::string& text, const std::vector<Segment>& segments) {
  if (text.empty()) return absl::OkStatus();
  const json schema = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) {
    return absl::InvalidArgumentError("parameters_json_schema is not valid JSON");
  }
  if (!schema.is_object()) {
    return absl::InvalidArgumentError("parameters_json_schema must be a JSON object");
  }
  if (schema.contains("type") && schema["type"] != "object") {
    return absl::InvalidArgumentError(
        "parameters_json_schema must describe an object (\"type\": \"object\")");
  }
  if (!schema.contains("properties")) return absl::OkStatus();
  const json& props = schema["properties"];
  if (!props.is_object()) {
    return absl::InvalidArgumentError("parameters_json_schema \"properties\" must be an object");
  }
  for (const Segment& s : segments) {
    if (s.placeholder && !props.contains(s.text)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "url placeholder {", s.text, "} is not a property of parameters_json_schema"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateInner(const HttpToolOptions& tool) {
  if (tool.name.empty()) return absl::InvalidArgumentError("name is empty");
  if (!KnownMethod(tool.method)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "method \"", tool.method.substr(0, 20), "\" is not one of GET, POST, PUT, PATCH, DELETE"));
  }
  if (tool.url.empty()) return absl::InvalidArgumentError("url is empty");
  AGENTD_ASSIGN_OR_RETURN(const std::vector<Segment> segments, ParseTemplate(tool.url));
  const absl::string_view url = tool.url;
  if (!absl::StartsWithIgnoreCase(url, "http://") && !absl::StartsWithIgnoreCase(url, "https://")) {
    return absl::InvalidArgumentError("url must start with http:// or https://");
  }
  const size_t authority_end = AuthorityEnd(url);
  // curl reads "http:///x" as host "x"; ask for the host between "://" and the path ourselves.
  const size_t host_start = url.find("://") + 3;
  absl::string_view host = url.substr(host_start, authority_end - host_start);
  if (const size_t at = host.rfind('@'); at != absl::string_view::npos) host.remove_prefix(at + 1);
  if (!absl::StartsWith(host, "[")) host = host.substr(0, host.find(':'));
  if (host.empty() || host == "[]") return absl::InvalidArgumentError("url has no host");
  std::string probe;  // the template with every placeholder replaced by "x", for the URL parser
  for (const Segment& s : segments) {
    if (s.placeholder && s.pos < authority_end) {
      return absl::InvalidArgumentError(
          absl::StrCat("url placeholder {", s.text,
                       "} is in the scheme or host part; only the path, query "
                       "and fragment may hold placeholders"));
    }
    absl::StrAppend(&probe, s.placeholder ? "x" : s.text);
  }
  AGENTD_RETURN_IF_ERROR(CheckUrlHasHost(probe));
  for (const auto& [name, value] : tool.headers) {
    if (!IsToken(name)) {
      return absl::InvalidArgumentError(absl::StrCat("header name \"",
                                                     absl::CHexEscape(name.substr(0, 40)),
                                                     "\" is not a valid HTTP header name"));
    }
    if (absl::string_view(value).find_first_of(absl::string_view("\r\n\0", 3)) !=
        absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("header \"", name, "\" has a value with CR, LF or NUL"));
    }
  }
  return CheckSchema(tool.parameters_json_schema, segments);
}

std::string Redact(const HttpToolOptions& tool, std::string text) {
  for (const auto& [name, value] : tool.headers) {
    if (value.size() >= 4) text = absl::StrReplaceAll(text, {{value, "[redacted]"}});
  }
  return text;
}

absl::Status Decorate(const HttpToolOptions& tool, const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(), Redact(tool, absl::StrCat("HTTP tool \"", tool.name,
                                                               "\": ", status.message())));
}

absl::string_view ReasonPhrase(long status) {
  static constexpr std::pair<long, const char*> kReasons[] = {
      {200, "OK"},
      {201, "Created"},
      {202, "Accepted"},
      {204, "No Content"},
      {301, "Moved Permanently"},
      {302, "Found"},
      {303, "See Other"},
      {304, "Not Modified"},
      {307, "Temporary Redirect"},
      {308, "Permanent Redirect"},
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {406, "Not Acceptable"},
      {408, "Request Timeout"},
      {409, "Conflict"},
      {410, "Gone"},
      {413, "Content Too Large"},
      {415, "Unsupported Media Type"},
      {422, "Unprocessable Content"},
      {429, "Too Many Requests"},
      {500, "Internal Server Error"},
      {501, "Not Implemented"},
      {502, "Bad Gateway"},
      {503, "Service Unavailable"},
      {504, "Gateway Timeout"},
  };
  for (const auto& [code, reason] : kReasons) {
    if (code == status) return reason;
  }
  return "";
}

}  // namespace

absl::Status ValidateHttpTool(const HttpToolOptions& tool) {
  const absl::Status s = ValidateInner(tool);
  if (s.ok()) return s;
  return Decorate(tool, s);
}

absl::StatusOr<HttpPostRequest> BuildHttpToolRequest(const HttpToolOptions& tool,
                                                     const json& args) {
  if (!KnownMethod(tool.method)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "method \"", tool.method.substr(0, 20), "\" is not one of GET, POST, PUT, PATCH, DELETE"));
  }
  static const json kEmpty = json::object();
  const json& a = args.is_null() ? kEmpty : args;
  if (!a.is_object()) return absl::InvalidArgumentError("arguments must be a JSON object");
  AGENTD_ASSIGN_OR_RETURN(const std::vector<Segment> segments, ParseTemplate(tool.url));

  HttpPostRequest req;
  req.method = tool.method;
  std::set<std::string> used;
  for (const Segment& s : segments) {
    if (!s.placeholder) {
      req.url += s.text;
      continue;
    }
    const auto it = a.find(s.text);
    if (it == a.end() || it->is_null()) {
      return absl::InvalidArgumentError(
          absl::StrCat("argument \"", s.text, "\" is required by the URL but missing"));
    }
    if (it->is_object() || it->is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "argument \"", s.text, "\" is used in the URL and must be a string, number or boolean"));
    }
    req.url += PercentEncode(ScalarText(*it));
    used.insert(s.text);
  }

  if (QueryMethod(tool.method)) {
    std::vector<std::string> params;
    for (const auto& [key, value] : a.items()) {
      if (used.count(key) > 0 || value.is_null()) continue;
      const std::string text =
          value.is_object() || value.is_array() ? common::DumpJson(value) : ScalarText(value);
      params.push_back(absl::StrCat(PercentEncode(key), "=", PercentEncode(text)));
    }
    if (!params.empty()) {
      // Query parameters go before any fragment (which curl does not send anyway).
      const size_t hash = req.url.find('#');
      std::string fragment;
      if (hash != std::string::npos) {
        fragment = req.url.substr(hash);
        req.url.resize(hash);
      }
      const char* sep = "?";
      if (req.url.find('?') != std::string::npos) {
        sep = absl::EndsWith(req.url, "?") || absl::EndsWith(req.url, "&") ? "" : "&";
      }
      absl::StrAppend(&req.url, sep, absl::StrJoin(params, "&"), fragment);
    }
  } else {
    json body = json::object();
    for (const auto& [key, value] : a.items()) {
      if (used.count(key) == 0) body[key] = value;
    }
    req.body = common::DumpJson(body);
  }

  req.headers = tool.headers;
  if (!HasHeader(req.headers, "Content-Type") && tool.method != "GET") {
    // For DELETE an empty value tells curl to leave the header out: curl sends it down its POST
    // path, which would otherwise label the empty body application/x-www-form-urlencoded.
    req.headers["Content-Type"] = tool.method == "DELETE" ? "" : "application/json";
  }
  if (!HasHeader(req.headers, "Accept")) req.headers["Accept"] = kDefaultAccept;
  return req;
}

absl::StatusOr<HttpToolReply> CallHttpTool(const HttpToolOptions& tool, const json& args,
                                           absl::Time deadline,
                                           const std::function<bool()>& cancelled,
                                           size_t max_body_bytes) {
  absl::StatusOr<HttpPostRequest> req = BuildHttpToolRequest(tool, args);
  if (!req.ok()) return Decorate(tool, req.status());
  req->deadline = deadline;
  req->cancelled = cancelled;
  req->max_body_bytes = max_body_bytes;
  absl::StatusOr<HttpPostResponse> resp = HttpPost(*req);
  if (!resp.ok()) return Decorate(tool, resp.status());
  HttpToolReply reply;
  reply.status = resp->status;
  const auto ct = resp->headers.find("content-type");
  if (ct != resp->headers.end()) reply.content_type = ct->second;
  reply.body = std::move(resp->body);
  return reply;
}

std::pair<std::string, bool> HttpToolResultText(const HttpToolReply& reply) {
  if (reply.status >= 200 && reply.status < 300) {
    if (reply.body.empty())
      return {absl::StrCat("(empty response, HTTP ", reply.status, ")"), false};
    return {reply.body, false};
  }
  const absl::string_view reason = ReasonPhrase(reply.status);
  return {absl::StrCat("HTTP ", reply.status, reason.empty() ? "" : " ", reason, ": ",
                       reply.body.empty() ? "(empty response)" : reply.body),
          true};
}

}  // namespace agentd::tools
