#include "store/rocksdb_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <random>
#include <set>
#include <thread>

#include "common/time_util.h"
#include "rocksdb/comparator.h"
#include "rocksdb/db.h"
#include "store/rocksdb_util.h"
#include "store/schema.h"
#include "store_contract_test.h"
#include "store_memory_contract_test.h"
#include "store_state_contract_test.h"
#include "store_tenancy_contract_test.h"
#include "testing/temp_dir.h"

namespace agentd::store {
namespace {

using TempDir = ::agentd::testing::TempDir;

// The contract runs with kRelaxed to keep the unit set fast (an fsync costs milliseconds on a
// busy disk); SyncCommitsFromManyThreads below covers the synced path.
struct RocksDbHarness {
  TempDir dir;
  std::unique_ptr<ContextStore> NewStore() {
    absl::StatusOr<std::unique_ptr<RocksDbStore>> store =
        RocksDbStore::Open({dir.Sub("data"), Durability::kRelaxed});
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return nullptr;
    return *std::move(store);
  }
};
INSTANTIATE_TYPED_TEST_SUITE_P(RocksDb, StoreContractTest, ::testing::Types<RocksDbHarness>);
INSTANTIATE_TYPED_TEST_SUITE_P(RocksDb, StoreTenancyContractTest, ::testing::Types<RocksDbHarness>);
INSTANTIATE_TYPED_TEST_SUITE_P(RocksDb, StoreStateContractTest, ::testing::Types<RocksDbHarness>);
INSTANTIATE_TYPED_TEST_SUITE_P(RocksDb, StoreMemoryContractTest, ::testing::Types<RocksDbHarness>);

// ---- RocksDB-specific behaviour ------------------------------------------------------------

absl::StatusOr<std::unique_ptr<RocksDbStore>> OpenAt(const std::string& path,
                                                     Durability d = Durability::kSync) {
  return RocksDbStore::Open({path, d});
}

using RawFn = std::function<void(rocksdb::DB*, const std::vector<rocksdb::ColumnFamilyHandle*>&)>;

/// Opens a closed data dir with plain RocksDB (every family of the schema, the usage merge
/// operator) and runs `fn`.
void WithRawDb(const std::string& path, const RawFn& fn) {
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  cfs.reserve(schema::kColumnFamilies.size());
  for (const schema::ColumnFamilyInfo& info : schema::kColumnFamilies) {
    cfs.emplace_back(info.name, rocksdb::ColumnFamilyOptions());
  }
  cfs[schema::Index(schema::ColumnFamily::kUsage)].options.merge_operator =
      internal::NewUsageMergeOperator();
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  const rocksdb::Status s = rocksdb::DB::Open(rocksdb::DBOptions(), path, cfs, &handles, &db);
  ASSERT_TRUE(s.ok()) << s.ToString();
  fn(db, handles);
  for (rocksdb::ColumnFamilyHandle* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  delete db;
}

rocksdb::ColumnFamilyHandle* H(const std::vector<rocksdb::ColumnFamilyHandle*>& handles,
                               schema::ColumnFamily cf) {
  return handles[schema::Index(cf)];
}

storage::SessionRecord Session(const std::string& id) {
  storage::SessionRecord r;
  r.mutable_session()->set_session_id(id);
  r.mutable_session()->set_agent_id("a");
  r.mutable_session()->set_status(v1::SESSION_STATUS_RUNNING);
  return r;
}

SessionWrite AppendWrite(const std::string& project, const storage::SessionRecord& current, int n,
                         const std::string& idempotency_key = "") {
  SessionWrite w;
  w.project_id = project;
  w.session_id = current.session().session_id();
  w.expected_revision = current.revision();
  w.record = current;
  int64_t seq = current.session().last_seq();
  for (int i = 0; i < n; ++i) {
    v1::Event& e = w.events.emplace_back();
    e.set_session_id(w.session_id);
    e.set_seq(++seq);
    e.mutable_message()->set_text(absl::StrCat("event ", seq));
  }
  w.record.mutable_session()->set_last_seq(seq);
  w.idempotency_key = idempotency_key;
  w.idempotency.set_result("result");
  return w;
}

v1::Agent Agent(const std::string& id, int64_t version) {
  v1::Agent a;
  a.set_agent_id(id);
  a.set_version(version);
  a.set_model(absl::StrCat("model-", version));
  return a;
}

TEST(RocksDbStoreTest, CloseAndReopenKeepsEverything) {
  TempDir dir;
  const std::string path = dir.Sub("data");
  {
    auto store = OpenAt(path);
    ASSERT_TRUE(store.ok()) << store.status();
    ContextStore& s = **store;
    ASSERT_TRUE(s.PutAgentVersion("p", Agent("a", 1), 0).ok());
    ASSERT_TRUE(s.PutAgentVersion("p", Agent("a", 2), 1).ok());
    ASSERT_TRUE(s.PutAgentVersion("p", Agent("gone", 1), 0).ok());
    ASSERT_TRUE(s.DeleteAgent("p", "gone").ok());
    ASSERT_TRUE(s.CreateSession("p", Session("s")).ok());
    ASSERT_TRUE(s.CommitSessionWrite(AppendWrite("p", *s.GetSession("p", "s"), 5, "k")).ok());
  }
  auto store = OpenAt(path, Durability::kRelaxed);
  ASSERT_TRUE(store.ok()) << store.status();
  ContextStore& s = **store;
  EXPECT_EQ(s.GetAgent("p", "a", 0)->model(), "model-2");
  EXPECT_EQ(s.GetAgent("p", "a", 1)->model(), "model-1");
  EXPECT_EQ(s.GetAgent("p", "gone", 0).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(s.GetAgent("p", "gone", 1, true).ok());
  absl::StatusOr<storage::SessionRecord> rec = s.GetSession("p", "s");
  ASSERT_TRUE(rec.ok()) << rec.status();
  EXPECT_EQ(rec->revision(), 2);
  EXPECT_EQ(rec->session().last_seq(), 5);
  EXPECT_EQ(s.ReadEvents("p", "s", 0, 100)->size(), 5u);
  EXPECT_EQ((*s.GetIdempotency("p", "s", "k"))->result(), "result");
  int running = 0;
  ASSERT_TRUE(
      s.ForEachSessionWithStatus(v1::SESSION_STATUS_RUNNING, [&](const std::string&,
                                                                 const storage::SessionRecord&) {
         ++running;
         return absl::OkStatus();
       }).ok());
  EXPECT_EQ(running, 1);
  // And it goes on where it left off.
  ASSERT_TRUE(s.CommitSessionWrite(AppendWrite("p", *rec, 1)).ok());
  EXPECT_EQ(s.ReadEvents("p", "s", 5, 100)->at(0).seq(), 6);
}

TEST(RocksDbStoreTest, SyncCommitsFromManyThreads) {
  TempDir dir;
  auto store = OpenAt(dir.Sub("data"), Durability::kSync);
  ASSERT_TRUE(store.ok()) << store.status();
  ContextStore& s = **store;
  constexpr int kThreads = 8;
  constexpr int kCommits = 10;
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_TRUE(s.CreateSession("p", Session(absl::StrCat("s", t))).ok());
  }
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string id = absl::StrCat("s", t);
      for (int i = 0; i < kCommits; ++i) {
        absl::StatusOr<storage::SessionRecord> rec = s.GetSession("p", id);
        if (!rec.ok() ||
            !s.CommitSessionWrite(AppendWrite("p", *rec, 2, absl::StrCat("k", i))).ok()) {
          ++failures;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    const std::string id = absl::StrCat("s", t);
    EXPECT_EQ(s.GetSession("p", id)->revision(), 1 + kCommits);
    EXPECT_EQ(s.ReadEvents("p", id, 0, 1000)->size(), static_cast<size_t>(2 * kCommits));
    EXPECT_TRUE(s.GetIdempotency("p", id, absl::StrCat("k", kCommits - 1))->has_value());
  }
}

TEST(RocksDbStoreTest, SecondOpenOfTheSameDirIsInUse) {
  TempDir dir;
  const std::string path = dir.Sub("data");
  auto first = OpenAt(path);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = OpenAt(path);
  ASSERT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
  EXPECT_NE(second.status().message().find("in use"), absl::string_view::npos) << second.status();
  EXPECT_NE(second.status().message().find(path), absl::string_view::npos) << second.status();
  first->reset();
  EXPECT_TRUE(OpenAt(path).ok());
}

TEST(RocksDbStoreTest, NonWritableDirIsFailedPrecondition) {
  TempDir dir;
  const std::string parent = dir.Sub("ro");
  ASSERT_EQ(mkdir(parent.c_str(), 0500), 0);
  struct RestoreMode {
    std::string path;
    ~RestoreMode() { chmod(path.c_str(), 0700); }  // so that TempDir can remove it
  } restore{parent};
  if (access(parent.c_str(), W_OK) == 0) GTEST_SKIP() << "running as root: 0500 is writable";

  for (const std::string& path : {parent, parent + "/data"}) {
    auto store = OpenAt(path);
    EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
    EXPECT_NE(store.status().message().find(path), absl::string_view::npos) << store.status();
  }
}

TEST(RocksDbStoreTest, WritesFormatVersionOnCreate) {
  TempDir dir;
  const std::string path = dir.Sub("data");
  ASSERT_TRUE(OpenAt(path).ok());
  WithRawDb(path, [](rocksdb::DB* db, const auto& handles) {
    std::string value;
    ASSERT_TRUE(db->Get({}, H(handles, schema::ColumnFamily::kMeta), "format", &value).ok());
    storage::FormatInfo info;
    ASSERT_TRUE(info.ParseFromString(value));
    EXPECT_EQ(info.version(), schema::kFormatVersion);
    EXPECT_EQ(info.version(), 1);
  });
}

TEST(RocksDbStoreTest, NewerFormatIsRefused) {
  TempDir dir;
  const std::string path = dir.Sub("data");
  ASSERT_TRUE(OpenAt(path).ok());
  WithRawDb(path, [](rocksdb::DB* db, const auto& handles) {
    storage::FormatInfo info;
    info.set_version(2);
    ASSERT_TRUE(
        db->Put({}, H(handles, schema::ColumnFamily::kMeta), "format", info.SerializeAsString())
            .ok());
    // A newer format may also bring column families this build does not know.
    rocksdb::ColumnFamilyHandle* future = nullptr;
    ASSERT_TRUE(db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "future", &future).ok());
    ASSERT_TRUE(db->DestroyColumnFamilyHandle(future).ok());
  });
  auto store = OpenAt(path);
  ASSERT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_NE(
      store.status().message().find("data dir format 2 is newer than this agentd supports (1)"),
      absl::string_view::npos)
      << store.status();
}

TEST(RocksDbStoreTest, CorruptFormatRecordIsDataLoss) {
  TempDir dir;
  const std::string path = dir.Sub("data");
  ASSERT_TRUE(OpenAt(path).ok());
  WithRawDb(path, [](rocksdb::DB* db, const auto& handles) {
    ASSERT_TRUE(db->Put({}, H(handles, schema::ColumnFamily::kMeta), "format",
                        "\x0a\x05"
                        "ab")
                    .ok());
  });
  EXPECT_EQ(OpenAt(path).status().code(), absl::StatusCode::kDataLoss);
}

TEST(RocksDbStoreTest, CorruptValuesAreDataLoss) {
  TempDir dir;
  const std::string path = dir.Sub("data");
  {
    auto store = OpenAt(path);
    ASSERT_TRUE(store.ok());
    ContextStore& s = **store;
    ASSERT_TRUE(s.PutAgentVersion("p", Agent("a", 1), 0).ok());
    ASSERT_TRUE(s.CreateSession("p", Session("s")).ok());
    ASSERT_TRUE(s.CreateSession("p", Session("t")).ok());
    ASSERT_TRUE(s.CommitSessionWrite(AppendWrite("p", *s.GetSession("p", "t"), 2, "k")).ok());
  }
  const std::string garbage =
      "\x0a\x05"
      "ab";  // field 1, length 5, only 2 bytes follow
  WithRawDb(path, [&](rocksdb::DB* db, const auto& handles) {
    using schema::ColumnFamily;
    ASSERT_TRUE(
        db->Put({}, H(handles, ColumnFamily::kAgents), schema::AgentHeadKey("p", "a"), garbage)
            .ok());
    ASSERT_TRUE(
        db->Put({}, H(handles, ColumnFamily::kSessions), schema::SessionKey("p", "s"), garbage)
            .ok());
    ASSERT_TRUE(
        db->Put({}, H(handles, ColumnFamily::kEvents), schema::EventKey("p", "t", 2), garbage)
            .ok());
    ASSERT_TRUE(db->Put({}, H(handles, ColumnFamily::kIdempotency),
                        schema::IdempotencyKey("p", "t", "k"), garbage)
                    .ok());
  });
  auto store = OpenAt(path);
  ASSERT_TRUE(store.ok()) << store.status();
  ContextStore& s = **store;
  auto expect_data_loss = [](const absl::Status& st, absl::string_view kind) {
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
    EXPECT_NE(st.message().find(kind), absl::string_view::npos) << st;
  };
  expect_data_loss(s.GetAgent("p", "a", 0).status(), "agent head");
  expect_data_loss(s.ListAgents("p", 10, "").status(), "agent head");
  expect_data_loss(s.PutAgentVersion("p", Agent("a", 2), 1), "agent head");
  expect_data_loss(s.GetSession("p", "s").status(), "session");
  expect_data_loss(s.ListSessions("p", {}, 10, "").status(), "session");
  expect_data_loss(
      s.ForEachSessionWithStatus(
          v1::SESSION_STATUS_RUNNING,
          [](const std::string&, const storage::SessionRecord&) { return absl::OkStatus(); }),
      "session");
  storage::SessionRecord fake = Session("s");
  fake.set_revision(1);
  expect_data_loss(s.CommitSessionWrite(AppendWrite("p", fake, 1)), "session");
  expect_data_loss(s.ReadEvents("p", "t", 0, 10).status(), "event");
  EXPECT_EQ(s.ReadEvents("p", "t", 0, 1)->size(), 1u);  // the intact event still reads
  expect_data_loss(s.GetIdempotency("p", "t", "k").status(), "idempotency");
  // A corrupt session can still be deleted.
  EXPECT_TRUE(s.DeleteSession("p", "s").ok());
  EXPECT_TRUE(s.ListSessions("p", {}, 10, "").ok());
}

TEST(RocksDbStoreTest, MalformedKeyIsDataLoss) {
  TempDir dir;
  const std::string path = dir.Sub("data");
  ASSERT_TRUE(OpenAt(path).ok());
  WithRawDb(path, [](rocksdb::DB* db, const auto& handles) {
    ASSERT_TRUE(db->Put({}, H(handles, schema::ColumnFamily::kSessions),
                        "\x05"
                        "ab",
                        "")
                    .ok());
  });
  auto store = OpenAt(path);
  ASSERT_TRUE(store.ok());
  const absl::Status st = (*store)->ForEachSessionWithStatus(
      v1::SESSION_STATUS_IDLE,
      [](const std::string&, const storage::SessionRecord&) { return absl::OkStatus(); });
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
}

TEST(RocksDbStoreTest, PageTokensAreHexOfAnId) {
  TempDir dir;
  auto store = OpenAt(dir.Sub("data"), Durability::kRelaxed);
  ASSERT_TRUE(store.ok());
  ContextStore& s = **store;
  for (const char* id : {"s1", "s2", "s3"}) ASSERT_TRUE(s.CreateSession("p", Session(id)).ok());
  absl::StatusOr<SessionPage> page = s.ListSessions("p", {}, 1, "");
  ASSERT_TRUE(page.ok());
  EXPECT_EQ(page->next_page_token, HexEncode("s1"));
  page = s.ListSessions("p", {}, 5, HexEncode("s2"));
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->sessions.size(), 1u);
  EXPECT_EQ(page->sessions[0].session_id(), "s3");
  for (const std::string& token : {std::string("zz"), std::string("abc"), std::string("AB"),
                                   std::string(600, 'a'), std::string("0g")}) {
    EXPECT_EQ(s.ListSessions("p", {}, 5, token).status().code(), absl::StatusCode::kInvalidArgument)
        << token;
  }
}

// ---- Tenancy (RocksDB-specific) -------------------------------------------------------------

v1::AuditEvent AuditAt(const std::string& project, const std::string& id, int64_t micros) {
  v1::AuditEvent e;
  e.set_audit_id(id);
  e.set_project_id(project);
  *e.mutable_time() = ToProto(absl::FromUnixMicros(micros));
  return e;
}

UsageDelta DayDelta(int32_t day, int64_t input, double cost) {
  UsageDelta d;
  d.day = day;
  d.usage.set_input_tokens(input);
  d.usage.set_model_calls(1);
  d.usage.set_cost_usd(cost);
  return d;
}

absl::StatusOr<v1::Usage> DayTotal(ContextStore& s, const std::string& project, int32_t day) {
  AGENTD_ASSIGN_OR_RETURN(std::vector<UsageCounter> counters,
                          s.ReadUsage(project, UsageDimension::kDay, day, day));
  if (counters.size() != 1) return absl::NotFoundError(absl::StrCat(counters.size(), " counters"));
  return counters[0].usage;
}

TEST(RocksDbTenancyTest, SurvivesReopenFlushAndCompaction) {
  TempDir dir;
  const std::string path = dir.Sub("data");
  {
    auto store = OpenAt(path);
    ASSERT_TRUE(store.ok()) << store.status();
    ContextStore& s = **store;
    v1::Project project;
    project.set_project_id("p");
    ASSERT_TRUE(s.CreateProject(project, AuditAt("p", "a1", 1)).ok());
    storage::ApiKeyRecord key;
    key.mutable_key()->set_key_id("k1");
    key.mutable_key()->set_project_id("p");
    key.set_hash("hash");
    ASSERT_TRUE(s.CreateApiKey(key, AuditAt("p", "a2", 2)).ok());
    ASSERT_TRUE(s.AddUsage("p", {DayDelta(5, 10, 0.5), DayDelta(5, 1, 0.25)}).ok());
  }
  // Flush the memtables and compact, so the next merges land on SST values (and the operator
  // runs in compaction too).
  WithRawDb(path, [](rocksdb::DB* db, const auto& handles) {
    ASSERT_TRUE(db->Flush({}, handles).ok());
    ASSERT_TRUE(
        db->CompactRange({}, H(handles, schema::ColumnFamily::kUsage), nullptr, nullptr).ok());
  });
  {
    auto store = OpenAt(path);
    ASSERT_TRUE(store.ok()) << store.status();
    ContextStore& s = **store;
    EXPECT_EQ(s.GetApiKey("k1")->hash(), "hash");
    EXPECT_EQ(s.GetProject("p")->project_id(), "p");
    absl::StatusOr<v1::Usage> total = DayTotal(s, "p", 5);
    ASSERT_TRUE(total.ok()) << total.status();
    EXPECT_EQ(total->input_tokens(), 11);
    EXPECT_EQ(total->model_calls(), 2);
    ASSERT_TRUE(s.AddUsage("p", {DayDelta(5, 100, 1)}).ok());
  }
  auto store = OpenAt(path, Durability::kRelaxed);
  ASSERT_TRUE(store.ok()) << store.status();
  ContextStore& s = **store;
  absl::StatusOr<v1::Usage> total = DayTotal(s, "p", 5);
  ASSERT_TRUE(total.ok()) << total.status();
  EXPECT_EQ(total->input_tokens(), 111);
  EXPECT_EQ(total->model_calls(), 3);
  EXPECT_DOUBLE_EQ(total->cost_usd(), 1.75);
  absl::StatusOr<AuditPage> audit =
      s.ListAudit("p", absl::InfinitePast(), absl::InfiniteFuture(), 10, "");
  ASSERT_TRUE(audit.ok()) << audit.status();
  ASSERT_EQ(audit->events.size(), 2u);
  EXPECT_EQ(audit->events[1].audit_id(), "a2");
}

TEST(RocksDbTenancyTest, DataDirWithOnlyTheOriginalFamiliesOpens) {
  // A data dir written before the tenancy families existed (format 1, families 0..7).
  TempDir dir;
  const std::string path = dir.Sub("data");
  {
    rocksdb::DBOptions options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const char* name :
         {"default", "meta", "agents", "sessions", "events", "idempotency", "state", "memory"}) {
      cfs.emplace_back(name, rocksdb::ColumnFamilyOptions());
    }
    rocksdb::DB* db = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    ASSERT_TRUE(rocksdb::DB::Open(options, path, cfs, &handles, &db).ok());
    storage::FormatInfo info;
    info.set_version(1);
    ASSERT_TRUE(db->Put({}, handles[1], "format", info.SerializeAsString()).ok());
    ASSERT_TRUE(
        db->Put({}, handles[3], schema::SessionKey("p", "s"), Session("s").SerializeAsString())
            .ok());
    for (rocksdb::ColumnFamilyHandle* h : handles) {
      ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    }
    delete db;
  }
  {
    auto store = OpenAt(path);
    ASSERT_TRUE(store.ok()) << store.status();
    ContextStore& s = **store;
    EXPECT_EQ(s.GetSession("p", "s")->session().agent_id(), "a");
    v1::Project project;
    project.set_project_id("p");
    ASSERT_TRUE(s.CreateProject(project, AuditAt("p", "a1", 1)).ok());
    ASSERT_TRUE(s.AddUsage("p", {DayDelta(1, 1, 0)}).ok());
  }
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), path, &names).ok());
  EXPECT_EQ(names.size(), schema::kColumnFamilies.size());
  for (const schema::ColumnFamilyInfo& info : schema::kColumnFamilies) {
    EXPECT_NE(std::find(names.begin(), names.end(), info.name), names.end()) << info.name;
  }
  auto store = OpenAt(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_TRUE((*store)->GetProject("p").ok());
  EXPECT_EQ(DayTotal(**store, "p", 1)->input_tokens(), 1);
}

TEST(RocksDbTenancyTest, CorruptValuesAreDataLoss) {
  TempDir dir;
  const std::string path = dir.Sub("data");
  {
    auto store = OpenAt(path);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->AddUsage("p", {DayDelta(2, 1, 0)}).ok());
  }
  const std::string garbage =
      "\x0a\x05"
      "ab";
  WithRawDb(path, [&](rocksdb::DB* db, const auto& handles) {
    using schema::ColumnFamily;
    ASSERT_TRUE(
        db->Put({}, H(handles, ColumnFamily::kProjects), schema::ProjectKey("p"), garbage).ok());
    ASSERT_TRUE(
        db->Put({}, H(handles, ColumnFamily::kApiKeys), schema::ApiKeyKey("k"), garbage).ok());
    ASSERT_TRUE(
        db->Put({}, H(handles, ColumnFamily::kAudit), schema::AuditKey("p", 5, "a"), garbage).ok());
    // A corrupt value under day 1 and a corrupt merge operand on top of day 2's counter.
    ASSERT_TRUE(db->Put({}, H(handles, ColumnFamily::kUsage),
                        schema::UsageKey("p", UsageDimension::kDay, "", 1), garbage)
                    .ok());
    ASSERT_TRUE(db->Merge({}, H(handles, ColumnFamily::kUsage),
                          schema::UsageKey("q", UsageDimension::kDay, "", 2), garbage)
                    .ok());
  });
  auto store = OpenAt(path);
  ASSERT_TRUE(store.ok()) << store.status();
  ContextStore& s = **store;
  auto expect_data_loss = [](const absl::Status& st, absl::string_view what) {
    EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
    EXPECT_NE(st.message().find(what), absl::string_view::npos) << st;
  };
  expect_data_loss(s.GetProject("p").status(), "project");
  expect_data_loss(s.ListProjects(10, "").status(), "project");
  expect_data_loss(s.GetApiKey("k").status(), "api key");
  expect_data_loss(s.ListApiKeys("p").status(), "api key");
  expect_data_loss(s.ListAudit("p", absl::InfinitePast(), absl::InfiniteFuture(), 10, "").status(),
                   "audit");
  expect_data_loss(s.ReadUsage("p", UsageDimension::kDay, 1, 1).status(), "usage");
  EXPECT_EQ(DayTotal(s, "p", 2)->input_tokens(), 1);  // the intact counter still reads
  ASSERT_TRUE(s.AddUsage("q", {DayDelta(2, 1, 0)}).ok());
  ASSERT_TRUE(s.AddUsage("p", {DayDelta(1, 1, 0)}).ok());  // a valid operand on a corrupt value
  expect_data_loss(s.ReadUsage("q", UsageDimension::kDay, 0, 10).status(), "usage");
  expect_data_loss(s.ReadUsage("p", UsageDimension::kDay, 1, 1).status(), "usage");
  store->reset();

  // A corrupt counter must not stop the database: flushing and compacting the merges succeed
  // (a failed flush would make RocksDB refuse every later write), and the counter stays corrupt.
  WithRawDb(path, [](rocksdb::DB* db, const auto& handles) {
    rocksdb::ColumnFamilyHandle* usage = H(handles, schema::ColumnFamily::kUsage);
    ASSERT_TRUE(db->Flush({}, usage).ok());
    ASSERT_TRUE(db->CompactRange({}, usage, nullptr, nullptr).ok());
  });
  store = OpenAt(path);
  ASSERT_TRUE(store.ok()) << store.status();
  ContextStore& reopened = **store;
  expect_data_loss(reopened.ReadUsage("q", UsageDimension::kDay, 0, 10).status(), "usage");
  expect_data_loss(reopened.ReadUsage("p", UsageDimension::kDay, 1, 1).status(), "usage");
  EXPECT_EQ(DayTotal(reopened, "p", 2)->input_tokens(), 1);
  EXPECT_TRUE(reopened.AddUsage("p", {DayDelta(2, 1, 0)}).ok());
  EXPECT_TRUE(reopened.CreateSession("p", Session("s")).ok());
  EXPECT_EQ(DayTotal(reopened, "p", 2)->input_tokens(), 2);
}

TEST(RocksDbTenancyTest, AuditPageSizeDefaultsTo100AndTokenIsHexOfTheNextKey) {
  TempDir dir;
  auto store = OpenAt(dir.Sub("data"), Durability::kRelaxed);
  ASSERT_TRUE(store.ok());
  ContextStore& s = **store;
  for (int i = 0; i < 1002; ++i) {
    ASSERT_TRUE(s.AppendAudit(AuditAt("p", absl::StrCat("a", i), 1000 + i), false).ok());
  }
  for (int32_t size : {0, -1}) {
    absl::StatusOr<AuditPage> page =
        s.ListAudit("p", absl::InfinitePast(), absl::InfiniteFuture(), size, "");
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_EQ(page->events.size(), 100u);
    EXPECT_EQ(page->next_page_token, HexEncode(schema::AuditKey("p", 1100, "a100")));
  }
  absl::StatusOr<AuditPage> big =
      s.ListAudit("p", absl::InfinitePast(), absl::InfiniteFuture(), 5000, "");
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->events.size(), 1000u);
  absl::StatusOr<AuditPage> rest =
      s.ListAudit("p", absl::InfinitePast(), absl::InfiniteFuture(), 5000, big->next_page_token);
  ASSERT_TRUE(rest.ok());
  ASSERT_EQ(rest->events.size(), 2u);
  EXPECT_EQ(rest->events[1].audit_id(), "a1001");
  EXPECT_TRUE(rest->next_page_token.empty());
  // A token before `start` does not widen the range; one of another project is refused.
  absl::StatusOr<AuditPage> clamped =
      s.ListAudit("p", absl::FromUnixMicros(2000), absl::InfiniteFuture(), 10,
                  HexEncode(schema::AuditKey("p", 1000, "a0")));
  ASSERT_TRUE(clamped.ok());
  ASSERT_EQ(clamped->events.size(), 2u);
  EXPECT_EQ(clamped->events[0].audit_id(), "a1000");
  EXPECT_EQ(s.ListAudit("p", absl::InfinitePast(), absl::InfiniteFuture(), 10,
                        HexEncode(schema::AuditKey("q", 1000, "a0")))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// ---- Schema -------------------------------------------------------------------------------

int Compare(const std::string& a, const std::string& b) {
  return rocksdb::BytewiseComparator()->Compare(a, b);
}

TEST(SchemaTest, RegistryMatchesTheEnum) {
  std::set<std::string> names;
  for (size_t i = 0; i < schema::kColumnFamilies.size(); ++i) {
    EXPECT_EQ(schema::Index(schema::kColumnFamilies[i].id), i);
    names.insert(schema::kColumnFamilies[i].name);
  }
  EXPECT_EQ(names.size(), schema::kColumnFamilies.size());
  EXPECT_STREQ(schema::Name(schema::ColumnFamily::kDefault), "default");
  EXPECT_STREQ(schema::Name(schema::ColumnFamily::kEvents), "events");
  EXPECT_STREQ(schema::Name(schema::ColumnFamily::kMemory), "memory");
  EXPECT_EQ(schema::Index(schema::ColumnFamily::kProjects), 8u);
  EXPECT_STREQ(schema::Name(schema::ColumnFamily::kProjects), "projects");
  EXPECT_STREQ(schema::Name(schema::ColumnFamily::kApiKeys), "api_keys");
  EXPECT_STREQ(schema::Name(schema::ColumnFamily::kUsage), "usage");
  EXPECT_STREQ(schema::Name(schema::ColumnFamily::kAudit), "audit");
  EXPECT_STREQ(schema::Name(schema::ColumnFamily::kState), "state");
  EXPECT_EQ(schema::Index(schema::ColumnFamily::kExpiry), 13u);
  EXPECT_STREQ(schema::Name(schema::ColumnFamily::kExpiry), "expiry");
  EXPECT_EQ(schema::kColumnFamilies.size(), 14u);
}

TEST(SchemaTest, TenancyKeysRoundTrip) {
  const std::string odd("\x00\xff/x", 4);
  const std::string longest(kMaxIdLength, 'z');
  for (const std::string& project : {std::string("p"), odd, longest}) {
    for (const std::string& id : {std::string("g1"), odd, longest}) {
      const std::string project_key = schema::ProjectKey(project);
      EXPECT_EQ(schema::DecodeProjectKey(project_key), absl::string_view(project));
      const std::string api_key = schema::ApiKeyKey(id);
      EXPECT_EQ(schema::DecodeApiKeyKey(api_key), absl::string_view(id));
      for (UsageDimension d : {UsageDimension::kAgent, UsageDimension::kSession,
                               UsageDimension::kModel, UsageDimension::kDay}) {
        const std::string group = d == UsageDimension::kDay ? std::string() : id;
        const std::string usage_key = schema::UsageKey(project, d, group, 0x7fffffff);
        const auto usage = schema::DecodeUsageKey(usage_key);
        ASSERT_TRUE(usage.has_value()) << HexEncode(usage_key);
        EXPECT_EQ(usage->project_id, project);
        EXPECT_EQ(usage->dimension, d);
        EXPECT_EQ(usage->group, group);
        EXPECT_EQ(usage->day, 0x7fffffff);
      }
      const std::string audit_key = schema::AuditKey(project, ~uint64_t{0} >> 1, id);
      const auto audit = schema::DecodeAuditKey(audit_key);
      ASSERT_TRUE(audit.has_value());
      EXPECT_EQ(audit->project_id, project);
      EXPECT_EQ(audit->micros, ~uint64_t{0} >> 1);
      EXPECT_EQ(audit->audit_id, id);
    }
  }
  // The examples of docs/storage.md.
  EXPECT_EQ(schema::UsageKey("p1", UsageDimension::kAgent, "a7", 19700),
            std::string("\x02p1\x02\x02"
                        "a7\x00\x00\x4c\xf4",
                        11));
  EXPECT_EQ(schema::UsageKey("p1", UsageDimension::kDay, "", 19700),
            std::string("\x02p1\x01\x00\x00\x4c\xf4", 8));
  EXPECT_EQ(schema::AuditKey("p1", 1700000000000000, "aud_1"),
            std::string("\x02p1\x00\x06\x0a\x24\x18\x1e\x40\x00"
                        "aud_1",
                        16));
  EXPECT_EQ(schema::AuditKeyMicros(absl::FromUnixSeconds(-5)), 0u);
  EXPECT_EQ(schema::AuditKeyMicros(absl::InfinitePast()), 0u);
  EXPECT_EQ(schema::AuditKeyMicros(absl::FromUnixMicros(12) + absl::Nanoseconds(999)), 12u);
}

TEST(SchemaTest, TenancyKeysSortAndStayInTheirPrefix) {
  using schema::UsageKey;
  constexpr auto kAgent = UsageDimension::kAgent;
  EXPECT_LT(Compare(UsageKey("p", kAgent, "g", 9), UsageKey("p", kAgent, "g", 10)), 0);
  EXPECT_LT(Compare(UsageKey("p", kAgent, "g", 255), UsageKey("p", kAgent, "g", 256)), 0);
  EXPECT_LT(Compare(UsageKey("p", kAgent, "g", 99999), UsageKey("p", kAgent, "h", 0)), 0);
  EXPECT_LT(Compare(schema::AuditKey("p", 999, "z"), schema::AuditKey("p", 1000, "a")), 0);
  auto covers = [](const std::string& prefix, const std::string& key) {
    return Compare(prefix, key) <= 0 && Compare(key, schema::PrefixSuccessor(prefix)) < 0;
  };
  const std::string p_agents = schema::UsagePrefix("p", kAgent);
  EXPECT_TRUE(covers(p_agents, UsageKey("p", kAgent, std::string(128, '\xff'), 0x7fffffff)));
  EXPECT_FALSE(covers(p_agents, UsageKey("pp", kAgent, "g", 1)));
  EXPECT_FALSE(covers(p_agents, UsageKey("p", UsageDimension::kSession, "g", 1)));
  EXPECT_FALSE(covers(schema::UsageGroupPrefix("p", kAgent, "g"), UsageKey("p", kAgent, "gg", 1)));
  const std::string p = schema::ProjectPrefix("p");
  EXPECT_TRUE(covers(p, schema::AuditKey("p", ~uint64_t{0}, std::string(128, '\xff'))));
  EXPECT_FALSE(covers(p, schema::AuditKey("pp", 0, "a")));
}

TEST(SchemaTest, MalformedTenancyKeysAreRejected) {
  const std::string day_key = schema::UsageKey("p", UsageDimension::kDay, "", 3);
  const std::string agent_key = schema::UsageKey("p", UsageDimension::kAgent, "g", 3);
  for (const std::string& key :
       {std::string(), std::string("\x01p"), std::string("\x01p\x00\x00\x00\x00\x01", 7),
        std::string("\x01p\x05\x00\x00\x00\x01", 7), day_key + "x",
        day_key.substr(0, day_key.size() - 1), agent_key.substr(0, agent_key.size() - 1),
        std::string("\x01p\x02\x00\x00\x00\x01", 7),     // agent key without a group
        std::string("\x01p\x01\x80\x00\x00\x00", 7)}) {  // day >= 2^31
    EXPECT_FALSE(schema::DecodeUsageKey(key).has_value()) << HexEncode(key);
  }
  const std::string audit_key = schema::AuditKey("p", 7, "a");
  EXPECT_FALSE(schema::DecodeAuditKey(schema::AuditTimeKey("p", 7)).has_value());
  EXPECT_FALSE(schema::DecodeAuditKey(audit_key.substr(0, 5)).has_value());
  EXPECT_FALSE(schema::DecodeAuditKey(schema::AuditKey("p", 7, std::string(kMaxIdLength + 1, 'a')))
                   .has_value());
  EXPECT_FALSE(schema::DecodeProjectKey(schema::ProjectKey("p") + "x").has_value());
  EXPECT_FALSE(schema::DecodeApiKeyKey(std::string("\x00", 1)).has_value());
  EXPECT_FALSE(schema::DecodeApiKeyKey("").has_value());
}

TEST(SchemaTest, KeysRoundTrip) {
  const std::string odd("\x00\xff/x", 4);
  const std::string longest(kMaxIdLength, 'z');
  for (const std::string& project : {std::string("p"), odd, longest}) {
    for (const std::string& id : {std::string("s1"), odd, longest}) {
      // Decoded parts point into the key: keep each key alive while checking.
      const std::string agent_key = schema::AgentKey(project, id, 7);
      const auto agent = schema::DecodeAgentKey(agent_key);
      ASSERT_TRUE(agent.has_value());
      EXPECT_EQ(agent->project_id, project);
      EXPECT_EQ(agent->agent_id, id);
      EXPECT_EQ(agent->version, 7u);
      const std::string session_key = schema::SessionKey(project, id);
      const auto session = schema::DecodeSessionKey(session_key);
      ASSERT_TRUE(session.has_value());
      EXPECT_EQ(session->project_id, project);
      EXPECT_EQ(session->session_id, id);
      const uint64_t big = (uint64_t{1} << 63) + 5;
      const std::string event_key = schema::EventKey(project, id, big);
      const auto event = schema::DecodeEventKey(event_key);
      ASSERT_TRUE(event.has_value());
      EXPECT_EQ(event->session_id, id);
      EXPECT_EQ(event->seq, big);
      const std::string idem_key = schema::IdempotencyKey(project, id, odd);
      const auto idem = schema::DecodeIdempotencyKey(idem_key);
      ASSERT_TRUE(idem.has_value());
      EXPECT_EQ(idem->project_id, project);
      EXPECT_EQ(idem->session_id, id);
      EXPECT_EQ(idem->key, odd);
    }
  }
  EXPECT_EQ(schema::AgentHeadKey("p", "a"), schema::AgentKey("p", "a", 0));
  EXPECT_EQ(schema::EventKey("p", "s", 258), std::string("\x01p\x01s\0\0\0\0\0\0\x01\x02", 12));
}

TEST(SchemaTest, SeqsSortNumerically) {
  EXPECT_LT(Compare(schema::EventKey("p", "s", 2), schema::EventKey("p", "s", 10)), 0);
  EXPECT_LT(Compare(schema::EventKey("p", "s", 10), schema::EventKey("p", "s", 256)), 0);
  EXPECT_LT(Compare(schema::EventKey("p", "s", 256), schema::EventKey("p", "s", 1ull << 40)), 0);
  EXPECT_LT(Compare(schema::AgentHeadKey("p", "a"), schema::AgentKey("p", "a", 1)), 0);
  EXPECT_LT(Compare(schema::AgentKey("p", "a", 9), schema::AgentKey("p", "a", 300)), 0);
}

TEST(SchemaTest, PrefixesDoNotCoverOtherIds) {
  auto covers = [](const std::string& prefix, const std::string& key) {
    return Compare(prefix, key) <= 0 && Compare(key, schema::PrefixSuccessor(prefix)) < 0;
  };
  const std::string s1 = schema::SessionKey("p", "s1");
  EXPECT_TRUE(covers(s1, schema::EventKey("p", "s1", 1)));
  EXPECT_TRUE(covers(s1, schema::EventKey("p", "s1", ~uint64_t{0})));
  EXPECT_TRUE(covers(s1, schema::IdempotencyKey("p", "s1", "\xff\xff")));
  for (uint64_t seq : {uint64_t{0}, uint64_t{1}, uint64_t{0x30}, ~uint64_t{0}}) {
    EXPECT_FALSE(covers(s1, schema::EventKey("p", "s10", seq))) << seq;
  }
  EXPECT_FALSE(covers(s1, schema::IdempotencyKey("p", "s10", "k")));
  EXPECT_FALSE(covers(s1, schema::SessionKey("p", "s10")));
  const std::string p = schema::ProjectPrefix("p");
  EXPECT_TRUE(covers(p, schema::SessionKey("p", "zzz")));
  EXPECT_FALSE(covers(p, schema::SessionKey("pp", "s")));
  EXPECT_FALSE(covers(p, schema::AgentKey("pp", "a", 1)));
  EXPECT_FALSE(covers(schema::ProjectPrefix("pp"), schema::SessionKey("p", "ps")));
}

TEST(SchemaTest, PrefixSuccessor) {
  EXPECT_EQ(schema::PrefixSuccessor("ab"), "ac");
  EXPECT_EQ(schema::PrefixSuccessor("a\xff"), "b");
  EXPECT_EQ(schema::PrefixSuccessor("\xff\xff"), "");
  EXPECT_EQ(schema::PrefixSuccessor(""), "");
}

TEST(SchemaTest, MalformedKeysAreRejected) {
  const std::string too_long = std::string(1, static_cast<char>(129)) + std::string(129, 'x');
  const std::string event = schema::EventKey("p", "s", 1);
  for (const std::string& key :
       {std::string(), std::string("\0", 1), std::string("\x01"), std::string("\x02p"),
        std::string("\x01p"), std::string("\x01p\x00", 3), too_long + "\x01s",
        std::string("\x01p\x01s\x00", 5), event.substr(0, event.size() - 1), event + "x"}) {
    EXPECT_FALSE(schema::DecodeEventKey(key).has_value()) << HexEncode(key);
    EXPECT_FALSE(schema::DecodeAgentKey(key).has_value()) << HexEncode(key);
  }
  EXPECT_FALSE(schema::DecodeSessionKey("\x01p").has_value());
  EXPECT_FALSE(schema::DecodeSessionKey(schema::SessionKey("p", "s") + "x").has_value());
  EXPECT_FALSE(schema::DecodeIdempotencyKey(schema::SessionKey("p", "s")).has_value());
  EXPECT_FALSE(schema::DecodeIdempotencyKey(schema::SessionKey("p", "s") +
                                            std::string(kMaxIdLength + 1, 'k'))
                   .has_value());
}

TEST(SchemaTest, RandomBytesNeverCrashTheDecoders) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> len(0, 24);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> small(0, 4);
  int decoded = 0;
  for (int i = 0; i < 50000; ++i) {
    std::string key;
    for (int n = len(rng); n > 0; --n) {
      key.push_back(static_cast<char>(byte(rng) < 128 ? small(rng) : byte(rng)));
    }
    if (auto e = schema::DecodeEventKey(key)) {
      ++decoded;
      EXPECT_EQ(schema::EventKey(e->project_id, e->session_id, e->seq), key);
    }
    if (auto a = schema::DecodeAgentKey(key)) {
      EXPECT_EQ(schema::AgentKey(a->project_id, a->agent_id, a->version), key);
    }
    if (auto s = schema::DecodeSessionKey(key)) {
      ++decoded;
      EXPECT_EQ(schema::SessionKey(s->project_id, s->session_id), key);
    }
    if (auto k = schema::DecodeIdempotencyKey(key)) {
      EXPECT_EQ(schema::IdempotencyKey(k->project_id, k->session_id, k->key), key);
    }
    if (auto u = schema::DecodeUsageKey(key)) {
      ++decoded;
      EXPECT_EQ(schema::UsageKey(u->project_id, u->dimension, u->group, u->day), key);
    }
    if (auto a = schema::DecodeAuditKey(key)) {
      EXPECT_EQ(schema::AuditKey(a->project_id, a->micros, a->audit_id), key);
    }
    if (auto id = schema::DecodeProjectKey(key)) {
      EXPECT_EQ(schema::ProjectKey(*id), key);
    }
  }
  EXPECT_GT(decoded, 0);
}

}  // namespace
}  // namespace agentd::store
