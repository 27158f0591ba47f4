#include "tools/mcp_client.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "backend/sse_parser.h"
#include "tools/http_post.h"

namespace agentd::tools {

using nlohmann::json;

namespace {

constexpr size_t kMaxErrorBodyBytes = 300;
constexpr int kMaxListPages = 100;  // a server whose cursors never end is cut off here

absl::Status RpcError(const json& error) {
  const int64_t code =
      error.is_object() && error.contains("code") && error["code"].is_number_integer()
          ? error["code"].get<int64_t>()
          : 0;
  const std::string message =
      error.is_object() && error.contains("message") && error["message"].is_string() ? error["message"].get<std::string>() : "";
  const std::string text = absl::StrCat("MCP error ", code, ": ", message);
  // -32602 invalid params (also an unknown tool), -32600 invalid request.
  if (code == -32602 || code == -32600) return absl::InvalidArgumentError(text);
  if (code == -32601) return absl::UnimplementedError(text);
  return absl::UnknownError(text);
}

bool IsResponseTo(const json& m, int64_t id) {
  return m.is_object() && m.contains("id") && m["id"].is_number_integer() &&
         m["id"].get<int64_t>() == id && (m.contains("result") || m.contains("error"));
}

}  // namespace

McpClient::McpClient(McpClientOptions options) : options_(std::move(options)) {}

std::string McpClient::protocol_version() const {
  absl::MutexLock lock(&mu_);
  return session_.version;
}

std::string McpClient::session_id() const {
  absl::MutexLock lock(&mu_);
  return session_.id;
}

std::string McpClient::Redact(std::string text) const {
  for (const auto& [name, value] : options_.headers) {
    if (value.size() >= 4) text = absl::StrReplaceAll(text, {{value, "[redacted]"}});
  }
  return text;
}

absl::Status McpClient::Decorate(const absl::Status& status) const {
  if (status.ok()) return status;
  return absl::Status(status.code(), Redact(absl::StrCat("MCP server \"", options_.name, "\": ",
                                                         status.message())));
}

void McpClient::OnServerMessage(const json& m) {
  if (!m.is_object() || !m.contains("method") || !m["method"].is_string()) return;
  const std::string method = m["method"].get<std::string>();
  if (method == "notifications/tools/list_changed") {
    ++tools_generation_;
  } else if (m.contains("id")) {
    // A server-to-client request (sampling, elicitation, roots, ping): not supported.
    SPDLOG_DEBUG("MCP server \"{}\": ignoring server request {}", options_.name, method);
  }
}

absl::StatusOr<json> McpClient::Post(const json& message, int64_t id, const Session& session,
                                     absl::Time deadline, const std::function<bool()>& cancelled,
                                     std::string* session_header) {
  HttpPostRequest req;
  req.url = options_.url;
  req.headers = options_.headers;
  req.headers["Content-Type"] = "application/json";
  req.headers["Accept"] = "application/json, text/event-stream";
  if (!session.id.empty()) req.headers["Mcp-Session-Id"] = session.id;
  if (!session.version.empty()) req.headers["MCP-Protocol-Version"] = session.version;
  req.body = message.dump();
  req.deadline = std::min(deadline, absl::Now() + options_.timeout);
  req.cancelled = cancelled;

  // An SSE answer is parsed as it streams, and the transfer ends at the awaited response (a
  // server may keep the stream open). Other answers are collected whole.
  bool sse = false;
  long status = 0;
  backend::SseParser parser(options_.max_response_bytes);
  std::vector<backend::SseParser::Event> events;
  std::string body;
  absl::Status stream_error;
  std::optional<json> response;
  auto consume = [&](const std::vector<backend::SseParser::Event>& batch) {
    for (const auto& e : batch) {
      if (e.data.empty() || (!e.type.empty() && e.type != "message")) continue;
      json m = json::parse(e.data, nullptr, /*allow_exceptions=*/false);
      if (m.is_discarded()) continue;  // not JSON-RPC: skipped, as the transport allows
      if (id >= 0 && IsResponseTo(m, id)) {
        response = std::move(m);
        return;
      }
      OnServerMessage(m);
    }
  };
  req.on_headers = [&](long s, const std::map<std::string, std::string>& headers) {
    status = s;
    auto ct = headers.find("content-type");
    sse = s >= 200 && s < 300 && ct != headers.end() &&
          absl::StartsWith(absl::AsciiStrToLower(ct->second), "text/event-stream");
    auto sid = headers.find("mcp-session-id");
    if (session_header != nullptr && sid != headers.end()) *session_header = sid->second;
  };
  req.on_body = [&](absl::string_view chunk) {
    if (!sse) {
      if (body.size() + chunk.size() > options_.max_response_bytes) {
        stream_error = absl::ResourceExhaustedError(
            absl::StrCat("answer larger than ", options_.max_response_bytes, " bytes"));
        return false;
      }
      body.append(chunk.data(), chunk.size());
      return true;
    }
    events.clear();
    stream_error = parser.Feed(chunk, &events);
    if (!stream_error.ok()) return false;
    consume(events);
    return !response.has_value();
  };

  auto sent = HttpPost(req);
  if (!sent.ok()) return sent.status();
  if (!stream_error.ok()) return stream_error;
  // The spec answers an unknown session with 404; the reference server (and others built on
  // the TypeScript SDK) with 400 "No valid session ID provided". Either way the message was not
  // processed, so Request may initialize again and resend it.
  if (!session.id.empty() &&
      (status == 404 || (status == 400 && absl::StrContains(absl::AsciiStrToLower(body), "session")))) {
    return absl::NotFoundError("session expired");  // internal: Request re-initializes
  }
  if (status < 200 || status >= 300) {
    std::string snippet = body.substr(0, kMaxErrorBodyBytes);
    return absl::UnavailableError(absl::StrCat("HTTP ", status, snippet.empty() ? "" : ": ", snippet));
  }
  if (id < 0) return json();  // a notification: 202 (or any 2xx) is its acceptance
  if (sse) {
    if (!response.has_value()) {
      events.clear();
      parser.Finish(&events);
      consume(events);
    }
    if (!response.has_value()) {
      return absl::UnavailableError("the event stream ended without the response");
    }
    return *std::move(response);
  }
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return absl::UnavailableError("the answer is not JSON");
  if (parsed.is_array()) {  // a batch: find ours, treat the rest as server messages
    for (json& m : parsed) {
      if (IsResponseTo(m, id)) return std::move(m);
      OnServerMessage(m);
    }
  } else if (IsResponseTo(parsed, id)) {
    return parsed;
  }
  return absl::UnavailableError("the answer holds no response to the request");
}

void McpClient::Notify(const std::string& method, json params, const Session& session,
                       absl::Time deadline) {
  json m = {{"jsonrpc", "2.0"}, {"method", method}};
  if (!params.is_null()) m["params"] = std::move(params);
  auto st = Post(m, -1, session, deadline, nullptr);
  if (!st.ok()) {
    spdlog::warn("MCP server \"{}\": {} not delivered: {}", options_.name, method,
                 Redact(std::string(st.status().message())));
  }
}

absl::StatusOr<McpClient::Session> McpClient::Initialize(absl::Time deadline,
                                                          const std::function<bool()>& cancelled) {
  const int64_t id = next_id_++;
  json m = {{"jsonrpc", "2.0"},
            {"id", id},
            {"method", "initialize"},
            {"params",
             {{"protocolVersion", McpProtocolVersions().front()},
              {"capabilities", json::object()},
              {"clientInfo", {{"name", "agentd"}, {"version", "0.1.0"}}}}}};
  Session fresh;
  std::string session_header;
  {
    auto answer = Post(m, id, Session(), deadline, cancelled, &session_header);
    if (!answer.ok()) {
      return absl::Status(answer.status().code(),
                          absl::StrCat("initialize: ", answer.status().message()));
    }
    json response = *std::move(answer);
    if (response.contains("error")) return RpcError(response["error"]);
    const json& result = response["result"];
    const std::string version = result.is_object() && result.contains("protocolVersion") &&
                                        result["protocolVersion"].is_string()
                                    ? result["protocolVersion"].get<std::string>()
                                    : "";
    const auto& supported = McpProtocolVersions();
    if (std::find(supported.begin(), supported.end(), version) == supported.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the server speaks protocol version \"", version,
                       "\"; agentd speaks ", absl::StrJoin(supported, ", ")));
    }
    fresh.version = version;
  }
  fresh.id = session_header;
  fresh.initialized = true;
  Notify("notifications/initialized", nullptr, fresh, deadline);
  return fresh;
}

absl::StatusOr<McpClient::Session> McpClient::EnsureSession(absl::Time deadline,
                                                             const std::function<bool()>& cancelled) {
  {
    absl::MutexLock lock(&mu_);
    if (session_.initialized) return session_;
  }
  absl::MutexLock init(&init_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (session_.initialized) return session_;  // another caller initialized meanwhile
  }
  auto fresh = Initialize(deadline, cancelled);
  if (!fresh.ok()) return fresh.status();
  absl::MutexLock lock(&mu_);
  session_ = *fresh;
  ++tools_generation_;  // a new session may expose other tools
  spdlog::info("MCP server \"{}\": session started (protocol {}{})", options_.name, fresh->version,
               fresh->id.empty() ? "" : ", with a session id");
  return session_;
}

absl::StatusOr<json> McpClient::Request(const std::string& method, json params, absl::Time deadline,
                                        const std::function<bool()>& cancelled, int64_t* id_out) {
  for (int attempt = 0;; ++attempt) {
    auto session = EnsureSession(deadline, cancelled);
    if (!session.ok()) return Decorate(session.status());
    const int64_t id = next_id_++;
    if (id_out != nullptr) *id_out = id;
    json m = {{"jsonrpc", "2.0"}, {"id", id}, {"method", method}};
    if (!params.is_null()) m["params"] = params;
    auto response = Post(m, id, *session, deadline, cancelled);
    if (absl::IsNotFound(response.status())) {
      {
        absl::MutexLock lock(&mu_);
        if (session_.id == session->id) session_ = Session();  // expired: start over
      }
      if (attempt == 0) {
        spdlog::info("MCP server \"{}\": session expired; initializing again", options_.name);
        continue;
      }
      return Decorate(absl::UnavailableError("the session expired again after re-initializing"));
    }
    if (!response.ok()) return Decorate(response.status());
    if (response->contains("error")) return Decorate(RpcError((*response)["error"]));
    return (*response)["result"];
  }
}

absl::StatusOr<std::vector<McpTool>> McpClient::ListTools(absl::Time deadline,
                                                          const std::function<bool()>& cancelled) {
  std::vector<McpTool> tools;
  std::string cursor;
  for (int page = 0; page < kMaxListPages; ++page) {
    json params = json::object();
    if (!cursor.empty()) params["cursor"] = cursor;
    auto result = Request("tools/list", std::move(params), deadline, cancelled);
    if (!result.ok()) return result.status();
    if (!result->is_object() || !result->contains("tools") || !(*result)["tools"].is_array()) {
      return Decorate(absl::UnavailableError("tools/list: the result has no \"tools\" array"));
    }
    for (const json& t : (*result)["tools"]) {
      if (!t.is_object() || !t.contains("name") || !t["name"].is_string()) continue;
      McpTool tool;
      tool.name = t["name"].get<std::string>();
      if (t.contains("description") && t["description"].is_string()) {
        tool.description = t["description"].get<std::string>();
      }
      tool.input_schema = t.contains("inputSchema") && t["inputSchema"].is_object()
                              ? t["inputSchema"]
                              : json{{"type", "object"}};
      tools.push_back(std::move(tool));
    }
    if (!result->contains("nextCursor") || !(*result)["nextCursor"].is_string()) return tools;
    cursor = (*result)["nextCursor"].get<std::string>();
    if (cursor.empty()) return tools;
  }
  return Decorate(absl::UnavailableError(
      absl::StrCat("tools/list: more than ", kMaxListPages, " pages; giving up")));
}

absl::StatusOr<McpCallResult> McpClient::CallTool(const std::string& tool, const json& arguments,
                                                  absl::Time deadline,
                                                  const std::function<bool()>& cancelled) {
  int64_t id = -1;
  auto result = Request("tools/call", {{"name", tool}, {"arguments", arguments}}, deadline,
                        cancelled, &id);
  if ((absl::IsDeadlineExceeded(result.status()) || absl::IsCancelled(result.status())) && id >= 0) {
    Session session;
    {
      absl::MutexLock lock(&mu_);
      session = session_;
    }
    const bool timed_out = absl::IsDeadlineExceeded(result.status());
    Notify("notifications/cancelled",
           {{"requestId", id},
            {"reason", timed_out ? "deadline exceeded" : "cancelled by the caller"}},
           session, absl::Now() + options_.cancel_timeout);
  }
  if (!result.ok()) return result.status();
  McpCallResult out;
  if (!result->is_object()) {
    return Decorate(absl::UnavailableError("tools/call: the result is not an object"));
  }
  if (result->contains("content") && (*result)["content"].is_array()) out.content = (*result)["content"];
  if (result->contains("structuredContent")) out.structured_content = (*result)["structuredContent"];
  out.is_error = result->contains("isError") && (*result)["isError"].is_boolean() &&
                 (*result)["isError"].get<bool>();
  return out;
}

}  // namespace agentd::tools
