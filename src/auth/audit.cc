#include "auth/audit.h"

#include <spdlog/spdlog.h>

#include "common/ids.h"
#include "common/time_util.h"

namespace agentd::auth {

v1::AuditEvent NewAuditEvent(v1::AuditAction action, absl::string_view project_id,
                             absl::string_view key_id, absl::string_view method,
                             absl::string_view outcome, absl::string_view detail) {
  v1::AuditEvent event;
  event.set_audit_id(NewId("aud_"));
  *event.mutable_time() = NowProto();
  event.set_project_id(std::string(project_id));
  event.set_action(action);
  event.set_key_id(std::string(key_id));
  event.set_method(std::string(method));
  event.set_outcome(std::string(outcome));
  event.set_detail(std::string(detail));
  return event;
}

void AuditLog::Record(const v1::AuditEvent& event) {
  const absl::Status status = store_->AppendAudit(event, /*sync=*/false);
  if (!status.ok()) {
    spdlog::error("audit: could not store record {} ({} {} in project {}): {}", event.audit_id(),
                  v1::AuditAction_Name(event.action()), event.method(), event.project_id(),
                  status.ToString());
  }
}

absl::Status AuditLog::Sweep(absl::Duration retention) {
  const absl::Time cutoff = absl::Now() - retention;
  absl::Status status = store_->DeleteAuditBefore(cutoff);
  if (!status.ok()) {
    spdlog::warn("audit: retention sweep (records before {}) failed: {}",
                 absl::FormatTime(cutoff, absl::UTCTimeZone()), status.ToString());
  }
  return status;
}

}  // namespace agentd::auth
