// agentd: the server executable. Flags are parsed here only and copied into ServerOptions.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "metrics/log_format.h"
#include "server/config.h"
#include "server/server.h"

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "agentd: error: %s\n", message.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"agentd: a stateful agent runtime server (gRPC, durable sessions on RocksDB)"};
  std::string config_path, listen, data_dir, metrics_listen, http_listen, log_level, log_format;
  std::string health_listen;
  std::string tls_cert, tls_key, tls_client_ca;
  bool allow_plaintext = false;
  app.add_option("--config", config_path, "YAML config file (see docs/configuration.md)");
  app.add_option("--listen", listen, "gRPC address HOST:PORT (default 127.0.0.1:7700)");
  app.add_option("--data-dir", data_dir, "data directory (default ./data)");
  app.add_option("--metrics-listen", metrics_listen,
                 "Prometheus metrics address HOST:PORT, GET /metrics (config metrics_listen)");
  app.add_option("--health-listen", health_listen,
                 "plaintext grpc.health.v1-only address HOST:PORT for probes (config health_listen)");
  app.add_option("--http-listen", http_listen,
                 "OpenAI-compatible HTTP API address HOST:PORT, /v1/... (config http_listen)");
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error");
  app.add_option("--log-format", log_format,
                 "text|json: json writes one JSON object per line (config log_format)");
  app.add_option("--tls-cert", tls_cert, "PEM server certificate chain (config tls.cert_file)");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert (config tls.key_file)");
  app.add_option("--tls-client-ca", tls_client_ca,
                 "PEM CA that client certificates must be signed by: mTLS (tls.client_ca_file)");
  app.add_flag("--allow-plaintext", allow_plaintext,
               "serve plaintext gRPC on a non-loopback address (behind a TLS-terminating proxy)");
  app.footer(
      "Without TLS, agentd serves plaintext only on a loopback address.\n"
      "Environment: AGENTD_BOOTSTRAP_KEY: the admin API key of the `default` project, used when\n"
      "the data dir is new (otherwise one is generated and written to DATA_DIR/bootstrap.key).\n"
      "Examples:\n"
      "  agentd --listen 127.0.0.1:7700 --data-dir ./data\n"
      "  agentd --listen 0.0.0.0:7700 --tls-cert server.crt --tls-key server.key");
  CLI11_PARSE(app, argc, argv);
  // Debian builds Abseil without NDEBUG, which leaves mutex deadlock detection on: ~5 % of CPU
  // and a third of the routing cost under load (docs/benchmarks.md). Lock order is checked in
  // tests (ABSL annotations), not in production.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  agentd::server::Config config;
  if (!config_path.empty()) {
    auto loaded = agentd::server::LoadConfigFile(config_path);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
    config = *std::move(loaded);
  }
  if (!listen.empty()) config.listen = listen;
  if (!data_dir.empty()) config.data_dir = data_dir;
  if (!metrics_listen.empty()) config.metrics_listen = metrics_listen;
  if (!http_listen.empty()) config.http_listen = http_listen;
  if (!health_listen.empty()) config.health_listen = health_listen;
  if (!log_level.empty()) config.log_level = log_level;
  if (!log_format.empty()) config.log_format = log_format;
  if (!tls_cert.empty()) config.tls.cert_file = tls_cert;
  if (!tls_key.empty()) config.tls.key_file = tls_key;
  if (!tls_client_ca.empty()) config.tls.client_ca_file = tls_client_ca;
  if (allow_plaintext) config.allow_plaintext = true;
  const auto level = spdlog::level::from_str(config.log_level);
  if (level == spdlog::level::off && config.log_level != "off") {
    return Fail("log_level must be one of trace, debug, info, warn, error");
  }
  const auto format = agentd::obs::ParseLogFormat(config.log_format);
  if (!format) return Fail("log_format must be text or json, got \"" + config.log_format + "\"");
  spdlog::set_level(level);
  // Both formats add the request and trace ids of the request being served to each line.
  agentd::obs::ConfigureLogging(*format);

  // Block the stop signals in every thread; one thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  agentd::server::ServerOptions options;
  options.config = config;
  if (const char* key = std::getenv("AGENTD_BOOTSTRAP_KEY"); key != nullptr) {
    options.bootstrap_key = key;
  }
  auto server = agentd::server::AgentdServer::Start(std::move(options));
  if (!server.ok()) return Fail(std::string(server.status().message()));

  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    (*server)->Shutdown(absl::Milliseconds(config.drain_grace_ms));
  });
  (*server)->Wait();
  signal_thread.join();
  return 0;
}
