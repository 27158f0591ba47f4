// context_bench: is the cost of a model step flat with the length of the session?
//
// One session of an agent on the built-in echo model runs --turns turns back to back through the
// SessionManager (store, history cache, turn engine, context policy; no gRPC), each a USER
// message of --message-bytes bytes. The latency of each turn (one model step: context assembly,
// the echo call, one committed WriteBatch) is recorded; the report compares the p50 of the
// --window turns at the start with the p50 of the --window turns around turn --at (default 1000).
// With the context policy the window is bounded by --budget tokens, so the ratio should stay near
// 1; --budget 10000000 shows the cost of sending the whole history instead.
// The machine is shared and its speed drifts over a run (and the database grows), so inside both
// windows every iteration also times the first turn of a fresh session of the same agent: the
// report compares step 1,000 with step 1 of the long session and with step-1 turns measured in
// the same window of time.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "backend/model_router.h"
#include "bench_util.h"
#include "runtime/agent_manager.h"
#include "runtime/event_hub.h"
#include "runtime/executor.h"
#include "runtime/history_cache.h"
#include "runtime/session_manager.h"
#include "store/rocksdb_store.h"

namespace agentd {
namespace {

using bench::Percentile;

/// Bytes this process passed to write(2) and similar so far (/proc/self/io "wchar").
int64_t WrittenBytes() {
  std::ifstream in("/proc/self/io");
  std::string key;
  int64_t value = 0;
  while (in >> key >> value) {
    if (key == "wchar:") return value;
  }
  return 0;
}

class WaitObserver final : public runtime::TurnObserver {
 public:
  void OnFinish(const absl::Status& status, const v1::TurnResult& result) override {
    status_ = status;
    result_ = result;
    done_.Notify();
  }
  void Wait() { done_.WaitForNotification(); }
  const absl::Status& status() const { return status_; }
  const v1::TurnResult& result() const { return result_; }

 private:
  absl::Notification done_;
  absl::Status status_;
  v1::TurnResult result_;
};

struct Options {
  int turns = 1025;
  int at = 1000;
  int window = 50;
  int64_t budget = 4096;
  int message_bytes = 200;
  std::string durability = "sync";
  std::string strategy = "sliding";
  std::string dir = "/tmp/agentd-context-bench";
};

int Run(const Options& o) {
  std::filesystem::remove_all(o.dir);
  store::RocksDbStoreOptions so;
  so.path = o.dir;
  so.durability =
      o.durability == "relaxed" ? store::Durability::kRelaxed : store::Durability::kSync;
  auto opened = store::RocksDbStore::Open(so);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<store::RocksDbStore> db = *std::move(opened);
  backend::ModelRouter router;
  runtime::EventHub hub;
  runtime::HistoryCache history(64);
  runtime::Executor executor(2);
  runtime::TurnDeps deps;
  deps.store = db.get();
  deps.router = &router;
  deps.hub = &hub;
  deps.history = &history;
  deps.executor = &executor;
  runtime::SessionManager sessions(deps);
  runtime::AgentManager agents(db.get(), &router);

  const std::string project = "bench";
  v1::Agent spec;
  spec.set_model("echo");
  spec.set_instructions("You are a helpful assistant. Answer briefly.");
  spec.mutable_context_policy()->set_max_context_tokens(static_cast<int32_t>(o.budget));
  spec.mutable_context_policy()->set_strategy(o.strategy == "summarize"
                                                  ? v1::CONTEXT_STRATEGY_SUMMARIZE
                                                  : v1::CONTEXT_STRATEGY_SLIDING_WINDOW);
  auto agent = agents.Create(project, spec);
  if (!agent.ok()) {
    std::fprintf(stderr, "agent: %s\n", agent.status().ToString().c_str());
    return 1;
  }
  v1::CreateSessionRequest create;
  create.set_agent_id(agent->agent_id());
  auto session = sessions.Create(project, create);
  if (!session.ok()) {
    std::fprintf(stderr, "session: %s\n", session.status().ToString().c_str());
    return 1;
  }

  // Bytes of the events the turns appended, and bytes this process wrote (WAL, flushes,
  // compactions: everything RocksDB wrote goes through write(2) here).
  int64_t event_bytes = 0, turns_run = 0;
  const int64_t wchar_before = WrittenBytes();
  // Runs one turn of `session_id`; its latency in µs, or a negative value on failure.
  auto run_turn = [&](const std::string& session_id, int i, v1::TurnResult* result) -> double {
    v1::RunTurnRequest req;
    req.set_session_id(session_id);
    std::string text = absl::StrCat("turn ", i, ": ");
    text.resize(static_cast<size_t>(o.message_bytes), 'x');
    req.add_input()->set_text(text);
    auto observer = std::make_shared<WaitObserver>();
    const auto t0 = std::chrono::steady_clock::now();
    sessions.SubmitTurn(project, std::move(req), absl::Now() + absl::Seconds(30), observer);
    observer->Wait();
    const double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    if (!observer->status().ok() || observer->result().status() != v1::TURN_STATUS_COMPLETED) {
      std::fprintf(stderr, "turn %d: %s %s\n", i, observer->status().ToString().c_str(),
                   observer->result().error().c_str());
      return -1;
    }
    *result = observer->result();
    for (const v1::Event& e : result->events()) event_bytes += e.ByteSizeLong();
    ++turns_run;
    return us;
  };

  const int w = std::min(o.window, o.turns);
  const int from = std::clamp(o.at - w / 2, 0, o.turns - w);  // the later window: turns from+1..
  std::vector<double> micros, fresh_first, fresh_later;
  micros.reserve(o.turns);
  int64_t summaries = 0, last_seq = 0, input_tokens_last = 0;
  for (int i = 1; i <= o.turns; ++i) {
    v1::TurnResult result;
    const double us = run_turn(session->session_id(), i, &result);
    if (us < 0) return 1;
    micros.push_back(us);
    for (const v1::Event& e : result.events()) summaries += e.has_summary();
    last_seq = result.last_seq();
    input_tokens_last = result.usage().input_tokens();
    const bool in_first = i <= w, in_later = i > from && i <= from + w;
    if (!in_first && !in_later) continue;
    // Control: step 1 of a new session, at the same time.
    auto other = sessions.Create(project, create);
    if (!other.ok()) return 1;
    const double fresh_us = run_turn(other->session_id(), 1, &result);
    if (fresh_us < 0) return 1;
    (in_later ? fresh_later : fresh_first).push_back(fresh_us);
  }
  sessions.Drain(absl::Seconds(5));
  const int64_t written = WrittenBytes() - wchar_before;

  std::vector<double> first(micros.begin(), micros.begin() + w);
  std::vector<double> later(micros.begin() + from, micros.begin() + from + w);
  const double p50_first = Percentile(first, 0.5), p50_later = Percentile(later, 0.5);
  const double p50_control = Percentile(fresh_later, 0.5);
  std::printf(
      "context_bench: %d turns, durability %s, strategy %s, budget %lld tokens, "
      "messages %d bytes\n",
      o.turns, o.durability.c_str(), o.strategy.c_str(), static_cast<long long>(o.budget),
      o.message_bytes);
  std::printf("  session: %lld events, %lld SUMMARY events, last step's context %lld tokens\n",
              static_cast<long long>(last_seq), static_cast<long long>(summaries),
              static_cast<long long>(input_tokens_last));
  std::printf("  long session, turns 1..%d:         p50 %8.1f us  p90 %8.1f us\n", w, p50_first,
              Percentile(first, 0.9));
  std::printf("  long session, turns %d..%d:   p50 %8.1f us  p90 %8.1f us\n", from + 1, from + w,
              p50_later, Percentile(later, 0.9));
  std::printf("  fresh sessions' turn 1, first window: p50 %8.1f us\n",
              Percentile(fresh_first, 0.5));
  std::printf("  fresh sessions' turn 1, later window: p50 %8.1f us  p90 %8.1f us\n", p50_control,
              Percentile(fresh_later, 0.9));
  std::printf("  ratio step %d / step 1 (same session): %.2f\n", o.at, p50_later / p50_first);
  std::printf("  ratio step %d / step 1 (same time):    %.2f\n", o.at, p50_later / p50_control);
  std::printf("  storage written per turn: %.0f bytes (WAL, flushes, compactions; /proc/self/io "
              "wchar) for %.0f bytes of new events: %.2fx\n",
              static_cast<double>(written) / turns_run,
              static_cast<double>(event_bytes) / turns_run,
              static_cast<double>(written) / static_cast<double>(std::max<int64_t>(1, event_bytes)));
  std::filesystem::remove_all(o.dir);
  return 0;
}

}  // namespace
}  // namespace agentd

int main(int argc, char** argv) {
  agentd::Options o;
  CLI::App app{"context_bench: per-step latency at step 1 vs step N of one session"};
  app.add_option("--turns", o.turns, "turns to run (one model step each)");
  app.add_option("--at", o.at, "the later step to compare with step 1");
  app.add_option("--window", o.window, "turns per p50 window");
  app.add_option("--budget", o.budget, "ContextPolicy.max_context_tokens");
  app.add_option("--message-bytes", o.message_bytes, "bytes per user message");
  app.add_option("--durability", o.durability, "sync | relaxed")
      ->check(CLI::IsMember({"sync", "relaxed"}));
  app.add_option("--strategy", o.strategy, "sliding | summarize")
      ->check(CLI::IsMember({"sliding", "summarize"}));
  app.add_option("--dir", o.dir, "data dir (removed before and after)");
  CLI11_PARSE(app, argc, argv);
  return agentd::Run(o);
}
