#include "rpc/reflection_service.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/support/server_callback.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.pb.h"
#include "rpc/rpc_context.h"

namespace agentd::rpc {
namespace {

namespace pb = google::protobuf;
using grpc::reflection::v1alpha::ServerReflectionRequest;
using grpc::reflection::v1alpha::ServerReflectionResponse;

constexpr char kSelfName[] = "grpc.reflection.v1alpha.ServerReflection";

// Adds `file` and everything it imports, directly or not.
void AddWithImports(const pb::FileDescriptor* file, std::set<std::string>* out) {
  if (!out->insert(file->name()).second) return;
  for (int i = 0; i < file->dependency_count(); ++i) AddWithImports(file->dependency(i), out);
}

void SetError(ServerReflectionResponse* response, absl::StatusCode code, std::string message) {
  auto* error = response->mutable_error_response();
  error->set_error_code(static_cast<int32_t>(code));
  error->set_error_message(std::move(message));
}

// `file` first, then its imports depth-first, skipping imports already in `sent`.
void AppendFile(const pb::FileDescriptor* file, bool always, std::set<std::string>* sent,
                grpc::reflection::v1alpha::FileDescriptorResponse* out) {
  const bool fresh = sent->insert(file->name()).second;
  if (!fresh && !always) return;
  pb::FileDescriptorProto proto;
  file->CopyTo(&proto);
  proto.SerializeToString(out->add_file_descriptor_proto());
  for (int i = 0; i < file->dependency_count(); ++i) {
    AppendFile(file->dependency(i), /*always=*/false, sent, out);
  }
}

// One stream: authenticate, then answer each request in order (one read or one write in
// flight at a time), until the client half-closes or goes away. Deletes itself in OnDone().
class ReflectionReactor final
    : public grpc::ServerBidiReactor<ServerReflectionRequest, ServerReflectionResponse> {
 public:
  ReflectionReactor(grpc::CallbackServerContext* ctx, const ReflectionService* service,
                    auth::Authenticator* auth)
      : service_(service), scope_(ctx, "ServerReflectionInfo", auth) {
    if (!scope_.ok()) {
      Finish(scope_.Done(scope_.auth_status()));
      return;
    }
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // half-close or cancellation: the stream is over
      Finish(scope_.Done(absl::OkStatus()));
      return;
    }
    response_ = service_->Answer(request_, &sent_);
    StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(scope_.Done(absl::CancelledError("the client went away")));
      return;
    }
    StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  const ReflectionService* const service_;
  const CallScope scope_;
  ServerReflectionRequest request_;
  ServerReflectionResponse response_;
  std::set<std::string> sent_;  // files already sent on this stream
};

}  // namespace

ReflectionService::ReflectionService(std::vector<std::string> services, auth::Authenticator* auth)
    : services_(std::move(services)), auth_(auth) {
  // Health is served by gRPC's built-in service, which does not use these generated classes;
  // naming one keeps health.pb.o (and so its descriptors) linked into the binary.
  (void)::grpc::health::v1::HealthCheckRequest::descriptor();
  services_.push_back(kSelfName);
  std::sort(services_.begin(), services_.end());
  services_.erase(std::unique(services_.begin(), services_.end()), services_.end());
  const pb::DescriptorPool* pool = pb::DescriptorPool::generated_pool();
  for (const std::string& name : services_) {
    const pb::ServiceDescriptor* service = pool->FindServiceByName(name);
    if (service == nullptr) {
      spdlog::warn("reflection: no descriptor for service {} (listed, but not described)", name);
      continue;
    }
    AddWithImports(service->file(), &files_);
  }
}

grpc::ServerBidiReactor<ServerReflectionRequest, ServerReflectionResponse>*
ReflectionService::ServerReflectionInfo(grpc::CallbackServerContext* context) {
  return new ReflectionReactor(context, this, auth_);
}

ServerReflectionResponse ReflectionService::Answer(const ServerReflectionRequest& request,
                                                   std::set<std::string>* sent) const {
  const pb::DescriptorPool* pool = pb::DescriptorPool::generated_pool();
  auto served = [&](const pb::FileDescriptor* file) {
    return file != nullptr && files_.count(file->name()) > 0;
  };
  ServerReflectionResponse response;
  response.set_valid_host(request.host());
  *response.mutable_original_request() = request;
  const pb::FileDescriptor* file = nullptr;
  std::string missing;  // what was not found, for the error message
  switch (request.message_request_case()) {
    case ServerReflectionRequest::kFileByFilename:
      file = pool->FindFileByName(request.file_by_filename());
      missing = absl::StrCat("file \"", request.file_by_filename(), "\"");
      break;
    case ServerReflectionRequest::kFileContainingSymbol:
      file = pool->FindFileContainingSymbol(request.file_containing_symbol());
      missing = absl::StrCat("symbol \"", request.file_containing_symbol(), "\"");
      break;
    case ServerReflectionRequest::kFileContainingExtension: {
      const auto& ext = request.file_containing_extension();
      const pb::Descriptor* type = pool->FindMessageTypeByName(ext.containing_type());
      const pb::FieldDescriptor* field =
          served(type == nullptr ? nullptr : type->file())
              ? pool->FindExtensionByNumber(type, ext.extension_number())
              : nullptr;
      file = field == nullptr ? nullptr : field->file();
      missing = absl::StrCat("extension ", ext.extension_number(), " of \"",
                             ext.containing_type(), "\"");
      break;
    }
    case ServerReflectionRequest::kAllExtensionNumbersOfType: {
      const std::string& name = request.all_extension_numbers_of_type();
      const pb::Descriptor* type = pool->FindMessageTypeByName(name);
      if (type == nullptr || !served(type->file())) {
        SetError(&response, absl::StatusCode::kNotFound,
                 absl::StrCat("message type \"", name, "\" not found"));
        return response;
      }
      std::vector<const pb::FieldDescriptor*> extensions;
      pool->FindAllExtensions(type, &extensions);
      std::vector<int32_t> numbers;
      for (const pb::FieldDescriptor* e : extensions) {
        if (served(e->file())) numbers.push_back(e->number());
      }
      std::sort(numbers.begin(), numbers.end());
      auto* out = response.mutable_all_extension_numbers_response();
      out->set_base_type_name(name);
      for (int32_t n : numbers) out->add_extension_number(n);
      return response;
    }
    case ServerReflectionRequest::kListServices:
      for (const std::string& name : services_) {
        response.mutable_list_services_response()->add_service()->set_name(name);
      }
      return response;
    case ServerReflectionRequest::MESSAGE_REQUEST_NOT_SET:
      SetError(&response, absl::StatusCode::kInvalidArgument,
               "the request sets none of file_by_filename, file_containing_symbol, "
               "file_containing_extension, all_extension_numbers_of_type, list_services");
      return response;
  }
  if (!served(file)) {
    SetError(&response, absl::StatusCode::kNotFound, absl::StrCat(missing, " not found"));
    return response;
  }
  AppendFile(file, /*always=*/true, sent, response.mutable_file_descriptor_response());
  return response;
}

}  // namespace agentd::rpc
