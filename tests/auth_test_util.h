// Shared by the src/auth unit tests (auth_test.cc, auth_projects_test.cc): a real RocksDbStore
// in a temp dir with helpers to make projects and keys and read the audit log.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "auth/api_key.h"
#include "auth/audit.h"
#include "common/time_util.h"
#include "store/rocksdb_store.h"
#include "testing/temp_dir.h"

#define ASSERT_OK(expr)                                       \
  do {                                                        \
    const ::absl::Status auth_test_status_ = (expr);          \
    ASSERT_TRUE(auth_test_status_.ok()) << auth_test_status_; \
  } while (0)

namespace agentd::auth::authtest {

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

}  // namespace agentd::auth::authtest
