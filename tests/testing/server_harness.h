// An agentd server started in-process on 127.0.0.1:0 with a real RocksDB in a temp dir, the
// built-in echo model, and a ScriptedBackend serving the model "scripted". Integration tests
// drive it through the generated gRPC stubs, as any client would; the harness's channel sends
// the bootstrap admin key (admin_key()) on every call.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "agentd/v1/session.grpc.pb.h"
#include "backend/scripted_backend.h"
#include "server/server.h"
#include "testing/auth_channel.h"
#include "testing/temp_dir.h"

namespace agentd::testing {

class ServerHarness {
 public:
  /// Starts a server on a fresh data dir.
  ServerHarness();
  /// Same, letting the test adjust the config first (e.g. add an `openai` backend).
  explicit ServerHarness(std::function<void(server::Config*)> configure);
  ~ServerHarness();

  /// Stops the server (graceful, short grace) and starts a new one on the same data dir.
  void Restart();
  void Stop();
  void StartServer();

  v1::AgentService::Stub& agents() { return *agent_stub_; }
  v1::SessionService::Stub& sessions() { return *session_stub_; }
  backend::ScriptedBackend& scripted() { return *scripted_; }
  /// Plaintext channel sending admin_key() on every call (unless the call sets its own).
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  /// A new channel to the server with `creds` (e.g. TLS) sending `key` on every call.
  std::shared_ptr<grpc::Channel> NewChannel(std::shared_ptr<grpc::ChannelCredentials> creds,
                                            const std::string& key = kTestAdminKey,
                                            grpc::ChannelArguments args = {});
  /// The admin key of the `default` project (the server's bootstrap key).
  const std::string& admin_key() const { return admin_key_; }
  const std::string& data_dir() const { return data_dir_; }
  std::string address() const { return server_->address(); }
  server::AgentdServer& server() { return *server_; }

  /// Creates an agent (fails the test on error).
  v1::Agent CreateAgent(const std::string& model, const std::string& instructions = "",
                        const std::vector<std::string>& client_tools = {});
  v1::Session CreateSession(const std::string& agent_id, const std::string& session_id = "");
  /// RunTurn with one USER message.
  grpc::Status Send(const std::string& session_id, const std::string& text, v1::TurnResult* out);
  grpc::Status Run(const v1::RunTurnRequest& request, v1::TurnResult* out);
  std::vector<v1::Event> AllEvents(const std::string& session_id);
  /// The TOOL_RESULT bodies of the session's log, in order.
  std::vector<v1::ToolResult> ToolResults(const std::string& session_id);
  /// Queues the scripted model's next reply: tool calls and/or text.
  void PushReply(std::vector<v1::ToolCall> calls, const std::string& text = "");

 private:
  std::function<void(server::Config*)> configure_;
  const std::string admin_key_ = kTestAdminKey;
  TempDir dir_;
  std::string data_dir_;
  std::shared_ptr<backend::ScriptedBackend> scripted_;
  std::unique_ptr<server::AgentdServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentService::Stub> agent_stub_;
  std::unique_ptr<v1::SessionService::Stub> session_stub_;
};

/// A tool call as a model would make it (for scripted replies and expected results).
inline v1::ToolCall Call(const std::string& id, const std::string& name, const std::string& args) {
  v1::ToolCall c;
  c.set_id(id);
  c.set_name(name);
  c.set_arguments_json(args);
  return c;
}

/// A client context with a deadline of `seconds`.
std::unique_ptr<grpc::ClientContext> Ctx(double seconds = 10);

/// Adds backend "fake" (type openai at `base_url`) and model "gpt" served by it as "fake-gpt" at
/// `price`. Returns the backend entry, for tests that adjust it (timeouts, headers).
server::BackendConfig& AddFakeOpenAiModel(server::Config* config, const std::string& base_url,
                                          server::PriceConfig price = {});

/// Polls `done` every 5 ms for up to `limit`; true once it held.
template <typename F>
bool Eventually(F done, absl::Duration limit) {
  const absl::Time until = absl::Now() + limit;
  while (!done()) {
    if (absl::Now() > until) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

}  // namespace agentd::testing
