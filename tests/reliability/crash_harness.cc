#include "reliability/crash_harness.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "agentd/v1/session.grpc.pb.h"
#include "testing/child_server.h"
#include "testing/fake_openai.h"
#include "testing/temp_dir.h"

namespace agentd::testing {
namespace {

// The error startup recovery records on a turn a crash cut off (SessionManager).
constexpr char kRecoveredError[] = "agentd stopped while the turn was running";
constexpr size_t kMaxFailures = 10;

struct Acked {
  std::string turn_id;
  int64_t first_seq = 0;
  std::vector<std::string> events;  // serialized, in seq order
};

Acked FromResult(const v1::TurnResult& r) {
  Acked a;
  a.turn_id = r.turn_id();
  a.first_seq = r.events_size() > 0 ? r.events(0).seq() : 0;
  for (const v1::Event& e : r.events()) a.events.push_back(e.SerializeAsString());
  return a;
}

std::string CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    default:
      return absl::StrCat("code ", static_cast<int>(code));
  }
}

grpc::Status ReadLog(v1::SessionService::Stub* stub, const std::string& session_id,
                     std::vector<v1::Event>* log) {
  v1::ListEventsRequest req;
  req.set_session_id(session_id);
  req.set_limit(1000);
  for (;;) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::ListEventsResponse resp;
    grpc::Status st = stub->ListEvents(&ctx, req, &resp);
    if (!st.ok()) return st;
    if (resp.events().empty()) return grpc::Status::OK;
    for (const v1::Event& e : resp.events()) log->push_back(e);
    req.set_after_seq(resp.next_after_seq());
  }
}

// How each turn in a log ended, and which turns each idempotency key started.
struct LogIndex {
  std::map<std::string, const v1::Event*> end;                     // turn_id -> end marker
  std::map<std::string, std::vector<std::string>> started_by_key;  // key -> turn_ids, in order
  std::vector<std::string> started;                                // every turn_id, in order

  explicit LogIndex(const std::vector<v1::Event>& log) {
    for (const v1::Event& e : log) {
      if (e.type() == v1::EVENT_TYPE_TURN_STARTED) {
        started.push_back(e.turn().turn_id());
        if (!e.turn().idempotency_key().empty()) {
          started_by_key[e.turn().idempotency_key()].push_back(e.turn().turn_id());
        }
      } else if (e.type() == v1::EVENT_TYPE_TURN_COMPLETED ||
                 e.type() == v1::EVENT_TYPE_TURN_FAILED) {
        end[e.turn().turn_id()] = &e;
      }
    }
  }
  // Cut off by a crash: recovery recorded it failed.
  bool Interrupted(const std::string& turn_id) const {
    auto it = end.find(turn_id);
    return it != end.end() && it->second->type() == v1::EVENT_TYPE_TURN_FAILED &&
           it->second->turn().error() == kRecoveredError;
  }
};

class CrashRun {
 public:
  explicit CrashRun(const CrashOptions& options) : o_(options), rng_(options.seed) {}

  CrashReport Run();

 private:
  struct SessionState {
    std::string id;
    std::vector<Acked> acked;
    std::optional<v1::RunTurnRequest> unacked;  // the request whose answer the kill cut off
  };

  void Fail(std::string message) {
    if (report_.failures.size() < kMaxFailures) report_.failures.push_back(std::move(message));
  }
  bool Setup(ChildServer* server);
  void LoadUntilKill(ChildServer* server, int cycle);
  void Check(ChildServer* server, bool retry_unacked);
  void CheckSession(v1::SessionService::Stub* stub, SessionState* s, bool retry_unacked);
  void Retry(v1::SessionService::Stub* stub, SessionState* s, const LogIndex& index);

  const CrashOptions o_;
  std::mt19937 rng_;
  absl::Mutex mu_;
  std::vector<SessionState> sessions_;  // workers touch only their own entry, under mu_
  int64_t acked_this_cycle_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> lost_ids_, duplicate_keys_, interrupted_ids_;
  CrashReport report_;
};

bool CrashRun::Setup(ChildServer* server) {
  auto channel = server->NewChannel();
  auto agents = v1::AgentService::NewStub(channel);
  auto sessions = v1::SessionService::NewStub(channel);
  const int total = o_.echo_sessions + o_.slow_sessions;
  for (int i = 0; i < total; ++i) {
    const bool slow = i >= o_.echo_sessions;
    v1::CreateAgentRequest ca;
    ca.mutable_agent()->set_agent_id(absl::StrCat("crash-agent-", i));
    ca.mutable_agent()->set_model(slow ? "slow" : "echo");
    v1::Agent agent;
    grpc::ClientContext actx;
    grpc::Status st = agents->CreateAgent(&actx, ca, &agent);
    EXPECT_TRUE(st.ok()) << "CreateAgent: " << st.error_message();
    if (!st.ok()) return false;
    v1::CreateSessionRequest cs;
    cs.set_agent_id(agent.agent_id());
    cs.set_session_id(absl::StrCat(slow ? "slow-" : "echo-", i));
    v1::Session s;
    grpc::ClientContext sctx;
    st = sessions->CreateSession(&sctx, cs, &s);
    EXPECT_TRUE(st.ok()) << "CreateSession: " << st.error_message();
    if (!st.ok()) return false;
    sessions_.push_back({s.session_id(), {}, std::nullopt});
  }
  return true;
}

// Each session gets one worker running turns back to back until the kill cuts its RPC off.
void CrashRun::LoadUntilKill(ChildServer* server, int cycle) {
  auto channel = server->NewChannel();
  std::atomic<bool> stop{false};
  {
    absl::MutexLock lock(&mu_);
    acked_this_cycle_ = 0;
  }
  std::vector<std::thread> workers;
  for (size_t i = 0; i < sessions_.size(); ++i) {
    workers.emplace_back([&, i] {
      auto stub = v1::SessionService::NewStub(channel);
      SessionState& s = sessions_[i];
      for (int n = 0; !stop.load(); ++n) {
        v1::RunTurnRequest req;
        req.set_session_id(s.id);
        req.set_idempotency_key(absl::StrCat("c", cycle, "-s", i, "-t", n));
        req.add_input()->set_text(absl::StrCat("turn ", n, " of cycle ", cycle, " on ", s.id));
        {
          absl::MutexLock lock(&mu_);
          s.unacked = req;
        }
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
        v1::TurnResult r;
        grpc::Status st = stub->RunTurn(&ctx, req, &r);
        absl::MutexLock lock(&mu_);
        if (!st.ok()) {
          ++report_.rpc_errors[CodeName(st.error_code())];
          return;  // the server died (or refused): the request stays unacknowledged
        }
        s.acked.push_back(FromResult(r));
        s.unacked.reset();
        ++report_.acked_turns;
        ++acked_this_cycle_;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(
      std::uniform_int_distribution<int>(o_.min_kill_ms, o_.max_kill_ms)(rng_)));
  if (o_.min_acks_before_kill > 0) {
    absl::MutexLock lock(&mu_);
    auto enough = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return acked_this_cycle_ >= o_.min_acks_before_kill;
    };
    if (!mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(20))) {
      Fail(absl::StrCat("cycle ", cycle, ": fewer than ", o_.min_acks_before_kill,
                        " turns acknowledged in 20 s"));
    }
  }
  server->Kill();  // kill -9
  stop = true;
  for (std::thread& t : workers) t.join();
}

void CrashRun::Check(ChildServer* server, bool retry_unacked) {
  auto stub = v1::SessionService::NewStub(server->NewChannel());
  absl::MutexLock lock(&mu_);
  for (SessionState& s : sessions_) CheckSession(stub.get(), &s, retry_unacked);
}

void CrashRun::CheckSession(v1::SessionService::Stub* stub, SessionState* s, bool retry_unacked) {
  std::vector<v1::Event> log;
  grpc::Status st = ReadLog(stub, s->id, &log);
  if (!st.ok()) {
    Fail(absl::StrCat(s->id, ": ListEvents failed: ", st.error_message()));
    ++report_.gap_sessions;
    return;
  }
  v1::GetSessionRequest gs;
  gs.set_session_id(s->id);
  v1::Session session;
  grpc::ClientContext gctx;
  st = stub->GetSession(&gctx, gs, &session);
  if (!st.ok()) {
    Fail(absl::StrCat(s->id, ": GetSession failed: ", st.error_message()));
    ++report_.gap_sessions;
    return;
  }
  // Gap-free from 1, ending at last_seq.
  bool gap = session.last_seq() != static_cast<int64_t>(log.size());
  for (size_t k = 0; k < log.size() && !gap; ++k) gap = log[k].seq() != static_cast<int64_t>(k + 1);
  if (gap) {
    ++report_.gap_sessions;
    Fail(absl::StrCat(s->id, ": seqs not gap-free from 1 to last_seq ", session.last_seq(), " (",
                      log.size(), " events)"));
  }
  const LogIndex index(log);
  if (session.status() == v1::SESSION_STATUS_RUNNING) {
    ++report_.stuck_running;
    Fail(absl::StrCat(s->id, ": RUNNING after restart"));
  }
  for (const std::string& turn_id : index.started) {
    if (index.end.count(turn_id) == 0) {
      ++report_.stuck_running;
      Fail(absl::StrCat(s->id, ": turn ", turn_id, " started and never ended"));
    }
    if (index.Interrupted(turn_id)) interrupted_ids_.insert(turn_id);
  }
  // Every acknowledged turn, byte-identical at the seqs its result named.
  for (const Acked& a : s->acked) {
    ++report_.acked_checks;
    bool same = a.first_seq >= 1 && !a.events.empty();
    for (size_t k = 0; same && k < a.events.size(); ++k) {
      const size_t idx = static_cast<size_t>(a.first_seq - 1) + k;
      same = idx < log.size() && log[idx].SerializeAsString() == a.events[k];
    }
    if (!same && lost_ids_.insert(a.turn_id).second) {
      Fail(absl::StrCat(s->id, ": acknowledged turn ", a.turn_id, " (seq ", a.first_seq, "..",
                        a.first_seq + static_cast<int64_t>(a.events.size()) - 1,
                        ") is missing or changed; the log has ", log.size(), " events"));
    }
  }
  // An idempotency key has at most one turn that a crash did not cut off.
  for (const auto& [key, turns] : index.started_by_key) {
    int whole = 0;
    for (const std::string& t : turns) whole += index.Interrupted(t) ? 0 : 1;
    if (whole > 1 && duplicate_keys_.insert(key).second) {
      Fail(absl::StrCat(s->id, ": idempotency key ", key, " ran ", whole, " times"));
    }
  }
  if (retry_unacked && s->unacked) Retry(stub, s, index);
}

void CrashRun::Retry(v1::SessionService::Stub* stub, SessionState* s, const LogIndex& index) {
  const v1::RunTurnRequest req = *s->unacked;
  s->unacked.reset();
  ++report_.retries;
  std::string completed;  // the key's turn that had completed before the kill, if any
  auto prior = index.started_by_key.find(req.idempotency_key());
  if (prior != index.started_by_key.end()) {
    for (const std::string& t : prior->second) {
      if (!index.Interrupted(t)) completed = t;
    }
  }
  v1::TurnResult r1, r2;
  grpc::Status st1, st2;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    st1 = stub->RunTurn(&ctx, req, &r1);
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    st2 = stub->RunTurn(&ctx, req, &r2);
  }
  if (!st1.ok() || !st2.ok() || r1.SerializeAsString() != r2.SerializeAsString()) {
    ++report_.retry_mismatches;
    Fail(absl::StrCat(s->id, ": retries of ", req.idempotency_key(), " answered ",
                      CodeName(st1.error_code()), " ", st1.error_message(), " then ",
                      CodeName(st2.error_code()), " ", st2.error_message(),
                      st1.ok() && st2.ok() ? " with different results" : ""));
    return;
  }
  if (!completed.empty()) {
    ++report_.retries_replayed;
    if (r1.turn_id() != completed && duplicate_keys_.insert(req.idempotency_key()).second) {
      Fail(absl::StrCat(s->id, ": key ", req.idempotency_key(), " had completed as ", completed,
                        " but the retry ran again as ", r1.turn_id()));
    }
  } else {
    ++report_.retries_ran;
    // The kill cut this key's first attempt off mid-turn (recovery recorded it failed); the
    // retry ran it again, as documented for calls that ended non-OK.
    if (prior != index.started_by_key.end()) ++report_.retries_after_interrupt;
  }
  s->acked.push_back(FromResult(r1));
  ++report_.acked_turns;
}

CrashReport CrashRun::Run() {
  const auto start = std::chrono::steady_clock::now();
  FakeOpenAiServer fake;
  FakeReply reply;
  reply.text = "slow answer";
  reply.latency_ms = o_.model_latency_ms;
  fake.SetDefault(reply);
  fake.set_record_requests(false);
  TempDir dir;
  const std::string config_path = dir.Sub("agentd.yaml");
  {
    std::ofstream cfg(config_path);
    cfg << "durability: " << o_.durability << "\n"
        << "backends:\n"
        << "  - { name: fake, type: openai, base_url: \"" << fake.base_url()
        << "\", timeout_ms: 10000 }\n"
        << "models:\n"
        << "  - name: slow\n"
        << "    deployments: [{ backend: fake, model: fake-model }]\n";
  }
  ChildServer server(dir.Sub("data"), FreePort(), {"--config", config_path});
  if (!server.Start()) {
    ADD_FAILURE() << "agentd did not start";
    return report_;
  }
  if (!Setup(&server)) return report_;
  if (o_.clean_restart_after_setup) {
    const int status = server.SignalAndWait(SIGTERM, 30000);
    EXPECT_EQ(status, 0) << "agentd did not exit cleanly on SIGTERM";
    if (!server.Start()) {
      ADD_FAILURE() << "agentd did not restart after SIGTERM";
      return report_;
    }
  }
  for (int cycle = 0; cycle < o_.cycles; ++cycle) {
    LoadUntilKill(&server, cycle);
    if (!server.Start()) {
      ADD_FAILURE() << "agentd did not restart after kill -9 in cycle " << cycle;
      return report_;
    }
    Check(&server, /*retry_unacked=*/true);
    ++report_.cycles;
  }
  // The retried turns of the last cycle get checked too.
  Check(&server, /*retry_unacked=*/false);
  report_.lost = static_cast<int64_t>(lost_ids_.size());
  report_.duplicates = static_cast<int64_t>(duplicate_keys_.size());
  report_.interrupted_turns = static_cast<int64_t>(interrupted_ids_.size());
  report_.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report_;
}

}  // namespace

std::string CrashReport::Summary(const std::string& label) const {
  std::ostringstream out;
  out << "crash test (" << label << "): " << cycles << " kill -9 cycles, " << acked_turns
      << " acknowledged turns (" << acked_checks << " checks), lost " << lost << ", duplicates "
      << duplicates << ", seq gaps " << gap_sessions << ", stuck RUNNING " << stuck_running
      << ", retries " << retries << " (" << retries_replayed << " replayed, " << retries_ran
      << " ran, " << retries_after_interrupt << " of them after an interrupted attempt, "
      << retry_mismatches << " mismatched), interrupted turns recovered " << interrupted_turns
      << ", wall " << static_cast<int>(wall_seconds * 10) / 10.0 << " s";
  if (!rpc_errors.empty()) {
    out << "; load RPC errors:";
    for (const auto& [code, n] : rpc_errors) out << " " << code << "=" << n;
  }
  return out.str();
}

CrashReport RunCrashCycles(const CrashOptions& options) { return CrashRun(options).Run(); }

int CyclesFromEnv(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n <= 0 || n > 1000000) {
    ADD_FAILURE() << name << " must be a positive integer, got \"" << v << "\"";
    return fallback;
  }
  return static_cast<int>(n);
}

}  // namespace agentd::testing
