// AdminService over gRPC: operator-only backups of the whole store (policy: kOperator).
#pragma once

#include <string>

#include "agentd/v1/admin.grpc.pb.h"
#include "auth/audit.h"
#include "auth/authenticator.h"
#include "store/context_store.h"

namespace agentd::rpc {

class AdminServiceImpl final : public v1::AdminService::CallbackService {
 public:
  /// All pointers outlive the service. `default_backup_dir` (config backup_dir) is used when a
  /// request names none; empty = requests must name one.
  AdminServiceImpl(store::ContextStore* store, auth::Authenticator* auth, auth::AuditLog* audit,
                   std::string default_backup_dir)
      : store_(store), auth_(auth), audit_(audit),
        default_backup_dir_(std::move(default_backup_dir)) {}

  grpc::ServerUnaryReactor* CreateBackup(grpc::CallbackServerContext* ctx,
                                         const v1::CreateBackupRequest* request,
                                         v1::BackupInfo* response) override;
  grpc::ServerUnaryReactor* ListBackups(grpc::CallbackServerContext* ctx,
                                        const v1::ListBackupsRequest* request,
                                        v1::ListBackupsResponse* response) override;
  grpc::ServerUnaryReactor* RestoreBackup(grpc::CallbackServerContext* ctx,
                                          const v1::RestoreBackupRequest* request,
                                          v1::RestoreBackupResponse* response) override;

 private:
  /// The request's directory, else the configured one; FAILED_PRECONDITION when neither is set.
  absl::StatusOr<std::string> BackupDir(const std::string& requested) const;

  store::ContextStore* store_;
  auth::Authenticator* auth_;
  auth::AuditLog* audit_;
  const std::string default_backup_dir_;
};

}  // namespace agentd::rpc
