#include "mcp/fake_mcp_server.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace agentd::testing {

using nlohmann::json;

namespace {

// Five tools; "slow" answers late, "fail" answers with isError.
json AllTools() {
  json tools = json::array();
  for (const char* name : {"echo", "add", "fail", "slow", "big"}) {
    tools.push_back({{"name", name},
                     {"description", absl::StrCat("The ", name, " tool.")},
                     {"inputSchema",
                      {{"type", "object"},
                       {"properties", {{"message", {{"type", "string"}}}}}}}});
  }
  return tools;
}

}  // namespace

FakeMcpServer::FakeMcpServer(Options options) : options_(options) {
  std::vector<http::Route> routes;
  routes.push_back({"POST", "/mcp", [this](std::shared_ptr<http::Exchange> ex) { Handle(ex); }});
  http_ = *http::HttpServer::Start("127.0.0.1:0", std::move(routes));
}

FakeMcpServer::~FakeMcpServer() {
  std::vector<std::thread> slow;
  {
    absl::MutexLock lock(&mu_);
    slow.swap(slow_);
  }
  for (std::thread& t : slow) t.join();
  http_->Shutdown();
}

std::string FakeMcpServer::url() const { return absl::StrCat("http://", http_->address(), "/mcp"); }

void FakeMcpServer::ForgetSessions() {
  absl::MutexLock lock(&mu_);
  sessions_.clear();
}

std::vector<FakeMcpReceived> FakeMcpServer::received() const {
  absl::MutexLock lock(&mu_);
  return received_;
}

int FakeMcpServer::Count(const std::string& method) const {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& r : received_) n += r.message.value("method", std::string()) == method;
  return n;
}

json FakeMcpServer::Result(const json& request, bool* slow) {
  const std::string method = request.value("method", std::string());
  const json params = request.value("params", json::object());
  if (method == "initialize") {
    return {{"protocolVersion", options_.protocol_version},
            {"capabilities", {{"tools", {{"listChanged", true}}}}},
            {"serverInfo", {{"name", "fake"}, {"version", "1"}}}};
  }
  if (method == "tools/list") {
    const json all = AllTools();
    const int start = params.contains("cursor") ? std::stoi(params["cursor"].get<std::string>()) : 0;
    json page = json::array();
    for (int i = start; i < static_cast<int>(all.size()) && i < start + options_.tools_per_page; ++i) {
      page.push_back(all[i]);
    }
    json result = {{"tools", page}};
    if (start + options_.tools_per_page < static_cast<int>(all.size())) {
      result["nextCursor"] = std::to_string(start + options_.tools_per_page);
    }
    return result;
  }
  if (method == "tools/call") {
    const std::string name = params.value("name", std::string());
    const json args = params.value("arguments", json::object());
    if (name == "echo") {
      return {{"content", {{{"type", "text"}, {"text", "Echo: " + args.value("message", std::string())}}}}};
    }
    if (name == "fail") {
      return {{"content", {{{"type", "text"}, {"text", "it failed"}}}}, {"isError", true}};
    }
    if (name == "slow") {
      *slow = true;
      return {{"content", {{{"type", "text"}, {"text", "finally"}}}}};
    }
    if (name == "big") {
      return {{"content",
               {{{"type", "text"}, {"text", std::string(5000, 'x')}},
                {{"type", "image"}, {"mimeType", "image/png"}, {"data", "AAAA"}}}}};
    }
    return json();  // unknown tool: a JSON-RPC error
  }
  return json();
}

void FakeMcpServer::Answer(std::shared_ptr<http::Exchange> ex, const json& response,
                           const std::string& session_id, bool with_notification) {
  http::Headers headers;
  if (!session_id.empty()) headers.push_back({"Mcp-Session-Id", session_id});
  if (!options_.sse) {
    ex->Respond(200, "application/json", response.dump(), headers);
    return;
  }
  ex->StartStream(200, "text/event-stream", headers);
  ex->Write(": a comment line\n\n");
  if (with_notification) {
    json n = {{"jsonrpc", "2.0"}, {"method", "notifications/tools/list_changed"}};
    ex->Write("event: message\ndata: " + n.dump() + "\n\n");
    json ping = {{"jsonrpc", "2.0"}, {"id", "srv-1"}, {"method", "ping"}};
    ex->Write("data: " + ping.dump() + "\n\n");
  }
  // The response pretty-printed over several data lines (joined with '\n': still JSON), and
  // written in two chunks split mid-line.
  std::string event = "event: message\nid: 7\n";
  for (absl::string_view line : absl::StrSplit(response.dump(2), '\n')) {
    absl::StrAppend(&event, "data: ", line, "\n");
  }
  event += "\n";
  const size_t half = event.size() / 2;
  ex->Write(event.substr(0, half));
  ex->Write(event.substr(half));
  ex->End();
}

void FakeMcpServer::Handle(std::shared_ptr<http::Exchange> ex) {
  const json message = json::parse(ex->body(), nullptr, false);
  FakeMcpReceived r{message, ex->header("mcp-session-id"), ex->header("mcp-protocol-version"),
                    ex->header("authorization"), ex->header("accept")};
  std::string session_id;
  {
    absl::MutexLock lock(&mu_);
    received_.push_back(r);
    const bool init = message.value("method", std::string()) == "initialize";
    if (init) {
      session_id = absl::StrCat("sess-", next_session_++);
      sessions_.push_back(session_id);
    } else if (std::find(sessions_.begin(), sessions_.end(), r.session_id) == sessions_.end()) {
      ex->Respond(options_.unknown_session_status, "application/json",
                  R"({"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"},"id":null})");
      return;
    }
  }
  if (!message.contains("id")) {  // a notification
    ex->Respond(202, "text/plain", "");
    return;
  }
  if (options_.echo_auth_in_500 && message.value("method", std::string()) == "tools/call") {
    ex->Respond(500, "text/plain", "bad request with authorization " + r.authorization);
    return;
  }
  bool slow = false;
  json result = Result(message, &slow);
  json response = {{"jsonrpc", "2.0"}, {"id", message["id"]}};
  if (result.is_null()) {
    response["error"] = {{"code", -32602}, {"message", "Unknown tool"}};
  } else {
    response["result"] = result;
  }
  const bool notify = options_.sse && message.value("method", std::string()) == "tools/list" &&
                      !message["params"].contains("cursor");
  if (!slow) {
    Answer(ex, response, session_id, notify);
    return;
  }
  absl::MutexLock lock(&mu_);
  slow_.emplace_back([this, ex, response, ms = options_.slow_tool_ms] {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    Answer(ex, response, "", false);
  });
}

}  // namespace agentd::testing
