// AgentdServer: the composition root. Opens the store, builds the router from the config,
// wires the managers and the gRPC services, and owns their lifetimes.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/config.h"

namespace grpc {
class Server;
class HealthCheckServiceInterface;
}  // namespace grpc

namespace agentd::backend {
class InferenceBackend;
class ModelRouter;
class TimerQueue;
}  // namespace agentd::backend
namespace agentd::store {
class ContextStore;
}
namespace agentd::http {
class HttpServer;
}
namespace agentd::metrics {
class AgentdMetrics;
}
namespace agentd::openai {
class OpenAiDoor;
}
namespace agentd::auth {
class AuditLog;
class Authenticator;
class LimitEnforcer;
class ProjectManager;
}  // namespace agentd::auth
namespace agentd::runtime {
class AgentManager;
class EventHub;
class Executor;
class HistoryCache;
class MemoryManager;
class ReplicaMonitor;
class SessionManager;
}  // namespace agentd::runtime
namespace agentd::tools {
class ToolGateway;
}  // namespace agentd::tools
namespace agentd::rpc {
class AgentServiceImpl;
class MemoryServiceImpl;
class ProjectServiceImpl;
class AdminServiceImpl;
class ToolServiceImpl;
class ReflectionService;
class SessionServiceImpl;
}  // namespace agentd::rpc

namespace agentd::server {

class ProbeHealthServer;

struct ServerOptions {
  Config config;
  /// Backends supplied by the embedding program (tests: a ScriptedBackend), by name. Config
  /// backends of type "scripted" must be supplied here.
  std::map<std::string, std::shared_ptr<backend::InferenceBackend>> extra_backends;
  /// AGENTD_BOOTSTRAP_KEY: the admin key of the `default` project when the data dir is new
  /// (empty = generate one, print it once and write it to data_dir/bootstrap.key).
  std::string bootstrap_key;
};

class AgentdServer {
 public:
  /// Opens the store, recovers interrupted turns and starts serving. Errors (bad config, data
  /// dir unusable or locked, port taken) are returned with a message for the operator.
  static absl::StatusOr<std::unique_ptr<AgentdServer>> Start(ServerOptions options);
  ~AgentdServer();

  /// The port actually bound (useful with port 0).
  int port() const { return port_; }
  std::string address() const;
  /// HOST:PORT of the metrics endpoint actually bound (port resolved when 0 was configured);
  /// empty when metrics_listen is off.
  std::string metrics_address() const;
  /// HOST:PORT of the OpenAI-compatible HTTP door actually bound; empty when http_listen is off.
  std::string http_address() const;
  /// HOST:PORT of the health-only listener actually bound; empty when health_listen is off.
  std::string health_address() const;

  /// Graceful stop: health NOT_SERVING, new turns refused, running turns get up to `grace`,
  /// then the gRPC server shuts down and the store closes. Idempotent; thread-safe.
  void Shutdown(absl::Duration grace);
  /// Blocks until Shutdown() has completed.
  void Wait();

 private:
  AgentdServer() = default;
  /// Background retention until Shutdown: expired sessions (and idempotency records past their
  /// retention) now and every minute; audit records older than `audit_retention` hourly.
  void StartSweeper(absl::Duration audit_retention);

  ServerOptions options_;
  int port_ = 0;
  // Before everything that reports to it (router, turns), so it outlives them.
  std::unique_ptr<metrics::AgentdMetrics> metrics_;
  std::unique_ptr<store::ContextStore> store_;
  std::unique_ptr<auth::AuditLog> audit_;
  std::unique_ptr<auth::Authenticator> authenticator_;
  std::unique_ptr<auth::LimitEnforcer> limits_;
  std::unique_ptr<auth::ProjectManager> projects_;
  std::unique_ptr<backend::ModelRouter> router_;
  std::unique_ptr<runtime::EventHub> hub_;
  std::unique_ptr<runtime::HistoryCache> history_;
  // Before agents_ and sessions_ (and executor_): turns call it until they are gone.
  std::unique_ptr<tools::ToolGateway> tools_;
  std::unique_ptr<runtime::AgentManager> agents_;
  std::unique_ptr<runtime::SessionManager> sessions_;
  std::unique_ptr<runtime::MemoryManager> memory_;
  // Destroyed before sessions_ (runs what is queued while the managers still exist).
  std::unique_ptr<runtime::Executor> executor_;
  // Wake turns waiting for another replica's turn (onto executor_): destroyed before it.
  std::unique_ptr<backend::TimerQueue> turn_timers_;
  // Shared stores only: heartbeats, orphaned turns, commit notices into hub_. Stopped before
  // the sessions, the hub and the store it uses.
  std::unique_ptr<runtime::ReplicaMonitor> replicas_;
  std::unique_ptr<rpc::AgentServiceImpl> agent_service_;
  std::unique_ptr<rpc::SessionServiceImpl> session_service_;
  std::unique_ptr<rpc::MemoryServiceImpl> memory_service_;
  std::unique_ptr<rpc::ProjectServiceImpl> project_service_;
  std::unique_ptr<rpc::AdminServiceImpl> admin_service_;
  std::unique_ptr<rpc::ToolServiceImpl> tool_service_;
  std::unique_ptr<rpc::ReflectionService> reflection_service_;
  std::unique_ptr<grpc::Server> grpc_server_;
  // health_listen: a second, plaintext server with only grpc.health.v1 (no API key, no data),
  // for kubelet gRPC probes, which cannot speak TLS.
  std::unique_ptr<ProbeHealthServer> health_server_;
  struct ShutdownState;
  std::unique_ptr<ShutdownState> shutdown_;
  // The OpenAI-compatible door: stopped after the drain (its turns answer), before the runtime.
  std::unique_ptr<openai::OpenAiDoor> openai_door_;
  // Last: stopped first, while the components its scrape callbacks read still exist.
  std::unique_ptr<http::HttpServer> metrics_http_;
};

/// The MCP servers of the config, with "env:NAME" header values read from the environment.
/// The gateway of config.mcp_servers and config.http_tools (INVALID_ARGUMENT for an unusable
/// HTTP tool template or schema, naming http_tools[i]).
absl::StatusOr<std::unique_ptr<tools::ToolGateway>> BuildToolGateway(const Config& config);

/// Builds the router from the config's backends and models.
absl::StatusOr<std::unique_ptr<backend::ModelRouter>> BuildRouter(
    const Config& config,
    const std::map<std::string, std::shared_ptr<backend::InferenceBackend>>& extra_backends,
    metrics::AgentdMetrics* metrics = nullptr);

}  // namespace agentd::server
