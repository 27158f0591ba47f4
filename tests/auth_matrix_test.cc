// The cross-project matrix: every RPC × {no key, malformed key, unknown key, revoked key,
// another project's key, READER doing a write} gets the documented status code, and no
// response to another project's key carries project A's bytes.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "agentd/v1/admin.grpc.pb.h"
#include "agentd/v1/tool.grpc.pb.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "agentd/v1/memory.grpc.pb.h"
#include "agentd/v1/project.grpc.pb.h"
#include "agentd/v1/session.grpc.pb.h"
#include "auth/policy.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "testing/server_harness.h"

namespace agentd {
namespace {

using auth::Access;

// Distinctive bytes only project A's data contains.
constexpr char kMarker[] = "MARKER-A-7f3c9e";
constexpr char kSessionA[] = "sess-a-1";

struct Stubs {
  std::unique_ptr<v1::AgentService::Stub> agents;
  std::unique_ptr<v1::SessionService::Stub> sessions;
  std::unique_ptr<v1::MemoryService::Stub> memory;
  std::unique_ptr<v1::ProjectService::Stub> projects;
  std::unique_ptr<v1::AdminService::Stub> admin;
  std::unique_ptr<v1::ToolService::Stub> tools;
};

// What project A's fixtures are called.
struct Fixture {
  std::string project_a;
  std::string agent_a;
  std::string key_id_a;  // a key of A (target of RevokeApiKey)
};

struct CallResult {
  grpc::Status status;
  std::string bytes;  // every response message, serialized
};

enum class Target {
  kAddressed,  // names one of A's resources: NOT_FOUND for another project
  kScoped,     // acts on the caller's own project (create/list): OK for another project
};

struct Rpc {
  const char* method;
  Target target;
  std::function<CallResult(Stubs&, const Fixture&, grpc::ClientContext*)> call;
};

template <typename Resp>
CallResult Unary(grpc::Status st, const Resp& resp) {
  return {st, resp.SerializeAsString()};
}

template <typename Msg, typename Reader>
CallResult ReadAll(std::unique_ptr<Reader> reader) {
  CallResult out;
  Msg m;
  while (reader->Read(&m)) out.bytes += m.SerializeAsString();
  out.status = reader->Finish();
  return out;
}

v1::RunTurnRequest TurnRequest() {
  v1::RunTurnRequest req;
  req.set_session_id(kSessionA);
  v1::InputMessage* in = req.add_input();
  in->set_role(v1::ROLE_USER);
  in->set_text("hello");
  return req;
}

std::vector<Rpc> AllRpcs() {
  std::vector<Rpc> rpcs;
  auto add = [&](const char* m, Target t,
                 std::function<CallResult(Stubs&, const Fixture&, grpc::ClientContext*)> f) {
    rpcs.push_back({m, t, std::move(f)});
  };
  // ---- AgentService
  add("CreateAgent", Target::kScoped, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::CreateAgentRequest req;
    req.mutable_agent()->set_name("x");
    req.mutable_agent()->set_model("echo");
    v1::Agent resp;
    return Unary(s.agents->CreateAgent(c, req, &resp), resp);
  });
  add("GetAgent", Target::kAddressed, [](Stubs& s, const Fixture& f, grpc::ClientContext* c) {
    v1::GetAgentRequest req;
    req.set_agent_id(f.agent_a);
    v1::Agent resp;
    return Unary(s.agents->GetAgent(c, req, &resp), resp);
  });
  add("ListAgents", Target::kScoped, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::ListAgentsRequest req;
    v1::ListAgentsResponse resp;
    return Unary(s.agents->ListAgents(c, req, &resp), resp);
  });
  add("UpdateAgent", Target::kAddressed, [](Stubs& s, const Fixture& f, grpc::ClientContext* c) {
    v1::UpdateAgentRequest req;
    req.mutable_agent()->set_agent_id(f.agent_a);
    req.mutable_agent()->set_name("changed");
    req.mutable_agent()->set_model("echo");
    v1::Agent resp;
    return Unary(s.agents->UpdateAgent(c, req, &resp), resp);
  });
  add("DeleteAgent", Target::kAddressed, [](Stubs& s, const Fixture& f, grpc::ClientContext* c) {
    v1::DeleteAgentRequest req;
    req.set_agent_id(f.agent_a);
    google::protobuf::Empty resp;
    return Unary(s.agents->DeleteAgent(c, req, &resp), resp);
  });
  // ---- SessionService
  add("CreateSession", Target::kAddressed, [](Stubs& s, const Fixture& f, grpc::ClientContext* c) {
    v1::CreateSessionRequest req;
    req.set_agent_id(f.agent_a);  // A's agent: another project must not find it
    v1::Session resp;
    return Unary(s.sessions->CreateSession(c, req, &resp), resp);
  });
  add("GetSession", Target::kAddressed, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::GetSessionRequest req;
    req.set_session_id(kSessionA);
    v1::Session resp;
    return Unary(s.sessions->GetSession(c, req, &resp), resp);
  });
  add("ListSessions", Target::kScoped, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::ListSessionsRequest req;
    v1::ListSessionsResponse resp;
    return Unary(s.sessions->ListSessions(c, req, &resp), resp);
  });
  add("DeleteSession", Target::kAddressed, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::DeleteSessionRequest req;
    req.set_session_id(kSessionA);
    google::protobuf::Empty resp;
    return Unary(s.sessions->DeleteSession(c, req, &resp), resp);
  });
  add("ForkSession", Target::kAddressed, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::ForkSessionRequest req;
    req.set_session_id(kSessionA);
    v1::Session resp;
    return Unary(s.sessions->ForkSession(c, req, &resp), resp);
  });
  add("RunTurn", Target::kAddressed, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::TurnResult resp;
    return Unary(s.sessions->RunTurn(c, TurnRequest(), &resp), resp);
  });
  add("StreamTurn", Target::kAddressed, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    return ReadAll<v1::TurnEvent>(s.sessions->StreamTurn(c, TurnRequest()));
  });
  add("CancelTurn", Target::kAddressed, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::CancelTurnRequest req;
    req.set_session_id(kSessionA);
    v1::TurnResult resp;
    return Unary(s.sessions->CancelTurn(c, req, &resp), resp);
  });
  add("ListEvents", Target::kAddressed, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::ListEventsRequest req;
    req.set_session_id(kSessionA);
    v1::ListEventsResponse resp;
    return Unary(s.sessions->ListEvents(c, req, &resp), resp);
  });
  add("WatchEvents", Target::kAddressed, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::WatchEventsRequest req;
    req.set_session_id(kSessionA);
    // A permitted watch runs until its deadline: keep it short.
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
    return ReadAll<v1::Event>(s.sessions->WatchEvents(c, req));
  });
  add("GetState", Target::kAddressed, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::GetStateRequest req;
    req.set_session_id(kSessionA);
    req.set_key("k");
    v1::StateEntry resp;
    return Unary(s.sessions->GetState(c, req, &resp), resp);
  });
  add("PutState", Target::kAddressed, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::PutStateRequest req;
    req.set_session_id(kSessionA);
    req.set_key("k");
    req.set_value_json("1");
    v1::StateEntry resp;
    return Unary(s.sessions->PutState(c, req, &resp), resp);
  });
  add("ListState", Target::kAddressed, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::ListStateRequest req;
    req.set_session_id(kSessionA);
    v1::ListStateResponse resp;
    return Unary(s.sessions->ListState(c, req, &resp), resp);
  });
  add("ExportSession", Target::kAddressed, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::ExportSessionRequest req;
    req.set_session_id(kSessionA);
    return ReadAll<v1::ExportChunk>(s.sessions->ExportSession(c, req));
  });
  add("ImportSession", Target::kScoped, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::Session resp;
    auto writer = s.sessions->ImportSession(c, &resp);
    v1::ExportChunk session_chunk;
    session_chunk.mutable_session()->set_agent_id("imported");
    session_chunk.mutable_session()->set_agent_version(1);
    session_chunk.mutable_session()->set_status(v1::SESSION_STATUS_IDLE);
    v1::ExportChunk agent_chunk;
    agent_chunk.mutable_agent()->set_agent_id("imported");
    agent_chunk.mutable_agent()->set_version(1);
    agent_chunk.mutable_agent()->set_name("n");
    agent_chunk.mutable_agent()->set_model("echo");
    writer->Write(session_chunk);
    writer->Write(agent_chunk);
    writer->WritesDone();
    grpc::Status st = writer->Finish();
    return Unary(st, resp);
  });
  add("ReplaySession", Target::kAddressed, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::ReplaySessionRequest req;
    req.set_session_id(kSessionA);
    req.set_model("echo");
    v1::ReplaySessionResponse resp;
    return Unary(s.sessions->ReplaySession(c, req, &resp), resp);
  });
  // ---- MemoryService
  add("PutMemory", Target::kScoped, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::PutMemoryRequest req;
    req.set_namespace_("users/a");
    req.set_text("t");
    v1::MemoryRecord resp;
    return Unary(s.memory->PutMemory(c, req, &resp), resp);
  });
  add("GetMemory", Target::kAddressed, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::GetMemoryRequest req;
    req.set_namespace_("users/a");
    req.set_key("marker");
    v1::MemoryRecord resp;
    return Unary(s.memory->GetMemory(c, req, &resp), resp);
  });
  add("ListMemories", Target::kScoped, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::ListMemoriesRequest req;
    v1::ListMemoriesResponse resp;
    return Unary(s.memory->ListMemories(c, req, &resp), resp);
  });
  add("SearchMemory", Target::kScoped, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::SearchMemoryRequest req;
    req.set_query("apples");
    v1::SearchMemoryResponse resp;
    return Unary(s.memory->SearchMemory(c, req, &resp), resp);
  });
  add("DeleteMemory", Target::kAddressed, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::DeleteMemoryRequest req;
    req.set_namespace_("users/a");
    req.set_key("marker");
    google::protobuf::Empty resp;
    return Unary(s.memory->DeleteMemory(c, req, &resp), resp);
  });
  // ---- ProjectService
  add("CreateProject", Target::kScoped, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::CreateProjectRequest req;
    req.set_name("another");
    v1::Project resp;
    return Unary(s.projects->CreateProject(c, req, &resp), resp);
  });
  add("GetProject", Target::kAddressed, [](Stubs& s, const Fixture& f, grpc::ClientContext* c) {
    v1::GetProjectRequest req;
    req.set_project_id(f.project_a);
    v1::Project resp;
    return Unary(s.projects->GetProject(c, req, &resp), resp);
  });
  add("ListProjects", Target::kScoped, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::ListProjectsRequest req;
    v1::ListProjectsResponse resp;
    return Unary(s.projects->ListProjects(c, req, &resp), resp);
  });
  add("CreateApiKey", Target::kAddressed, [](Stubs& s, const Fixture& f, grpc::ClientContext* c) {
    v1::CreateApiKeyRequest req;
    req.set_project_id(f.project_a);
    req.set_role(v1::API_KEY_ROLE_ADMIN);
    req.set_name("intruder");
    v1::CreateApiKeyResponse resp;
    return Unary(s.projects->CreateApiKey(c, req, &resp), resp);
  });
  add("ListApiKeys", Target::kAddressed, [](Stubs& s, const Fixture& f, grpc::ClientContext* c) {
    v1::ListApiKeysRequest req;
    req.set_project_id(f.project_a);
    v1::ListApiKeysResponse resp;
    return Unary(s.projects->ListApiKeys(c, req, &resp), resp);
  });
  add("RevokeApiKey", Target::kAddressed, [](Stubs& s, const Fixture& f, grpc::ClientContext* c) {
    v1::RevokeApiKeyRequest req;
    req.set_key_id(f.key_id_a);
    google::protobuf::Empty resp;
    return Unary(s.projects->RevokeApiKey(c, req, &resp), resp);
  });
  add("GetUsage", Target::kAddressed, [](Stubs& s, const Fixture& f, grpc::ClientContext* c) {
    v1::GetUsageRequest req;
    req.set_project_id(f.project_a);
    v1::GetUsageResponse resp;
    return Unary(s.projects->GetUsage(c, req, &resp), resp);
  });
  add("SetLimits", Target::kAddressed, [](Stubs& s, const Fixture& f, grpc::ClientContext* c) {
    v1::SetLimitsRequest req;
    req.set_project_id(f.project_a);
    req.mutable_limits()->set_requests_per_minute(1);
    v1::Project resp;
    return Unary(s.projects->SetLimits(c, req, &resp), resp);
  });
  add("ListAuditEvents", Target::kAddressed,
      [](Stubs& s, const Fixture& f, grpc::ClientContext* c) {
        v1::ListAuditEventsRequest req;
        req.set_project_id(f.project_a);
        v1::ListAuditEventsResponse resp;
        return Unary(s.projects->ListAuditEvents(c, req, &resp), resp);
      });
  // ---- AdminService (operator only; relative paths would be INVALID_ARGUMENT if ever let in)
  add("CreateBackup", Target::kScoped, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::CreateBackupRequest req;
    req.set_backup_dir("relative/backups");
    v1::BackupInfo resp;
    return Unary(s.admin->CreateBackup(c, req, &resp), resp);
  });
  add("ListBackups", Target::kScoped, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::ListBackupsRequest req;
    req.set_backup_dir("relative/backups");
    v1::ListBackupsResponse resp;
    return Unary(s.admin->ListBackups(c, req, &resp), resp);
  });
  add("RestoreBackup", Target::kScoped, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::RestoreBackupRequest req;
    req.set_backup_dir("relative/backups");
    req.set_target_data_dir("relative/restored");
    v1::RestoreBackupResponse resp;
    return Unary(s.admin->RestoreBackup(c, req, &resp), resp);
  });
  // ---- ToolService (any role; the caller's own project's allow-list)
  add("ListToolServers", Target::kScoped, [](Stubs& s, const Fixture&, grpc::ClientContext* c) {
    v1::ListToolServersRequest req;
    v1::ListToolServersResponse resp;
    return Unary(s.tools->ListToolServers(c, req, &resp), resp);
  });
  return rpcs;
}

class AuthMatrixTest : public ::testing::Test {
 protected:
  void SetUp() override {
    raw_ = grpc::CreateChannel(harness_.address(), grpc::InsecureChannelCredentials());
    stubs_.agents = v1::AgentService::NewStub(raw_);
    stubs_.sessions = v1::SessionService::NewStub(raw_);
    stubs_.memory = v1::MemoryService::NewStub(raw_);
    stubs_.projects = v1::ProjectService::NewStub(raw_);
    stubs_.admin = v1::AdminService::NewStub(raw_);
    stubs_.tools = v1::ToolService::NewStub(raw_);

    const std::string op = harness_.admin_key();
    fixture_.project_a = CreateProject(op, "project-a");
    project_b_ = CreateProject(op, "project-b");
    admin_a_ = CreateKey(op, fixture_.project_a, v1::API_KEY_ROLE_ADMIN, &fixture_.key_id_a);
    member_a_ = CreateKey(op, fixture_.project_a, v1::API_KEY_ROLE_MEMBER);
    reader_a_ = CreateKey(op, fixture_.project_a, v1::API_KEY_ROLE_READER);
    std::string revoked_id;
    revoked_a_ = CreateKey(op, fixture_.project_a, v1::API_KEY_ROLE_ADMIN, &revoked_id);
    admin_b_ = CreateKey(op, project_b_, v1::API_KEY_ROLE_ADMIN);
    member_b_ = CreateKey(op, project_b_, v1::API_KEY_ROLE_MEMBER);
    {
      v1::RevokeApiKeyRequest req;
      req.set_key_id(revoked_id);
      google::protobuf::Empty resp;
      auto c = Ctx(op);
      ASSERT_TRUE(stubs_.projects->RevokeApiKey(c.get(), req, &resp).ok());
    }
    // Project A: an agent whose instructions carry the marker, a session, one turn.
    v1::CreateAgentRequest areq;
    areq.mutable_agent()->set_name("agent-a");
    areq.mutable_agent()->set_model("echo");
    areq.mutable_agent()->set_instructions(kMarker);
    v1::Agent agent;
    auto c1 = Ctx(member_a_);
    ASSERT_TRUE(stubs_.agents->CreateAgent(c1.get(), areq, &agent).ok());
    fixture_.agent_a = agent.agent_id();
    v1::CreateSessionRequest sreq;
    sreq.set_agent_id(agent.agent_id());
    sreq.set_session_id(kSessionA);
    (*sreq.mutable_metadata())["owner"] = kMarker;
    v1::Session session;
    auto c2 = Ctx(member_a_);
    ASSERT_TRUE(stubs_.sessions->CreateSession(c2.get(), sreq, &session).ok());
    v1::RunTurnRequest treq = TurnRequest();
    treq.mutable_input(0)->set_text(kMarker);
    v1::PutMemoryRequest mreq;
    mreq.set_namespace_("users/a");
    mreq.set_key("marker");
    mreq.set_text(std::string(kMarker) + " likes apples");
    v1::MemoryRecord mrec;
    auto cm = Ctx(member_a_);
    ASSERT_TRUE(stubs_.memory->PutMemory(cm.get(), mreq, &mrec).ok());
    v1::TurnResult result;
    auto c3 = Ctx(member_a_);
    grpc::Status st = stubs_.sessions->RunTurn(c3.get(), treq, &result);
    ASSERT_TRUE(st.ok()) << st.error_message();
  }

  std::unique_ptr<grpc::ClientContext> Ctx(const std::string& authorization_key) {
    auto c = testing::Ctx(10);
    if (!authorization_key.empty()) c->AddMetadata("authorization", "Bearer " + authorization_key);
    return c;
  }

  std::string CreateProject(const std::string& key, const std::string& name) {
    v1::CreateProjectRequest req;
    req.set_name(name);
    v1::Project p;
    auto c = Ctx(key);
    grpc::Status st = stubs_.projects->CreateProject(c.get(), req, &p);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return p.project_id();
  }

  std::string CreateKey(const std::string& key, const std::string& project, v1::ApiKeyRole role,
                        std::string* key_id = nullptr) {
    v1::CreateApiKeyRequest req;
    req.set_project_id(project);
    req.set_role(role);
    req.set_name("k");
    v1::CreateApiKeyResponse resp;
    auto c = Ctx(key);
    grpc::Status st = stubs_.projects->CreateApiKey(c.get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    if (key_id != nullptr) *key_id = resp.key().key_id();
    return resp.secret();
  }

  // Calls `rpc` with the raw header value `authorization` ("" = no header).
  CallResult CallWithHeader(const Rpc& rpc, const std::string& authorization) {
    auto c = testing::Ctx(10);
    if (!authorization.empty()) c->AddMetadata("authorization", authorization);
    return rpc.call(stubs_, fixture_, c.get());
  }

  testing::ServerHarness harness_;
  std::shared_ptr<grpc::Channel> raw_;  // no automatic key
  Stubs stubs_;
  Fixture fixture_;
  std::string project_b_;
  std::string admin_a_, member_a_, reader_a_, revoked_a_, admin_b_, member_b_;
};

TEST_F(AuthMatrixTest, PolicyTableCoversEveryRpcOfTheMatrix) {
  for (const Rpc& rpc : AllRpcs()) {
    Access access;
    EXPECT_TRUE(auth::AccessFor(rpc.method, &access)) << rpc.method;
  }
}

TEST_F(AuthMatrixTest, BadCredentialsAreUnauthenticatedForEveryRpc) {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"no key", ""},
      {"empty bearer", "Bearer "},
      {"wrong scheme", "Basic " + member_a_},
      {"malformed key", "Bearer not a valid key with spaces"},
      {"too short", "Bearer abc"},
      {"unknown key", "Bearer agd_k0123456789abcdef_" + std::string(64, '0')},
      {"right id, wrong secret", "Bearer " + member_a_.substr(0, member_a_.size() - 4) + "ffff"},
      {"revoked key", "Bearer " + revoked_a_},
  };
  for (const Rpc& rpc : AllRpcs()) {
    for (const auto& [what, header] : bad) {
      CallResult r = CallWithHeader(rpc, header);
      EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
          << rpc.method << " with " << what << ": " << r.status.error_message();
      EXPECT_TRUE(r.bytes.empty()) << rpc.method << " with " << what;
      if (header.size() > 7) {
        const std::string presented = header.substr(header.find(' ') + 1);
        if (presented.size() >= 8) {
          EXPECT_FALSE(absl::StrContains(r.status.error_message(), presented))
              << rpc.method << " echoed the presented key";
        }
      }
    }
  }
}

TEST_F(AuthMatrixTest, AnotherProjectsKeyFindsNothingOfProjectA) {
  for (const auto& [role_name, key, role] :
       std::vector<std::tuple<std::string, std::string, v1::ApiKeyRole>>{
           {"B admin", admin_b_, v1::API_KEY_ROLE_ADMIN},
           {"B member", member_b_, v1::API_KEY_ROLE_MEMBER}}) {
    for (const Rpc& rpc : AllRpcs()) {
      Access access;
      ASSERT_TRUE(auth::AccessFor(rpc.method, &access));
      grpc::StatusCode want;
      if (!auth::RoleAllows(role, project_b_, access)) {
        want = grpc::StatusCode::PERMISSION_DENIED;
      } else if (rpc.target == Target::kAddressed) {
        want = grpc::StatusCode::NOT_FOUND;
      } else {
        want = grpc::StatusCode::OK;
      }
      CallResult r = CallWithHeader(rpc, "Bearer " + key);
      EXPECT_EQ(r.status.error_code(), want)
          << rpc.method << " as " << role_name << ": " << r.status.error_message();
      EXPECT_FALSE(absl::StrContains(r.bytes, kMarker)) << rpc.method << " leaked A's data";
      EXPECT_FALSE(absl::StrContains(r.bytes, fixture_.project_a)) << rpc.method;
      EXPECT_FALSE(absl::StrContains(r.bytes, fixture_.agent_a)) << rpc.method;
      EXPECT_FALSE(absl::StrContains(r.bytes, kSessionA)) << rpc.method;
      EXPECT_FALSE(absl::StrContains(r.status.error_message(), kMarker)) << rpc.method;
    }
  }
  // Nothing B did changed A: the agent, session and key are intact.
  v1::GetSessionRequest req;
  req.set_session_id(kSessionA);
  v1::Session s;
  auto c = Ctx(member_a_);
  ASSERT_TRUE(stubs_.sessions->GetSession(c.get(), req, &s).ok());
  EXPECT_EQ(s.last_seq(), 4);  // TURN_STARTED, user, assistant, TURN_COMPLETED
  v1::ListApiKeysRequest lreq;
  v1::ListApiKeysResponse keys;
  auto c2 = Ctx(admin_a_);
  ASSERT_TRUE(stubs_.projects->ListApiKeys(c2.get(), lreq, &keys).ok());
  for (const v1::ApiKey& k : keys.keys()) {
    EXPECT_NE(k.name(), "intruder");
    if (k.key_id() == fixture_.key_id_a) {
      EXPECT_FALSE(k.revoked());
    }
  }
}

TEST_F(AuthMatrixTest, ReaderMayReadButNotWrite) {
  for (const Rpc& rpc : AllRpcs()) {
    Access access;
    ASSERT_TRUE(auth::AccessFor(rpc.method, &access));
    CallResult r = CallWithHeader(rpc, "Bearer " + reader_a_);
    if (access == Access::kRead) {
      EXPECT_NE(r.status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << rpc.method;
      EXPECT_NE(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << rpc.method;
    } else {
      EXPECT_EQ(r.status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
          << rpc.method << ": " << r.status.error_message();
      EXPECT_TRUE(r.bytes.empty()) << rpc.method;
    }
  }
  // The denied writes changed nothing.
  v1::GetSessionRequest req;
  req.set_session_id(kSessionA);
  v1::Session s;
  auto c = Ctx(member_a_);
  ASSERT_TRUE(stubs_.sessions->GetSession(c.get(), req, &s).ok());
  EXPECT_EQ(s.last_seq(), 4);
}

TEST_F(AuthMatrixTest, ProjectAdminManagesOnlyItsProjectAndOnlyTheOperatorCreatesProjects) {
  auto r = CallWithHeader(AllRpcs()[0], "Bearer " + admin_a_);  // CreateAgent: allowed
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
  for (const Rpc& rpc : AllRpcs()) {
    if (std::string(rpc.method) != "CreateProject") continue;
    EXPECT_EQ(CallWithHeader(rpc, "Bearer " + admin_a_).status.error_code(),
              grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_TRUE(CallWithHeader(rpc, "Bearer " + harness_.admin_key()).status.ok());
  }
  // A's admin lists A's keys (empty project_id = own project) and sees no key of B.
  v1::ListApiKeysRequest req;
  v1::ListApiKeysResponse resp;
  auto c = Ctx(admin_a_);
  ASSERT_TRUE(stubs_.projects->ListApiKeys(c.get(), req, &resp).ok());
  EXPECT_EQ(resp.keys_size(), 4);  // admin, member, reader, revoked
  for (const auto& k : resp.keys()) EXPECT_EQ(k.project_id(), fixture_.project_a);
}

TEST_F(AuthMatrixTest, RevocationTakesEffectOnTheNextCall) {
  std::string id;
  const std::string key = CreateKey(harness_.admin_key(), fixture_.project_a,
                                    v1::API_KEY_ROLE_MEMBER, &id);
  v1::ListAgentsRequest lreq;
  v1::ListAgentsResponse lresp;
  auto c1 = Ctx(key);
  ASSERT_TRUE(stubs_.agents->ListAgents(c1.get(), lreq, &lresp).ok());
  v1::RevokeApiKeyRequest rreq;
  rreq.set_key_id(id);
  google::protobuf::Empty e;
  auto c2 = Ctx(admin_a_);
  ASSERT_TRUE(stubs_.projects->RevokeApiKey(c2.get(), rreq, &e).ok());
  auto c3 = Ctx(key);
  EXPECT_EQ(stubs_.agents->ListAgents(c3.get(), lreq, &lresp).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
}

TEST_F(AuthMatrixTest, HealthNeedsNoKey) {
  auto stub = grpc::health::v1::Health::NewStub(raw_);
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  auto c = testing::Ctx(5);
  grpc::Status st = stub->Check(c.get(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
}

}  // namespace
}  // namespace agentd
