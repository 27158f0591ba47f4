// SessionService over gRPC. Unary RPCs map straight onto SessionManager; RunTurn, StreamTurn,
// CancelTurn, WatchEvents, ExportSession, ImportSession and ReplaySession use reactors
// (reactors.h) so no gRPC thread waits on a model or a slow client.
#pragma once

#include "agentd/v1/session.grpc.pb.h"
#include "auth/authenticator.h"
#include "runtime/session_manager.h"
#include "runtime/session_transfer.h"

namespace agentd::rpc {

class SessionServiceImpl final : public v1::SessionService::CallbackService {
 public:
  /// `max_import_bytes` caps one ImportSession stream (the sum of its chunks).
  SessionServiceImpl(runtime::SessionManager* sessions, auth::Authenticator* auth,
                     size_t max_import_bytes = runtime::kDefaultMaxImportBytes)
      : sessions_(sessions), auth_(auth), max_import_bytes_(max_import_bytes) {}

  grpc::ServerUnaryReactor* CreateSession(grpc::CallbackServerContext* ctx,
                                          const v1::CreateSessionRequest* request,
                                          v1::Session* response) override;
  grpc::ServerUnaryReactor* GetSession(grpc::CallbackServerContext* ctx,
                                       const v1::GetSessionRequest* request,
                                       v1::Session* response) override;
  grpc::ServerUnaryReactor* ListSessions(grpc::CallbackServerContext* ctx,
                                         const v1::ListSessionsRequest* request,
                                         v1::ListSessionsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteSession(grpc::CallbackServerContext* ctx,
                                          const v1::DeleteSessionRequest* request,
                                          google::protobuf::Empty* response) override;
  grpc::ServerUnaryReactor* RunTurn(grpc::CallbackServerContext* ctx,
                                    const v1::RunTurnRequest* request,
                                    v1::TurnResult* response) override;
  grpc::ServerWriteReactor<v1::TurnEvent>* StreamTurn(grpc::CallbackServerContext* ctx,
                                                      const v1::RunTurnRequest* request) override;
  grpc::ServerUnaryReactor* CancelTurn(grpc::CallbackServerContext* ctx,
                                       const v1::CancelTurnRequest* request,
                                       v1::TurnResult* response) override;
  grpc::ServerUnaryReactor* ListEvents(grpc::CallbackServerContext* ctx,
                                       const v1::ListEventsRequest* request,
                                       v1::ListEventsResponse* response) override;
  grpc::ServerWriteReactor<v1::Event>* WatchEvents(grpc::CallbackServerContext* ctx,
                                                   const v1::WatchEventsRequest* request) override;

  grpc::ServerUnaryReactor* ForkSession(grpc::CallbackServerContext* ctx,
                                        const v1::ForkSessionRequest* request,
                                        v1::Session* response) override;
  grpc::ServerUnaryReactor* GetState(grpc::CallbackServerContext* ctx,
                                     const v1::GetStateRequest* request,
                                     v1::StateEntry* response) override;
  grpc::ServerUnaryReactor* PutState(grpc::CallbackServerContext* ctx,
                                     const v1::PutStateRequest* request,
                                     v1::StateEntry* response) override;
  grpc::ServerUnaryReactor* ListState(grpc::CallbackServerContext* ctx,
                                      const v1::ListStateRequest* request,
                                      v1::ListStateResponse* response) override;
  grpc::ServerWriteReactor<v1::ExportChunk>* ExportSession(
      grpc::CallbackServerContext* ctx, const v1::ExportSessionRequest* request) override;
  grpc::ServerReadReactor<v1::ExportChunk>* ImportSession(grpc::CallbackServerContext* ctx,
                                                          v1::Session* response) override;
  grpc::ServerUnaryReactor* ReplaySession(grpc::CallbackServerContext* ctx,
                                          const v1::ReplaySessionRequest* request,
                                          v1::ReplaySessionResponse* response) override;

 private:
  runtime::SessionManager* sessions_;
  auth::Authenticator* auth_;
  const size_t max_import_bytes_;
};

}  // namespace agentd::rpc
