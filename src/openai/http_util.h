// Plumbing shared by the OpenAI-compatible endpoints: the per-request scope (request id,
// authentication through the same auth::Authenticator as gRPC, the OpenAI-Project check, the
// access log line), OpenAI-shaped errors, JSON replies and the Server-Sent Events writer.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "auth/authenticator.h"
#include "http/http_server.h"
#include "metrics/trace_context.h"
#include "nlohmann/json.hpp"

namespace agentd::openai {

using nlohmann::json;

/// HTTP status for an absl status code, the gRPC API's codes mapped as OpenAI does: 400, 401,
/// 403, 404, 409, 429, 5xx (CANCELLED is 499, nginx's "client closed request").
int HttpStatusFor(absl::StatusCode code);

/// OpenAI's error body: {"error":{"message","type","param","code"}}. `type` follows OpenAI
/// (invalid_request_error, authentication_error, permission_error, not_found_error,
/// conflict_error, rate_limit_error, server_error); `code` is the absl code's name.
json ErrorBody(const absl::Status& status, const std::string& param = "");


/// One HTTP request through the door, from authentication to the access log line.
class RequestScope {
 public:
  /// Assigns the request id (`x-request-id` / `x-agentd-request-id` if sane), authenticates the
  /// `Authorization` header and authorizes `operation` (a name in auth/policy.cc); when the
  /// `OpenAI-Project` header is present it must equal the key's project (PERMISSION_DENIED).
  RequestScope(std::shared_ptr<http::Exchange> ex, const char* operation,
               auth::Authenticator* auth);
  ~RequestScope();

  bool ok() const { return auth_status_.ok(); }
  const absl::Status& auth_status() const { return auth_status_; }
  const auth::Identity& identity() const { return identity_; }
  const std::string& project() const { return identity_.project_id; }
  http::Exchange& exchange() { return *ex_; }
  const std::shared_ptr<http::Exchange>& exchange_ptr() const { return ex_; }
  std::shared_ptr<const obs::RequestContext> context() const { return context_; }

  /// Replies 200 with `body`.
  void Reply(const json& body, int status = 200);
  /// Replies with the OpenAI error for `status` (never OK).
  void Fail(const absl::Status& status, const std::string& param = "");
  /// Starts an SSE stream (200, text/event-stream).
  void StartEvents();
  /// Writes one SSE event: `event: <type>` and `data: <json>`.
  void Event(const std::string& type, const json& data);
  /// Ends the stream (after `data: [DONE]` when `done_marker`, as Chat Completions does).
  void EndEvents(bool done_marker = false);
  /// The client went away (a write found it gone).
  bool client_gone() const { return ex_->closed(); }

 private:
  /// `headers` plus the request id, under both names clients look for.
  http::Headers WithRequestId(http::Headers headers) const;
  void Log(int status, const std::string& detail);

  std::shared_ptr<http::Exchange> ex_;
  const char* operation_;
  std::shared_ptr<obs::RequestContext> context_;
  auth::Identity identity_;
  absl::Status auth_status_;
  absl::Time start_;
  bool logged_ = false;
};

/// Parses a request body as a JSON object. INVALID_ARGUMENT for malformed JSON or a non-object.
absl::StatusOr<json> ParseBody(const std::string& body);

/// Typed field readers: absent/null → default; wrong type → INVALID_ARGUMENT naming `field`.
absl::StatusOr<std::string> StringField(const json& obj, const char* field);
absl::StatusOr<bool> BoolField(const json& obj, const char* field, bool def);
absl::StatusOr<int64_t> IntField(const json& obj, const char* field, int64_t def);

/// Decodes %XX escapes of a path segment (the SDKs escape ids); "" when malformed.
std::string PercentDecode(const std::string& s);
/// The value of `name` in a raw query string ("" if absent), percent-decoded.
std::string QueryParam(const std::string& query, const std::string& name);

}  // namespace agentd::openai
