#include "auth/bootstrap.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "auth/api_key.h"
#include "auth/audit.h"
#include "auth/policy.h"
#include "common/status_macros.h"
#include "common/time_util.h"

namespace agentd::auth {
namespace {

constexpr absl::string_view kKeyFileName = "bootstrap.key";
constexpr absl::string_view kMethod = "Bootstrap";

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  return absl::FailedPreconditionError(
      absl::StrCat("cannot ", what, " ", path, ": ", std::strerror(errno)));
}

/// Writes `key` to a new file at `path`, mode 0600, fsynced with its directory. ALREADY_EXISTS
/// if the file exists.
absl::Status WriteKeyFile(const std::string& dir, const std::string& path, absl::string_view key) {
  const int fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return absl::AlreadyExistsError(absl::StrCat(path, " exists"));
    return ErrnoError("create", path);
  }
  absl::Status status;
  size_t written = 0;
  while (written < key.size() && status.ok()) {
    const ssize_t n = ::write(fd, key.data() + written, key.size() - written);
    if (n < 0 && errno != EINTR) status = ErrnoError("write", path);
    if (n > 0) written += static_cast<size_t>(n);
  }
  // The umask may have narrowed the mode, never widened it; make it exactly 0600 anyway.
  if (status.ok() && ::fchmod(fd, 0600) != 0) status = ErrnoError("chmod", path);
  if (status.ok() && ::fsync(fd) != 0) status = ErrnoError("fsync", path);
  ::close(fd);
  if (!status.ok()) {
    ::unlink(path.c_str());
    return status;
  }
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);  // best effort: the entry's durability, not the content's
    ::close(dir_fd);
  }
  return absl::OkStatus();
}

/// The key in an existing bootstrap.key (left by a bootstrap that stopped before storing it).
absl::StatusOr<std::string> ReadKeyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError("read", path);
  std::stringstream content;
  content << in.rdbuf();
  std::string key(absl::StripAsciiWhitespace(content.str()));
  absl::Status valid = KeyIdOf(key).status();
  if (!valid.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " exists but does not hold a valid key (", valid.message(),
                     "); remove it to have a new key generated"));
  }
  return key;
}

/// The admin key to store: AGENTD_BOOTSTRAP_KEY, else a generated one (written to the key file
/// and printed), else the one a previous, interrupted bootstrap wrote to the key file.
absl::StatusOr<std::string> ChooseKey(const BootstrapOptions& options, std::string* source) {
  if (!options.bootstrap_key.empty()) {
    absl::Status valid = KeyIdOf(options.bootstrap_key).status();
    if (!valid.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("AGENTD_BOOTSTRAP_KEY is not a valid API key: ", valid.message()));
    }
    if (options.bootstrap_key.size() < kWeakKeyLength) {
      spdlog::warn(
          "bootstrap: AGENTD_BOOTSTRAP_KEY is {} characters long; keys shorter than {} are easy "
          "to guess (generated keys carry 256 random bits)",
          options.bootstrap_key.size(), kWeakKeyLength);
    }
    *source = "from AGENTD_BOOTSTRAP_KEY";
    return options.bootstrap_key;
  }
  const std::string dir = options.data_dir.empty() ? "." : options.data_dir;
  const std::string path = absl::StrCat(dir, "/", kKeyFileName);
  // The file is written before anything is stored: a crash in between leaves a key file that
  // the next start picks up, never a stored key nobody has.
  const GeneratedKey key = GenerateApiKey();
  absl::Status written = WriteKeyFile(dir, path, key.secret);
  if (absl::IsAlreadyExists(written)) {
    spdlog::warn("bootstrap: using the key already in {} (left by an interrupted bootstrap)", path);
    *source = absl::StrCat("from ", path);
    return ReadKeyFile(path);
  }
  AGENTD_RETURN_IF_ERROR(written);
  *source = absl::StrCat("generated, saved in ", path);
  // stdout, not the logger: the key must not end up in log files.
  std::fprintf(stdout,
               "agentd: generated the admin API key of the \"default\" project; it is shown once "
               "and saved in %s (mode 0600):\nagentd: bootstrap API key: %s\n",
               path.c_str(), key.secret.c_str());
  std::fflush(stdout);
  return key.secret;
}

}  // namespace

absl::Status EnsureBootstrap(store::ContextStore* store, const BootstrapOptions& options) {
  const std::string project_id(kDefaultProject);
  absl::StatusOr<v1::Project> existing = store->GetProject(project_id);
  if (!existing.ok() && !absl::IsNotFound(existing.status())) return existing.status();
  if (existing.ok()) {
    // A project without any key record can only come from a bootstrap interrupted between its
    // two writes; finish it. Otherwise there is nothing to do.
    AGENTD_ASSIGN_OR_RETURN(std::vector<v1::ApiKey> keys, store->ListApiKeys(project_id));
    if (!keys.empty()) {
      if (!options.bootstrap_key.empty()) {
        spdlog::info("bootstrap: AGENTD_BOOTSTRAP_KEY ignored: the default project already exists");
      }
      return absl::OkStatus();
    }
  }

  std::string source;
  AGENTD_ASSIGN_OR_RETURN(std::string key, ChooseKey(options, &source));
  AGENTD_ASSIGN_OR_RETURN(std::string key_id, KeyIdOf(key));
  const google::protobuf::Timestamp now = NowProto();

  if (!existing.ok()) {
    v1::Project project;
    project.set_project_id(project_id);
    project.set_name(project_id);
    *project.mutable_create_time() = now;
    *project.mutable_update_time() = now;
    const v1::AuditEvent audit =
        NewAuditEvent(v1::AUDIT_ACTION_PROJECT_CREATED, project_id, key_id, kMethod, "OK",
                      "default project created at bootstrap");
    absl::Status created = store->CreateProject(project, audit);
    // Replicas starting together on one shared store: another one created it meanwhile.
    if (absl::IsAlreadyExists(created)) {
      spdlog::info("bootstrap: another replica created the default project meanwhile");
    } else {
      AGENTD_RETURN_IF_ERROR(created);
    }
  }

  storage::ApiKeyRecord record;
  v1::ApiKey* api_key = record.mutable_key();
  api_key->set_key_id(key_id);
  api_key->set_project_id(project_id);
  api_key->set_role(v1::API_KEY_ROLE_ADMIN);
  api_key->set_name("bootstrap");
  *api_key->mutable_create_time() = now;
  record.set_salt(NewSalt());
  record.set_hash(HashKey(record.salt(), key));
  const v1::AuditEvent audit =
      NewAuditEvent(v1::AUDIT_ACTION_API_KEY_CREATED, project_id, key_id, kMethod, "OK",
                    absl::StrCat("key ", key_id, " role ADMIN name bootstrap"));
  absl::Status stored = store->CreateApiKey(record, audit);
  if (absl::IsAlreadyExists(stored)) {  // the same AGENTD_BOOTSTRAP_KEY, stored by another replica
    spdlog::info("bootstrap: key {} was stored by another replica", key_id);
    return absl::OkStatus();
  }
  AGENTD_RETURN_IF_ERROR(stored);

  spdlog::info("bootstrap: created the default project and its ADMIN key {} ({})", key_id, source);
  return absl::OkStatus();
}

}  // namespace agentd::auth
