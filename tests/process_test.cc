// The real agentd binary as a separate process: reflection, signals, startup errors, flags.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>

#include "agentd/v1/agent.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "testing/child_server.h"
#include "testing/temp_dir.h"

namespace agentd {
namespace {

using testing::ChildServer;
using testing::FreePort;
using testing::RunAgentd;

TEST(ProcessTest, ReflectionListsTheServices) {
  testing::TempDir dir;
  ChildServer server(dir.Sub("data"), FreePort());
  ASSERT_TRUE(server.Start());
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(server.NewChannel());
  grpc::ClientContext ctx;
  auto stream = stub->ServerReflectionInfo(&ctx);
  grpc::reflection::v1alpha::ServerReflectionRequest req;
  req.set_list_services("*");
  ASSERT_TRUE(stream->Write(req));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::set<std::string> names;
  for (const auto& s : resp.list_services_response().service()) names.insert(s.name());
  EXPECT_TRUE(names.count("agentd.v1.AgentService"));
  EXPECT_TRUE(names.count("agentd.v1.SessionService"));
  EXPECT_TRUE(names.count("agentd.v1.MemoryService"));
  EXPECT_TRUE(names.count("agentd.v1.ProjectService"));
  EXPECT_TRUE(names.count("grpc.health.v1.Health"));

  // The service's file descriptor is served too (what grpcurl needs to call it).
  grpc::ClientContext ctx2;
  auto stream2 = stub->ServerReflectionInfo(&ctx2);
  req.set_file_containing_symbol("agentd.v1.SessionService");
  ASSERT_TRUE(stream2->Write(req));
  stream2->WritesDone();
  ASSERT_TRUE(stream2->Read(&resp));
  EXPECT_GT(resp.file_descriptor_response().file_descriptor_proto_size(), 0);
}

TEST(ProcessTest, CallsNeedTheBootstrapKeyFromTheEnvironment) {
  testing::TempDir dir;
  ChildServer server(dir.Sub("data"), FreePort());
  ASSERT_TRUE(server.Start());
  auto agents = v1::AgentService::NewStub(server.NewChannel());
  v1::ListAgentsResponse listed;
  grpc::ClientContext with_key;
  grpc::Status st = agents->ListAgents(&with_key, v1::ListAgentsRequest(), &listed);
  EXPECT_TRUE(st.ok()) << st.error_message();

  grpc::ClientContext wrong_key;
  wrong_key.AddMetadata("authorization", testing::BearerValue("agd-not-the-bootstrap-key-0000"));
  EXPECT_EQ(agents->ListAgents(&wrong_key, v1::ListAgentsRequest(), &listed).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);

  auto anonymous = v1::AgentService::NewStub(
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext no_key;
  EXPECT_EQ(anonymous->ListAgents(&no_key, v1::ListAgentsRequest(), &listed).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST(ProcessTest, PlaintextOnANonLoopbackAddressIsAStartupError) {
  testing::TempDir dir;
  std::string out;
  EXPECT_EQ(RunAgentd({"--data-dir", dir.Sub("data"), "--listen", "0.0.0.0:0"}, &out), 1);
  EXPECT_NE(out.find("refusing to serve plaintext gRPC on 0.0.0.0:0"), std::string::npos) << out;
  EXPECT_NE(out.find("allow_plaintext"), std::string::npos) << out;
}

TEST(ProcessTest, TlsFlagsAreCheckedAtStartup) {
  testing::TempDir dir;
  std::string out;
  EXPECT_EQ(RunAgentd({"--data-dir", dir.Sub("data"), "--listen", "127.0.0.1:0", "--tls-cert",
                       dir.Sub("server.crt")},
                      &out),
            1);
  EXPECT_NE(out.find("tls.key_file"), std::string::npos) << out;

  out.clear();
  EXPECT_EQ(RunAgentd({"--data-dir", dir.Sub("data"), "--listen", "127.0.0.1:0", "--tls-cert",
                       dir.Sub("missing.crt"), "--tls-key", dir.Sub("missing.key")},
                      &out),
            1);
  EXPECT_NE(out.find("tls.cert_file (" + dir.Sub("missing.crt") + "): cannot be read"),
            std::string::npos)
      << out;
}

TEST(ProcessTest, SigtermStopsAnIdleServerPromptlyAndCleanly) {
  testing::TempDir dir;
  ChildServer server(dir.Sub("data"), FreePort());
  ASSERT_TRUE(server.Start());
  const int status = server.SignalAndWait(SIGTERM, 10000);
  ASSERT_NE(status, -1) << "agentd did not exit after SIGTERM";
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The data dir is released: a new server starts on it.
  ChildServer again(dir.Sub("data"), FreePort());
  EXPECT_TRUE(again.Start());
}

TEST(ProcessTest, UnknownConfigKeyIsAStartupErrorNamingTheKey) {
  testing::TempDir dir;
  const std::string cfg = dir.Sub("agentd.yaml");
  std::ofstream(cfg) << "listen: 127.0.0.1:0\nbackends:\n  - name: b\n    type: echo\n    timout_ms: 5\n";
  std::string out;
  EXPECT_EQ(RunAgentd({"--config", cfg, "--data-dir", dir.Sub("data")}, &out), 1);
  EXPECT_NE(out.find("backends[0].timout_ms"), std::string::npos) << out;
}

TEST(ProcessTest, DataDirHeldByAnotherAgentdIsAStartupError) {
  testing::TempDir dir;
  ChildServer first(dir.Sub("data"), FreePort());
  ASSERT_TRUE(first.Start());
  std::string out;
  EXPECT_EQ(RunAgentd({"--data-dir", dir.Sub("data"), "--listen", "127.0.0.1:0"}, &out), 1);
  EXPECT_NE(out.find("in use by another agentd"), std::string::npos) << out;
}

TEST(ProcessTest, UnusableDataDirIsAStartupError) {
  testing::TempDir dir;
  std::ofstream(dir.Sub("file")) << "not a directory";
  std::string out;
  EXPECT_EQ(RunAgentd({"--data-dir", dir.Sub("file") + "/data", "--listen", "127.0.0.1:0"}, &out), 1);
  EXPECT_NE(out.find("agentd: error:"), std::string::npos) << out;
}

}  // namespace
}  // namespace agentd
