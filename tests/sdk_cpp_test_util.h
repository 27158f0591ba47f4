// Helpers of the C++ SDK tests: an in-process server, SDK clients bound to it, and a recording
// channel whose interceptor logs every call (method, metadata, idempotency key) and can turn
// the first N answers of a method into a failure *after* the server processed the call.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/support/status.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "agentd/client.h"
#include "testing/server_harness.h"

namespace agentd::sdktest {

struct RecordedCall {
  std::string method;  // e.g. "/agentd.v1.SessionService/RunTurn"
  std::multimap<std::string, std::string> metadata;
  std::string idempotency_key;  // RunTurn / StreamTurn requests
  std::string Header(const std::string& name) const {
    auto it = metadata.find(name);
    return it == metadata.end() ? std::string() : it->second;
  }
};

class Recorder {
 public:
  /// The next `count` calls of `method` (a suffix such as "/RunTurn") end with `code` on the
  /// client, whatever the server answered.
  void FailNext(const std::string& method, int count, grpc::StatusCode code);
  std::vector<RecordedCall> Calls() const;
  /// Calls whose method ends with `suffix`.
  std::vector<RecordedCall> Calls(const std::string& suffix) const;
  void Clear();

  // Used by the interceptor.
  size_t Begin(const std::string& method, const std::multimap<std::string, std::string>& md);
  void SetKey(size_t index, const std::string& key);
  /// True (and consumes one) when this call's status is to be replaced.
  bool TakeFault(const std::string& method, grpc::StatusCode* code);

 private:
  mutable absl::Mutex mu_;
  std::vector<RecordedCall> calls_ ABSL_GUARDED_BY(mu_);
  std::string fault_method_ ABSL_GUARDED_BY(mu_);
  int fault_count_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::StatusCode fault_code_ ABSL_GUARDED_BY(mu_) = grpc::StatusCode::OK;
};

/// A plaintext channel to `target` whose calls go through `recorder` (no key of its own: the
/// SDK adds it).
std::shared_ptr<grpc::Channel> RecordingChannel(const std::string& target,
                                                std::shared_ptr<Recorder> recorder);

/// A loopback port that is bound but not listening: connecting to it is refused at once.
class RefusingPort {
 public:
  RefusingPort();
  ~RefusingPort();
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class SdkTest : public ::testing::Test {
 protected:
  /// Options for the harness with fast retries (tests should not wait on real backoff).
  ClientOptions Options() const;
  std::unique_ptr<Client> NewClient(ClientOptions options);
  std::unique_ptr<Client> NewClient() { return NewClient(Options()); }
  /// A client whose calls go through recorder_.
  std::unique_ptr<Client> RecordingClient(ClientOptions options);
  std::unique_ptr<Client> RecordingClient() { return RecordingClient(Options()); }
  /// An echo agent with `tools`' specs and a session of it.
  Session NewSession(Client& client, const ToolRegistry& tools = {},
                     const std::string& model = "echo");
  /// TURN_STARTED events of the session.
  int TurnsStarted(const std::string& session_id);
  /// Answers the session's pending tool call `call_id` with `output` by hand; the turn must
  /// complete with `output` as its text (the echo and scripted models repeat a tool result).
  static void ExpectAnswerCompletesTurn(Session& session, const std::string& call_id,
                                        const std::string& output);

  testing::ServerHarness harness_;
  std::shared_ptr<Recorder> recorder_ = std::make_shared<Recorder>();
};

/// The get_weather tool used across tests: "sunny in <city>" (arguments checked loosely).
ToolRegistry WeatherTools(std::vector<std::string>* seen_args = nullptr);

}  // namespace agentd::sdktest
