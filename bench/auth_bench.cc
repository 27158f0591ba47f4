// auth_bench: what the Projects API costs per call and per step, measured side by side.
//
//  1. Authenticator::Check (parse the bearer key, read its record, salted SHA-256, constant-time
//     compare, role table) against a RocksDB store holding `--keys` keys; p50/p99 in µs.
//  2. CommitSessionWrite of one step (3 events) with durability sync, without and with the
//     step's four usage counters (merge operands in the same batch), interleaved; p50 in µs.
//     If usage cost an extra fsync the second column would be about twice the first.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "bench_util.h"
#include "auth/api_key.h"
#include "auth/audit.h"
#include "auth/authenticator.h"
#include "auth/bootstrap.h"
#include "auth/limits.h"
#include "auth/project_manager.h"
#include "common/ids.h"
#include "store/rocksdb_store.h"

namespace agentd {
namespace {

using bench::MicrosSince;
using bench::Percentile;

int Run(int keys, int calls, int commits, const std::string& dir) {
  std::filesystem::remove_all(dir);
  store::RocksDbStoreOptions so;
  so.path = dir;
  so.durability = store::Durability::kSync;
  auto opened = store::RocksDbStore::Open(so);
  if (!opened.ok()) {
    std::fprintf(stderr, "open: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<store::RocksDbStore> db = *std::move(opened);
  auth::BootstrapOptions bo;
  bo.data_dir = dir;
  bo.bootstrap_key = "agd-bench-bootstrap-admin-key-0001";
  if (auto st = auth::EnsureBootstrap(db.get(), bo); !st.ok()) {
    std::fprintf(stderr, "bootstrap: %s\n", st.ToString().c_str());
    return 1;
  }
  auth::AuditLog audit(db.get());
  auth::LimitEnforcer limits(db.get());
  auth::ProjectManager projects(db.get(), &limits);
  auth::Authenticator authn(db.get(), &audit);
  auth::Identity op;
  op.project_id = "default";
  op.role = v1::API_KEY_ROLE_ADMIN;
  auth::CallInfo info{"CreateApiKey", "req_bench", "bench"};
  std::vector<std::string> secrets;
  for (int i = 0; i < keys; ++i) {
    v1::CreateApiKeyRequest req;
    req.set_role(v1::API_KEY_ROLE_MEMBER);
    req.set_name("bench");
    auto k = projects.CreateApiKey(op, info, req);
    if (!k.ok()) {
      std::fprintf(stderr, "create key: %s\n", k.status().ToString().c_str());
      return 1;
    }
    secrets.push_back("Bearer " + k->secret());
  }

  // 1. Authentication + authorization per call.
  std::vector<double> auth_us;
  auth_us.reserve(calls);
  const auth::CallInfo call{"RunTurn", "req_bench", "bench"};
  for (int i = 0; i < calls; ++i) {
    const std::string& header = secrets[static_cast<size_t>(i) % secrets.size()];
    auto t0 = std::chrono::steady_clock::now();
    auto id = authn.Check(header, call);
    auth_us.push_back(MicrosSince(t0));
    if (!id.ok()) {
      std::fprintf(stderr, "check: %s\n", id.status().ToString().c_str());
      return 1;
    }
  }

  // 2. One step's commit, fsynced, without and with usage counters, interleaved.
  v1::Agent agent;
  agent.set_agent_id("agent");
  agent.set_version(1);
  agent.set_model("echo");
  if (auto st = db->PutAgentVersion("default", agent, 0); !st.ok()) return 1;
  storage::SessionRecord rec;
  rec.mutable_session()->set_session_id("s");
  rec.mutable_session()->set_agent_id("agent");
  rec.mutable_session()->set_agent_version(1);
  if (auto st = db->CreateSession("default", rec); !st.ok()) return 1;
  rec.set_revision(1);
  int64_t seq = 0;
  std::vector<double> plain_us, usage_us;
  v1::Usage usage;
  usage.set_input_tokens(2000);
  usage.set_output_tokens(300);
  usage.set_model_calls(1);
  usage.set_cost_usd(0.0005);
  const int32_t day = auth::DayOf(absl::Now());
  for (int i = 0; i < commits * 2; ++i) {
    store::SessionWrite w;
    w.project_id = "default";
    w.session_id = "s";
    w.expected_revision = rec.revision();
    for (int e = 0; e < 3; ++e) {
      v1::Event& ev = w.events.emplace_back();
      ev.set_session_id("s");
      ev.set_seq(++seq);
      ev.set_type(v1::EVENT_TYPE_MESSAGE);
      ev.mutable_message()->set_text(std::string(200, 'x'));
    }
    rec.mutable_session()->set_last_seq(seq);
    w.record = rec;
    const bool with_usage = (i % 2) == 1;
    if (with_usage) w.usage = auth::UsageDeltas("agent", "s", "echo", day, usage);
    auto t0 = std::chrono::steady_clock::now();
    auto st = db->CommitSessionWrite(w);
    (with_usage ? usage_us : plain_us).push_back(MicrosSince(t0));
    if (!st.ok()) {
      std::fprintf(stderr, "commit: %s\n", st.ToString().c_str());
      return 1;
    }
    rec.set_revision(rec.revision() + 1);
  }
  auto counters = db->ReadUsage("default", store::UsageDimension::kDay, day, day);
  const int64_t counted = counters.ok() && !counters->empty() ? (*counters)[0].usage.model_calls() : -1;

  std::printf("keys=%d calls=%d\n", keys, calls);
  std::printf("auth check (authenticate + authorize): p50 %.2f us  p99 %.2f us\n",
              Percentile(auth_us, 0.5), Percentile(auth_us, 0.99));
  std::printf("step commit, sync, %d each: without usage p50 %.1f us p99 %.1f us | with usage "
              "p50 %.1f us p99 %.1f us | ratio p50 %.2f\n",
              commits, Percentile(plain_us, 0.5), Percentile(plain_us, 0.99),
              Percentile(usage_us, 0.5), Percentile(usage_us, 0.99),
              Percentile(usage_us, 0.5) / Percentile(plain_us, 0.5));
  std::printf("usage counted: %lld model calls (expected %d)\n", static_cast<long long>(counted),
              commits);
  db.reset();
  std::filesystem::remove_all(dir);
  return counted == commits ? 0 : 1;
}

}  // namespace
}  // namespace agentd

int main(int argc, char** argv) {
  CLI::App app{"Cost of authentication and usage accounting"};
  int keys = 1000, calls = 200000, commits = 2000;
  std::string dir = "/tmp/agentd-auth-bench";
  app.add_option("--keys", keys, "API keys in the store");
  app.add_option("--calls", calls, "authenticated calls to time");
  app.add_option("--commits", commits, "step commits to time, with and without usage each");
  app.add_option("--dir", dir, "scratch data dir (deleted)");
  CLI11_PARSE(app, argc, argv);
  return agentd::Run(keys, calls, commits, dir);
}
