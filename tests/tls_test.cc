// TLS and mTLS on the gRPC listener, with certificates made by the openssl CLI for the test:
// a CA, a server certificate for 127.0.0.1/localhost, a client certificate, and an unrelated CA
// with its own client certificate. Also the startup checks (server/tls.h BuildServerCredentials).
#include "server/tls.h"

#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <thread>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"
#include "testing/server_harness.h"

namespace agentd {
namespace {

using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// PEM files in a temp dir, made once for the whole suite.
class Certs {
 public:
  Certs() {
    ok_ = MakeCa("ca") && MakeCa("other-ca") &&
          MakeLeaf("server", "ca", "localhost",
                   "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n") &&
          MakeLeaf("client", "ca", "agentd-test-client", "extendedKeyUsage=clientAuth\n") &&
          MakeLeaf("stranger", "other-ca", "agentd-test-stranger",
                   "extendedKeyUsage=clientAuth\n");
  }
  bool ok() const { return ok_; }
  std::string Path(const std::string& name) const { return dir_.Sub(name); }
  std::string Pem(const std::string& name) const { return ReadAll(Path(name)); }
  const std::string& Dir() const { return dir_.path(); }

 private:
  bool Run(const std::string& command) {
    const std::string full = command + " >" + Path("openssl.log") + " 2>&1";
    if (std::system(full.c_str()) == 0) return true;
    ADD_FAILURE() << "openssl failed: " << command << "\n" << ReadAll(Path("openssl.log"));
    return false;
  }

  static std::string Quote(const std::string& s) { return "'" + s + "'"; }

  bool MakeCa(const std::string& name) {
    return Run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
               " -subj '/CN=agentd test " + name + "' -keyout " + Quote(Path(name + ".key")) +
               " -out " + Quote(Path(name + ".crt")) +
               " -addext basicConstraints=critical,CA:TRUE"
               " -addext keyUsage=critical,keyCertSign,cRLSign");
  }

  bool MakeLeaf(const std::string& name, const std::string& ca, const std::string& cn,
                const std::string& extensions) {
    std::ofstream(Path(name + ".ext")) << "basicConstraints=CA:FALSE\n" << extensions;
    return Run("openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
               " -subj '/CN=" + cn + "' -keyout " + Quote(Path(name + ".key")) + " -out " +
               Quote(Path(name + ".csr"))) &&
           Run("openssl x509 -req -days 2 -in " + Quote(Path(name + ".csr")) + " -CA " +
               Quote(Path(ca + ".crt")) + " -CAkey " + Quote(Path(ca + ".key")) +
               " -CAcreateserial -CAserial " + Quote(Path(ca + ".srl")) + " -extfile " +
               Quote(Path(name + ".ext")) + " -out " + Quote(Path(name + ".crt")));
  }

  testing::TempDir dir_;
  bool ok_ = false;
};

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { certs_ = new Certs(); }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(certs_->ok()); }

  // Server config: TLS with the server certificate; mTLS with `client_ca` if not empty.
  static std::function<void(server::Config*)> WithTls(const std::string& client_ca = "") {
    return [client_ca](server::Config* c) {
      c->tls.cert_file = certs_->Path("server.crt");
      c->tls.key_file = certs_->Path("server.key");
      if (!client_ca.empty()) c->tls.client_ca_file = certs_->Path(client_ca);
    };
  }

  // TLS client credentials trusting `ca`, presenting `client` ("" = no certificate).
  static std::shared_ptr<grpc::ChannelCredentials> Client(const std::string& ca,
                                                          const std::string& client = "") {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = certs_->Pem(ca + ".crt");
    if (!client.empty()) {
      o.pem_cert_chain = certs_->Pem(client + ".crt");
      o.pem_private_key = certs_->Pem(client + ".key");
    }
    return grpc::SslCredentials(o);
  }

  // Health over `channel`: OK and SERVING, or the call's status.
  static grpc::Status Health(const std::shared_ptr<grpc::Channel>& channel) {
    auto stub = grpc::health::v1::Health::NewStub(channel);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status st = stub->Check(testing::Ctx(5).get(), {}, &resp);
    if (st.ok() && resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
      return grpc::Status(grpc::StatusCode::UNKNOWN, "health: not SERVING");
    }
    return st;
  }

  static grpc::Status ListAgents(const std::shared_ptr<grpc::Channel>& channel) {
    v1::ListAgentsResponse resp;
    return v1::AgentService::NewStub(channel)->ListAgents(testing::Ctx(5).get(),
                                                          v1::ListAgentsRequest(), &resp);
  }

  static Certs* certs_;
};

Certs* TlsTest::certs_ = nullptr;

TEST_F(TlsTest, TlsClientReachesHealthAndAuthenticatedRpcs) {
  testing::ServerHarness h(WithTls());
  auto channel = h.NewChannel(Client("ca"));
  grpc::Status st = Health(channel);
  ASSERT_TRUE(st.ok()) << st.error_code() << ": " << st.error_message();
  v1::CreateAgentRequest create;
  create.mutable_agent()->set_model("echo");
  v1::Agent agent;
  st = v1::AgentService::NewStub(channel)->CreateAgent(testing::Ctx().get(), create, &agent);
  ASSERT_TRUE(st.ok()) << st.error_message();
  st = ListAgents(channel);
  EXPECT_TRUE(st.ok()) << st.error_message();

  // The certificate names localhost too.
  auto by_name = testing::AuthChannel("localhost:" + std::to_string(h.server().port()),
                                      Client("ca"), h.admin_key());
  EXPECT_TRUE(Health(by_name).ok());

  // TLS does not replace the API key.
  auto anonymous = grpc::CreateChannel(h.address(), Client("ca"));
  EXPECT_EQ(ListAgents(anonymous).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(TlsTest, PlaintextAndUntrustingClientsCannotConnect) {
  testing::ServerHarness h(WithTls());
  EXPECT_FALSE(Health(h.NewChannel(grpc::InsecureChannelCredentials())).ok());
  EXPECT_FALSE(ListAgents(h.NewChannel(grpc::InsecureChannelCredentials())).ok());
  EXPECT_FALSE(Health(h.NewChannel(Client("other-ca"))).ok());
}

TEST_F(TlsTest, HealthListenServesPlaintextHealthOnlyForProbes) {
  testing::ServerHarness h([](server::Config* c) {
    WithTls()(c);
    c->health_listen = "127.0.0.1:0";
  });
  const std::string health_address = h.server().health_address();
  ASSERT_FALSE(health_address.empty());
  ASSERT_NE(health_address, h.address());
  // Plaintext, no key: what a kubelet gRPC probe does.
  auto probe = grpc::CreateChannel(health_address, grpc::InsecureChannelCredentials());
  grpc::Status st = Health(probe);
  EXPECT_TRUE(st.ok()) << st.error_code() << ": " << st.error_message();
  // Nothing else is served there, whatever key is sent.
  EXPECT_EQ(ListAgents(testing::AuthChannel(health_address, grpc::InsecureChannelCredentials(),
                                            h.admin_key()))
                .error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  // The API port still needs TLS.
  EXPECT_FALSE(Health(h.NewChannel(grpc::InsecureChannelCredentials())).ok());
  // Draining flips the probe to NOT_SERVING, then the listener closes.
  std::thread stopper([&] { h.server().Shutdown(absl::Seconds(1)); });
  bool saw_not_serving = false;
  for (int i = 0; i < 200 && !saw_not_serving; ++i) {
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status check =
        grpc::health::v1::Health::NewStub(probe)->Check(testing::Ctx(1).get(), {}, &resp);
    saw_not_serving = !check.ok() ||
                      resp.status() == grpc::health::v1::HealthCheckResponse::NOT_SERVING;
    if (!saw_not_serving) absl::SleepFor(absl::Milliseconds(5));
  }
  stopper.join();
  EXPECT_TRUE(saw_not_serving);
  EXPECT_FALSE(Health(probe).ok());
}

TEST_F(TlsTest, MutualTlsNeedsAClientCertificateFromTheClientCa) {
  testing::ServerHarness h(WithTls("ca.crt"));
  EXPECT_FALSE(Health(h.NewChannel(Client("ca"))).ok()) << "no client certificate";
  EXPECT_FALSE(Health(h.NewChannel(Client("ca", "stranger"))).ok()) << "signed by another CA";
  EXPECT_FALSE(Health(h.NewChannel(grpc::InsecureChannelCredentials())).ok());

  auto channel = h.NewChannel(Client("ca", "client"));
  grpc::Status st = Health(channel);
  ASSERT_TRUE(st.ok()) << st.error_code() << ": " << st.error_message();
  st = ListAgents(channel);
  EXPECT_TRUE(st.ok()) << st.error_message();
}

// Runs agentctl with `args` (environment: AGENTD_API_KEY unset, plus `env` if given); returns
// the exit code and fills `out` with stdout and stderr.
int Agentctl(const std::string& args, std::string* out, const std::string& env = "") {
  const std::string command = "env -u AGENTD_API_KEY -u AGENTD_TLS_CA " + env + " " +
                              AGENTCTL_BINARY + " " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out->append(buf, n);
  const int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST_F(TlsTest, AgentctlSendsTheKeyOverMutualTls) {
  testing::ServerHarness h(WithTls("ca.crt"));
  const std::string tls = " --addr " + h.address() + " --tls-ca " + certs_->Path("ca.crt") +
                          " --tls-cert " + certs_->Path("client.crt") + " --tls-key " +
                          certs_->Path("client.key");
  std::string out;
  ASSERT_EQ(Agentctl(tls + " --api-key " + h.admin_key() +
                         " agent create --name tls-agent --model echo",
                     &out),
            0)
      << out;
  out.clear();
  ASSERT_EQ(Agentctl(tls + " agent list -o json", &out, "AGENTD_API_KEY=" + h.admin_key()), 0)
      << out;
  EXPECT_THAT(out, HasSubstr("tls-agent"));

  out.clear();
  EXPECT_EQ(Agentctl(tls + " agent list", &out), 1);
  EXPECT_THAT(out, HasSubstr("UNAUTHENTICATED"));
  EXPECT_THAT(out, HasSubstr("set --api-key or AGENTD_API_KEY"));

  out.clear();
  const std::string wrong = "agd-wrong-key-for-the-agentctl-test";
  EXPECT_EQ(Agentctl(tls + " --api-key " + wrong + " agent list", &out), 1);
  EXPECT_THAT(out, HasSubstr("UNAUTHENTICATED"));
  EXPECT_EQ(out.find(wrong), std::string::npos) << "the key was echoed: " << out;

  // Without the client certificate the handshake fails.
  out.clear();
  EXPECT_EQ(Agentctl(" --addr " + h.address() + " --api-key " + h.admin_key() + " agent list",
                     &out, "AGENTD_TLS_CA=" + certs_->Path("ca.crt")),
            1);
  EXPECT_THAT(out, HasSubstr("UNAVAILABLE"));
  EXPECT_EQ(out.find(h.admin_key()), std::string::npos) << out;
}

TEST_F(TlsTest, BuildServerCredentialsChecksTheFiles) {
  server::Config c;
  c.tls.cert_file = certs_->Path("server.crt");
  c.tls.key_file = certs_->Path("server.key");
  auto creds = server::BuildServerCredentials(c);
  ASSERT_TRUE(creds.ok()) << creds.status();
  EXPECT_NE(*creds, nullptr);
  c.tls.client_ca_file = certs_->Path("ca.crt");
  EXPECT_TRUE(server::BuildServerCredentials(c).ok());

  auto expect_error = [](const server::Config& config, std::initializer_list<std::string> parts) {
    const absl::Status st = server::BuildServerCredentials(config).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    for (const std::string& part : parts) EXPECT_THAT(std::string(st.message()), HasSubstr(part));
  };
  server::Config missing = c;
  missing.tls.cert_file = certs_->Path("absent.crt");
  expect_error(missing, {"tls.cert_file", certs_->Path("absent.crt"), "cannot be read",
                         "No such file or directory"});
  missing = c;
  missing.tls.key_file = certs_->Path("absent.key");
  expect_error(missing, {"tls.key_file", certs_->Path("absent.key"), "cannot be read"});
  missing = c;
  missing.tls.client_ca_file = certs_->Path("absent-ca.crt");
  expect_error(missing, {"tls.client_ca_file", certs_->Path("absent-ca.crt"), "cannot be read"});

  server::Config wrong = c;
  wrong.tls.cert_file = certs_->Path("server.ext");  // not PEM
  expect_error(wrong, {"tls.cert_file", "no PEM certificate"});
  wrong = c;
  wrong.tls.key_file = certs_->Path("client.key");
  expect_error(wrong, {"tls.key_file", certs_->Path("client.key"), "does not match",
                       certs_->Path("server.crt")});
  wrong = c;
  wrong.tls.key_file = certs_->Path("server.crt");  // a certificate is not a key
  expect_error(wrong, {"tls.key_file", "no PEM private key"});
  wrong = c;
  wrong.tls.client_ca_file = certs_->Path("client.key");
  expect_error(wrong, {"tls.client_ca_file", "no PEM certificate"});
  wrong = c;
  wrong.tls.cert_file = certs_->Dir();  // a directory
  expect_error(wrong, {"tls.cert_file", "cannot be read"});
}

TEST_F(TlsTest, PlaintextIsOnlyForLoopbackUnlessAllowed) {
  server::Config c;
  c.listen = "127.0.0.1:7700";
  EXPECT_TRUE(server::BuildServerCredentials(c).ok());
  c.listen = "[::1]:7700";
  EXPECT_TRUE(server::BuildServerCredentials(c).ok());
  c.listen = "0.0.0.0:7700";
  const absl::Status refused = server::BuildServerCredentials(c).status();
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.message(),
            "refusing to serve plaintext gRPC on 0.0.0.0:7700: set tls.cert_file/tls.key_file, "
            "or allow_plaintext: true behind a TLS-terminating proxy");
  EXPECT_EQ(server::ValidateConfig(c), refused);
  c.allow_plaintext = true;
  EXPECT_TRUE(server::BuildServerCredentials(c).ok());
  EXPECT_TRUE(server::ValidateConfig(c).ok());
  c.allow_plaintext = false;
  c.tls.cert_file = certs_->Path("server.crt");
  c.tls.key_file = certs_->Path("server.key");
  EXPECT_TRUE(server::BuildServerCredentials(c).ok());
  EXPECT_TRUE(server::ValidateConfig(c).ok());
}

TEST_F(TlsTest, ServerStartFailsClearlyOnABadTlsFile) {
  testing::TempDir dir;
  server::ServerOptions options;
  options.config.listen = "127.0.0.1:0";
  options.config.data_dir = dir.Sub("data");
  options.config.tls.cert_file = certs_->Path("server.crt");
  options.config.tls.key_file = dir.Sub("missing.key");
  options.bootstrap_key = testing::kTestAdminKey;
  auto started = server::AgentdServer::Start(options);
  ASSERT_FALSE(started.ok());
  EXPECT_THAT(std::string(started.status().message()), HasSubstr("tls.key_file"));
  EXPECT_THAT(std::string(started.status().message()), HasSubstr(dir.Sub("missing.key")));
}

}  // namespace
}  // namespace agentd
