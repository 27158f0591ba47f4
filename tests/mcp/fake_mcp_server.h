// A tiny scriptable MCP server (Streamable HTTP, POST /mcp) on agentd's HttpServer, for unit
// tests of the MCP client: answers as JSON or as SSE, hands out a session id, pages tools/list,
// can forget its sessions (404), answer slowly, or echo secrets into an error. Every message it
// receives is recorded with the headers that matter.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "http/http_server.h"

namespace agentd::testing {

struct FakeMcpReceived {
  nlohmann::json message;
  std::string session_id;        // Mcp-Session-Id header
  std::string protocol_version;  // MCP-Protocol-Version header
  std::string authorization;
  std::string accept;
};

class FakeMcpServer {
 public:
  struct Options {
    bool sse = false;                  // answer requests with text/event-stream
    std::string protocol_version = "2025-06-18";  // what initialize answers
    int tools_per_page = 2;            // tools/list page size (5 tools in all)
    int slow_tool_ms = 3000;           // the "slow" tool answers after this
    bool echo_auth_in_500 = false;     // tools/call answers 500 with the Authorization value
    int unknown_session_status = 404;  // the spec's; TypeScript-SDK servers answer 400
  };

  explicit FakeMcpServer(Options options);
  ~FakeMcpServer();

  std::string url() const;
  /// Forget every session: later messages with a session id get 404.
  void ForgetSessions();
  std::vector<FakeMcpReceived> received() const;
  /// How many messages with this method were received.
  int Count(const std::string& method) const;

 private:
  void Handle(std::shared_ptr<http::Exchange> ex);
  nlohmann::json Result(const nlohmann::json& request, bool* slow);
  void Answer(std::shared_ptr<http::Exchange> ex, const nlohmann::json& response,
              const std::string& session_id, bool with_notification);

  const Options options_;
  mutable absl::Mutex mu_;
  std::vector<FakeMcpReceived> received_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> sessions_ ABSL_GUARDED_BY(mu_);
  int next_session_ ABSL_GUARDED_BY(mu_) = 1;
  std::vector<std::thread> slow_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<http::HttpServer> http_;
};

}  // namespace agentd::testing
