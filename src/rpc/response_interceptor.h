// What every gRPC response gets, even from calls that never reach an agentd handler (gRPC's own
// health service; a request gRPC could not parse):
// - an `x-agentd-request-id` in its initial metadata (API.md: every response carries one). Calls
//   that went through a CallScope already have theirs; the rest get a new id here.
// - INVALID_ARGUMENT instead of gRPC's bare UNIMPLEMENTED when an agentd.v1 method's request
//   bytes are not a valid message (truncated, not protobuf, invalid UTF-8 in a string field):
//   gRPC fails such calls before any handler runs, with UNIMPLEMENTED and no message, which
//   would tell the client the method does not exist. A method agentd does not serve keeps its
//   UNIMPLEMENTED.
#pragma once

#include <grpcpp/server_builder.h>
#include <grpcpp/support/server_interceptor.h>

namespace agentd::rpc {

class ResponseInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  /// Called by gRPC once per call, on the thread that starts it.
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;
};

/// Installs ResponseInterceptorFactory as `builder`'s only interceptor.
void AddResponseInterceptor(grpc::ServerBuilder* builder);

}  // namespace agentd::rpc
