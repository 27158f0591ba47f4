// Fuzzes authentication of a call's `authorization` metadata (auth/authenticator.h): the
// "Bearer <key>" parsing, the key format (auth/api_key.h KeyIdOf) and the lookup against a real
// RocksDB store in a temp dir, opened once, holding four fixed keys (admin, member, reader, and a
// revoked one; the seed corpus presents each).
//
// Input: byte 0 picks the called method (the policy table's names plus unknown ones); the rest is
// the header value.
// Invariants: every failure is UNAUTHENTICATED or PERMISSION_DENIED; a success names one of the
// live keys, and its token is exactly that key; KeyIdOf accepts only 1..256 printable bytes.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "agentd/storage/records.pb.h"
#include "auth/api_key.h"
#include "auth/audit.h"
#include "auth/authenticator.h"
#include "auth/bootstrap.h"
#include "auth/policy.h"
#include "fuzz_util.h"
#include "store/rocksdb_store.h"

namespace {

namespace auth = agentd::auth;
namespace v1 = agentd::v1;

// Keep in step with fuzz/corpus/auth_header (seeds present these keys).
constexpr absl::string_view kAdminKey = "fuzz-admin-key-0123456789abcdef";
constexpr absl::string_view kMemberKey =
    "agd_k0123456789abcdef_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
constexpr absl::string_view kReaderKey = "fuzz-reader-key-0123456789abcdef";
constexpr absl::string_view kRevokedKey = "fuzz-revoked-key-0123456789abcdef";

constexpr const char* kMethods[] = {
    "CreateAgent", "GetAgent",      "RunTurn",      "PutState",        "CreateProject",
    "CreateApiKey", "ListAuditEvents", "CreateBackup", "ServerReflectionInfo", "CreateResponse",
    "",            "NoSuchMethod",  "runturn",      "RunTurn\0"};

std::string g_dir;

void RemoveDir() {
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
}

void AddKey(agentd::store::ContextStore* store, absl::string_view key, v1::ApiKeyRole role,
            bool revoked) {
  agentd::storage::ApiKeyRecord record;
  v1::ApiKey* k = record.mutable_key();
  k->set_key_id(*auth::KeyIdOf(key));
  k->set_project_id(std::string(auth::kDefaultProject));
  k->set_role(role);
  k->set_name("fuzz");
  k->set_revoked(revoked);
  record.set_salt(auth::NewSalt());
  record.set_hash(auth::HashKey(record.salt(), key));
  const v1::AuditEvent event =
      auth::NewAuditEvent(v1::AUDIT_ACTION_UNSPECIFIED, auth::kDefaultProject, k->key_id(),
                          "CreateApiKey", "OK", "fuzz fixture");
  FUZZ_CHECK(store->CreateApiKey(record, event).ok(), "fixture key");
}

struct Fixture {
  agentd::store::RocksDbStore* store = nullptr;  // leaked on purpose: lives until exit
  auth::AuditLog* audit = nullptr;
  auth::Authenticator* authenticator = nullptr;

  Fixture() {
    char tmpl[] = "/tmp/agentd-fuzz-auth-XXXXXX";
    FUZZ_CHECK(mkdtemp(tmpl) != nullptr, "mkdtemp");
    g_dir = tmpl;
    std::atexit(RemoveDir);
    agentd::store::RocksDbStoreOptions options;
    options.path = g_dir + "/data";
    // No WAL: audit records of failed attempts (one per input) stay in memtables and flushes.
    options.durability = agentd::store::Durability::kNone;
    auto opened = agentd::store::RocksDbStore::Open(options);
    FUZZ_CHECK(opened.ok(), "opening the store");
    store = opened->release();
    auth::BootstrapOptions boot;
    boot.data_dir = g_dir;
    boot.bootstrap_key = std::string(kAdminKey);
    FUZZ_CHECK(auth::EnsureBootstrap(store, boot).ok(), "bootstrap");
    AddKey(store, kMemberKey, v1::API_KEY_ROLE_MEMBER, false);
    AddKey(store, kReaderKey, v1::API_KEY_ROLE_READER, false);
    AddKey(store, kRevokedKey, v1::API_KEY_ROLE_ADMIN, true);
    audit = new auth::AuditLog(store);
    authenticator = new auth::Authenticator(store, audit);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture* fixture = new Fixture();
  if (size == 0) return 0;
  if (size > 4096) return 0;  // gRPC limits metadata to 8 KiB by default; keep inputs near it
  const size_t n_methods = sizeof(kMethods) / sizeof(kMethods[0]);
  const absl::string_view method =
      data[0] % n_methods == n_methods - 1 ? absl::string_view("RunTurn\0", 8)
                                           : absl::string_view(kMethods[data[0] % n_methods]);
  const absl::string_view header(reinterpret_cast<const char*>(data) + 1, size - 1);

  absl::StatusOr<std::string> key_id = auth::KeyIdOf(header);
  if (key_id.ok()) {
    FUZZ_CHECK(!header.empty() && header.size() <= auth::kMaxKeyLength,
               "KeyIdOf accepted a key of the wrong length");
    FUZZ_CHECK(!key_id->empty() && key_id->size() <= 128 && (*key_id)[0] == 'k',
               "KeyIdOf returned a malformed key id");
  }

  auth::CallInfo call{method, "req-fuzz", "ipv4:127.0.0.1:1"};
  absl::StatusOr<auth::Identity> identity = fixture->authenticator->Check(header, call);
  if (!identity.ok()) {
    FUZZ_CHECK(absl::IsUnauthenticated(identity.status()) ||
                   absl::IsPermissionDenied(identity.status()),
               "authentication failed with an unexpected code");
    return 0;
  }
  const absl::string_view token = absl::StripAsciiWhitespace(header);
  const bool live = absl::EndsWith(token, kAdminKey) || absl::EndsWith(token, kMemberKey) ||
                    absl::EndsWith(token, kReaderKey);
  FUZZ_CHECK(live, "a header without a live key authenticated");
  FUZZ_CHECK(absl::StartsWithIgnoreCase(token, "bearer"), "accepted without the Bearer scheme");
  FUZZ_CHECK(identity->project_id == auth::kDefaultProject, "wrong project");
  FUZZ_CHECK(identity->role != v1::API_KEY_ROLE_UNSPECIFIED, "no role");
  return 0;
}
