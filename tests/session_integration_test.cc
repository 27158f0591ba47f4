// Sessions, agents, streaming, watching, restarts and bad input through the gRPC API.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <thread>

#include "absl/synchronization/notification.h"
#include "agentd/v1/memory.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "store/rocksdb_store.h"
#include "testing/server_harness.h"

namespace agentd {
namespace {

using testing::Ctx;
using testing::ServerHarness;

class SessionTest : public ::testing::Test {
 protected:
  ServerHarness h_;
};

TEST_F(SessionTest, AgentsAreVersionedAndSessionsPinTheirVersion) {
  v1::Agent v1a = h_.CreateAgent("echo", "version one");
  v1::Session pinned = h_.CreateSession(v1a.agent_id());

  v1::UpdateAgentRequest up;
  *up.mutable_agent() = v1a;
  up.mutable_agent()->set_instructions("version two");
  v1::Agent v2;
  ASSERT_TRUE(h_.agents().UpdateAgent(Ctx().get(), up, &v2).ok());
  EXPECT_EQ(v2.version(), 2);
  EXPECT_EQ(v2.instructions(), "version two");

  v1::GetAgentRequest get;
  get.set_agent_id(v1a.agent_id());
  v1::Agent latest, first;
  ASSERT_TRUE(h_.agents().GetAgent(Ctx().get(), get, &latest).ok());
  EXPECT_EQ(latest.version(), 2);
  get.set_version(1);
  ASSERT_TRUE(h_.agents().GetAgent(Ctx().get(), get, &first).ok());
  EXPECT_EQ(first.instructions(), "version one");

  EXPECT_EQ(pinned.agent_version(), 1);
  v1::Session fresh = h_.CreateSession(v1a.agent_id());
  EXPECT_EQ(fresh.agent_version(), 2);

  v1::ListAgentsRequest list;
  v1::ListAgentsResponse agents;
  ASSERT_TRUE(h_.agents().ListAgents(Ctx().get(), list, &agents).ok());
  ASSERT_EQ(agents.agents_size(), 1);
  EXPECT_EQ(agents.agents(0).version(), 2);

  // Deleted agents disappear, but pinned sessions keep working.
  v1::DeleteAgentRequest del;
  del.set_agent_id(v1a.agent_id());
  google::protobuf::Empty empty;
  ASSERT_TRUE(h_.agents().DeleteAgent(Ctx().get(), del, &empty).ok());
  get.set_version(0);
  EXPECT_EQ(h_.agents().GetAgent(Ctx().get(), get, &latest).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(h_.agents().DeleteAgent(Ctx().get(), del, &empty).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::TurnResult r;
  EXPECT_TRUE(h_.Send(pinned.session_id(), "still here", &r).ok());
  v1::CreateSessionRequest cs;
  cs.set_agent_id(v1a.agent_id());
  v1::Session none;
  EXPECT_EQ(h_.sessions().CreateSession(Ctx().get(), cs, &none).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SessionTest, ClientChosenSessionIdsAndListing) {
  v1::Agent a = h_.CreateAgent("echo");
  v1::Agent b = h_.CreateAgent("echo");
  h_.CreateSession(a.agent_id(), "s-1");
  h_.CreateSession(a.agent_id(), "s-2");
  h_.CreateSession(b.agent_id(), "s-3");
  v1::CreateSessionRequest dup;
  dup.set_agent_id(a.agent_id());
  dup.set_session_id("s-1");
  v1::Session s;
  EXPECT_EQ(h_.sessions().CreateSession(Ctx().get(), dup, &s).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);

  v1::ListSessionsRequest list;
  list.set_agent_id(a.agent_id());
  list.set_page_size(1);
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) {
    v1::ListSessionsResponse resp;
    ASSERT_TRUE(h_.sessions().ListSessions(Ctx().get(), list, &resp).ok());
    for (const auto& x : resp.sessions()) ids.push_back(x.session_id());
    if (resp.next_page_token().empty()) break;
    list.set_page_token(resp.next_page_token());
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"s-1", "s-2"}));

  v1::DeleteSessionRequest del;
  del.set_session_id("s-1");
  google::protobuf::Empty empty;
  ASSERT_TRUE(h_.sessions().DeleteSession(Ctx().get(), del, &empty).ok());
  v1::GetSessionRequest get;
  get.set_session_id("s-1");
  EXPECT_EQ(h_.sessions().GetSession(Ctx().get(), get, &s).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::ListEventsRequest le;
  le.set_session_id("s-1");
  v1::ListEventsResponse events;
  EXPECT_EQ(h_.sessions().ListEvents(Ctx().get(), le, &events).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SessionTest, StreamTurnSendsDeltasDurableEventsThenResult) {
  v1::Agent a = h_.CreateAgent("scripted");
  v1::Session s = h_.CreateSession(a.agent_id());
  h_.scripted().Push({.text = "Hello world", .delay = absl::Milliseconds(50), .deltas = {"Hello", " world"}});
  v1::RunTurnRequest req;
  req.set_session_id(s.session_id());
  req.add_input()->set_text("hi");
  auto ctx = Ctx();
  auto reader = h_.sessions().StreamTurn(ctx.get(), req);
  std::vector<v1::TurnEvent> got;
  v1::TurnEvent te;
  while (reader->Read(&te)) got.push_back(te);
  ASSERT_TRUE(reader->Finish().ok());
  ASSERT_FALSE(got.empty());
  ASSERT_TRUE(got.back().has_result());
  EXPECT_EQ(got.back().result().output_text(), "Hello world");
  std::string deltas;
  std::vector<int64_t> seqs;
  for (const auto& e : got) {
    if (e.has_delta()) deltas += e.delta().text();
    if (e.has_event()) seqs.push_back(e.event().seq());
  }
  EXPECT_EQ(deltas, "Hello world");
  EXPECT_EQ(seqs, (std::vector<int64_t>{1, 2, 3, 4}));
  // The opening events were durable (and streamed) before the model answered.
  EXPECT_TRUE(got[0].has_event());
  EXPECT_EQ(got[0].event().type(), v1::EVENT_TYPE_TURN_STARTED);
}

TEST_F(SessionTest, StreamTurnErrorsEndTheStreamWithTheStatus) {
  v1::Agent a = h_.CreateAgent("echo");
  v1::RunTurnRequest req;
  req.set_session_id("no-such-session");
  req.add_input()->set_text("hi");
  auto ctx = Ctx();
  auto reader = h_.sessions().StreamTurn(ctx.get(), req);
  v1::TurnEvent te;
  EXPECT_FALSE(reader->Read(&te));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SessionTest, WatchEventsReplaysHistoryThenFollowsLiveForEveryWatcher) {
  v1::Agent a = h_.CreateAgent("echo");
  v1::Session s = h_.CreateSession(a.agent_id());
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(s.session_id(), "before", &r).ok());  // seq 1..4

  auto watch = [&](int64_t after, size_t want, std::vector<int64_t>* seqs, grpc::ClientContext* ctx,
                   absl::Notification* subscribed) {
    v1::WatchEventsRequest req;
    req.set_session_id(s.session_id());
    req.set_after_seq(after);
    auto reader = h_.sessions().WatchEvents(ctx, req);
    v1::Event e;
    while (seqs->size() < want && reader->Read(&e)) {
      seqs->push_back(e.seq());
      if (e.seq() == 4) subscribed->Notify();
    }
    ctx->TryCancel();
    reader->Finish();
  };
  std::vector<int64_t> w1, w2;
  grpc::ClientContext c1, c2;
  absl::Notification s1, s2;
  std::thread t1(watch, 0, 12, &w1, &c1, &s1);
  std::thread t2(watch, 2, 10, &w2, &c2, &s2);
  ASSERT_TRUE(s1.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(s2.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(h_.Send(s.session_id(), "live 1", &r).ok());
  ASSERT_TRUE(h_.Send(s.session_id(), "live 2", &r).ok());
  t1.join();
  t2.join();
  std::vector<int64_t> all, from3;
  for (int i = 1; i <= 12; ++i) all.push_back(i);
  for (int i = 3; i <= 12; ++i) from3.push_back(i);
  EXPECT_EQ(w1, all);
  EXPECT_EQ(w2, from3);
}

TEST_F(SessionTest, WatchOfUnknownSessionIsNotFound) {
  v1::WatchEventsRequest req;
  req.set_session_id("nope");
  auto ctx = Ctx();
  auto reader = h_.sessions().WatchEvents(ctx.get(), req);
  v1::Event e;
  EXPECT_FALSE(reader->Read(&e));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SessionTest, RestartKeepsSessionsAndEvents) {
  v1::Agent a = h_.CreateAgent("echo");
  v1::Session s = h_.CreateSession(a.agent_id());
  v1::TurnResult r;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(h_.Send(s.session_id(), "m" + std::to_string(i), &r).ok());
  auto before = h_.AllEvents(s.session_id());
  h_.Restart();
  auto after = h_.AllEvents(s.session_id());
  ASSERT_EQ(before.size(), after.size());
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(before[i].SerializeAsString(), after[i].SerializeAsString());
  }
  ASSERT_TRUE(h_.Send(s.session_id(), "after restart", &r).ok());
  EXPECT_EQ(r.last_seq(), 24);
}

TEST_F(SessionTest, TurnsCutOffByACrashAreRecordedAsFailedAtStartup) {
  v1::Agent a = h_.CreateAgent("echo");
  v1::Session s = h_.CreateSession(a.agent_id());
  v1::TurnResult r;
  ASSERT_TRUE(h_.Send(s.session_id(), "ok", &r).ok());
  h_.Stop();
  {
    // Simulate a crash mid-turn: the session is durably RUNNING with a turn in flight.
    auto store = store::RocksDbStore::Open({h_.data_dir()});
    ASSERT_TRUE(store.ok()) << store.status();
    auto rec = (*store)->GetSession("default", s.session_id());
    ASSERT_TRUE(rec.ok());
    store::SessionWrite w;
    w.project_id = "default";
    w.session_id = s.session_id();
    w.expected_revision = rec->revision();
    w.record = *rec;
    w.record.mutable_session()->set_status(v1::SESSION_STATUS_RUNNING);
    w.record.set_running_turn_id("turn_crashed");
    ASSERT_TRUE((*store)->CommitSessionWrite(w).ok());
  }
  h_.StartServer();
  v1::GetSessionRequest get;
  get.set_session_id(s.session_id());
  v1::Session after;
  ASSERT_TRUE(h_.sessions().GetSession(Ctx().get(), get, &after).ok());
  EXPECT_EQ(after.status(), v1::SESSION_STATUS_FAILED);
  auto events = h_.AllEvents(s.session_id());
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events.back().type(), v1::EVENT_TYPE_TURN_FAILED);
  EXPECT_EQ(events.back().turn_id(), "turn_crashed");
  EXPECT_NE(events.back().turn().error().find("stopped"), std::string::npos);
  ASSERT_TRUE(h_.Send(s.session_id(), "usable", &r).ok());
}

TEST_F(SessionTest, HealthReflectionAndRequestIds) {
  auto channel = h_.channel();
  auto health = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckRequest hreq;
  grpc::health::v1::HealthCheckResponse hresp;
  ASSERT_TRUE(health->Check(Ctx().get(), hreq, &hresp).ok());
  EXPECT_EQ(hresp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  v1::Agent a = h_.CreateAgent("echo");
  grpc::ClientContext ctx;
  v1::GetAgentRequest get;
  get.set_agent_id(a.agent_id());
  v1::Agent got;
  ASSERT_TRUE(h_.agents().GetAgent(&ctx, get, &got).ok());
  auto md = ctx.GetServerInitialMetadata();
  auto it = md.find("x-agentd-request-id");
  ASSERT_NE(it, md.end());
  EXPECT_FALSE(it->second.empty());

  // Errors carry a request id too.
  grpc::ClientContext ctx2;
  get.set_agent_id("missing");
  EXPECT_EQ(h_.agents().GetAgent(&ctx2, get, &got).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(ctx2.GetServerInitialMetadata().find("x-agentd-request-id"),
            ctx2.GetServerInitialMetadata().end());

  // Every service is served (memory: an empty request is a clear INVALID_ARGUMENT).
  auto memory = v1::MemoryService::NewStub(channel);
  v1::GetMemoryRequest mreq;
  v1::MemoryRecord mrec;
  EXPECT_EQ(memory->GetMemory(Ctx().get(), mreq, &mrec).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  // gRPC's own health service answers with a request id too.
  grpc::ClientContext hctx;
  ASSERT_TRUE(health->Check(&hctx, hreq, &hresp).ok());
  EXPECT_NE(hctx.GetServerInitialMetadata().find("x-agentd-request-id"),
            hctx.GetServerInitialMetadata().end());
}

struct RawReply {
  grpc::Status status;
  std::string request_id;
};

// Sends `bytes` as the request of `method`, as a client with a broken encoder would.
RawReply RawUnary(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                  const std::string& bytes, bool server_streaming = false,
                  const std::string& request_id = "") {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  if (!request_id.empty()) ctx.AddMetadata("x-agentd-request-id", request_id);
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer request(&slice, 1);
  RawReply reply;
  if (server_streaming) {
    grpc::CompletionQueue cq;
    auto call = stub.PrepareCall(&ctx, method, &cq);
    void* tag;
    bool ok;
    call->StartCall(reinterpret_cast<void*>(1));
    cq.Next(&tag, &ok);
    call->Write(request, reinterpret_cast<void*>(2));
    cq.Next(&tag, &ok);
    call->WritesDone(reinterpret_cast<void*>(3));
    cq.Next(&tag, &ok);
    grpc::ByteBuffer response;
    call->Read(&response, reinterpret_cast<void*>(4));
    cq.Next(&tag, &ok);
    call->Finish(&reply.status, reinterpret_cast<void*>(5));
    cq.Next(&tag, &ok);
  } else {
    grpc::ByteBuffer response;
    absl::Notification done;
    stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response,
                   [&](grpc::Status st) {
                     reply.status = std::move(st);
                     done.Notify();
                   });
    done.WaitForNotification();
  }
  auto md = ctx.GetServerInitialMetadata();
  auto it = md.find("x-agentd-request-id");
  if (it != md.end()) reply.request_id = std::string(it->second.data(), it->second.size());
  return reply;
}

// Request bytes gRPC cannot parse never reach a handler; gRPC would answer UNIMPLEMENTED ("no
// such method"). agentd makes it INVALID_ARGUMENT naming the message, with a request id.
TEST_F(SessionTest, UnparseableRequestsAreInvalidArgumentWithARequestId) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"invalid UTF-8 in a string field", std::string("\x0a\x02\xc3\x28", 4)},
      {"truncated field", std::string("\x0a\x09" "abc", 5)},
      {"garbage", std::string("\xff\xff\xff", 3)},
  };
  for (const auto& [what, bytes] : bad) {
    RawReply r = RawUnary(h_.channel(), "/agentd.v1.SessionService/GetSession", bytes);
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << what;
    EXPECT_NE(r.status.error_message().find("agentd.v1.GetSessionRequest"), std::string::npos)
        << what << ": " << r.status.error_message();
    EXPECT_FALSE(r.request_id.empty()) << what;
  }
  // The client's own id comes back, as for calls that reach a handler.
  EXPECT_EQ(RawUnary(h_.channel(), "/agentd.v1.SessionService/GetSession", "\xff", false,
                     "client-chosen-id-1")
                .request_id,
            "client-chosen-id-1");
  RawReply stream = RawUnary(h_.channel(), "/agentd.v1.SessionService/StreamTurn",
                             std::string("\x0a\x02\xc3\x28", 4), /*server_streaming=*/true);
  EXPECT_EQ(stream.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << stream.status.error_message();
  EXPECT_NE(stream.status.error_message().find("agentd.v1.RunTurnRequest"), std::string::npos);

  // A well-formed request still works through the same path, and a method agentd does not
  // serve is still UNIMPLEMENTED.
  v1::Agent a = h_.CreateAgent("echo");
  v1::GetAgentRequest get;
  get.set_agent_id(a.agent_id());
  EXPECT_TRUE(RawUnary(h_.channel(), "/agentd.v1.AgentService/GetAgent", get.SerializeAsString())
                  .status.ok());
  EXPECT_EQ(RawUnary(h_.channel(), "/agentd.v1.SessionService/NoSuchMethod", "").status.error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(RawUnary(h_.channel(), "/other.v1.Thing/Get", "").status.error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(SessionTest, BadInputGetsInvalidArgumentAndChangesNothing) {
  v1::Agent agent;
  auto create = [&](const std::function<void(v1::Agent*)>& mutate) {
    v1::CreateAgentRequest req;
    req.mutable_agent()->set_model("echo");
    mutate(req.mutable_agent());
    return h_.agents().CreateAgent(Ctx().get(), req, &agent).error_code();
  };
  EXPECT_EQ(create([](v1::Agent* a) { a->set_model(""); }), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(create([](v1::Agent* a) { a->set_model("gpt-nope"); }), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(create([](v1::Agent* a) { a->set_agent_id("bad id/with slash"); }),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(create([](v1::Agent* a) { a->set_max_steps_per_turn(-1); }), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(create([](v1::Agent* a) {
              auto* t = a->add_tools();
              t->set_name("x");
              t->set_kind(v1::TOOL_KIND_CLIENT);
              t->set_parameters_json_schema("{not json");
            }),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(create([](v1::Agent* a) { a->set_instructions(std::string(300 * 1024, 'x')); }),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListAgentsResponse listed;
  ASSERT_TRUE(h_.agents().ListAgents(Ctx().get(), v1::ListAgentsRequest(), &listed).ok());
  EXPECT_EQ(listed.agents_size(), 0);

  v1::Agent good = h_.CreateAgent("echo");
  v1::Session s = h_.CreateSession(good.agent_id());
  v1::TurnResult r;
  v1::RunTurnRequest empty;
  empty.set_session_id(s.session_id());
  EXPECT_EQ(h_.Run(empty, &r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  v1::RunTurnRequest no_session;
  no_session.add_input()->set_text("x");
  EXPECT_EQ(h_.Run(no_session, &r).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  no_session.set_session_id("unknown");
  EXPECT_EQ(h_.Run(no_session, &r).error_code(), grpc::StatusCode::NOT_FOUND);

  v1::ListEventsRequest le;
  le.set_session_id(s.session_id());
  le.set_limit(-1);
  v1::ListEventsResponse events;
  EXPECT_EQ(h_.sessions().ListEvents(Ctx().get(), le, &events).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListSessionsRequest ls;
  ls.set_page_size(-5);
  v1::ListSessionsResponse sessions;
  EXPECT_EQ(h_.sessions().ListSessions(Ctx().get(), ls, &sessions).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::CreateSessionRequest cs;
  cs.set_agent_id(good.agent_id());
  cs.set_ttl_seconds(-1);
  v1::Session bad;
  EXPECT_EQ(h_.sessions().CreateSession(Ctx().get(), cs, &bad).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(h_.AllEvents(s.session_id()).empty());
}

TEST_F(SessionTest, OversizedMessagesAreRejected) {
  v1::Agent a = h_.CreateAgent("echo");
  v1::Session s = h_.CreateSession(a.agent_id());
  v1::TurnResult r;
  // Over the per-field limit (1 MiB) but under the transport limit.
  EXPECT_EQ(h_.Send(s.session_id(), std::string(2 * 1024 * 1024, 'a'), &r).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Over the transport limit (16 MiB).
  EXPECT_EQ(h_.Send(s.session_id(), std::string(17 * 1024 * 1024, 'a'), &r).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(h_.AllEvents(s.session_id()).empty());
}

TEST(ServerStartTest, DataDirHeldByAnotherServerIsAClearError) {
  ServerHarness h;
  server::ServerOptions options;
  options.config.listen = "127.0.0.1:0";
  options.config.data_dir = h.data_dir();
  auto second = server::AgentdServer::Start(options);
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find("in use"), std::string::npos) << second.status();
}

}  // namespace
}  // namespace agentd

namespace agentd {
namespace {

TEST(DrainTest, ShutdownLetsRunningTurnsFinishAndRefusesNewOnes) {
  testing::ServerHarness h;
  v1::Agent a = h.CreateAgent("scripted");
  v1::Session busy = h.CreateSession(a.agent_id());
  v1::Session other = h.CreateSession(a.agent_id());
  h.scripted().Push({.text = "finished during drain", .delay = absl::Milliseconds(600)});
  v1::TurnResult slow;
  grpc::Status slow_status;
  std::thread t([&] { slow_status = h.Send(busy.session_id(), "slow", &slow); });
  for (int i = 0; i < 500 && h.scripted().requests().empty(); ++i) absl::SleepFor(absl::Milliseconds(2));

  std::thread stopper([&] { h.server().Shutdown(absl::Seconds(5)); });
  // While draining: health says NOT_SERVING and new turns are refused with UNAVAILABLE.
  auto health = grpc::health::v1::Health::NewStub(h.channel());
  bool saw_not_serving = false;
  for (int i = 0; i < 200 && !saw_not_serving; ++i) {
    grpc::health::v1::HealthCheckResponse resp;
    if (health->Check(testing::Ctx(1).get(), {}, &resp).ok() &&
        resp.status() == grpc::health::v1::HealthCheckResponse::NOT_SERVING) {
      saw_not_serving = true;
    } else {
      absl::SleepFor(absl::Milliseconds(2));
    }
  }
  EXPECT_TRUE(saw_not_serving);
  v1::TurnResult refused;
  EXPECT_EQ(h.Send(other.session_id(), "new work", &refused).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  t.join();
  stopper.join();
  ASSERT_TRUE(slow_status.ok()) << slow_status.error_message();
  EXPECT_EQ(slow.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(slow.output_text(), "finished during drain");
}

TEST(DrainTest, TurnsPastTheGracePeriodAreRecordedAsInterrupted) {
  testing::ServerHarness h;
  v1::Agent a = h.CreateAgent("scripted");
  v1::Session s = h.CreateSession(a.agent_id());
  h.scripted().Push({.text = "too slow", .delay = absl::Seconds(30)});
  v1::TurnResult r;
  grpc::Status st;
  auto ctx = testing::Ctx(60);
  std::thread t([&] { st = h.sessions().RunTurn(ctx.get(), [&] {
    v1::RunTurnRequest req;
    req.set_session_id(s.session_id());
    req.add_input()->set_text("slow");
    return req;
  }(), &r); });
  for (int i = 0; i < 500 && h.scripted().requests().empty(); ++i) absl::SleepFor(absl::Milliseconds(2));
  const absl::Time start = absl::Now();
  h.server().Shutdown(absl::Milliseconds(200));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  t.join();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  // Not the turn's own failure: no x-agentd-turn-id, so SDKs retry it (on another replica).
  EXPECT_EQ(ctx->GetServerTrailingMetadata().count("x-agentd-turn-id"), 0u);
  h.Restart();
  auto events = h.AllEvents(s.session_id());
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type(), v1::EVENT_TYPE_TURN_FAILED);
  EXPECT_NE(events.back().turn().error().find("shutting down"), std::string::npos);
}

}  // namespace
}  // namespace agentd
