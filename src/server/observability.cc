#include "server/observability.h"

#include "absl/strings/str_cat.h"
#include "backend/model_router.h"
#include "http/http_server.h"
#include "metrics/agentd_metrics.h"
#include "runtime/history_cache.h"
#include "runtime/session_manager.h"

namespace agentd::server {

void RegisterRuntimeMetrics(metrics::AgentdMetrics* m, runtime::SessionManager* sessions,
                            runtime::HistoryCache* history, backend::ModelRouter* router) {
  using metrics::MetricType;
  using metrics::SampleSink;
  metrics::Registry& r = m->registry();
  // Read when scraped, from the components' own state: nothing to keep in sync on hot paths.
  r.AddCallback("agentd_turns_in_flight", "Turns running now.", MetricType::kGauge, {},
                [sessions](SampleSink& sink) {
                  sink.Add({}, static_cast<double>(sessions->turn_stats().running));
                });
  r.AddCallback("agentd_turns_queued", "Turns waiting behind a running turn (on_busy=ENQUEUE).",
                MetricType::kGauge, {}, [sessions](SampleSink& sink) {
                  sink.Add({}, static_cast<double>(sessions->turn_stats().queued));
                });
  r.AddCallback("agentd_active_sessions", "Sessions with a turn running or queued.",
                MetricType::kGauge, {}, [sessions](SampleSink& sink) {
                  sink.Add({}, static_cast<double>(sessions->turn_stats().sessions));
                });
  r.AddCallback("agentd_cached_sessions",
                "Sessions whose event log is held in memory (history cache, LRU).",
                MetricType::kGauge, {},
                [history](SampleSink& sink) { sink.Add({}, static_cast<double>(history->size())); });
  r.AddCallback(
      "agentd_backend_circuit_state",
      "Circuit breaker of each model deployment: 0 closed, 1 half-open, 2 open.",
      MetricType::kGauge, {"model", "deployment", "backend", "backend_model"},
      [router](SampleSink& sink) {
        std::string last_model;
        int index = 0;
        for (const backend::DeploymentHealth& h : router->Health()) {
          index = h.model == last_model ? index + 1 : 0;  // Health() lists deployments in order
          last_model = h.model;
          const double state = h.open ? 2 : h.half_open ? 1 : 0;
          sink.Add({h.model, absl::StrCat(index), h.backend, h.backend_model}, state);
        }
      });
  metrics::RegisterProcessMetrics(&r);
}

absl::StatusOr<std::unique_ptr<http::HttpServer>> StartMetricsServer(const std::string& listen,
                                                                    metrics::Registry* registry) {
  std::vector<http::Route> routes;
  routes.push_back({"GET", "/metrics", [registry](std::shared_ptr<http::Exchange> ex) {
                      ex->Respond(200, "text/plain; version=0.0.4; charset=utf-8",
                                  registry->Render());
                    }});
  auto server = http::HttpServer::Start(listen, std::move(routes));
  if (!server.ok()) {
    return absl::Status(server.status().code(),
                        absl::StrCat("metrics_listen: ", server.status().message()));
  }
  return server;
}

}  // namespace agentd::server
