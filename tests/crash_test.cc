// kill -9 a real agentd child process under load, restart it on the same data dir, and check
// that every acknowledged turn's events are there, gap-free, and no session is stuck RUNNING.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <random>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "agentd/v1/session.grpc.pb.h"
#include "testing/child_server.h"
#include "testing/temp_dir.h"

namespace agentd {
namespace {

using testing::ChildServer;
using testing::FreePort;

struct Acked {
  std::string turn_id;
  std::vector<std::string> events;  // serialized, in seq order
  int64_t first_seq = 0;
};

TEST(CrashTest, KillNineUnderLoadLosesNoAcknowledgedTurn) {
  testing::TempDir dir;
  ChildServer server(dir.Sub("data"), FreePort());
  ASSERT_TRUE(server.Start());
  auto channel = server.NewChannel();
  auto agents = v1::AgentService::NewStub(channel);
  v1::CreateAgentRequest ca;
  ca.mutable_agent()->set_model("echo");
  v1::Agent agent;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(agents->CreateAgent(&ctx, ca, &agent).ok());
  }
  constexpr int kSessions = 8;
  constexpr int kCycles = 20;
  std::vector<std::string> session_ids;
  {
    auto sessions = v1::SessionService::NewStub(channel);
    for (int i = 0; i < kSessions; ++i) {
      v1::CreateSessionRequest cs;
      cs.set_agent_id(agent.agent_id());
      cs.set_session_id("crash-" + std::to_string(i));
      v1::Session s;
      grpc::ClientContext ctx;
      ASSERT_TRUE(sessions->CreateSession(&ctx, cs, &s).ok());
      session_ids.push_back(s.session_id());
    }
  }
  absl::Mutex mu;
  std::map<std::string, std::vector<Acked>> acked;        // by session
  std::map<std::string, v1::RunTurnRequest> unacked;      // last request per session w/o answer
  std::mt19937 rng(12345);
  int64_t total_acked = 0;

  for (int cycle = 0; cycle < kCycles; ++cycle) {
    auto ch = server.NewChannel();
    std::atomic<bool> stop{false};
    std::vector<std::thread> workers;
    for (int i = 0; i < kSessions; ++i) {
      workers.emplace_back([&, i] {
        auto stub = v1::SessionService::NewStub(ch);
        for (int n = 0; !stop.load(); ++n) {
          v1::RunTurnRequest req;
          req.set_session_id(session_ids[i]);
          req.set_idempotency_key("c" + std::to_string(cycle) + "-t" + std::to_string(n));
          req.add_input()->set_text("turn " + std::to_string(n) + " of cycle " + std::to_string(cycle));
          {
            absl::MutexLock lock(&mu);
            unacked[session_ids[i]] = req;
          }
          grpc::ClientContext ctx;
          ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
          v1::TurnResult r;
          grpc::Status st = stub->RunTurn(&ctx, req, &r);
          if (!st.ok()) return;  // the server died
          Acked a;
          a.turn_id = r.turn_id();
          a.first_seq = r.events(0).seq();
          for (const auto& e : r.events()) a.events.push_back(e.SerializeAsString());
          absl::MutexLock lock(&mu);
          acked[session_ids[i]].push_back(std::move(a));
          unacked.erase(session_ids[i]);
        }
      });
    }
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::uniform_int_distribution<int>(50, 400)(rng)));
    server.Kill();  // kill -9 at a random moment under load
    stop = true;
    for (auto& t : workers) t.join();
    ASSERT_TRUE(server.Start());

    auto stub = v1::SessionService::NewStub(server.NewChannel());
    absl::MutexLock lock(&mu);
    total_acked = 0;
    for (const std::string& sid : session_ids) {
      // Read the whole log.
      std::vector<v1::Event> log;
      v1::ListEventsRequest le;
      le.set_session_id(sid);
      le.set_limit(1000);
      for (;;) {
        grpc::ClientContext ctx;
        v1::ListEventsResponse resp;
        ASSERT_TRUE(stub->ListEvents(&ctx, le, &resp).ok());
        if (resp.events().empty()) break;
        for (const auto& e : resp.events()) log.push_back(e);
        le.set_after_seq(resp.next_after_seq());
      }
      for (size_t k = 0; k < log.size(); ++k) {
        ASSERT_EQ(log[k].seq(), static_cast<int64_t>(k + 1)) << sid << ": gap in seq";
      }
      for (const Acked& a : acked[sid]) {
        ++total_acked;
        for (size_t k = 0; k < a.events.size(); ++k) {
          const size_t idx = static_cast<size_t>(a.first_seq - 1) + k;
          ASSERT_LT(idx, log.size()) << sid << ": acknowledged turn " << a.turn_id << " lost";
          ASSERT_EQ(log[idx].SerializeAsString(), a.events[k]) << sid << " seq " << idx + 1;
        }
      }
      grpc::ClientContext gctx;
      v1::GetSessionRequest gs;
      gs.set_session_id(sid);
      v1::Session s;
      ASSERT_TRUE(stub->GetSession(&gctx, gs, &s).ok());
      ASSERT_NE(s.status(), v1::SESSION_STATUS_RUNNING) << sid << " stuck RUNNING";
      // Retrying the unanswered turn with its idempotency key never duplicates it.
      auto it = unacked.find(sid);
      if (it != unacked.end()) {
        grpc::ClientContext rctx;
        v1::TurnResult r1, r2;
        ASSERT_TRUE(stub->RunTurn(&rctx, it->second, &r1).ok());
        grpc::ClientContext rctx2;
        ASSERT_TRUE(stub->RunTurn(&rctx2, it->second, &r2).ok());
        EXPECT_EQ(r1.SerializeAsString(), r2.SerializeAsString());
        Acked a;
        a.turn_id = r1.turn_id();
        a.first_seq = r1.events(0).seq();
        for (const auto& e : r1.events()) a.events.push_back(e.SerializeAsString());
        acked[sid].push_back(std::move(a));
        unacked.erase(it);
      }
    }
  }
  EXPECT_GT(total_acked, 0);
  std::printf("crash test: %d kill -9 cycles, %lld acknowledged turns verified, 0 lost\n", kCycles,
              static_cast<long long>(total_acked));
}

}  // namespace
}  // namespace agentd
