#include "server/probe_health.h"

#include <grpcpp/ext/health_check_service_server_builder_option.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "rpc/response_interceptor.h"

namespace agentd::server {

grpc::ServerUnaryReactor* ProbeHealthServer::Service::Check(
    grpc::CallbackServerContext* ctx, const grpc::health::v1::HealthCheckRequest* request,
    grpc::health::v1::HealthCheckResponse* response) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  // "" is the whole server, as in the default health service; agentd names no other service.
  if (!request->service().empty()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service"));
    return reactor;
  }
  response->set_status(serving.load() ? grpc::health::v1::HealthCheckResponse::SERVING
                                      : grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

absl::StatusOr<std::unique_ptr<ProbeHealthServer>> ProbeHealthServer::Start(
    const std::string& listen) {
  std::unique_ptr<ProbeHealthServer> probe(new ProbeHealthServer());
  probe->listen_ = listen;
  grpc::ServerBuilder builder;
  // Our own Check instead of the default health service (enabled process-wide for the main
  // server), so this server carries nothing else.
  builder.SetOption(std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(nullptr));
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &probe->port_);
  builder.RegisterService(&probe->service_);
  rpc::AddResponseInterceptor(&builder);  // request ids here too (docs/api.md)
  probe->server_ = builder.BuildAndStart();
  if (probe->server_ == nullptr || probe->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on health_listen ", listen, " (address in use or not valid?)"));
  }
  return probe;
}

std::string ProbeHealthServer::address() const {
  return absl::StrCat(listen_.substr(0, listen_.rfind(':')), ":", port_);
}

void ProbeHealthServer::Shutdown() {
  if (server_ == nullptr) return;
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(100));
  server_->Wait();
  server_.reset();
}

ProbeHealthServer::~ProbeHealthServer() { Shutdown(); }

}  // namespace agentd::server
