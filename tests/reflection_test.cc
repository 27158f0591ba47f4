// Server reflection (grpc.reflection.v1alpha) as agentd serves it: what grpcurl-style clients
// need (services, file descriptors with their imports), errors inside the stream, and the
// authentication every RPC goes through.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/descriptor_database.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "rpc/reflection_service.h"
#include "testing/server_harness.h"

namespace agentd {
namespace {

namespace pb = google::protobuf;
namespace refl = grpc::reflection::v1alpha;

constexpr int kNotFound = static_cast<int>(grpc::StatusCode::NOT_FOUND);
constexpr int kInvalidArgument = static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT);

refl::ServerReflectionRequest ListServices() {
  refl::ServerReflectionRequest r;
  r.set_list_services("*");
  return r;
}

refl::ServerReflectionRequest Symbol(const std::string& symbol) {
  refl::ServerReflectionRequest r;
  r.set_file_containing_symbol(symbol);
  return r;
}

refl::ServerReflectionRequest File(const std::string& name) {
  refl::ServerReflectionRequest r;
  r.set_file_by_filename(name);
  return r;
}

// The parsed FileDescriptorProtos of a response, in order.
std::vector<pb::FileDescriptorProto> Files(const refl::ServerReflectionResponse& response) {
  std::vector<pb::FileDescriptorProto> files;
  for (const std::string& bytes : response.file_descriptor_response().file_descriptor_proto()) {
    pb::FileDescriptorProto file;
    EXPECT_TRUE(file.ParseFromString(bytes));
    files.push_back(std::move(file));
  }
  return files;
}

std::set<std::string> Names(const std::vector<pb::FileDescriptorProto>& files) {
  std::set<std::string> names;
  for (const auto& f : files) names.insert(f.name());
  return names;
}

// `file` and everything it imports, from the descriptors compiled into this test.
std::set<std::string> WithImports(const std::string& file) {
  std::set<std::string> out;
  std::vector<const pb::FileDescriptor*> todo = {
      pb::DescriptorPool::generated_pool()->FindFileByName(file)};
  while (!todo.empty()) {
    const pb::FileDescriptor* f = todo.back();
    todo.pop_back();
    if (f == nullptr || !out.insert(f->name()).second) continue;
    for (int i = 0; i < f->dependency_count(); ++i) todo.push_back(f->dependency(i));
  }
  return out;
}

// Sends `requests` on one stream, reading one response after each; returns the stream's status.
grpc::Status Ask(const std::shared_ptr<grpc::Channel>& channel,
                 const std::vector<refl::ServerReflectionRequest>& requests,
                 std::vector<refl::ServerReflectionResponse>* responses) {
  auto stub = refl::ServerReflection::NewStub(channel);
  auto ctx = testing::Ctx();
  auto stream = stub->ServerReflectionInfo(ctx.get());
  for (const auto& request : requests) {
    refl::ServerReflectionResponse response;
    if (!stream->Write(request) || !stream->Read(&response)) break;
    responses->push_back(std::move(response));
  }
  stream->WritesDone();
  return stream->Finish();
}

class ReflectionTest : public ::testing::Test {
 protected:
  std::vector<refl::ServerReflectionResponse> AskOk(
      const std::vector<refl::ServerReflectionRequest>& requests) {
    std::vector<refl::ServerReflectionResponse> responses;
    const grpc::Status st = Ask(h_.channel(), requests, &responses);
    EXPECT_TRUE(st.ok()) << st.error_code() << ": " << st.error_message();
    EXPECT_EQ(responses.size(), requests.size());
    responses.resize(requests.size());
    return responses;
  }

  testing::ServerHarness h_;
};

TEST_F(ReflectionTest, ListServicesNamesTheApiHealthAndReflection) {
  const auto responses = AskOk({ListServices()});
  ASSERT_TRUE(responses[0].has_list_services_response()) << responses[0].DebugString();
  std::set<std::string> names;
  for (const auto& s : responses[0].list_services_response().service()) names.insert(s.name());
  for (const char* name : {"agentd.v1.AgentService", "agentd.v1.SessionService",
                           "agentd.v1.MemoryService", "agentd.v1.ProjectService",
                           "agentd.v1.AdminService", "grpc.health.v1.Health",
                           "grpc.reflection.v1alpha.ServerReflection"}) {
    EXPECT_EQ(names.count(name), 1u) << name;
  }
}

TEST_F(ReflectionTest, FileContainingSymbolServesTheFileAndItsImports) {
  const auto responses = AskOk({Symbol("agentd.v1.SessionService")});
  const std::vector<pb::FileDescriptorProto> files = Files(responses[0]);
  ASSERT_FALSE(files.empty()) << responses[0].DebugString();
  EXPECT_EQ(files[0].name(), "agentd/v1/session.proto");
  const std::set<std::string> expected = WithImports("agentd/v1/session.proto");
  EXPECT_EQ(Names(files), expected);
  EXPECT_EQ(files.size(), expected.size()) << "a file was sent twice";
  EXPECT_EQ(expected.count("google/protobuf/timestamp.proto"), 1u);

  // The set is self-contained: a client builds a pool from it and resolves the service.
  pb::SimpleDescriptorDatabase db;
  for (const auto& f : files) ASSERT_TRUE(db.Add(f)) << f.name();
  pb::DescriptorPool pool(&db);
  const pb::ServiceDescriptor* service = pool.FindServiceByName("agentd.v1.SessionService");
  ASSERT_NE(service, nullptr);
  const pb::MethodDescriptor* run = service->FindMethodByName("RunTurn");
  ASSERT_NE(run, nullptr);
  EXPECT_EQ(run->input_type()->full_name(), "agentd.v1.RunTurnRequest");
  EXPECT_EQ(run->output_type()->full_name(), "agentd.v1.TurnResult");
  EXPECT_TRUE(service->FindMethodByName("WatchEvents")->server_streaming());
}

TEST_F(ReflectionTest, AnyKindOfSymbolAndFileNamesResolve) {
  const auto responses = AskOk({Symbol("agentd.v1.SessionService.RunTurn"),
                                Symbol("agentd.v1.RunTurnRequest"), Symbol("agentd.v1.Agent"),
                                File("agentd/v1/agent.proto"), Symbol("grpc.health.v1.Health"),
                                Symbol("grpc.reflection.v1alpha.ServerReflection")});
  const char* first_file[] = {"agentd/v1/session.proto", "agentd/v1/session.proto",
                              "agentd/v1/agent.proto", "agentd/v1/agent.proto",
                              "grpc/health/v1/health.proto",
                              "grpc/reflection/v1alpha/reflection.proto"};
  for (size_t i = 0; i < responses.size(); ++i) {
    const auto files = Files(responses[i]);
    ASSERT_FALSE(files.empty()) << i << ": " << responses[i].DebugString();
    // The requested file comes first, even when it was already sent on this stream.
    EXPECT_EQ(files[0].name(), first_file[i]) << i;
  }
  // Imports already sent on the stream are not sent again.
  EXPECT_EQ(Files(responses[1]).size(), 1u);
  EXPECT_EQ(Files(responses[2]).size(), 1u);
}

TEST_F(ReflectionTest, ResponsesEchoTheRequestAndHost) {
  refl::ServerReflectionRequest request = ListServices();
  request.set_host("agentd.example:7700");
  const auto responses = AskOk({request});
  EXPECT_EQ(responses[0].valid_host(), "agentd.example:7700");
  EXPECT_EQ(responses[0].original_request().SerializeAsString(), request.SerializeAsString());
}

TEST_F(ReflectionTest, UnknownNamesAreNotFoundAndTheStreamGoesOn) {
  refl::ServerReflectionRequest extension;
  extension.mutable_file_containing_extension()->set_containing_type("agentd.v1.Agent");
  extension.mutable_file_containing_extension()->set_extension_number(4242);
  refl::ServerReflectionRequest all_extensions;
  all_extensions.set_all_extension_numbers_of_type("agentd.v1.NoSuchMessage");
  const auto responses = AskOk({Symbol("agentd.v1.NoSuchService"), File("agentd/v1/nope.proto"),
                                Symbol("agentd.v1.SessionService.NoSuchMethod"), extension,
                                all_extensions, refl::ServerReflectionRequest(), ListServices()});
  for (size_t i = 0; i + 2 < responses.size(); ++i) {
    ASSERT_TRUE(responses[i].has_error_response()) << i << ": " << responses[i].DebugString();
    EXPECT_EQ(responses[i].error_response().error_code(), kNotFound) << i;
    EXPECT_FALSE(responses[i].error_response().error_message().empty()) << i;
  }
  EXPECT_EQ(responses[5].error_response().error_code(), kInvalidArgument);
  EXPECT_TRUE(responses[6].has_list_services_response());
}

TEST_F(ReflectionTest, ExtensionNumbersOfAKnownTypeAreListed) {
  refl::ServerReflectionRequest request;
  request.set_all_extension_numbers_of_type("agentd.v1.Agent");
  const auto responses = AskOk({request});
  ASSERT_TRUE(responses[0].has_all_extension_numbers_response()) << responses[0].DebugString();
  EXPECT_EQ(responses[0].all_extension_numbers_response().base_type_name(), "agentd.v1.Agent");
  EXPECT_EQ(responses[0].all_extension_numbers_response().extension_number_size(), 0);
}

TEST_F(ReflectionTest, WithoutAValidKeyTheStreamIsUnauthenticated) {
  std::vector<refl::ServerReflectionResponse> responses;
  auto anonymous = grpc::CreateChannel(h_.address(), grpc::InsecureChannelCredentials());
  EXPECT_EQ(Ask(anonymous, {ListServices()}, &responses).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(responses.empty());

  auto wrong = h_.NewChannel(grpc::InsecureChannelCredentials(), "agd-not-a-key-of-this-server");
  EXPECT_EQ(Ask(wrong, {ListServices()}, &responses).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(responses.empty());

  // An `authorization` entry set on the call wins over the channel's key.
  auto stub = refl::ServerReflection::NewStub(h_.channel());
  auto ctx = testing::Ctx();
  ctx->AddMetadata("authorization", "Bearer agd-not-a-key-of-this-server");
  auto stream = stub->ServerReflectionInfo(ctx.get());
  stream->Write(ListServices());
  stream->WritesDone();
  refl::ServerReflectionResponse response;
  EXPECT_FALSE(stream->Read(&response));
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

// ReflectionService::Answer directly: only the listed services' files are served.
TEST(ReflectionAnswerTest, OnlyTheListedServicesFilesAreServed) {
  rpc::ReflectionService service({"agentd.v1.AgentService"}, /*auth=*/nullptr);
  std::set<std::string> sent;
  refl::ServerReflectionResponse listed = service.Answer(ListServices(), &sent);
  ASSERT_EQ(listed.list_services_response().service_size(), 2);
  EXPECT_EQ(listed.list_services_response().service(0).name(), "agentd.v1.AgentService");
  EXPECT_EQ(listed.list_services_response().service(1).name(),
            "grpc.reflection.v1alpha.ServerReflection");

  EXPECT_EQ(Names(Files(service.Answer(Symbol("agentd.v1.AgentService"), &sent))),
            WithImports("agentd/v1/agent.proto"));
  // Linked into the binary but not part of a listed service: not revealed.
  for (const char* symbol : {"agentd.v1.SessionService", "agentd.v1.RunTurnRequest"}) {
    EXPECT_EQ(service.Answer(Symbol(symbol), &sent).error_response().error_code(), kNotFound)
        << symbol;
  }
  for (const char* file : {"agentd/v1/session.proto", "agentd/storage/records.proto"}) {
    EXPECT_EQ(service.Answer(File(file), &sent).error_response().error_code(), kNotFound)
        << file;
  }
}

}  // namespace
}  // namespace agentd
