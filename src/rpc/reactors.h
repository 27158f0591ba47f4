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
                                       const v1::RunTurnRequest* request, v1::TurnResult* response);

/// StreamTurn: streams durable events and text deltas, then the TurnResult.
grpc::ServerWriteReactor<v1::TurnEvent>* StartStreamTurn(grpc::CallbackServerContext* ctx,
                                                         runtime::SessionManager* sessions,
                                                         const v1::RunTurnRequest* request);

/// WatchEvents: history after the cursor, then live events until the client cancels.
grpc::ServerWriteReactor<v1::Event>* StartWatch(grpc::CallbackServerContext* ctx,
                                                runtime::SessionManager* sessions,
                                                const v1::WatchEventsRequest* request);

}  // namespace agentd::rpc
