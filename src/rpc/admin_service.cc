#include "rpc/admin_service.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "rpc/rpc_context.h"

namespace agentd::rpc {

absl::StatusOr<std::string> AdminServiceImpl::BackupDir(const std::string& requested) const {
  if (!requested.empty()) return requested;
  if (!default_backup_dir_.empty()) return default_backup_dir_;
  return absl::FailedPreconditionError(
      "no backup_dir: name one in the request or set backup_dir in the server config");
}

grpc::ServerUnaryReactor* AdminServiceImpl::CreateBackup(grpc::CallbackServerContext* ctx,
                                                         const v1::CreateBackupRequest* request,
                                                         v1::BackupInfo* response) {
  return Unary(ctx, "CreateBackup", auth_, [&](const CallScope& scope) -> absl::Status {
    AGENTD_ASSIGN_OR_RETURN(std::string dir, BackupDir(request->backup_dir()));
    AGENTD_RETURN_IF_ERROR(Assign(store_->CreateBackup(dir, request->keep_last()), response));
    v1::AuditEvent event = auth::NewAuditEvent(
        v1::AUDIT_ACTION_BACKUP_CREATED, scope.identity().project_id, scope.identity().key_id,
        scope.method(), "OK",
        absl::StrCat("backup ", response->backup_id(), " in ", dir, " (",
                     response->size_bytes(), " bytes)"));
    event.set_request_id(scope.request_id());
    event.set_peer(std::string(scope.call_info().peer));
    audit_->Record(event);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::ListBackups(grpc::CallbackServerContext* ctx,
                                                        const v1::ListBackupsRequest* request,
                                                        v1::ListBackupsResponse* response) {
  return Unary(ctx, "ListBackups", auth_, [&](const CallScope&) -> absl::Status {
    AGENTD_ASSIGN_OR_RETURN(std::string dir, BackupDir(request->backup_dir()));
    AGENTD_ASSIGN_OR_RETURN(std::vector<v1::BackupInfo> backups, store_->ListBackups(dir));
    for (v1::BackupInfo& b : backups) *response->add_backups() = std::move(b);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* AdminServiceImpl::RestoreBackup(grpc::CallbackServerContext* ctx,
                                                          const v1::RestoreBackupRequest* request,
                                                          v1::RestoreBackupResponse* response) {
  return Unary(ctx, "RestoreBackup", auth_, [&](const CallScope& scope) -> absl::Status {
    AGENTD_ASSIGN_OR_RETURN(std::string dir, BackupDir(request->backup_dir()));
    AGENTD_ASSIGN_OR_RETURN(
        v1::BackupInfo info,
        store_->RestoreBackup(dir, request->backup_id(), request->target_data_dir()));
    *response->mutable_backup() = info;
    response->set_target_data_dir(request->target_data_dir());
    v1::AuditEvent event = auth::NewAuditEvent(
        v1::AUDIT_ACTION_BACKUP_RESTORED, scope.identity().project_id, scope.identity().key_id,
        scope.method(), "OK",
        absl::StrCat("backup ", info.backup_id(), " of ", dir, " restored into ",
                     request->target_data_dir()));
    event.set_request_id(scope.request_id());
    event.set_peer(std::string(scope.call_info().peer));
    audit_->Record(event);
    return absl::OkStatus();
  });
}

}  // namespace agentd::rpc
