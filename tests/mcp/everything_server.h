// The MCP reference server @modelcontextprotocol/server-everything, run as a child process in
// its Streamable HTTP mode on a free loopback port, for the duration of a test. The package is
// installed on first use by tests/mcp/install-everything.sh (a cache dir outside the repo).
#pragma once

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"

namespace agentd::testing {

class EverythingServer {
 public:
  EverythingServer() = default;
  /// Stop().
  ~EverythingServer();

  /// Installs the package if needed, starts the server and waits (up to 30 s) until its port
  /// accepts connections. `port` 0 = a free one.
  absl::Status Start(int port = 0);
  /// SIGTERM, then SIGKILL after 5 s; waits for the child. Idempotent.
  void Stop();

  int port() const { return port_; }
  /// http://127.0.0.1:<port>/mcp
  std::string url() const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace agentd::testing
