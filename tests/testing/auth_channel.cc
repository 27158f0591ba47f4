#include "testing/auth_channel.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/support/client_interceptor.h>

#include <utility>
#include <vector>

namespace agentd::testing {
namespace {

namespace exp = grpc::experimental;

// Adds the header before the call's initial metadata is sent, unless the caller set one.
class AuthInterceptor final : public exp::Interceptor {
 public:
  explicit AuthInterceptor(const std::string* value) : value_(value) {}

  void Intercept(exp::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(exp::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      std::multimap<std::string, std::string>* metadata = methods->GetSendInitialMetadata();
      if (metadata->find("authorization") == metadata->end()) {
        metadata->emplace("authorization", *value_);
      }
    }
    methods->Proceed();
  }

 private:
  const std::string* const value_;  // owned by the factory, which the channel keeps
};

class AuthInterceptorFactory final : public exp::ClientInterceptorFactoryInterface {
 public:
  explicit AuthInterceptorFactory(std::string value) : value_(std::move(value)) {}

  exp::Interceptor* CreateClientInterceptor(exp::ClientRpcInfo* info) override {
    return new AuthInterceptor(&value_);
  }

 private:
  const std::string value_;
};

}  // namespace

std::string BearerValue(const std::string& key) { return "Bearer " + key; }

std::shared_ptr<grpc::Channel> AuthChannel(const std::string& target,
                                           std::shared_ptr<grpc::ChannelCredentials> creds,
                                           const std::string& key,
                                           const grpc::ChannelArguments& args) {
  std::vector<std::unique_ptr<exp::ClientInterceptorFactoryInterface>> factories;
  factories.push_back(std::make_unique<AuthInterceptorFactory>(BearerValue(key)));
  return exp::CreateCustomChannelWithInterceptors(target, std::move(creds), args,
                                                  std::move(factories));
}

}  // namespace agentd::testing
