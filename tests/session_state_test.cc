// Tool state, forks, export/import, replay and retention through the gRPC API of an in-process
// server (and SessionManager::SweepExpired over a real store).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "agentd/v1/project.grpc.pb.h"
#include "common/time_util.h"
#include "runtime/session_manager.h"
#include "runtime/session_transfer.h"
#include "store/rocksdb_store.h"
#include "testing/server_harness.h"
#include "testing/temp_dir.h"

namespace agentd {
namespace {

using testing::Ctx;
using testing::ServerHarness;

using testing::Call;

/// Every text the model saw in one request, joined (to check what a context contained).
std::string ContextText(const backend::ModelRequest& request) {
  std::string all;
  for (const backend::ChatMessage& m : request.messages) all += m.text + "|";
  return all;
}

class SessionStateTest : public ::testing::Test {
 protected:
  v1::Session GetSession(const std::string& id, grpc::Status* status = nullptr) {
    v1::GetSessionRequest req;
    req.set_session_id(id);
    v1::Session s;
    grpc::Status st = h_.sessions().GetSession(Ctx().get(), req, &s);
    if (status != nullptr) *status = st;
    return s;
  }

  grpc::Status PutState(const std::string& session, const std::string& key,
                        const std::string& value, int64_t expected, v1::StateEntry* out) {
    v1::PutStateRequest req;
    req.set_session_id(session);
    req.set_key(key);
    req.set_value_json(value);
    req.set_expected_version(expected);
    return h_.sessions().PutState(Ctx().get(), req, out);
  }

  grpc::Status Fork(const std::string& session, int64_t at_seq, v1::Session* out,
                    const std::string& new_id = "") {
    v1::ForkSessionRequest req;
    req.set_session_id(session);
    req.set_at_seq(at_seq);
    req.set_new_session_id(new_id);
    return h_.sessions().ForkSession(Ctx().get(), req, out);
  }

  std::vector<v1::ExportChunk> Export(const std::string& session, grpc::Status* status) {
    v1::ExportSessionRequest req;
    req.set_session_id(session);
    auto ctx = Ctx();
    std::unique_ptr<grpc::ClientReader<v1::ExportChunk>> reader =
        h_.sessions().ExportSession(ctx.get(), req);
    std::vector<v1::ExportChunk> chunks;
    v1::ExportChunk chunk;
    while (reader->Read(&chunk)) chunks.push_back(chunk);
    *status = reader->Finish();
    return chunks;
  }

  grpc::Status Import(const std::vector<v1::ExportChunk>& chunks, v1::Session* out,
                      grpc::ClientContext* ctx = nullptr) {
    std::unique_ptr<grpc::ClientContext> own;
    if (ctx == nullptr) {
      own = Ctx();
      ctx = own.get();
    }
    std::unique_ptr<grpc::ClientWriter<v1::ExportChunk>> writer =
        h_.sessions().ImportSession(ctx, out);
    for (const v1::ExportChunk& c : chunks) {
      if (!writer->Write(c)) break;  // the server ended the call early
    }
    writer->WritesDone();
    return writer->Finish();
  }

  std::vector<std::string> SessionIds() {
    v1::ListSessionsRequest req;
    req.set_page_size(1000);
    v1::ListSessionsResponse resp;
    EXPECT_TRUE(h_.sessions().ListSessions(Ctx().get(), req, &resp).ok());
    std::vector<std::string> ids;
    for (const v1::Session& s : resp.sessions()) ids.push_back(s.session_id());
    return ids;
  }

  grpc::Status Replay(const std::string& session, const std::string& model,
                      v1::ReplaySessionResponse* out) {
    v1::ReplaySessionRequest req;
    req.set_session_id(session);
    req.set_model(model);
    return h_.sessions().ReplaySession(Ctx(20).get(), req, out);
  }

  ServerHarness h_;
};

// ---- Tool state ------------------------------------------------------------------------------

TEST_F(SessionStateTest, PutGetListStateWithVersions) {
  const std::string sid = h_.CreateSession(h_.CreateAgent("echo").agent_id()).session_id();
  v1::StateEntry e;
  ASSERT_TRUE(PutState(sid, "cart", R"({"items":[1,2]})", 0, &e).ok());
  EXPECT_EQ(e.version(), 1);
  ASSERT_TRUE(PutState(sid, "cart", R"({"items":[1,2,3]})", 1, &e).ok());
  EXPECT_EQ(e.version(), 2);
  EXPECT_EQ(PutState(sid, "cart", "{}", 1, &e).error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(PutState(sid, "cart", "{not json", 0, &e).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(PutState(sid, "", "1", 0, &e).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(PutState(sid, "bad\nkey", "1", 0, &e).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(PutState(sid, "big", std::string((1 << 20) + 1, '1'), 0, &e).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(PutState("nope", "k", "1", 0, &e).error_code(), grpc::StatusCode::NOT_FOUND);
  // Nesting is capped (printing a deeper value for state_get would overflow a thread's stack).
  auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  const grpc::Status deep = PutState(sid, "deep", nested(129), 0, &e);
  EXPECT_EQ(deep.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(deep.error_message().find("deeper than 128"), std::string::npos) << deep.error_message();
  EXPECT_EQ(PutState(sid, "deep", nested(100000), 0, &e).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_TRUE(PutState(sid, "deep", nested(128), 0, &e).ok());
  ASSERT_TRUE(PutState(sid, "a", "\"first\"", 0, &e).ok());

  v1::GetStateRequest get;
  get.set_session_id(sid);
  get.set_key("cart");
  ASSERT_TRUE(h_.sessions().GetState(Ctx().get(), get, &e).ok());
  EXPECT_EQ(e.value_json(), R"({"items":[1,2,3]})");
  EXPECT_EQ(e.version(), 2);
  get.set_key("missing");
  EXPECT_EQ(h_.sessions().GetState(Ctx().get(), get, &e).error_code(), grpc::StatusCode::NOT_FOUND);

  v1::ListStateRequest list;
  list.set_session_id(sid);
  v1::ListStateResponse all;
  ASSERT_TRUE(h_.sessions().ListState(Ctx().get(), list, &all).ok());
  ASSERT_EQ(all.entries_size(), 3);
  EXPECT_EQ(all.entries(0).key(), "a");
  EXPECT_EQ(all.entries(1).key(), "cart");
  EXPECT_EQ(all.entries(2).key(), "deep");
}

// ---- Forks -----------------------------------------------------------------------------------

TEST_F(SessionStateTest, ForkedSessionContinuesFromTheParentsHistory) {
  v1::Agent agent = h_.CreateAgent("scripted", "Be helpful.");
  v1::CreateSessionRequest create;
  create.set_agent_id(agent.agent_id());
  (*create.mutable_metadata())["team"] = "blue";
  v1::Session parent;
  ASSERT_TRUE(h_.sessions().CreateSession(Ctx().get(), create, &parent).ok());
  h_.scripted().Push({.text = "first answer"});
  h_.scripted().Push({.text = "second answer"});
  v1::TurnResult r1, r2;
  ASSERT_TRUE(h_.Send(parent.session_id(), "one", &r1).ok());
  ASSERT_TRUE(h_.Send(parent.session_id(), "two", &r2).ok());
  v1::StateEntry e;
  ASSERT_TRUE(PutState(parent.session_id(), "k", "42", 0, &e).ok());

  v1::Session child;
  ASSERT_TRUE(Fork(parent.session_id(), r1.last_seq(), &child, "child-1").ok());
  EXPECT_EQ(child.session_id(), "child-1");
  EXPECT_EQ(child.parent_session_id(), parent.session_id());
  EXPECT_EQ(child.fork_seq(), r1.last_seq());
  EXPECT_EQ(child.last_seq(), r1.last_seq());
  EXPECT_EQ(child.status(), v1::SESSION_STATUS_IDLE);
  EXPECT_EQ(child.agent_version(), parent.agent_version());
  EXPECT_EQ(child.metadata().at("team"), "blue");

  // A turn on the child sees the parent's first turn, not its second.
  h_.scripted().Push({.text = "child answer"});
  v1::TurnResult rc;
  ASSERT_TRUE(h_.Send("child-1", "three", &rc).ok());
  const std::string context = ContextText(h_.scripted().requests().back());
  EXPECT_NE(context.find("one|first answer|"), std::string::npos) << context;
  EXPECT_EQ(context.find("two"), std::string::npos) << context;
  EXPECT_NE(context.find("three"), std::string::npos) << context;
  EXPECT_EQ(rc.events(0).seq(), r1.last_seq() + 1);

  std::vector<v1::Event> events = h_.AllEvents("child-1");
  ASSERT_EQ(events.size(), static_cast<size_t>(rc.last_seq()));
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].seq(), static_cast<int64_t>(i + 1));
    EXPECT_EQ(events[i].session_id(), "child-1");
  }
  EXPECT_EQ(h_.AllEvents(parent.session_id()).size(), static_cast<size_t>(r2.last_seq()));

  // State was copied; at_seq 0 forks at the latest seq; errors.
  v1::GetStateRequest get;
  get.set_session_id("child-1");
  get.set_key("k");
  ASSERT_TRUE(h_.sessions().GetState(Ctx().get(), get, &e).ok());
  EXPECT_EQ(e.value_json(), "42");
  v1::Session latest;
  ASSERT_TRUE(Fork(parent.session_id(), 0, &latest).ok());
  EXPECT_EQ(latest.fork_seq(), r2.last_seq());
  EXPECT_EQ(Fork(parent.session_id(), r2.last_seq() + 1, &latest).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Fork(parent.session_id(), -1, &latest).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Fork("missing", 0, &latest).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Fork(parent.session_id(), 1, &latest, "child-1").error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Fork(parent.session_id(), 1, &latest, "bad id!").error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // The parent cannot go while forks read it.
  v1::DeleteSessionRequest del;
  del.set_session_id(parent.session_id());
  google::protobuf::Empty empty;
  grpc::Status st = h_.sessions().DeleteSession(Ctx().get(), del, &empty);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("2 fork"), std::string::npos) << st.error_message();
}

TEST_F(SessionStateTest, ForkKeepsPendingToolCallsAndForksARunningSession) {
  v1::Agent agent = h_.CreateAgent("scripted", "", {"lookup"});
  const std::string sid = h_.CreateSession(agent.agent_id()).session_id();
  h_.scripted().Push({.text = "", .tool_calls = {Call("c1", "lookup", R"({"q":"x"})")}});
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(sid, "look it up", &r).ok());
  ASSERT_EQ(r.status(), v1::TURN_STATUS_REQUIRES_ACTION);

  // Forked at the end of the REQUIRES_ACTION turn (not its latest seq), the fork owes the call.
  h_.scripted().Push({.text = "later"});
  v1::TurnResult answer;
  v1::RunTurnRequest req;
  req.set_session_id(sid);
  v1::ToolResult* tr = req.add_tool_results();
  tr->set_tool_call_id("c1");
  tr->set_output("found");
  ASSERT_TRUE(h_.Run(req, &answer).ok());
  v1::Session fork;
  ASSERT_TRUE(Fork(sid, r.last_seq(), &fork).ok());
  EXPECT_EQ(fork.status(), v1::SESSION_STATUS_REQUIRES_ACTION);
  ASSERT_EQ(fork.pending_tool_calls_size(), 1);
  EXPECT_EQ(fork.pending_tool_calls(0).id(), "c1");
  h_.scripted().Push({.text = "fork done"});
  req.set_session_id(fork.session_id());
  tr->set_output("found elsewhere");
  ASSERT_TRUE(h_.Run(req, &answer).ok());
  EXPECT_EQ(answer.output_text(), "fork done");

  // A session with a turn in flight can be forked at its committed seq. The session shows
  // RUNNING as soon as the turn starts; its opening events (one write) commit alongside the
  // model call, so wait until they are in before reading the seq the fork must land on.
  const int64_t before = GetSession(sid).last_seq();
  h_.scripted().Push({.text = "slow", .delay = absl::Milliseconds(800)});
  std::thread slow([&] {
    v1::TurnResult out;
    EXPECT_TRUE(h_.Send(sid, "slow one", &out).ok());
  });
  v1::Session running;
  for (int i = 0; i < 200 && (running.status() != v1::SESSION_STATUS_RUNNING ||
                              running.last_seq() <= before);
       ++i) {
    absl::SleepFor(absl::Milliseconds(5));
    running = GetSession(sid);
  }
  ASSERT_EQ(running.status(), v1::SESSION_STATUS_RUNNING);
  ASSERT_GT(running.last_seq(), before);
  v1::Session mid;
  ASSERT_TRUE(Fork(sid, 0, &mid).ok());
  EXPECT_EQ(mid.fork_seq(), running.last_seq());
  EXPECT_EQ(mid.status(), v1::SESSION_STATUS_IDLE);  // inside a turn
  slow.join();
  EXPECT_GT(GetSession(sid).last_seq(), mid.fork_seq());  // the slow reply is not in the fork
}

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

// ---- Retention -------------------------------------------------------------------------------

TEST_F(SessionStateTest, SessionsExpireAfterTheirTtl) {
  v1::Agent agent = h_.CreateAgent("echo");
  v1::CreateSessionRequest req;
  req.set_agent_id(agent.agent_id());
  req.set_ttl_seconds(1);
  v1::Session s;
  ASSERT_TRUE(h_.sessions().CreateSession(Ctx().get(), req, &s).ok());
  ASSERT_TRUE(s.has_expire_time());
  EXPECT_NEAR(absl::ToDoubleMilliseconds(FromProto(s.expire_time()) - FromProto(s.create_time())),
              1000, 1);
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(s.session_id(), "quick", &r).ok());
  v1::Session fork;
  ASSERT_TRUE(Fork(s.session_id(), 0, &fork).ok());
  EXPECT_EQ(fork.expire_time().seconds(), s.expire_time().seconds());  // no longer retention
  EXPECT_EQ(fork.expire_time().nanos(), s.expire_time().nanos());

  absl::SleepFor(FromProto(s.expire_time()) + absl::Milliseconds(50) - absl::Now());
  grpc::Status st;
  GetSession(s.session_id(), &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::NOT_FOUND);
  v1::ListEventsRequest le;
  le.set_session_id(s.session_id());
  v1::ListEventsResponse events;
  EXPECT_EQ(h_.sessions().ListEvents(Ctx().get(), le, &events).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(h_.Send(s.session_id(), "late", &r).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(SessionIds().empty());
}

TEST(SweepExpiredTest, SweeperRemovesExpiredSessions) {
  testing::TempDir dir;
  auto store = store::RocksDbStore::Open({dir.Sub("data"), store::Durability::kRelaxed});
  ASSERT_TRUE(store.ok());
  runtime::TurnDeps deps;
  deps.store = store->get();
  runtime::HistoryCache history(16);
  deps.history = &history;
  runtime::SessionManager sessions(deps);
  for (int i = 0; i < 2500; ++i) {
    storage::SessionRecord r;
    r.mutable_session()->set_session_id("s" + std::to_string(i));
    r.mutable_session()->set_agent_id("a");
    *r.mutable_session()->mutable_expire_time() =
        ToProto(absl::Now() + absl::Seconds(i < 2100 ? 1 : 3600));
    ASSERT_TRUE((*store)->CreateSession("p", r).ok());
  }
  absl::StatusOr<int64_t> removed = sessions.SweepExpired(absl::Now());
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 0);
  removed = sessions.SweepExpired(absl::Now() + absl::Seconds(2));  // several batches
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 2100);
  absl::StatusOr<store::SessionPage> left = (*store)->ListSessions("p", {}, 1000, "");
  ASSERT_TRUE(left.ok());
  EXPECT_EQ(left->sessions.size(), 400u);
}

// ---- Replay ----------------------------------------------------------------------------------

TEST_F(SessionStateTest, ReplayRerunsTheInputsOnAnotherModel) {
  v1::Agent agent = h_.CreateAgent("echo");
  const std::string sid = h_.CreateSession(agent.agent_id()).session_id();
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(sid, "first question", &r).ok());
  ASSERT_TRUE(h_.Send(sid, "second question", &r).ok());
  const std::vector<std::string> before = SessionIds();

  v1::ReplaySessionResponse echo;
  grpc::Status st = Replay(sid, "echo", &echo);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(echo.results_size(), 2);
  EXPECT_EQ(echo.results(0).output_text(), "first question");
  EXPECT_EQ(echo.results(1).output_text(), "second question");
  EXPECT_EQ(echo.session().parent_session_id(), sid);
  EXPECT_EQ(echo.session().fork_seq(), 0);
  EXPECT_EQ(echo.session().last_seq(), echo.results(1).last_seq());

  h_.scripted().Push({.text = "scripted one"});
  h_.scripted().Push({.text = "scripted two"});
  v1::ReplaySessionResponse scripted;
  st = Replay(sid, "scripted", &scripted);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(scripted.results_size(), 2);
  EXPECT_EQ(scripted.results(0).output_text(), "scripted one");
  EXPECT_EQ(scripted.results(1).output_text(), "scripted two");
  const std::vector<backend::ModelRequest> requests = h_.scripted().requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_NE(ContextText(requests[1]).find("first question|scripted one|second question"),
            std::string::npos)
      << ContextText(requests[1]);
  // The source is untouched.
  EXPECT_EQ(GetSession(sid).last_seq(), r.last_seq());
  EXPECT_EQ(SessionIds().size(), before.size() + 2);

  v1::ReplaySessionResponse none;
  EXPECT_EQ(Replay(sid, "no-such-model", &none).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Replay("missing", "echo", &none).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(SessionIds().size(), before.size() + 2);
}

TEST_F(SessionStateTest, ReplayAnswersToolCallsFromTheRecording) {
  v1::Agent agent = h_.CreateAgent("scripted", "", {"weather", "clock"});
  const std::string sid = h_.CreateSession(agent.agent_id()).session_id();
  h_.scripted().Push({.text = "", .tool_calls = {Call("c1", "weather", R"({"city":"Paris"})")}});
  h_.scripted().Push({.text = "It is sunny."});
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(sid, "weather in Paris?", &r).ok());
  ASSERT_EQ(r.status(), v1::TURN_STATUS_REQUIRES_ACTION);
  v1::RunTurnRequest answer;
  answer.set_session_id(sid);
  v1::ToolResult* tr = answer.add_tool_results();
  tr->set_tool_call_id("c1");
  tr->set_output("sunny, 24C");
  ASSERT_TRUE(h_.Run(answer, &r).ok());
  ASSERT_EQ(r.status(), v1::TURN_STATUS_COMPLETED);

  // The replayed model asks for the same tool (new call id) and for one never recorded.
  h_.scripted().Push(
      {.text = "",
       .tool_calls = {Call("n1", "weather", R"({"city":"Paris"})"), Call("n2", "clock", "{}")}});
  h_.scripted().Push({.text = "Sunny, and I do not know the time."});
  v1::ReplaySessionResponse replay;
  grpc::Status st = Replay(sid, "scripted", &replay);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(replay.results_size(), 2);
  EXPECT_EQ(replay.results(0).status(), v1::TURN_STATUS_REQUIRES_ACTION);
  EXPECT_EQ(replay.results(1).status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(replay.results(1).output_text(), "Sunny, and I do not know the time.");
  std::vector<v1::ToolResult> answers;
  for (const v1::Event& e : replay.results(1).events()) {
    if (e.type() == v1::EVENT_TYPE_TOOL_RESULT) answers.push_back(e.tool_result());
  }
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].tool_call_id(), "n1");
  EXPECT_EQ(answers[0].output(), "sunny, 24C");
  EXPECT_FALSE(answers[0].is_error());
  EXPECT_EQ(answers[1].tool_call_id(), "n2");
  EXPECT_TRUE(answers[1].is_error());
  EXPECT_NE(answers[1].output().find("no recorded result"), std::string::npos);
}

TEST_F(SessionStateTest, FailedReplayLeavesNoSession) {
  v1::Agent agent = h_.CreateAgent("echo");
  const std::string sid = h_.CreateSession(agent.agent_id()).session_id();
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(sid, "question", &r).ok());
  const std::vector<std::string> before = SessionIds();
  h_.scripted().Push({.error = absl::InvalidArgumentError("the model refuses")});
  v1::ReplaySessionResponse replay;
  grpc::Status st = Replay(sid, "scripted", &replay);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(SessionIds(), before);

  // A replay whose deadline passes mid-turn is cancelled and removed too.
  h_.scripted().Push({.text = "too late", .delay = absl::Seconds(3)});
  v1::ReplaySessionRequest req;
  req.set_session_id(sid);
  req.set_model("scripted");
  st = h_.sessions().ReplaySession(Ctx(0.3).get(), req, &replay);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  std::vector<std::string> now = SessionIds();
  for (int i = 0; i < 100 && now != before; ++i) {
    absl::SleepFor(absl::Milliseconds(20));
    now = SessionIds();
  }
  EXPECT_EQ(now, before);
}

}  // namespace
}  // namespace agentd
