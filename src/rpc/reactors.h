// Reactors for the turn and watch RPCs. Each deletes itself in OnDone(); each calls Finish()
// exactly once, after the turn (or the watch) is over, also when the client cancelled.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include "agentd/v1/session.grpc.pb.h"
#include "rpc/rpc_context.h"
#include "runtime/session_manager.h"

namespace agentd::rpc {

/// RunTurn: starts the turn and finishes with its TurnResult (or error).
grpc::ServerUnaryReactor* StartRunTurn(grpc::CallbackServerContext* ctx,
                                       runtime::SessionManager* sessions,
                                       auth::Authenticator* auth,
                                       const v1::RunTurnRequest* request, v1::TurnResult* response);

/// StreamTurn: streams durable events and text deltas, then the TurnResult.
grpc::ServerWriteReactor<v1::TurnEvent>* StartStreamTurn(grpc::CallbackServerContext* ctx,
                                                         runtime::SessionManager* sessions,
                                       auth::Authenticator* auth,
                                                         const v1::RunTurnRequest* request);

/// WatchEvents: history after the cursor, then live events until the client cancels.
grpc::ServerWriteReactor<v1::Event>* StartWatch(grpc::CallbackServerContext* ctx,
                                                runtime::SessionManager* sessions,
                                       auth::Authenticator* auth,
                                                const v1::WatchEventsRequest* request);

/// A server-streaming call that ends at once with `status` (authentication failures, RPCs that
/// are not built yet).
template <typename Msg>
grpc::ServerWriteReactor<Msg>* FinishedWriter(grpc::Status status) {
  class Reactor final : public grpc::ServerWriteReactor<Msg> {
   public:
    explicit Reactor(grpc::Status st) { this->Finish(std::move(st)); }
    void OnDone() override { delete this; }
  };
  return new Reactor(std::move(status));
}

/// A client-streaming call that ends at once with `status` (nothing is read).
template <typename Msg>
grpc::ServerReadReactor<Msg>* FinishedReader(grpc::Status status) {
  class Reactor final : public grpc::ServerReadReactor<Msg> {
   public:
    explicit Reactor(grpc::Status st) { this->Finish(std::move(st)); }
    void OnDone() override { delete this; }
  };
  return new Reactor(std::move(status));
}

/// UNIMPLEMENTED for an RPC whose feature is not built yet (checked after authentication).
absl::Status NotBuiltYet(const char* method);

}  // namespace agentd::rpc
