#include "rpc/tool_service.h"

#include "common/status_macros.h"
#include "rpc/rpc_context.h"

namespace agentd::rpc {

grpc::ServerUnaryReactor* ToolServiceImpl::ListToolServers(
    grpc::CallbackServerContext* ctx, const v1::ListToolServersRequest* request,
    v1::ListToolServersResponse* response) {
  return Unary(ctx, "ListToolServers", auth_, [&](const CallScope& scope) -> absl::Status {
    if (gateway_ == nullptr) return absl::OkStatus();
    AGENTD_ASSIGN_OR_RETURN(v1::ProjectLimits limits,
                            limits_->Limits(scope.identity().project_id));
    *response = gateway_->List(tools::ToolAllowList::FromLimits(limits), request->refresh());
    return absl::OkStatus();
  });
}

}  // namespace agentd::rpc
