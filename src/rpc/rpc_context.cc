#include "rpc/rpc_context.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>

#include "common/ids.h"

namespace agentd::rpc {
namespace {

std::string Metadata(const grpc::CallbackServerContext* ctx, const char* name) {
  const auto& md = ctx->client_metadata();
  auto it = md.find(name);
  if (it == md.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

CallScope::CallScope(grpc::CallbackServerContext* ctx, const char* method,
                     auth::Authenticator* auth)
    : method_(method), context_(std::make_shared<obs::RequestContext>()), start_(absl::Now()) {
  std::string given = Metadata(ctx, "x-agentd-request-id");
  context_->request_id =
      (!given.empty() && ValidateId("request id", given).ok()) ? given : NewId("req_");
  context_->method = method;
  const std::string traceparent = Metadata(ctx, "traceparent");
  std::optional<obs::TraceParent> parent = obs::ParseTraceparent(traceparent);
  if (parent) {
    context_->trace_id = std::move(parent->trace_id);
    context_->parent_span_id = std::move(parent->parent_id);
    context_->trace_flags = parent->flags;
  } else {
    context_->trace_id = obs::NewTraceId();  // absent or invalid: agentd starts the trace
  }
  context_->span_id = obs::NewSpanId();
  obs::ContextScope log_scope(context_.get());
  if (!parent && !traceparent.empty()) spdlog::debug("{}: invalid traceparent ignored", method);
  ctx->AddInitialMetadata("x-agentd-request-id", context_->request_id);
  peer_ = ctx->peer();
  auto identity = auth->Check(Metadata(ctx, "authorization"), call_info());
  if (identity.ok()) {
    identity_ = *std::move(identity);
  } else {
    auth_status_ = identity.status();
  }
  const auto dl = ctx->deadline();
  const auto now = std::chrono::system_clock::now();
  deadline_ = (dl - now > std::chrono::hours(24 * 365)) ? absl::InfiniteFuture() : absl::FromChrono(dl);
}

grpc::Status CallScope::Done(const absl::Status& status) const {
  const double ms = absl::ToDoubleMilliseconds(absl::Now() - start_);
  // The log formats add the request and trace ids (metrics/log_format.h).
  obs::ContextScope log_scope(context_.get());
  if (status.ok()) {
    spdlog::debug("{} OK {:.3f}ms", method_, ms);
  } else if (status.code() == absl::StatusCode::kInternal ||
             status.code() == absl::StatusCode::kDataLoss ||
             status.code() == absl::StatusCode::kUnknown) {
    spdlog::error("{} {} {:.3f}ms: {}", method_,
                  absl::StatusCodeToString(status.code()), ms, std::string(status.message()));
  } else {
    spdlog::info("{} {} {:.3f}ms: {}", method_,
                 absl::StatusCodeToString(status.code()), ms, std::string(status.message()));
  }
  return ToGrpcStatus(status);
}

grpc::ServerUnaryReactor* FinishUnary(grpc::CallbackServerContext* ctx, const CallScope& scope,
                                      const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(scope.Done(status));
  return reactor;
}

std::string SessionHeader(const grpc::CallbackServerContext* ctx) {
  return Metadata(ctx, "x-agentd-session");
}

}  // namespace agentd::rpc
