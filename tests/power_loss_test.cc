// Power loss under load: the whole runtime (RocksDbStore + SessionManager, echo model, no gRPC)
// runs turns on several sessions from several threads over PowerLossFs
// (tests/reliability/power_loss_fs.h). At a random moment the power goes (Crash()): every later
// write and sync fails. The runtime is torn down, the data dir is cut back to what a power loss
// would have left (DropUnsyncedData()), and a new runtime boots on it, recovering as agentd does at
// startup (SessionManager::RecoverInterruptedTurns). Then, for every session:
//  - every event of every acknowledged turn (its RunTurn result came back OK) is stored, identical;
//  - every event read back after an earlier recovery is still there, identical;
//  - seqs are 1..last_seq without a gap, and the session is not RUNNING.
// With `durability: sync` nothing acknowledged may be lost. The control runs the same checker with
// `durability: relaxed` (WAL written, not fsynced) and must find lost acknowledged turns, so the
// check can fail.
//
// CI runs AGENTD_POWER_LOSS_CYCLES cycles (default 100) and 10 control cycles;
// AGENTD_POWER_LOSS_SEED picks the crash moments.
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "backend/model_router.h"
#include "reliability/power_loss_fs.h"
#include "rocksdb/env.h"
#include "runtime/agent_manager.h"
#include "runtime/event_hub.h"
#include "runtime/executor.h"
#include "runtime/history_cache.h"
#include "runtime/session_manager.h"
#include "store/rocksdb_store.h"
#include "testing/temp_dir.h"

namespace agentd {
namespace {

using google::protobuf::util::MessageDifferencer;
using testing::PowerLossFs;

constexpr char kProject[] = "power";
constexpr int kSessions = 8;
constexpr int kThreads = 4;

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v == nullptr ? fallback : std::atoi(v);
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

/// One boot of the runtime on the data dir, over a fresh PowerLossFs. Members are destroyed in
/// reverse order: the session manager before the executor, the store last.
struct Boot {
  std::shared_ptr<PowerLossFs> fs;
  std::unique_ptr<store::RocksDbStore> store;
  std::unique_ptr<backend::ModelRouter> router;
  std::unique_ptr<runtime::EventHub> hub;
  std::unique_ptr<runtime::HistoryCache> history;
  std::unique_ptr<runtime::Executor> executor;
  std::unique_ptr<runtime::SessionManager> sessions;
  std::unique_ptr<runtime::AgentManager> agents;

  ~Boot() {
    if (sessions != nullptr) sessions->Drain(absl::Seconds(2));
    agents.reset();
    sessions.reset();
    executor.reset();
    history.reset();
    hub.reset();
    router.reset();
    // Closing a database whose device died: RocksDB reports the failed writes from Close (the
    // store ignores them) and exits cleanly; the WAL on "disk" is what DropUnsyncedData() keeps.
    store.reset();
  }
};

absl::StatusOr<std::unique_ptr<Boot>> StartBoot(const std::string& dir,
                                                store::Durability durability) {
  auto boot = std::make_unique<Boot>();
  boot->fs = std::make_shared<PowerLossFs>();
  store::RocksDbStoreOptions so;
  so.path = dir;
  so.durability = durability;
  so.env = std::shared_ptr<rocksdb::Env>(rocksdb::NewCompositeEnv(boot->fs));
  auto opened = store::RocksDbStore::Open(so);
  if (!opened.ok()) return opened.status();
  boot->store = *std::move(opened);
  boot->router = std::make_unique<backend::ModelRouter>();
  boot->hub = std::make_unique<runtime::EventHub>();
  boot->history = std::make_unique<runtime::HistoryCache>(64);
  boot->executor = std::make_unique<runtime::Executor>(4);
  runtime::TurnDeps deps;
  deps.store = boot->store.get();
  deps.router = boot->router.get();
  deps.hub = boot->hub.get();
  deps.history = boot->history.get();
  deps.executor = boot->executor.get();
  boot->sessions = std::make_unique<runtime::SessionManager>(deps);
  boot->agents = std::make_unique<runtime::AgentManager>(boot->store.get(), boot->router.get());
  // What agentd does at startup before serving.
  absl::Status st = boot->sessions->RecoverInterruptedTurns();
  if (!st.ok()) return st;
  return boot;
}

std::string SessionId(int i) { return absl::StrCat("pl-", i); }

struct Figures {
  int cycles = 0;
  int64_t acked_turns = 0;     // acknowledged turns checked after the power loss that followed
  int64_t cut_turns = 0;       // turns in flight when the power went (their RunTurn failed)
  int64_t lost_turns = 0;      // of those, turns with an event missing or changed
  int64_t lost_recovered = 0;  // events read back after an earlier recovery, then lost
  int64_t gaps = 0;            // sessions with a seq gap or a last_seq that does not match
  int64_t running = 0;         // sessions left RUNNING after recovery
  int64_t files_deleted = 0, files_truncated = 0, bytes_dropped = 0;
  std::vector<std::string> violations;  // the first few, for the log

  std::string Summary(const std::string& label) const {
    return absl::StrCat(label, ": ", cycles, " power losses, ", acked_turns,
                        " acknowledged turns checked, ", lost_turns, " lost (", cut_turns,
                        " turns cut off in flight), ", lost_recovered, " recovered events lost, ",
                        gaps, " gaps, ", running, " sessions RUNNING; dropped ", bytes_dropped,
                        " unsynced bytes (", files_truncated, " files truncated, ", files_deleted,
                        " deleted)");
  }
  void Violation(std::string what) {
    if (violations.size() < 20) violations.push_back(std::move(what));
  }
};

/// What the sessions must hold: per session, events by seq (recovered history and acknowledged
/// turns), and the acknowledged turns of the current cycle.
struct Expected {
  std::map<std::string, std::map<int64_t, v1::Event>> recovered;
  struct Turn {
    std::string session_id;
    v1::TurnResult result;
  };
  absl::Mutex mu;
  std::vector<Turn> acked ABSL_GUARDED_BY(mu);
};

/// Reads every event of a session through the store.
absl::StatusOr<std::vector<v1::Event>> ReadAll(store::ContextStore* store, const std::string& id) {
  std::vector<v1::Event> all;
  int64_t after = 0;
  for (;;) {
    auto page = store->ReadEvents(kProject, id, after, 1000);
    if (!page.ok()) return page.status();
    if (page->empty()) return all;
    after = page->back().seq();
    for (v1::Event& e : *page) all.push_back(std::move(e));
  }
}

/// Checks the recovered boot against `expected`, then makes what it read the new recovered
/// history (in the relaxed control, where losses are expected, the history moves on from there).
void Verify(Boot* boot, Expected* expected, Figures* f) {
  std::map<std::string, std::map<int64_t, v1::Event>> stored;
  for (int i = 0; i < kSessions; ++i) {
    const std::string id = SessionId(i);
    auto session = boot->sessions->Get(kProject, id);
    ASSERT_TRUE(session.ok()) << id << ": " << session.status();
    if (session->status() == v1::SESSION_STATUS_RUNNING) {
      ++f->running;
      f->Violation(absl::StrCat(id, " is RUNNING after recovery"));
    }
    auto events = ReadAll(boot->store.get(), id);
    ASSERT_TRUE(events.ok()) << id << ": " << events.status();
    int64_t want = 1;
    bool gap = false;
    for (const v1::Event& e : *events) {
      if (e.seq() != want) gap = true;
      want = e.seq() + 1;
      stored[id][e.seq()] = e;
    }
    if (gap || want - 1 != session->last_seq()) {
      ++f->gaps;
      f->Violation(absl::StrCat(id, ": seqs not 1..", session->last_seq(), " without gaps"));
    }
  }
  auto same = [&](const std::string& id, const v1::Event& e) {
    auto s = stored.find(id);
    if (s == stored.end()) return false;
    auto it = s->second.find(e.seq());
    return it != s->second.end() && MessageDifferencer::Equals(it->second, e);
  };
  for (const auto& [id, events] : expected->recovered) {
    for (const auto& [seq, e] : events) {
      if (same(id, e)) continue;
      ++f->lost_recovered;
      f->Violation(absl::StrCat(id, " seq ", seq, " (read back after a recovery) lost"));
    }
  }
  absl::MutexLock lock(&expected->mu);
  for (const Expected::Turn& t : expected->acked) {
    ++f->acked_turns;
    for (const v1::Event& e : t.result.events()) {
      if (same(t.session_id, e)) continue;
      ++f->lost_turns;
      f->Violation(absl::StrCat(t.session_id, " turn ", t.result.turn_id(), " seq ", e.seq(),
                                " acknowledged, then lost"));
      break;
    }
  }
  expected->acked.clear();
  expected->recovered = std::move(stored);
}

/// Turns on the sessions of thread `t` (sessions t, t + kThreads, ...) until the power goes.
void Load(Boot* boot, int t, uint32_t seed, Expected* expected, std::atomic<int64_t>* acked,
          std::atomic<int64_t>* cut) {
  std::mt19937 rng(seed);
  for (int n = 0; !boot->fs->crashed(); ++n) {
    const std::string id =
        SessionId(t + kThreads * static_cast<int>(rng() % (kSessions / kThreads)));
    v1::RunTurnRequest req;
    req.set_session_id(id);
    v1::InputMessage* in = req.add_input();
    in->set_role(v1::ROLE_USER);
    in->set_text(absl::StrCat("thread ", t, " turn ", n, " ", std::string(rng() % 300, 'x')));
    auto observer = std::make_shared<WaitObserver>();
    boot->sessions->SubmitTurn(kProject, std::move(req), absl::Now() + absl::Seconds(20), observer);
    observer->Wait();
    if (!observer->status().ok()) {  // not acknowledged: may or may not be stored
      cut->fetch_add(1);
      continue;
    }
    absl::MutexLock lock(&expected->mu);
    expected->acked.push_back({id, observer->result()});
    acked->fetch_add(1);
  }
}

Figures RunCycles(int cycles, store::Durability durability, uint32_t seed) {
  Figures f;
  testing::TempDir tmp;
  const std::string dir = tmp.Sub("data");
  Expected expected;
  {
    // Setup, durably: the agent and the sessions (a clean shutdown, then a power loss at rest).
    auto boot = StartBoot(dir, store::Durability::kSync);
    EXPECT_TRUE(boot.ok()) << boot.status();
    if (!boot.ok()) return f;
    v1::Agent spec;
    spec.set_model("echo");
    auto agent = (*boot)->agents->Create(kProject, spec);
    EXPECT_TRUE(agent.ok()) << agent.status();
    for (int i = 0; i < kSessions; ++i) {
      v1::CreateSessionRequest create;
      create.set_agent_id(agent->agent_id());
      create.set_session_id(SessionId(i));
      auto s = (*boot)->sessions->Create(kProject, create);
      EXPECT_TRUE(s.ok()) << s.status();
    }
    std::shared_ptr<PowerLossFs> fs = (*boot)->fs;
    boot->reset();
    EXPECT_TRUE(fs->DropUnsyncedData().ok());
  }
  std::mt19937 rng(seed);
  for (int c = 0; c < cycles; ++c) {
    auto boot = StartBoot(dir, durability);
    EXPECT_TRUE(boot.ok()) << "cycle " << c << ": " << boot.status();
    if (!boot.ok()) return f;
    Verify(boot->get(), &expected, &f);
    ++f.cycles;
    if (::testing::Test::HasFatalFailure()) return f;

    std::atomic<int64_t> acked{0}, cut{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back(Load, boot->get(), t, static_cast<uint32_t>(rng()), &expected, &acked,
                           &cut);
    }
    // The power goes at a random moment once the load is under way (at least one turn
    // acknowledged, so every cycle has something to lose).
    const absl::Time until = absl::Now() + absl::Seconds(10);
    while (acked.load() == 0 && absl::Now() < until) absl::SleepFor(absl::Milliseconds(1));
    absl::SleepFor(absl::Microseconds(static_cast<int64_t>(rng() % 60000)));
    std::shared_ptr<PowerLossFs> fs = (*boot)->fs;
    fs->Crash();
    for (std::thread& th : threads) th.join();
    f.cut_turns += cut.load();
    boot->reset();  // tear the runtime down (its writes fail: the device is dead)
    auto dropped = fs->DropUnsyncedData();
    EXPECT_TRUE(dropped.ok()) << dropped.status();
    if (!dropped.ok()) return f;
    f.files_deleted += dropped->files_deleted;
    f.files_truncated += dropped->files_truncated;
    f.bytes_dropped += static_cast<int64_t>(dropped->bytes_dropped);
  }
  // The last power loss is checked by one more boot.
  auto boot = StartBoot(dir, durability);
  EXPECT_TRUE(boot.ok()) << boot.status();
  if (boot.ok()) Verify(boot->get(), &expected, &f);
  return f;
}

void Print(const Figures& f, const std::string& label, uint32_t seed) {
  std::printf("%s (seed %u)\n", f.Summary(label).c_str(), seed);
  for (const std::string& v : f.violations) std::printf("  violation: %s\n", v.c_str());
  std::fflush(stdout);
}

uint32_t Seed() { return static_cast<uint32_t>(EnvInt("AGENTD_POWER_LOSS_SEED", 4242)); }

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The model itself, file by file: what survives the crash is what was synced, in entries that
// were made durable.
TEST(PowerLossFsTest, KeepsExactlyWhatWasSynced) {
  testing::TempDir tmp;
  const std::string dir = tmp.Sub("fs");
  ASSERT_TRUE(std::filesystem::create_directories(dir));
  // A file that existed before the wrapper: durable as it is.
  { std::ofstream(dir + "/old") << "old contents"; }
  PowerLossFs fs;
  const rocksdb::IOOptions io;
  auto write = [&](const std::string& name, const std::string& data, bool sync) {
    std::unique_ptr<rocksdb::FSWritableFile> f;
    EXPECT_TRUE(fs.NewWritableFile(dir + "/" + name, rocksdb::FileOptions(), &f, nullptr).ok());
    EXPECT_TRUE(f->Append(data, io, nullptr).ok());
    if (sync) {
      EXPECT_TRUE(f->Sync(io, nullptr).ok());
    }
    return f;
  };
  std::unique_ptr<rocksdb::FSDirectory> d;
  ASSERT_TRUE(fs.NewDirectory(dir, io, &d, nullptr).ok());

  auto log = write("log", "synced;", true);
  ASSERT_TRUE(log->Append("flushed only;", io, nullptr).ok());
  ASSERT_TRUE(log->Flush(io, nullptr).ok());
  ASSERT_TRUE(log->RangeSync(0, 100, io, nullptr).ok());  // sync_file_range: not durable
  auto unsynced = write("unsynced", "never synced", false);
  ASSERT_TRUE(d->Fsync(io, nullptr).ok());  // "log" and "unsynced" entries are durable now
  // A rename persists with the creations before it (CURRENT.tmp, early); not with later ones.
  auto early = write("early", "created before the rename", false);
  auto tmp_file = write("CURRENT.tmp", "manifest-1", true);
  ASSERT_TRUE(fs.RenameFile(dir + "/CURRENT.tmp", dir + "/CURRENT", io, nullptr).ok());
  auto orphan = write("orphan", "synced, but its entry never was", true);

  fs.Crash();
  EXPECT_TRUE(log->Append("after the crash", io, nullptr).IsIOError());
  EXPECT_TRUE(log->Sync(io, nullptr).IsIOError());
  EXPECT_TRUE(d->Fsync(io, nullptr).IsIOError());
  std::unique_ptr<rocksdb::FSWritableFile> late;
  EXPECT_TRUE(
      fs.NewWritableFile(dir + "/late", rocksdb::FileOptions(), &late, nullptr).IsIOError());
  EXPECT_TRUE(fs.DeleteFile(dir + "/old", io, nullptr).IsIOError());
  EXPECT_TRUE(fs.RenameFile(dir + "/log", dir + "/log2", io, nullptr).IsIOError());
  log.reset();
  unsynced.reset();
  orphan.reset();
  early.reset();
  tmp_file.reset();

  auto dropped = fs.DropUnsyncedData();
  ASSERT_TRUE(dropped.ok()) << dropped.status();
  EXPECT_EQ(Slurp(dir + "/log"), "synced;");
  EXPECT_EQ(Slurp(dir + "/unsynced"), "");
  EXPECT_FALSE(std::filesystem::exists(dir + "/orphan"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/late"));
  // The rename persisted, carrying the creation before it; the source name is gone.
  EXPECT_EQ(Slurp(dir + "/CURRENT"), "manifest-1");
  EXPECT_FALSE(std::filesystem::exists(dir + "/CURRENT.tmp"));
  EXPECT_EQ(Slurp(dir + "/old"), "old contents");
  EXPECT_EQ(Slurp(dir + "/early"), "");    // its entry persisted, its data was never synced
  EXPECT_EQ(dropped->files_deleted, 1);    // orphan
  EXPECT_EQ(dropped->files_truncated, 3);  // log, unsynced, early
  EXPECT_EQ(dropped->bytes_dropped, std::string("flushed only;").size() +
                                        std::string("never synced").size() +
                                        std::string("created before the rename").size() +
                                        std::string("synced, but its entry never was").size());
}

TEST(PowerLossTest, SyncDurabilityLosesNoAcknowledgedTurn) {
  const int cycles = EnvInt("AGENTD_POWER_LOSS_CYCLES", 100);
  const Figures f = RunCycles(cycles, store::Durability::kSync, Seed());
  Print(f, "durability sync", Seed());
  EXPECT_EQ(f.cycles, cycles);
  EXPECT_GE(f.acked_turns, cycles);  // every cycle acknowledged at least one turn
  EXPECT_GT(f.cut_turns, 0);         // the power went while turns were being written
  EXPECT_EQ(f.lost_turns, 0);
  EXPECT_EQ(f.lost_recovered, 0);
  EXPECT_EQ(f.gaps, 0);
  EXPECT_EQ(f.running, 0);
}

// The control: the same load and checker with the WAL not fsynced must find lost acknowledged
// turns (a checker that cannot fail proves nothing).
TEST(PowerLossTest, RelaxedDurabilityControlDetectsLosses) {
  const int cycles = EnvInt("AGENTD_POWER_LOSS_CONTROL_CYCLES", 10);
  const Figures f = RunCycles(cycles, store::Durability::kRelaxed, Seed() + 1);
  Print(f, "durability relaxed (control)", Seed() + 1);
  EXPECT_EQ(f.cycles, cycles);
  EXPECT_GT(f.lost_turns, 0);
  // Losing whole turns from the end of the log leaves no gap and no RUNNING session.
  EXPECT_EQ(f.gaps, 0);
  EXPECT_EQ(f.running, 0);
}

}  // namespace
}  // namespace agentd
