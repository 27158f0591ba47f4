// OpenAiDoor: agentd's OpenAI-compatible HTTP front door (docs/openai-compat.md).
//
// A second door onto the same runtime as gRPC: requests are authenticated by the same
// auth::Authenticator (Bearer agentd keys, roles from auth/policy.cc), Responses become turns of
// SessionManager sessions, Chat Completions go through the ModelRouter with the project's limits.
// Served on http::HttpServer (libevent); handlers hand their work to the door's own worker pool,
// because store reads and commits block (fsync) and the loop thread must not.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace agentd::auth {
class Authenticator;
class LimitEnforcer;
}  // namespace agentd::auth
namespace agentd::backend {
class ModelRouter;
}
namespace agentd::runtime {
class AgentManager;
class Executor;
class SessionManager;
}  // namespace agentd::runtime
namespace agentd::store {
class ContextStore;
}
namespace agentd::http {
class HttpServer;
}

namespace agentd::openai {

struct DoorDeps {
  auth::Authenticator* auth = nullptr;
  auth::LimitEnforcer* limits = nullptr;  // null = unlimited
  runtime::SessionManager* sessions = nullptr;
  runtime::AgentManager* agents = nullptr;
  backend::ModelRouter* router = nullptr;
  store::ContextStore* store = nullptr;
};

struct DoorOptions {
  std::string listen;                       // HOST:PORT (port 0 = any free port)
  size_t max_body_bytes = 4 * 1024 * 1024;  // larger request bodies get 413
  int worker_threads = 4;
};

class OpenAiDoor {
 public:
  /// Binds and serves. INVALID_ARGUMENT for a malformed address, UNAVAILABLE if it cannot bind.
  static absl::StatusOr<std::unique_ptr<OpenAiDoor>> Start(DoorOptions options, DoorDeps deps);
  ~OpenAiDoor();
  /// HOST:PORT actually bound.
  std::string address() const;
  /// Stops accepting and drops open connections (streams end), then joins the workers.
  /// Call before the runtime it serves is torn down. Idempotent.
  void Shutdown();

 private:
  OpenAiDoor() = default;
  struct Impl;
  std::shared_ptr<Impl> impl_;
  std::unique_ptr<http::HttpServer> http_;
};

}  // namespace agentd::openai
