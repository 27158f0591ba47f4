#include "server/server.h"

#include <cstdlib>
#include <thread>
#include <tuple>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <spdlog/spdlog.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "auth/audit.h"
#include "auth/authenticator.h"
#include "auth/bootstrap.h"
#include "auth/limits.h"
#include "auth/project_manager.h"
#include "backend/echo_backend.h"
#include "backend/model_router.h"
#include "backend/openai_backend.h"
#include "backend/timer_queue.h"
#include "http/http_server.h"
#include "metrics/agentd_metrics.h"
#include "openai/door.h"
#include "rpc/admin_service.h"
#include "rpc/tool_service.h"
#include "rpc/agent_service.h"
#include "rpc/memory_service.h"
#include "rpc/project_service.h"
#include "rpc/reflection_service.h"
#include "rpc/response_interceptor.h"
#include "rpc/session_service.h"
#include "runtime/agent_manager.h"
#include "runtime/event_hub.h"
#include "runtime/executor.h"
#include "runtime/history_cache.h"
#include "runtime/memory_manager.h"
#include "runtime/replicas.h"
#include "runtime/session_manager.h"
#include "server/observability.h"
#include "server/probe_health.h"
#include "server/tls.h"
#include "tools/tool_gateway.h"
#include "store/pg_store.h"
#include "store/rocksdb_store.h"

namespace agentd::server {

struct AgentdServer::ShutdownState {
  absl::Mutex mu;
  bool started ABSL_GUARDED_BY(mu) = false;
  bool done ABSL_GUARDED_BY(mu) = false;
  // The retention sweeper (sessions every minute, audit hourly) stops when `started` is set.
  std::thread sweeper;
};

namespace {

// "env:NAME" header values come from the environment (ValidateConfig checked they are set).
std::map<std::string, std::string> ResolveHeaders(const std::map<std::string, std::string>& in) {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : in) {
    const bool from_env = absl::StartsWith(value, "env:");
    const char* env = from_env ? std::getenv(value.substr(4).c_str()) : nullptr;
    out[name] = from_env ? std::string(env == nullptr ? "" : env) : value;
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<tools::ToolGateway>> BuildToolGateway(const Config& config) {
  tools::ToolGatewayOptions o;
  o.max_result_bytes = static_cast<size_t>(config.max_tool_result_bytes);
  for (const McpServerConfig& c : config.mcp_servers) {
    tools::McpServerOptions s;
    s.name = c.name;
    s.url = c.url;
    s.timeout = absl::Milliseconds(c.timeout_ms);
    s.allowed_tools = c.allowed_tools;
    s.headers = ResolveHeaders(c.headers);  // secrets: never logged
    o.mcp.servers.push_back(std::move(s));
    tools::McpServerPolicy& p = o.mcp_policy[c.name];
    p.max_concurrency = c.max_concurrency;
    p.retries = c.retries;
    for (const auto& [tool, t] : c.tools) {
      tools::ToolSettings& ts = p.tools[tool];
      ts.timeout = t.timeout_ms > 0 ? absl::Milliseconds(t.timeout_ms) : absl::ZeroDuration();
      ts.max_concurrency = t.max_concurrency;
      ts.idempotent = t.idempotent;
    }
  }
  for (const HttpToolConfig& c : config.http_tools) {
    tools::HttpToolEntry e;
    e.options.name = c.name;
    e.options.description = c.description;
    e.options.method = c.method;
    e.options.url = c.url;
    e.options.headers = ResolveHeaders(c.headers);
    e.options.parameters_json_schema = c.parameters_json_schema;
    e.settings.timeout = absl::Milliseconds(c.timeout_ms);
    e.settings.max_concurrency = c.max_concurrency;
    e.settings.idempotent = c.idempotent;
    e.retries = c.retries;
    o.http.push_back(std::move(e));
  }
  return tools::ToolGateway::Create(std::move(o));
}

absl::StatusOr<std::unique_ptr<backend::ModelRouter>> BuildRouter(
    const Config& config,
    const std::map<std::string, std::shared_ptr<backend::InferenceBackend>>& extra_backends,
    metrics::AgentdMetrics* metrics) {
  backend::RouterOptions ro;
  ro.metrics = metrics;
  ro.max_retries = config.router.max_retries;
  ro.initial_backoff = absl::Milliseconds(config.router.initial_backoff_ms);
  ro.max_backoff = absl::Milliseconds(config.router.max_backoff_ms);
  ro.breaker_failures = config.router.breaker_failures;
  ro.breaker_cooldown = absl::Milliseconds(config.router.breaker_cooldown_ms);
  auto router = std::make_unique<backend::ModelRouter>(ro);
  for (size_t i = 0; i < config.backends.size(); ++i) {
    const BackendConfig& b = config.backends[i];
    std::shared_ptr<backend::InferenceBackend> impl;
    auto extra = extra_backends.find(b.name);
    if (extra != extra_backends.end()) {
      impl = extra->second;
    } else if (b.type == "echo") {
      impl = std::make_shared<backend::EchoBackend>();
    } else if (b.type == "openai") {
      backend::OpenAiBackendOptions o;
      o.name = b.name;
      o.base_url = b.base_url;
      // Secrets come from the environment (ValidateConfig checked they are set); never logged.
      auto env = [](const std::string& name) {
        const char* v = std::getenv(name.c_str());
        return std::string(v == nullptr ? "" : v);
      };
      if (!b.api_key_env.empty()) o.api_key = env(b.api_key_env);
      o.timeout = absl::Milliseconds(b.timeout_ms);
      for (const auto& [name, value] : b.headers) {
        o.headers[name] = absl::StartsWith(value, "env:") ? env(value.substr(4)) : value;
      }
      o.tls_verify = b.tls_verify;
      impl = std::make_shared<backend::OpenAiBackend>(std::move(o));
    } else if (b.type == "scripted") {
      return absl::InvalidArgumentError(absl::StrCat(
          "backends[", i, "] (", b.name, "): type scripted is for tests and must be supplied by the test"));
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "backends[", i, "] (", b.name, "): type \"", b.type,
          "\" is not supported (supported: openai, echo)"));
    }
    backend::BackendLimits limits;
    limits.max_concurrency = b.max_concurrency;
    auto st = router->RegisterBackend(b.name, impl, limits);
    if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat("backends[", i, "]: ", st.message()));
  }
  for (size_t i = 0; i < config.models.size(); ++i) {
    const ModelConfig& m = config.models[i];
    backend::ModelSpec spec;
    spec.name = m.name;
    for (const auto& d : m.deployments) spec.deployments.push_back({d.backend, d.model, d.weight});
    spec.fallback = m.fallback;
    spec.context_window = m.context_window;
    spec.price = {m.price.input_per_mtok, m.price.output_per_mtok};
    auto st = router->AddModel(std::move(spec));
    if (!st.ok()) return absl::InvalidArgumentError(absl::StrCat("models[", i, "]: ", st.message()));
  }
  auto st = router->Validate();
  if (!st.ok()) return st;
  return router;
}

absl::StatusOr<std::unique_ptr<AgentdServer>> AgentdServer::Start(ServerOptions options) {
  auto st = ValidateConfig(options.config);
  if (!st.ok()) return st;
  const Config& cfg = options.config;
  // TLS files are checked before anything touches the data dir.
  auto credentials = BuildServerCredentials(cfg);
  if (!credentials.ok()) return credentials.status();
  // Addresses are checked before anything touches the data dir (a bootstrap key given with a
  // bad config would otherwise be spent on a server that never started).
  for (const auto& [key, address, example] :
       {std::tuple<const char*, const std::string&, const char*>{"metrics_listen",
                                                                 cfg.metrics_listen, "127.0.0.1:9464"},
        {"health_listen", cfg.health_listen, "0.0.0.0:7701"},
        {"http_listen", cfg.http_listen, "127.0.0.1:7710"}}) {
    std::string host;
    int port = 0;
    if (!address.empty() && !http::SplitHostPort(address, &host, &port)) {
      return absl::InvalidArgumentError(absl::StrCat(key, ": \"", address,
                                                     "\" is not a HOST:PORT address (e.g. ",
                                                     example, ")"));
    }
  }
  std::unique_ptr<AgentdServer> server(new AgentdServer());
  server->options_ = options;
  server->shutdown_ = std::make_unique<ShutdownState>();

  const store::Durability durability = cfg.durability == "relaxed" ? store::Durability::kRelaxed
                                       : cfg.durability == "none"  ? store::Durability::kNone
                                                                   : store::Durability::kSync;
  if (cfg.store.type == "postgres") {
    // ValidateConfig checked that the variable is set; its value (with a password) is never
    // logged.
    store::PostgresStoreOptions pg_options;
    const char* dsn = std::getenv(cfg.store.postgres_dsn_env.c_str());
    pg_options.dsn = dsn != nullptr ? dsn : "";
    pg_options.durability = durability;
    auto opened = store::PostgresStore::Open(pg_options);
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          absl::StrCat("store (postgres): ", opened.status().message()));
    }
    server->store_ = *std::move(opened);
  } else {
    store::RocksDbStoreOptions store_options;
    store_options.path = cfg.data_dir;
    store_options.durability = durability;
    auto opened = store::RocksDbStore::Open(store_options);
    if (!opened.ok()) return opened.status();
    server->store_ = *std::move(opened);
  }

  auth::BootstrapOptions bootstrap;
  bootstrap.data_dir = cfg.data_dir;
  bootstrap.bootstrap_key = options.bootstrap_key;
  st = auth::EnsureBootstrap(server->store_.get(), bootstrap);
  if (!st.ok()) return absl::Status(st.code(), absl::StrCat("bootstrap: ", st.message()));
  server->audit_ = std::make_unique<auth::AuditLog>(server->store_.get());
  server->authenticator_ =
      std::make_unique<auth::Authenticator>(server->store_.get(), server->audit_.get());
  server->limits_ = std::make_unique<auth::LimitEnforcer>(server->store_.get());
  server->projects_ =
      std::make_unique<auth::ProjectManager>(server->store_.get(), server->limits_.get());

  server->metrics_ = std::make_unique<metrics::AgentdMetrics>();
  auto router = BuildRouter(cfg, options.extra_backends, server->metrics_.get());
  if (!router.ok()) return router.status();
  server->router_ = *std::move(router);
  for (const std::string& model : server->router_->ModelNames()) server->metrics_->AddModel(model);

  server->hub_ = std::make_unique<runtime::EventHub>();
  server->history_ = std::make_unique<runtime::HistoryCache>(cfg.history_cache_sessions);
  server->executor_ = std::make_unique<runtime::Executor>(cfg.turn_threads);
  runtime::TurnDeps deps;
  deps.executor = server->executor_.get();
  deps.store = server->store_.get();
  deps.router = server->router_.get();
  deps.hub = server->hub_.get();
  deps.history = server->history_.get();
  deps.default_max_steps = cfg.default_max_steps_per_turn;
  deps.limits = server->limits_.get();
  deps.metrics = server->metrics_.get();
  deps.context_window = [r = server->router_.get()](const std::string& model) {
    return r->ContextWindow(model);
  };
  // Without tool servers there is no gateway: "mcp:" / "http:" tools are refused at agent create.
  if (!cfg.mcp_servers.empty() || !cfg.http_tools.empty()) {
    auto gateway = BuildToolGateway(cfg);
    if (!gateway.ok()) return gateway.status();
    server->tools_ = *std::move(gateway);
  }
  deps.tools = server->tools_.get();
  deps.replica_id = runtime::NewReplicaId();
  server->turn_timers_ = std::make_unique<backend::TimerQueue>();
  deps.timers = server->turn_timers_.get();
  server->agents_ = std::make_unique<runtime::AgentManager>(server->store_.get(), server->router_.get(),
                                                            server->tools_.get());
  server->sessions_ = std::make_unique<runtime::SessionManager>(deps);
  st = server->sessions_->RecoverInterruptedTurns();
  if (!st.ok()) return absl::Status(st.code(), absl::StrCat("recovering interrupted turns: ", st.message()));
  if (server->store_->shared()) {
    server->replicas_ = std::make_unique<runtime::ReplicaMonitor>(
        server->store_.get(), server->sessions_.get(), server->hub_.get(),
        absl::Seconds(cfg.store.replica_ttl_seconds));
    st = server->replicas_->Start();
    if (!st.ok()) return st;
  }
  RegisterRuntimeMetrics(server->metrics_.get(), server->sessions_.get(), server->history_.get(),
                         server->router_.get());
  if (!cfg.metrics_listen.empty()) {
    auto metrics_http = StartMetricsServer(cfg.metrics_listen, &server->metrics_->registry());
    if (!metrics_http.ok()) return metrics_http.status();
    server->metrics_http_ = *std::move(metrics_http);
  }

  auth::Authenticator* authn = server->authenticator_.get();
  server->agent_service_ = std::make_unique<rpc::AgentServiceImpl>(server->agents_.get(), authn);
  server->session_service_ =
      std::make_unique<rpc::SessionServiceImpl>(server->sessions_.get(), authn);
  server->memory_ = std::make_unique<runtime::MemoryManager>(server->store_.get());
  server->memory_service_ = std::make_unique<rpc::MemoryServiceImpl>(server->memory_.get(), authn);
  server->project_service_ =
      std::make_unique<rpc::ProjectServiceImpl>(server->projects_.get(), authn);
  server->admin_service_ = std::make_unique<rpc::AdminServiceImpl>(
      server->store_.get(), authn, server->audit_.get(), cfg.backup_dir);
  server->tool_service_ =
      std::make_unique<rpc::ToolServiceImpl>(server->tools_.get(), server->limits_.get(), authn);

  grpc::EnableDefaultHealthCheckService(true);
  server->reflection_service_ = std::make_unique<rpc::ReflectionService>(
      std::vector<std::string>{"agentd.v1.AgentService", "agentd.v1.SessionService",
                               "agentd.v1.MemoryService", "agentd.v1.ProjectService",
                               "agentd.v1.AdminService", "agentd.v1.ToolService",
                               "grpc.health.v1.Health"},
      authn);
  grpc::ServerBuilder builder;
  builder.AddListeningPort(cfg.listen, *credentials, &server->port_);
  builder.SetMaxReceiveMessageSize(static_cast<int>(cfg.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(cfg.max_message_bytes));
  builder.RegisterService(server->agent_service_.get());
  builder.RegisterService(server->session_service_.get());
  builder.RegisterService(server->memory_service_.get());
  builder.RegisterService(server->project_service_.get());
  builder.RegisterService(server->admin_service_.get());
  builder.RegisterService(server->tool_service_.get());
  builder.RegisterService(server->reflection_service_.get());
  // Request ids on every response, INVALID_ARGUMENT for unparseable requests.
  rpc::AddResponseInterceptor(&builder);
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", cfg.listen,
                                               " (address in use or not valid?)"));
  }
  if (!cfg.health_listen.empty()) {
    auto probe = ProbeHealthServer::Start(cfg.health_listen);
    if (!probe.ok()) return probe.status();
    server->health_server_ = *std::move(probe);
    server->health_server_->SetServing(true);
    spdlog::info("health (grpc.health.v1 Check, plaintext) on {}",
                 server->health_server_->address());
  }
  if (!cfg.http_listen.empty()) {
    openai::DoorOptions door_options;
    door_options.listen = cfg.http_listen;
    door_options.max_body_bytes = cfg.max_message_bytes;
    openai::DoorDeps door_deps;
    door_deps.auth = authn;
    door_deps.limits = server->limits_.get();
    door_deps.sessions = server->sessions_.get();
    door_deps.agents = server->agents_.get();
    door_deps.router = server->router_.get();
    door_deps.store = server->store_.get();
    auto door = openai::OpenAiDoor::Start(door_options, door_deps);
    if (!door.ok()) {
      return absl::Status(door.status().code(),
                          absl::StrCat("http_listen: ", door.status().message()));
    }
    server->openai_door_ = *std::move(door);
  }
  server->grpc_server_->GetHealthCheckService()->SetServingStatus(true);
  server->StartSweeper(absl::Hours(24) * cfg.audit_retention_days);
  spdlog::info("agentd serving on {} (data dir {}, durability {})", server->address(),
               cfg.data_dir, cfg.durability);
  if (cfg.durability == "none") {
    spdlog::warn("durability: none is for testing only: a crash loses acknowledged writes");
  }
  if (server->metrics_http_) {
    spdlog::info("metrics on http://{}/metrics", server->metrics_http_->address());
  }
  if (server->openai_door_) {
    spdlog::info("OpenAI-compatible API on http://{}/v1", server->openai_door_->address());
  }
  return server;
}

void AgentdServer::StartSweeper(absl::Duration audit_retention) {
  auth::AuditLog* audit = audit_.get();
  runtime::SessionManager* sessions = sessions_.get();
  ShutdownState* state = shutdown_.get();
  state->sweeper = std::thread([audit, sessions, state, audit_retention] {
    for (int64_t round = 0;; ++round) {
      // Expired sessions (and idempotency records past their retention): every minute.
      absl::StatusOr<int64_t> removed = sessions->SweepExpired(absl::Now());
      if (!removed.ok()) {
        spdlog::warn("session expiry sweep failed: {}", removed.status().ToString());
      } else if (*removed > 0) {
        spdlog::info("session expiry sweep removed {} session(s)", *removed);
      }
      // Audit records past audit_retention_days: hourly.
      if (round % 60 == 0) {
        absl::Status st = audit->Sweep(audit_retention);
        if (!st.ok()) spdlog::warn("audit retention sweep failed: {}", st.ToString());
      }
      absl::MutexLock lock(&state->mu);
      if (state->mu.AwaitWithTimeout(absl::Condition(&state->started), absl::Minutes(1))) return;
    }
  });
}

std::string AgentdServer::metrics_address() const {
  return metrics_http_ ? metrics_http_->address() : "";
}

std::string AgentdServer::health_address() const {
  return health_server_ ? health_server_->address() : "";
}

std::string AgentdServer::http_address() const {
  return openai_door_ ? openai_door_->address() : "";
}

std::string AgentdServer::address() const {
  const std::string& listen = options_.config.listen;
  const size_t colon = listen.rfind(':');
  return absl::StrCat(listen.substr(0, colon), ":", port_);
}

void AgentdServer::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&shutdown_->mu);
    if (shutdown_->started) {
      shutdown_->mu.Await(absl::Condition(&shutdown_->done));
      return;
    }
    shutdown_->started = true;
  }
  // Health first, so load balancers and probes stop sending work before anything else stops
  // (the sweeper may be in the middle of a sweep, which the join below waits for).
  grpc_server_->GetHealthCheckService()->SetServingStatus(false);
  if (health_server_) health_server_->SetServing(false);
  spdlog::info("agentd draining: {} turn(s) in flight, grace {}", sessions_->active_turns(),
               absl::FormatDuration(grace));
  sessions_->Drain(grace);
  if (shutdown_->sweeper.joinable()) shutdown_->sweeper.join();
  // Remaining streams (watchers) are cancelled after a short deadline.
  grpc_server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  grpc_server_->Wait();
  if (health_server_) health_server_->Shutdown();
  // The HTTP door stays open through the drain, so its running turns answer.
  if (openai_door_) openai_door_->Shutdown();
  // Metrics stay scrapeable during the drain; they stop with the gRPC server.
  if (metrics_http_) metrics_http_->Shutdown();
  absl::MutexLock lock(&shutdown_->mu);
  shutdown_->done = true;
  spdlog::info("agentd stopped");
}

void AgentdServer::Wait() {
  absl::MutexLock lock(&shutdown_->mu);
  shutdown_->mu.Await(absl::Condition(&shutdown_->done));
}

AgentdServer::~AgentdServer() {
  if (grpc_server_) Shutdown(absl::Seconds(5));
}

}  // namespace agentd::server
