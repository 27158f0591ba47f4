// The health-only listener (config health_listen): a plaintext gRPC server with one service,
// grpc.health.v1.Health.Check, answering the main server's serving state, for kubelet gRPC
// probes, which cannot speak TLS. It reads no key and serves no data.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace agentd::server {

class ProbeHealthServer {
 public:
  /// Binds `listen` (HOST:PORT; port 0 = any). UNAVAILABLE if it cannot.
  static absl::StatusOr<std::unique_ptr<ProbeHealthServer>> Start(const std::string& listen);
  ~ProbeHealthServer();

  void SetServing(bool serving) { service_.serving.store(serving); }
  /// HOST:PORT actually bound.
  std::string address() const;
  /// Closes the listener (in-flight checks get a short deadline).
  void Shutdown();

 private:
  struct Service final : grpc::health::v1::Health::CallbackService {
    grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* ctx,
                                    const grpc::health::v1::HealthCheckRequest* request,
                                    grpc::health::v1::HealthCheckResponse* response) override;
    std::atomic<bool> serving{false};
  };

  ProbeHealthServer() = default;
  std::string listen_;
  int port_ = 0;
  Service service_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace agentd::server
