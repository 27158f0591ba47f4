// Runs the real agentd binary as a child process on a loopback port (for tests that need a
// separate process: kill -9, signals, startup errors, reflection). The child gets
// AGENTD_BOOTSTRAP_KEY = kTestAdminKey, so admin_key() is the `default` project's admin key.
#pragma once

#include <grpcpp/channel.h>
#include <gtest/gtest.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "testing/auth_channel.h"
#include "testing/free_port.h"
#include "testing/temp_dir.h"

namespace agentd::testing {

class ChildServer {
 public:
  ChildServer(std::string data_dir, int port, std::vector<std::string> extra_args = {});
  ~ChildServer();

  /// Starts agentd and waits (up to ~20 s) until health answers SERVING. False on failure.
  bool Start();
  /// SIGKILL and reap.
  void Kill();
  /// Sends `sig`; waits up to `timeout_ms` for exit; returns the exit status or -1.
  int SignalAndWait(int sig, int timeout_ms);
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return pid_; }
  /// The admin key of the `default` project (the child's AGENTD_BOOTSTRAP_KEY).
  const std::string& admin_key() const { return admin_key_; }
  /// A new plaintext channel to the child sending admin_key() on every call.
  std::shared_ptr<grpc::Channel> NewChannel() const;

 private:
  std::string data_dir_;
  int port_;
  std::vector<std::string> extra_args_;
  const std::string admin_key_ = kTestAdminKey;
  pid_t pid_ = -1;
};

/// Base of a test suite sharing one ChildServer: started on a free port (its data in the suite's
/// TempDir) before the suite's first test, killed after its last.
class ChildServerSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();

  static TempDir* dir_;  // the suite's scratch dir; the server's data is under "data"
  static ChildServer* server_;
};

/// Runs agentd with `args` (and AGENTD_BOOTSTRAP_KEY = kTestAdminKey) to completion, for
/// startup errors; returns the exit code, fills `stderr_text` with stdout and stderr.
int RunAgentd(const std::vector<std::string>& args, std::string* stderr_text, int timeout_ms = 20000);

}  // namespace agentd::testing
