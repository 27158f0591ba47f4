// Observability wiring of the composition root: the scrape-time gauges read from the runtime and
// the router, and the metrics HTTP endpoint (GET /metrics on metrics_listen).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace agentd::backend {
class ModelRouter;
}
namespace agentd::http {
class HttpServer;
}
namespace agentd::metrics {
class AgentdMetrics;
class Registry;
}  // namespace agentd::metrics
namespace agentd::runtime {
class HistoryCache;
class SessionManager;
}  // namespace agentd::runtime

namespace agentd::server {

/// Registers agentd_turns_in_flight, agentd_turns_queued, agentd_active_sessions,
/// agentd_cached_sessions, agentd_backend_circuit_state and the process metrics. The pointers
/// must outlive every scrape (the server stops the endpoint before destroying them).
void RegisterRuntimeMetrics(metrics::AgentdMetrics* metrics, runtime::SessionManager* sessions,
                            runtime::HistoryCache* history, backend::ModelRouter* router);

/// Serves `registry` as GET /metrics (text format 0.0.4) on `listen` (HOST:PORT, port 0 = any);
/// other paths get 404, other methods 405. The error names metrics_listen.
absl::StatusOr<std::unique_ptr<http::HttpServer>> StartMetricsServer(const std::string& listen,
                                                                    metrics::Registry* registry);

}  // namespace agentd::server
