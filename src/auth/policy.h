// Authorization: the one table saying which roles may call which RPC.
#pragma once

#include "absl/strings/string_view.h"
#include "agentd/v1/project.pb.h"

namespace agentd::auth {

/// What an RPC needs.
enum class Access {
  kRead,          // READER, MEMBER, ADMIN
  kWrite,         // MEMBER, ADMIN
  kProjectAdmin,  // ADMIN (of the project the call targets)
  kOperator,      // ADMIN of the `default` project
};

/// The `default` project: created at bootstrap; its ADMIN keys are the operator.
inline constexpr absl::string_view kDefaultProject = "default";

/// The access an RPC needs, by its method name ("CreateAgent", "ServerReflectionInfo", ...).
/// Unknown methods are denied (returns false): every served RPC must be in the table.
bool AccessFor(absl::string_view method, Access* access);

/// Whether `role` (of a key in `project_id`) satisfies `access`.
bool RoleAllows(v1::ApiKeyRole role, absl::string_view project_id, Access access);

/// Short name of a role ("ADMIN", "MEMBER", "READER").
absl::string_view RoleName(v1::ApiKeyRole role);

}  // namespace agentd::auth
