// YAML config loading. Every struct is read by one function in which each field is one line of
// a `Fields` reader: the reader checks the type and bounds, records the first error with the
// field's full key path, and remembers which keys were consumed so unknown ones are reported.
#include "server/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <limits>
#include <set>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "server/config_fields.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/yaml.h"

namespace agentd::server {
namespace {

using namespace config_internal;  // NOLINT: the loader's own helpers

absl::Status ReadStore(const YAML::Node& node, const std::string& path, StoreConfig* s) {
  Fields f(node, path);
  f.OneOf("type", &s->type, {"rocksdb", "postgres"});
  f.Str("postgres_dsn_env", &s->postgres_dsn_env);
  f.Int("replica_ttl_seconds", &s->replica_ttl_seconds, 1, 3600);
  return f.Finish();
}

absl::Status ReadBackend(const YAML::Node& node, const std::string& path, BackendConfig* b) {
  Fields f(node, path);
  f.Str("name", &b->name);
  f.Str("type", &b->type);
  f.Str("base_url", &b->base_url);
  f.Str("api_key_env", &b->api_key_env);
  f.Int("timeout_ms", &b->timeout_ms, 1);
  f.Int("max_concurrency", &b->max_concurrency, 1);
  f.StrMap("headers", &b->headers);
  f.Bool("tls_verify", &b->tls_verify);
  return f.Finish();
}

absl::Status ReadDeployment(const YAML::Node& node, const std::string& path, DeploymentConfig* d) {
  Fields f(node, path);
  f.Str("backend", &d->backend);
  f.Str("model", &d->model);
  f.Int("weight", &d->weight, 1);
  return f.Finish();
}

absl::Status ReadPrice(const YAML::Node& node, const std::string& path, PriceConfig* p) {
  Fields f(node, path);
  f.Double("input_per_mtok", &p->input_per_mtok, 0);
  f.Double("output_per_mtok", &p->output_per_mtok, 0);
  return f.Finish();
}

absl::Status ReadModel(const YAML::Node& node, const std::string& path, ModelConfig* m) {
  Fields f(node, path);
  f.Str("name", &m->name);
  f.List<DeploymentConfig>("deployments", &m->deployments, ReadDeployment);
  f.StrList("fallback", &m->fallback);
  f.Int("context_window", &m->context_window, 0);
  f.Struct<PriceConfig>("price", &m->price, ReadPrice);
  return f.Finish();
}

absl::Status ReadRouter(const YAML::Node& node, const std::string& path, RouterConfig* r) {
  Fields f(node, path);
  f.Int("max_retries", &r->max_retries, 0, 10);
  f.Int("initial_backoff_ms", &r->initial_backoff_ms, 1);
  f.Int("max_backoff_ms", &r->max_backoff_ms, 1);
  f.Int("breaker_failures", &r->breaker_failures, 1);
  f.Int("breaker_cooldown_ms", &r->breaker_cooldown_ms, 1);
  return f.Finish();
}

absl::Status ReadTls(const YAML::Node& node, const std::string& path, TlsConfig* t) {
  Fields f(node, path);
  f.Str("cert_file", &t->cert_file);
  f.Str("key_file", &t->key_file);
  f.Str("client_ca_file", &t->client_ca_file);
  return f.Finish();
}

absl::Status ReadTop(const YAML::Node& node, Config* c) {
  Fields f(node, "");
  f.Str("listen", &c->listen);
  f.Str("data_dir", &c->data_dir);
  f.OneOf("durability", &c->durability, {"sync", "relaxed", "none"});
  f.Str("metrics_listen", &c->metrics_listen);
  f.Str("health_listen", &c->health_listen);
  f.Str("http_listen", &c->http_listen);
  f.OneOf("log_level", &c->log_level, {"trace", "debug", "info", "warn", "error"});
  f.OneOf("log_format", &c->log_format, {"text", "json"});
  f.Int("drain_grace_ms", &c->drain_grace_ms, 0);
  f.Int("max_message_bytes", &c->max_message_bytes, kMiB, 256 * kMiB);
  f.Int("default_max_steps_per_turn", &c->default_max_steps_per_turn, 1, 1000);
  f.Int("history_cache_sessions", &c->history_cache_sessions, 0, 10000000);
  f.Int("turn_threads", &c->turn_threads, 1, 1024);
  f.Struct<TlsConfig>("tls", &c->tls, ReadTls);
  f.Bool("allow_plaintext", &c->allow_plaintext);
  f.Int("audit_retention_days", &c->audit_retention_days, 1, 3650);
  f.Str("backup_dir", &c->backup_dir);
  f.Struct<StoreConfig>("store", &c->store, ReadStore);
  f.Struct<RouterConfig>("router", &c->router, ReadRouter);
  f.List<BackendConfig>("backends", &c->backends, ReadBackend);
  f.List<ModelConfig>("models", &c->models, ReadModel);
  f.List<McpServerConfig>("mcp_servers", &c->mcp_servers, ReadMcpServer);
  f.List<HttpToolConfig>("http_tools", &c->http_tools, ReadHttpTool);
  f.Int("max_tool_result_bytes", &c->max_tool_result_bytes, 1024, 16 * kMiB);
  return f.Finish();
}

// ---- Cross-field validation ----------------------------------------------------------------

absl::Status ValidateBackend(const BackendConfig& b, const std::string& path) {
  if (b.name.empty()) return Invalid(KeyPath(path, "name"), "must not be empty");
  if (b.type != "openai" && b.type != "echo" && b.type != "scripted") {
    return Invalid(KeyPath(path, "type"),
                   absl::StrCat("must be one of openai, echo, scripted, got \"", b.type, "\""));
  }
  if (b.type == "openai" && !IsHttpUrl(b.base_url)) {
    return Invalid(KeyPath(path, "base_url"), "an http:// or https:// URL is required for openai");
  }
  if (!b.api_key_env.empty()) {
    AGENTD_RETURN_IF_ERROR(RequireEnv(KeyPath(path, "api_key_env"), b.api_key_env));
  }
  return ValidateHeaders(KeyPath(path, "headers"), b.headers);
}

absl::Status ValidateBackends(const std::vector<BackendConfig>& backends) {
  std::set<std::string> names;
  for (size_t i = 0; i < backends.size(); ++i) {
    const std::string path = IndexPath("backends", i);
    AGENTD_RETURN_IF_ERROR(ValidateBackend(backends[i], path));
    if (!names.insert(backends[i].name).second) {
      return Invalid(KeyPath(path, "name"),
                     absl::StrCat("duplicate backend \"", backends[i].name, "\""));
    }
  }
  return absl::OkStatus();
}

const BackendConfig* FindBackend(const Config& c, const std::string& name) {
  for (const BackendConfig& b : c.backends) {
    if (b.name == name) return &b;
  }
  return nullptr;
}

absl::Status ValidateDeployments(const Config& c, const ModelConfig& m, const std::string& path) {
  if (m.deployments.empty()) return Invalid(path, "at least one deployment is required");
  for (size_t i = 0; i < m.deployments.size(); ++i) {
    const DeploymentConfig& d = m.deployments[i];
    const std::string dpath = IndexPath(path, i);
    const BackendConfig* b = FindBackend(c, d.backend);
    if (b == nullptr) {
      return Invalid(KeyPath(dpath, "backend"),
                     absl::StrCat("unknown backend \"", d.backend, "\""));
    }
    if (b->type == "openai" && d.model.empty()) {
      return Invalid(KeyPath(dpath, "model"), "must not be empty for an openai backend");
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateFallbacks(const ModelConfig& m, const std::set<std::string>& models,
                               const std::string& path) {
  for (size_t i = 0; i < m.fallback.size(); ++i) {
    const std::string& f = m.fallback[i];
    if (f == m.name) {
      return Invalid(IndexPath(path, i),
                     absl::StrCat("model \"", f, "\" cannot fall back to itself"));
    }
    if (f != "echo" && models.count(f) == 0) {
      return Invalid(IndexPath(path, i), absl::StrCat("unknown model \"", f, "\""));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateModels(const Config& c) {
  std::set<std::string> names;
  for (size_t i = 0; i < c.models.size(); ++i) {
    const ModelConfig& m = c.models[i];
    const std::string path = IndexPath("models", i);
    if (m.name.empty()) return Invalid(KeyPath(path, "name"), "must not be empty");
    if (m.name == "echo") {
      return Invalid(KeyPath(path, "name"), "\"echo\" is reserved for the built-in model");
    }
    if (!names.insert(m.name).second) {
      return Invalid(KeyPath(path, "name"), absl::StrCat("duplicate model \"", m.name, "\""));
    }
    AGENTD_RETURN_IF_ERROR(ValidateDeployments(c, m, KeyPath(path, "deployments")));
  }
  for (size_t i = 0; i < c.models.size(); ++i) {
    const std::string path = KeyPath(IndexPath("models", i), "fallback");
    AGENTD_RETURN_IF_ERROR(ValidateFallbacks(c.models[i], names, path));
  }
  return absl::OkStatus();
}

absl::Status ValidateTls(const TlsConfig& tls) {
  if (!tls.cert_file.empty() && tls.key_file.empty()) {
    return Invalid("tls.key_file", "must be set when tls.cert_file is set");
  }
  if (tls.cert_file.empty() && !tls.key_file.empty()) {
    return Invalid("tls.cert_file", "must be set when tls.key_file is set");
  }
  if (!tls.client_ca_file.empty() && tls.cert_file.empty()) {
    return Invalid("tls.client_ca_file",
                   "client certificates (mTLS) need TLS: set tls.cert_file and tls.key_file");
  }
  return absl::OkStatus();
}

// The host part of HOST:PORT or [HOST]:PORT (brackets removed); the whole string if no port.
std::string ListenHost(const std::string& listen) {
  if (absl::StartsWith(listen, "[")) {
    const size_t close = listen.find(']');
    return close == std::string::npos ? listen : listen.substr(1, close - 1);
  }
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return listen;
  // More than one colon without brackets: a bare IPv6 address, no port.
  if (listen.find(':') != colon) return listen;
  return listen.substr(0, colon);
}

}  // namespace

bool IsLocalListenAddress(const std::string& listen) {
  if (absl::StartsWith(listen, "unix:") || absl::StartsWith(listen, "unix-abstract:")) return true;
  const std::string host = ListenHost(listen);
  if (absl::EqualsIgnoreCase(host, "localhost")) return true;
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    // ::ffff:127.x.y.z
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

absl::Status CheckPlaintextAllowed(const Config& config) {
  if (config.tls.enabled() || config.allow_plaintext || IsLocalListenAddress(config.listen)) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "refusing to serve plaintext gRPC on ", config.listen,
      ": set tls.cert_file/tls.key_file, or allow_plaintext: true behind a TLS-terminating "
      "proxy"));
}

namespace {

/// Records where each document starts. yaml-cpp 0.7's LoadAll never returns on some malformed
/// text (a stray ',' at the top level: every call yields an empty document without consuming
/// anything, so it loops and allocates forever); ParseConfig counts documents with this instead.
class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

}  // namespace

absl::StatusOr<Config> ParseConfig(const std::string& yaml_text) {
  try {
    std::istringstream in(yaml_text);
    YAML::Parser parser(in);
    DocumentStarts docs;
    while (docs.starts.size() < 2 && parser.HandleNextDocument(docs)) {
    }
    if (docs.starts.size() > 1) {
      const YAML::Mark& m = docs.starts[1];
      if (m.pos == docs.starts[0].pos) {  // the parser did not advance
        return absl::InvalidArgumentError(absl::StrCat("YAML syntax error at line ", m.line + 1,
                                                       ", column ", m.column + 1,
                                                       ": unexpected character"));
      }
      return absl::InvalidArgumentError("expected one YAML document, got several");
    }
    Config config;
    if (!docs.starts.empty()) AGENTD_RETURN_IF_ERROR(ReadTop(YAML::Load(yaml_text), &config));
    return config;
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return absl::InvalidArgumentError(absl::StrCat("YAML error: ", e.msg));
    return absl::InvalidArgumentError(absl::StrCat("YAML syntax error at line ", e.mark.line + 1,
                                                   ", column ", e.mark.column + 1, ": ", e.msg));
  }
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const std::string reason = std::strerror(errno);
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat("config file ", path, ": not found"));
    }
    return absl::InvalidArgumentError(absl::StrCat("config file ", path, ": ", reason));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat("config file ", path, ": not a regular file"));
  }
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (in.is_open()) text << in.rdbuf();
  if (!in.is_open() || in.bad()) {
    return absl::InvalidArgumentError(absl::StrCat("config file ", path, ": cannot be read"));
  }
  absl::StatusOr<Config> config = ParseConfig(text.str());
  if (!config.ok()) {
    return absl::Status(config.status().code(),
                        absl::StrCat("config file ", path, ": ", config.status().message()));
  }
  return config;
}

absl::Status ValidateConfig(const Config& config) {
  if (config.listen.empty()) return Invalid("listen", "must not be empty");
  if (config.data_dir.empty()) return Invalid("data_dir", "must not be empty");
  if (!config.backup_dir.empty() && config.backup_dir.front() != '/') {
    return Invalid("backup_dir", "must be an absolute path");
  }
  AGENTD_RETURN_IF_ERROR(ValidateTls(config.tls));
  AGENTD_RETURN_IF_ERROR(CheckPlaintextAllowed(config));
  if (config.store.type == "postgres") {
    AGENTD_RETURN_IF_ERROR(RequireEnv("store.postgres_dsn_env", config.store.postgres_dsn_env));
  }
  if (config.router.max_backoff_ms < config.router.initial_backoff_ms) {
    return Invalid("router.max_backoff_ms", "must be >= router.initial_backoff_ms");
  }
  AGENTD_RETURN_IF_ERROR(ValidateBackends(config.backends));
  AGENTD_RETURN_IF_ERROR(ValidateModels(config));
  return ValidateToolServers(config);
}

}  // namespace agentd::server
