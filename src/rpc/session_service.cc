#include "rpc/session_service.h"

#include "rpc/reactors.h"
#include "rpc/rpc_context.h"

namespace agentd::rpc {
grpc::ServerUnaryReactor* SessionServiceImpl::CreateSession(grpc::CallbackServerContext* ctx,
                                                            const v1::CreateSessionRequest* request,
                                                            v1::Session* response) {
  CallScope scope(ctx, "CreateSession");
  return FinishUnary(ctx, scope,
                     Assign(sessions_->Create(scope.identity().project_id, *request), response));
}

grpc::ServerUnaryReactor* SessionServiceImpl::GetSession(grpc::CallbackServerContext* ctx,
                                                         const v1::GetSessionRequest* request,
                                                         v1::Session* response) {
  CallScope scope(ctx, "GetSession");
  return FinishUnary(
      ctx, scope, Assign(sessions_->Get(scope.identity().project_id, request->session_id()), response));
}

grpc::ServerUnaryReactor* SessionServiceImpl::ListSessions(grpc::CallbackServerContext* ctx,
                                                           const v1::ListSessionsRequest* request,
                                                           v1::ListSessionsResponse* response) {
  CallScope scope(ctx, "ListSessions");
  return FinishUnary(ctx, scope,
                     Assign(sessions_->List(scope.identity().project_id, *request), response));
}

grpc::ServerUnaryReactor* SessionServiceImpl::DeleteSession(grpc::CallbackServerContext* ctx,
                                                            const v1::DeleteSessionRequest* request,
                                                            google::protobuf::Empty*) {
  CallScope scope(ctx, "DeleteSession");
  return FinishUnary(ctx, scope,
                     sessions_->Delete(scope.identity().project_id, request->session_id()));
}

grpc::ServerUnaryReactor* SessionServiceImpl::RunTurn(grpc::CallbackServerContext* ctx,
                                                      const v1::RunTurnRequest* request,
                                                      v1::TurnResult* response) {
  return StartRunTurn(ctx, sessions_, request, response);
}

grpc::ServerWriteReactor<v1::TurnEvent>* SessionServiceImpl::StreamTurn(
    grpc::CallbackServerContext* ctx, const v1::RunTurnRequest* request) {
  return StartStreamTurn(ctx, sessions_, request);
}

grpc::ServerUnaryReactor* SessionServiceImpl::CancelTurn(grpc::CallbackServerContext* ctx,
                                                         const v1::CancelTurnRequest* request,
                                                         v1::TurnResult* response) {
  auto scope = std::make_shared<CallScope>(ctx, "CancelTurn");
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
  CallScope scope(ctx, "ListEvents");
  return FinishUnary(ctx, scope,
                     Assign(sessions_->ListEvents(scope.identity().project_id, *request), response));
}

grpc::ServerWriteReactor<v1::Event>* SessionServiceImpl::WatchEvents(
    grpc::CallbackServerContext* ctx, const v1::WatchEventsRequest* request) {
  return StartWatch(ctx, sessions_, request);
}

}  // namespace agentd::rpc
