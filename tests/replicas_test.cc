// Several agentd replicas (in-process servers) sharing one PostgreSQL database: the busy rule,
// idempotency keys, watchers, orphaned turns and budgets hold across replicas
// (runtime/replicas.h, docs/scale-out.md). Slow turns come from a fake OpenAI-compatible model
// both replicas call. tests/replicas_nginx_test.cc runs the same shape as processes behind nginx.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agentd/v1/project.grpc.pb.h"
#include "store/pg_store.h"
#include "testing/fake_openai.h"
#include "testing/pg_cluster.h"
#include "testing/server_harness.h"

namespace agentd {
namespace {

using testing::Ctx;
using testing::Eventually;
using testing::FakeOpenAiServer;
using testing::FakeReply;
using testing::ServerHarness;

constexpr char kDsnEnv[] = "AGENTD_REPLICAS_TEST_DSN";

class ReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = testing::NewPgDatabaseOrFail();
    ASSERT_FALSE(dsn_.empty());
    setenv(kDsnEnv, dsn_.c_str(), 1);
  }

  std::unique_ptr<ServerHarness> StartReplica() {
    return std::make_unique<ServerHarness>([this](server::Config* config) {
      config->store.type = "postgres";
      config->store.postgres_dsn_env = kDsnEnv;
      config->store.replica_ttl_seconds = 1;
      testing::AddFakeOpenAiModel(config, fake_.base_url(), {100000, 100000});
    });
  }

  std::unique_ptr<store::PostgresStore> OpenStore() {
    store::PostgresStoreOptions options;
    options.dsn = dsn_;
    auto opened = store::PostgresStore::Open(options);
    EXPECT_TRUE(opened.ok()) << opened.status();
    return opened.ok() ? *std::move(opened) : nullptr;
  }

  static v1::RunTurnRequest Turn(const std::string& session_id, const std::string& text,
                                 v1::BusyPolicy on_busy = v1::BUSY_POLICY_REJECT) {
    v1::RunTurnRequest req;
    req.set_session_id(session_id);
    req.add_input()->set_text(text);
    req.set_on_busy(on_busy);
    return req;
  }

  /// Starts RunTurn on `h` in a thread; join() then read *status / *result.
  static std::thread RunAsync(ServerHarness* h, v1::RunTurnRequest req, grpc::Status* status,
                              v1::TurnResult* result) {
    return std::thread([=] { *status = h->Run(req, result); });
  }

  /// Waits until the session is RUNNING as stored (read through `h`).
  static bool StoredRunning(ServerHarness* h, const std::string& session_id) {
    return Eventually(
        [&] {
          v1::GetSessionRequest req;
          req.set_session_id(session_id);
          v1::Session s;
          return h->sessions().GetSession(Ctx().get(), req, &s).ok() &&
                 s.status() == v1::SESSION_STATUS_RUNNING;
        },
        absl::Seconds(5));
  }

  /// Seqs 1..N without a gap, and turns that never interleave.
  static void ExpectWellFormedLog(const std::vector<v1::Event>& events) {
    std::string open_turn;
    for (size_t i = 0; i < events.size(); ++i) {
      const v1::Event& e = events[i];
      ASSERT_EQ(e.seq(), static_cast<int64_t>(i + 1));
      if (e.type() == v1::EVENT_TYPE_TURN_STARTED) {
        ASSERT_TRUE(open_turn.empty()) << "turn " << e.turn_id() << " started inside " << open_turn;
        open_turn = e.turn_id();
      } else {
        ASSERT_EQ(e.turn_id(), open_turn) << "event " << e.seq() << " outside its turn";
        if (e.type() == v1::EVENT_TYPE_TURN_COMPLETED || e.type() == v1::EVENT_TYPE_TURN_FAILED) {
          open_turn.clear();
        }
      }
    }
    EXPECT_TRUE(open_turn.empty());
  }

  FakeOpenAiServer fake_;
  std::string dsn_;
};

FakeReply Slow(int latency_ms) {
  FakeReply r;
  r.text = "slow answer";
  r.latency_ms = latency_ms;
  return r;
}

TEST_F(ReplicasTest, ATurnOnOneReplicaMakesTheSessionBusyOnAnother) {
  auto a = StartReplica();
  auto b = StartReplica();
  v1::Session s = a->CreateSession(a->CreateAgent("gpt").agent_id());
  fake_.Push(Slow(1500));

  grpc::Status a_status;
  v1::TurnResult a_result;
  std::thread running = RunAsync(a.get(), Turn(s.session_id(), "first"), &a_status, &a_result);
  ASSERT_TRUE(StoredRunning(b.get(), s.session_id()));

  // REJECT on the other replica: busy, and nothing appended.
  v1::TurnResult rejected;
  grpc::Status st = b->Run(Turn(s.session_id(), "second"), &rejected);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  EXPECT_NE(st.error_message().find("another replica"), std::string::npos) << st.error_message();

  // Deleting a session whose turn runs on another replica is refused, as on one node.
  v1::DeleteSessionRequest del;
  del.set_session_id(s.session_id());
  google::protobuf::Empty empty;
  st = b->sessions().DeleteSession(Ctx().get(), del, &empty);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();

  // ENQUEUE on the other replica: waits for a's turn, then runs after it.
  v1::TurnResult queued;
  st = b->Run(Turn(s.session_id(), "third", v1::BUSY_POLICY_ENQUEUE), &queued);
  running.join();
  ASSERT_TRUE(a_status.ok()) << a_status.error_message();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(a_result.last_seq(), 4);
  EXPECT_EQ(queued.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(queued.last_seq(), 8);
  const std::vector<v1::Event> events = b->AllEvents(s.session_id());
  ASSERT_EQ(events.size(), 8u);
  ExpectWellFormedLog(events);
  EXPECT_EQ(events[1].message().text(), "first");
  EXPECT_EQ(events[5].message().text(), "third");
}

TEST_F(ReplicasTest, CancelTurnOnAnotherReplicaCancelsTheTurnWhereItRuns) {
  auto a = StartReplica();
  auto b = StartReplica();
  v1::Session s = a->CreateSession(a->CreateAgent("gpt").agent_id());
  // The default, not a queued reply: the cancel may stop the call before it reaches the fake.
  fake_.SetDefault(Slow(5000));
  grpc::Status a_status;
  v1::TurnResult a_result;
  const absl::Time start = absl::Now();
  std::thread running = RunAsync(a.get(), Turn(s.session_id(), "long"), &a_status, &a_result);
  ASSERT_TRUE(StoredRunning(b.get(), s.session_id()));

  v1::CancelTurnRequest cancel;
  cancel.set_session_id(s.session_id());
  v1::TurnResult cancelled;
  grpc::Status st = b->sessions().CancelTurn(Ctx().get(), cancel, &cancelled);
  running.join();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(4)) << "the 5 s model call was not aborted";
  ASSERT_TRUE(a_status.ok()) << a_status.error_message();
  EXPECT_EQ(a_result.status(), v1::TURN_STATUS_CANCELLED);
  // b answers with the turn's result as recorded by a.
  EXPECT_EQ(cancelled.turn_id(), a_result.turn_id());
  EXPECT_EQ(cancelled.status(), v1::TURN_STATUS_CANCELLED);
  EXPECT_EQ(cancelled.last_seq(), a_result.last_seq());
  ASSERT_EQ(cancelled.events_size(), a_result.events_size());
  for (int i = 0; i < cancelled.events_size(); ++i) {
    EXPECT_EQ(cancelled.events(i).SerializeAsString(), a_result.events(i).SerializeAsString());
  }
  // Nothing runs any more: cancelling again is refused; the session takes new turns.
  st = b->sessions().CancelTurn(Ctx().get(), cancel, &cancelled);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  FakeReply quick;
  quick.text = "next";
  fake_.Push(quick);
  v1::TurnResult r;
  ASSERT_TRUE(b->Send(s.session_id(), "again", &r).ok());
  EXPECT_EQ(r.output_text(), "next");
  ExpectWellFormedLog(b->AllEvents(s.session_id()));
}

TEST_F(ReplicasTest, ConcurrentTurnsThroughThreeReplicasKeepOneTurnAtATime) {
  std::vector<std::unique_ptr<ServerHarness>> replicas;
  for (int i = 0; i < 3; ++i) replicas.push_back(StartReplica());
  FakeReply quick;
  quick.latency_ms = 20;
  fake_.SetDefault(quick);
  const std::string agent = replicas[0]->CreateAgent("gpt").agent_id();
  std::vector<std::string> sessions;
  for (int i = 0; i < 3; ++i) sessions.push_back(replicas[0]->CreateSession(agent).session_id());

  constexpr int kThreads = 6, kTurns = 5;
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kTurns; ++i) {
        ServerHarness* h = replicas[(t + i) % 3].get();
        v1::TurnResult r;
        grpc::Status st = h->Run(
            Turn(sessions[(t + i) % sessions.size()], absl::StrCat("t", t, "-", i),
                 v1::BUSY_POLICY_ENQUEUE),
            &r);
        (st.ok() && r.status() == v1::TURN_STATUS_COMPLETED ? ok : failed)++;
        if (!st.ok()) ADD_FAILURE() << st.error_code() << " " << st.error_message();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kThreads * kTurns);
  EXPECT_EQ(failed.load(), 0);
  int completed = 0;
  for (const std::string& id : sessions) {
    const std::vector<v1::Event> events = replicas[1]->AllEvents(id);
    ExpectWellFormedLog(events);
    for (const v1::Event& e : events) completed += e.type() == v1::EVENT_TYPE_TURN_COMPLETED;
  }
  EXPECT_EQ(completed, kThreads * kTurns);
}

TEST_F(ReplicasTest, IdempotencyKeysHoldOnEveryReplica) {
  auto a = StartReplica();
  auto b = StartReplica();
  v1::Session s = a->CreateSession(a->CreateAgent("gpt").agent_id());
  fake_.Push(Slow(1500));
  v1::RunTurnRequest req = Turn(s.session_id(), "pay once");
  req.set_idempotency_key("payment-1");

  grpc::Status a_status;
  v1::TurnResult first;
  std::thread running = RunAsync(a.get(), req, &a_status, &first);
  ASSERT_TRUE(StoredRunning(b.get(), s.session_id()));
  v1::TurnResult r;
  grpc::Status st = b->Run(req, &r);  // the retry reaches the other replica mid-turn
  EXPECT_EQ(st.error_code(), grpc::StatusCode::ABORTED) << st.error_message();
  v1::RunTurnRequest other = req;
  other.mutable_input(0)->set_text("pay twice");
  st = b->Run(other, &r);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  running.join();
  ASSERT_TRUE(a_status.ok()) << a_status.error_message();

  // After it finished: the same result from the other replica, and no second turn.
  v1::TurnResult again;
  ASSERT_TRUE(b->Run(req, &again).ok());
  EXPECT_EQ(again.turn_id(), first.turn_id());
  EXPECT_EQ(again.SerializeAsString(), first.SerializeAsString());
  EXPECT_EQ(b->AllEvents(s.session_id()).size(), 4u);
  EXPECT_EQ(fake_.request_count(), 1);
}

TEST_F(ReplicasTest, AWatcherOnOneReplicaSeesTurnsRunOnAnother) {
  auto a = StartReplica();
  auto b = StartReplica();
  v1::Session s = a->CreateSession(a->CreateAgent("echo").agent_id());
  v1::TurnResult r;
  ASSERT_TRUE(b->Send(s.session_id(), "before the watch", &r).ok());

  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  v1::WatchEventsRequest watch;
  watch.set_session_id(s.session_id());
  watch.set_after_seq(2);  // resumes from a cursor
  auto reader = a->sessions().WatchEvents(&ctx, watch);
  absl::Mutex mu;
  std::vector<v1::Event> seen;
  std::thread consumer([&] {
    v1::Event e;
    while (reader->Read(&e)) {
      absl::MutexLock lock(&mu);
      seen.push_back(e);
    }
  });
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(b->Send(s.session_id(), absl::StrCat("m", i), &r).ok());
  ASSERT_EQ(r.last_seq(), 24);
  ASSERT_TRUE(Eventually(
      [&] {
        absl::MutexLock lock(&mu);
        return seen.size() >= 22;
      },
      absl::Seconds(5)));
  // Deleting it on b ends a's watch (NOT_FOUND).
  v1::DeleteSessionRequest del;
  del.set_session_id(s.session_id());
  google::protobuf::Empty empty;
  ASSERT_TRUE(b->sessions().DeleteSession(Ctx().get(), del, &empty).ok());
  consumer.join();
  grpc::Status st = reader->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND) << st.error_message();
  ASSERT_EQ(seen.size(), 22u);
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i].seq(), static_cast<int64_t>(i + 3));
}

// A turn recorded as running by a replica that is gone (no live heartbeat).
void PlantOrphan(store::ContextStore* store, const std::string& session_id,
                 const std::string& replica) {
  auto rec = store->GetSession("default", session_id);
  ASSERT_TRUE(rec.ok()) << rec.status();
  store::SessionWrite w;
  w.project_id = "default";
  w.session_id = session_id;
  w.expected_revision = rec->revision();
  v1::Event& e = w.events.emplace_back();
  e.set_session_id(session_id);
  e.set_seq(rec->session().last_seq() + 1);
  e.set_turn_id("turn_orphan");
  e.set_type(v1::EVENT_TYPE_TURN_STARTED);
  e.mutable_turn()->set_turn_id("turn_orphan");
  w.record = *rec;
  w.record.mutable_session()->set_status(v1::SESSION_STATUS_RUNNING);
  w.record.mutable_session()->set_last_seq(e.seq());
  w.record.set_running_turn_id("turn_orphan");
  w.record.set_running_replica_id(replica);
  ASSERT_TRUE(store->CommitSessionWrite(w).ok());
}

TEST_F(ReplicasTest, ATurnOfAReplicaThatStoppedIsRecordedAsFailed) {
  auto a = StartReplica();
  auto store = OpenStore();
  ASSERT_NE(store, nullptr);
  const std::string agent = a->CreateAgent("echo").agent_id();

  // A live replica's turn is busy; once its heartbeat lapses the next turn recovers it.
  v1::Session s1 = a->CreateSession(agent);
  ASSERT_TRUE(store->ReplicaHeartbeat("ghost", absl::Seconds(60)).ok());
  PlantOrphan(store.get(), s1.session_id(), "ghost");
  v1::TurnResult r;
  grpc::Status st = a->Send(s1.session_id(), "busy?", &r);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << st.error_message();
  ASSERT_TRUE(store->ReplicaHeartbeat("ghost", absl::Milliseconds(1)).ok());
  ASSERT_TRUE(Eventually([&] { return !store->ReplicaAlive("ghost").value_or(true); },
                         absl::Seconds(2)));
  // Either the sweep (ttl/3) or this turn records it; both leave the same log.
  ASSERT_TRUE(a->Send(s1.session_id(), "after", &r).ok());
  std::vector<v1::Event> events = a->AllEvents(s1.session_id());
  ASSERT_EQ(events.size(), 6u);
  EXPECT_EQ(events[1].type(), v1::EVENT_TYPE_TURN_FAILED);
  EXPECT_EQ(events[1].turn_id(), "turn_orphan");
  EXPECT_EQ(events[1].turn().error(), "the agentd replica running the turn stopped");
  EXPECT_EQ(events[5].type(), v1::EVENT_TYPE_TURN_COMPLETED);

  // Without any new turn: the periodic sweep records it (replica_ttl_seconds 1: every ~0.33 s).
  v1::Session s2 = a->CreateSession(agent);
  PlantOrphan(store.get(), s2.session_id(), "never-heartbeat");
  ASSERT_TRUE(Eventually(
      [&] {
        auto rec = store->GetSession("default", s2.session_id());
        return rec.ok() && rec->session().status() == v1::SESSION_STATUS_FAILED;
      },
      absl::Seconds(5)));
  events = a->AllEvents(s2.session_id());
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].type(), v1::EVENT_TYPE_TURN_FAILED);
}

TEST_F(ReplicasTest, UsageAndBudgetsCountTurnsOfEveryReplica) {
  std::vector<std::unique_ptr<ServerHarness>> replicas;
  for (int i = 0; i < 3; ++i) replicas.push_back(StartReplica());
  const std::string agent = replicas[0]->CreateAgent("gpt").agent_id();
  // 11 + 7 tokens per call at 0.1 USD per token: 1.8 USD per turn.
  constexpr double kTurnCost = 1.8;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      const std::string session = replicas[t % 3]->CreateSession(agent).session_id();
      for (int i = 0; i < 3; ++i) {
        v1::TurnResult r;
        if (replicas[(t + i) % 3]->Send(session, "count me", &r).ok()) ok++;
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(ok.load(), 18);
  auto projects = v1::ProjectService::NewStub(replicas[2]->channel());
  v1::GetUsageRequest usage_req;
  usage_req.set_project_id("default");
  v1::GetUsageResponse usage;
  ASSERT_TRUE(projects->GetUsage(Ctx().get(), usage_req, &usage).ok());
  ASSERT_EQ(usage.rows_size(), 1);
  EXPECT_EQ(usage.rows(0).usage().model_calls(), 18);
  EXPECT_EQ(usage.rows(0).usage().input_tokens(), 18 * 11);
  EXPECT_NEAR(usage.rows(0).usage().cost_usd(), 18 * kTurnCost, 1e-6);

  // A budget spent through one replica stops the others too (within their 1 s refresh).
  v1::SetLimitsRequest limits;
  limits.set_project_id("default");
  limits.mutable_limits()->set_monthly_budget_usd(18 * kTurnCost + 2 * kTurnCost - 0.1);
  v1::Project project;
  ASSERT_TRUE(projects->SetLimits(Ctx().get(), limits, &project).ok());
  const std::string session = replicas[0]->CreateSession(agent).session_id();
  v1::TurnResult r;
  ASSERT_TRUE(replicas[0]->Send(session, "one", &r).ok());
  ASSERT_TRUE(replicas[0]->Send(session, "two", &r).ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(Eventually(
        [&] {
          v1::TurnResult rejected;
          grpc::Status st = replicas[i]->Send(session, "over budget", &rejected);
          return st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
        },
        absl::Seconds(3)))
        << "replica " << i;
  }
}

}  // namespace
}  // namespace agentd
