#include "rpc/response_interceptor.h"

#include <google/protobuf/descriptor.h>
#include <spdlog/spdlog.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "metrics/trace_context.h"

namespace agentd::rpc {
namespace {

using grpc::experimental::InterceptionHookPoints;

constexpr char kRequestIdKey[] = "x-agentd-request-id";

/// The full name of the request message of `method` ("/agentd.v1.SessionService/RunTurn") when
/// it is a method of one of agentd's own services; empty otherwise.
std::string AgentdRequestType(absl::string_view method) {
  if (!absl::ConsumePrefix(&method, "/agentd.v1.")) return "";
  const size_t slash = method.find('/');
  if (slash == absl::string_view::npos) return "";
  const google::protobuf::ServiceDescriptor* service =
      google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
          absl::StrCat("agentd.v1.", method.substr(0, slash)));
  if (service == nullptr) return "";
  const google::protobuf::MethodDescriptor* m =
      service->FindMethodByName(std::string(method.substr(slash + 1)));
  return m == nullptr ? "" : m->input_type()->full_name();
}

class ResponseInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit ResponseInterceptor(const char* method) : method_(method == nullptr ? "" : method) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      // The client's own id, when sane (as CallScope takes it), for calls no handler sees.
      std::multimap<grpc::string_ref, grpc::string_ref>* md = methods->GetRecvInitialMetadata();
      if (md != nullptr) {
        auto it = md->find(kRequestIdKey);
        if (it != md->end()) {
          std::string given(it->second.data(), it->second.size());
          if (ValidateId("request id", given).ok()) client_request_id_ = std::move(given);
        }
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_MESSAGE) &&
        methods->GetRecvMessage() == nullptr) {
      unparsed_ = true;  // gRPC could not deserialize the request: no handler will run
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      std::multimap<std::string, std::string>* md = methods->GetSendInitialMetadata();
      auto it = md->find(kRequestIdKey);
      if (it != md->end()) {
        request_id_ = it->second;
      } else {
        request_id_ = client_request_id_.empty() ? NewId("req_") : client_request_id_;
        md->emplace(kRequestIdKey, request_id_);
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      // gRPC's answer to request bytes it could not parse (no agentd handler ran).
      if (unparsed_ && status.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
          status.error_message().empty()) {
        const std::string type = AgentdRequestType(method_);
        if (!type.empty()) {
          const std::string message = absl::StrCat(
              "the request is not a valid ", type,
              " message (malformed protobuf encoding, or a string field that is not UTF-8)");
          obs::RequestContext context;
          context.request_id = request_id_;
          context.method = method_.substr(method_.rfind('/') + 1);  // as CallScope logs it
          obs::ContextScope log_scope(&context);
          spdlog::info("{} INVALID_ARGUMENT: {}", context.method, message);
          methods->ModifySendStatus(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message));
        }
      }
    }
    methods->Proceed();
  }

 private:
  const std::string method_;
  std::string client_request_id_;  // a sane x-agentd-request-id the client sent
  std::string request_id_;
  bool unparsed_ = false;
};

}  // namespace

void AddResponseInterceptor(grpc::ServerBuilder* builder) {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(std::make_unique<ResponseInterceptorFactory>());
  builder->experimental().SetInterceptorCreators(std::move(creators));
}

grpc::experimental::Interceptor* ResponseInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new ResponseInterceptor(info->method());
}

}  // namespace agentd::rpc
