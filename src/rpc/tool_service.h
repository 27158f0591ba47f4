// ToolService over gRPC: the configured tool servers (MCP, HTTP) with their tools, settings and
// health, and whether the caller's project may use each tool (policy: any role may read).
#pragma once

#include "agentd/v1/tool.grpc.pb.h"
#include "auth/authenticator.h"
#include "auth/limits.h"
#include "tools/tool_gateway.h"

namespace agentd::rpc {

class ToolServiceImpl final : public v1::ToolService::CallbackService {
 public:
  /// `gateway` may be null (no tool servers configured: an empty list). All outlive the service.
  ToolServiceImpl(tools::ToolGateway* gateway, auth::LimitEnforcer* limits,
                  auth::Authenticator* auth)
      : gateway_(gateway), limits_(limits), auth_(auth) {}

  /// Runs on a gRPC callback thread; with `refresh` it waits for each MCP server's tools/list
  /// (a few seconds at most per server).
  grpc::ServerUnaryReactor* ListToolServers(grpc::CallbackServerContext* ctx,
                                            const v1::ListToolServersRequest* request,
                                            v1::ListToolServersResponse* response) override;

 private:
  tools::ToolGateway* gateway_;
  auth::LimitEnforcer* limits_;
  auth::Authenticator* auth_;
};

}  // namespace agentd::rpc
