// AuditLog: builds audit records and stores them; retention sweeps old ones.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "agentd/v1/project.pb.h"
#include "store/context_store.h"

namespace agentd::auth {

/// A new record with a fresh audit_id and the current time.
v1::AuditEvent NewAuditEvent(v1::AuditAction action, absl::string_view project_id,
                             absl::string_view key_id, absl::string_view method,
                             absl::string_view outcome, absl::string_view detail);

class AuditLog {
 public:
  explicit AuditLog(store::ContextStore* store) : store_(store) {}

  /// Stores a record on its own, without fsync (a flood of bad keys must not buy fsyncs; the
  /// next synced write or the WAL carries it). Errors are logged, never returned to callers.
  void Record(const v1::AuditEvent& event);

  /// Deletes records older than `retention` (called at startup and then hourly).
  absl::Status Sweep(absl::Duration retention);

 private:
  store::ContextStore* store_;
};

}  // namespace agentd::auth
