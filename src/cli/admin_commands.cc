// `agentctl admin backup|backups|restore`: operator backups of the whole store (AdminService).
#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "cli/cli_common.h"
#include "cli/output.h"

namespace agentd::cli {
namespace {

namespace v1 = agentd::v1;
using Stub = v1::AdminService::Stub;

struct BackupOptions {
  std::string dir;
  int32_t keep_last = 0;
};

struct RestoreOptions {
  std::string dir;
  uint32_t backup_id = 0;
  std::string target;
};

template <typename Request, typename Response>
int Call(Connection& c,
         grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
         const Request& request, Response* response) {
  // Backups copy the whole data dir: no deadline beyond the user's --timeout (0 = none).
  auto context = c.NewContext();
  const grpc::Status status = (c.admin().*method)(context.get(), request, response);
  return status.ok() ? kExitOk : c.Fail(status, *context);
}

void PrintBackups(const std::vector<v1::BackupInfo>& backups) {
  Table table({"backup", "created", "size_bytes", "files", "dir"});
  for (const v1::BackupInfo& b : backups) {
    table.Add({absl::StrCat(b.backup_id()), TimeText(b.create_time()), absl::StrCat(b.size_bytes()),
               absl::StrCat(b.file_count()), b.backup_dir()});
  }
  table.Print(std::cout);
}

int CreateBackup(Connection& c, const BackupOptions& o) {
  v1::CreateBackupRequest request;
  request.set_backup_dir(o.dir);
  request.set_keep_last(o.keep_last);
  v1::BackupInfo info;
  if (int rc = Call(c, &Stub::CreateBackup, request, &info); rc != kExitOk) return rc;
  if (c.structured()) return c.Print(info), kExitOk;
  PrintBackups({info});
  return kExitOk;
}

int ListBackups(Connection& c, const std::string& dir) {
  v1::ListBackupsRequest request;
  request.set_backup_dir(dir);
  v1::ListBackupsResponse response;
  if (int rc = Call(c, &Stub::ListBackups, request, &response); rc != kExitOk) return rc;
  if (c.structured()) return c.Print(response), kExitOk;
  PrintBackups({response.backups().begin(), response.backups().end()});
  return kExitOk;
}

int RestoreBackup(Connection& c, const RestoreOptions& o) {
  v1::RestoreBackupRequest request;
  request.set_backup_dir(o.dir);
  request.set_backup_id(o.backup_id);
  request.set_target_data_dir(o.target);
  v1::RestoreBackupResponse response;
  if (int rc = Call(c, &Stub::RestoreBackup, request, &response); rc != kExitOk) return rc;
  if (c.structured()) return c.Print(response), kExitOk;
  std::cout << "restored backup " << response.backup().backup_id() << " into "
            << response.target_data_dir() << "\nstart an agentd on it: agentd --data-dir "
            << response.target_data_dir() << "\n";
  return kExitOk;
}

void AddDirFlag(CLI::App* cmd, std::string* dir) {
  cmd->add_option("--dir,-d", *dir,
                  "Backup directory on the server's machine, absolute (default: the server's "
                  "backup_dir config)")
      ->type_name("DIR");
}

}  // namespace

void AddAdminCommands(CLI::App& app, Dispatch* d) {
  CLI::App* admin = AddCommand(app, "admin", "Operator tasks: online backups and restores",
                               "  agentctl admin backup --keep-last 7\n"
                               "  agentctl admin backups\n"
                               "  agentctl admin restore --target /var/lib/agentd-restored");
  admin->require_subcommand(1);

  auto b = std::make_shared<BackupOptions>();
  CLI::App* backup = AddCommand(
      *admin, "backup", "Take a consistent online backup of the whole store (operator key)",
      "  agentctl admin backup\n  agentctl admin backup --dir /backups/agentd --keep-last 7");
  AddDirFlag(backup, &b->dir);
  backup->add_option("--keep-last", b->keep_last,
                     "Then delete the oldest backups so that at most N remain (0 = keep all)")
      ->check(kWholeNumber)
      ->type_name("N");
  backup->callback([d, b] { d->action = [b](Connection& c) { return CreateBackup(c, *b); }; });

  auto dir = std::make_shared<std::string>();
  CLI::App* list = AddCommand(*admin, "backups", "List the backups in a backup directory",
                              "  agentctl admin backups\n  agentctl admin backups -d /backups -o json");
  AddDirFlag(list, dir.get());
  list->callback([d, dir] { d->action = [dir](Connection& c) { return ListBackups(c, *dir); }; });

  auto r = std::make_shared<RestoreOptions>();
  CLI::App* restore = AddCommand(
      *admin, "restore",
      "Verify a backup and restore it into a new data dir on the server's machine; the running "
      "server is untouched",
      "  agentctl admin restore --target /var/lib/agentd-restored\n"
      "  agentctl admin restore --dir /backups --backup 3 --target /var/lib/agentd-3");
  AddDirFlag(restore, &r->dir);
  restore->add_option("--backup", r->backup_id, "Backup id (default: the newest)")
      ->check(kWholeNumber)
      ->type_name("ID");
  restore->add_option("--target", r->target, "New, empty directory to restore into (absolute)")
      ->required()
      ->type_name("DIR");
  restore->callback([d, r] { d->action = [r](Connection& c) { return RestoreBackup(c, *r); }; });
}

}  // namespace agentd::cli
