#include "rpc/agent_service.h"

#include "rpc/rpc_context.h"

namespace agentd::rpc {
grpc::ServerUnaryReactor* AgentServiceImpl::CreateAgent(grpc::CallbackServerContext* ctx,
                                                        const v1::CreateAgentRequest* request,
                                                        v1::Agent* response) {
  return Unary(ctx, "CreateAgent", auth_, [&](const CallScope& scope) {
    return Assign(agents_->Create(scope.identity().project_id, request->agent()), response);
  });
}

grpc::ServerUnaryReactor* AgentServiceImpl::GetAgent(grpc::CallbackServerContext* ctx,
                                                     const v1::GetAgentRequest* request,
                                                     v1::Agent* response) {
  return Unary(ctx, "GetAgent", auth_, [&](const CallScope& scope) {
    return Assign(
        agents_->Get(scope.identity().project_id, request->agent_id(), request->version()),
        response);
  });
}

grpc::ServerUnaryReactor* AgentServiceImpl::ListAgents(grpc::CallbackServerContext* ctx,
                                                       const v1::ListAgentsRequest* request,
                                                       v1::ListAgentsResponse* response) {
  return Unary(ctx, "ListAgents", auth_, [&](const CallScope& scope) {
    auto page =
        agents_->List(scope.identity().project_id, request->page_size(), request->page_token());
    if (page.ok()) {
      for (auto& a : page->agents) *response->add_agents() = std::move(a);
      response->set_next_page_token(page->next_page_token);
    }
    return page.status();
  });
}

grpc::ServerUnaryReactor* AgentServiceImpl::UpdateAgent(grpc::CallbackServerContext* ctx,
                                                        const v1::UpdateAgentRequest* request,
                                                        v1::Agent* response) {
  return Unary(ctx, "UpdateAgent", auth_, [&](const CallScope& scope) {
    return Assign(agents_->Update(scope.identity().project_id, request->agent()), response);
  });
}

grpc::ServerUnaryReactor* AgentServiceImpl::DeleteAgent(grpc::CallbackServerContext* ctx,
                                                        const v1::DeleteAgentRequest* request,
                                                        google::protobuf::Empty*) {
  return Unary(ctx, "DeleteAgent", auth_, [&](const CallScope& scope) {
    return agents_->Delete(scope.identity().project_id, request->agent_id());
  });
}

}  // namespace agentd::rpc
