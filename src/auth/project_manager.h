// ProjectManager: the Projects API (projects, keys, usage, limits, audit) without gRPC.
// Every method takes the authenticated caller; which project it acts on is decided by
// TargetProject (own project; any project for the operator; NOT_FOUND otherwise).
#pragma once

#include "absl/status/statusor.h"
#include "agentd/v1/project.pb.h"
#include "auth/audit.h"
#include "auth/authenticator.h"
#include "auth/limits.h"
#include "store/context_store.h"

namespace agentd::auth {

class ProjectManager {
 public:
  ProjectManager(store::ContextStore* store, LimitEnforcer* limits)
      : store_(store), limits_(limits) {}

  /// Operator only (the policy table enforces it). Name: 1..128 printable characters. The id
  /// is generated ("proj_" + hex).
  absl::StatusOr<v1::Project> CreateProject(const Identity& caller, const CallInfo& call,
                                            const v1::CreateProjectRequest& request);
  absl::StatusOr<v1::Project> GetProject(const Identity& caller,
                                         const v1::GetProjectRequest& request);
  /// The operator sees every project; anyone else only their own.
  absl::StatusOr<v1::ListProjectsResponse> ListProjects(const Identity& caller,
                                                        const v1::ListProjectsRequest& request);
  /// Role must be ADMIN, MEMBER or READER (INVALID_ARGUMENT otherwise). Returns the secret once.
  absl::StatusOr<v1::CreateApiKeyResponse> CreateApiKey(const Identity& caller,
                                                        const CallInfo& call,
                                                        const v1::CreateApiKeyRequest& request);
  absl::StatusOr<v1::ListApiKeysResponse> ListApiKeys(const Identity& caller,
                                                      const v1::ListApiKeysRequest& request);
  /// A key of another project is NOT_FOUND (unless the caller is the operator).
  absl::Status RevokeApiKey(const Identity& caller, const CallInfo& call,
                            const v1::RevokeApiKeyRequest& request);
  /// Rows by group_by (UNSPECIFIED = DAY) over the UTC days overlapping [start_time, end_time)
  /// (unset start = the beginning; unset end = now); total = the sum of the rows.
  absl::StatusOr<v1::GetUsageResponse> GetUsage(const Identity& caller,
                                                const v1::GetUsageRequest& request);
  /// Negative values are INVALID_ARGUMENT. Takes effect on the next model call.
  absl::StatusOr<v1::Project> SetLimits(const Identity& caller, const CallInfo& call,
                                        const v1::SetLimitsRequest& request);
  absl::StatusOr<v1::ListAuditEventsResponse> ListAuditEvents(
      const Identity& caller, const v1::ListAuditEventsRequest& request);

 private:
  store::ContextStore* store_;
  LimitEnforcer* limits_;
};

}  // namespace agentd::auth
