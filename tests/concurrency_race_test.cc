// Concurrency races against the in-process server, through the public gRPC API only (plus the
// public /metrics endpoint, read to know when turns are queued):
//  - REJECT: each round, 16 clients released together send RunTurn on one session. The model
//    (GateBackend below) holds the winner's call until the other 15 have been answered, so the 16
//    calls overlap by construction: exactly one is OK (COMPLETED) and 15 are FAILED_PRECONDITION,
//    every round. The session's log is then one turn per round, in round order, seqs gap-free.
//  - ENQUEUE: each round a blocker turn holds the session; 16 clients race ENQUEUE turns (all must
//    be accepted and queued: agentd_turns_queued reaches 16), or, in the FIFO variant, enqueue one
//    after another in a random order, each only once the previous is queued (so the order the
//    server accepted them is known). All run, one after another (each turn's events contiguous,
//    none interleaved), the FIFO ones in exactly the accepted order; seqs gap-free.
//  - PutState CAS: 16 clients each make N read-modify-write increments of one counter with
//    expected_version, retrying on ABORTED: the final value is 16 x N, its version 16 x N + 1.
//
// CI runs 1,000 REJECT rounds, 100 racing and 30 FIFO ENQUEUE rounds (each FIFO enqueue waits for
// a /metrics scrape); AGENTD_RACE_ROUNDS=1000 runs 1,000 rounds of each (AGENTD_RACE_SEED picks
// the FIFO orders). The server logs at warn: the CAS test makes thousands of ABORTED calls.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "agentd/v1/session.grpc.pb.h"
#include "backend/inference_backend.h"
#include "server/server.h"
#include "spdlog/spdlog.h"
#include "testing/auth_channel.h"
#include "testing/metrics_scrape.h"
#include "testing/server_harness.h"
#include "testing/temp_dir.h"

namespace agentd {
namespace {

using testing::Ctx;

constexpr int kClients = 16;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v == nullptr ? fallback : std::atoi(v);
}

/// A model that answers like `echo` (the last user message), but while held keeps every call
/// waiting until Release() or Open(). Cancel() (deadline, abandoned turn) answers CANCELLED.
class GateBackend final : public backend::InferenceBackend {
 public:
  std::shared_ptr<backend::ModelCall> Start(const backend::ModelRequest& request,
                                            backend::ModelCallbacks callbacks) override {
    std::string text;
    for (const backend::ChatMessage& m : request.messages) {
      if (m.role == v1::ROLE_USER) text = m.text;
    }
    auto call = std::make_shared<Call>(this, std::move(text), std::move(callbacks));
    {
      absl::MutexLock lock(&mu_);
      ++calls_;
      if (held_) {
        pending_.push_back(call);
        return call;
      }
    }
    call->Finish();
    return call;
  }

  /// Calls waiting at the gate.
  int pending() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(pending_.size());
  }
  int calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  /// Answers the calls waiting now; later calls wait too.
  void Release() { Finish(Take(true)); }
  /// Answers the calls waiting and every later call at once.
  void Open() { Finish(Take(false)); }
  /// Later calls wait again.
  void Hold() {
    absl::MutexLock lock(&mu_);
    held_ = true;
  }

 private:
  class Call final : public backend::ModelCall {
   public:
    Call(GateBackend* gate, std::string text, backend::ModelCallbacks callbacks)
        : gate_(gate), text_(std::move(text)), callbacks_(std::move(callbacks)) {}
    void Cancel() override {
      if (!gate_->Remove(this) || done_.exchange(true)) return;
      callbacks_.on_done(absl::CancelledError("model call cancelled"));
    }
    void Finish() {
      if (done_.exchange(true)) return;
      backend::ModelResponse r;
      r.text = text_;
      r.input_tokens = 1;
      r.output_tokens = 1;
      r.finish_reason = "stop";
      r.served_by = "gate";
      callbacks_.on_done(std::move(r));
    }

   private:
    GateBackend* gate_;
    std::string text_;
    backend::ModelCallbacks callbacks_;
    std::atomic<bool> done_{false};
  };

  std::deque<std::shared_ptr<Call>> Take(bool keep_held) {
    absl::MutexLock lock(&mu_);
    held_ = keep_held;
    std::deque<std::shared_ptr<Call>> out;
    out.swap(pending_);
    return out;
  }
  static void Finish(std::deque<std::shared_ptr<Call>> calls) {
    for (auto& c : calls) c->Finish();
  }
  bool Remove(Call* call) {
    absl::MutexLock lock(&mu_);
    auto it = std::find_if(pending_.begin(), pending_.end(),
                           [&](const std::shared_ptr<Call>& c) { return c.get() == call; });
    if (it == pending_.end()) return false;
    pending_.erase(it);
    return true;
  }

  mutable absl::Mutex mu_;
  bool held_ ABSL_GUARDED_BY(mu_) = true;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::deque<std::shared_ptr<Call>> pending_ ABSL_GUARDED_BY(mu_);
};

/// A reusable barrier for `n` threads.
class CyclicBarrier {
 public:
  explicit CyclicBarrier(int n) : n_(n) {}
  void Wait() {
    absl::MutexLock lock(&mu_);
    const int64_t generation = generation_;
    if (++arrived_ == n_) {
      arrived_ = 0;
      ++generation_;
      cv_.SignalAll();
      return;
    }
    while (generation_ == generation) cv_.Wait(&mu_);
  }

 private:
  absl::Mutex mu_;
  absl::CondVar cv_;
  const int n_;
  int arrived_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
};

v1::RunTurnRequest TurnRequest(const std::string& text, v1::BusyPolicy policy) {
  v1::RunTurnRequest req;
  req.set_session_id("race");
  req.set_on_busy(policy);
  v1::InputMessage* in = req.add_input();
  in->set_role(v1::ROLE_USER);
  in->set_text(text);
  return req;
}

/// Polls `done` (every 100 µs) for up to `limit`; true once it held.
template <typename F>
bool WaitFor(F done, absl::Duration limit = absl::Seconds(10)) {
  const absl::Time until = absl::Now() + limit;
  while (!done()) {
    if (absl::Now() > until) return false;
    absl::SleepFor(absl::Microseconds(100));
  }
  return true;
}

class ConcurrencyRaceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::warn);
    gate_ = std::make_shared<GateBackend>();
    server::ServerOptions options;
    options.config.listen = "127.0.0.1:0";
    options.config.metrics_listen = "127.0.0.1:0";
    options.config.data_dir = dir_.Sub("data");
    options.config.drain_grace_ms = 2000;
    server::BackendConfig b;
    b.name = "gate";
    b.type = "scripted";  // supplied below, as ServerHarness supplies its ScriptedBackend
    options.config.backends.push_back(b);
    server::ModelConfig m;
    m.name = "gate";
    m.deployments.push_back({"gate", "gate-model", 1});
    options.config.models.push_back(m);
    options.extra_backends["gate"] = gate_;
    options.bootstrap_key = testing::kTestAdminKey;
    auto started = server::AgentdServer::Start(std::move(options));
    ASSERT_TRUE(started.ok()) << started.status();
    server_ = *std::move(started);
    // One connection per client (a local subchannel pool keeps channels from sharing one).
    for (int i = 0; i < kClients; ++i) {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      auto channel = testing::AuthChannel(server_->address(), grpc::InsecureChannelCredentials(),
                                          testing::kTestAdminKey, args);
      clients_.push_back(v1::SessionService::NewStub(channel));
    }
    auto channel = testing::AuthChannel(server_->address(), grpc::InsecureChannelCredentials(),
                                        testing::kTestAdminKey);
    agents_ = v1::AgentService::NewStub(channel);
    sessions_ = v1::SessionService::NewStub(channel);
    v1::CreateAgentRequest areq;
    areq.mutable_agent()->set_name("race");
    areq.mutable_agent()->set_model("gate");
    v1::Agent agent;
    grpc::Status st = agents_->CreateAgent(Ctx().get(), areq, &agent);
    ASSERT_TRUE(st.ok()) << st.error_message();
    v1::CreateSessionRequest sreq;
    sreq.set_agent_id(agent.agent_id());
    sreq.set_session_id("race");
    v1::Session session;
    st = sessions_->CreateSession(Ctx().get(), sreq, &session);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

  void TearDown() override {
    if (gate_ != nullptr) gate_->Open();
    clients_.clear();
    agents_.reset();
    sessions_.reset();
    if (server_ != nullptr) server_->Shutdown(absl::Seconds(2));
    server_.reset();
  }

  std::vector<v1::Event> AllEvents() {
    std::vector<v1::Event> all;
    v1::ListEventsRequest req;
    req.set_session_id("race");
    req.set_limit(1000);
    for (;;) {
      v1::ListEventsResponse resp;
      grpc::Status st = sessions_->ListEvents(Ctx().get(), req, &resp);
      EXPECT_TRUE(st.ok()) << st.error_message();
      if (!st.ok() || resp.events().empty()) break;
      for (const auto& e : resp.events()) all.push_back(e);
      req.set_after_seq(resp.next_after_seq());
    }
    return all;
  }

  /// Checks that seqs are 1..n without a gap and that each turn's events are contiguous, and
  /// returns the USER text of each turn in log order.
  std::vector<std::string> TurnsInLog() {
    const std::vector<v1::Event> events = AllEvents();
    std::vector<std::string> texts;
    std::vector<std::string> turn_ids;
    int64_t want = 1;
    for (const v1::Event& e : events) {
      EXPECT_EQ(e.seq(), want) << "seq gap";
      want = e.seq() + 1;
      if (turn_ids.empty() || turn_ids.back() != e.turn_id()) {
        EXPECT_EQ(std::count(turn_ids.begin(), turn_ids.end(), e.turn_id()), 0)
            << "events of turn " << e.turn_id() << " are interleaved with another turn's";
        turn_ids.push_back(e.turn_id());
      }
      if (e.has_message() && e.message().role() == v1::ROLE_USER)
        texts.push_back(e.message().text());
    }
    v1::Session session;
    v1::GetSessionRequest get;
    get.set_session_id("race");
    grpc::Status st = sessions_->GetSession(Ctx().get(), get, &session);
    EXPECT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(session.last_seq(), want - 1);
    EXPECT_EQ(turn_ids.size(), texts.size()) << "a turn without exactly one USER message";
    return texts;
  }

  testing::TempDir dir_;
  std::shared_ptr<GateBackend> gate_;
  std::unique_ptr<server::AgentdServer> server_;
  std::vector<std::unique_ptr<v1::SessionService::Stub>> clients_;
  std::unique_ptr<v1::AgentService::Stub> agents_;
  std::unique_ptr<v1::SessionService::Stub> sessions_;
};

struct Outcome {
  grpc::StatusCode code = grpc::StatusCode::UNKNOWN;
  v1::TurnResult result;
};

TEST_F(ConcurrencyRaceTest, RejectExactlyOneWinsEachRound) {
  const int rounds = EnvInt("AGENTD_RACE_ROUNDS", 1000);
  std::vector<Outcome> outcomes(kClients);
  std::atomic<int> rejected{0};
  std::atomic<bool> stop{false};
  CyclicBarrier start(kClients + 1), end(kClients + 1);
  std::vector<std::string> winners;
  int bad_rounds = 0;

  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      for (int r = 0;; ++r) {
        start.Wait();
        if (stop.load()) return;
        Outcome& o = outcomes[c];
        o.result.Clear();
        grpc::Status st = clients_[c]->RunTurn(
            Ctx(30).get(), TurnRequest(absl::StrCat("r", r, "-c", c), v1::BUSY_POLICY_REJECT),
            &o.result);
        o.code = st.error_code();
        if (o.code == grpc::StatusCode::FAILED_PRECONDITION) rejected.fetch_add(1);
        end.Wait();
      }
    });
  }
  const absl::Time t0 = absl::Now();
  for (int r = 0; r < rounds; ++r) {
    rejected.store(0);
    start.Wait();
    // The winner's model call waits at the gate until the 15 others have been answered.
    const bool overlapped =
        WaitFor([&] { return rejected.load() == kClients - 1 && gate_->pending() == 1; });
    gate_->Release();
    end.Wait();
    int ok = 0, busy = 0;
    for (int c = 0; c < kClients; ++c) {
      if (outcomes[c].code == grpc::StatusCode::OK) {
        ++ok;
        EXPECT_EQ(outcomes[c].result.status(), v1::TURN_STATUS_COMPLETED);
        EXPECT_EQ(outcomes[c].result.output_text(), absl::StrCat("r", r, "-c", c));
        winners.push_back(absl::StrCat("r", r, "-c", c));
      } else if (outcomes[c].code == grpc::StatusCode::FAILED_PRECONDITION) {
        ++busy;
      } else {
        ADD_FAILURE() << "round " << r << " client " << c << ": status " << outcomes[c].code;
      }
    }
    if (!overlapped || ok != 1 || busy != kClients - 1) {
      ++bad_rounds;
      ADD_FAILURE() << "round " << r << ": " << ok << " OK, " << busy
                    << " FAILED_PRECONDITION (overlapped: " << overlapped << ")";
      if (bad_rounds > 3) break;
    }
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  stop.store(true);
  start.Wait();
  for (std::thread& t : threads) t.join();

  EXPECT_EQ(bad_rounds, 0);
  EXPECT_EQ(gate_->calls(), static_cast<int>(winners.size()));  // losers never reached the model
  EXPECT_EQ(TurnsInLog(), winners);
  std::printf(
      "REJECT: %d rounds x %d clients in %.1f s: %zu winners (1 per round), %d bad rounds\n",
      rounds, kClients, seconds, winners.size(), bad_rounds);
}

// Each round: a blocker turn holds the session; the 16 clients enqueue behind it, racing
// (`fifo` false) or one after another in a random order, each once the previous is queued.
void RunEnqueueRounds(GateBackend* gate, server::AgentdServer* server,
                      std::vector<std::unique_ptr<v1::SessionService::Stub>>* clients, int rounds,
                      bool fifo, std::vector<std::string>* expected_log, int* bad_rounds) {
  std::mt19937 rng(static_cast<uint32_t>(EnvInt("AGENTD_RACE_SEED", 777)));
  const std::string metrics = server->metrics_address();
  auto queued = [&] {
    return static_cast<int>(testing::ScrapeGauge(metrics, "agentd_turns_queued"));
  };
  for (int r = 0; r < rounds; ++r) {
    gate->Hold();
    std::vector<Outcome> outcomes(kClients + 1);
    const std::string blocker_text = absl::StrCat("e", r, "-blocker");
    std::thread blocker([&] {
      grpc::Status st =
          (*clients)[0]->RunTurn(Ctx(30).get(), TurnRequest(blocker_text, v1::BUSY_POLICY_ENQUEUE),
                                 &outcomes[kClients].result);
      outcomes[kClients].code = st.error_code();
    });
    bool ok = WaitFor([&] { return gate->pending() == 1; });
    std::vector<int> order(kClients);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<std::thread> threads;
    CyclicBarrier go(fifo ? 1 : kClients);
    for (int k = 0; k < kClients; ++k) {
      const int c = order[k];
      threads.emplace_back([&, c] {
        go.Wait();
        grpc::Status st = (*clients)[c]->RunTurn(
            Ctx(30).get(), TurnRequest(absl::StrCat("e", r, "-c", c), v1::BUSY_POLICY_ENQUEUE),
            &outcomes[c].result);
        outcomes[c].code = st.error_code();
      });
      // FIFO: the next client sends only once this one's turn is queued.
      if (fifo) ok = WaitFor([&] { return queued() == k + 1; }) && ok;
    }
    // All 16 are queued behind the blocker at the same time.
    ok = WaitFor([&] { return queued() == kClients; }) && ok;
    gate->Open();
    blocker.join();
    for (std::thread& t : threads) t.join();
    expected_log->push_back(blocker_text);
    for (int k = 0; k < kClients; ++k) {
      const int c = order[k];
      if (fifo) expected_log->push_back(absl::StrCat("e", r, "-c", c));
    }
    for (int c = 0; c <= kClients; ++c) {
      const std::string text = c == kClients ? blocker_text : absl::StrCat("e", r, "-c", c);
      if (outcomes[c].code != grpc::StatusCode::OK ||
          outcomes[c].result.status() != v1::TURN_STATUS_COMPLETED ||
          outcomes[c].result.output_text() != text) {
        ok = false;
        ADD_FAILURE() << "round " << r << " " << text << ": status " << outcomes[c].code << " "
                      << outcomes[c].result.ShortDebugString();
      }
    }
    if (!fifo) {
      // Racing: any order within the round, the blocker first; the log check below takes the
      // order the turns ran in (their seqs) and requires each round's 16 right after its blocker.
      std::vector<std::pair<int64_t, std::string>> by_seq;
      for (int c = 0; c < kClients; ++c) {
        by_seq.emplace_back(outcomes[c].result.last_seq(), absl::StrCat("e", r, "-c", c));
      }
      std::sort(by_seq.begin(), by_seq.end());
      for (const auto& [seq, text] : by_seq) expected_log->push_back(text);
    }
    if (!ok && ++*bad_rounds > 3) break;
  }
}

TEST_F(ConcurrencyRaceTest, EnqueueRunsAllInAcceptedOrder) {
  const int racing = EnvInt("AGENTD_RACE_ROUNDS", 100);
  const int fifo = EnvInt("AGENTD_RACE_ROUNDS", 30);
  std::vector<std::string> expected;
  int bad = 0;
  const absl::Time t0 = absl::Now();
  RunEnqueueRounds(gate_.get(), server_.get(), &clients_, racing, false, &expected, &bad);
  const double racing_s = absl::ToDoubleSeconds(absl::Now() - t0);
  const absl::Time t1 = absl::Now();
  RunEnqueueRounds(gate_.get(), server_.get(), &clients_, fifo, true, &expected, &bad);
  const double fifo_s = absl::ToDoubleSeconds(absl::Now() - t1);
  EXPECT_EQ(bad, 0);
  const std::vector<std::string> log = TurnsInLog();
  EXPECT_EQ(log.size(), static_cast<size_t>((racing + fifo) * (kClients + 1)));
  EXPECT_EQ(log, expected);
  std::printf(
      "ENQUEUE: %d racing rounds (%.1f s) + %d FIFO rounds (%.1f s), %d clients behind a blocker "
      "each: %zu turns ran, in accepted order, %d bad rounds\n",
      racing, racing_s, fifo, fifo_s, kClients, log.size(), bad);
}

TEST_F(ConcurrencyRaceTest, PutStateCasLosesNoUpdate) {
  const int per_client = EnvInt("AGENTD_RACE_CAS_INCREMENTS", 100);
  v1::PutStateRequest init;
  init.set_session_id("race");
  init.set_key("counter");
  init.set_value_json("0");
  v1::StateEntry entry;
  grpc::Status st = sessions_->PutState(Ctx().get(), init, &entry);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(entry.version(), 1);

  std::atomic<int64_t> conflicts{0}, other_errors{0};
  CyclicBarrier go(kClients);
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c) {
    threads.emplace_back([&, c] {
      go.Wait();
      for (int i = 0; i < per_client; ++i) {
        for (;;) {
          v1::GetStateRequest get;
          get.set_session_id("race");
          get.set_key("counter");
          v1::StateEntry cur;
          grpc::Status s = clients_[c]->GetState(Ctx().get(), get, &cur);
          if (!s.ok()) {
            other_errors.fetch_add(1);
            return;
          }
          int64_t value = 0;
          if (!absl::SimpleAtoi(cur.value_json(), &value)) {
            other_errors.fetch_add(1);
            return;
          }
          v1::PutStateRequest put;
          put.set_session_id("race");
          put.set_key("counter");
          put.set_value_json(absl::StrCat(value + 1));
          put.set_expected_version(cur.version());
          v1::StateEntry written;
          s = clients_[c]->PutState(Ctx().get(), put, &written);
          if (s.ok()) break;
          if (s.error_code() != grpc::StatusCode::ABORTED) {
            other_errors.fetch_add(1);
            return;
          }
          conflicts.fetch_add(1);  // someone else wrote first: read again
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(other_errors.load(), 0);
  v1::GetStateRequest get;
  get.set_session_id("race");
  get.set_key("counter");
  st = sessions_->GetState(Ctx().get(), get, &entry);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(entry.value_json(), absl::StrCat(kClients * per_client));
  EXPECT_EQ(entry.version(), 1 + kClients * per_client);
  // The clients did race (a run without a single conflict would prove nothing).
  EXPECT_GT(conflicts.load(), 0);
  std::printf(
      "PutState CAS: %d clients x %d increments: final %s (version %lld), %lld conflicts "
      "retried, 0 lost\n",
      kClients, per_client, entry.value_json().c_str(), static_cast<long long>(entry.version()),
      static_cast<long long>(conflicts.load()));
}

}  // namespace
}  // namespace agentd
