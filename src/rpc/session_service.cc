#include "rpc/session_service.h"

#include "rpc/reactors.h"
#include "rpc/rpc_context.h"

namespace agentd::rpc {
grpc::ServerUnaryReactor* SessionServiceImpl::CreateSession(grpc::CallbackServerContext* ctx,
                                                            const v1::CreateSessionRequest* request,
                                                            v1::Session* response) {
  return Unary(ctx, "CreateSession", auth_, [&](const CallScope& scope) {
    return Assign(sessions_->Create(scope.identity().project_id, *request), response);
  });
}

grpc::ServerUnaryReactor* SessionServiceImpl::GetSession(grpc::CallbackServerContext* ctx,
                                                         const v1::GetSessionRequest* request,
                                                         v1::Session* response) {
  return Unary(ctx, "GetSession", auth_, [&](const CallScope& scope) {
    return Assign(sessions_->Get(scope.identity().project_id, request->session_id()), response);
  });
}

grpc::ServerUnaryReactor* SessionServiceImpl::ListSessions(grpc::CallbackServerContext* ctx,
                                                           const v1::ListSessionsRequest* request,
                                                           v1::ListSessionsResponse* response) {
  return Unary(ctx, "ListSessions", auth_, [&](const CallScope& scope) {
    return Assign(sessions_->List(scope.identity().project_id, *request), response);
  });
}

grpc::ServerUnaryReactor* SessionServiceImpl::DeleteSession(grpc::CallbackServerContext* ctx,
                                                            const v1::DeleteSessionRequest* request,
                                                            google::protobuf::Empty*) {
  return Unary(ctx, "DeleteSession", auth_, [&](const CallScope& scope) {
    return sessions_->Delete(scope.identity().project_id, request->session_id());
  });
}

grpc::ServerUnaryReactor* SessionServiceImpl::RunTurn(grpc::CallbackServerContext* ctx,
                                                      const v1::RunTurnRequest* request,
                                                      v1::TurnResult* response) {
  return StartRunTurn(ctx, sessions_, auth_, request, response);
}

grpc::ServerWriteReactor<v1::TurnEvent>* SessionServiceImpl::StreamTurn(
    grpc::CallbackServerContext* ctx, const v1::RunTurnRequest* request) {
  return StartStreamTurn(ctx, sessions_, auth_, request);
}

grpc::ServerUnaryReactor* SessionServiceImpl::CancelTurn(grpc::CallbackServerContext* ctx,
                                                         const v1::CancelTurnRequest* request,
                                                         v1::TurnResult* response) {
  auto scope = std::make_shared<CallScope>(ctx, "CancelTurn", auth_);
  if (!scope->ok()) return FinishUnary(ctx, *scope, scope->auth_status());
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  sessions_->CancelTurn(scope->identity().project_id, request->session_id(),
                        [scope, reactor, response](const absl::Status& st, const v1::TurnResult& r) {
                          if (st.ok() || !r.turn_id().empty()) *response = r;
                          reactor->Finish(scope->Done(st));
                        });
  return reactor;
}

grpc::ServerUnaryReactor* SessionServiceImpl::ListEvents(grpc::CallbackServerContext* ctx,
                                                         const v1::ListEventsRequest* request,
                                                         v1::ListEventsResponse* response) {
  return Unary(ctx, "ListEvents", auth_, [&](const CallScope& scope) {
    return Assign(sessions_->ListEvents(scope.identity().project_id, *request), response);
  });
}

grpc::ServerWriteReactor<v1::Event>* SessionServiceImpl::WatchEvents(
    grpc::CallbackServerContext* ctx, const v1::WatchEventsRequest* request) {
  return StartWatch(ctx, sessions_, auth_, request);
}

// ---- Forks, tool state, export/import, replay ----------------------------------------------

grpc::ServerUnaryReactor* SessionServiceImpl::ForkSession(grpc::CallbackServerContext* ctx,
                                                          const v1::ForkSessionRequest* request,
                                                          v1::Session* response) {
  return Unary(ctx, "ForkSession", auth_, [&](const CallScope& scope) {
    return Assign(sessions_->Fork(scope.identity().project_id, *request), response);
  });
}

grpc::ServerUnaryReactor* SessionServiceImpl::GetState(grpc::CallbackServerContext* ctx,
                                                       const v1::GetStateRequest* request,
                                                       v1::StateEntry* response) {
  return Unary(ctx, "GetState", auth_, [&](const CallScope& scope) {
    return Assign(sessions_->GetState(scope.identity().project_id, *request), response);
  });
}

grpc::ServerUnaryReactor* SessionServiceImpl::PutState(grpc::CallbackServerContext* ctx,
                                                       const v1::PutStateRequest* request,
                                                       v1::StateEntry* response) {
  return Unary(ctx, "PutState", auth_, [&](const CallScope& scope) {
    return Assign(sessions_->PutState(scope.identity().project_id, *request), response);
  });
}

grpc::ServerUnaryReactor* SessionServiceImpl::ListState(grpc::CallbackServerContext* ctx,
                                                        const v1::ListStateRequest* request,
                                                        v1::ListStateResponse* response) {
  return Unary(ctx, "ListState", auth_, [&](const CallScope& scope) {
    return Assign(sessions_->ListState(scope.identity().project_id, *request), response);
  });
}

grpc::ServerWriteReactor<v1::ExportChunk>* SessionServiceImpl::ExportSession(
    grpc::CallbackServerContext* ctx, const v1::ExportSessionRequest* request) {
  return StartExport(ctx, sessions_, auth_, request);
}

grpc::ServerReadReactor<v1::ExportChunk>* SessionServiceImpl::ImportSession(
    grpc::CallbackServerContext* ctx, v1::Session* response) {
  return StartImport(ctx, sessions_, auth_, response, max_import_bytes_);
}

grpc::ServerUnaryReactor* SessionServiceImpl::ReplaySession(
    grpc::CallbackServerContext* ctx, const v1::ReplaySessionRequest* request,
    v1::ReplaySessionResponse* response) {
  return StartReplay(ctx, sessions_, auth_, request, response);
}

}  // namespace agentd::rpc
