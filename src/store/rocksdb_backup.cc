// RocksDbStore backups: RocksDB's BackupEngine takes a consistent online backup (live SST files
// plus the WAL, so every acknowledged write is in it) while writes go on; files are shared
// between the backups of one directory and checksummed. Restore verifies the checksums first and
// writes only into a new directory.
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "rocksdb/utilities/backup_engine.h"
#include "store/rocksdb_store.h"
#include "store/rocksdb_util.h"

namespace agentd::store {
namespace {

namespace fs = std::filesystem;

absl::Status CheckAbsoluteDir(absl::string_view field, const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  if (dir.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be an absolute path on the server, got \"", dir, "\""));
  }
  if (dir.find('\0') != std::string::npos || dir.size() > 4096) {
    return absl::InvalidArgumentError(absl::StrCat(field, " is not a usable path"));
  }
  return absl::OkStatus();
}

// `a` and `b` name the same directory, or one holds the other.
bool Overlaps(const std::string& a, const std::string& b) {
  std::error_code ec;
  const fs::path pa = fs::weakly_canonical(a, ec);
  const fs::path pb = fs::weakly_canonical(b, ec);
  auto within = [](const fs::path& inner, const fs::path& outer) {
    auto [end, _] = std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end());
    return end == outer.end();
  };
  return within(pa, pb) || within(pb, pa);
}

v1::BackupInfo BackupInfoProto(const rocksdb::BackupInfo& info, const std::string& dir) {
  v1::BackupInfo out;
  out.set_backup_id(info.backup_id);
  *out.mutable_create_time() = ToProto(absl::FromUnixSeconds(info.timestamp));
  out.set_size_bytes(static_cast<int64_t>(info.size));
  out.set_file_count(static_cast<int32_t>(info.number_files));
  out.set_backup_dir(dir);
  return out;
}

absl::Status BackupError(const rocksdb::IOStatus& s, absl::string_view what,
                         const std::string& dir) {
  if (s.IsNotFound()) {
    return absl::NotFoundError(absl::StrCat(what, " in ", dir, ": ", s.ToString()));
  }
  if (s.IsIOError() || s.IsInvalidArgument()) {
    return absl::FailedPreconditionError(absl::StrCat(what, " in ", dir, ": ", s.ToString()));
  }
  return internal::FromRocks(s, absl::StrCat(what, " in ", dir));
}

// Opens the backup engine of `dir` (read-only: the directory must exist).
absl::StatusOr<std::unique_ptr<rocksdb::BackupEngineReadOnly>> OpenReadOnly(
    const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat("no backups in ", dir, ": not a directory"));
  }
  rocksdb::BackupEngineReadOnly* engine = nullptr;
  rocksdb::IOStatus s = rocksdb::BackupEngineReadOnly::Open(
      rocksdb::Env::Default(), rocksdb::BackupEngineOptions(dir), &engine);
  if (!s.ok()) return BackupError(s, "opening backups", dir);
  return std::unique_ptr<rocksdb::BackupEngineReadOnly>(engine);
}

}  // namespace

absl::StatusOr<v1::BackupInfo> RocksDbStore::CreateBackup(const std::string& backup_dir,
                                                         int32_t keep_last) {
  AGENTD_RETURN_IF_ERROR(CheckAbsoluteDir("backup_dir", backup_dir));
  if (keep_last < 0) return absl::InvalidArgumentError("keep_last must be >= 0");
  if (Overlaps(backup_dir, options_.path)) {
    return absl::InvalidArgumentError(absl::StrCat("backup_dir ", backup_dir,
                                                   " overlaps the data dir ", options_.path));
  }
  absl::MutexLock lock(&backup_mu_);
  std::error_code ec;
  fs::create_directories(backup_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create backup_dir ", backup_dir, ": ", ec.message()));
  }
  rocksdb::BackupEngineOptions engine_options(backup_dir);
  engine_options.sync = true;  // a finished backup is durable
  rocksdb::BackupEngine* raw = nullptr;
  rocksdb::IOStatus s = rocksdb::BackupEngine::Open(rocksdb::Env::Default(), engine_options, &raw);
  if (!s.ok()) return BackupError(s, "opening backups", backup_dir);
  std::unique_ptr<rocksdb::BackupEngine> engine(raw);
  rocksdb::CreateBackupOptions create;
  create.flush_before_backup = false;  // copy the WAL instead: no stall of the write path
  rocksdb::BackupID id = 0;
  s = engine->CreateNewBackup(create, db_.get(), &id);
  if (!s.ok()) return BackupError(s, "creating a backup", backup_dir);
  if (keep_last > 0) {
    s = engine->PurgeOldBackups(static_cast<uint32_t>(keep_last));
    if (!s.ok()) return BackupError(s, "purging old backups", backup_dir);
  }
  std::vector<rocksdb::BackupInfo> infos;
  engine->GetBackupInfo(&infos);
  for (const rocksdb::BackupInfo& info : infos) {
    if (info.backup_id == id) return BackupInfoProto(info, backup_dir);
  }
  return absl::InternalError(absl::StrCat("backup ", id, " missing from ", backup_dir));
}

absl::StatusOr<std::vector<v1::BackupInfo>> RocksDbStore::ListBackups(
    const std::string& backup_dir) {
  AGENTD_RETURN_IF_ERROR(CheckAbsoluteDir("backup_dir", backup_dir));
  absl::MutexLock lock(&backup_mu_);
  AGENTD_ASSIGN_OR_RETURN(auto engine, OpenReadOnly(backup_dir));
  std::vector<rocksdb::BackupInfo> infos;
  engine->GetBackupInfo(&infos);
  if (infos.empty()) return absl::NotFoundError(absl::StrCat("no backups in ", backup_dir));
  std::vector<v1::BackupInfo> out;
  for (const rocksdb::BackupInfo& info : infos) out.push_back(BackupInfoProto(info, backup_dir));
  return out;
}

absl::StatusOr<v1::BackupInfo> RocksDbStore::RestoreBackup(const std::string& backup_dir,
                                                          uint32_t backup_id,
                                                          const std::string& target_dir) {
  AGENTD_RETURN_IF_ERROR(CheckAbsoluteDir("backup_dir", backup_dir));
  AGENTD_RETURN_IF_ERROR(CheckAbsoluteDir("target_data_dir", target_dir));
  if (Overlaps(target_dir, options_.path)) {
    return absl::InvalidArgumentError(absl::StrCat("target_data_dir ", target_dir,
                                                   " overlaps the live data dir ", options_.path));
  }
  if (Overlaps(target_dir, backup_dir)) {
    return absl::InvalidArgumentError(
        absl::StrCat("target_data_dir ", target_dir, " overlaps backup_dir ", backup_dir));
  }
  std::error_code ec;
  if (fs::exists(target_dir, ec) &&
      (!fs::is_directory(target_dir, ec) || !fs::is_empty(target_dir, ec))) {
    return absl::FailedPreconditionError(absl::StrCat(
        "target_data_dir ", target_dir, " is not empty: restore only into a new directory"));
  }
  absl::MutexLock lock(&backup_mu_);
  AGENTD_ASSIGN_OR_RETURN(auto engine, OpenReadOnly(backup_dir));
  std::vector<rocksdb::BackupInfo> infos;
  engine->GetBackupInfo(&infos);
  if (infos.empty()) return absl::NotFoundError(absl::StrCat("no backups in ", backup_dir));
  const rocksdb::BackupInfo* chosen = backup_id == 0 ? &infos.back() : nullptr;
  for (const rocksdb::BackupInfo& info : infos) {
    if (info.backup_id == backup_id) chosen = &info;
  }
  if (chosen == nullptr) {
    return absl::NotFoundError(absl::StrCat("backup ", backup_id, " not found in ", backup_dir));
  }
  rocksdb::IOStatus s = engine->VerifyBackup(chosen->backup_id, /*verify_with_checksum=*/true);
  if (!s.ok()) {
    return absl::DataLossError(
        absl::StrCat("backup ", chosen->backup_id, " in ", backup_dir, " is damaged: ", s.ToString()));
  }
  fs::create_directories(target_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create target_data_dir ", target_dir, ": ", ec.message()));
  }
  s = engine->RestoreDBFromBackup(rocksdb::RestoreOptions(), chosen->backup_id, target_dir,
                                  target_dir);
  if (!s.ok()) {
    fs::remove_all(target_dir, ec);  // never leave a half-restored data dir behind
    return BackupError(s, "restoring a backup", backup_dir);
  }
  return BackupInfoProto(*chosen, backup_dir);
}

}  // namespace agentd::store
