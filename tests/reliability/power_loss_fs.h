// PowerLossFs: a RocksDB FileSystem (wrapping the default one) that simulates a power failure.
//
// It remembers, for every file written through it, how many bytes have been made durable, and
// for every directory which of its entries were created since the directory was last fsynced.
// Crash() is the instant the power goes: from then on every mutating call (append, sync, close,
// create, rename, delete, directory fsync, ...) fails with IOError, so nothing more reaches the
// "disk" and RocksDB sees the errors a dying device would give. Once the database is closed (or
// abandoned), DropUnsyncedData() rewrites the directory to what a real power loss would have
// left, and the next open sees exactly that.
//
// What survives a power loss in this model (POSIX-strict about data, as a journaling file
// system behaves for metadata):
//  - File data: only the bytes appended before the start of a successful Sync() or Fsync() of
//    that file. Flush() (write(2) to the page cache), RangeSync() (sync_file_range, which does not
//    make data durable or update the file size) and Close() persist nothing. Bytes after the
//    durable length are dropped (the file is truncated); the durable prefix is kept intact (torn
//    sectors inside it are not modelled).
//  - Crash() waits for the calls already running (an fsync, say) to finish: each call happens
//    entirely before the power loss, or fails. So a sync either completed and its write may be
//    acknowledged, or failed and the write it served is not acknowledged.
//  - Directory entries: a file created in a directory persists only once that directory was
//    fsynced after the creation, or once a later rename in the same directory persisted (a
//    journaling file system commits a directory's metadata operations in order, so a rename that
//    persisted carries every earlier creation with it). Files whose entry did not persist are
//    deleted, whatever was synced into them.
//  - Renames persist at once, and the renamed file keeps the durable length its source had (the
//    outcome "the rename was lost" is not modelled). Deletions persist at once (a deleted file
//    never reappears). Both are outcomes a real power loss can give, not the only ones.
//  - Files that existed before this wrapper was created, and files it did not write, are
//    durable as they are. NewRandomRWFile files (not used by agentd's store) are passed through
//    untracked; after Crash() they cannot be opened. The info LOG is written by the base file
//    system directly and kept as is.
//
// Threading: all methods are thread-safe. Use one PowerLossFs per "boot": after
// DropUnsyncedData(), open the database again with a new instance.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/file_system.h"

namespace agentd::testing {

class PowerLossFs final : public rocksdb::FileSystemWrapper {
 public:
  /// Durability of one file as this wrapper knows it; shared by the open handles of the file.
  struct FileState {
    uint64_t written = 0;  // bytes written through the wrapper (its end offset)
    uint64_t synced = 0;   // bytes made durable by a completed Sync/Fsync
  };
  /// What DropUnsyncedData() did.
  struct DropReport {
    int files_deleted = 0;    // entries that were never made durable
    int files_truncated = 0;  // files cut back to their durable length
    uint64_t bytes_dropped = 0;
  };

  explicit PowerLossFs(std::shared_ptr<rocksdb::FileSystem> base = rocksdb::FileSystem::Default());

  const char* Name() const override { return "PowerLossFs"; }

  /// The power fails now. Idempotent.
  void Crash();
  bool crashed() const;
  /// Deletes the files whose directory entry never became durable and truncates every other
  /// tracked file to its durable length. Call after Crash(), once nothing writes through this
  /// file system any more (the database is closed or abandoned: its writes fail anyway).
  /// Returns what it removed; an error if a file could not be truncated or deleted.
  absl::StatusOr<DropReport> DropUnsyncedData();

  // ---- rocksdb::FileSystem: the calls that change what is on disk ----
  rocksdb::IOStatus NewWritableFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSWritableFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReopenWritableFile(const std::string& fname,
                                       const rocksdb::FileOptions& options,
                                       std::unique_ptr<rocksdb::FSWritableFile>* result,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                      const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewRandomRWFile(const std::string& fname, const rocksdb::FileOptions& options,
                                    std::unique_ptr<rocksdb::FSRandomRWFile>* result,
                                    rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus NewDirectory(const std::string& name, const rocksdb::IOOptions& options,
                                 std::unique_ptr<rocksdb::FSDirectory>* result,
                                 rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteFile(const std::string& fname, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus Truncate(const std::string& fname, size_t size,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus RenameFile(const std::string& src, const std::string& target,
                               const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus LinkFile(const std::string& src, const std::string& target,
                             const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDir(const std::string& dirname, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus CreateDirIfMissing(const std::string& dirname,
                                       const rocksdb::IOOptions& options,
                                       rocksdb::IODebugContext* dbg) override;
  rocksdb::IOStatus DeleteDir(const std::string& dirname, const rocksdb::IOOptions& options,
                              rocksdb::IODebugContext* dbg) override;

 private:
  // The file and directory handles it returns (power_loss_fs.cc).
  class File;
  class Directory;

  /// Runs `op` (a call that changes the disk) unless the power is off (then IOError). Crash()
  /// waits for the calls running to finish, so each call happens entirely before the power loss
  /// or not at all.
  template <typename Op>
  rocksdb::IOStatus Powered(Op op) const ABSL_LOCKS_EXCLUDED(power_mu_) {
    absl::ReaderMutexLock lock(&power_mu_);
    if (crashed_) return PowerLost();
    return op();
  }
  static rocksdb::IOStatus PowerLost();
  /// `path` in normal form (no "." or "..", no trailing slash), as the key of the maps below.
  static std::string Normal(const std::string& path);
  static std::string DirOf(const std::string& normal_path);
  /// Starts tracking `fname` with `state`; `new_entry`: its directory entry is not durable yet.
  void Track(const std::string& fname, std::shared_ptr<FileState> state, bool new_entry);
  bool ExistsOnDisk(const std::string& fname);

  /// Held shared by every call that changes the disk, exclusively by Crash().
  mutable absl::Mutex power_mu_;
  bool crashed_ ABSL_GUARDED_BY(power_mu_) = false;

  mutable absl::Mutex mu_;  // the maps and every FileState
  /// Files written through this wrapper, by normal path.
  std::map<std::string, std::shared_ptr<FileState>> files_ ABSL_GUARDED_BY(mu_);
  /// Per directory: entries created since it was last made durable.
  std::map<std::string, std::set<std::string>> pending_ ABSL_GUARDED_BY(mu_);
};

}  // namespace agentd::testing
