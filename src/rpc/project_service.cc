#include "rpc/project_service.h"

#include "rpc/rpc_context.h"

namespace agentd::rpc {

grpc::ServerUnaryReactor* ProjectServiceImpl::CreateProject(grpc::CallbackServerContext* ctx,
                                                            const v1::CreateProjectRequest* request,
                                                            v1::Project* response) {
  return Unary(ctx, "CreateProject", auth_, [&](const CallScope& scope) {
    return Assign(projects_->CreateProject(scope.identity(), scope.call_info(), *request),
                  response);
  });
}

grpc::ServerUnaryReactor* ProjectServiceImpl::GetProject(grpc::CallbackServerContext* ctx,
                                                         const v1::GetProjectRequest* request,
                                                         v1::Project* response) {
  return Unary(ctx, "GetProject", auth_, [&](const CallScope& scope) {
    return Assign(projects_->GetProject(scope.identity(), *request), response);
  });
}

grpc::ServerUnaryReactor* ProjectServiceImpl::ListProjects(grpc::CallbackServerContext* ctx,
                                                           const v1::ListProjectsRequest* request,
                                                           v1::ListProjectsResponse* response) {
  return Unary(ctx, "ListProjects", auth_, [&](const CallScope& scope) {
    return Assign(projects_->ListProjects(scope.identity(), *request), response);
  });
}

grpc::ServerUnaryReactor* ProjectServiceImpl::CreateApiKey(grpc::CallbackServerContext* ctx,
                                                           const v1::CreateApiKeyRequest* request,
                                                           v1::CreateApiKeyResponse* response) {
  return Unary(ctx, "CreateApiKey", auth_, [&](const CallScope& scope) {
    return Assign(projects_->CreateApiKey(scope.identity(), scope.call_info(), *request),
                  response);
  });
}

grpc::ServerUnaryReactor* ProjectServiceImpl::ListApiKeys(grpc::CallbackServerContext* ctx,
                                                          const v1::ListApiKeysRequest* request,
                                                          v1::ListApiKeysResponse* response) {
  return Unary(ctx, "ListApiKeys", auth_, [&](const CallScope& scope) {
    return Assign(projects_->ListApiKeys(scope.identity(), *request), response);
  });
}

grpc::ServerUnaryReactor* ProjectServiceImpl::RevokeApiKey(grpc::CallbackServerContext* ctx,
                                                           const v1::RevokeApiKeyRequest* request,
                                                           google::protobuf::Empty*) {
  return Unary(ctx, "RevokeApiKey", auth_, [&](const CallScope& scope) {
    return projects_->RevokeApiKey(scope.identity(), scope.call_info(), *request);
  });
}

grpc::ServerUnaryReactor* ProjectServiceImpl::GetUsage(grpc::CallbackServerContext* ctx,
                                                       const v1::GetUsageRequest* request,
                                                       v1::GetUsageResponse* response) {
  return Unary(ctx, "GetUsage", auth_, [&](const CallScope& scope) {
    return Assign(projects_->GetUsage(scope.identity(), *request), response);
  });
}

grpc::ServerUnaryReactor* ProjectServiceImpl::SetLimits(grpc::CallbackServerContext* ctx,
                                                        const v1::SetLimitsRequest* request,
                                                        v1::Project* response) {
  return Unary(ctx, "SetLimits", auth_, [&](const CallScope& scope) {
    return Assign(projects_->SetLimits(scope.identity(), scope.call_info(), *request), response);
  });
}

grpc::ServerUnaryReactor* ProjectServiceImpl::ListAuditEvents(
    grpc::CallbackServerContext* ctx, const v1::ListAuditEventsRequest* request,
    v1::ListAuditEventsResponse* response) {
  return Unary(ctx, "ListAuditEvents", auth_, [&](const CallScope& scope) {
    return Assign(projects_->ListAuditEvents(scope.identity(), *request), response);
  });
}

}  // namespace agentd::rpc
