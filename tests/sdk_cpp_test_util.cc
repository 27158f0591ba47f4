#include "sdk_cpp_test_util.h"

#include <arpa/inet.h>
#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/client_interceptor.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "agentd/v1/session.pb.h"

namespace agentd::sdktest {
namespace {

namespace exp = grpc::experimental;

class RecordingInterceptor final : public exp::Interceptor {
 public:
  RecordingInterceptor(Recorder* recorder, std::string method)
      : recorder_(recorder), method_(std::move(method)) {}

  void Intercept(exp::InterceptorBatchMethods* methods) override {
    using Hook = exp::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(Hook::PRE_SEND_INITIAL_METADATA)) {
      index_ = recorder_->Begin(method_, *methods->GetSendInitialMetadata());
    }
    if (methods->QueryInterceptionHookPoint(Hook::PRE_SEND_MESSAGE) &&
        (absl::EndsWith(method_, "/RunTurn") || absl::EndsWith(method_, "/StreamTurn"))) {
      const void* message = methods->GetSendMessage();
      if (message != nullptr) {
        recorder_->SetKey(index_,
                          static_cast<const v1::RunTurnRequest*>(message)->idempotency_key());
      }
    }
    if (methods->QueryInterceptionHookPoint(Hook::POST_RECV_STATUS)) {
      grpc::StatusCode code;
      if (recorder_->TakeFault(method_, &code)) {
        *methods->GetRecvStatus() = grpc::Status(code, "injected by the test's interceptor");
      }
    }
    methods->Proceed();
  }

 private:
  Recorder* const recorder_;
  const std::string method_;
  size_t index_ = 0;
};

class RecordingFactory final : public exp::ClientInterceptorFactoryInterface {
 public:
  explicit RecordingFactory(std::shared_ptr<Recorder> recorder) : recorder_(std::move(recorder)) {}
  exp::Interceptor* CreateClientInterceptor(exp::ClientRpcInfo* info) override {
    return new RecordingInterceptor(recorder_.get(), info->method());
  }

 private:
  std::shared_ptr<Recorder> recorder_;
};

}  // namespace

void Recorder::FailNext(const std::string& method, int count, grpc::StatusCode code) {
  absl::MutexLock lock(&mu_);
  fault_method_ = method;
  fault_count_ = count;
  fault_code_ = code;
}

std::vector<RecordedCall> Recorder::Calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

std::vector<RecordedCall> Recorder::Calls(const std::string& suffix) const {
  std::vector<RecordedCall> out;
  for (RecordedCall& c : Calls()) {
    if (absl::EndsWith(c.method, suffix)) out.push_back(std::move(c));
  }
  return out;
}

void Recorder::Clear() {
  absl::MutexLock lock(&mu_);
  calls_.clear();
}

size_t Recorder::Begin(const std::string& method,
                       const std::multimap<std::string, std::string>& md) {
  absl::MutexLock lock(&mu_);
  calls_.push_back({method, md, ""});
  return calls_.size() - 1;
}

void Recorder::SetKey(size_t index, const std::string& key) {
  absl::MutexLock lock(&mu_);
  if (index < calls_.size()) calls_[index].idempotency_key = key;
}

bool Recorder::TakeFault(const std::string& method, grpc::StatusCode* code) {
  absl::MutexLock lock(&mu_);
  if (fault_count_ <= 0 || !absl::EndsWith(method, fault_method_)) return false;
  --fault_count_;
  *code = fault_code_;
  return true;
}

std::shared_ptr<grpc::Channel> RecordingChannel(const std::string& target,
                                                std::shared_ptr<Recorder> recorder) {
  std::vector<std::unique_ptr<exp::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<RecordingFactory>(std::move(recorder)));
  return exp::CreateCustomChannelWithInterceptors(target, grpc::InsecureChannelCredentials(),
                                                  grpc::ChannelArguments(), std::move(factories));
}

RefusingPort::RefusingPort() {
  fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
}

RefusingPort::~RefusingPort() { close(fd_); }

ClientOptions SdkTest::Options() const {
  ClientOptions o;
  o.address = harness_.address();
  o.api_key = harness_.admin_key();
  o.initial_backoff = absl::Milliseconds(1);
  o.max_backoff = absl::Milliseconds(20);
  return o;
}

std::unique_ptr<Client> SdkTest::NewClient(ClientOptions options) {
  auto client = Client::Create(std::move(options));
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

std::unique_ptr<Client> SdkTest::RecordingClient(ClientOptions options) {
  options.channel = RecordingChannel(options.address, recorder_);
  return NewClient(std::move(options));
}

Session SdkTest::NewSession(Client& client, const ToolRegistry& tools, const std::string& model) {
  auto agent = client.CreateAgent("sdk-test", model, "Answer briefly.", tools);
  EXPECT_TRUE(agent.ok()) << agent.status();
  auto session = client.CreateSession(agent.ok() ? agent->agent_id() : "missing");
  EXPECT_TRUE(session.ok()) << session.status();
  return session.ok() ? *session : client.OpenSession("missing");
}

int SdkTest::TurnsStarted(const std::string& session_id) {
  int n = 0;
  for (const v1::Event& e : harness_.AllEvents(session_id)) {
    n += e.type() == v1::EVENT_TYPE_TURN_STARTED;
  }
  return n;
}

void SdkTest::ExpectAnswerCompletesTurn(Session& session, const std::string& call_id,
                                        const std::string& output) {
  v1::ToolResult answer;
  answer.set_tool_call_id(call_id);
  answer.set_output(output);
  auto done = session.SubmitToolResults({answer});
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(done->output_text(), output);
}

ToolRegistry WeatherTools(std::vector<std::string>* seen_args) {
  ToolRegistry tools;
  tools.Add(
      "get_weather",
      [seen_args](const std::string& args) -> absl::StatusOr<std::string> {
        if (seen_args != nullptr) seen_args->push_back(args);
        if (args.find("Atlantis") != std::string::npos) {
          return absl::NotFoundError("no weather station in Atlantis");
        }
        const size_t colon = args.find(':');
        std::string city = colon == std::string::npos ? "?" : args.substr(colon + 1);
        city.erase(std::remove_if(city.begin(), city.end(),
                                  [](char c) { return c == '"' || c == '}' || c == ' '; }),
                   city.end());
        return "sunny in " + city;
      },
      "Weather for a city", R"({"type":"object","properties":{"city":{"type":"string"}}})");
  return tools;
}

}  // namespace agentd::sdktest
