// loadgen_test: bench/mock-openai, the real agentd (a child process with the mock as its OpenAI
// backend) and bench/loadgen, all as separate processes. A tiny closed loop must finish with no
// errors, and every step must have gone through the mock's tool call: TOOL_CALL and TOOL_RESULT
// events in the turn, two model calls per step (loadgen counts a step without them as an error).
// The floor probe (Health/Check calls, fdatasync next to the data dir) runs in the first test
// only; the others pass --floor-calls 0 to stay quick.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "testing/child_server.h"
#include "testing/subprocess.h"
#include "testing/temp_dir.h"

namespace {

using agentd::testing::ChildServer;
using agentd::testing::FreePort;
using agentd::testing::RunCommand;
using agentd::testing::ShellQuote;
using agentd::testing::TempDir;
using agentd::testing::WriteWholeFile;
using nlohmann::json;

/// mock-openai as a child process; port() is what it printed as `LISTENING <port>` (0 if it
/// did not start). Stopped with SIGTERM and reaped on destruction.
class MockProcess {
 public:
  explicit MockProcess(std::vector<std::string> args) {
    int fds[2];
    if (pipe(fds) != 0) return;
    args.insert(args.begin(), MOCK_OPENAI_BINARY);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      dup2(fds[1], STDOUT_FILENO);
      close(fds[0]);
      close(fds[1]);
      execv(MOCK_OPENAI_BINARY, argv.data());
      _exit(127);
    }
    close(fds[1]);
    // Blocks until the mock prints its port or exits (EOF).
    FILE* out = fdopen(fds[0], "r");
    if (fscanf(out, "LISTENING %d", &port_) != 1) port_ = 0;
    fclose(out);
  }
  ~MockProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

/// The RESULT line's JSON (null if there is none).
json ResultOf(const std::string& out) {
  const size_t at = out.rfind("RESULT {");
  if (at == std::string::npos) return nullptr;
  const size_t end = out.find('\n', at);
  return json::parse(out.substr(at + 7, end == std::string::npos ? end : end - at - 7), nullptr,
                     false);
}

class LoadgenTest : public ::testing::Test {
 protected:
  /// Starts agentd on dir_ with model `mock` served by the mock on `mock_port`.
  void StartAgentd(int mock_port) {
    const std::string config = dir_.Sub("agentd.yaml");
    WriteWholeFile(config,
                   "durability: sync\n"
                   "backends:\n"
                   "  - { name: mock, type: openai, base_url: 'http://127.0.0.1:" +
                       std::to_string(mock_port) + "/v1', max_concurrency: 256 }\n"
                       "models:\n"
                       "  - { name: mock, deployments: [{ backend: mock, model: mock-1 }] }\n");
    server_ = std::make_unique<ChildServer>(dir_.Sub("data"), FreePort(),
                                            std::vector<std::string>{"--config", config});
    ASSERT_TRUE(server_->Start());
  }

  /// Runs loadgen against the child with `args`; returns its RESULT (and checks the exit code).
  json RunLoadgen(const std::string& args, int expected_code = 0) {
    const std::string cmd = std::string(LOADGEN_BINARY) + " --addr " + server_->address() +
                            " --api-key " + ShellQuote(server_->admin_key()) + " --server-pid " +
                            std::to_string(server_->pid()) + " --data-dir " +
                            ShellQuote(dir_.Sub("data")) + " " + args;
    const auto r = RunCommand(cmd, dir_.path());
    EXPECT_EQ(r.code, expected_code) << cmd << "\n" << r.all();
    json result = ResultOf(r.out);
    EXPECT_TRUE(result.is_object()) << r.all();
    return result.is_object() ? result : json::object();
  }

  TempDir dir_;
  std::unique_ptr<ChildServer> server_;
};

TEST_F(LoadgenTest, BuiltinToolStepsThroughMock) {
  MockProcess mock({"--port", "0", "--threads", "2"});
  ASSERT_GT(mock.port(), 0);
  StartAgentd(mock.port());
  const json r = RunLoadgen("--model mock --sessions 4 --turns 5 --channels 2 --floor-calls 200");
  EXPECT_EQ(r.value("mode", ""), "closed");
  EXPECT_EQ(r.value("tool", ""), "builtin");
  EXPECT_EQ(r.value("errors", -1), 0) << r.dump();
  EXPECT_EQ(r.value("steps", -1), 20);
  EXPECT_EQ(r.value("tool_steps", -1), 20);
  EXPECT_EQ(r.value("model_calls", -1), 40);  // tool call, then the final answer
  EXPECT_GT(r.value("server_cpu_ms_per_step", 0.0), 0.0);
  EXPECT_GT(r.value("server_write_bytes_per_step", 0.0), 0.0);  // sync: the WAL is written
  EXPECT_GT(r.value("data_dir_bytes", 0), 0);
  EXPECT_TRUE(r["by_turn_index"].contains("1"));
  EXPECT_TRUE(r["by_turn_index"].contains("2-10"));
  // The floor: every Health/Check call answered, one chain per session (4 < 64); RunLoadgen
  // passes --data-dir, so the fdatasync floor is there too.
  ASSERT_TRUE(r.contains("floor")) << r.dump();
  const json& f = r["floor"];
  EXPECT_EQ(f.value("rpc_calls", -1), 200) << f.dump();
  EXPECT_EQ(f.value("rpc_in_flight", -1), 4);
  EXPECT_GT(f.value("rpc_p50_ms", 0.0), 0.0);
  EXPECT_GE(f.value("rpc_p99_ms", 0.0), f.value("rpc_p50_ms", 0.0));
  EXPECT_GT(f.value("rpc_per_s", 0.0), 0.0);
  EXPECT_TRUE(f.contains("rpc_server_cpu_ms"));  // --server-pid is passed
  EXPECT_GT(f.value("fsync_p50_ms", 0.0), 0.0);
  EXPECT_GE(f.value("fsync_p99_ms", 0.0), f.value("fsync_p50_ms", 0.0));
}

TEST_F(LoadgenTest, ClientToolAndOpenLoop) {
  MockProcess mock({"--port", "0", "--tool-name", "lookup", "--tool-args", R"({"key":"k"})"});
  ASSERT_GT(mock.port(), 0);
  StartAgentd(mock.port());
  // Client tool: each step is RunTurn → REQUIRES_ACTION → RunTurn with loadgen's tool result.
  const json c = RunLoadgen("--model mock --tool client --sessions 2 --turns 3 --floor-calls 0");
  EXPECT_EQ(c.value("errors", -1), 0) << c.dump();
  EXPECT_EQ(c.value("tool_steps", -1), 6);
  EXPECT_EQ(c.value("model_calls", -1), 12);
  // Open loop at a modest rate: every arrival is served, none lost.
  const json o = RunLoadgen(
      "--model mock --tool client --sessions 4 --rate 40 --duration 0.5 --floor-calls 0");
  EXPECT_EQ(o.value("mode", ""), "open");
  EXPECT_EQ(o.value("errors", -1), 0) << o.dump();
  EXPECT_EQ(o.value("issued", -1), 20);
  EXPECT_EQ(o.value("steps", -1), 20);
}

TEST_F(LoadgenTest, StepWithoutToolCallIsAnError) {
  // The echo model never calls the tool: asking for a tool step must count every step as failed.
  StartAgentd(FreePort());
  const json r = RunLoadgen(
      "--model echo --tool builtin --sessions 1 --turns 2 --warmup-steps 0 --floor-calls 0",
      /*expected_code=*/1);
  EXPECT_EQ(r.value("errors", -1), 2) << r.dump();
  EXPECT_EQ(r["errors_by_kind"].value("check:no_tool_step", -1), 2);
  EXPECT_FALSE(r.contains("floor"));  // --floor-calls 0: no probe
}

}  // namespace
