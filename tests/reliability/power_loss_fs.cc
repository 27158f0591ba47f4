#include "reliability/power_loss_fs.h"

#include <algorithm>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace agentd::testing {

using rocksdb::FileOptions;
using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

// A writable file whose appends and syncs are accounted in its FileState.
class PowerLossFs::File final : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  File(std::unique_ptr<rocksdb::FSWritableFile> base, PowerLossFs* fs,
       std::shared_ptr<FileState> state)
      : FSWritableFileOwnerWrapper(std::move(base)), fs_(fs), state_(std::move(state)) {}

  IOStatus Append(const Slice& data, const IOOptions& options, IODebugContext* dbg) override {
    return fs_->Powered([&] {
      IOStatus s = target()->Append(data, options, dbg);
      if (s.ok()) Appended(data.size());
      return s;
    });
  }
  IOStatus Append(const Slice& data, const IOOptions& options,
                  const rocksdb::DataVerificationInfo& info, IODebugContext* dbg) override {
    return fs_->Powered([&] {
      IOStatus s = target()->Append(data, options, info, dbg);
      if (s.ok()) Appended(data.size());
      return s;
    });
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            IODebugContext* dbg) override {
    return fs_->Powered([&] {
      IOStatus s = target()->PositionedAppend(data, offset, options, dbg);
      if (s.ok()) WroteUpTo(offset + data.size());
      return s;
    });
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& options,
                            const rocksdb::DataVerificationInfo& info,
                            IODebugContext* dbg) override {
    return fs_->Powered([&] {
      IOStatus s = target()->PositionedAppend(data, offset, options, info, dbg);
      if (s.ok()) WroteUpTo(offset + data.size());
      return s;
    });
  }
  IOStatus Truncate(uint64_t size, const IOOptions& options, IODebugContext* dbg) override {
    return fs_->Powered([&] {
      IOStatus s = target()->Truncate(size, options, dbg);
      if (s.ok()) {
        absl::MutexLock lock(&fs_->mu_);
        state_->written = size;
        state_->synced = std::min(state_->synced, size);
      }
      return s;
    });
  }
  // Flush is write(2) into the page cache and RangeSync is sync_file_range: neither makes
  // anything durable, but both are writes the dead device refuses.
  IOStatus Flush(const IOOptions& options, IODebugContext* dbg) override {
    return fs_->Powered([&] { return target()->Flush(options, dbg); });
  }
  IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const IOOptions& options,
                     IODebugContext* dbg) override {
    return fs_->Powered([&] { return target()->RangeSync(offset, nbytes, options, dbg); });
  }
  IOStatus Allocate(uint64_t offset, uint64_t len, const IOOptions& options,
                    IODebugContext* dbg) override {
    return fs_->Powered([&] { return target()->Allocate(offset, len, options, dbg); });
  }
  IOStatus Sync(const IOOptions& options, IODebugContext* dbg) override {
    return fs_->Powered([&] {
      const uint64_t start = Written();
      return Synced(target()->Sync(options, dbg), start);
    });
  }
  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    return fs_->Powered([&] {
      const uint64_t start = Written();
      return Synced(target()->Fsync(options, dbg), start);
    });
  }
  // After the crash the base file is not closed here (closing may truncate preallocated space, a
  // write); its destructor releases the descriptor, and DropUnsyncedData() decides the length.
  IOStatus Close(const IOOptions& options, IODebugContext* dbg) override {
    return fs_->Powered([&] { return target()->Close(options, dbg); });
  }

 private:
  void Appended(uint64_t n) {
    absl::MutexLock lock(&fs_->mu_);
    state_->written += n;
  }
  void WroteUpTo(uint64_t end) {
    absl::MutexLock lock(&fs_->mu_);
    state_->written = std::max(state_->written, end);
  }
  uint64_t Written() {
    absl::MutexLock lock(&fs_->mu_);
    return state_->written;
  }
  // A sync makes durable what was written before it started (RocksDB may append to a log from
  // another thread while it syncs). It runs under Powered(): the crash cannot come between the
  // sync and this record.
  IOStatus Synced(IOStatus s, uint64_t written_at_start) {
    if (s.ok()) {
      absl::MutexLock lock(&fs_->mu_);
      state_->synced = std::max(state_->synced, written_at_start);
    }
    return s;
  }

  PowerLossFs* fs_;
  std::shared_ptr<FileState> state_;
};

// A directory whose fsync makes the entries created in it durable.
class PowerLossFs::Directory final : public rocksdb::FSDirectoryWrapper {
 public:
  Directory(std::unique_ptr<rocksdb::FSDirectory> base, PowerLossFs* fs, std::string dir)
      : FSDirectoryWrapper(std::move(base)), fs_(fs), dir_(std::move(dir)) {}

  IOStatus Fsync(const IOOptions& options, IODebugContext* dbg) override {
    return fs_->Powered([&] { return Synced(FSDirectoryWrapper::Fsync(options, dbg)); });
  }
  IOStatus FsyncWithDirOptions(const IOOptions& options, IODebugContext* dbg,
                               const rocksdb::DirFsyncOptions& dir_options) override {
    return fs_->Powered(
        [&] { return Synced(FSDirectoryWrapper::FsyncWithDirOptions(options, dbg, dir_options)); });
  }

 private:
  IOStatus Synced(IOStatus s) {
    if (s.ok()) {
      absl::MutexLock lock(&fs_->mu_);
      fs_->pending_.erase(dir_);
    }
    return s;
  }

  PowerLossFs* fs_;
  std::string dir_;
};

PowerLossFs::PowerLossFs(std::shared_ptr<rocksdb::FileSystem> base)
    : FileSystemWrapper(std::move(base)) {}

IOStatus PowerLossFs::PowerLost() { return IOStatus::IOError("power lost (PowerLossFs::Crash)"); }

std::string PowerLossFs::Normal(const std::string& path) {
  std::string n = std::filesystem::path(path).lexically_normal().string();
  while (n.size() > 1 && n.back() == '/') n.pop_back();
  return n;
}

std::string PowerLossFs::DirOf(const std::string& normal_path) {
  return Normal(std::filesystem::path(normal_path).parent_path().string());
}

void PowerLossFs::Track(const std::string& fname, std::shared_ptr<FileState> state,
                        bool new_entry) {
  const std::string key = Normal(fname);
  absl::MutexLock lock(&mu_);
  files_[key] = std::move(state);
  if (new_entry) pending_[DirOf(key)].insert(key);
}

bool PowerLossFs::ExistsOnDisk(const std::string& fname) {
  return target()->FileExists(fname, IOOptions(), nullptr).ok();
}

void PowerLossFs::Crash() {
  absl::MutexLock lock(&power_mu_);  // waits for the calls in progress
  crashed_ = true;
}

bool PowerLossFs::crashed() const {
  absl::ReaderMutexLock lock(&power_mu_);
  return crashed_;
}

IOStatus PowerLossFs::NewWritableFile(const std::string& fname, const FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      IODebugContext* dbg) {
  return Powered([&] {
    const bool existed = ExistsOnDisk(fname);
    std::unique_ptr<rocksdb::FSWritableFile> base;
    IOStatus s = target()->NewWritableFile(fname, options, &base, dbg);
    if (!s.ok()) return s;
    // The file is created or truncated: nothing of its new contents is durable. An existing
    // entry keeps its durability (it may itself still be pending).
    auto state = std::make_shared<FileState>();
    Track(fname, state, !existed);
    *result = std::make_unique<File>(std::move(base), this, std::move(state));
    return s;
  });
}

IOStatus PowerLossFs::ReopenWritableFile(const std::string& fname, const FileOptions& options,
                                         std::unique_ptr<rocksdb::FSWritableFile>* result,
                                         IODebugContext* dbg) {
  return Powered([&] {
    const bool existed = ExistsOnDisk(fname);
    std::unique_ptr<rocksdb::FSWritableFile> base;
    IOStatus s = target()->ReopenWritableFile(fname, options, &base, dbg);
    if (!s.ok()) return s;
    const uint64_t size = base->GetFileSize(IOOptions(), dbg);
    std::shared_ptr<FileState> state;
    {
      absl::MutexLock lock(&mu_);
      auto it = files_.find(Normal(fname));
      if (it != files_.end()) state = it->second;
    }
    if (state == nullptr) {
      // A file this wrapper did not write: its contents are durable as they are.
      state = std::make_shared<FileState>();
      state->written = state->synced = existed ? size : 0;
      Track(fname, state, !existed);
    }
    *result = std::make_unique<File>(std::move(base), this, std::move(state));
    return s;
  });
}

IOStatus PowerLossFs::ReuseWritableFile(const std::string& fname, const std::string& old_fname,
                                        const FileOptions& options,
                                        std::unique_ptr<rocksdb::FSWritableFile>* result,
                                        IODebugContext* dbg) {
  return Powered([&] {
    std::unique_ptr<rocksdb::FSWritableFile> base;
    IOStatus s = target()->ReuseWritableFile(fname, old_fname, options, &base, dbg);
    if (!s.ok()) return s;
    // A rename (which persists with the directory's earlier creations, as in RenameFile) and
    // then writes from offset 0: none of the new contents is durable yet. (RocksDB recycles log
    // files only outside point-in-time recovery, so agentd's store never comes here.)
    const std::string from = Normal(old_fname), to = Normal(fname);
    auto state = std::make_shared<FileState>();
    {
      absl::MutexLock lock(&mu_);
      files_.erase(from);
      pending_.erase(DirOf(from));
      pending_.erase(DirOf(to));
      files_[to] = state;
    }
    *result = std::make_unique<File>(std::move(base), this, std::move(state));
    return s;
  });
}

IOStatus PowerLossFs::NewRandomRWFile(const std::string& fname, const FileOptions& options,
                                      std::unique_ptr<rocksdb::FSRandomRWFile>* result,
                                      IODebugContext* dbg) {
  return Powered([&] { return target()->NewRandomRWFile(fname, options, result, dbg); });
}

IOStatus PowerLossFs::NewDirectory(const std::string& name, const IOOptions& options,
                                   std::unique_ptr<rocksdb::FSDirectory>* result,
                                   IODebugContext* dbg) {
  std::unique_ptr<rocksdb::FSDirectory> base;
  IOStatus s = target()->NewDirectory(name, options, &base, dbg);
  if (!s.ok()) return s;
  *result = std::make_unique<Directory>(std::move(base), this, Normal(name));
  return s;
}

IOStatus PowerLossFs::DeleteFile(const std::string& fname, const IOOptions& options,
                                 IODebugContext* dbg) {
  return Powered([&] {
    IOStatus s = target()->DeleteFile(fname, options, dbg);
    if (s.ok()) {
      const std::string key = Normal(fname);
      absl::MutexLock lock(&mu_);
      files_.erase(key);
      auto it = pending_.find(DirOf(key));
      if (it != pending_.end()) it->second.erase(key);
    }
    return s;
  });
}

IOStatus PowerLossFs::Truncate(const std::string& fname, size_t size, const IOOptions& options,
                               IODebugContext* dbg) {
  return Powered([&] {
    IOStatus s = target()->Truncate(fname, size, options, dbg);
    if (s.ok()) {
      absl::MutexLock lock(&mu_);
      auto it = files_.find(Normal(fname));
      if (it != files_.end()) {
        it->second->written = size;
        it->second->synced = std::min<uint64_t>(it->second->synced, size);
      }
    }
    return s;
  });
}

IOStatus PowerLossFs::RenameFile(const std::string& src, const std::string& dst,
                                 const IOOptions& options, IODebugContext* dbg) {
  return Powered([&] {
    IOStatus s = target()->RenameFile(src, dst, options, dbg);
    if (!s.ok()) return s;
    const std::string from = Normal(src), to = Normal(dst);
    absl::MutexLock lock(&mu_);
    // The renamed file keeps its source's durable length; a replaced target is gone.
    auto it = files_.find(from);
    std::shared_ptr<FileState> state = it == files_.end() ? nullptr : it->second;
    if (it != files_.end()) files_.erase(it);
    files_.erase(to);
    if (state != nullptr) files_[to] = std::move(state);
    // The rename persists, and with it every earlier creation in the directories involved.
    pending_.erase(DirOf(from));
    pending_.erase(DirOf(to));
    return s;
  });
}

IOStatus PowerLossFs::LinkFile(const std::string& src, const std::string& dst,
                               const IOOptions& options, IODebugContext* dbg) {
  return Powered([&] {
    IOStatus s = target()->LinkFile(src, dst, options, dbg);
    if (!s.ok()) return s;
    // A hard link shares the source's data (and so its durable length); the new entry is
    // pending until its directory is synced.
    std::shared_ptr<FileState> state;
    {
      absl::MutexLock lock(&mu_);
      auto it = files_.find(Normal(src));
      if (it != files_.end()) state = it->second;
    }
    if (state == nullptr) {
      state = std::make_shared<FileState>();
      uint64_t size = 0;
      if (target()->GetFileSize(src, IOOptions(), &size, nullptr).ok()) {
        state->written = state->synced = size;
      }
    }
    Track(dst, std::move(state), /*new_entry=*/true);
    return s;
  });
}

IOStatus PowerLossFs::CreateDir(const std::string& dirname, const IOOptions& options,
                                IODebugContext* dbg) {
  return Powered([&] { return target()->CreateDir(dirname, options, dbg); });
}

IOStatus PowerLossFs::CreateDirIfMissing(const std::string& dirname, const IOOptions& options,
                                         IODebugContext* dbg) {
  return Powered([&] { return target()->CreateDirIfMissing(dirname, options, dbg); });
}

IOStatus PowerLossFs::DeleteDir(const std::string& dirname, const IOOptions& options,
                                IODebugContext* dbg) {
  return Powered([&] { return target()->DeleteDir(dirname, options, dbg); });
}

absl::StatusOr<PowerLossFs::DropReport> PowerLossFs::DropUnsyncedData() {
  Crash();
  absl::MutexLock lock(&mu_);
  DropReport report;
  std::error_code ec;
  for (const auto& [dir, entries] : pending_) {
    for (const std::string& path : entries) {
      const uintmax_t size = std::filesystem::file_size(path, ec);
      if (ec) continue;  // already gone
      if (!std::filesystem::remove(path, ec) || ec) {
        return absl::InternalError(absl::StrCat("cannot delete ", path, ": ", ec.message()));
      }
      ++report.files_deleted;
      report.bytes_dropped += size;
      files_.erase(path);
    }
  }
  for (const auto& [path, state] : files_) {
    const uintmax_t size = std::filesystem::file_size(path, ec);
    if (ec) continue;  // removed behind our back (not through RocksDB): nothing to drop
    if (size <= state->synced) continue;
    std::filesystem::resize_file(path, state->synced, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot truncate ", path, ": ", ec.message()));
    ++report.files_truncated;
    report.bytes_dropped += size - state->synced;
  }
  pending_.clear();
  files_.clear();
  return report;
}

}  // namespace agentd::testing
