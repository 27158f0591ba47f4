#include "openai/http_util.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/ids.h"
#include "common/json_text.h"
#include "runtime/json_schema.h"

namespace agentd::openai {

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

namespace {

const char* ErrorType(absl::StatusCode code) {
  switch (HttpStatusFor(code)) {
    case 400:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 409:
      return "conflict_error";
    case 429:
      return "rate_limit_error";
    default:
      return "server_error";
  }
}

}  // namespace

json ErrorBody(const absl::Status& status, const std::string& param) {
  std::string code = absl::AsciiStrToLower(absl::StatusCodeToString(status.code()));
  json error = {{"message", std::string(status.message())},
                {"type", ErrorType(status.code())},
                {"param", param.empty() ? json(nullptr) : json(param)},
                {"code", code}};
  return json{{"error", std::move(error)}};
}

RequestScope::RequestScope(std::shared_ptr<http::Exchange> ex, const char* operation,
                           auth::Authenticator* auth)
    : ex_(std::move(ex)),
      operation_(operation),
      context_(std::make_shared<obs::RequestContext>()),
      start_(absl::Now()) {
  std::string given = ex_->header("x-agentd-request-id");
  if (given.empty()) given = ex_->header("x-request-id");
  context_->request_id =
      (!given.empty() && ValidateId("request id", given).ok()) ? given : NewId("req_");
  context_->method = operation;
  std::optional<obs::TraceParent> parent = obs::ParseTraceparent(ex_->header("traceparent"));
  if (parent) {
    context_->trace_id = std::move(parent->trace_id);
    context_->parent_span_id = std::move(parent->parent_id);
    context_->trace_flags = parent->flags;
  } else {
    context_->trace_id = obs::NewTraceId();
  }
  context_->span_id = obs::NewSpanId();
  // The socket's address is what audit records trust; a client's X-Forwarded-For is only
  // noted next to it (anyone can send one).
  std::string peer = ex_->peer().empty() ? "http" : ex_->peer();
  if (std::string forwarded = ex_->header("x-forwarded-for"); !forwarded.empty()) {
    // Printable ASCII only: audit records are protobuf strings, which must stay valid UTF-8.
    forwarded.resize(std::min<size_t>(forwarded.size(), 128));
    for (char& c : forwarded) {
      if (c < 0x20 || c > 0x7e) c = '?';
    }
    absl::StrAppend(&peer, " (x-forwarded-for: ", forwarded, ")");
  }
  auth::CallInfo info{operation_, context_->request_id, peer};
  auto identity = auth->Check(ex_->header("authorization"), info);
  if (!identity.ok()) {
    auth_status_ = identity.status();
    return;
  }
  identity_ = *std::move(identity);
  const std::string project = ex_->header("openai-project");
  if (!project.empty() && project != identity_.project_id) {
    auth_status_ = absl::PermissionDeniedError(
        absl::StrCat("OpenAI-Project \"", project, "\" is not the project of this API key"));
  }
}

RequestScope::~RequestScope() {
  // A scope dropped without an answer: the Exchange answers 500 itself; log it here.
  if (!logged_) Log(500, "dropped without an answer");
}

void RequestScope::Log(int status, const std::string& detail) {
  logged_ = true;
  obs::ContextScope log_scope(context_.get());
  const double ms = absl::ToDoubleMilliseconds(absl::Now() - start_);
  if (status >= 500 && status != 503) {
    spdlog::error("http {} {} {} {:.3f}ms: {}", operation_, ex_->path(), status, ms, detail);
  } else if (status >= 400) {
    spdlog::info("http {} {} {} {:.3f}ms: {}", operation_, ex_->path(), status, ms, detail);
  } else {
    spdlog::debug("http {} {} {} {:.3f}ms", operation_, ex_->path(), status, ms);
  }
}

void RequestScope::Reply(const json& body, int status) {
  Log(status, "");
  ex_->Respond(status, "application/json", common::DumpJson(body), WithRequestId({}));
}

void RequestScope::Fail(const absl::Status& status, const std::string& param) {
  const int code = HttpStatusFor(status.code());
  Log(code, std::string(status.message()));
  ex_->Respond(code, "application/json", common::DumpJson(ErrorBody(status, param)), WithRequestId({}));
}

void RequestScope::StartEvents() {
  Log(200, "stream");
  ex_->StartStream(200, "text/event-stream", WithRequestId({{"Cache-Control", "no-cache"}}));
}

http::Headers RequestScope::WithRequestId(http::Headers headers) const {
  // agentd's own name (as on gRPC) and the one OpenAI's clients read.
  headers.emplace_back("x-agentd-request-id", context_->request_id);
  headers.emplace_back("x-request-id", context_->request_id);
  return headers;
}

void RequestScope::Event(const std::string& type, const json& data) {
  std::string chunk;
  if (!type.empty()) absl::StrAppend(&chunk, "event: ", type, "\n");
  absl::StrAppend(&chunk, "data: ", common::DumpJson(data), "\n\n");
  ex_->Write(std::move(chunk));
}

void RequestScope::EndEvents(bool done_marker) {
  if (done_marker) ex_->Write("data: [DONE]\n\n");
  ex_->End();
}

absl::StatusOr<json> ParseBody(const std::string& body) {
  // Printing or copying deeper documents recurses past the stack of an HTTP thread.
  if (runtime::JsonNestingDepth(body) > runtime::kMaxJsonDepth) {
    return absl::InvalidArgumentError(absl::StrCat("the request body nests deeper than ",
                                                   runtime::kMaxJsonDepth, " levels"));
  }
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    return absl::InvalidArgumentError("the request body is not valid JSON");
  }
  if (!parsed.is_object())
    return absl::InvalidArgumentError("the request body must be a JSON object");
  return parsed;
}

absl::StatusOr<std::string> StringField(const json& obj, const char* field) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string())
    return absl::InvalidArgumentError(absl::StrCat("'", field, "' must be a string"));
  return it->get<std::string>();
}

absl::StatusOr<bool> BoolField(const json& obj, const char* field, bool def) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return def;
  if (!it->is_boolean())
    return absl::InvalidArgumentError(absl::StrCat("'", field, "' must be a boolean"));
  return it->get<bool>();
}

absl::StatusOr<int64_t> IntField(const json& obj, const char* field, int64_t def) {
  auto it = obj.find(field);
  if (it == obj.end() || it->is_null()) return def;
  if (!it->is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat("'", field, "' must be an integer"));
  }
  return it->get<int64_t>();
}

std::string PercentDecode(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size() || !absl::ascii_isxdigit(s[i + 1]) || !absl::ascii_isxdigit(s[i + 2])) {
      return "";
    }
    out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
    i += 2;
  }
  return out;
}

std::string QueryParam(const std::string& query, const std::string& name) {
  for (absl::string_view part : absl::StrSplit(query, '&')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    if (kv.first == name) return PercentDecode(kv.second);
  }
  return "";
}

}  // namespace agentd::openai
