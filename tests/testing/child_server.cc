#include "testing/child_server.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"

namespace agentd::testing {
namespace {

std::vector<char*> Argv(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(AGENTD_BINARY));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  return argv;
}

// This process's environment with AGENTD_BOOTSTRAP_KEY set to the test key. Built before
// fork(): between fork and exec only async-signal-safe calls are allowed (no setenv).
class ChildEnv {
 public:
  ChildEnv() {
    const std::string prefix = "AGENTD_BOOTSTRAP_KEY=";
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, prefix.c_str(), prefix.size()) != 0) strings_.emplace_back(*e);
    }
    strings_.push_back(prefix + kTestAdminKey);
    for (std::string& s : strings_) envp_.push_back(s.data());
    envp_.push_back(nullptr);
  }
  char** envp() { return envp_.data(); }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> envp_;
};

}  // namespace

ChildServer::ChildServer(std::string data_dir, int port, std::vector<std::string> extra_args)
    : data_dir_(std::move(data_dir)), port_(port), extra_args_(std::move(extra_args)) {}

ChildServer::~ChildServer() { Kill(); }

bool ChildServer::Start() {
  std::vector<std::string> args = {"--data-dir", data_dir_, "--listen", address(), "--log-level", "warn"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  auto argv = Argv(args);
  ChildEnv env;
  pid_ = fork();
  if (pid_ == 0) {
    execve(AGENTD_BINARY, argv.data(), env.envp());
    _exit(127);
  }
  if (pid_ < 0) return false;
  for (int i = 0; i < 400; ++i) {
    // A fresh channel per try: a channel that saw "connection refused" backs off for seconds.
    auto health = grpc::health::v1::Health::NewStub(
        grpc::CreateChannel(address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
    grpc::health::v1::HealthCheckResponse resp;
    if (health->Check(&ctx, {}, &resp).ok() &&
        resp.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
      return true;
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

std::shared_ptr<grpc::Channel> ChildServer::NewChannel() const {
  return AuthChannel(address(), grpc::InsecureChannelCredentials(), admin_key_);
}

void ChildServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int ChildServer::SignalAndWait(int sig, int timeout_ms) {
  if (pid_ <= 0) return -1;
  kill(pid_, sig);
  for (int waited = 0; waited < timeout_ms; waited += 10) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return -1;
}

TempDir* ChildServerSuite::dir_ = nullptr;
ChildServer* ChildServerSuite::server_ = nullptr;

void ChildServerSuite::SetUpTestSuite() {
  dir_ = new TempDir();
  server_ = new ChildServer(dir_->Sub("data"), FreePort());
  ASSERT_TRUE(server_->Start());
}

void ChildServerSuite::TearDownTestSuite() {
  delete server_;
  delete dir_;
  server_ = nullptr;
  dir_ = nullptr;
}

int RunAgentd(const std::vector<std::string>& args, std::string* stderr_text, int timeout_ms) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return -1;
  auto argv = Argv(args);
  ChildEnv env;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], STDERR_FILENO);
    dup2(pipefd[1], STDOUT_FILENO);
    close(pipefd[0]);
    execve(AGENTD_BINARY, argv.data(), env.envp());
    _exit(127);
  }
  close(pipefd[1]);
  fcntl(pipefd[0], F_SETFL, O_NONBLOCK);
  char buf[4096];
  int status = -1;
  for (int waited = 0; waited < timeout_ms; waited += 10) {
    ssize_t n;
    while ((n = read(pipefd[0], buf, sizeof(buf))) > 0) stderr_text->append(buf, n);
    if (waitpid(pid, &status, WNOHANG) == pid) {
      while ((n = read(pipefd[0], buf, sizeof(buf))) > 0) stderr_text->append(buf, n);
      close(pipefd[0]);
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  close(pipefd[0]);
  return -1;
}

}  // namespace agentd::testing
