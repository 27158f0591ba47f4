// HTTP tools: a configured HTTP endpoint that a model calls with JSON arguments, for APIs that do
// not speak MCP. Agents name one with ToolSpec "http:<name>". This file is the protocol piece
// only; allow-lists, per-tool timeouts, concurrency limits and retries belong to the ToolGateway.
//
// URL template: "https://api.example.com/v1/weather/{city}?units={units}". A {placeholder} is an
// identifier ([A-Za-z_][A-Za-z0-9_]*) naming a top-level argument; it may appear in the path,
// query or fragment, never in the scheme or host (userinfo and port included), so that arguments
// cannot choose where the request goes. Literal braces cannot be written in a template.
//
// Mapping one call (BuildHttpToolRequest):
//   - {name} is replaced by the argument `name`, percent-encoded per RFC 3986 (every byte but the
//     unreserved A-Z a-z 0-9 - . _ ~, so `/`, `&`, `?`, spaces and UTF-8 are all escaped): a
//     string as-is, a number or boolean as its JSON text. An argument used in the URL is not sent
//     again elsewhere.
//   - GET, DELETE: the remaining arguments become query parameters, `key=value` both
//     percent-encoded, in key order (nlohmann::json keeps keys sorted), joined with `?` or `&` as
//     the template needs (before any `#fragment`). Scalars as above; objects and arrays as their
//     compact JSON text; null values are left out. No body, no Content-Type (for DELETE the
//     request carries `Content-Type` with an empty value, which HttpPost/curl turn into "no
//     such header" rather than curl's form-urlencoded default).
//   - POST, PUT, PATCH: the body is the remaining arguments as a compact JSON object (`{}` when
//     none remain), with `Content-Type: application/json` unless a configured header sets one.
//   - Configured headers are sent as given; `Accept: application/json, text/plain;q=0.9,
//     */*;q=0.5` is added unless a configured header sets one (names compared case-insensitively).
//   Redirects are not followed (a 3xx is a reply like any other).
//
// Secrets: header values are never logged and never appear in an error message (they are also
// scrubbed from transport errors, in case something echoes them). Validation messages name the
// problem, not the URL, since a URL may carry a key in its query.
//
// Threading: every function is thread-safe and keeps no state; CallHttpTool blocks the calling
// thread for at most the deadline (see http_post.h).
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tools/http_post.h"

namespace agentd::tools {

struct HttpToolOptions {
  std::string name;  // config name; agents use ToolSpec "http:<name>"
  std::string description;
  std::string method = "POST";  // GET | POST | PUT | PATCH | DELETE (upper case)
  // Template: "https://api.example.com/v1/weather/{city}?units={units}".
  std::string url;
  std::map<std::string, std::string> headers;  // resolved values (secrets: never in errors/logs)
  // JSON Schema object for the arguments ("" = {"type":"object"}).
  std::string parameters_json_schema;
};

/// Config-time check: name is set; method is one of the five; url parses as http:// or https://
/// with a host; every {placeholder} is a well-formed identifier ([A-Za-z_][A-Za-z0-9_]*), braces
/// balanced, placeholders not in the scheme/host part; header names are HTTP tokens and values
/// hold no CR/LF/NUL; parameters_json_schema (if set) is a JSON object whose "type", if present,
/// is "object" and whose "properties", if present, is an object; when the schema has
/// "properties", every placeholder must be one of them.
/// INVALID_ARGUMENT naming what is wrong (no header values, no URL in messages).
absl::Status ValidateHttpTool(const HttpToolOptions& tool);

/// Builds the request for one call from the (already schema-validated) arguments object (null is
/// taken as {}); see the file comment for the mapping. Re-checks only what it needs of the tool
/// (method, template). INVALID_ARGUMENT when args is not an object, or when an argument for a
/// placeholder is missing, null, an object or an array (the message names it). The result has
/// no deadline, cancellation or size limit set.
absl::StatusOr<HttpPostRequest> BuildHttpToolRequest(const HttpToolOptions& tool,
                                                     const nlohmann::json& args);

struct HttpToolReply {
  long status = 0;
  std::string content_type;  // the Content-Type header ("" if none)
  std::string body;          // bytes as received (the gateway truncates for the model)
};

/// Performs the call: BuildHttpToolRequest + HttpPost with deadline, cancellation and
/// max_body_bytes. Build errors are INVALID_ARGUMENT; transport errors keep HttpPost's codes
/// (UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED, RESOURCE_EXHAUSTED); any HTTP status is an OK
/// reply. Messages start with `HTTP tool "<name>": ` and never contain header values.
/// `cancelled` may be empty.
absl::StatusOr<HttpToolReply> CallHttpTool(const HttpToolOptions& tool, const nlohmann::json& args,
                                           absl::Time deadline,
                                           const std::function<bool()>& cancelled,
                                           size_t max_body_bytes);

/// The model-facing text of a reply and whether it is an error: 2xx → (body, false);
/// otherwise ("HTTP <status> <reason-if-known>: <body>", true). A JSON body is passed through
/// unchanged; an empty 2xx body becomes "(empty response, HTTP <status>)", an empty error body
/// "(empty response)".
std::pair<std::string, bool> HttpToolResultText(const HttpToolReply& reply);

}  // namespace agentd::tools
