// Per-call plumbing shared by every service: request ids, caller identity, status mapping and
// the access log line. The only place absl::Status becomes grpc::Status.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace agentd::rpc {

/// Maps an absl::Status to a grpc::Status (same code numbers, message kept).
grpc::Status ToGrpcStatus(const absl::Status& status);

/// The authenticated caller. Until the Projects API lands every caller is the `default`
/// project; the project id always comes from here, never from a request field.
struct Identity {
  std::string project_id = "default";
};

/// Started at the top of every handler: assigns the request id (the client's
/// `x-agentd-request-id` if it sent a sane one), adds it to the response's initial metadata,
/// resolves the caller, and logs the outcome with the id when the call ends.
class CallScope {
 public:
  CallScope(grpc::CallbackServerContext* ctx, const char* method);

  const std::string& request_id() const { return request_id_; }
  const Identity& identity() const { return identity_; }
  const char* method() const { return method_; }
  /// The call's deadline (InfiniteFuture when the client set none).
  absl::Time deadline() const { return deadline_; }
  /// Logs the call's outcome and returns it as a grpc::Status.
  grpc::Status Done(const absl::Status& status) const;

 private:
  const char* method_;
  std::string request_id_;
  Identity identity_;
  absl::Time deadline_;
  absl::Time start_;
};

/// Finishes a unary call on the context's default reactor.
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* ctx, const CallScope& scope,
                                      const absl::Status& status);

/// Copies a successful value into a response message; returns the status either way.
template <typename T>
absl::Status Assign(absl::StatusOr<T> value, T* out) {
  if (value.ok()) *out = *std::move(value);
  return value.status();
}

/// Value of the `x-agentd-session` metadata header (empty if absent).
std::string SessionHeader(const grpc::CallbackServerContext* ctx);

}  // namespace agentd::rpc
