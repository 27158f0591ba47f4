// Reactors for the turn and watch RPCs. Each deletes itself in OnDone(); each calls Finish()
// exactly once, after the turn (or the watch) is over, also when the client cancelled.
#pragma once

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_callback.h>

#include "agentd/v1/session.grpc.pb.h"
#include "rpc/rpc_context.h"
#include "runtime/session_manager.h"

namespace agentd::rpc {

/// Trailing metadata of a RunTurn/StreamTurn that fails with the outcome of a turn the server
/// ran and recorded as failed (TURN_FAILED, status FAILED): that turn's id. Absent when nothing
/// was recorded (rejected before running, transport failure) and for turns cancelled by a
/// shutdown. SDKs do not retry such a failure on their own.
inline constexpr char kRecordedTurnHeader[] = "x-agentd-turn-id";

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

// ---- Export, import and replay (transfer_reactors.cc) ----------------------------------------

/// ExportSession: writes the export's chunks one at a time, reading the next only when the
/// previous one was accepted by gRPC's flow control (a slow reader costs no memory).
grpc::ServerWriteReactor<v1::ExportChunk>* StartExport(grpc::CallbackServerContext* ctx,
                                                       runtime::SessionManager* sessions,
                                                       auth::Authenticator* auth,
                                                       const v1::ExportSessionRequest* request);

/// ImportSession: validates each chunk as it arrives (ending the call at the first bad one, or
/// past `max_bytes` in all) and creates the session when the client half-closes.
grpc::ServerReadReactor<v1::ExportChunk>* StartImport(grpc::CallbackServerContext* ctx,
                                                      runtime::SessionManager* sessions,
                                                      auth::Authenticator* auth,
                                                      v1::Session* response, size_t max_bytes);

/// ReplaySession: finishes when the replay is over; a client that goes away cancels it.
grpc::ServerUnaryReactor* StartReplay(grpc::CallbackServerContext* ctx,
                                      runtime::SessionManager* sessions, auth::Authenticator* auth,
                                      const v1::ReplaySessionRequest* request,
                                      v1::ReplaySessionResponse* response);

}  // namespace agentd::rpc
