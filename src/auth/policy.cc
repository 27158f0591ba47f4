#include "auth/policy.h"

namespace agentd::auth {
namespace {

struct MethodAccess {
  absl::string_view method;
  Access access;
};

// Every served RPC, by short name (unique across agentd's services). A method missing here is
// denied to everyone; auth_test checks the table against the generated descriptors.
constexpr MethodAccess kPolicy[] = {
    // AgentService
    {"CreateAgent", Access::kWrite},
    {"GetAgent", Access::kRead},
    {"ListAgents", Access::kRead},
    {"UpdateAgent", Access::kWrite},
    {"DeleteAgent", Access::kWrite},
    // SessionService
    {"CreateSession", Access::kWrite},
    {"GetSession", Access::kRead},
    {"ListSessions", Access::kRead},
    {"DeleteSession", Access::kWrite},
    {"ForkSession", Access::kWrite},
    {"RunTurn", Access::kWrite},
    {"StreamTurn", Access::kWrite},
    {"CancelTurn", Access::kWrite},
    {"ListEvents", Access::kRead},
    {"WatchEvents", Access::kRead},
    {"GetState", Access::kRead},
    {"PutState", Access::kWrite},
    {"ListState", Access::kRead},
    {"ExportSession", Access::kRead},
    {"ImportSession", Access::kWrite},
    {"ReplaySession", Access::kWrite},
    // MemoryService
    {"PutMemory", Access::kWrite},
    {"GetMemory", Access::kRead},
    {"ListMemories", Access::kRead},
    {"SearchMemory", Access::kRead},
    {"DeleteMemory", Access::kWrite},
    // AdminService
    {"CreateBackup", Access::kOperator},
    {"ListBackups", Access::kOperator},
    {"RestoreBackup", Access::kOperator},
    // ToolService
    {"ListToolServers", Access::kRead},
    // ProjectService
    {"CreateProject", Access::kOperator},
    {"GetProject", Access::kRead},
    {"ListProjects", Access::kRead},
    {"CreateApiKey", Access::kProjectAdmin},
    {"ListApiKeys", Access::kProjectAdmin},
    {"RevokeApiKey", Access::kProjectAdmin},
    {"GetUsage", Access::kRead},
    {"SetLimits", Access::kProjectAdmin},
    {"ListAuditEvents", Access::kProjectAdmin},
    // OpenAI-compatible HTTP door (src/openai): operations named like RPCs, same roles.
    {"CreateResponse", Access::kWrite},
    {"GetResponse", Access::kRead},
    {"DeleteResponse", Access::kWrite},
    {"CancelResponse", Access::kWrite},
    {"CreateConversation", Access::kWrite},
    {"GetConversation", Access::kRead},
    {"ListConversationItems", Access::kRead},
    {"DeleteConversation", Access::kWrite},
    {"CreateChatCompletion", Access::kWrite},
    {"ListModels", Access::kRead},
    // grpc.reflection.v1alpha.ServerReflection
    {"ServerReflectionInfo", Access::kRead},
};

}  // namespace

bool AccessFor(absl::string_view method, Access* access) {
  // ~50 short strings: a linear scan costs less than hashing the name would.
  for (const MethodAccess& entry : kPolicy) {
    if (entry.method == method) {
      *access = entry.access;
      return true;
    }
  }
  return false;
}

bool RoleAllows(v1::ApiKeyRole role, absl::string_view project_id, Access access) {
  if (role == v1::API_KEY_ROLE_ADMIN && project_id == kDefaultProject) return true;  // operator
  switch (access) {
    case Access::kRead:
      return role == v1::API_KEY_ROLE_READER || role == v1::API_KEY_ROLE_MEMBER ||
             role == v1::API_KEY_ROLE_ADMIN;
    case Access::kWrite:
      return role == v1::API_KEY_ROLE_MEMBER || role == v1::API_KEY_ROLE_ADMIN;
    case Access::kProjectAdmin:
      return role == v1::API_KEY_ROLE_ADMIN;
    case Access::kOperator:
      return false;
  }
  return false;
}

absl::string_view RoleName(v1::ApiKeyRole role) {
  switch (role) {
    case v1::API_KEY_ROLE_ADMIN:
      return "ADMIN";
    case v1::API_KEY_ROLE_MEMBER:
      return "MEMBER";
    case v1::API_KEY_ROLE_READER:
      return "READER";
    default:
      return "UNSPECIFIED";
  }
}

}  // namespace agentd::auth
