#include "runtime/agent_manager.h"

#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "runtime/builtin_tools.h"
#include "runtime/validation.h"

namespace agentd::runtime {
namespace {

absl::Status NotFound(const std::string& agent_id) {
  return absl::NotFoundError(absl::StrCat("agent \"", agent_id, "\" not found"));
}

// Rewrites the store's generic NOT_FOUND into one naming the agent.
absl::Status Named(absl::Status st, const std::string& agent_id) {
  if (absl::IsNotFound(st)) return NotFound(agent_id);
  return st;
}

// BUILTIN tools are stored with agentd's schema (and description, unless the agent gave one),
// so GetAgent shows exactly what the model is told.
void FillBuiltinTools(v1::Agent* agent) {
  for (v1::ToolSpec& t : *agent->mutable_tools()) {
    if (t.kind() == v1::TOOL_KIND_BUILTIN) FillBuiltinToolSpec(&t);
  }
}

}  // namespace

McpToolCheck AgentManager::GatewayCheck(const std::string& project_id) const {
  if (tools_ == nullptr) return nullptr;
  // The project is read at the first gateway tool of the agent, once.
  auto project = std::make_shared<std::optional<absl::StatusOr<v1::Project>>>();
  return [gateway = tools_, store = store_, project_id, project](const v1::ToolSpec& tool,
                                                                 const std::string& field) {
    if (!project->has_value()) *project = store->GetProject(project_id);
    const absl::StatusOr<v1::Project>& p = **project;
    // A project without a record (data from before projects) has no limits.
    if (!p.ok() && !absl::IsNotFound(p.status())) return p.status();
    return gateway->CheckSpec(
        tool, p.ok() ? tools::ToolAllowList::FromLimits(p->limits()) : tools::ToolAllowList(), field);
  };
}

absl::StatusOr<v1::Agent> AgentManager::Create(const std::string& project_id, v1::Agent agent) {
  if (agent.agent_id().empty()) {
    agent.set_agent_id(NewId("agent_"));
  } else {
    AGENTD_RETURN_IF_ERROR(ValidateId("agent.agent_id", agent.agent_id()));
  }
  if (agent.version() != 0) {
    return absl::InvalidArgumentError("agent.version is set by the server; leave it 0");
  }
  AGENTD_RETURN_IF_ERROR(
      ValidateAgentSpec(agent, [this](const std::string& m) { return router_->HasModel(m); },
                        GatewayCheck(project_id)));
  FillBuiltinTools(&agent);
  agent.set_version(1);
  *agent.mutable_create_time() = NowProto();
  *agent.mutable_update_time() = agent.create_time();
  absl::Status st = store_->PutAgentVersion(project_id, agent, /*expected_latest_version=*/0);
  if (absl::IsAlreadyExists(st)) {
    return absl::AlreadyExistsError(absl::StrCat("agent \"", agent.agent_id(), "\" already exists"));
  }
  AGENTD_RETURN_IF_ERROR(st);
  return agent;
}

absl::StatusOr<v1::Agent> AgentManager::Get(const std::string& project_id,
                                            const std::string& agent_id, int64_t version) {
  AGENTD_RETURN_IF_ERROR(ValidateId("agent_id", agent_id));
  if (version < 0) return absl::InvalidArgumentError("version must be >= 0");
  auto agent = store_->GetAgent(project_id, agent_id, version);
  if (!agent.ok()) return Named(agent.status(), agent_id);
  return agent;
}

absl::StatusOr<store::AgentPage> AgentManager::List(const std::string& project_id,
                                                    int32_t page_size,
                                                    const std::string& page_token) {
  AGENTD_ASSIGN_OR_RETURN(int32_t size, NormalizePageSize(page_size, 50));
  return store_->ListAgents(project_id, size, page_token);
}

absl::StatusOr<v1::Agent> AgentManager::Update(const std::string& project_id, v1::Agent agent) {
  AGENTD_RETURN_IF_ERROR(ValidateId("agent.agent_id", agent.agent_id()));
  AGENTD_RETURN_IF_ERROR(
      ValidateAgentSpec(agent, [this](const std::string& m) { return router_->HasModel(m); },
                        GatewayCheck(project_id)));
  FillBuiltinTools(&agent);
  // Optimistic concurrency: retry when another update moved the head in between.
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto latest = store_->GetAgent(project_id, agent.agent_id(), 0);
    if (!latest.ok()) return Named(latest.status(), agent.agent_id());
    agent.set_version(latest->version() + 1);
    *agent.mutable_create_time() = latest->create_time();
    *agent.mutable_update_time() = NowProto();
    absl::Status st = store_->PutAgentVersion(project_id, agent, latest->version());
    if (absl::IsAborted(st)) continue;
    AGENTD_RETURN_IF_ERROR(Named(st, agent.agent_id()));
    return agent;
  }
  return absl::AbortedError("agent was updated concurrently too often; retry");
}

absl::Status AgentManager::Delete(const std::string& project_id, const std::string& agent_id) {
  AGENTD_RETURN_IF_ERROR(ValidateId("agent_id", agent_id));
  return Named(store_->DeleteAgent(project_id, agent_id), agent_id);
}

}  // namespace agentd::runtime
