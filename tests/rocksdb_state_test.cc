// RocksDB specifics of tool state, forks and expiry: what is left on disk after a removal, the
// idempotency retention, and the state / expiry key codec. (The behaviour every store shares is
// in store_state_contract_test.h.)
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/time_util.h"
#include "rocksdb/db.h"
#include "store/rocksdb_store.h"
#include "store/schema.h"
#include "testing/temp_dir.h"

namespace agentd::store {
namespace {

using schema::ColumnFamily;

/// Every key of the session-related families, by family name (the database must be closed).
std::map<std::string, std::vector<std::string>> SessionKeys(const std::string& path) {
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const schema::ColumnFamilyInfo& info : schema::kColumnFamilies) {
    cfs.emplace_back(info.name, rocksdb::ColumnFamilyOptions());
  }
  rocksdb::DB* db = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  const rocksdb::Status s =
      rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), path, cfs, &handles, &db);
  EXPECT_TRUE(s.ok()) << s.ToString();
  std::map<std::string, std::vector<std::string>> keys;
  if (!s.ok()) return keys;
  for (ColumnFamily cf :
       {ColumnFamily::kSessions, ColumnFamily::kEvents, ColumnFamily::kIdempotency,
        ColumnFamily::kState, ColumnFamily::kExpiry}) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}, handles[schema::Index(cf)]));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      keys[schema::Name(cf)].push_back(it->key().ToString());
    }
    EXPECT_TRUE(it->status().ok()) << it->status().ToString();
  }
  for (rocksdb::ColumnFamilyHandle* h : handles) EXPECT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  delete db;
  return keys;
}

storage::SessionRecord Session(const std::string& id, absl::Duration expires_in) {
  storage::SessionRecord r;
  r.mutable_session()->set_session_id(id);
  r.mutable_session()->set_agent_id("a");
  if (expires_in != absl::InfiniteDuration()) {
    *r.mutable_session()->mutable_expire_time() = ToProto(absl::Now() + expires_in);
  }
  return r;
}

/// Appends one event with an idempotency record created at `created`.
absl::Status AppendWithKey(ContextStore& s, const std::string& session, const std::string& key,
                           absl::Time created) {
  absl::StatusOr<storage::SessionRecord> cur = s.GetSession("p", session);
  if (!cur.ok()) return cur.status();
  SessionWrite w;
  w.project_id = "p";
  w.session_id = session;
  w.expected_revision = cur->revision();
  w.record = *cur;
  v1::Event& e = w.events.emplace_back();
  e.set_session_id(session);
  e.set_seq(cur->session().last_seq() + 1);
  w.record.mutable_session()->set_last_seq(e.seq());
  w.idempotency_key = key;
  w.idempotency.set_result(absl::StrCat("result at ", absl::FormatTime(created)));
  *w.idempotency.mutable_create_time() = ToProto(created);
  w.state.push_back({"k", "1", 0});
  return s.CommitSessionWrite(w);
}

TEST(RocksDbStateTest, RemovedSessionsLeaveNoKeys) {
  testing::TempDir dir;
  const std::string path = dir.Sub("data");
  {
    auto opened = RocksDbStore::Open({path, Durability::kRelaxed});
    ASSERT_TRUE(opened.ok()) << opened.status();
    ContextStore& s = **opened;
    ASSERT_TRUE(s.CreateSession("p", Session("expiring", absl::Hours(1))).ok());
    ASSERT_TRUE(s.CreateSession("p", Session("deleted", absl::Hours(1))).ok());
    for (const char* id : {"expiring", "deleted"}) {
      ASSERT_TRUE(AppendWithKey(s, id, "k1", absl::Now()).ok());
      ASSERT_TRUE(AppendWithKey(s, id, "k2", absl::Now()).ok());
    }
    storage::SessionRecord fork = Session("fork", absl::Hours(1));
    fork.mutable_session()->set_parent_session_id("expiring");
    fork.mutable_session()->set_fork_seq(1);
    ASSERT_TRUE(s.ForkSession("p", fork).ok());
    ASSERT_TRUE(s.DeleteSession("p", "deleted").ok());
    absl::StatusOr<int64_t> removed = s.DeleteExpiredSessions(absl::Now() + absl::Hours(2), 100);
    ASSERT_TRUE(removed.ok()) << removed.status();
    EXPECT_EQ(*removed, 2);
  }
  std::map<std::string, std::vector<std::string>> keys = SessionKeys(path);
  EXPECT_TRUE(keys["sessions"].empty());
  EXPECT_TRUE(keys["events"].empty());
  EXPECT_TRUE(keys["idempotency"].empty());
  EXPECT_TRUE(keys["state"].empty());
  // Left: the idempotency index entries (ordered by time, dropped by the idempotency sweep).
  for (const std::string& key : keys["expiry"]) {
    const auto parts = schema::DecodeExpiryKey(key);
    ASSERT_TRUE(parts.has_value());
    EXPECT_EQ(parts->kind, schema::ExpiryKind::kIdempotency);
  }
  {
    auto opened = RocksDbStore::Open({path, Durability::kRelaxed});
    ASSERT_TRUE(opened.ok());
    ASSERT_TRUE((*opened)->DeleteExpiredSessions(absl::Now() + absl::Hours(25), 100).ok());
  }
  EXPECT_TRUE(SessionKeys(path)["expiry"].empty());
}

TEST(RocksDbStateTest, IdempotencyRecordsAreSweptAfterTheRetention) {
  testing::TempDir dir;
  RocksDbStoreOptions options{dir.Sub("data"), Durability::kRelaxed};
  options.idempotency_retention = absl::Hours(24);
  auto opened = RocksDbStore::Open(options);
  ASSERT_TRUE(opened.ok());
  ContextStore& s = **opened;
  const absl::Time t0 = absl::Now();
  ASSERT_TRUE(s.CreateSession("p", Session("s", absl::InfiniteDuration())).ok());
  ASSERT_TRUE(AppendWithKey(s, "s", "old", t0 - absl::Hours(30)).ok());
  ASSERT_TRUE(AppendWithKey(s, "s", "recent", t0 - absl::Hours(1)).ok());
  ASSERT_TRUE(s.DeleteExpiredSessions(t0, 100).ok());
  EXPECT_FALSE(s.GetIdempotency("p", "s", "old")->has_value());
  EXPECT_TRUE(s.GetIdempotency("p", "s", "recent")->has_value());
  EXPECT_EQ(s.ReadEvents("p", "s", 0, 10)->size(), 2u);  // only the records go

  // A key used again after its record went has a new record, which the old entry leaves alone.
  ASSERT_TRUE(AppendWithKey(s, "s", "old", t0).ok());
  ASSERT_TRUE(s.DeleteExpiredSessions(t0 + absl::Hours(2), 100).ok());
  EXPECT_TRUE(s.GetIdempotency("p", "s", "old")->has_value());
  EXPECT_TRUE(s.GetIdempotency("p", "s", "recent")->has_value());
  ASSERT_TRUE(s.DeleteExpiredSessions(t0 + absl::Hours(23) + absl::Minutes(30), 100).ok());
  EXPECT_FALSE(s.GetIdempotency("p", "s", "recent")->has_value());
  EXPECT_TRUE(s.GetIdempotency("p", "s", "old")->has_value());
  ASSERT_TRUE(s.DeleteExpiredSessions(t0 + absl::Hours(25), 100).ok());
  EXPECT_FALSE(s.GetIdempotency("p", "s", "old")->has_value());
  EXPECT_TRUE(s.GetSession("p", "s").ok());
}

TEST(RocksDbStateTest, DataDirFromBeforeTheExpiryIndexIsIndexedOnOpen) {
  testing::TempDir dir;
  const std::string path = dir.Sub("data");
  {
    // The families of the format before `expiry` (0..12), holding an expiring session with an
    // idempotency record.
    rocksdb::DBOptions options;
    options.create_if_missing = true;
    options.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const schema::ColumnFamilyInfo& info : schema::kColumnFamilies) {
      if (info.id != ColumnFamily::kExpiry)
        cfs.emplace_back(info.name, rocksdb::ColumnFamilyOptions());
    }
    rocksdb::DB* db = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    ASSERT_TRUE(rocksdb::DB::Open(options, path, cfs, &handles, &db).ok());
    storage::FormatInfo info;
    info.set_version(1);
    ASSERT_TRUE(
        db->Put({}, handles[schema::Index(ColumnFamily::kMeta)], "format", info.SerializeAsString())
            .ok());
    for (const char* id : {"old", "kept"}) {
      storage::SessionRecord r =
          Session(id, std::string(id) == "old" ? absl::Seconds(-5) : absl::InfiniteDuration());
      ASSERT_TRUE(db->Put({}, handles[schema::Index(ColumnFamily::kSessions)],
                          schema::SessionKey("p", id), r.SerializeAsString())
                      .ok());
      storage::IdempotencyRecord idem;
      *idem.mutable_create_time() = ToProto(absl::Now() - absl::Hours(48));
      ASSERT_TRUE(db->Put({}, handles[schema::Index(ColumnFamily::kIdempotency)],
                          schema::IdempotencyKey("p", id, "k"), idem.SerializeAsString())
                      .ok());
    }
    for (rocksdb::ColumnFamilyHandle* h : handles)
      ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    delete db;
  }
  auto opened = RocksDbStore::Open({path, Durability::kRelaxed});
  ASSERT_TRUE(opened.ok()) << opened.status();
  ContextStore& s = **opened;
  absl::StatusOr<int64_t> removed = s.DeleteExpiredSessions(absl::Now(), 100);
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 1);
  EXPECT_TRUE(s.GetSession("p", "kept").ok());
  EXPECT_FALSE(s.GetIdempotency("p", "kept", "k")->has_value());  // older than the retention
  opened->reset();
  std::map<std::string, std::vector<std::string>> keys = SessionKeys(path);
  EXPECT_EQ(keys["sessions"].size(), 1u);
  EXPECT_TRUE(keys["idempotency"].empty());
  EXPECT_TRUE(keys["expiry"].empty());
}

TEST(RocksDbStateTest, ACorruptForkCanBeDeletedAndThenReleasesItsParent) {
  testing::TempDir dir;
  const std::string path = dir.Sub("data");
  {
    auto opened = RocksDbStore::Open({path, Durability::kRelaxed});
    ASSERT_TRUE(opened.ok());
    ContextStore& s = **opened;
    ASSERT_TRUE(s.CreateSession("p", Session("parent", absl::InfiniteDuration())).ok());
    ASSERT_TRUE(AppendWithKey(s, "parent", "k", absl::Now()).ok());
    storage::SessionRecord fork = Session("fork", absl::InfiniteDuration());
    fork.mutable_session()->set_parent_session_id("parent");
    fork.mutable_session()->set_fork_seq(1);
    ASSERT_TRUE(s.ForkSession("p", fork).ok());
  }
  {
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
    for (const schema::ColumnFamilyInfo& info : schema::kColumnFamilies) {
      cfs.emplace_back(info.name, rocksdb::ColumnFamilyOptions());
    }
    rocksdb::DB* db = nullptr;
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::DBOptions(), path, cfs, &handles, &db).ok());
    ASSERT_TRUE(db->Put({}, handles[schema::Index(ColumnFamily::kSessions)],
                        schema::SessionKey("p", "fork"), std::string("\x0a\x05", 2) + "ab")
                    .ok());
    for (rocksdb::ColumnFamilyHandle* h : handles) {
      ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    }
    delete db;
  }
  auto opened = RocksDbStore::Open({path, Durability::kRelaxed});
  ASSERT_TRUE(opened.ok());
  ContextStore& s = **opened;
  EXPECT_EQ(s.GetSession("p", "fork").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(s.DeleteSession("p", "parent").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(s.DeleteSession("p", "fork").ok());
  ASSERT_TRUE(s.DeleteSession("p", "parent").ok());  // the stale link no longer holds it
}

TEST(RocksDbStateSchemaTest, StateAndExpiryKeysRoundTripAndSortByTime) {
  const std::string longest_id(kMaxIdLength, 'z');
  const std::string longest_key(schema::kMaxStateKeyBytes, '~');
  for (const std::string& key : {std::string("k"), std::string(" a/b "), longest_key}) {
    const std::string k = schema::StateKey("p", longest_id, key);
    const auto parts = schema::DecodeStateKey(k);
    ASSERT_TRUE(parts.has_value());
    EXPECT_EQ(parts->project_id, "p");
    EXPECT_EQ(parts->session_id, longest_id);
    EXPECT_EQ(parts->key, key);
  }
  EXPECT_FALSE(schema::DecodeStateKey(schema::SessionKey("p", "s")).has_value());
  EXPECT_FALSE(schema::DecodeStateKey(schema::SessionKey("p", "s") + "\n").has_value());
  EXPECT_FALSE(
      schema::DecodeStateKey(schema::SessionKey("p", "s") + longest_key + "x").has_value());

  const std::string session_entry =
      schema::ExpiryKey(schema::ExpiryKind::kSession, 1700000000000000, "p1", "s1");
  EXPECT_EQ(session_entry, std::string("\x01\x00\x06\x0a\x24\x18\x1e\x40\x00\x02p1\x02s1", 15));
  const auto s = schema::DecodeExpiryKey(session_entry);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->kind, schema::ExpiryKind::kSession);
  EXPECT_EQ(s->micros, 1700000000000000u);
  EXPECT_EQ(s->project_id, "p1");
  EXPECT_EQ(s->session_id, "s1");
  const std::string idem_entry =
      schema::ExpiryKey(schema::ExpiryKind::kIdempotency, 5, "p", "s", "idem-1");
  const auto i = schema::DecodeExpiryKey(idem_entry);
  ASSERT_TRUE(i.has_value());
  EXPECT_EQ(i->kind, schema::ExpiryKind::kIdempotency);
  EXPECT_EQ(i->tail, "idem-1");
  for (const std::string& bad :
       {std::string(), session_entry + "x", std::string("\x03") + session_entry.substr(1),
        schema::ExpiryKey(schema::ExpiryKind::kIdempotency, 5, "p", "s"),
        session_entry.substr(0, 12)}) {
    EXPECT_FALSE(schema::DecodeExpiryKey(bad).has_value()) << HexEncode(bad);
  }
  // Time first: every entry due earlier sorts first, whatever its project or session.
  EXPECT_LT(schema::ExpiryKey(schema::ExpiryKind::kSession, 255, "zz", "zz"),
            schema::ExpiryKey(schema::ExpiryKind::kSession, 256, "a", "a"));
  EXPECT_LT(schema::ExpiryKey(schema::ExpiryKind::kSession, 9, "a", "a"),
            schema::ExpiryTimeKey(schema::ExpiryKind::kSession, 10));
}

}  // namespace
}  // namespace agentd::store
