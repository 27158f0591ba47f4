// AdminService backups end to end: an online backup taken while turns commit, restored into a
// new data dir, holds every acknowledged turn (and, taken at rest, exactly the live events);
// hostile paths, damaged backups and non-operators get clear errors and touch nothing.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agentd/v1/admin.grpc.pb.h"
#include "agentd/v1/project.grpc.pb.h"
#include "store/rocksdb_store.h"
#include "agentctl_runner.h"
#include "testing/server_harness.h"

namespace agentd {
namespace {

namespace fs = std::filesystem;

class BackupTest : public ::testing::Test {
 protected:
  BackupTest()
      : harness_([this](server::Config* c) { c->backup_dir = backups_.Sub("configured"); }) {
    admin_ = v1::AdminService::NewStub(harness_.channel());
  }

  v1::BackupInfo Backup(const std::string& dir, int keep_last = 0) {
    v1::CreateBackupRequest req;
    req.set_backup_dir(dir);
    req.set_keep_last(keep_last);
    v1::BackupInfo info;
    auto ctx = testing::Ctx(60);
    grpc::Status st = admin_->CreateBackup(ctx.get(), req, &info);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return info;
  }

  grpc::Status Restore(const std::string& dir, uint32_t id, const std::string& target,
                       v1::RestoreBackupResponse* resp) {
    v1::RestoreBackupRequest req;
    req.set_backup_dir(dir);
    req.set_backup_id(id);
    req.set_target_data_dir(target);
    auto ctx = testing::Ctx(60);
    return admin_->RestoreBackup(ctx.get(), req, resp);
  }

  // Every session of the default project and its events, read from a store on `data_dir`.
  static std::map<std::string, std::vector<std::string>> StoredEvents(const std::string& data_dir,
                                                                     const std::string& project) {
    store::RocksDbStoreOptions options;
    options.path = data_dir;
    auto store = store::RocksDbStore::Open(options);
    EXPECT_TRUE(store.ok()) << store.status();
    std::map<std::string, std::vector<std::string>> out;
    if (!store.ok()) return out;
    std::string token;
    do {
      auto page = (*store)->ListSessions(project, {}, 1000, token);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      for (const auto& record : page->sessions) {
        const std::string& id = record.session_id();
        auto events = (*store)->ReadEvents(project, id, 0, 1 << 20);
        EXPECT_TRUE(events.ok()) << events.status();
        if (!events.ok()) continue;
        for (const v1::Event& e : *events) out[id].push_back(e.SerializeAsString());
      }
      token = page->next_page_token;
    } while (!token.empty());
    return out;
  }

  std::map<std::string, std::vector<std::string>> LiveEvents(const std::vector<std::string>& ids) {
    std::map<std::string, std::vector<std::string>> out;
    for (const std::string& id : ids) {
      for (const v1::Event& e : harness_.AllEvents(id)) out[id].push_back(e.SerializeAsString());
    }
    return out;
  }

  std::string DefaultProject() {
    auto stub = v1::ProjectService::NewStub(harness_.channel());
    v1::GetProjectRequest req;
    v1::Project project;
    auto ctx = testing::Ctx();
    EXPECT_TRUE(stub->GetProject(ctx.get(), req, &project).ok());
    return project.project_id();
  }

  testing::TempDir backups_;
  testing::ServerHarness harness_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

TEST_F(BackupTest, BackupAtRestRestoresExactlyTheLiveEvents) {
  const v1::Agent agent = harness_.CreateAgent("echo", "be brief");
  std::vector<std::string> ids;
  for (int s = 0; s < 4; ++s) {
    ids.push_back(harness_.CreateSession(agent.agent_id()).session_id());
    for (int t = 0; t < 3; ++t) {
      v1::TurnResult result;
      ASSERT_TRUE(harness_.Send(ids.back(), absl::StrCat("s", s, " t", t), &result).ok());
    }
  }
  const v1::BackupInfo info = Backup(backups_.Sub("b"));
  EXPECT_GE(info.backup_id(), 1u);
  EXPECT_GT(info.size_bytes(), 0);
  EXPECT_GT(info.file_count(), 0);
  EXPECT_EQ(info.backup_dir(), backups_.Sub("b"));

  v1::RestoreBackupResponse restored;
  ASSERT_TRUE(Restore(backups_.Sub("b"), 0, backups_.Sub("restored"), &restored).ok());
  EXPECT_EQ(restored.backup().backup_id(), info.backup_id());
  EXPECT_EQ(restored.target_data_dir(), backups_.Sub("restored"));

  const auto live = LiveEvents(ids);
  const auto got = StoredEvents(backups_.Sub("restored"), DefaultProject());
  ASSERT_EQ(got.size(), ids.size());
  for (const std::string& id : ids) {
    ASSERT_EQ(got.count(id), 1u) << id;
    EXPECT_EQ(got.at(id), live.at(id)) << id;
    EXPECT_EQ(got.at(id).size(), 12u) << id;  // 3 turns x 4 events
  }
}

TEST_F(BackupTest, OnlineBackupUnderLoadHoldsEveryAcknowledgedTurn) {
  const v1::Agent agent = harness_.CreateAgent("echo");
  std::vector<std::string> ids;
  for (int s = 0; s < 4; ++s) ids.push_back(harness_.CreateSession(agent.agent_id()).session_id());
  std::atomic<bool> stop{false};
  std::vector<std::atomic<int64_t>> acked(ids.size());  // last_seq acknowledged per session
  std::vector<std::thread> writers;
  for (size_t s = 0; s < ids.size(); ++s) {
    writers.emplace_back([&, s] {
      for (int t = 0; !stop.load(); ++t) {
        v1::TurnResult result;
        if (harness_.Send(ids[s], absl::StrCat("turn ", t), &result).ok()) {
          acked[s].store(result.last_seq());
        }
      }
    });
  }
  while (acked[0].load() < 8) std::this_thread::yield();  // the load is running
  std::vector<int64_t> before(ids.size());
  for (size_t s = 0; s < ids.size(); ++s) before[s] = acked[s].load();
  const v1::BackupInfo info = Backup(backups_.Sub("b"));
  stop = true;
  for (auto& w : writers) w.join();

  v1::RestoreBackupResponse restored;
  ASSERT_TRUE(Restore(backups_.Sub("b"), info.backup_id(), backups_.Sub("r"), &restored).ok());
  const auto got = StoredEvents(backups_.Sub("r"), DefaultProject());
  const auto live = LiveEvents(ids);
  for (size_t s = 0; s < ids.size(); ++s) {
    const auto& restored_events = got.at(ids[s]);
    // Every turn acknowledged before the backup began is in it...
    EXPECT_GE(static_cast<int64_t>(restored_events.size()), before[s]) << ids[s];
    // ...and the backup is a byte-equal prefix of the live log (seq gap-free).
    ASSERT_LE(restored_events.size(), live.at(ids[s]).size());
    for (size_t i = 0; i < restored_events.size(); ++i) {
      ASSERT_EQ(restored_events[i], live.at(ids[s])[i]) << ids[s] << " event " << i;
      v1::Event e;
      ASSERT_TRUE(e.ParseFromString(restored_events[i]));
      EXPECT_EQ(e.seq(), static_cast<int64_t>(i) + 1);
    }
  }
}

TEST_F(BackupTest, ConfiguredDirListingAndKeepLast) {
  for (int i = 0; i < 3; ++i) Backup("");  // the configured backup_dir
  v1::ListBackupsRequest req;
  v1::ListBackupsResponse resp;
  auto ctx = testing::Ctx();
  ASSERT_TRUE(admin_->ListBackups(ctx.get(), req, &resp).ok());
  ASSERT_EQ(resp.backups_size(), 3);
  EXPECT_LT(resp.backups(0).backup_id(), resp.backups(2).backup_id());  // oldest first
  const v1::BackupInfo newest = Backup("", /*keep_last=*/2);
  auto ctx2 = testing::Ctx();
  resp.Clear();
  ASSERT_TRUE(admin_->ListBackups(ctx2.get(), req, &resp).ok());
  ASSERT_EQ(resp.backups_size(), 2);
  EXPECT_EQ(resp.backups(1).backup_id(), newest.backup_id());
}

TEST_F(BackupTest, HostileAndCarelessRequestsAreRefusedAndTouchNothing) {
  Backup(backups_.Sub("b"));
  auto code = [&](v1::RestoreBackupRequest req) {
    v1::RestoreBackupResponse resp;
    auto ctx = testing::Ctx();
    return admin_->RestoreBackup(ctx.get(), req, &resp).error_code();
  };
  v1::RestoreBackupRequest req;
  req.set_backup_dir(backups_.Sub("b"));
  req.set_target_data_dir("relative/dir");
  EXPECT_EQ(code(req), grpc::StatusCode::INVALID_ARGUMENT);
  req.set_target_data_dir(harness_.data_dir());  // the live data dir
  EXPECT_EQ(code(req), grpc::StatusCode::INVALID_ARGUMENT);
  req.set_target_data_dir(harness_.data_dir() + "/inside");
  EXPECT_EQ(code(req), grpc::StatusCode::INVALID_ARGUMENT);
  req.set_target_data_dir(backups_.Sub("b") + "/inside");  // into the backups themselves
  EXPECT_EQ(code(req), grpc::StatusCode::INVALID_ARGUMENT);
  fs::create_directories(backups_.Sub("full"));
  std::ofstream(backups_.Sub("full") + "/keep.txt") << "precious";
  req.set_target_data_dir(backups_.Sub("full"));
  EXPECT_EQ(code(req), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_TRUE(fs::exists(backups_.Sub("full") + "/keep.txt"));
  req.set_target_data_dir(backups_.Sub("new"));
  req.set_backup_id(999);
  EXPECT_EQ(code(req), grpc::StatusCode::NOT_FOUND);
  EXPECT_FALSE(fs::exists(backups_.Sub("new")));
  req.set_backup_dir(backups_.Sub("nothing-here"));
  req.set_backup_id(0);
  EXPECT_EQ(code(req), grpc::StatusCode::NOT_FOUND);

  v1::CreateBackupRequest create;
  create.set_backup_dir(harness_.data_dir() + "/backups");  // inside the data dir
  v1::BackupInfo info;
  auto ctx = testing::Ctx();
  EXPECT_EQ(admin_->CreateBackup(ctx.get(), create, &info).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  create.set_backup_dir(backups_.Sub("b"));
  create.set_keep_last(-1);
  auto ctx2 = testing::Ctx();
  EXPECT_EQ(admin_->CreateBackup(ctx2.get(), create, &info).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(BackupTest, ADamagedBackupIsDataLossAndNothingIsRestored) {
  const v1::Agent agent = harness_.CreateAgent("echo");
  const std::string id = harness_.CreateSession(agent.agent_id()).session_id();
  v1::TurnResult result;
  ASSERT_TRUE(harness_.Send(id, "remember this", &result).ok());
  Backup(backups_.Sub("b"));
  // Flip a byte in the middle of every backed-up data file.
  int damaged = 0;
  for (const auto& entry : fs::recursive_directory_iterator(backups_.Sub("b"))) {
    const std::string path = entry.path().string();
    if (!entry.is_regular_file() || path.find("/meta/") != std::string::npos ||
        entry.file_size() < 16) {
      continue;
    }
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(entry.file_size() / 2));
    char c = 0;
    f.read(&c, 1);
    f.seekp(static_cast<std::streamoff>(entry.file_size() / 2));
    c = static_cast<char>(c ^ 0x5a);
    f.write(&c, 1);
    ++damaged;
  }
  ASSERT_GT(damaged, 0);
  v1::RestoreBackupResponse resp;
  EXPECT_EQ(Restore(backups_.Sub("b"), 0, backups_.Sub("r"), &resp).error_code(),
            grpc::StatusCode::DATA_LOSS);
  EXPECT_FALSE(fs::exists(backups_.Sub("r")));
}

TEST_F(BackupTest, AgentctlAdminBackupListAndRestore) {
  const v1::Agent agent = harness_.CreateAgent("echo");
  const std::string id = harness_.CreateSession(agent.agent_id()).session_id();
  v1::TurnResult result;
  ASSERT_TRUE(harness_.Send(id, "keep me", &result).ok());
  auto cli = [&](std::vector<std::string> args, const std::string& key) {
    return testing::RunAgentctl({harness_.address(), key, std::move(args), "", backups_.path()});
  };
  testing::CliResult r = cli({"admin", "backup", "-o", "json"}, harness_.admin_key());
  ASSERT_EQ(r.code, 0) << r.all();
  EXPECT_NE(r.out.find("\"backup_id\": 1"), std::string::npos) << r.out;
  r = cli({"admin", "backups"}, harness_.admin_key());
  ASSERT_EQ(r.code, 0) << r.all();
  EXPECT_NE(r.out.find(backups_.Sub("configured")), std::string::npos) << r.out;
  r = cli({"admin", "restore", "--target", backups_.Sub("restored")}, harness_.admin_key());
  ASSERT_EQ(r.code, 0) << r.all();
  EXPECT_NE(r.out.find("restored backup 1 into " + backups_.Sub("restored")), std::string::npos);
  EXPECT_EQ(StoredEvents(backups_.Sub("restored"), DefaultProject()).at(id).size(), 4u);
  // Usage errors exit 2 before any call; server errors exit 1 with the status name.
  r = cli({"admin", "restore"}, harness_.admin_key());
  EXPECT_EQ(r.code, 2) << r.all();
  r = cli({"admin", "restore", "--target", backups_.Sub("restored")}, harness_.admin_key());
  EXPECT_EQ(r.code, 1) << r.all();
  EXPECT_NE(r.err.find("FAILED_PRECONDITION"), std::string::npos) << r.err;
  r = cli({"admin", "backup"}, "agd_k0123456789abcdef_" + std::string(64, '0'));
  EXPECT_EQ(r.code, 1) << r.all();
  EXPECT_NE(r.err.find("UNAUTHENTICATED"), std::string::npos) << r.err;
}

TEST(BackupConfigTest, WithoutABackupDirTheRequestMustNameOne) {
  testing::ServerHarness harness;
  auto admin = v1::AdminService::NewStub(harness.channel());
  v1::CreateBackupRequest req;
  v1::BackupInfo info;
  auto ctx = testing::Ctx();
  grpc::Status st = admin->CreateBackup(ctx.get(), req, &info);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("backup_dir"), std::string::npos) << st.error_message();
}

}  // namespace
}  // namespace agentd
