// Export and import of sessions through the gRPC API of an in-process server: byte-identical
// round trips, forks exported self-contained, and every bad stream refused without a trace.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "common/time_util.h"
#include "runtime/session_manager.h"
#include "runtime/session_transfer.h"
#include "session_state_fixture.h"
#include "store/rocksdb_store.h"
#include "testing/server_harness.h"
#include "testing/temp_dir.h"

namespace agentd {
namespace {

using session_state_test::SessionStateTest;
using testing::Ctx;

// ---- Export / import -------------------------------------------------------------------------

TEST_F(SessionStateTest, ExportImportRoundTripsByteIdenticalEvents) {
  v1::Agent agent = h_.CreateAgent("echo", "Repeat after me.");
  const std::string sid = h_.CreateSession(agent.agent_id(), "exported").session_id();
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(sid, "hello", &r).ok());
  ASSERT_TRUE(h_.Send(sid, "again", &r).ok());
  v1::StateEntry e;
  ASSERT_TRUE(PutState(sid, "k", R"({"a":1})", 0, &e).ok());
  ASSERT_TRUE(PutState(sid, "k", R"({"a":2})", 0, &e).ok());
  const std::vector<v1::Event> original = h_.AllEvents(sid);

  grpc::Status st;
  const std::vector<v1::ExportChunk> chunks = Export(sid, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(chunks.size(), 2 + original.size() + 1);
  EXPECT_EQ(chunks[0].session().session_id(), sid);
  EXPECT_EQ(chunks[1].agent().agent_id(), agent.agent_id());
  EXPECT_EQ(chunks.back().state().value_json(), R"({"a":2})");

  // Into the same project after the original is gone: the same id, the same bytes.
  v1::DeleteSessionRequest del;
  del.set_session_id(sid);
  google::protobuf::Empty empty;
  ASSERT_TRUE(h_.sessions().DeleteSession(Ctx().get(), del, &empty).ok());
  v1::Session imported;
  st = Import(chunks, &imported);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(imported.session_id(), sid);
  EXPECT_EQ(imported.agent_id(), agent.agent_id());  // the agent version was reused
  EXPECT_EQ(imported.last_seq(), static_cast<int64_t>(original.size()));
  std::vector<v1::Event> back = h_.AllEvents(sid);
  ASSERT_EQ(back.size(), original.size());
  for (size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].SerializeAsString(), original[i].SerializeAsString()) << i;
  }
  v1::GetStateRequest get;
  get.set_session_id(sid);
  get.set_key("k");
  ASSERT_TRUE(h_.sessions().GetState(Ctx().get(), get, &e).ok());
  EXPECT_EQ(e.value_json(), R"({"a":2})");
  ASSERT_TRUE(h_.Send(sid, "after import", &r).ok());  // a working session
  EXPECT_EQ(r.output_text(), "after import");

  // Again while the id is taken: a new id; the events differ only in their session_id.
  st = Import(chunks, &imported);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_NE(imported.session_id(), sid);
  back = h_.AllEvents(imported.session_id());
  ASSERT_EQ(back.size(), original.size());
  for (size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].session_id(), imported.session_id());
    back[i].set_session_id(sid);
    EXPECT_EQ(back[i].SerializeAsString(), original[i].SerializeAsString()) << i;
  }

  // Into another project: the agent version is created there under its own id.
  auto projects = v1::ProjectService::NewStub(h_.channel());
  v1::CreateProjectRequest preq;
  preq.set_name("other");
  v1::Project other;
  ASSERT_TRUE(projects->CreateProject(Ctx().get(), preq, &other).ok());
  v1::CreateApiKeyRequest kreq;
  kreq.set_project_id(other.project_id());
  kreq.set_role(v1::API_KEY_ROLE_MEMBER);
  kreq.set_name("m");
  v1::CreateApiKeyResponse key;
  ASSERT_TRUE(projects->CreateApiKey(Ctx().get(), kreq, &key).ok());
  auto ctx = Ctx();
  ctx->AddMetadata("authorization", "Bearer " + key.secret());
  st = Import(chunks, &imported, ctx.get());
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(imported.session_id(), sid);
  EXPECT_EQ(imported.agent_id(), agent.agent_id());
  v1::GetAgentRequest ga;
  ga.set_agent_id(agent.agent_id());
  v1::Agent there;
  auto actx = Ctx();
  actx->AddMetadata("authorization", "Bearer " + key.secret());
  ASSERT_TRUE(h_.agents().GetAgent(actx.get(), ga, &there).ok());
  EXPECT_EQ(there.instructions(), "Repeat after me.");
}

TEST_F(SessionStateTest, ExportOfAForkIsSelfContained) {
  v1::Agent agent = h_.CreateAgent("echo");
  const std::string sid = h_.CreateSession(agent.agent_id()).session_id();
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(sid, "parent turn", &r).ok());
  v1::Session fork;
  ASSERT_TRUE(Fork(sid, 0, &fork, "the-fork").ok());
  ASSERT_TRUE(h_.Send("the-fork", "fork turn", &r).ok());
  grpc::Status st;
  std::vector<v1::ExportChunk> chunks = Export("the-fork", &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(chunks.size(), 2u + static_cast<size_t>(r.last_seq()));
  for (size_t i = 2; i < chunks.size(); ++i) {
    EXPECT_EQ(chunks[i].event().seq(), static_cast<int64_t>(i - 1));
    EXPECT_EQ(chunks[i].event().session_id(), "the-fork");
  }
  chunks[0].mutable_session()->set_session_id("");  // ask for a new id
  v1::Session imported;
  st = Import(chunks, &imported);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(imported.parent_session_id().empty());
  EXPECT_EQ(imported.fork_seq(), 0);
  EXPECT_EQ(h_.AllEvents(imported.session_id()).size(), static_cast<size_t>(r.last_seq()));
  EXPECT_EQ(Export("missing", &st).size(), 0u);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SessionStateTest, BadImportStreamsAreInvalidArgumentAndCreateNothing) {
  v1::Agent agent = h_.CreateAgent("echo");
  const std::string sid = h_.CreateSession(agent.agent_id()).session_id();
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(sid, "one", &r).ok());
  ASSERT_TRUE(h_.Send(sid, "two", &r).ok());
  grpc::Status st;
  const std::vector<v1::ExportChunk> good = Export(sid, &st);
  ASSERT_TRUE(st.ok());
  const std::vector<std::string> before = SessionIds();

  auto expect_rejected = [&](std::vector<v1::ExportChunk> chunks, const std::string& what) {
    // Under a new session id and a new agent id, so that anything created would show.
    for (v1::ExportChunk& c : chunks) {
      if (c.has_session()) {
        c.mutable_session()->set_session_id("");
        c.mutable_session()->set_agent_id("new-agent");
      } else if (c.has_agent()) {
        c.mutable_agent()->set_agent_id("new-agent");
      }
    }
    v1::Session s;
    grpc::Status got = Import(chunks, &s);
    EXPECT_EQ(got.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << what << ": " << got.error_message();
    EXPECT_EQ(SessionIds(), before) << what;
    v1::GetAgentRequest ga;
    ga.set_agent_id("new-agent");
    v1::Agent a;
    EXPECT_EQ(h_.agents().GetAgent(Ctx().get(), ga, &a).error_code(), grpc::StatusCode::NOT_FOUND)
        << what;
  };
  std::vector<v1::ExportChunk> chunks(good.begin() + 1, good.end());
  expect_rejected(chunks, "no session chunk");
  chunks = good;
  chunks.erase(chunks.begin() + 3);
  expect_rejected(chunks, "gap in seqs");
  chunks = good;
  std::swap(chunks[2], chunks[3]);
  expect_rejected(chunks, "seqs out of order");
  chunks = good;
  chunks.pop_back();
  expect_rejected(chunks, "fewer events than last_seq");
  chunks = good;
  chunks.erase(chunks.begin() + 1);
  expect_rejected(chunks, "no agent chunk");
  chunks = good;
  chunks[4].mutable_event()->set_session_id("someone-else");
  expect_rejected(chunks, "event of another session");
  chunks = good;
  chunks[0].mutable_session()->set_status(v1::SESSION_STATUS_RUNNING);
  expect_rejected(chunks, "running session");
  // Timestamps outside Timestamp's range would break every JSON listing of the project.
  chunks = good;
  *chunks[0].mutable_session()->mutable_expire_time() = ToProto(absl::Now() + absl::Hours(1));
  chunks[0].mutable_session()->mutable_expire_time()->set_nanos(2000000000);
  expect_rejected(chunks, "expire_time nanos out of range");
  chunks[0].mutable_session()->mutable_expire_time()->set_nanos(0);
  chunks[0].mutable_session()->mutable_expire_time()->set_seconds(253402300800LL + 86400);
  expect_rejected(chunks, "expire_time after 9999");
  chunks[0].mutable_session()->mutable_expire_time()->set_seconds(
      absl::ToUnixSeconds(absl::Now()) + 20LL * 365 * 24 * 3600);
  expect_rejected(chunks, "expire_time past the TTL cap");
  chunks = good;
  chunks[0].mutable_session()->mutable_create_time()->set_seconds(-62135596801LL);
  expect_rejected(chunks, "create_time before year 1");
  chunks = good;
  chunks[4].mutable_event()->mutable_time()->set_nanos(-1);
  expect_rejected(chunks, "event time nanos out of range");
  chunks = good;
  v1::ExportChunk bad_state;
  bad_state.mutable_state()->set_key("k");
  bad_state.mutable_state()->set_value_json("{oops");
  bad_state.mutable_state()->set_version(1);
  chunks.push_back(bad_state);
  expect_rejected(chunks, "state that is not JSON");
  chunks.back().mutable_state()->set_value_json(std::string(129, '[') + std::string(129, ']'));
  expect_rejected(chunks, "state nesting deeper than 128 levels");
  chunks = good;
  chunks.insert(chunks.begin() + 2, bad_state);
  chunks[2].mutable_state()->set_value_json("1");
  expect_rejected(chunks, "state before events");
  expect_rejected({good[0], good[1], v1::ExportChunk()}, "empty chunk");
}

TEST(SessionImportLimitTest, ImportLargerThanTheCapIsInvalidArgument) {
  testing::TempDir dir;
  auto store = store::RocksDbStore::Open({dir.Sub("data"), store::Durability::kRelaxed});
  ASSERT_TRUE(store.ok());
  runtime::HistoryCache history(16);
  runtime::TurnDeps deps;
  deps.store = store->get();
  deps.history = &history;
  runtime::SessionManager sessions(deps);
  std::unique_ptr<runtime::SessionImporter> import = sessions.NewImport("p", 4096);
  v1::ExportChunk chunk;
  chunk.mutable_session()->set_agent_id("a");
  chunk.mutable_session()->set_agent_version(1);
  chunk.mutable_session()->set_status(v1::SESSION_STATUS_IDLE);
  chunk.mutable_session()->set_last_seq(100);
  ASSERT_TRUE(import->Add(chunk).ok());
  chunk.mutable_agent()->set_agent_id("a");
  chunk.mutable_agent()->set_version(1);
  chunk.mutable_agent()->set_name("a");
  chunk.mutable_agent()->set_model("echo");
  ASSERT_TRUE(import->Add(chunk).ok());
  absl::Status st;
  for (int seq = 1; seq <= 100 && st.ok(); ++seq) {
    chunk.mutable_event()->set_seq(seq);
    chunk.mutable_event()->set_type(v1::EVENT_TYPE_MESSAGE);
    chunk.mutable_event()->mutable_message()->set_text(std::string(100, 'x'));
    st = import->Add(chunk);
  }
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_NE(st.message().find("larger than 4096 bytes"), absl::string_view::npos) << st;
  absl::StatusOr<store::SessionPage> none = (*store)->ListSessions("p", {}, 10, "");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->sessions.empty());
}


}  // namespace
}  // namespace agentd
