// The connection shared by a Client and the Sessions it hands out: the channel, the stubs,
// the resolved options, and the one place that builds call contexts, maps status codes and
// retries unary calls. Internal (not installed).
//
// Threading: immutable after Create(); every method may be called from any thread.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>
#include <grpcpp/support/status.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agentd/client.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "agentd/v1/memory.grpc.pb.h"
#include "agentd/v1/project.grpc.pb.h"
#include "agentd/v1/session.grpc.pb.h"
#include "sdk/retry.h"

namespace agentd::internal {

/// grpc::Status -> absl::Status, code for code, keeping the server's message.
absl::Status FromGrpc(const grpc::Status& status);
/// The same, for a finished call of `ctx`: a failure whose trailing metadata names the turn the
/// server recorded (`x-agentd-turn-id`) carries it as kRecordedTurnPayload.
absl::Status FromGrpc(const grpc::Status& status, const grpc::ClientContext& ctx);

/// `options` with the environment's defaults applied ($AGENTD_ADDR, $AGENTD_API_KEY).
ClientOptions ResolveOptions(ClientOptions options);

class Core {
 public:
  /// Checks the options, reads the TLS files and builds the channel (no connection yet).
  static absl::StatusOr<std::shared_ptr<Core>> Create(ClientOptions options);

  const ClientOptions& options() const { return options_; }
  const RetryPolicy& retry_policy() const { return policy_; }

  v1::AgentService::Stub& agents() const { return *agents_; }
  v1::SessionService::Stub& sessions() const { return *sessions_; }
  v1::MemoryService::Stub& memory() const { return *memory_; }
  v1::ProjectService::Stub& projects() const { return *projects_; }

  /// A context for one attempt: `authorization` (when there is a key), `x-agentd-session`
  /// (when `session_id` is non-empty) and a deadline `deadline` from now (none if infinite).
  std::unique_ptr<grpc::ClientContext> NewContext(const std::string& session_id,
                                                  absl::Duration deadline) const;

  /// Runs a unary call: `attempt(ClientContext*, Response*)` returns its grpc::Status; failed
  /// attempts are retried according to `retry_class`, each with a fresh context and deadline.
  template <typename Response, typename Attempt>
  absl::StatusOr<Response> Call(RetryClass retry_class, const std::string& session_id,
                                absl::Duration deadline, Attempt attempt) const {
    Retrier retrier(policy_, retry_class);
    for (;;) {
      std::unique_ptr<grpc::ClientContext> ctx = NewContext(session_id, deadline);
      Response response;
      const grpc::Status st = attempt(ctx.get(), &response);
      if (st.ok()) return response;
      absl::Status status = FromGrpc(st, *ctx);
      if (!retrier.ShouldRetry(status)) return status;
    }
  }

  /// Call() with the default per-call deadline.
  template <typename Response, typename Attempt>
  absl::StatusOr<Response> Call(RetryClass retry_class, const std::string& session_id,
                                Attempt attempt) const {
    return Call<Response>(retry_class, session_id, options_.deadline, std::move(attempt));
  }

 private:
  Core() = default;

  ClientOptions options_;
  RetryPolicy policy_;
  std::string bearer_;  // "Bearer <key>", or empty
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentService::Stub> agents_;
  std::unique_ptr<v1::SessionService::Stub> sessions_;
  std::unique_ptr<v1::MemoryService::Stub> memory_;
  std::unique_ptr<v1::ProjectService::Stub> projects_;
};

}  // namespace agentd::internal
