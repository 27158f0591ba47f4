// Issue #10 item 5: three real agentd replicas on one PostgreSQL database behind nginx
// (deploy/nginx/render.sh: consistent hash on x-agentd-session). Each test starts its own
// database, replicas (replica_ttl_seconds: 2), fake model and nginx on 127.0.0.1 and stops them,
// also on failure (testing/replica_procs.h). Checked: the busy rule and gap-free, never
// interleaved logs with every session's turns sent to all replicas; session affinity through
// nginx (its access log and each replica's agentd_turns_total); kill -9 of a replica under load
// (acknowledged turns kept, its running turns recorded failed within seconds, its sessions moved
// and served); WatchEvents fed by other replicas' commits; replicas starting together.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "agentd/v1/session.grpc.pb.h"
#include "testing/metrics_scrape.h"
#include "testing/fake_openai.h"
#include "testing/pg_cluster.h"
#include "testing/replica_client.h"
#include "testing/replica_procs.h"
#include "testing/temp_dir.h"

namespace agentd {
namespace {

using namespace std::chrono_literals;  // NOLINT
using Clock = std::chrono::steady_clock;
using testing::AccessLine;
using testing::AgentdReplica;
using testing::Describe;
using testing::GetSession;
using testing::ListAllEvents;
using testing::LogSummary;
using testing::NginxFront;
using testing::PollUntil;
using testing::RunTurn;
using testing::TurnRequest;
using testing::Workers;
using Stub = v1::SessionService::Stub;

constexpr int kReplicas = 3;
constexpr int kTtlSeconds = 2;
// The error a replica records on a turn whose replica stopped (runtime/turn.cc, replicas.cc).
constexpr char kStoppedError[] = "the agentd replica running the turn stopped";
constexpr char kRunTurn[] = "/agentd.v1.SessionService/RunTurn";

class ReplicasNginxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dsn = testing::NewPgDatabaseOrFail();
    ASSERT_FALSE(dsn.empty());
    SetModelLatency(25);
    fake_.set_record_requests(false);
    const std::string models = absl::StrCat(
        "backends:\n  - { name: fake, type: openai, base_url: \"", fake_.base_url(),
        "\", timeout_ms: 20000 }\n",
        "models:\n  - name: slow\n    deployments: [{ backend: fake, model: fake-model }]\n");
    const absl::Status st = set_.Start(dir_.path(), dsn, models, kReplicas, kTtlSeconds);
    ASSERT_TRUE(st.ok()) << st;
    for (int i = 0; i < kReplicas; ++i) channels_.push_back(set_.replica(i).NewChannel());
    nginx_channel_ = set_.nginx().NewChannel();
    // Agents created on one replica, used on all.
    for (const char* model : {"echo", "slow"}) {
      const grpc::Status created =
          testing::CreateAgent(channels_[0], absl::StrCat(model, "-agent"), model);
      ASSERT_TRUE(created.ok()) << Describe(created);
    }
  }

  void TearDown() override {
    if (HasFailure()) std::cerr << set_.LogTails();
  }

  void SetModelLatency(int ms) {
    testing::FakeReply reply;
    reply.text = "slow answer";
    reply.latency_ms = ms;
    fake_.SetDefault(reply);
  }
  std::unique_ptr<Stub> Direct(int replica) const {
    return v1::SessionService::NewStub(channels_[replica]);
  }
  std::unique_ptr<Stub> ViaNginx() const { return v1::SessionService::NewStub(nginx_channel_); }

  void CreateSession(Stub* stub, const std::string& agent_id, const std::string& id) {
    const grpc::Status st = testing::CreateSession(stub, agent_id, id);
    ASSERT_TRUE(st.ok()) << "CreateSession " << id << ": " << Describe(st);
  }

  // The session's log read through `stub`, checked; a read error is a test failure.
  LogSummary ReadLog(Stub* stub, const std::string& id, std::vector<v1::Event>* out = nullptr) {
    std::vector<v1::Event> events;
    const grpc::Status st = ListAllEvents(stub, id, &events);
    EXPECT_TRUE(st.ok()) << "ListEvents " << id << ": " << Describe(st);
    LogSummary summary = testing::SummarizeLog(events);
    EXPECT_TRUE(summary.problems.empty())
        << "session " << id << " log:" << testing::Problems(summary);
    if (out != nullptr) *out = std::move(events);
    return summary;
  }

  // Torn down in reverse: the clients, nginx and the replicas, the model, the scratch dir.
  testing::TempDir dir_;
  testing::FakeOpenAiServer fake_;
  testing::ReplicaSet set_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::shared_ptr<grpc::Channel> nginx_channel_;
};

TEST_F(ReplicasNginxTest, BusyRuleAndGapFreeSequenceAcrossReplicas) {
  // 1. A slow turn runs on replica 0: REJECT on replica 1 is refused, ENQUEUE on replica 2 waits
  //    for it and runs after it.
  {
    const std::string id = "busy";
    auto r0 = Direct(0), r1 = Direct(1), r2 = Direct(2);
    CreateSession(r0.get(), "slow-agent", id);
    testing::FakeReply long_reply;
    long_reply.text = "the long one";
    long_reply.latency_ms = 1500;
    fake_.Push(long_reply);  // the next model call: the first turn's
    grpc::Status first_status;
    v1::TurnResult first;
    std::thread first_turn([&] {
      first_status = RunTurn(r0.get(), TurnRequest(id, "long", v1::BUSY_POLICY_ENQUEUE), &first);
    });
    absl::Cleanup join = [&] { first_turn.join(); };
    const bool running = PollUntil(5s, [&] {
      v1::Session s;
      return GetSession(r1.get(), id, &s).ok() && s.status() == v1::SESSION_STATUS_RUNNING;
    });
    ASSERT_TRUE(running) << "replica 1 never saw the session RUNNING";
    v1::TurnResult rejected, queued;
    const grpc::Status reject =
        RunTurn(r1.get(), TurnRequest(id, "rejected", v1::BUSY_POLICY_REJECT), &rejected);
    EXPECT_EQ(reject.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << Describe(reject);
    const grpc::Status enqueue =
        RunTurn(r2.get(), TurnRequest(id, "queued", v1::BUSY_POLICY_ENQUEUE), &queued);
    std::move(join).Invoke();
    ASSERT_TRUE(first_status.ok()) << Describe(first_status);
    ASSERT_TRUE(enqueue.ok()) << Describe(enqueue);
    EXPECT_EQ(first.status(), v1::TURN_STATUS_COMPLETED) << first.error();
    EXPECT_EQ(first.output_text(), "the long one");
    EXPECT_EQ(queued.status(), v1::TURN_STATUS_COMPLETED) << queued.error();
    ASSERT_GT(queued.events_size(), 0);
    EXPECT_GT(queued.events(0).seq(), first.last_seq()) << "the ENQUEUE turn started before the "
                                                           "running turn on another replica ended";
    const LogSummary log = ReadLog(r1.get(), id);
    EXPECT_EQ(log.completed, 2);
    EXPECT_EQ(log.started, 2) << "the rejected turn appended events";
  }

  // 2. Load: 8 threads, each turn to a random session through a rotating replica.
  constexpr int kSessions = 8, kThreads = 8, kTurns = 10;
  std::vector<std::string> ids;
  for (int i = 0; i < kSessions; ++i) {
    ids.push_back(absl::StrCat("load-", i));
    auto stub = Direct(i % kReplicas);
    CreateSession(stub.get(), i < kSessions / 2 ? "echo-agent" : "slow-agent", ids.back());
  }
  absl::Mutex mu;
  std::vector<std::vector<std::string>> ok_turns(kSessions);  // turn ids answered OK
  int enqueue_ok = 0, reject_ok = 0, rejected = 0;
  std::vector<std::string> errors;
  {
    Workers workers;
    for (int t = 0; t < kThreads; ++t) {
      workers.threads.emplace_back([&, t] {
        std::vector<std::unique_ptr<Stub>> stubs;
        for (int r = 0; r < kReplicas; ++r) stubs.push_back(Direct(r));
        std::mt19937 rng(1000 + t);
        for (int i = 0; i < kTurns; ++i) {
          const int s = static_cast<int>(rng() % kSessions);
          const int r = (t + i) % kReplicas;
          const bool reject = i % 5 == 4;
          v1::TurnResult result;
          const grpc::Status st =
              RunTurn(stubs[r].get(),
                      TurnRequest(ids[s], absl::StrCat("thread ", t, " turn ", i),
                                  reject ? v1::BUSY_POLICY_REJECT : v1::BUSY_POLICY_ENQUEUE),
                      &result, 60s);
          absl::MutexLock lock(&mu);
          if (st.ok() && result.status() == v1::TURN_STATUS_COMPLETED) {
            ok_turns[s].push_back(result.turn_id());
            ++(reject ? reject_ok : enqueue_ok);
          } else if (reject && st.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
            ++rejected;
          } else {
            errors.push_back(absl::StrCat(ids[s], " on replica ", r, reject ? " (REJECT): " : ": ",
                                          st.ok() ? result.error() : Describe(st)));
          }
        }
      });
    }
  }
  EXPECT_TRUE(errors.empty()) << errors.size() << " turns failed:\n  "
                              << absl::StrJoin(errors.begin(),
                                               errors.begin() + std::min<size_t>(errors.size(), 5),
                                               "\n  ");
  EXPECT_EQ(enqueue_ok, kThreads * kTurns * 4 / 5) << "every ENQUEUE turn must complete OK";
  EXPECT_EQ(reject_ok + rejected, kThreads * kTurns / 5);
  std::cout << "load: " << enqueue_ok << " ENQUEUE turns ok, REJECT turns: " << reject_ok << " ok, "
            << rejected << " FAILED_PRECONDITION\n";
  for (int s = 0; s < kSessions; ++s) {
    auto reader = Direct((s + 1) % kReplicas);
    std::vector<v1::Event> events, again;
    const LogSummary log = ReadLog(reader.get(), ids[s], &events);
    EXPECT_EQ(log.completed, static_cast<int>(ok_turns[s].size())) << ids[s];
    EXPECT_EQ(log.started, log.completed) << ids[s] << ": turns that failed or never closed";
    for (const std::string& turn : ok_turns[s]) {
      EXPECT_TRUE(testing::Completed(log, turn))
          << ids[s] << ": acknowledged turn " << turn << " has no TURN_COMPLETED";
    }
    // Every replica reads the same log.
    auto other = Direct((s + 2) % kReplicas);
    ASSERT_TRUE(ListAllEvents(other.get(), ids[s], &again).ok());
    ASSERT_EQ(again.size(), events.size()) << ids[s];
    for (size_t i = 0; i < events.size(); ++i) {
      EXPECT_EQ(again[i].SerializeAsString(), events[i].SerializeAsString()) << ids[s] << " " << i;
    }
  }
}

TEST_F(ReplicasNginxTest, ThroughNginxEachSessionStaysOnOneReplica) {
  constexpr int kSessions = 12, kThreads = 6, kTurns = 4;
  std::vector<std::string> ids;
  for (int i = 0; i < kSessions; ++i) {
    // Created on one replica and given a turn on another, directly: nginx then serves sessions
    // whatever replica made them.
    ids.push_back(absl::StrCat("sticky-", i));
    auto maker = Direct(i % kReplicas), runner = Direct((i + 1) % kReplicas);
    CreateSession(maker.get(), "echo-agent", ids.back());
    v1::TurnResult r;
    const grpc::Status st =
        RunTurn(runner.get(), TurnRequest(ids.back(), "direct", v1::BUSY_POLICY_ENQUEUE), &r);
    ASSERT_TRUE(st.ok()) << Describe(st);
  }
  const std::string access_log = set_.nginx().access_log_path();
  const size_t offset = testing::FileSize(access_log);
  std::vector<double> turns_before;
  for (int r = 0; r < kReplicas; ++r) {
    const std::string metrics = set_.replica(r).metrics_address();
    turns_before.push_back(testing::ScrapeSum(metrics, "agentd_turns_total"));
    ASSERT_GE(turns_before.back(), 0) << "no agentd_turns_total at " << metrics;
  }

  absl::Mutex mu;
  std::vector<std::string> errors;
  {
    Workers workers;
    for (int t = 0; t < kThreads; ++t) {
      workers.threads.emplace_back([&, t] {
        auto stub = ViaNginx();
        for (int s = t; s < kSessions; s += kThreads) {
          for (int k = 0; k < kTurns; ++k) {
            v1::TurnResult r;
            const grpc::Status st = RunTurn(
                stub.get(),
                TurnRequest(ids[s], absl::StrCat("via nginx ", k), v1::BUSY_POLICY_ENQUEUE), &r);
            if (!st.ok() || r.status() != v1::TURN_STATUS_COMPLETED) {
              absl::MutexLock lock(&mu);
              errors.push_back(absl::StrCat(ids[s], ": ", st.ok() ? r.error() : Describe(st)));
            }
          }
          v1::Session session;
          std::vector<v1::Event> events;
          const grpc::Status got = GetSession(stub.get(), ids[s], &session);
          const grpc::Status listed = ListAllEvents(stub.get(), ids[s], &events, 7);
          if (!got.ok() || !listed.ok()) {
            absl::MutexLock lock(&mu);
            errors.push_back(
                absl::StrCat(ids[s], " reads: ", Describe(got), " / ", Describe(listed)));
          }
        }
      });
    }
  }
  ASSERT_TRUE(errors.empty()) << errors.size()
                              << " calls through nginx failed, e.g.: " << errors.front();

  // nginx logs every call when it ends: wait for the RunTurn lines.
  std::vector<AccessLine> lines;
  const int expected_turns = kSessions * kTurns;
  const bool logged = PollUntil(10s, [&] {
    lines = testing::ReadAccessLog(access_log, offset);
    int n = 0;
    for (const AccessLine& l : lines) n += l.method == kRunTurn;
    return n >= expected_turns;
  });
  ASSERT_TRUE(logged) << "nginx's access log has not every RunTurn call (" << lines.size()
                      << " lines since the load started)";
  std::map<std::string, std::set<std::string>> replicas_of;  // session -> upstreams that served it
  std::map<std::string, int> turns_on;                       // upstream -> RunTurn calls
  for (const AccessLine& l : lines) {
    if (l.session.empty()) continue;
    replicas_of[l.session].insert(l.upstreams);
    EXPECT_EQ(l.grpc_status, "0") << l.method << " for " << l.session << " via " << l.upstreams;
    if (l.method == kRunTurn) ++turns_on[l.upstream];
  }
  std::set<std::string> used;
  for (const std::string& id : ids) {
    const std::set<std::string>& served = replicas_of[id];
    EXPECT_EQ(served.size(), 1u) << id << " was served by " << absl::StrJoin(served, " and ");
    used.insert(served.begin(), served.end());
  }
  EXPECT_GE(used.size(), 2u) << "all " << kSessions << " sessions hashed to one replica: the "
                             << "affinity check above proves nothing";
  // Each replica's turn counter grew by the RunTurn calls nginx sent it.
  for (int r = 0; r < kReplicas; ++r) {
    const double expected = turns_on[set_.replica(r).address()];
    double delta = -1;
    const bool agrees = PollUntil(5s, [&] {
      delta = testing::ScrapeSum(set_.replica(r).metrics_address(), "agentd_turns_total") -
              turns_before[r];
      return delta == expected;
    });
    EXPECT_TRUE(agrees) << "replica " << r << ": agentd_turns_total grew by " << delta
                        << ", nginx sent it " << expected << " RunTurn calls";
  }
  for (int s = 0; s < kSessions; ++s) {
    auto reader = Direct(s % kReplicas);
    const LogSummary log = ReadLog(reader.get(), ids[s]);
    EXPECT_EQ(log.completed, 1 + kTurns) << ids[s];
  }
}

TEST_F(ReplicasNginxTest, KillNineOneReplicaUnderLoadThroughNginx) {
  SetModelLatency(300);  // turns spend most of their time in the model call: kills land mid-turn
  constexpr int kSessions = 9;
  std::vector<std::string> ids;
  {
    auto stub = ViaNginx();
    for (int i = 0; i < kSessions; ++i) {
      ids.push_back(absl::StrCat("kill-", i));
      CreateSession(stub.get(), "slow-agent", ids.back());
    }
  }
  struct Call {
    int session = 0;
    std::string key;
    Clock::time_point start;
    grpc::Status status;
    v1::TurnResult result;
  };
  absl::Mutex mu;
  std::vector<Call> calls;
  Workers workers;
  for (int s = 0; s < kSessions; ++s) {
    workers.threads.emplace_back([&, s] {
      auto stub = ViaNginx();
      for (int n = 0; !workers.stop.load(); ++n) {
        Call c;
        c.session = s;
        c.key = absl::StrCat(ids[s], "-turn-", n);
        c.start = Clock::now();
        c.status =
            RunTurn(stub.get(),
                    TurnRequest(ids[s], absl::StrCat("turn ", n), v1::BUSY_POLICY_ENQUEUE, c.key),
                    &c.result, 30s);
        const bool failed = !c.status.ok();
        {
          absl::MutexLock lock(&mu);
          calls.push_back(std::move(c));
        }
        if (failed) std::this_thread::sleep_for(50ms);  // pacing only: no busy loop on errors
      }
    });
  }
  auto snapshot = [&] {
    absl::MutexLock lock(&mu);
    return calls;
  };

  // Every session has had a turn, and a replica is running turns right now: that one dies.
  int victim = -1;
  const bool loaded = PollUntil(20s, [&] {
    std::set<int> served;
    for (const Call& c : snapshot()) {
      if (c.status.ok()) served.insert(c.session);
    }
    if (served.size() < kSessions) return false;
    double most = 0;
    for (int r = 0; r < kReplicas; ++r) {
      const double running =
          testing::ScrapeSum(set_.replica(r).metrics_address(), "agentd_turns_in_flight");
      if (running > most) {
        most = running;
        victim = r;
      }
    }
    return most >= 1;
  });
  ASSERT_TRUE(loaded) << "the load never got going (" << snapshot().size() << " calls)";
  const std::string victim_address = set_.replica(victim).address();
  const std::string access_log = set_.nginx().access_log_path();
  const size_t offset = testing::FileSize(access_log);  // lines before it ended before the kill
  const auto killed_at = Clock::now();
  const auto killed_wall = std::chrono::system_clock::now();
  set_.replica(victim).Kill();
  std::cout << "killed replica " << victim << " (" << victim_address << ")\n";

  // Every session gets a turn acknowledged that started after the kill: the survivors serve
  // them all, those of the dead replica included (after its turns are recorded failed).
  std::set<int> fresh;
  const bool recovered = PollUntil(30s, [&] {
    fresh.clear();
    for (const Call& c : snapshot()) {
      if (c.status.ok() && c.start > killed_at) fresh.insert(c.session);
    }
    return fresh.size() == kSessions;
  });
  workers.JoinAll();
  EXPECT_TRUE(recovered) << fresh.size() << " of " << kSessions
                         << " sessions had a turn acknowledged after the kill";

  auto survivor = Direct((victim + 1) % kReplicas);
  std::map<int, LogSummary> logs;
  int turn_failed_events = 0;
  for (int s = 0; s < kSessions; ++s) {
    logs[s] = ReadLog(survivor.get(), ids[s]);
    turn_failed_events += logs[s].failed;
    v1::Session session;
    ASSERT_TRUE(GetSession(survivor.get(), ids[s], &session).ok());
    EXPECT_NE(session.status(), v1::SESSION_STATUS_RUNNING) << ids[s] << " left RUNNING";
  }
  int acked = 0, cut_off = 0, interrupted = 0, completed_unacked = 0, never_started = 0;
  double slowest_recovery = 0;
  for (const Call& c : snapshot()) {
    const LogSummary& log = logs[c.session];
    if (c.status.ok()) {
      ++acked;
      EXPECT_TRUE(testing::Completed(log, c.result.turn_id()))
          << "acknowledged turn " << c.result.turn_id() << " of " << ids[c.session]
          << " has no TURN_COMPLETED in the store";
      continue;
    }
    ++cut_off;
    EXPECT_TRUE(c.start < killed_at)
        << c.key << " started after the kill and failed: " << Describe(c.status);
    auto turn = log.turn_of_key.find(c.key);
    if (turn == log.turn_of_key.end()) {
      ++never_started;  // killed before its opening events committed: nothing to record
      continue;
    }
    auto end = log.ends.find(turn->second);
    ASSERT_TRUE(end != log.ends.end()) << c.key << ": turn never closed";
    if (end->second.type() == v1::EVENT_TYPE_TURN_COMPLETED) {
      ++completed_unacked;  // committed just before the kill cut the reply
      continue;
    }
    ++interrupted;
    EXPECT_EQ(end->second.turn().error(), kStoppedError) << c.key;
    const std::chrono::duration<double> took = testing::EventTime(end->second) - killed_wall;
    slowest_recovery = std::max(slowest_recovery, took.count());
  }
  std::cout << "kill -9: " << acked << " turns acknowledged, " << cut_off << " cut off ("
            << interrupted << " recorded failed by a survivor, " << completed_unacked
            << " had completed, " << never_started << " never started); slowest recovery "
            << slowest_recovery << " s after the kill\n";
  EXPECT_GE(cut_off, 1) << "no RPC was running on the killed replica: the test proves nothing";
  EXPECT_GE(interrupted, 1) << "no turn of the killed replica was recorded failed";
  EXPECT_EQ(turn_failed_events, interrupted) << "turns failed that the kill did not cut off";
  EXPECT_LE(slowest_recovery, 3.0 * kTtlSeconds)
      << "the dead replica's turn was recorded failed too late (replica_ttl_seconds " << kTtlSeconds
      << ")";

  // nginx: sessions that were on the dead replica are served by the others now. (It logs a call
  // when it has ended: wait for a line per acknowledged turn.)
  std::vector<AccessLine> all;
  const bool logged = PollUntil(10s, [&] {
    all = testing::ReadAccessLog(access_log);
    return std::count_if(all.begin(), all.end(), [](const AccessLine& l) {
             return l.method == kRunTurn && l.grpc_status == "0";
           }) >= acked;
  });
  ASSERT_TRUE(logged) << "nginx's access log lacks acknowledged turns";
  const size_t before = all.size() - testing::ReadAccessLog(access_log, offset).size();
  std::set<std::string> on_victim;
  std::map<std::string, std::string> last_ok_upstream;
  for (size_t i = 0; i < all.size(); ++i) {
    if (all[i].method != kRunTurn || all[i].session.empty()) continue;
    if (i < before && all[i].upstream == victim_address) on_victim.insert(all[i].session);
    if (all[i].grpc_status == "0") last_ok_upstream[all[i].session] = all[i].upstream;
  }
  EXPECT_FALSE(on_victim.empty()) << "no session was on the killed replica";
  for (const std::string& id : on_victim) {
    EXPECT_FALSE(last_ok_upstream[id].empty()) << id;
    EXPECT_NE(last_ok_upstream[id], victim_address)
        << id << " was last served by the replica that is dead";
  }
  std::cout << on_victim.size() << " sessions moved off the killed replica\n";
}

TEST_F(ReplicasNginxTest, WatcherOnOneReplicaSeesTurnsRunOnOthers) {
  const std::string id = "watched";
  auto r0 = Direct(0), r1 = Direct(1), r2 = Direct(2);
  CreateSession(r1.get(), "echo-agent", id);
  v1::TurnResult first;
  ASSERT_TRUE(
      RunTurn(r1.get(), TurnRequest(id, "before watching", v1::BUSY_POLICY_ENQUEUE), &first).ok());

  testing::EventWatcher watcher(r0.get(), id, 0);
  ASSERT_TRUE(PollUntil(10s, [&] { return watcher.last_seq() >= first.last_seq(); }))
      << "the watcher did not get the session's history";

  // Live: turns on replicas 1 and 2 in turn, one after the other (concurrent turns of one
  // session on two replicas are the first test's business).
  constexpr int kLiveTurns = 10;
  for (int k = 0; k < kLiveTurns; ++k) {
    v1::TurnResult r;
    Stub* stub = k % 2 == 0 ? r1.get() : r2.get();
    const grpc::Status st =
        RunTurn(stub, TurnRequest(id, absl::StrCat("live ", k), v1::BUSY_POLICY_ENQUEUE), &r);
    ASSERT_TRUE(st.ok()) << "turn " << k << " on replica " << 1 + k % 2 << ": " << Describe(st);
  }
  v1::Session session;
  ASSERT_TRUE(GetSession(r2.get(), id, &session).ok());
  const int64_t last = session.last_seq();
  EXPECT_EQ(last, first.last_seq() * (1 + kLiveTurns))
      << "echo turns of " << first.last_seq() << " events each";
  const bool caught_up = PollUntil(10s, [&] { return watcher.last_seq() >= last; });
  watcher.Stop();
  EXPECT_TRUE(caught_up) << "the watcher on replica 0 saw up to seq " << watcher.last_seq()
                         << " of " << last << "; stream status " << Describe(watcher.status());
  const std::vector<v1::Event> seen = watcher.events();

  std::vector<v1::Event> stored;
  ASSERT_TRUE(ListAllEvents(r0.get(), id, &stored).ok());
  ASSERT_EQ(stored.size(), static_cast<size_t>(last));
  ASSERT_GE(seen.size(), stored.size());
  for (size_t i = 0; i < seen.size(); ++i) {
    ASSERT_EQ(seen[i].seq(), static_cast<int64_t>(i + 1)) << "watcher: gap or disorder";
    if (i < stored.size()) {
      EXPECT_EQ(seen[i].SerializeAsString(), stored[i].SerializeAsString()) << "seq " << i + 1;
    }
  }
}

// A new deployment's replicas start together (as a Deployment's pods do): every one must come
// up, the default project and its admin key are created once, and every replica accepts the key.
TEST(ReplicasStartTogetherTest, AllComeUpAndAcceptTheOneBootstrapKey) {
  const std::string dsn = testing::NewPgDatabaseOrFail();
  ASSERT_FALSE(dsn.empty());
  testing::TempDir dir;
  std::vector<std::unique_ptr<AgentdReplica>> replicas;
  for (int i = 0; i < kReplicas; ++i) {
    const std::string sub = dir.Sub(absl::StrCat("replica", i));
    std::filesystem::create_directories(sub);
    replicas.push_back(std::make_unique<AgentdReplica>(sub, dsn, "", kTtlSeconds));
    const absl::Status st = replicas.back()->Spawn();
    ASSERT_TRUE(st.ok()) << st;
  }
  for (int i = 0; i < kReplicas; ++i) {
    const absl::Status st = replicas[i]->WaitReady();
    EXPECT_TRUE(st.ok()) << "replica " << i << " of " << kReplicas << " started together: " << st
                         << " (the losers of the bootstrap's check-then-create must go on)";
    if (!st.ok()) continue;
    grpc::ClientContext ctx;
    v1::ListAgentsRequest req;
    v1::ListAgentsResponse resp;
    const grpc::Status listed =
        v1::AgentService::NewStub(replicas[i]->NewChannel())->ListAgents(&ctx, req, &resp);
    EXPECT_TRUE(listed.ok()) << "replica " << i << " with the bootstrap key: " << Describe(listed);
  }
}

}  // namespace
}  // namespace agentd
