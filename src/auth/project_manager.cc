#include "auth/project_manager.h"

#include <cmath>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/civil_time.h"
#include "auth/api_key.h"
#include "auth/policy.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "common/time_util.h"

namespace agentd::auth {
namespace {

constexpr size_t kMaxNameLength = 128;

/// 0..kMaxNameLength bytes (1.. when `required`) without control characters. UTF-8 text is
/// allowed (proto3 has already checked it is valid UTF-8).
absl::Status ValidateName(absl::string_view field, absl::string_view name, bool required) {
  if (name.empty()) {
    return required ? absl::InvalidArgumentError(absl::StrCat(field, " is required"))
                    : absl::OkStatus();
  }
  if (name.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is longer than ", kMaxNameLength, " characters"));
  }
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(field, " may not contain control characters"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidatePageSize(int32_t page_size) {
  if (page_size < 0) return absl::InvalidArgumentError("page_size must not be negative");
  return absl::OkStatus();
}

absl::Status ApiKeyNotFoundError(absl::string_view key_id) {
  return absl::NotFoundError(absl::StrCat("API key ", key_id, " not found"));
}

/// An audit record of a successful ProjectService call.
v1::AuditEvent CallAudit(v1::AuditAction action, absl::string_view project_id,
                         const Identity& caller, const CallInfo& call, absl::string_view detail) {
  v1::AuditEvent event =
      NewAuditEvent(action, project_id, caller.key_id, call.method, "OK", detail);
  event.set_request_id(std::string(call.request_id));
  event.set_peer(std::string(call.peer));
  return event;
}

/// The project a call acts on (TargetProject). When the operator names another project, its id
/// is validated and, if `must_exist`, its existence checked (calls whose store method reports a
/// missing project themselves pass false).
absl::StatusOr<std::string> ResolveProject(store::ContextStore* store, const Identity& caller,
                                           absl::string_view requested, bool must_exist) {
  AGENTD_ASSIGN_OR_RETURN(std::string target, TargetProject(caller, requested));
  if (target == caller.project_id) return target;
  AGENTD_RETURN_IF_ERROR(ValidateId("project_id", target));
  if (must_exist) {
    absl::StatusOr<v1::Project> project = store->GetProject(target);
    if (absl::IsNotFound(project.status())) return ProjectNotFoundError(target);
    AGENTD_RETURN_IF_ERROR(project.status());
  }
  return target;
}

/// `status` with a store NOT_FOUND about `project_id` replaced by the one message callers see.
absl::Status MapProjectNotFound(absl::Status status, absl::string_view project_id) {
  return absl::IsNotFound(status) ? ProjectNotFoundError(project_id) : status;
}

std::string DayName(int32_t day) {
  const absl::CivilDay civil = absl::CivilDay(1970, 1, 1) + day;
  return absl::FormatCivilTime(civil);  // "YYYY-MM-DD"
}

void AddUsage(const v1::Usage& from, v1::Usage* to) {
  to->set_input_tokens(to->input_tokens() + from.input_tokens());
  to->set_output_tokens(to->output_tokens() + from.output_tokens());
  to->set_model_calls(to->model_calls() + from.model_calls());
  to->set_cost_usd(to->cost_usd() + from.cost_usd());
}

std::string LimitsText(const v1::ProjectLimits& l) {
  return absl::StrCat("monthly_budget_usd ", l.monthly_budget_usd(), ", daily_token_limit ",
                      l.daily_token_limit(), ", requests_per_minute ", l.requests_per_minute(),
                      ", allowed_tools ",
                      l.has_allowed_tools()
                          ? absl::StrCat("[", absl::StrJoin(l.allowed_tools().tools(), ", "), "]")
                          : "all");
}

constexpr int kMaxAllowedTools = 256;

// "mcp:<server>", "mcp:<server>/<tool>", "http:<name>", or "*" alone (no restriction).
absl::Status ValidateAllowedTools(const v1::ToolAllowList& list) {
  if (list.tools_size() > kMaxAllowedTools) {
    return absl::InvalidArgumentError(
        absl::StrCat("limits.allowed_tools has more than ", kMaxAllowedTools, " entries"));
  }
  for (int i = 0; i < list.tools_size(); ++i) {
    const std::string& e = list.tools(i);
    const std::string field = absl::StrCat("limits.allowed_tools.tools[", i, "]");
    if (e == "*") {
      if (list.tools_size() != 1) {
        return absl::InvalidArgumentError(field + ": \"*\" (no restriction) must be the only entry");
      }
      continue;
    }
    std::string server = e;
    std::string tool;
    if (absl::StartsWith(e, "http:")) {
      server = e.substr(5);
    } else if (absl::StartsWith(e, "mcp:")) {
      server = e.substr(4);
      const size_t slash = server.find('/');
      if (slash != std::string::npos) {
        tool = server.substr(slash + 1);
        server = server.substr(0, slash);
        if (tool.empty()) server.clear();
      }
    } else {
      server.clear();
    }
    const bool ok = !server.empty() && server.size() <= 128 && tool.size() <= 128 &&
                    server.find_first_of(": ") == std::string::npos &&
                    (absl::StartsWith(e, "mcp:") || server.find('/') == std::string::npos) &&
                    tool.find_first_of(" \t\n") == std::string::npos;
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, " \"", e.substr(0, 200),
          "\": expected \"mcp:<server>\", \"mcp:<server>/<tool>\", \"http:<name>\" or \"*\""));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::Project> ProjectManager::CreateProject(const Identity& caller,
                                                          const CallInfo& call,
                                                          const v1::CreateProjectRequest& request) {
  AGENTD_RETURN_IF_ERROR(ValidateName("name", request.name(), /*required=*/true));
  v1::Project project;
  project.set_project_id(NewId("proj_"));
  project.set_name(request.name());
  *project.mutable_create_time() = NowProto();
  *project.mutable_update_time() = project.create_time();
  const v1::AuditEvent audit =
      CallAudit(v1::AUDIT_ACTION_PROJECT_CREATED, project.project_id(), caller, call,
                absl::StrCat("project ", project.project_id(), " name ", project.name(),
                             " created by key ", caller.key_id));
  AGENTD_RETURN_IF_ERROR(store_->CreateProject(project, audit));
  return project;
}

absl::StatusOr<v1::Project> ProjectManager::GetProject(const Identity& caller,
                                                       const v1::GetProjectRequest& request) {
  AGENTD_ASSIGN_OR_RETURN(std::string target,
                          ResolveProject(store_, caller, request.project_id(), false));
  absl::StatusOr<v1::Project> project = store_->GetProject(target);
  if (!project.ok()) return MapProjectNotFound(project.status(), target);
  return project;
}

absl::StatusOr<v1::ListProjectsResponse> ProjectManager::ListProjects(
    const Identity& caller, const v1::ListProjectsRequest& request) {
  AGENTD_RETURN_IF_ERROR(ValidatePageSize(request.page_size()));
  v1::ListProjectsResponse response;
  if (!caller.is_operator()) {
    absl::StatusOr<v1::Project> own = store_->GetProject(caller.project_id);
    if (own.ok()) {
      *response.add_projects() = *std::move(own);
    } else if (!absl::IsNotFound(own.status())) {
      return own.status();
    }
    return response;
  }
  AGENTD_ASSIGN_OR_RETURN(store::ProjectPage page,
                          store_->ListProjects(request.page_size(), request.page_token()));
  for (v1::Project& p : page.projects) *response.add_projects() = std::move(p);
  response.set_next_page_token(std::move(page.next_page_token));
  return response;
}

absl::StatusOr<v1::CreateApiKeyResponse> ProjectManager::CreateApiKey(
    const Identity& caller, const CallInfo& call, const v1::CreateApiKeyRequest& request) {
  AGENTD_ASSIGN_OR_RETURN(std::string target,
                          ResolveProject(store_, caller, request.project_id(), false));
  const v1::ApiKeyRole role = request.role();
  if (role != v1::API_KEY_ROLE_ADMIN && role != v1::API_KEY_ROLE_MEMBER &&
      role != v1::API_KEY_ROLE_READER) {
    return absl::InvalidArgumentError("role must be ADMIN, MEMBER or READER");
  }
  AGENTD_RETURN_IF_ERROR(ValidateName("name", request.name(), /*required=*/false));

  const GeneratedKey generated = GenerateApiKey();
  storage::ApiKeyRecord record;
  v1::ApiKey* key = record.mutable_key();
  key->set_key_id(generated.key_id);
  key->set_project_id(target);
  key->set_role(role);
  key->set_name(request.name());
  *key->mutable_create_time() = NowProto();
  record.set_salt(NewSalt());
  record.set_hash(HashKey(record.salt(), generated.secret));
  const v1::AuditEvent audit = CallAudit(
      v1::AUDIT_ACTION_API_KEY_CREATED, target, caller, call,
      absl::StrCat("key ", generated.key_id, " role ", RoleName(role), " name ", request.name()));
  AGENTD_RETURN_IF_ERROR(MapProjectNotFound(store_->CreateApiKey(record, audit), target));

  v1::CreateApiKeyResponse response;
  *response.mutable_key() = record.key();
  response.set_secret(generated.secret);
  return response;
}

absl::StatusOr<v1::ListApiKeysResponse> ProjectManager::ListApiKeys(
    const Identity& caller, const v1::ListApiKeysRequest& request) {
  AGENTD_ASSIGN_OR_RETURN(std::string target,
                          ResolveProject(store_, caller, request.project_id(), true));
  AGENTD_ASSIGN_OR_RETURN(std::vector<v1::ApiKey> keys, store_->ListApiKeys(target));
  v1::ListApiKeysResponse response;
  for (v1::ApiKey& k : keys) *response.add_keys() = std::move(k);
  return response;
}

absl::Status ProjectManager::RevokeApiKey(const Identity& caller, const CallInfo& call,
                                          const v1::RevokeApiKeyRequest& request) {
  AGENTD_RETURN_IF_ERROR(ValidateId("key_id", request.key_id()));
  std::string project_id = caller.project_id;
  if (caller.is_operator()) {
    absl::StatusOr<storage::ApiKeyRecord> record = store_->GetApiKey(request.key_id());
    if (absl::IsNotFound(record.status())) return ApiKeyNotFoundError(request.key_id());
    AGENTD_RETURN_IF_ERROR(record.status());
    project_id = record->key().project_id();
  }
  const v1::AuditEvent audit = CallAudit(v1::AUDIT_ACTION_API_KEY_REVOKED, project_id, caller, call,
                                         absl::StrCat("key ", request.key_id(), " revoked"));
  absl::StatusOr<v1::ApiKey> revoked =
      store_->RevokeApiKey(project_id, request.key_id(), NowProto(), audit);
  // Another project's key is reported exactly like a key that does not exist.
  if (absl::IsNotFound(revoked.status())) return ApiKeyNotFoundError(request.key_id());
  return revoked.status();
}

absl::StatusOr<v1::GetUsageResponse> ProjectManager::GetUsage(const Identity& caller,
                                                              const v1::GetUsageRequest& request) {
  AGENTD_ASSIGN_OR_RETURN(std::string target,
                          ResolveProject(store_, caller, request.project_id(), true));
  store::UsageDimension dimension;
  switch (request.group_by()) {
    case v1::USAGE_GROUP_BY_UNSPECIFIED:
    case v1::USAGE_GROUP_BY_DAY:
      dimension = store::UsageDimension::kDay;
      break;
    case v1::USAGE_GROUP_BY_AGENT:
      dimension = store::UsageDimension::kAgent;
      break;
    case v1::USAGE_GROUP_BY_SESSION:
      dimension = store::UsageDimension::kSession;
      break;
    case v1::USAGE_GROUP_BY_MODEL:
      dimension = store::UsageDimension::kModel;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "group_by ", static_cast<int>(request.group_by()), " is not a UsageGroupBy"));
  }

  // Days overlapping [start, end): from start's day to the day of end's last instant.
  int32_t first_day = 0;  // counters start in 1970
  int32_t last_day = DayOf(absl::Now());
  absl::Time start = absl::InfinitePast();
  if (request.has_start_time()) {
    AGENTD_ASSIGN_OR_RETURN(start, TimeOf("start_time", request.start_time()));
    first_day = DayOf(start);
  }
  if (request.has_end_time()) {
    AGENTD_ASSIGN_OR_RETURN(absl::Time end, TimeOf("end_time", request.end_time()));
    if (end < start) return absl::InvalidArgumentError("end_time is before start_time");
    if (end == start) return v1::GetUsageResponse();  // an empty range holds no usage
    last_day = DayOf(end - absl::Nanoseconds(1));
  }

  v1::GetUsageResponse response;
  if (first_day > last_day) return response;
  AGENTD_ASSIGN_OR_RETURN(std::vector<store::UsageCounter> counters,
                          store_->ReadUsage(target, dimension, first_day, last_day));
  std::map<std::string, v1::Usage> rows;  // ordered by group ("YYYY-MM-DD" sorts by date)
  for (const store::UsageCounter& c : counters) {
    const std::string group = dimension == store::UsageDimension::kDay ? DayName(c.day) : c.group;
    AddUsage(c.usage, &rows[group]);
    AddUsage(c.usage, response.mutable_total());
  }
  for (auto& [group, usage] : rows) {
    v1::UsageRow* row = response.add_rows();
    row->set_group(group);
    *row->mutable_usage() = std::move(usage);
  }
  return response;
}

absl::StatusOr<v1::Project> ProjectManager::SetLimits(const Identity& caller, const CallInfo& call,
                                                      const v1::SetLimitsRequest& request) {
  AGENTD_ASSIGN_OR_RETURN(std::string target,
                          ResolveProject(store_, caller, request.project_id(), false));
  v1::ProjectLimits limits = request.limits();
  if (!std::isfinite(limits.monthly_budget_usd()) || limits.monthly_budget_usd() < 0) {
    return absl::InvalidArgumentError(
        "limits.monthly_budget_usd must be a finite number >= 0 (0 = unlimited)");
  }
  if (limits.daily_token_limit() < 0) {
    return absl::InvalidArgumentError("limits.daily_token_limit must be >= 0 (0 = unlimited)");
  }
  if (limits.requests_per_minute() < 0) {
    return absl::InvalidArgumentError("limits.requests_per_minute must be >= 0 (0 = unlimited)");
  }
  if (limits.has_allowed_tools()) {
    AGENTD_RETURN_IF_ERROR(ValidateAllowedTools(limits.allowed_tools()));
    // Which tool servers a tenant may reach is the operator's decision, not the tenant's.
    if (!caller.is_operator()) {
      return absl::PermissionDeniedError(
          "only the operator (an ADMIN key of the default project) may change allowed_tools");
    }
  }
  absl::StatusOr<v1::Project> before = store_->GetProject(target);
  if (!before.ok()) return MapProjectNotFound(before.status(), target);
  // Absent: keep the current list; ["*"]: no restriction.
  if (!limits.has_allowed_tools()) {
    if (before->limits().has_allowed_tools()) {
      *limits.mutable_allowed_tools() = before->limits().allowed_tools();
    }
  } else if (limits.allowed_tools().tools_size() == 1 && limits.allowed_tools().tools(0) == "*") {
    limits.clear_allowed_tools();
  }
  const v1::AuditEvent audit =
      CallAudit(v1::AUDIT_ACTION_LIMITS_CHANGED, target, caller, call,
                absl::StrCat("limits changed from {", LimitsText(before->limits()), "} to {",
                             LimitsText(limits), "}"));
  absl::StatusOr<v1::Project> after = store_->SetProjectLimits(target, limits, NowProto(), audit);
  if (!after.ok()) return MapProjectNotFound(after.status(), target);
  if (limits_ != nullptr) limits_->Invalidate(target);
  return after;
}

absl::StatusOr<v1::ListAuditEventsResponse> ProjectManager::ListAuditEvents(
    const Identity& caller, const v1::ListAuditEventsRequest& request) {
  AGENTD_ASSIGN_OR_RETURN(std::string target,
                          ResolveProject(store_, caller, request.project_id(), true));
  AGENTD_RETURN_IF_ERROR(ValidatePageSize(request.page_size()));
  absl::Time start = absl::InfinitePast();
  absl::Time end = absl::InfiniteFuture();
  if (request.has_start_time()) {
    AGENTD_ASSIGN_OR_RETURN(start, TimeOf("start_time", request.start_time()));
  }
  if (request.has_end_time()) {
    AGENTD_ASSIGN_OR_RETURN(end, TimeOf("end_time", request.end_time()));
  }
  if (end < start) return absl::InvalidArgumentError("end_time is before start_time");
  AGENTD_ASSIGN_OR_RETURN(
      store::AuditPage page,
      store_->ListAudit(target, start, end, request.page_size(), request.page_token()));
  v1::ListAuditEventsResponse response;
  for (v1::AuditEvent& e : page.events) *response.add_events() = std::move(e);
  response.set_next_page_token(std::move(page.next_page_token));
  return response;
}

}  // namespace agentd::auth
