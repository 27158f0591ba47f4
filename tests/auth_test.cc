// Unit tests of src/auth: key format and hashing, the policy table, the Authenticator and
// bootstrap, against a real RocksDbStore in a temp dir. The LimitEnforcer and the ProjectManager
// are in auth_projects_test.cc.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agentd/v1/agent.pb.h"
#include "agentd/v1/memory.pb.h"
#include "agentd/v1/session.pb.h"
#include "auth/api_key.h"
#include "auth/audit.h"
#include "auth/authenticator.h"
#include "auth/bootstrap.h"
#include "auth/limits.h"
#include "auth/policy.h"
#include "common/time_util.h"
#include "store/rocksdb_store.h"
#include "testing/temp_dir.h"
#include "auth_test_util.h"

namespace agentd::auth {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

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

using authtest::StoreTest;

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

}  // namespace
}  // namespace agentd::auth
