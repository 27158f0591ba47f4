// Authenticator: turns the `authorization` header of a call into an Identity, and checks it
// against the policy table. The single entry point every RPC goes through (rpc::CallScope).
//
// Each call reads the key's record from the store (a point lookup; RocksDB serves it from
// memory) and compares a salted hash in constant time, so a revocation takes effect on the very
// next call, on every replica sharing the store. Failures are audited (never with the secret).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agentd/v1/project.pb.h"
#include "auth/audit.h"
#include "store/context_store.h"

namespace agentd::auth {

/// The authenticated caller. project_id prefixes every storage key the call touches.
struct Identity {
  std::string project_id;
  std::string key_id;
  v1::ApiKeyRole role = v1::API_KEY_ROLE_UNSPECIFIED;
  /// ADMIN of the `default` project: may manage every project.
  bool is_operator() const;
};

/// Where a call comes from, for audit records.
struct CallInfo {
  absl::string_view method;      // short RPC name, e.g. "CreateAgent"
  absl::string_view request_id;  // x-agentd-request-id
  absl::string_view peer;        // the client's address
};

class Authenticator {
 public:
  Authenticator(store::ContextStore* store, AuditLog* audit);

  /// Authenticates `authorization` (the header's value, e.g. "Bearer agd_...") and authorizes
  /// the call's method. UNAUTHENTICATED: header missing, not "Bearer <key>", malformed, unknown
  /// or revoked key, hash mismatch (all with the same message shape; the key never appears).
  /// PERMISSION_DENIED: the role may not call the method. Both are audited.
  absl::StatusOr<Identity> Check(absl::string_view authorization, const CallInfo& call);

 private:
  store::ContextStore* store_;
  AuditLog* audit_;
};

/// The project a ProjectService call acts on: `requested` if empty or the caller's own; any
/// existing project for the operator; NOT_FOUND otherwise (indistinguishable from a project
/// that does not exist).
absl::StatusOr<std::string> TargetProject(const Identity& caller, absl::string_view requested);

/// The NOT_FOUND every ProjectService path returns for a project the caller may not see or that
/// does not exist (one message, so the two cannot be told apart).
absl::Status ProjectNotFoundError(absl::string_view project_id);

}  // namespace agentd::auth
