// AgentManager: create, read, version and delete agents (the domain side of AgentService).
// Thread-safe; owns nothing but references to the store and the router (both outlive it).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "agentd/v1/agent.pb.h"
#include "backend/model_router.h"
#include "store/context_store.h"
#include "runtime/validation.h"
#include "tools/tool_gateway.h"

namespace agentd::runtime {

class AgentManager {
 public:
  /// `tools` (may be null: no tool servers) checks "mcp:..." / "http:..." BUILTIN tools against
  /// the configuration and the project's allow-list; it outlives this.
  AgentManager(store::ContextStore* store, const backend::ModelRouter* router,
               tools::ToolGateway* tools = nullptr)
      : store_(store), router_(router), tools_(tools) {}

  /// Validates and stores version 1. agent_id empty: generated ("agent_" + hex).
  absl::StatusOr<v1::Agent> Create(const std::string& project_id, v1::Agent agent);
  /// version 0 = latest.
  absl::StatusOr<v1::Agent> Get(const std::string& project_id, const std::string& agent_id,
                                int64_t version);
  absl::StatusOr<store::AgentPage> List(const std::string& project_id, int32_t page_size,
                                        const std::string& page_token);
  /// Stores a new version (latest + 1) with every field of `agent` except id/version/times.
  absl::StatusOr<v1::Agent> Update(const std::string& project_id, v1::Agent agent);
  absl::Status Delete(const std::string& project_id, const std::string& agent_id);

 private:
  /// Null without a gateway; else a check bound to the project's allow-list (read once).
  McpToolCheck GatewayCheck(const std::string& project_id) const;

  store::ContextStore* store_;
  const backend::ModelRouter* router_;
  tools::ToolGateway* tools_;
};

}  // namespace agentd::runtime
