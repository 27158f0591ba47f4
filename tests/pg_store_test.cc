// PostgresStore: the four ContextStore contract suites on a real PostgreSQL 15 (a throwaway
// cluster per test binary, a fresh database per test), then what only a shared database adds:
// migrations, several store instances (replicas) on one database, NOTIFY, reconnection.
#include "store/pg_store.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
#include "absl/synchronization/mutex.h"
#include "store/pg_conn.h"
#include "store/pg_schema.h"
#include "store_contract_test.h"
#include "store_memory_contract_test.h"
#include "store_state_contract_test.h"
#include "store_tenancy_contract_test.h"
#include "testing/free_port.h"
#include "testing/pg_cluster.h"

namespace agentd::store {
namespace {

absl::StatusOr<std::unique_ptr<PostgresStore>> OpenPg(const std::string& dsn,
                                                      Durability d = Durability::kRelaxed,
                                                      int pool_size = 8) {
  PostgresStoreOptions options;
  options.dsn = dsn;
  options.durability = d;
  options.pool_size = pool_size;
  return PostgresStore::Open(options);
}

// The contract runs with synchronous_commit off (like the RocksDB harness's kRelaxed): the
// server still fsyncs its WAL, commits just do not wait for it.
struct PostgresHarness {
  std::string dsn = testing::NewPgDatabaseOrFail();
  std::unique_ptr<ContextStore> NewStore() {
    if (dsn.empty()) return nullptr;
    absl::StatusOr<std::unique_ptr<PostgresStore>> store = OpenPg(dsn);
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return nullptr;
    return *std::move(store);
  }
};

}  // namespace

INSTANTIATE_TYPED_TEST_SUITE_P(Postgres, StoreContractTest, ::testing::Types<PostgresHarness>);
INSTANTIATE_TYPED_TEST_SUITE_P(Postgres, StoreTenancyContractTest,
                               ::testing::Types<PostgresHarness>);
INSTANTIATE_TYPED_TEST_SUITE_P(Postgres, StoreStateContractTest, ::testing::Types<PostgresHarness>);
INSTANTIATE_TYPED_TEST_SUITE_P(Postgres, StoreMemoryContractTest,
                               ::testing::Types<PostgresHarness>);

namespace {

// ---- PostgreSQL-specific behaviour -----------------------------------------------------------

storage::SessionRecord Session(const std::string& id) {
  storage::SessionRecord r;
  r.mutable_session()->set_session_id(id);
  r.mutable_session()->set_agent_id("a");
  r.mutable_session()->set_status(v1::SESSION_STATUS_IDLE);
  return r;
}

SessionWrite Next(const std::string& project, const storage::SessionRecord& current,
                  const std::string& text) {
  SessionWrite w = SessionWrite::Replacing(project, current);
  v1::Event& e = w.events.emplace_back();
  e.set_session_id(w.session_id);
  e.set_seq(current.session().last_seq() + 1);
  e.set_type(v1::EVENT_TYPE_MESSAGE);
  e.mutable_message()->set_text(text);
  w.record.mutable_session()->set_last_seq(e.seq());
  return w;
}

std::string DbName(const std::string& dsn) {
  const size_t at = dsn.find("dbname=");
  const size_t end = dsn.find(' ', at);
  return dsn.substr(at + 7, end == std::string::npos ? std::string::npos : end - at - 7);
}

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = testing::NewPgDatabaseOrFail();
    ASSERT_FALSE(dsn_.empty());
  }
  std::unique_ptr<PostgresStore> Open(Durability d = Durability::kRelaxed, int pool = 8) {
    absl::StatusOr<std::unique_ptr<PostgresStore>> s = OpenPg(dsn_, d, pool);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }
  absl::Status Sql(const std::string& sql) {
    absl::StatusOr<testing::PgCluster*> cluster = testing::PgCluster::Shared();
    if (!cluster.ok()) return cluster.status();
    return (*cluster)->Exec(DbName(dsn_), sql);
  }
  /// Terminates the store's backends (application_name 'agentd') on this test's database and
  /// returns how many were terminated.
  std::string KillStoreConnections() {
    absl::StatusOr<testing::PgCluster*> cluster = testing::PgCluster::Shared();
    if (!cluster.ok()) return cluster.status().ToString();
    absl::StatusOr<std::string> n = (*cluster)->Query(
        DbName(dsn_), absl::StrCat("SELECT count(pg_terminate_backend(pid, 5000)) FROM "
                                   "pg_stat_activity WHERE datname = '",
                                   DbName(dsn_), "' AND application_name = 'agentd'"));
    return n.ok() ? *n : n.status().ToString();
  }
  std::string dsn_;
};

TEST_F(PostgresStoreTest, MigrationsAreIdempotentAndRecorded) {
  auto first = Open();
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(first->CreateSession("p", Session("s")).ok());
  first.reset();
  auto second = Open();  // the schema exists: nothing to apply, the data stays
  ASSERT_NE(second, nullptr);
  EXPECT_TRUE(second->GetSession("p", "s").ok());
  pg::Pool pool({dsn_, 1, "", 3});
  absl::StatusOr<int32_t> version = pg::CurrentSchemaVersion(pool);
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, pg::LatestSchemaVersion());
}

TEST_F(PostgresStoreTest, ReplicasStartingTogetherMigrateOnce) {
  constexpr int kReplicas = 6;
  std::vector<absl::Status> results(kReplicas);
  std::vector<std::thread> threads;
  absl::Barrier* barrier = new absl::Barrier(kReplicas);
  for (int i = 0; i < kReplicas; ++i) {
    threads.emplace_back([&, i] {
      if (barrier->Block()) delete barrier;
      results[static_cast<size_t>(i)] = OpenPg(dsn_).status();
    });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& st : results) EXPECT_TRUE(st.ok()) << st;
  pg::Pool pool({dsn_, 1, "", 3});
  EXPECT_EQ(*pg::CurrentSchemaVersion(pool), pg::LatestSchemaVersion());
}

TEST_F(PostgresStoreTest, NewerSchemaIsRefused) {
  ASSERT_NE(Open(), nullptr);
  ASSERT_TRUE(Sql(absl::StrCat("INSERT INTO agentd_schema_migrations (version) VALUES (",
                               pg::LatestSchemaVersion() + 1, ")"))
                  .ok());
  absl::StatusOr<std::unique_ptr<PostgresStore>> s = OpenPg(dsn_);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_TRUE(absl::StrContains(s.status().message(), "newer")) << s.status();
}

TEST_F(PostgresStoreTest, UnreachableServerIsUnavailableWithoutThePassword) {
  const std::string dsn =
      absl::StrCat("host=127.0.0.1 port=", testing::FreePort(),
                   " user=agentd password=s3cr3t-pw dbname=x connect_timeout=3");
  absl::StatusOr<std::unique_ptr<PostgresStore>> s = OpenPg(dsn);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kUnavailable) << s.status();
  EXPECT_FALSE(absl::StrContains(s.status().ToString(), "s3cr3t-pw")) << s.status();
}

TEST_F(PostgresStoreTest, TwoInstancesSeeEachOthersWrites) {
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->CreateSession("p", Session("s")).ok());
  absl::StatusOr<storage::SessionRecord> rec = b->GetSession("p", "s");
  ASSERT_TRUE(rec.ok()) << rec.status();
  SessionWrite w = Next("p", *rec, "from b");
  w.idempotency_key = "turn-1";
  w.idempotency.set_result("done");
  ASSERT_TRUE(b->CommitSessionWrite(w).ok());
  absl::StatusOr<std::vector<v1::Event>> events = a->ReadEvents("p", "s", 0, 10);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].message().text(), "from b");
  // The retry of the turn arrives at the other replica: the idempotency record is there.
  absl::StatusOr<std::optional<storage::IdempotencyRecord>> idem =
      a->GetIdempotency("p", "s", "turn-1");
  ASSERT_TRUE(idem.ok()) << idem.status();
  ASSERT_TRUE(idem->has_value());
  EXPECT_EQ((*idem)->result(), "done");
  ASSERT_TRUE(a->PutState("p", "s", {"k", "1", 0}).ok());
  EXPECT_EQ(b->GetState("p", "s", "k")->value_json(), "1");
}

// The cross-replica busy guard: two replicas commit on the same revision; the database lets
// exactly one through.
TEST_F(PostgresStoreTest, SameRevisionFromTwoInstancesCommitsExactlyOnce) {
  auto a = Open(Durability::kSync);
  auto b = Open(Durability::kSync);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->CreateSession("p", Session("s")).ok());
  constexpr int kRounds = 100;
  for (int round = 0; round < kRounds; ++round) {
    absl::StatusOr<storage::SessionRecord> rec = a->GetSession("p", "s");
    ASSERT_TRUE(rec.ok()) << rec.status();
    absl::Status results[2];
    absl::Barrier* barrier = new absl::Barrier(2);
    auto run = [&](PostgresStore* store, int i) {
      const SessionWrite w = Next("p", *rec, absl::StrCat("round ", round, " writer ", i));
      if (barrier->Block()) delete barrier;
      results[i] = store->CommitSessionWrite(w);
    };
    std::thread ta(run, a.get(), 0);
    std::thread tb(run, b.get(), 1);
    ta.join();
    tb.join();
    const int ok = results[0].ok() + results[1].ok();
    ASSERT_EQ(ok, 1) << "round " << round << ": " << results[0] << " / " << results[1];
    const absl::Status& loser = results[0].ok() ? results[1] : results[0];
    ASSERT_EQ(loser.code(), absl::StatusCode::kAborted) << loser;
  }
  absl::StatusOr<storage::SessionRecord> rec = b->GetSession("p", "s");
  ASSERT_TRUE(rec.ok());
  EXPECT_EQ(rec->revision(), 1 + kRounds);
  absl::StatusOr<std::vector<v1::Event>> events = b->ReadEvents("p", "s", 0, 1000);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), static_cast<size_t>(kRounds));
  for (int i = 0; i < kRounds; ++i) EXPECT_EQ((*events)[i].seq(), i + 1);
}

TEST_F(PostgresStoreTest, ConcurrentUsageFromTwoInstancesSumsExactly) {
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  constexpr int kThreadsPerStore = 3;
  constexpr int kAdds = 50;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (PostgresStore* store : {a.get(), b.get()}) {
    for (int t = 0; t < kThreadsPerStore; ++t) {
      threads.emplace_back([&, store] {
        for (int i = 0; i < kAdds; ++i) {
          UsageDelta day;
          day.dimension = UsageDimension::kDay;
          day.day = 19000;
          day.usage.set_input_tokens(3);
          day.usage.set_model_calls(1);
          day.usage.set_cost_usd(0.25);
          UsageDelta model = day;
          model.dimension = UsageDimension::kModel;
          model.group = "m";
          // Opposite orders from the two stores: the store orders its locks itself.
          const std::vector<UsageDelta> deltas = store == a.get()
                                                     ? std::vector<UsageDelta>{day, model}
                                                     : std::vector<UsageDelta>{model, day};
          const absl::Status st = store->AddUsage("p", deltas);
          if (!st.ok()) {
            ADD_FAILURE() << st;
            ++failures;
          }
        }
      });
    }
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  const int n = 2 * kThreadsPerStore * kAdds;
  for (UsageDimension d : {UsageDimension::kDay, UsageDimension::kModel}) {
    absl::StatusOr<std::vector<UsageCounter>> counters = b->ReadUsage("p", d, 0, 100000);
    ASSERT_TRUE(counters.ok()) << counters.status();
    ASSERT_EQ(counters->size(), 1u);
    EXPECT_EQ(counters->at(0).usage.input_tokens(), 3 * n);
    EXPECT_EQ(counters->at(0).usage.model_calls(), n);
    EXPECT_DOUBLE_EQ(counters->at(0).usage.cost_usd(), 0.25 * n);
  }
}

TEST_F(PostgresStoreTest, CommitNotifiesListenersWithProjectSessionAndLastSeq) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateSession("proj-1", Session("sess-1")).ok());

  PGconn* listener = PQconnectdb(dsn_.c_str());
  ASSERT_EQ(PQstatus(listener), CONNECTION_OK) << PQerrorMessage(listener);
  PQclear(PQexec(listener, "LISTEN agentd_events"));

  absl::StatusOr<storage::SessionRecord> rec = store->GetSession("proj-1", "sess-1");
  ASSERT_TRUE(rec.ok());
  // A rejected write notifies nothing.
  SessionWrite stale = Next("proj-1", *rec, "x");
  stale.expected_revision = 42;
  EXPECT_EQ(store->CommitSessionWrite(stale).code(), absl::StatusCode::kAborted);
  ASSERT_TRUE(store->CommitSessionWrite(Next("proj-1", *rec, "hello")).ok());

  std::vector<std::string> payloads;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (payloads.empty() && std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{PQsocket(listener), POLLIN, 0};
    poll(&pfd, 1, 200);
    ASSERT_EQ(PQconsumeInput(listener), 1) << PQerrorMessage(listener);
    while (PGnotify* n = PQnotifies(listener)) {
      EXPECT_STREQ(n->relname, kPostgresEventsChannel);
      payloads.emplace_back(n->extra);
      PQfreemem(n);
    }
  }
  PQfinish(listener);
  ASSERT_EQ(payloads.size(), 1u);
  EXPECT_EQ(payloads[0], "proj-1/sess-1/1");
}

TEST(PostgresNotifyPayloadTest, EscapesSeparatorsAndNonPrintableBytes) {
  EXPECT_EQ(PostgresNotifyPayload("p", "s", 7), "p/s/7");
  EXPECT_EQ(PostgresNotifyPayload("a/b", std::string("s%\x01 \xff", 5), 12),
            "a%2Fb/s%25%01%20%FF/12");
}

TEST(PostgresNotifyPayloadTest, ParsesWhatItMakesAndRejectsTheRest) {
  std::string project, session;
  int64_t seq = 0;
  const std::string odd("s%\x01 \xff", 5);
  ASSERT_TRUE(ParsePostgresNotifyPayload(PostgresNotifyPayload("a/b", odd, 12), &project,
                                         &session, &seq));
  EXPECT_EQ(project, "a/b");
  EXPECT_EQ(session, odd);
  EXPECT_EQ(seq, 12);
  ASSERT_TRUE(ParsePostgresNotifyPayload("p/s/-1", &project, &session, &seq));  // deleted
  EXPECT_EQ(seq, -1);
  for (const char* bad : {"", "p/s", "p/s/7/8", "p//7", "/s/7", "p/s/x", "p/s/-2", "p%2/s/1",
                          "p%zz/s/1", "p/s%/1"}) {
    EXPECT_FALSE(ParsePostgresNotifyPayload(bad, &project, &session, &seq)) << bad;
  }
}

TEST_F(PostgresStoreTest, ReplicaHeartbeatsExpireByTheDatabaseClock) {
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(a->shared());
  EXPECT_FALSE(*b->ReplicaAlive("host/replica_1"));  // never seen
  ASSERT_TRUE(a->ReplicaHeartbeat("host/replica_1", absl::Seconds(30)).ok());
  EXPECT_TRUE(*b->ReplicaAlive("host/replica_1"));   // another instance sees it
  ASSERT_TRUE(a->ReplicaHeartbeat("host/replica_1", absl::Milliseconds(50)).ok());
  absl::SleepFor(absl::Milliseconds(100));  // past the 50 ms lease the heartbeat itself set
  EXPECT_FALSE(*b->ReplicaAlive("host/replica_1"));
  EXPECT_EQ(a->ReplicaHeartbeat("", absl::Seconds(1)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(a->ReplicaHeartbeat("r", absl::ZeroDuration()).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(b->ReplicaAlive(std::string(300, 'r')).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PostgresStoreTest, CommitFeedDeliversOtherInstancesCommitsAndResyncsAfterABreak) {
  auto watcher = Open();
  auto writer = Open();
  ASSERT_NE(watcher, nullptr);
  ASSERT_NE(writer, nullptr);
  absl::Mutex mu;
  std::vector<std::string> notices;
  int resyncs = 0;
  ContextStore::ReplicaNotices feed;
  feed.on_commit = [&](const std::string& p, const std::string& s, int64_t seq) {
    absl::MutexLock lock(&mu);
    notices.push_back(absl::StrCat(p, "|", s, "|", seq));
  };
  feed.on_resync = [&] {
    absl::MutexLock lock(&mu);
    ++resyncs;
  };
  feed.on_cancel = [&](const std::string& p, const std::string& s) {
    absl::MutexLock lock(&mu);
    notices.push_back(absl::StrCat("cancel ", p, "|", s));
  };
  ASSERT_TRUE(watcher->WatchCommits(feed).ok());
  EXPECT_EQ(watcher->WatchCommits(feed).code(), absl::StatusCode::kFailedPrecondition);
  auto wait_for = [&](size_t n) {
    absl::MutexLock lock(&mu);
    auto enough = [&] { return notices.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
  };
  ASSERT_TRUE(writer->CreateSession("p/1", Session("s 1")).ok());
  auto rec = writer->GetSession("p/1", "s 1");
  ASSERT_TRUE(rec.ok());
  ASSERT_TRUE(writer->CommitSessionWrite(Next("p/1", *rec, "one")).ok());
  ASSERT_TRUE(wait_for(1));

  // The feed's connection is killed: it reconnects, says so, and notices flow again.
  absl::StatusOr<testing::PgCluster*> cluster = testing::PgCluster::Shared();
  ASSERT_TRUE(cluster.ok());
  ASSERT_EQ(*(*cluster)->Query(DbName(dsn_),
                               absl::StrCat("SELECT count(pg_terminate_backend(pid, 5000)) FROM "
                                            "pg_stat_activity WHERE datname = '",
                                            DbName(dsn_), "' AND application_name = "
                                            "'agentd-listen'")),
            "1");
  {
    absl::MutexLock lock(&mu);
    auto resynced = [&] { return resyncs >= 1; };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&resynced), absl::Seconds(10)));
  }
  rec = writer->GetSession("p/1", "s 1");
  ASSERT_TRUE(writer->CommitSessionWrite(Next("p/1", *rec, "two")).ok());
  ASSERT_TRUE(writer->RequestCancel("p/1", "s 1").ok());
  ASSERT_TRUE(writer->DeleteSession("p/1", "s 1").ok());
  ASSERT_TRUE(wait_for(4));
  watcher->StopWatchingCommits();
  absl::MutexLock lock(&mu);
  EXPECT_EQ(notices, (std::vector<std::string>{"p/1|s 1|1", "p/1|s 1|2", "cancel p/1|s 1",
                                               "p/1|s 1|-1"}));
}

TEST_F(PostgresStoreTest, TerminatedConnectionIsReplacedTransparently) {
  auto store = Open(Durability::kRelaxed, /*pool=*/1);  // one connection: the one killed
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CreateSession("p", Session("s")).ok());
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(KillStoreConnections(), "1");
    // Reads and writes after the kill: the broken connection is dropped and the call retried.
    absl::StatusOr<storage::SessionRecord> rec = store->GetSession("p", "s");
    ASSERT_TRUE(rec.ok()) << rec.status();
    ASSERT_EQ(KillStoreConnections(), "1");
    const absl::Status st = store->CommitSessionWrite(Next("p", *rec, "after kill"));
    ASSERT_TRUE(st.ok()) << st;
  }
  EXPECT_EQ(store->GetSession("p", "s")->session().last_seq(), 3);
}

TEST_F(PostgresStoreTest, BackupsPointAtPostgresTools) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<v1::BackupInfo> b = store->CreateBackup("/tmp/x", 0);
  EXPECT_EQ(b.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_TRUE(absl::StrContains(b.status().message(), "pg_dump")) << b.status();
  EXPECT_TRUE(absl::StrContains(b.status().message(), "pg_basebackup")) << b.status();
  EXPECT_EQ(store->ListBackups("/tmp/x").status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_EQ(store->RestoreBackup("/tmp/x", 0, "/tmp/y").status().code(),
            absl::StatusCode::kUnimplemented);
}

TEST_F(PostgresStoreTest, TenantIdIsInEveryPrimaryKey) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  // Every agentd table but the migrations, the global API-key lookup and the replicas'
  // heartbeats (processes, not tenant data) has project_id first in its primary key.
  pg::Pool pool({dsn_, 1, "", 3});
  int64_t without = -1;
  ASSERT_TRUE(pool.Transaction([&](pg::Conn& c) -> absl::Status {
                    absl::StatusOr<pg::Result> r = c.Exec(
                        "check keys",
                        "SELECT count(*) FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid "
                        "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0] "
                        "WHERE i.indisprimary AND t.relname LIKE 'agentd\\_%' AND t.relname NOT "
                        "IN ('agentd_schema_migrations', 'agentd_api_keys', 'agentd_replicas') AND "
                        "a.attname <> 'project_id'");
                    if (!r.ok()) return r.status();
                    without = r->Int(0, 0);
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(without, 0);
}

}  // namespace
}  // namespace agentd::store
