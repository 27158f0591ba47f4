// AgentService over gRPC: proto in, AgentManager call, proto out. Nothing else.
#pragma once

#include "agentd/v1/agent.grpc.pb.h"
#include "auth/authenticator.h"
#include "runtime/agent_manager.h"

namespace agentd::rpc {

class AgentServiceImpl final : public v1::AgentService::CallbackService {
 public:
  AgentServiceImpl(runtime::AgentManager* agents, auth::Authenticator* auth)
      : agents_(agents), auth_(auth) {}

  grpc::ServerUnaryReactor* CreateAgent(grpc::CallbackServerContext* ctx,
                                        const v1::CreateAgentRequest* request,
                                        v1::Agent* response) override;
  grpc::ServerUnaryReactor* GetAgent(grpc::CallbackServerContext* ctx,
                                     const v1::GetAgentRequest* request,
                                     v1::Agent* response) override;
  grpc::ServerUnaryReactor* ListAgents(grpc::CallbackServerContext* ctx,
                                       const v1::ListAgentsRequest* request,
                                       v1::ListAgentsResponse* response) override;
  grpc::ServerUnaryReactor* UpdateAgent(grpc::CallbackServerContext* ctx,
                                        const v1::UpdateAgentRequest* request,
                                        v1::Agent* response) override;
  grpc::ServerUnaryReactor* DeleteAgent(grpc::CallbackServerContext* ctx,
                                        const v1::DeleteAgentRequest* request,
                                        google::protobuf::Empty* response) override;

 private:
  runtime::AgentManager* agents_;
  auth::Authenticator* auth_;
};

}  // namespace agentd::rpc
