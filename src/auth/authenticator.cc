#include "auth/authenticator.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "auth/api_key.h"
#include "auth/policy.h"

namespace agentd::auth {
namespace {

constexpr absl::string_view kUnknownKey = "unknown or revoked API key";

/// The key of a "Bearer <key>" header value (scheme case-insensitive, any run of spaces or tabs
/// after it, surrounding whitespace ignored); nullopt-like empty view when the shape is wrong.
absl::string_view BearerToken(absl::string_view header) {
  header = absl::StripAsciiWhitespace(header);
  constexpr absl::string_view kScheme = "bearer";
  if (header.size() <= kScheme.size() ||
      !absl::EqualsIgnoreCase(header.substr(0, kScheme.size()), kScheme)) {
    return {};
  }
  absl::string_view rest = header.substr(kScheme.size());
  if (rest[0] != ' ' && rest[0] != '\t') return {};
  return absl::StripLeadingAsciiWhitespace(rest);
}

}  // namespace

bool Identity::is_operator() const {
  return role == v1::API_KEY_ROLE_ADMIN && project_id == kDefaultProject;
}

Authenticator::Authenticator(store::ContextStore* store, AuditLog* audit)
    : store_(store), audit_(audit) {}

absl::StatusOr<Identity> Authenticator::Check(absl::string_view authorization,
                                              const CallInfo& call) {
  // Records a failure (detail may say more than the caller is told) and returns `status`.
  auto fail = [&](v1::AuditAction action, absl::string_view project_id, absl::string_view key_id,
                  absl::string_view detail, absl::Status status) {
    v1::AuditEvent event = NewAuditEvent(action, project_id, key_id, call.method,
                                         absl::StatusCodeToString(status.code()), detail);
    event.set_request_id(std::string(call.request_id));
    event.set_peer(std::string(call.peer));
    audit_->Record(event);
    return status;
  };
  constexpr auto kAuthFailed = v1::AUDIT_ACTION_AUTHENTICATION_FAILED;

  if (absl::StripAsciiWhitespace(authorization).empty()) {
    return fail(kAuthFailed, kDefaultProject, "", "missing authorization header",
                absl::UnauthenticatedError("missing authorization header"));
  }
  const absl::string_view key = BearerToken(authorization);
  if (key.empty()) {
    return fail(kAuthFailed, kDefaultProject, "", "authorization header is not \"Bearer <key>\"",
                absl::UnauthenticatedError(
                    "malformed authorization header: expected \"Bearer <api key>\""));
  }
  absl::StatusOr<std::string> key_id = KeyIdOf(key);
  if (!key_id.ok()) {
    // KeyIdOf's messages describe the shape only, never the key's text.
    const std::string why(key_id.status().message());
    return fail(kAuthFailed, kDefaultProject, "", why,
                absl::UnauthenticatedError(absl::StrCat("malformed API key: ", why)));
  }

  absl::StatusOr<storage::ApiKeyRecord> record = store_->GetApiKey(*key_id);
  if (absl::IsNotFound(record.status())) {
    return fail(kAuthFailed, kDefaultProject, *key_id, "unknown key id",
                absl::UnauthenticatedError(kUnknownKey));
  }
  if (!record.ok()) return record.status();  // a store fault, not the caller's
  const v1::ApiKey& stored = record->key();
  if (stored.revoked()) {
    return fail(kAuthFailed, stored.project_id(), *key_id, "key revoked",
                absl::UnauthenticatedError(kUnknownKey));
  }
  if (!ConstantTimeEquals(HashKey(record->salt(), key), record->hash())) {
    return fail(kAuthFailed, stored.project_id(), *key_id, "wrong secret for key id",
                absl::UnauthenticatedError(kUnknownKey));
  }

  Identity identity;
  identity.project_id = stored.project_id();
  identity.key_id = stored.key_id();
  identity.role = stored.role();

  Access access;
  if (!AccessFor(call.method, &access)) {
    const std::string why = absl::StrCat("no access policy for method ", call.method);
    return fail(v1::AUDIT_ACTION_PERMISSION_DENIED, identity.project_id, identity.key_id, why,
                absl::PermissionDeniedError(why));
  }
  if (!RoleAllows(identity.role, identity.project_id, access)) {
    const std::string why =
        absl::StrCat("role ", RoleName(identity.role), " may not call ", call.method);
    return fail(v1::AUDIT_ACTION_PERMISSION_DENIED, identity.project_id, identity.key_id, why,
                absl::PermissionDeniedError(why));
  }
  return identity;
}

absl::StatusOr<std::string> TargetProject(const Identity& caller, absl::string_view requested) {
  if (requested.empty() || requested == caller.project_id) return caller.project_id;
  if (caller.is_operator()) return std::string(requested);
  return ProjectNotFoundError(requested);
}

absl::Status ProjectNotFoundError(absl::string_view project_id) {
  return absl::NotFoundError(absl::StrCat("project ", project_id, " not found"));
}

}  // namespace agentd::auth
