// ProjectService over gRPC: authenticate, then hand the request to auth::ProjectManager.
#pragma once

#include "agentd/v1/project.grpc.pb.h"
#include "auth/authenticator.h"
#include "auth/project_manager.h"

namespace agentd::rpc {

class ProjectServiceImpl final : public v1::ProjectService::CallbackService {
 public:
  ProjectServiceImpl(auth::ProjectManager* projects, auth::Authenticator* auth)
      : projects_(projects), auth_(auth) {}

  grpc::ServerUnaryReactor* CreateProject(grpc::CallbackServerContext* ctx,
                                          const v1::CreateProjectRequest* request,
                                          v1::Project* response) override;
  grpc::ServerUnaryReactor* GetProject(grpc::CallbackServerContext* ctx,
                                       const v1::GetProjectRequest* request,
                                       v1::Project* response) override;
  grpc::ServerUnaryReactor* ListProjects(grpc::CallbackServerContext* ctx,
                                         const v1::ListProjectsRequest* request,
                                         v1::ListProjectsResponse* response) override;
  grpc::ServerUnaryReactor* CreateApiKey(grpc::CallbackServerContext* ctx,
                                         const v1::CreateApiKeyRequest* request,
                                         v1::CreateApiKeyResponse* response) override;
  grpc::ServerUnaryReactor* ListApiKeys(grpc::CallbackServerContext* ctx,
                                        const v1::ListApiKeysRequest* request,
                                        v1::ListApiKeysResponse* response) override;
  grpc::ServerUnaryReactor* RevokeApiKey(grpc::CallbackServerContext* ctx,
                                         const v1::RevokeApiKeyRequest* request,
                                         google::protobuf::Empty* response) override;
  grpc::ServerUnaryReactor* GetUsage(grpc::CallbackServerContext* ctx,
                                     const v1::GetUsageRequest* request,
                                     v1::GetUsageResponse* response) override;
  grpc::ServerUnaryReactor* SetLimits(grpc::CallbackServerContext* ctx,
                                      const v1::SetLimitsRequest* request,
                                      v1::Project* response) override;
  grpc::ServerUnaryReactor* ListAuditEvents(grpc::CallbackServerContext* ctx,
                                            const v1::ListAuditEventsRequest* request,
                                            v1::ListAuditEventsResponse* response) override;

 private:
  auth::ProjectManager* projects_;
  auth::Authenticator* auth_;
};

}  // namespace agentd::rpc
