#include "store/rocksdb_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <random>
#include <set>
#include <thread>

#include "rocksdb/comparator.h"
#include "rocksdb/db.h"
#include "store/schema.h"
#include "store_contract_test.h"
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

// ---- RocksDB-specific behaviour ------------------------------------------------------------

absl::StatusOr<std::unique_ptr<RocksDbStore>> OpenAt(const std::string& path,
                                                     Durability d = Durability::kSync) {
  return RocksDbStore::Open({path, d});
}

using RawFn = std::function<void(rocksdb::DB*, const std::vector<rocksdb::ColumnFamilyHandle*>&)>;

/// Opens a closed data dir with plain RocksDB (every family of the schema) and runs `fn`.
void WithRawDb(const std::string& path, const RawFn& fn) {
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  cfs.reserve(schema::kColumnFamilies.size());
  for (const schema::ColumnFamilyInfo& info : schema::kColumnFamilies) {
    cfs.emplace_back(info.name, rocksdb::ColumnFamilyOptions());
  }
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
  }
  EXPECT_GT(decoded, 0);
}

}  // namespace
}  // namespace agentd::store
