// Server configuration: one struct, loaded from YAML (API.md "Configuration file") and then
// overridden by command-line flags in main(). Each field is declared once, with its default.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace agentd::server {

struct BackendConfig {
  std::string name;
  std::string type;          // "openai" | "echo" | "scripted" (tests)
  std::string base_url;      // required for openai
  std::string api_key_env;   // env var holding the key (optional)
  int64_t timeout_ms = 60000;  // > 0
  int32_t max_concurrency = 256;  // > 0
  std::map<std::string, std::string> headers;  // extra headers; "env:NAME" values from env
  bool tls_verify = true;
};

struct DeploymentConfig {
  std::string backend;   // must name a backend
  std::string model;     // model name sent to the backend
  int32_t weight = 1;    // >= 1
};

struct PriceConfig {
  double input_per_mtok = 0;   // USD per million input tokens, >= 0
  double output_per_mtok = 0;  // >= 0
};

struct ModelConfig {
  std::string name;
  std::vector<DeploymentConfig> deployments;  // at least one
  std::vector<std::string> fallback;          // model names, tried in order
  int64_t context_window = 0;                 // 0 = unknown
  PriceConfig price;
};

/// Per-tool settings of a server-side tool (an MCP server's `tools:` entries; an HTTP tool's own).
struct ToolSettingsConfig {
  int64_t timeout_ms = 0;        // 0 = the server's timeout_ms
  int32_t max_concurrency = 0;   // calls in flight at once, 0 = no limit of its own
  bool idempotent = false;       // failed calls may be retried
};

struct McpServerConfig {
  std::string name;
  std::string url;
  std::map<std::string, std::string> headers;
  int64_t timeout_ms = 30000;
  std::vector<std::string> allowed_tools;
  int32_t max_concurrency = 0;   // calls in flight to this server at once, 0 = no limit
  int32_t retries = 2;           // extra attempts of an idempotent tool's failed call, 0..10
  std::map<std::string, ToolSettingsConfig> tools;  // by the server's tool name
};

/// An HTTP endpoint lent to agents as BUILTIN tool "http:<name>" (docs/tools.md).
struct HttpToolConfig {
  std::string name;
  std::string description;
  std::string method = "POST";                 // GET | POST | PUT | PATCH | DELETE
  std::string url;                             // template with {argument} placeholders
  std::map<std::string, std::string> headers;  // values may be "env:NAME"
  std::string parameters_json_schema;          // JSON Schema object of the arguments
  int64_t timeout_ms = 30000;
  int32_t max_concurrency = 0;
  bool idempotent = false;
  int32_t retries = 2;
};

struct RouterConfig {
  int32_t max_retries = 2;             // extra attempts per model, 0..10
  int64_t initial_backoff_ms = 100;    // > 0
  int64_t max_backoff_ms = 5000;       // >= initial_backoff_ms
  int32_t breaker_failures = 5;        // consecutive failures that open a deployment's breaker, >= 1
  int64_t breaker_cooldown_ms = 10000; // open → half-open, > 0
};

struct StoreConfig {
  std::string type = "rocksdb";                        // rocksdb | postgres
  std::string postgres_dsn_env = "AGENTD_POSTGRES_DSN";
  /// Shared stores (postgres): a replica whose heartbeat is older than this is taken for gone
  /// and its running turns are recorded as failed by the others. Heartbeats every third of it.
  int64_t replica_ttl_seconds = 10;
};

/// TLS for the gRPC listener. cert_file and key_file go together; client_ca_file (needs both)
/// turns on mTLS: clients must present a certificate signed by that CA.
struct TlsConfig {
  std::string cert_file;       // PEM server certificate chain
  std::string key_file;        // PEM private key of cert_file
  std::string client_ca_file;  // PEM CA bundle for client certificates (empty = no mTLS)
  bool enabled() const { return !cert_file.empty(); }
};

struct Config {
  std::string listen = "127.0.0.1:7700";
  std::string data_dir = "./data";
  std::string durability = "sync";   // sync | relaxed | none (testing only: no WAL, acknowledged
                                     // turns are lost on a crash; the crash test's control run)
  std::string metrics_listen;        // empty = off
  std::string health_listen;         // plaintext grpc.health.v1 only (kubelet probes); empty = off
  std::string http_listen;           // empty = off
  std::string log_level = "info";    // trace|debug|info|warn|error
  std::string log_format = "text";   // text | json (one JSON object per line)
  int64_t drain_grace_ms = 20000;    // SIGTERM: how long in-flight turns may finish, >= 0
  int64_t max_message_bytes = 16 * 1024 * 1024;  // gRPC max receive/send size, 1 MiB..256 MiB
  int32_t default_max_steps_per_turn = 8;        // for agents that leave it 0, 1..1000
  int64_t history_cache_sessions = 4096;         // sessions whose logs stay in memory, >= 0
  int32_t turn_threads = 32;                     // workers running turns (commits block), 1..1024
  TlsConfig tls;
  bool allow_plaintext = false;  // serve plaintext on a non-loopback listen (behind a TLS proxy)
  int32_t audit_retention_days = 90;  // audit records older than this are deleted, 1..3650
  std::string backup_dir;  // AdminService backups when a request names none (absolute; empty = none)
  StoreConfig store;
  RouterConfig router;
  std::vector<BackendConfig> backends;
  std::vector<ModelConfig> models;
  std::vector<McpServerConfig> mcp_servers;
  std::vector<HttpToolConfig> http_tools;
  // Server-side tool outputs longer than this are cut, with a visible marker, 1 KiB..16 MiB.
  int64_t max_tool_result_bytes = 64 * 1024;
};

/// Parses YAML text. Unknown keys, wrong types and out-of-range values are INVALID_ARGUMENT
/// with the offending key's path (e.g. "backends[0].timeout_ms: must be > 0").
absl::StatusOr<Config> ParseConfig(const std::string& yaml_text);

/// Reads and parses `path`; NOT_FOUND / INVALID_ARGUMENT with the path in the message.
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

/// Cross-field checks (backend/model references, duplicate names, required fields, the TLS
/// pairing and the plaintext rule of CheckPlaintextAllowed).
absl::Status ValidateConfig(const Config& config);

/// True when the host of `listen` (HOST:PORT, [V6]:PORT, or unix:PATH) only accepts local
/// connections: 127.0.0.0/8, ::1, localhost, or a unix socket.
bool IsLocalListenAddress(const std::string& listen);

/// Without tls.cert_file, plaintext gRPC is served only on a local listen address, unless
/// allow_plaintext is set (a TLS-terminating proxy in front). INVALID_ARGUMENT otherwise,
/// with a message telling the operator what to set.
absl::Status CheckPlaintextAllowed(const Config& config);

}  // namespace agentd::server
