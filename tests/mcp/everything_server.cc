#include "mcp/everything_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "testing/free_port.h"
#include "testing/subprocess.h"
#include "testing/temp_dir.h"

namespace agentd::testing {
namespace {

bool Accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

}  // namespace

EverythingServer::~EverythingServer() { Stop(); }

std::string EverythingServer::url() const { return absl::StrCat("http://127.0.0.1:", port_, "/mcp"); }

absl::Status EverythingServer::Start(int port) {
  TempDir scratch;
  CommandResult installed = RunCommand(AGENTD_MCP_INSTALL_SCRIPT, scratch.path());
  if (installed.code != 0) {
    return absl::UnavailableError(absl::StrCat("install-everything.sh failed (exit ", installed.code,
                                               "): ", installed.err));
  }
  const std::string dir(absl::StripAsciiWhitespace(installed.out));
  const std::string script =
      dir + "/node_modules/@modelcontextprotocol/server-everything/dist/index.js";
  port_ = port != 0 ? port : FreePort();
  const std::string port_env = absl::StrCat("PORT=", port_);
  // Everything the child needs is prepared before fork (only async-signal-safe calls after).
  std::vector<std::string> args = {"node", script, "streamableHttp"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> env_strings = {port_env, "PATH=/usr/bin:/bin"};
  if (const char* home = getenv("HOME")) env_strings.push_back(absl::StrCat("HOME=", home));
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  const std::string log = "/dev/null";
  pid_ = fork();
  if (pid_ < 0) return absl::InternalError("fork failed");
  if (pid_ == 0) {
    int devnull = open(log.c_str(), O_WRONLY);
    if (devnull >= 0) {
      dup2(devnull, 1);
      dup2(devnull, 2);
    }
    execve("/usr/bin/node", argv.data(), envp.data());
    _exit(127);
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < until) {
    if (Accepts(port_)) return absl::OkStatus();
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::UnavailableError(absl::StrCat("server-everything exited at start (status ", status, ")"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // polling readiness, bounded
  }
  Stop();
  return absl::DeadlineExceededError("server-everything did not listen within 30 s");
}

void EverythingServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int status = 0;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= until) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
}

}  // namespace agentd::testing
