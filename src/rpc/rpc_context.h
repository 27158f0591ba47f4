// Per-call plumbing shared by every service: request ids, caller identity, status mapping and
// the access log line. The only place absl::Status becomes grpc::Status.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "auth/authenticator.h"
#include "metrics/trace_context.h"

namespace agentd::rpc {

/// Maps an absl::Status to a grpc::Status (same code numbers, message kept).
grpc::Status ToGrpcStatus(const absl::Status& status);

using auth::Identity;

/// Started at the top of every handler: assigns the request id (the client's
/// `x-agentd-request-id` if it sent a sane one), adds it to the response's initial metadata,
/// takes the W3C trace context from the `traceparent` metadata (a new trace when it is absent or
/// invalid; see metrics/trace_context.h) — handlers install context() with an obs::ContextScope
/// while they run, so log lines carry the ids —
/// authenticates and authorizes the caller (the one place every RPC goes through; `method` is
/// the RPC's short name, looked up in auth/policy), and logs the outcome with the id when the
/// call ends. When !ok() the handler must finish with auth_status() and do nothing else.
class CallScope {
 public:
  CallScope(grpc::CallbackServerContext* ctx, const char* method, auth::Authenticator* auth);

  bool ok() const { return auth_status_.ok(); }
  const absl::Status& auth_status() const { return auth_status_; }
  /// The authenticated caller (meaningful only when ok()). Every storage key's project prefix
  /// comes from here, never from a request field.
  const Identity& identity() const { return identity_; }
  /// Request id, method and peer, for audit records.
  auth::CallInfo call_info() const { return {method_, context_->request_id, peer_}; }
  const std::string& request_id() const { return context_->request_id; }
  /// Request and trace ids of this call (owned by the scope; a Turn takes shared ownership).
  const obs::RequestContext* context() const { return context_.get(); }
  const char* method() const { return method_; }
  /// The call's deadline (InfiniteFuture when the client set none).
  absl::Time deadline() const { return deadline_; }
  /// Logs the call's outcome and returns it as a grpc::Status.
  grpc::Status Done(const absl::Status& status) const;

 private:
  const char* method_;
  std::shared_ptr<obs::RequestContext> context_;
  std::string peer_;
  Identity identity_;
  absl::Status auth_status_;
  absl::Time deadline_;
  absl::Time start_;
};

/// Finishes a unary call on the context's default reactor.
grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* ctx, const CallScope& scope,
                                      const absl::Status& status);

/// Runs a unary handler body: authenticates, then `body(identity)` (returning absl::Status)
/// only when the caller may make the call, and finishes the call with its status.
template <typename Body>
grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, const char* method,
                                auth::Authenticator* auth, Body&& body) {
  CallScope scope(ctx, method, auth);
  obs::ContextScope log_scope(scope.context());
  if (!scope.ok()) return FinishUnary(ctx, scope, scope.auth_status());
  return FinishUnary(ctx, scope, body(scope));
}

/// Copies a successful value into a response message; returns the status either way.
template <typename T>
absl::Status Assign(absl::StatusOr<T> value, T* out) {
  if (value.ok()) *out = *std::move(value);
  return value.status();
}

/// Value of the `x-agentd-session` metadata header (empty if absent).
std::string SessionHeader(const grpc::CallbackServerContext* ctx);

}  // namespace agentd::rpc
