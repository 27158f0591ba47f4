// Unit tests of src/auth: key format and hashing, the policy table, the Authenticator, bootstrap,
// the LimitEnforcer and the ProjectManager, against a real RocksDbStore in a temp dir.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "agentd/v1/agent.pb.h"
#include "agentd/v1/memory.pb.h"
#include "agentd/v1/session.pb.h"
#include "auth/api_key.h"
#include "auth/audit.h"
#include "auth/authenticator.h"
#include "auth/bootstrap.h"
#include "auth/limits.h"
#include "auth/policy.h"
#include "auth/project_manager.h"
#include "common/time_util.h"
#include "store/rocksdb_store.h"
#include "testing/temp_dir.h"

namespace agentd::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

#define ASSERT_OK(expr)                                       \
  do {                                                        \
    const ::absl::Status auth_test_status_ = (expr);          \
    ASSERT_TRUE(auth_test_status_.ok()) << auth_test_status_; \
  } while (0)

// ---- Keys ---------------------------------------------------------------------------------

TEST(ApiKeyTest, GeneratedKeysHaveTheDocumentedFormat) {
  const GeneratedKey a = GenerateApiKey();
  const GeneratedKey b = GenerateApiKey();
  EXPECT_THAT(a.key_id, MatchesRegex("k[0-9a-f]{16}"));
  EXPECT_THAT(a.secret, MatchesRegex("agd_k[0-9a-f]{16}_[0-9a-f]{64}"));
  EXPECT_TRUE(absl::StartsWith(a.secret, absl::StrCat(kKeyPrefix, a.key_id, "_")));
  EXPECT_NE(a.key_id, b.key_id);
  EXPECT_NE(a.secret, b.secret);
  absl::StatusOr<std::string> id = KeyIdOf(a.secret);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, a.key_id);
}

TEST(ApiKeyTest, CustomKeysGetAStableDerivedId) {
  const std::string key = "operator-chosen-key-0001";
  absl::StatusOr<std::string> id = KeyIdOf(key);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_THAT(*id, MatchesRegex("kb[0-9a-f]{16}"));
  EXPECT_EQ(*KeyIdOf(key), *id);
  EXPECT_NE(*KeyIdOf("operator-chosen-key-0002"), *id);
  // "agd_"-prefixed but not agentd's shape (uppercase hex): a custom key too.
  const std::string upper = absl::StrCat("agd_kABCDEF0123456789_", std::string(64, 'A'));
  EXPECT_THAT(*KeyIdOf(upper), MatchesRegex("kb[0-9a-f]{16}"));
}

TEST(ApiKeyTest, MalformedKeysAreRejectedWithoutEchoingThem) {
  const std::string too_long(kMaxKeyLength + 1, 'x');
  const std::vector<std::string> bad = {"",
                                        too_long,
                                        "has a space in the key text",
                                        "newline-in-key-text\nsecret",
                                        "non-ascii-key-text-\xc3\xa9\xc3\xa9",
                                        std::string("nul-in-key-text\0abc", 19)};
  for (const std::string& key : bad) {
    absl::StatusOr<std::string> id = KeyIdOf(key);
    ASSERT_FALSE(id.ok()) << key;
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
    if (key.size() >= 4) {
      EXPECT_THAT(std::string(id.status().message()), Not(HasSubstr(key.substr(0, 8))));
    }
  }
  EXPECT_TRUE(KeyIdOf("x").ok());
  EXPECT_TRUE(KeyIdOf("sk-test-admin").ok());
  EXPECT_TRUE(KeyIdOf(std::string(kMaxKeyLength, '~')).ok());
}

TEST(ApiKeyTest, HashAndConstantTimeCompare) {
  const std::string salt = NewSalt();
  EXPECT_EQ(salt.size(), 16u);
  EXPECT_NE(NewSalt(), salt);
  const std::string h = HashKey(salt, "some-key-value-123");
  EXPECT_EQ(h.size(), 32u);
  EXPECT_TRUE(ConstantTimeEquals(h, HashKey(salt, "some-key-value-123")));
  EXPECT_FALSE(ConstantTimeEquals(h, HashKey(salt, "some-key-value-124")));
  EXPECT_FALSE(ConstantTimeEquals(h, HashKey(NewSalt(), "some-key-value-123")));
  EXPECT_FALSE(ConstantTimeEquals(h, h.substr(0, 31)));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

// ---- Policy -------------------------------------------------------------------------------

TEST(PolicyTest, EveryRpcOfEveryServiceHasAnEntry) {
  // Referencing a message of each file links its descriptor into the generated pool.
  const std::vector<const google::protobuf::FileDescriptor*> files = {
      v1::Agent::descriptor()->file(), v1::Session::descriptor()->file(),
      v1::MemoryRecord::descriptor()->file(), v1::Project::descriptor()->file()};
  int methods = 0;
  for (const auto* file : files) {
    ASSERT_EQ(file->package(), "agentd.v1");
    EXPECT_EQ(google::protobuf::DescriptorPool::generated_pool()->FindFileByName(file->name()),
              file);
    ASSERT_GE(file->service_count(), 1) << file->name();
    for (int s = 0; s < file->service_count(); ++s) {
      const auto* service = file->service(s);
      for (int m = 0; m < service->method_count(); ++m) {
        const std::string& name = service->method(m)->name();
        Access access;
        EXPECT_TRUE(AccessFor(name, &access)) << service->full_name() << "." << name;
        // Reads need only kRead, except the key and audit listings (project admin).
        const bool read = absl::StartsWith(name, "Get") || absl::StartsWith(name, "List") ||
                          absl::StartsWith(name, "Watch") || absl::StartsWith(name, "Search") ||
                          absl::StartsWith(name, "Export");
        if (read && name != "ListApiKeys" && name != "ListAuditEvents") {
          EXPECT_EQ(access, Access::kRead) << name;
        }
        if (!read) {
          EXPECT_NE(access, Access::kRead) << name;
        }
        ++methods;
      }
    }
  }
  EXPECT_GT(methods, 30);  // the walk really saw the services
  Access access;
  ASSERT_TRUE(AccessFor("ServerReflectionInfo", &access));
  EXPECT_EQ(access, Access::kRead);
  EXPECT_FALSE(AccessFor("Frobnicate", &access));
  EXPECT_FALSE(AccessFor("", &access));
}

TEST(PolicyTest, AccessOfProjectServiceRpcs) {
  const std::vector<std::pair<std::string, Access>> expected = {
      {"CreateProject", Access::kOperator},
      {"GetProject", Access::kRead},
      {"ListProjects", Access::kRead},
      {"GetUsage", Access::kRead},
      {"CreateApiKey", Access::kProjectAdmin},
      {"ListApiKeys", Access::kProjectAdmin},
      {"RevokeApiKey", Access::kProjectAdmin},
      {"SetLimits", Access::kProjectAdmin},
      {"ListAuditEvents", Access::kProjectAdmin},
      {"RunTurn", Access::kWrite},
      {"ExportSession", Access::kRead},
      {"ImportSession", Access::kWrite}};
  for (const auto& [method, want] : expected) {
    Access got;
    ASSERT_TRUE(AccessFor(method, &got)) << method;
    EXPECT_EQ(got, want) << method;
  }
}

TEST(PolicyTest, RoleMatrix) {
  using R = v1::ApiKeyRole;
  const R kAdmin = v1::API_KEY_ROLE_ADMIN, kMember = v1::API_KEY_ROLE_MEMBER,
          kReader = v1::API_KEY_ROLE_READER, kNone = v1::API_KEY_ROLE_UNSPECIFIED;
  struct Row {
    R role;
    const char* project;
    bool read, write, admin, op;
  };
  const Row rows[] = {
      {kReader, "p1", true, false, false, false},
      {kMember, "p1", true, true, false, false},
      {kAdmin, "p1", true, true, true, false},
      {kNone, "p1", false, false, false, false},
      {kReader, "default", true, false, false, false},
      {kMember, "default", true, true, false, false},
      {kAdmin, "default", true, true, true, true},
      {kNone, "default", false, false, false, false},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(absl::StrCat(RoleName(r.role), " of ", r.project));
    EXPECT_EQ(RoleAllows(r.role, r.project, Access::kRead), r.read);
    EXPECT_EQ(RoleAllows(r.role, r.project, Access::kWrite), r.write);
    EXPECT_EQ(RoleAllows(r.role, r.project, Access::kProjectAdmin), r.admin);
    EXPECT_EQ(RoleAllows(r.role, r.project, Access::kOperator), r.op);
  }
  EXPECT_EQ(RoleName(kReader), "READER");
}

TEST(PolicyTest, TargetProject) {
  const Identity admin{"p1", "k1", v1::API_KEY_ROLE_ADMIN};
  const Identity op{"default", "k0", v1::API_KEY_ROLE_ADMIN};
  EXPECT_EQ(*TargetProject(admin, ""), "p1");
  EXPECT_EQ(*TargetProject(admin, "p1"), "p1");
  EXPECT_EQ(TargetProject(admin, "p2").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*TargetProject(op, "p2"), "p2");
  EXPECT_EQ(*TargetProject(op, ""), "default");
  EXPECT_TRUE(op.is_operator());
  EXPECT_FALSE(admin.is_operator());
}

TEST(LimitsTest, DayOfAndUsageDeltas) {
  EXPECT_EQ(DayOf(absl::FromUnixSeconds(0)), 0);
  EXPECT_EQ(DayOf(absl::FromUnixSeconds(86399)), 0);
  EXPECT_EQ(DayOf(absl::FromUnixSeconds(86400)), 1);
  v1::Usage u;
  u.set_input_tokens(3);
  EXPECT_EQ(UsageDeltas("a", "s", "m", 5, u).size(), 4u);
  const auto partial = UsageDeltas("a", "", "m", 5, u);
  ASSERT_EQ(partial.size(), 3u);
  EXPECT_EQ(partial[0].dimension, store::UsageDimension::kDay);
  EXPECT_EQ(partial[0].group, "");
  EXPECT_EQ(partial[0].day, 5);
  EXPECT_EQ(partial[0].usage.input_tokens(), 3);
}

// ---- With a store -------------------------------------------------------------------------

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = store::RocksDbStore::Open({dir_.Sub("data"), store::Durability::kRelaxed});
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = *std::move(opened);
  }

  /// Creates project `id` with `limits`.
  void MakeProject(const std::string& id, const v1::ProjectLimits& limits = {}) {
    v1::Project p;
    p.set_project_id(id);
    p.set_name(id);
    *p.mutable_limits() = limits;
    *p.mutable_create_time() = NowProto();
    ASSERT_OK(store_->CreateProject(
        p, NewAuditEvent(v1::AUDIT_ACTION_PROJECT_CREATED, id, "", "test", "OK", "")));
  }

  /// Stores a new key of `project` with `role`; returns the secret.
  std::string MakeKey(const std::string& project, v1::ApiKeyRole role) {
    const GeneratedKey key = GenerateApiKey();
    storage::ApiKeyRecord record;
    record.mutable_key()->set_key_id(key.key_id);
    record.mutable_key()->set_project_id(project);
    record.mutable_key()->set_role(role);
    record.set_salt(NewSalt());
    record.set_hash(HashKey(record.salt(), key.secret));
    const absl::Status s = store_->CreateApiKey(
        record, NewAuditEvent(v1::AUDIT_ACTION_API_KEY_CREATED, project, "", "test", "OK", ""));
    EXPECT_TRUE(s.ok()) << s;
    return key.secret;
  }

  std::vector<v1::AuditEvent> Audit(const std::string& project) {
    auto page = store_->ListAudit(project, absl::InfinitePast(), absl::InfiniteFuture(), 1000, "");
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? page->events : std::vector<v1::AuditEvent>{};
  }

  testing::TempDir dir_;
  std::unique_ptr<store::RocksDbStore> store_;
};

// ---- Authenticator ------------------------------------------------------------------------

class AuthenticatorTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    MakeProject("default");
    MakeProject("p1");
    audit_ = std::make_unique<AuditLog>(store_.get());
    authn_ = std::make_unique<Authenticator>(store_.get(), audit_.get());
  }
  absl::StatusOr<Identity> Check(const std::string& header) {
    return authn_->Check(header, CallInfo{"GetAgent", "req-42", "ipv4:127.0.0.1:5555"});
  }
  static void ExpectUnauthenticated(const absl::StatusOr<Identity>& r, absl::string_view message) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated) << r.status();
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(std::string(message)));
  }

  std::unique_ptr<AuditLog> audit_;
  std::unique_ptr<Authenticator> authn_;
};

TEST_F(AuthenticatorTest, ValidKeyYieldsTheIdentity) {
  const std::string key = MakeKey("p1", v1::API_KEY_ROLE_MEMBER);
  for (const std::string& header : {absl::StrCat("Bearer ", key), absl::StrCat("bearer  ", key),
                                    absl::StrCat(" BEARER\t", key, " ")}) {
    absl::StatusOr<Identity> id = authn_->Check(header, {"CreateSession", "r", "peer"});
    ASSERT_TRUE(id.ok()) << id.status();
    EXPECT_EQ(id->project_id, "p1");
    EXPECT_EQ(id->key_id, *KeyIdOf(key));
    EXPECT_EQ(id->role, v1::API_KEY_ROLE_MEMBER);
  }
}

TEST_F(AuthenticatorTest, BadKeysAreUnauthenticatedAndAuditedWithoutTheSecret) {
  auto check = [&](const std::string& header) { return Check(header); };
  const std::string key = MakeKey("p1", v1::API_KEY_ROLE_ADMIN);
  std::string wrong_secret = key;
  wrong_secret.back() = wrong_secret.back() == '0' ? '1' : '0';
  const std::string unknown = GenerateApiKey().secret;
  const std::string custom_unknown = "not-a-stored-custom-key";

  ExpectUnauthenticated(check(""), "missing authorization header");
  ExpectUnauthenticated(check("Basic dXNlcjpwYXNz"), "malformed authorization header");
  ExpectUnauthenticated(check("Bearer"), "malformed authorization header");
  ExpectUnauthenticated(check(key), "malformed authorization header");  // no scheme
  ExpectUnauthenticated(check("Bearer tiny key"), "malformed");
  ExpectUnauthenticated(check("Bearer tiny-key"), "unknown or revoked API key");
  ExpectUnauthenticated(check(absl::StrCat("Bearer ", wrong_secret)), "unknown or revoked API key");
  ExpectUnauthenticated(check(absl::StrCat("Bearer ", unknown)), "unknown or revoked API key");
  ExpectUnauthenticated(check(absl::StrCat("Bearer ", custom_unknown)),
                        "unknown or revoked API key");

  // Revocation takes effect on the very next call.
  ASSERT_TRUE(check(absl::StrCat("Bearer ", key)).ok());
  ASSERT_OK(
      store_
          ->RevokeApiKey("p1", *KeyIdOf(key), NowProto(),
                         NewAuditEvent(v1::AUDIT_ACTION_API_KEY_REVOKED, "p1", "", "t", "OK", ""))
          .status());
  absl::StatusOr<Identity> revoked = check(absl::StrCat("Bearer ", key));
  ExpectUnauthenticated(revoked, "unknown or revoked API key");
  // Unknown, wrong secret and revoked are told apart by no one but the audit log.
  EXPECT_EQ(revoked.status().message(), check(absl::StrCat("Bearer ", unknown)).status().message());

  std::vector<v1::AuditEvent> events = Audit("default");
  std::vector<v1::AuditEvent> p1 = Audit("p1");
  events.insert(events.end(), p1.begin(), p1.end());
  int failures = 0;
  for (const v1::AuditEvent& e : events) {
    const std::string text = e.DebugString();
    for (const std::string& secret : {key, wrong_secret, unknown, custom_unknown}) {
      EXPECT_THAT(text, Not(HasSubstr(secret)));
    }
    EXPECT_THAT(text, Not(HasSubstr("tiny-key")));
    EXPECT_THAT(text, Not(HasSubstr("tiny key")));
    if (e.action() != v1::AUDIT_ACTION_AUTHENTICATION_FAILED) continue;
    ++failures;
    EXPECT_EQ(e.outcome(), "UNAUTHENTICATED");
    EXPECT_EQ(e.method(), "GetAgent");
    EXPECT_EQ(e.request_id(), "req-42");
    EXPECT_EQ(e.peer(), "ipv4:127.0.0.1:5555");
    EXPECT_FALSE(e.audit_id().empty());
  }
  EXPECT_EQ(failures, 11);  // 9 above + the revoked key + the comparison's unknown key
  // The wrong secret and the revoked key are recorded in the key's project, with its id.
  int in_p1 = 0;
  for (const v1::AuditEvent& e : p1) {
    if (e.action() == v1::AUDIT_ACTION_AUTHENTICATION_FAILED) {
      ++in_p1;
      EXPECT_EQ(e.key_id(), *KeyIdOf(key));
    }
  }
  EXPECT_EQ(in_p1, 2);
}

TEST_F(AuthenticatorTest, WeakRolesArePermissionDenied) {
  const std::string reader = absl::StrCat("Bearer ", MakeKey("p1", v1::API_KEY_ROLE_READER));
  const std::string member = absl::StrCat("Bearer ", MakeKey("p1", v1::API_KEY_ROLE_MEMBER));
  const std::string admin = absl::StrCat("Bearer ", MakeKey("p1", v1::API_KEY_ROLE_ADMIN));
  const std::string op = absl::StrCat("Bearer ", MakeKey("default", v1::API_KEY_ROLE_ADMIN));
  auto code = [&](const std::string& header, absl::string_view method) {
    return authn_->Check(header, {method, "r", "p"}).status().code();
  };
  absl::StatusOr<Identity> denied = authn_->Check(reader, {"CreateSession", "req-7", "peer-7"});
  ASSERT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(denied.status().message(), "role READER may not call CreateSession");
  EXPECT_EQ(code(reader, "ListSessions"), absl::StatusCode::kOk);
  EXPECT_EQ(code(member, "CreateSession"), absl::StatusCode::kOk);
  EXPECT_EQ(code(member, "CreateApiKey"), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code(admin, "CreateApiKey"), absl::StatusCode::kOk);
  EXPECT_EQ(code(admin, "CreateProject"), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(code(op, "CreateProject"), absl::StatusCode::kOk);
  EXPECT_EQ(code(op, "NoSuchMethod"), absl::StatusCode::kPermissionDenied);

  bool found = false;
  for (const v1::AuditEvent& e : Audit("p1")) {
    if (e.action() == v1::AUDIT_ACTION_PERMISSION_DENIED && e.request_id() == "req-7") {
      found = true;
      EXPECT_EQ(e.outcome(), "PERMISSION_DENIED");
      EXPECT_EQ(e.method(), "CreateSession");
      EXPECT_EQ(e.peer(), "peer-7");
      EXPECT_EQ(e.key_id(), *KeyIdOf(reader.substr(7)));
    }
  }
  EXPECT_TRUE(found);
}

TEST_F(StoreTest, AuditSweepDeletesOldRecords) {
  MakeProject("p1");
  AuditLog audit(store_.get());
  audit.Record(NewAuditEvent(v1::AUDIT_ACTION_PERMISSION_DENIED, "p1", "k", "m", "X", "d"));
  EXPECT_EQ(Audit("p1").size(), 2u);
  ASSERT_OK(audit.Sweep(absl::Hours(1)));
  EXPECT_EQ(Audit("p1").size(), 2u);
  absl::SleepFor(absl::Milliseconds(2));
  ASSERT_OK(audit.Sweep(absl::ZeroDuration()));
  EXPECT_TRUE(Audit("p1").empty());
}

// ---- Bootstrap ----------------------------------------------------------------------------

class BootstrapTest : public StoreTest {
 protected:
  absl::StatusOr<Identity> Use(const std::string& key) {
    AuditLog audit(store_.get());
    Authenticator authn(store_.get(), &audit);
    return authn.Check(absl::StrCat("Bearer ", key), {"CreateProject", "r", "p"});
  }
  std::string KeyFile() { return dir_.Sub("data/bootstrap.key"); }
};

TEST_F(BootstrapTest, GivenKeyBecomesTheOperatorKey) {
  const std::string key = "my-operator-bootstrap-key-0001";
  ASSERT_OK(EnsureBootstrap(store_.get(), {dir_.Sub("data"), key}));
  absl::StatusOr<v1::Project> project = store_->GetProject("default");
  ASSERT_TRUE(project.ok()) << project.status();
  EXPECT_EQ(project->name(), "default");
  absl::StatusOr<Identity> id = Use(key);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE(id->is_operator());
  struct stat st;
  EXPECT_NE(::stat(KeyFile().c_str(), &st), 0);  // no file for a given key
  auto keys = store_->ListApiKeys("default");
  ASSERT_EQ(keys->size(), 1u);
  EXPECT_EQ((*keys)[0].name(), "bootstrap");
  std::set<v1::AuditAction> actions;
  for (const v1::AuditEvent& e : Audit("default")) {
    actions.insert(e.action());
    EXPECT_THAT(e.DebugString(), Not(HasSubstr(key)));
  }
  EXPECT_EQ(actions, (std::set<v1::AuditAction>{v1::AUDIT_ACTION_PROJECT_CREATED,
                                                v1::AUDIT_ACTION_API_KEY_CREATED}));
}

TEST_F(BootstrapTest, GeneratedKeyIsPrintedOnceAndSavedWithMode0600) {
  ::testing::internal::CaptureStdout();
  const absl::Status status = EnsureBootstrap(store_.get(), {dir_.Sub("data"), ""});
  const std::string printed = ::testing::internal::GetCapturedStdout();
  ASSERT_OK(status);
  struct stat st;
  ASSERT_EQ(::stat(KeyFile().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  std::ifstream in(KeyFile());
  std::stringstream content;
  content << in.rdbuf();
  const std::string key = content.str();
  EXPECT_THAT(key, MatchesRegex("agd_k[0-9a-f]{16}_[0-9a-f]{64}"));
  EXPECT_THAT(printed, HasSubstr(key));
  absl::StatusOr<Identity> id = Use(key);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE(id->is_operator());

  // A second start does nothing, even with a bootstrap key set.
  ::testing::internal::CaptureStdout();
  ASSERT_OK(EnsureBootstrap(store_.get(), {dir_.Sub("data"), "another-bootstrap-key-0001"}));
  ASSERT_OK(EnsureBootstrap(store_.get(), {dir_.Sub("data"), ""}));
  const std::string again = ::testing::internal::GetCapturedStdout();
  EXPECT_THAT(again, Not(HasSubstr(key)));
  EXPECT_THAT(again, Not(HasSubstr("bootstrap API key")));
  EXPECT_EQ(store_->ListApiKeys("default")->size(), 1u);
  EXPECT_FALSE(Use("another-bootstrap-key-0001").ok());
}

// API.md sets no format for AGENTD_BOOTSTRAP_KEY: a short one is the operator's choice (and
// warned about), not a reason to refuse to start.
TEST_F(BootstrapTest, ShortGivenKeyIsAcceptedAndOtherShortKeysAreNot) {
  ASSERT_OK(EnsureBootstrap(store_.get(), {dir_.Sub("data"), "sk-test-admin"}));
  absl::StatusOr<Identity> id = Use("sk-test-admin");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_TRUE(id->is_operator());
  for (const std::string other : {"sk-test-admiN", "sk-test-admi", "s"}) {
    EXPECT_EQ(Use(other).status().code(), absl::StatusCode::kUnauthenticated) << other;
  }
}

TEST_F(BootstrapTest, MalformedKeyIsRejectedAndNothingIsCreated) {
  const absl::Status status =
      EnsureBootstrap(store_.get(), {dir_.Sub("data"), "has a space in it"});
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()), HasSubstr("AGENTD_BOOTSTRAP_KEY"));
  EXPECT_EQ(store_->GetProject("default").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(BootstrapTest, KeyFileOfAnInterruptedBootstrapIsUsed) {
  const std::string key = GenerateApiKey().secret;
  { std::ofstream(KeyFile()) << key; }
  ::testing::internal::CaptureStdout();
  ASSERT_OK(EnsureBootstrap(store_.get(), {dir_.Sub("data"), ""}));
  ::testing::internal::GetCapturedStdout();
  EXPECT_TRUE(Use(key).ok());
}

// ---- LimitEnforcer ------------------------------------------------------------------------

v1::ProjectLimits Limits(double budget, int64_t tokens, int32_t rpm) {
  v1::ProjectLimits l;
  l.set_monthly_budget_usd(budget);
  l.set_daily_token_limit(tokens);
  l.set_requests_per_minute(rpm);
  return l;
}

v1::Usage MakeUsage(int64_t in, int64_t out, double cost) {
  v1::Usage u;
  u.set_input_tokens(in);
  u.set_output_tokens(out);
  u.set_model_calls(1);
  u.set_cost_usd(cost);
  return u;
}

std::string UtcMidnight(absl::CivilDay day) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromCivil(day, absl::UTCTimeZone()),
                          absl::UTCTimeZone());
}

TEST_F(StoreTest, RequestsPerMinuteBucket) {
  MakeProject("p1", Limits(0, 0, 3));
  LimitEnforcer limits(store_.get(), absl::Hours(1));
  for (int i = 0; i < 3; ++i) ASSERT_OK(limits.AdmitTurn("p1"));
  const absl::Status s = limits.AdmitTurn("p1");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  // 3/min refills one request in 20 s.
  EXPECT_EQ(s.message(), "requests_per_minute limit of 3 exceeded for project p1; retry in 20.0s");
  ASSERT_OK(limits.CheckStep("p1"));  // steps of a running turn are not rate limited
  // A project without a record, or without limits, is unlimited.
  for (int i = 0; i < 100; ++i) ASSERT_OK(limits.AdmitTurn("no-such-project"));
}

TEST_F(StoreTest, RequestsPerMinuteRefill) {
  MakeProject("p1", Limits(0, 0, 600));  // 10 per second
  LimitEnforcer limits(store_.get(), absl::Hours(1));
  int admitted = 0;
  while (limits.AdmitTurn("p1").ok() && admitted < 1000) ++admitted;
  EXPECT_GE(admitted, 600);
  EXPECT_LE(admitted, 610);
  const absl::Status s = limits.AdmitTurn("p1");
  EXPECT_THAT(std::string(s.message()), HasSubstr("retry in 0.1s"));
  absl::SleepFor(absl::Milliseconds(120));
  ASSERT_OK(limits.AdmitTurn("p1"));
}

TEST_F(StoreTest, ConcurrentAdmissionsShareOneBucket) {
  MakeProject("p1", Limits(0, 0, 100));
  LimitEnforcer limits(store_.get(), absl::Hours(1));
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        if (limits.AdmitTurn("p1").ok()) ++admitted;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_GE(admitted.load(), 100);
  EXPECT_LE(admitted.load(), 102);
}

TEST_F(StoreTest, MonthlyBudget) {
  MakeProject("p1", Limits(1.0, 0, 0));
  const absl::Time now = absl::Now();
  const int32_t today = DayOf(now);
  const absl::CivilMonth month = absl::ToCivilMonth(now, absl::UTCTimeZone());
  const int32_t last_month = DayOf(absl::FromCivil(absl::CivilDay(month), absl::UTCTimeZone())) - 1;
  // Spending of last month does not count.
  ASSERT_OK(store_->AddUsage("p1", UsageDeltas("a", "s", "m", last_month, MakeUsage(1, 1, 50))));
  ASSERT_OK(store_->AddUsage("p1", UsageDeltas("a", "s", "m", today, MakeUsage(1, 1, 0.6))));
  LimitEnforcer limits(store_.get(), absl::Hours(1));
  ASSERT_OK(limits.AdmitTurn("p1"));
  limits.Recorded("p1", MakeUsage(10, 10, 0.5));  // cached: no store write needed to count it
  const absl::Status s = limits.CheckStep("p1");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.message(),
            absl::StrCat("monthly budget of $1.00 exceeded for project p1 (spent $1.10); "
                         "resets at ",
                         UtcMidnight(absl::CivilDay(month + 1))));
  EXPECT_EQ(limits.AdmitTurn("p1").code(), absl::StatusCode::kResourceExhausted);
  // Raising the budget takes effect after Invalidate.
  ASSERT_OK(store_
                ->SetProjectLimits(
                    "p1", Limits(2.0, 0, 0), NowProto(),
                    NewAuditEvent(v1::AUDIT_ACTION_LIMITS_CHANGED, "p1", "", "t", "OK", ""))
                .status());
  EXPECT_FALSE(limits.CheckStep("p1").ok());
  limits.Invalidate("p1");
  ASSERT_OK(limits.CheckStep("p1"));  // the store says 0.6 (Recorded usage was never stored)
}

TEST_F(StoreTest, DailyTokenLimit) {
  MakeProject("p1", Limits(0, 100, 0));
  const int32_t today = DayOf(absl::Now());
  ASSERT_OK(store_->AddUsage("p1", UsageDeltas("a", "s", "m", today - 1, MakeUsage(500, 500, 0))));
  ASSERT_OK(store_->AddUsage("p1", UsageDeltas("a", "s", "m", today, MakeUsage(40, 40, 0))));
  LimitEnforcer limits(store_.get(), absl::ZeroDuration());  // always read the store
  ASSERT_OK(limits.AdmitTurn("p1"));
  ASSERT_OK(store_->AddUsage("p1", UsageDeltas("a", "s", "m", today, MakeUsage(20, 10, 0))));
  const absl::Status s = limits.AdmitTurn("p1");
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  const absl::CivilDay tomorrow = absl::ToCivilDay(absl::Now(), absl::UTCTimeZone()) + 1;
  EXPECT_EQ(s.message(), absl::StrCat("daily token limit of 100 exceeded for project p1 (used "
                                      "110); resets at ",
                                      UtcMidnight(tomorrow)));
}

// ---- ProjectManager -----------------------------------------------------------------------

class ProjectManagerTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    ASSERT_OK(EnsureBootstrap(store_.get(), {dir_.Sub("data"), "operator-key-for-tests"}));
    op_ = Identity{"default", *KeyIdOf("operator-key-for-tests"), v1::API_KEY_ROLE_ADMIN};
    limits_ = std::make_unique<LimitEnforcer>(store_.get(), absl::Hours(1));
    pm_ = std::make_unique<ProjectManager>(store_.get(), limits_.get());
  }
  std::string NewProject(const std::string& name) {
    v1::CreateProjectRequest req;
    req.set_name(name);
    auto p = pm_->CreateProject(op_, call_, req);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? p->project_id() : "";
  }
  /// A key of `project` created through the manager by `caller`.
  absl::StatusOr<v1::CreateApiKeyResponse> NewKey(const Identity& caller,
                                                  const std::string& project, v1::ApiKeyRole role) {
    v1::CreateApiKeyRequest req;
    req.set_project_id(project);
    req.set_role(role);
    req.set_name("test key");
    return pm_->CreateApiKey(caller, call_, req);
  }
  Identity As(const v1::ApiKey& key) {
    return Identity{key.project_id(), key.key_id(), key.role()};
  }

  std::unique_ptr<LimitEnforcer> limits_;
  std::unique_ptr<ProjectManager> pm_;
  Identity op_;
  CallInfo call_{"CreateApiKey", "req-pm", "peer-pm"};
};

TEST_F(ProjectManagerTest, CreateAndListProjects) {
  for (const std::string& bad : {std::string(), std::string(129, 'n'), std::string("a\x01")}) {
    v1::CreateProjectRequest req;
    req.set_name(bad);
    EXPECT_EQ(pm_->CreateProject(op_, call_, req).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  const std::string a = NewProject("Team A");
  EXPECT_THAT(a, MatchesRegex("proj_[0-9a-f]{32}"));
  v1::GetProjectRequest get;
  get.set_project_id(a);
  EXPECT_EQ(pm_->GetProject(op_, get)->name(), "Team A");
  auto all = pm_->ListProjects(op_, {});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->projects_size(), 2);  // default and A

  const auto admin_key = NewKey(op_, a, v1::API_KEY_ROLE_ADMIN);
  ASSERT_TRUE(admin_key.ok()) << admin_key.status();
  const Identity admin = As(admin_key->key());
  auto own = pm_->ListProjects(admin, {});
  ASSERT_EQ(own->projects_size(), 1);
  EXPECT_EQ(own->projects(0).project_id(), a);
  get.set_project_id("default");
  EXPECT_EQ(pm_->GetProject(admin, get).status().code(), absl::StatusCode::kNotFound);
  get.set_project_id("proj_missing");
  EXPECT_EQ(pm_->GetProject(op_, get).status().message(), "project proj_missing not found");
}

TEST_F(ProjectManagerTest, KeysStayInTheirProject) {
  const std::string a = NewProject("A"), b = NewProject("B");
  auto a_admin_key = NewKey(op_, a, v1::API_KEY_ROLE_ADMIN);
  auto b_member_key = NewKey(op_, b, v1::API_KEY_ROLE_MEMBER);
  ASSERT_TRUE(a_admin_key.ok() && b_member_key.ok());
  const Identity a_admin = As(a_admin_key->key());

  // The secret authenticates as a key of A.
  AuditLog audit(store_.get());
  Authenticator authn(store_.get(), &audit);
  auto id = authn.Check(absl::StrCat("Bearer ", a_admin_key->secret()), {"ListApiKeys", "", ""});
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->project_id, a);

  // Another project looks exactly like a missing one.
  auto other = NewKey(a_admin, b, v1::API_KEY_ROLE_READER);
  auto missing = NewKey(a_admin, "proj_missing", v1::API_KEY_ROLE_READER);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(other.status().message(), absl::StrCat("project ", b, " not found"));
  EXPECT_EQ(missing.status().message(), "project proj_missing not found");
  EXPECT_EQ(NewKey(op_, "proj_missing", v1::API_KEY_ROLE_READER).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(NewKey(a_admin, "", v1::API_KEY_ROLE_UNSPECIFIED).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto own = NewKey(a_admin, "", v1::API_KEY_ROLE_READER);
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(own->key().project_id(), a);

  v1::ListApiKeysRequest list;
  list.set_project_id(b);
  EXPECT_EQ(pm_->ListApiKeys(a_admin, list).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(pm_->ListApiKeys(op_, list)->keys_size(), 1);
  list.set_project_id("");
  EXPECT_EQ(pm_->ListApiKeys(a_admin, list)->keys_size(), 2);

  v1::RevokeApiKeyRequest revoke;
  revoke.set_key_id(b_member_key->key().key_id());
  const absl::Status cross = pm_->RevokeApiKey(a_admin, call_, revoke);
  EXPECT_EQ(cross.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(cross.message(), absl::StrCat("API key ", revoke.key_id(), " not found"));
  ASSERT_OK(pm_->RevokeApiKey(op_, call_, revoke));  // the operator may
  list.set_project_id(b);
  EXPECT_TRUE(pm_->ListApiKeys(op_, list)->keys(0).revoked());
  revoke.set_key_id("kdoesnotexist");
  EXPECT_EQ(pm_->RevokeApiKey(op_, call_, revoke).code(), absl::StatusCode::kNotFound);
}

TEST_F(ProjectManagerTest, GetUsageGroupsAndSums) {
  const std::string p = NewProject("usage");
  const Identity reader = As(NewKey(op_, p, v1::API_KEY_ROLE_READER)->key());
  const absl::Time now = absl::Now();
  const int32_t today = DayOf(now);
  ASSERT_OK(store_->AddUsage(
      p, UsageDeltas("agent-b", "s1", "small", today - 1, MakeUsage(10, 1, 0.25))));
  ASSERT_OK(
      store_->AddUsage(p, UsageDeltas("agent-a", "s2", "small", today, MakeUsage(5, 2, 0.5))));
  ASSERT_OK(store_->AddUsage(p, UsageDeltas("agent-b", "s1", "big", today, MakeUsage(1, 1, 1))));

  v1::GetUsageRequest req;
  auto by_day = pm_->GetUsage(reader, req);  // UNSPECIFIED = DAY
  ASSERT_TRUE(by_day.ok()) << by_day.status();
  ASSERT_EQ(by_day->rows_size(), 2);
  const absl::CivilDay civil_today = absl::ToCivilDay(now, absl::UTCTimeZone());
  EXPECT_EQ(by_day->rows(0).group(), absl::FormatCivilTime(civil_today - 1));
  EXPECT_EQ(by_day->rows(1).group(), absl::FormatCivilTime(civil_today));
  EXPECT_EQ(by_day->rows(1).usage().input_tokens(), 6);
  EXPECT_EQ(by_day->total().input_tokens(), 16);
  EXPECT_EQ(by_day->total().model_calls(), 3);
  EXPECT_DOUBLE_EQ(by_day->total().cost_usd(), 1.75);

  req.set_group_by(v1::USAGE_GROUP_BY_AGENT);
  auto by_agent = pm_->GetUsage(reader, req);
  ASSERT_EQ(by_agent->rows_size(), 2);
  EXPECT_EQ(by_agent->rows(0).group(), "agent-a");
  EXPECT_EQ(by_agent->rows(1).group(), "agent-b");
  EXPECT_EQ(by_agent->rows(1).usage().input_tokens(), 11);  // summed over both days

  req.set_group_by(v1::USAGE_GROUP_BY_MODEL);
  *req.mutable_start_time() = ToProto(absl::FromCivil(civil_today, absl::UTCTimeZone()));
  auto by_model = pm_->GetUsage(reader, req);  // today only
  ASSERT_EQ(by_model->rows_size(), 2);
  EXPECT_EQ(by_model->rows(0).group(), "big");
  EXPECT_EQ(by_model->total().input_tokens(), 6);

  req.set_group_by(v1::USAGE_GROUP_BY_SESSION);
  *req.mutable_end_time() = ToProto(absl::FromCivil(civil_today - 2, absl::UTCTimeZone()));
  EXPECT_EQ(pm_->GetUsage(reader, req).status().code(), absl::StatusCode::kInvalidArgument);
  req.set_project_id("default");
  EXPECT_EQ(pm_->GetUsage(reader, req).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ProjectManagerTest, SetLimitsValidatesAuditsAndInvalidates) {
  LimitEnforcer& limits = *limits_;
  const std::string p = NewProject("limited");
  const Identity admin = As(NewKey(op_, p, v1::API_KEY_ROLE_ADMIN)->key());
  const double inf = std::numeric_limits<double>::infinity();
  for (const v1::ProjectLimits& bad : {Limits(-1, 0, 0), Limits(std::nan(""), 0, 0),
                                       Limits(inf, 0, 0), Limits(0, -5, 0), Limits(0, 0, -1)}) {
    v1::SetLimitsRequest req;
    *req.mutable_limits() = bad;
    EXPECT_EQ(pm_->SetLimits(admin, call_, req).status().code(), absl::StatusCode::kInvalidArgument)
        << bad.DebugString();
  }
  ASSERT_OK(limits.AdmitTurn(p));  // cached: unlimited
  v1::SetLimitsRequest req;
  *req.mutable_limits() = Limits(12.5, 1000, 1);
  auto updated = pm_->SetLimits(admin, call_, req);
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->limits().requests_per_minute(), 1);
  ASSERT_OK(limits.AdmitTurn(p));  // the new bucket of 1
  EXPECT_EQ(limits.AdmitTurn(p).code(), absl::StatusCode::kResourceExhausted);

  req.set_project_id("default");
  EXPECT_EQ(pm_->SetLimits(admin, call_, req).status().code(), absl::StatusCode::kNotFound);
  bool audited = false;
  for (const v1::AuditEvent& e : Audit(p)) {
    if (e.action() != v1::AUDIT_ACTION_LIMITS_CHANGED) continue;
    audited = true;
    EXPECT_THAT(e.detail(), HasSubstr("monthly_budget_usd 0"));
    EXPECT_THAT(e.detail(), HasSubstr("monthly_budget_usd 12.5"));
    EXPECT_THAT(e.detail(), HasSubstr("requests_per_minute 1"));
    EXPECT_EQ(e.key_id(), admin.key_id);
  }
  EXPECT_TRUE(audited);
}

TEST_F(ProjectManagerTest, ListAuditEventsShowsKeyCreationAndRevocation) {
  const std::string p = NewProject("audited");
  auto admin_key = NewKey(op_, p, v1::API_KEY_ROLE_ADMIN);
  const Identity admin = As(admin_key->key());
  auto member_key = NewKey(admin, "", v1::API_KEY_ROLE_MEMBER);
  v1::RevokeApiKeyRequest revoke;
  revoke.set_key_id(member_key->key().key_id());
  ASSERT_OK(pm_->RevokeApiKey(admin, call_, revoke));

  auto events = pm_->ListAuditEvents(admin, {});
  ASSERT_TRUE(events.ok()) << events.status();
  std::vector<v1::AuditAction> actions;
  for (const v1::AuditEvent& e : events->events()) {
    actions.push_back(e.action());
    EXPECT_THAT(e.DebugString(), Not(HasSubstr(admin_key->secret())));
    EXPECT_THAT(e.DebugString(), Not(HasSubstr(member_key->secret())));
  }
  EXPECT_EQ(actions, (std::vector<v1::AuditAction>{
                         v1::AUDIT_ACTION_PROJECT_CREATED, v1::AUDIT_ACTION_API_KEY_CREATED,
                         v1::AUDIT_ACTION_API_KEY_CREATED, v1::AUDIT_ACTION_API_KEY_REVOKED}));
  const v1::AuditEvent& created = events->events(2);
  EXPECT_EQ(created.detail(),
            absl::StrCat("key ", member_key->key().key_id(), " role MEMBER name test key"));
  EXPECT_EQ(created.key_id(), admin.key_id);
  EXPECT_EQ(created.request_id(), "req-pm");
  EXPECT_EQ(created.peer(), "peer-pm");

  v1::ListAuditEventsRequest req;
  req.set_project_id("default");
  EXPECT_EQ(pm_->ListAuditEvents(admin, req).status().code(), absl::StatusCode::kNotFound);
  req.set_project_id(p);
  EXPECT_EQ(pm_->ListAuditEvents(op_, req)->events_size(), 4);
  req.set_page_size(1);
  auto first = pm_->ListAuditEvents(op_, req);
  EXPECT_EQ(first->events_size(), 1);
  EXPECT_FALSE(first->next_page_token().empty());
  *req.mutable_start_time() = NowProto();
  *req.mutable_end_time() = ToProto(absl::Now() - absl::Hours(1));
  EXPECT_EQ(pm_->ListAuditEvents(op_, req).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace agentd::auth
