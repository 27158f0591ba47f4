#include "rpc/response_interceptor.h"

#include <google/protobuf/descriptor.h>
#include <spdlog/spdlog.h>

#include <string>
#include <utility>

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
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      std::multimap<std::string, std::string>* md = methods->GetSendInitialMetadata();
      auto it = md->find(kRequestIdKey);
      if (it != md->end()) {
        request_id_ = it->second;
      } else {
        request_id_ = NewId("req_");
        md->emplace(kRequestIdKey, request_id_);
      }
    }
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      // gRPC's answer to request bytes it could not parse: no agentd handler ran.
      if (status.error_code() == grpc::StatusCode::UNIMPLEMENTED &&
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
  std::string request_id_;
};

}  // namespace

grpc::experimental::Interceptor* ResponseInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new ResponseInterceptor(info->method());
}

}  // namespace agentd::rpc
