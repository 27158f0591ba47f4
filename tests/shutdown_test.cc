// Graceful shutdown under load (issue #9, item 7): SIGTERM to a real agentd child while turns
// are in flight on a slow (fake) model. Health must say NOT_SERVING first (main port and the
// probe-only port), new turns are refused with UNAVAILABLE, running turns finish with their
// results (or, past drain_grace_ms, are cancelled and recorded as ended, never left RUNNING), no
// acknowledged turn is lost, and the process exits 0 within the grace plus a small margin.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "agentd/v1/session.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "testing/child_server.h"
#include "testing/metrics_scrape.h"
#include "testing/fake_openai.h"
#include "testing/temp_dir.h"

namespace agentd {
namespace {

using grpc::health::v1::HealthCheckResponse;
using testing::ChildServer;
using testing::FakeOpenAiServer;
using testing::FakeReply;
using testing::FreePort;
using Clock = std::chrono::steady_clock;

// Process exit may trail the drain by the gRPC shutdown (streams get 1 s), the RocksDB close and
// process teardown; on a busy 2-core machine that stays well under this.
constexpr auto kExitMargin = std::chrono::milliseconds(3000);

FakeReply Reply(int latency_ms) {
  FakeReply r;
  r.text = "slow answer";
  r.latency_ms = latency_ms;
  return r;
}

// Polls grpc.health.v1 Check on one address every few ms, from before SIGTERM until the server
// stops answering, and records when it first said NOT_SERVING and whether it flapped back.
class HealthWatcher {
 public:
  explicit HealthWatcher(std::string address)
      : stub_(grpc::health::v1::Health::NewStub(
            grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))),
        thread_([this] { Loop(); }) {}
  ~HealthWatcher() {
    stop_ = true;
    thread_.join();
  }
  /// Waits up to `timeout` for the first NOT_SERVING; its time, or nullopt.
  std::optional<Clock::time_point> AwaitNotServing(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto seen = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return not_serving_at_.has_value(); };
    mu_.AwaitWithTimeout(absl::Condition(&seen), timeout);
    return not_serving_at_;
  }
  bool serving_seen() {
    absl::MutexLock lock(&mu_);
    return serving_seen_;
  }
  bool flapped() {
    absl::MutexLock lock(&mu_);
    return flapped_;
  }

 private:
  void Loop() {
    while (!stop_) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
      HealthCheckResponse resp;
      const grpc::Status st = stub_->Check(&ctx, {}, &resp);
      const auto now = Clock::now();
      {
        absl::MutexLock lock(&mu_);
        if (!st.ok()) {
          if (not_serving_at_) return;  // gone after NOT_SERVING: done
        } else if (resp.status() == HealthCheckResponse::SERVING) {
          serving_seen_ = true;
          if (not_serving_at_) flapped_ = true;
        } else if (!not_serving_at_) {
          not_serving_at_ = now;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }

  std::unique_ptr<grpc::health::v1::Health::Stub> stub_;
  std::atomic<bool> stop_{false};
  absl::Mutex mu_;
  std::optional<Clock::time_point> not_serving_at_ ABSL_GUARDED_BY(mu_);
  bool serving_seen_ ABSL_GUARDED_BY(mu_) = false;
  bool flapped_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts after the members it uses
};

// One RunTurn on its own thread.
struct AsyncTurn {
  v1::RunTurnRequest request;
  grpc::Status status;
  v1::TurnResult result;
  Clock::time_point done_at;
  std::thread thread;

  void Start(std::shared_ptr<grpc::Channel> channel) {
    thread = std::thread([this, channel] {
      auto stub = v1::SessionService::NewStub(channel);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      status = stub->RunTurn(&ctx, request, &result);
      done_at = Clock::now();
    });
  }
};

class ShutdownTest : public ::testing::Test {
 protected:
  // A child agentd with model `slow` on the fake server, and `sessions` sessions on it.
  void StartServer(int64_t drain_grace_ms, int sessions) {
    grace_ = std::chrono::milliseconds(drain_grace_ms);
    const std::string config_path = dir_.Sub("agentd.yaml");
    {
      std::ofstream cfg(config_path);
      cfg << "durability: sync\n"
          << "drain_grace_ms: " << drain_grace_ms << "\n"
          << "backends:\n"
          << "  - { name: fake, type: openai, base_url: \"" << fake_.base_url()
          << "\", timeout_ms: 120000 }\n"
          << "models:\n"
          << "  - name: slow\n"
          << "    deployments: [{ backend: fake, model: fake-model }]\n";
    }
    probe_address_ = absl::StrCat("127.0.0.1:", FreePort());
    metrics_address_ = absl::StrCat("127.0.0.1:", FreePort());
    server_ = std::make_unique<ChildServer>(
        dir_.Sub("data"), FreePort(),
        std::vector<std::string>{"--config", config_path, "--health-listen", probe_address_,
                                 "--metrics-listen", metrics_address_});
    ASSERT_TRUE(server_->Start());
    auto channel = server_->NewChannel();
    v1::CreateAgentRequest ca;
    ca.mutable_agent()->set_model("slow");
    v1::Agent agent;
    grpc::ClientContext actx;
    ASSERT_TRUE(v1::AgentService::NewStub(channel)->CreateAgent(&actx, ca, &agent).ok());
    auto stub = v1::SessionService::NewStub(channel);
    for (int i = 0; i < sessions; ++i) {
      v1::CreateSessionRequest cs;
      cs.set_agent_id(agent.agent_id());
      cs.set_session_id(absl::StrCat("s", i));
      v1::Session s;
      grpc::ClientContext ctx;
      ASSERT_TRUE(stub->CreateSession(&ctx, cs, &s).ok());
      session_ids_.push_back(s.session_id());
    }
  }

  v1::RunTurnRequest Request(const std::string& session_id, const std::string& key) {
    v1::RunTurnRequest r;
    r.set_session_id(session_id);
    r.set_idempotency_key(key);
    r.add_input()->set_text("input for " + key);
    return r;
  }

  // One fast acknowledged turn per session before the load, to check it survives the shutdown.
  void RunAcknowledgedTurns() {
    fake_.SetDefault(Reply(5));
    auto stub = v1::SessionService::NewStub(server_->NewChannel());
    for (const std::string& sid : session_ids_) {
      grpc::ClientContext ctx;
      v1::TurnResult r;
      ASSERT_TRUE(stub->RunTurn(&ctx, Request(sid, sid + "-before"), &r).ok());
      acknowledged_.push_back(r);
    }
  }

  // Starts one turn per session on a model that takes `latency_ms`, and waits until every one
  // of them is at the model (so they are in flight inside agentd, not just sent).
  void StartInFlightTurns(int latency_ms, int count) {
    fake_.SetDefault(Reply(latency_ms));
    const int base = fake_.in_flight();
    auto channel = server_->NewChannel();
    in_flight_.resize(count);
    for (int i = 0; i < count; ++i) {
      in_flight_[i] = std::make_unique<AsyncTurn>();
      in_flight_[i]->request = Request(session_ids_[i], session_ids_[i] + "-inflight");
      in_flight_[i]->Start(channel);
    }
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (fake_.in_flight() < base + count && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ASSERT_EQ(fake_.in_flight(), base + count) << "the turns did not reach the model";
  }

  // SIGTERM on a thread of its own (it waits for the exit).
  void SendSigterm() {
    sigterm_at_ = Clock::now();
    const int wait_ms = static_cast<int>((grace_ + std::chrono::seconds(30)).count());
    reaper_ = std::thread([this, wait_ms] {
      exit_status_ = server_->SignalAndWait(SIGTERM, wait_ms);
      exited_at_ = Clock::now();
    });
  }

  void JoinAll() {
    for (auto& t : in_flight_) {
      if (t && t->thread.joinable()) t->thread.join();
    }
    if (reaper_.joinable()) reaper_.join();
  }

  void TearDown() override { JoinAll(); }

  void ExpectCleanExitWithinGrace() {
    ASSERT_NE(exit_status_, -1) << "agentd did not exit";
    EXPECT_TRUE(WIFEXITED(exit_status_) && WEXITSTATUS(exit_status_) == 0)
        << "wait status " << exit_status_;
    const auto took =
        std::chrono::duration_cast<std::chrono::milliseconds>(exited_at_ - sigterm_at_);
    EXPECT_LT(took, grace_ + kExitMargin) << "exit took " << took.count() << " ms";
    std::printf("shutdown: exited %lld ms after SIGTERM (grace %lld ms)\n",
                static_cast<long long>(took.count()), static_cast<long long>(grace_.count()));
  }

  // After a restart: the whole log of every session, gap-free, not RUNNING, with every
  // acknowledged result's events byte-identical.
  void CheckAfterRestart() {
    ASSERT_TRUE(server_->Start());
    auto stub = v1::SessionService::NewStub(server_->NewChannel());
    for (const std::string& sid : session_ids_) {
      v1::GetSessionRequest gs;
      gs.set_session_id(sid);
      v1::Session s;
      grpc::ClientContext gctx;
      ASSERT_TRUE(stub->GetSession(&gctx, gs, &s).ok());
      EXPECT_NE(s.status(), v1::SESSION_STATUS_RUNNING) << sid << " left RUNNING";
      v1::ListEventsRequest le;
      le.set_session_id(sid);
      le.set_limit(1000);
      v1::ListEventsResponse resp;
      grpc::ClientContext lctx;
      ASSERT_TRUE(stub->ListEvents(&lctx, le, &resp).ok());
      logs_[sid].assign(resp.events().begin(), resp.events().end());
      const auto& log = logs_[sid];
      ASSERT_EQ(static_cast<int64_t>(log.size()), s.last_seq()) << sid;
      for (size_t k = 0; k < log.size(); ++k) ASSERT_EQ(log[k].seq(), static_cast<int64_t>(k + 1));
      int open_turns = 0;
      for (const v1::Event& e : log) {
        if (e.type() == v1::EVENT_TYPE_TURN_STARTED) ++open_turns;
        if (e.type() == v1::EVENT_TYPE_TURN_COMPLETED || e.type() == v1::EVENT_TYPE_TURN_FAILED) {
          --open_turns;
        }
      }
      EXPECT_EQ(open_turns, 0) << sid << ": a turn started and never ended";
    }
    for (const v1::TurnResult& r : acknowledged_) {
      const auto& log = logs_[r.events(0).session_id()];
      for (const v1::Event& e : r.events()) {
        ASSERT_LE(e.seq(), static_cast<int64_t>(log.size())) << "acknowledged turn lost";
        EXPECT_EQ(log[e.seq() - 1].SerializeAsString(), e.SerializeAsString())
            << "acknowledged event changed at seq " << e.seq();
      }
    }
  }

  // True if any TURN_STARTED in the session's log (read by CheckAfterRestart) carries `key`.
  bool LogHasKey(const std::string& sid, const std::string& key) {
    for (const v1::Event& e : logs_[sid]) {
      if (e.type() == v1::EVENT_TYPE_TURN_STARTED && e.turn().idempotency_key() == key) return true;
    }
    return false;
  }

  testing::TempDir dir_;
  FakeOpenAiServer fake_;
  std::unique_ptr<ChildServer> server_;
  std::string probe_address_;
  std::string metrics_address_;
  std::chrono::milliseconds grace_{0};
  std::vector<std::string> session_ids_;
  std::vector<v1::TurnResult> acknowledged_;
  std::vector<std::unique_ptr<AsyncTurn>> in_flight_;
  std::map<std::string, std::vector<v1::Event>> logs_;
  Clock::time_point sigterm_at_, exited_at_;
  int exit_status_ = -1;
  std::thread reaper_;
};

TEST_F(ShutdownTest, InFlightTurnsFinishHealthFlipsFirstAndNewTurnsAreRefused) {
  constexpr int kInFlight = 6;
  constexpr int kModelMs = 2500;
  StartServer(/*drain_grace_ms=*/8000, kInFlight + 1);  // the last session gets the late turn
  RunAcknowledgedTurns();
  HealthWatcher main_health(server_->address());
  HealthWatcher probe_health(probe_address_);
  StartInFlightTurns(kModelMs, kInFlight);
  // One more turn queued behind the first session's (ENQUEUE): the drain runs it too.
  AsyncTurn queued;
  queued.request = Request(session_ids_[0], "queued");
  queued.request.set_on_busy(v1::BUSY_POLICY_ENQUEUE);
  queued.Start(server_->NewChannel());
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  while (testing::ScrapeGauge(metrics_address_, "agentd_turns_queued") != 1 &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_EQ(testing::ScrapeGauge(metrics_address_, "agentd_turns_queued"), 1)
      << "the turn was not queued";
  ASSERT_TRUE(main_health.serving_seen());
  ASSERT_TRUE(probe_health.serving_seen());

  SendSigterm();
  const auto main_not_serving = main_health.AwaitNotServing(absl::Seconds(10));
  ASSERT_TRUE(main_not_serving.has_value()) << "health never said NOT_SERVING";
  // A new turn after SIGTERM is refused, and appends nothing.
  {
    auto stub = v1::SessionService::NewStub(server_->NewChannel());
    grpc::ClientContext ctx;
    v1::TurnResult r;
    const grpc::Status st = stub->RunTurn(&ctx, Request(session_ids_[kInFlight], "late"), &r);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  }
  const auto probe_not_serving = probe_health.AwaitNotServing(absl::Seconds(10));
  ASSERT_TRUE(probe_not_serving.has_value()) << "the probe port never said NOT_SERVING";
  queued.thread.join();
  JoinAll();

  // Every running turn (and the queued one) finished with its result, after health flipped.
  for (auto& t : in_flight_) {
    ASSERT_TRUE(t->status.ok()) << t->status.error_message();
    EXPECT_EQ(t->result.status(), v1::TURN_STATUS_COMPLETED);
    EXPECT_EQ(t->result.output_text(), "slow answer");
    EXPECT_LT(*main_not_serving, t->done_at) << "a turn finished before health said NOT_SERVING";
    acknowledged_.push_back(t->result);
  }
  ASSERT_TRUE(queued.status.ok()) << queued.status.error_message();
  EXPECT_EQ(queued.result.status(), v1::TURN_STATUS_COMPLETED);
  acknowledged_.push_back(queued.result);
  EXPECT_FALSE(main_health.flapped());
  EXPECT_FALSE(probe_health.flapped());
  EXPECT_LT(*main_not_serving, exited_at_);
  EXPECT_LT(*probe_not_serving, exited_at_);
  ExpectCleanExitWithinGrace();
  // Draining waited for the model: the exit came after the slow turns answered.
  for (auto& t : in_flight_) EXPECT_LE(t->done_at, exited_at_);

  fake_.SetDefault(Reply(5));
  CheckAfterRestart();
  EXPECT_FALSE(LogHasKey(session_ids_[kInFlight], "late")) << "the refused turn left events";
}

TEST_F(ShutdownTest, TurnsPastTheGraceAreCancelledAndRecordedNeverLost) {
  constexpr int kInFlight = 4;
  StartServer(/*drain_grace_ms=*/1000, kInFlight);
  RunAcknowledgedTurns();
  HealthWatcher main_health(server_->address());
  StartInFlightTurns(/*latency_ms=*/60000, kInFlight);  // far past the grace

  SendSigterm();
  const auto not_serving = main_health.AwaitNotServing(absl::Seconds(10));
  ASSERT_TRUE(not_serving.has_value()) << "health never said NOT_SERVING";
  JoinAll();
  ExpectCleanExitWithinGrace();
  // The drain cancelled them at the grace: the callers hear UNAVAILABLE (retry elsewhere).
  for (auto& t : in_flight_) {
    EXPECT_EQ(t->status.error_code(), grpc::StatusCode::UNAVAILABLE) << t->status.error_message();
    EXPECT_GE(t->done_at - sigterm_at_, grace_ - std::chrono::milliseconds(50))
        << "a turn was cut off before the grace ran out";
  }

  fake_.SetDefault(Reply(5));
  CheckAfterRestart();
  // Each cut-off turn was recorded: TURN_STARTED, then an end marker (CheckAfterRestart checked
  // none is open), and the session is not RUNNING. A retry with the same key runs it again.
  auto stub = v1::SessionService::NewStub(server_->NewChannel());
  for (auto& t : in_flight_) {
    const std::string& sid = t->request.session_id();
    EXPECT_TRUE(LogHasKey(sid, t->request.idempotency_key())) << sid << ": turn not recorded";
    const v1::Event& last = logs_[sid].back();
    EXPECT_EQ(last.type(), v1::EVENT_TYPE_TURN_FAILED) << sid;
    EXPECT_NE(last.turn().status(), v1::TURN_STATUS_COMPLETED) << sid;
    std::printf("shutdown: %s cut off at the grace, recorded %s: %s\n", sid.c_str(),
                v1::TurnStatus_Name(last.turn().status()).c_str(), last.turn().error().c_str());
    grpc::ClientContext ctx;
    v1::TurnResult r;
    ASSERT_TRUE(stub->RunTurn(&ctx, t->request, &r).ok());
    EXPECT_EQ(r.status(), v1::TURN_STATUS_COMPLETED);
  }
}

}  // namespace
}  // namespace agentd
