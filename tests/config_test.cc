#include "server/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>
#include <string>

#include "testing/temp_dir.h"

namespace agentd::server {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The example from API.md "Configuration file", plus the documented optional sections.
constexpr char kExample[] = R"yaml(
listen: 127.0.0.1:7700
data_dir: ./data
durability: sync            # sync (fsync every acknowledged write) | relaxed
store:
  type: rocksdb             # rocksdb (default, embedded in data_dir) | postgres
  postgres_dsn_env: AGENTD_POSTGRES_DSN   # type postgres: libpq connection string, read from this env var
backends:
  - name: local-vllm
    type: openai            # OpenAI-compatible /v1/chat/completions; also: echo
    base_url: http://127.0.0.1:8000/v1
    api_key_env: OPENAI_API_KEY   # read from the environment, never logged
    timeout_ms: 60000
    max_concurrency: 256
models:
  - name: small             # the name agents use in `model`
    deployments:
      - { backend: local-vllm, model: Qwen2.5-7B-Instruct, weight: 1 }
    fallback: [echo]
    context_window: 32768
    price: { input_per_mtok: 0.15, output_per_mtok: 0.60 }
metrics_listen: 127.0.0.1:9464
http_listen: 127.0.0.1:7701
mcp_servers:
  - name: everything
    url: http://127.0.0.1:3001/mcp
    headers: { Authorization: "env:EVERYTHING_TOKEN" }   # "env:NAME" values come from the environment
    timeout_ms: 30000
    allowed_tools: [echo, get-sum]                          # empty or absent = all
)yaml";

// Sets an environment variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { setenv(name, value, 1); }
  ~ScopedEnv() { unsetenv(name_); }

 private:
  const char* name_;
};

// The status of parsing `yaml`, or of validating it when it parses.
absl::Status ParseAndValidate(const std::string& yaml) {
  absl::StatusOr<Config> config = ParseConfig(yaml);
  if (!config.ok()) return config.status();
  return ValidateConfig(*config);
}

// Expects INVALID_ARGUMENT whose message contains every one of `parts`.
void ExpectInvalid(const absl::Status& status, std::initializer_list<const char*> parts) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  for (const char* part : parts) EXPECT_THAT(std::string(status.message()), HasSubstr(part));
}

TEST(ConfigTest, ParsesTheDocumentedExample) {
  absl::StatusOr<Config> config = ParseConfig(kExample);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen, "127.0.0.1:7700");
  EXPECT_EQ(config->data_dir, "./data");
  EXPECT_EQ(config->durability, "sync");
  EXPECT_EQ(config->metrics_listen, "127.0.0.1:9464");
  EXPECT_EQ(config->http_listen, "127.0.0.1:7701");
  EXPECT_EQ(config->store.type, "rocksdb");
  EXPECT_EQ(config->store.postgres_dsn_env, "AGENTD_POSTGRES_DSN");
  ASSERT_EQ(config->backends.size(), 1u);
  const BackendConfig& b = config->backends[0];
  EXPECT_EQ(b.name, "local-vllm");
  EXPECT_EQ(b.type, "openai");
  EXPECT_EQ(b.base_url, "http://127.0.0.1:8000/v1");
  EXPECT_EQ(b.api_key_env, "OPENAI_API_KEY");
  EXPECT_EQ(b.timeout_ms, 60000);
  EXPECT_EQ(b.max_concurrency, 256);
  ASSERT_EQ(config->models.size(), 1u);
  const ModelConfig& m = config->models[0];
  EXPECT_EQ(m.name, "small");
  ASSERT_EQ(m.deployments.size(), 1u);
  EXPECT_EQ(m.deployments[0].backend, "local-vllm");
  EXPECT_EQ(m.deployments[0].model, "Qwen2.5-7B-Instruct");
  EXPECT_EQ(m.deployments[0].weight, 1);
  EXPECT_EQ(m.fallback, std::vector<std::string>{"echo"});
  EXPECT_EQ(m.context_window, 32768);
  EXPECT_DOUBLE_EQ(m.price.input_per_mtok, 0.15);
  EXPECT_DOUBLE_EQ(m.price.output_per_mtok, 0.60);
  ASSERT_EQ(config->mcp_servers.size(), 1u);
  const McpServerConfig& s = config->mcp_servers[0];
  EXPECT_EQ(s.name, "everything");
  EXPECT_EQ(s.url, "http://127.0.0.1:3001/mcp");
  EXPECT_EQ(s.headers.at("Authorization"), "env:EVERYTHING_TOKEN");
  EXPECT_EQ(s.timeout_ms, 30000);
  EXPECT_EQ(s.allowed_tools, (std::vector<std::string>{"echo", "get-sum"}));

  ScopedEnv key("OPENAI_API_KEY", "sk-test");
  ScopedEnv token("EVERYTHING_TOKEN", "t");
  EXPECT_TRUE(ValidateConfig(*config).ok()) << ValidateConfig(*config);
}

TEST(ConfigTest, EmptyAndCommentOnlyFilesGiveDefaults) {
  for (const char* text : {"", "\n\n", "# just a comment\n  # another\n", "---\n"}) {
    absl::StatusOr<Config> config = ParseConfig(text);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_EQ(config->listen, "127.0.0.1:7700");
    EXPECT_EQ(config->data_dir, "./data");
    EXPECT_EQ(config->durability, "sync");
    EXPECT_EQ(config->log_level, "info");
    EXPECT_EQ(config->store.type, "rocksdb");
    EXPECT_EQ(config->max_message_bytes, 16 * 1024 * 1024);
    EXPECT_EQ(config->default_max_steps_per_turn, 8);
    EXPECT_EQ(config->drain_grace_ms, 20000);
    EXPECT_TRUE(config->metrics_listen.empty());
    EXPECT_TRUE(config->backends.empty());
    EXPECT_TRUE(config->models.empty());
    EXPECT_TRUE(ValidateConfig(*config).ok());
  }
}

TEST(ConfigTest, ReadsOptionalScalarsAndDefaultsInsideEntries) {
  absl::StatusOr<Config> config = ParseConfig(R"yaml(
log_level: debug
durability: relaxed
drain_grace_ms: 0
max_message_bytes: 1048576
default_max_steps_per_turn: 1000
backends:
  - name: e
    type: echo
    headers: { X-Team: infra }
    tls_verify: false
models:
  - name: m
    deployments: [{ backend: e }]
)yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->log_level, "debug");
  EXPECT_EQ(config->durability, "relaxed");
  EXPECT_EQ(config->drain_grace_ms, 0);
  EXPECT_EQ(config->max_message_bytes, 1048576);
  EXPECT_EQ(config->default_max_steps_per_turn, 1000);
  EXPECT_EQ(config->backends[0].timeout_ms, 60000);
  EXPECT_EQ(config->backends[0].headers.at("X-Team"), "infra");
  EXPECT_FALSE(config->backends[0].tls_verify);
  EXPECT_EQ(config->models[0].deployments[0].weight, 1);
  EXPECT_TRUE(ValidateConfig(*config).ok()) << ValidateConfig(*config);
}

// Found by fuzz/config_fuzzer: yaml-cpp's LoadAll never returned on a stray top-level ','.
TEST(ConfigTest, StrayTopLevelCommaIsASyntaxErrorNotAHang) {
  for (const char* text : {",isten: 127.0.0.1:7070\n", ",", "listen: a\n---\n,\n"}) {
    auto c = ParseConfig(text);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << c.status();
  }
}

TEST(ConfigTest, UnknownKeysNameTheirPath) {
  ExpectInvalid(ParseConfig("listn: 1.2.3.4:5\n").status(),
                {"unknown key \"listn\" at top level", "did you mean \"listen\""});
  ExpectInvalid(ParseConfig("backends:\n  - name: a\n  - name: b\n    timout_ms: 5\n").status(),
                {"backends[1].timout_ms: unknown key", "line 4"});
  ExpectInvalid(ParseConfig("store: { kind: rocksdb }\n").status(), {"store.kind: unknown key"});
  ExpectInvalid(
      ParseConfig("models:\n  - name: m\n    deployments: [{ backend: b, modle: x }]\n").status(),
      {"models[0].deployments[0].modle: unknown key"});
  ExpectInvalid(ParseConfig("models:\n  - name: m\n    price: { input: 1 }\n").status(),
                {"models[0].price.input: unknown key"});
  ExpectInvalid(ParseConfig("mcp_servers:\n  - name: s\n    urll: x\n").status(),
                {"mcp_servers[0].urll: unknown key"});
}

TEST(ConfigTest, DuplicateKeysAreRejected) {
  ExpectInvalid(ParseConfig("listen: a:1\nlisten: b:2\n").status(), {"listen: duplicate key"});
}

TEST(ConfigTest, WrongTypesNameThePathAndTheExpectedType) {
  ExpectInvalid(ParseConfig("backends:\n  - { name: a, timeout_ms: soon }\n").status(),
                {"backends[0].timeout_ms", "expected an integer", "\"soon\""});
  ExpectInvalid(ParseConfig("backends:\n  name: a\n").status(),
                {"backends: expected a list, got a map"});
  ExpectInvalid(ParseConfig("store: rocksdb\n").status(), {"store: expected a map"});
  ExpectInvalid(ParseConfig("listen: [a, b]\n").status(),
                {"listen: expected a string, got a list"});
  ExpectInvalid(ParseConfig("drain_grace_ms: \"5\"\n").status(),
                {"drain_grace_ms: expected an integer"});
  ExpectInvalid(ParseConfig("drain_grace_ms: 1.5\n").status(),
                {"drain_grace_ms: expected an integer"});
  ExpectInvalid(
      ParseConfig("models:\n  - { name: m, price: { input_per_mtok: cheap } }\n").status(),
      {"models[0].price.input_per_mtok: expected a number"});
  ExpectInvalid(ParseConfig("models:\n  - { name: m, fallback: echo }\n").status(),
                {"models[0].fallback: expected a list"});
  ExpectInvalid(ParseConfig("models:\n  - { name: m, fallback: [[echo]] }\n").status(),
                {"models[0].fallback[0]: expected a string"});
  ExpectInvalid(ParseConfig("backends:\n  - { name: a, tls_verify: maybe }\n").status(),
                {"backends[0].tls_verify: expected true or false"});
  ExpectInvalid(ParseConfig("backends:\n  - { name: a, headers: [x] }\n").status(),
                {"backends[0].headers: expected a map"});
  ExpectInvalid(ParseConfig("backends:\n  - { name: a, headers: { X: [1] } }\n").status(),
                {"backends[0].headers.X: expected a string"});
  ExpectInvalid(ParseConfig("just a string\n").status(), {"top level: expected a map"});
  ExpectInvalid(ParseConfig("backends: [ 1, 2 ]\n").status(), {"backends[0]: expected a map"});
}

TEST(ConfigTest, SyntaxErrorsGiveTheLine) {
  ExpectInvalid(ParseConfig("listen: [unclosed\n").status(), {"YAML syntax error at line"});
}

TEST(ConfigTest, OutOfRangeValuesAreRejected) {
  ExpectInvalid(ParseConfig("backends:\n  - { name: a, timeout_ms: 0 }\n").status(),
                {"backends[0].timeout_ms: must be > 0"});
  ExpectInvalid(ParseConfig("backends:\n  - { name: a, max_concurrency: -1 }\n").status(),
                {"backends[0].max_concurrency: must be > 0"});
  ExpectInvalid(ParseConfig("backends:\n  - { name: a, max_concurrency: 3000000000 }\n").status(),
                {"backends[0].max_concurrency: must be <= 2147483647"});
  ExpectInvalid(
      ParseConfig("models:\n  - { name: m, deployments: [{ backend: b, weight: 0 }] }\n").status(),
      {"models[0].deployments[0].weight"});
  ExpectInvalid(
      ParseConfig("models:\n  - { name: m, price: { output_per_mtok: -0.1 } }\n").status(),
      {"models[0].price.output_per_mtok: must be >= 0"});
  ExpectInvalid(ParseConfig("models:\n  - { name: m, context_window: -1 }\n").status(),
                {"models[0].context_window"});
  ExpectInvalid(ParseConfig("durability: always\n").status(),
                {"durability: must be one of sync, relaxed, none"});
  // `none` (no WAL) exists for the crash test's control run.
  ASSERT_TRUE(ParseConfig("durability: none\n").ok());
  EXPECT_EQ(ParseConfig("durability: none\n")->durability, "none");
  ExpectInvalid(ParseConfig("store: { type: sqlite }\n").status(),
                {"store.type: must be one of rocksdb, postgres"});
  ExpectInvalid(ParseConfig("log_level: loud\n").status(), {"log_level: must be one of"});
  ExpectInvalid(ParseConfig("max_message_bytes: 1000\n").status(),
                {"max_message_bytes: must be between"});
  ExpectInvalid(ParseConfig("max_message_bytes: 268435457\n").status(), {"max_message_bytes"});
  EXPECT_TRUE(ParseConfig("max_message_bytes: 268435456\n").ok());
  ExpectInvalid(ParseConfig("default_max_steps_per_turn: 0\n").status(),
                {"default_max_steps_per_turn"});
  ExpectInvalid(ParseConfig("default_max_steps_per_turn: 1001\n").status(),
                {"default_max_steps_per_turn"});
  ExpectInvalid(ParseConfig("drain_grace_ms: -1\n").status(), {"drain_grace_ms: must be >= 0"});
  ExpectInvalid(ParseConfig("mcp_servers:\n  - { name: s, timeout_ms: 0 }\n").status(),
                {"mcp_servers[0].timeout_ms: must be > 0"});
}

TEST(ConfigTest, ValidateChecksBackends) {
  ExpectInvalid(ParseAndValidate("backends:\n  - { type: echo }\n"),
                {"backends[0].name: must not be empty"});
  ExpectInvalid(
      ParseAndValidate("backends:\n  - { name: a, type: echo }\n  - { name: a, type: echo }\n"),
      {"backends[1].name: duplicate backend \"a\""});
  ExpectInvalid(ParseAndValidate("backends:\n  - { name: a, type: anthropic }\n"),
                {"backends[0].type: must be one of openai, echo, scripted"});
  ExpectInvalid(ParseAndValidate("backends:\n  - { name: a, type: openai }\n"),
                {"backends[0].base_url"});
  ExpectInvalid(ParseAndValidate("backends:\n  - { name: a, type: openai, base_url: ftp://x }\n"),
                {"backends[0].base_url"});
  EXPECT_TRUE(
      ParseAndValidate("backends:\n  - { name: a, type: openai, base_url: https://x/v1 }\n").ok());
  EXPECT_TRUE(ParseAndValidate("backends:\n  - { name: a, type: scripted }\n").ok());
}

TEST(ConfigTest, MissingApiKeyEnvNamesTheVariableButNoSecret) {
  unsetenv("AGENTD_TEST_MISSING_KEY");
  ExpectInvalid(ParseAndValidate("backends:\n  - { name: a, type: openai, base_url: http://h/v1,"
                                 " api_key_env: AGENTD_TEST_MISSING_KEY }\n"),
                {"backends[0].api_key_env", "AGENTD_TEST_MISSING_KEY", "not set"});

  // A header taken from a missing variable: the error names it, and no other variable's value
  // leaks.
  ScopedEnv key("AGENTD_TEST_PRESENT_KEY", "sk-very-secret-value");
  const absl::Status status = ParseAndValidate(
      "backends:\n  - { name: a, type: openai, base_url: http://h/v1,"
      " api_key_env: AGENTD_TEST_PRESENT_KEY, headers: { X-Org: \"env:AGENTD_TEST_MISSING_ORG\" } "
      "}\n");
  ExpectInvalid(status, {"backends[0].headers.X-Org", "AGENTD_TEST_MISSING_ORG"});
  EXPECT_THAT(std::string(status.message()), Not(HasSubstr("sk-very-secret-value")));

  ScopedEnv present("AGENTD_TEST_MISSING_ORG", "org-secret");
  EXPECT_TRUE(ParseAndValidate("backends:\n  - { name: a, type: openai, base_url: http://h/v1,"
                               " api_key_env: AGENTD_TEST_PRESENT_KEY }\n")
                  .ok());
}

constexpr char kTwoBackends[] =
    "backends:\n  - { name: e, type: echo }\n  - { name: o, type: openai, base_url: http://h/v1 "
    "}\n";

TEST(ConfigTest, ValidateChecksModels) {
  const std::string b = kTwoBackends;
  ExpectInvalid(ParseAndValidate(b + "models:\n  - { deployments: [{ backend: e }] }\n"),
                {"models[0].name: must not be empty"});
  ExpectInvalid(
      ParseAndValidate(b + "models:\n  - { name: echo, deployments: [{ backend: e }] }\n"),
      {"models[0].name", "reserved"});
  ExpectInvalid(ParseAndValidate(b + "models:\n  - { name: m, deployments: [{ backend: e }] }\n"
                                     "  - { name: m, deployments: [{ backend: e }] }\n"),
                {"models[1].name: duplicate model \"m\""});
  ExpectInvalid(ParseAndValidate(b + "models:\n  - { name: m }\n"),
                {"models[0].deployments: at least one deployment"});
  ExpectInvalid(
      ParseAndValidate(b +
                       "models:\n  - { name: m, deployments: [{ backend: e }, { backend: x }] }\n"),
      {"models[0].deployments[1].backend: unknown backend \"x\""});
  ExpectInvalid(ParseAndValidate(b + "models:\n  - { name: m, deployments: [{ backend: o }] }\n"),
                {"models[0].deployments[0].model"});
}

TEST(ConfigTest, ValidateChecksFallbacks) {
  const std::string b = kTwoBackends;
  ExpectInvalid(
      ParseAndValidate(
          b + "models:\n  - { name: m, deployments: [{ backend: e }], fallback: [nope] }\n"),
      {"models[0].fallback[0]: unknown model \"nope\""});
  ExpectInvalid(
      ParseAndValidate(
          b + "models:\n  - { name: m, deployments: [{ backend: e }], fallback: [echo, m] }\n"),
      {"models[0].fallback[1]", "itself"});
  // Fallbacks may name a model defined later, and the built-in echo.
  EXPECT_TRUE(
      ParseAndValidate(b + "models:\n"
                           "  - { name: a, deployments: [{ backend: e }], fallback: [b, echo] }\n"
                           "  - { name: b, deployments: [{ backend: o, model: x }] }\n")
          .ok());
}

TEST(ConfigTest, ValidateChecksMcpServers) {
  ExpectInvalid(ParseAndValidate("mcp_servers:\n  - { name: s, url: nope }\n"),
                {"mcp_servers[0].url"});
  ExpectInvalid(ParseAndValidate("mcp_servers:\n  - { name: \"a/b\", url: http://h/mcp }\n"),
                {"mcp_servers[0].name"});
  ExpectInvalid(ParseAndValidate("mcp_servers:\n  - { name: s, url: http://h/mcp }\n"
                                 "  - { name: s, url: http://h/mcp }\n"),
                {"mcp_servers[1].name: duplicate"});
}

TEST(ConfigTest, ValidatePostgresNeedsItsDsnVariable) {
  unsetenv("AGENTD_TEST_DSN");
  ExpectInvalid(ParseAndValidate("store: { type: postgres, postgres_dsn_env: AGENTD_TEST_DSN }\n"),
                {"store.postgres_dsn_env", "AGENTD_TEST_DSN"});
  ScopedEnv dsn("AGENTD_TEST_DSN", "host=/tmp dbname=x");
  EXPECT_TRUE(
      ParseAndValidate("store: { type: postgres, postgres_dsn_env: AGENTD_TEST_DSN }\n").ok());
}

TEST(ConfigTest, ReadsTlsAndAllowPlaintext) {
  absl::StatusOr<Config> config = ParseConfig(R"yaml(
listen: 0.0.0.0:7700
tls:
  cert_file: /etc/agentd/server.crt
  key_file: /etc/agentd/server.key
  client_ca_file: /etc/agentd/clients-ca.crt
allow_plaintext: false
)yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->tls.cert_file, "/etc/agentd/server.crt");
  EXPECT_EQ(config->tls.key_file, "/etc/agentd/server.key");
  EXPECT_EQ(config->tls.client_ca_file, "/etc/agentd/clients-ca.crt");
  EXPECT_TRUE(config->tls.enabled());
  EXPECT_FALSE(config->allow_plaintext);
  // Files are read when the server starts (server/tls.h), not by ValidateConfig.
  EXPECT_TRUE(ValidateConfig(*config).ok()) << ValidateConfig(*config);

  absl::StatusOr<Config> defaults = ParseConfig("");
  ASSERT_TRUE(defaults.ok());
  EXPECT_FALSE(defaults->tls.enabled());
  EXPECT_TRUE(defaults->tls.client_ca_file.empty());
  EXPECT_FALSE(defaults->allow_plaintext);
}

TEST(ConfigTest, TlsKeysAreCheckedLikeEveryOtherKey) {
  ExpectInvalid(ParseConfig("tls: { cert_fle: a }\n").status(),
                {"tls.cert_fle: unknown key", "did you mean \"cert_file\""});
  ExpectInvalid(ParseConfig("tls: /etc/cert.pem\n").status(), {"tls: expected a map"});
  ExpectInvalid(ParseConfig("tls: { cert_file: [a, b] }\n").status(),
                {"tls.cert_file: expected a string, got a list"});
  ExpectInvalid(ParseConfig("allow_plaintext: yes please\n").status(),
                {"allow_plaintext: expected true or false"});
  ExpectInvalid(ParseConfig("allow_plaintext: \"true\"\n").status(),
                {"allow_plaintext: expected true or false"});
  ExpectInvalid(ParseConfig("allow_plain_text: true\n").status(),
                {"unknown key \"allow_plain_text\"", "did you mean \"allow_plaintext\""});
}

TEST(ConfigTest, CertAndKeyGoTogether) {
  ExpectInvalid(ParseAndValidate("tls: { cert_file: s.crt }\n"),
                {"tls.key_file: must be set when tls.cert_file is set"});
  ExpectInvalid(ParseAndValidate("tls: { key_file: s.key }\n"),
                {"tls.cert_file: must be set when tls.key_file is set"});
  ExpectInvalid(ParseAndValidate("tls: { client_ca_file: ca.crt }\n"),
                {"tls.client_ca_file", "set tls.cert_file and tls.key_file"});
  EXPECT_TRUE(ParseAndValidate("tls: { cert_file: s.crt, key_file: s.key }\n").ok());
}

TEST(ConfigTest, PlaintextOnlyOnLoopbackUnlessAllowed) {
  for (const char* local : {"127.0.0.1:7700", "127.8.9.10:1", "localhost:7700", "LocalHost:1",
                            "[::1]:7700", "[::ffff:127.0.0.1]:7700", "unix:/run/agentd.sock"}) {
    EXPECT_TRUE(IsLocalListenAddress(local)) << local;
    Config c;
    c.listen = local;
    EXPECT_TRUE(ValidateConfig(c).ok()) << local << ": " << ValidateConfig(c);
  }
  for (const char* remote : {"0.0.0.0:7700", "[::]:7700", ":7700", "10.0.0.5:7700",
                             "128.0.0.1:7700", "agentd.internal:7700", "localhost.evil.com:1",
                             "[::2]:7700"}) {
    EXPECT_FALSE(IsLocalListenAddress(remote)) << remote;
    Config c;
    c.listen = remote;
    const absl::Status st = ValidateConfig(c);
    ExpectInvalid(st, {"refusing to serve plaintext gRPC on ", remote,
                       "set tls.cert_file/tls.key_file, or allow_plaintext: true behind a "
                       "TLS-terminating proxy"});
    c.allow_plaintext = true;
    EXPECT_TRUE(ValidateConfig(c).ok()) << remote;
    c.allow_plaintext = false;
    c.tls.cert_file = "s.crt";
    c.tls.key_file = "s.key";
    EXPECT_TRUE(ValidateConfig(c).ok()) << remote;
  }
  ExpectInvalid(ParseAndValidate("listen: 0.0.0.0:7700\n"),
                {"refusing to serve plaintext gRPC on 0.0.0.0:7700"});
  EXPECT_TRUE(ParseAndValidate("listen: 0.0.0.0:7700\nallow_plaintext: true\n").ok());
}

TEST(ConfigTest, LoadConfigFileReadsAndReportsThePath) {
  agentd::testing::TempDir dir;
  const std::string path = dir.Sub("agentd.yaml");
  std::ofstream(path) << "listen: 0.0.0.0:9000\n";
  absl::StatusOr<Config> config = LoadConfigFile(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen, "0.0.0.0:9000");

  std::ofstream(path) << "listen: 0.0.0.0:9000\nbogus: 1\n";
  ExpectInvalid(LoadConfigFile(path).status(), {path.c_str(), "unknown key \"bogus\""});

  const absl::Status missing = LoadConfigFile(dir.Sub("absent.yaml")).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.message()), HasSubstr("absent.yaml"));
  ExpectInvalid(LoadConfigFile(dir.path()).status(), {"not a regular file"});
}

}  // namespace
}  // namespace agentd::server
