// Upgrades: a data dir written by an earlier build (checked in under tests/fixtures/datadir-v1,
// with what it holds in expected.json) must open in this build with every record intact and
// keep working. Regenerate the fixture only when the format version changes, with
//   AGENTD_WRITE_FIXTURE=$PWD/tests/fixtures/datadir-v1 build/bin/upgrade_test
// (writes the fixture instead of testing it). An older build refusing a newer format is tested
// in rocksdb_store_test (RefusesNewerFormat).
#include <gtest/gtest.h>
#include <google/protobuf/util/json_util.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "agentd/v1/memory.grpc.pb.h"
#include "agentd/v1/project.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "store/schema.h"
#include "testing/server_harness.h"

#ifndef AGENTD_FIXTURE_DIR
#error "AGENTD_FIXTURE_DIR must name tests/fixtures"
#endif

namespace agentd {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string ToJson(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(m, &out, options).ok());
  return out;
}

grpc::Status Turn(testing::ServerHarness& h, const std::string& session, const std::string& text,
                  v1::TurnResult* out) {
  return h.Send(session, text, out);
}

// What the fixture holds: written next to the data files.
json WriteFixtureContent(testing::ServerHarness& h) {
  json expected;
  auto projects = v1::ProjectService::NewStub(h.channel());
  v1::CreateApiKeyRequest kreq;
  kreq.set_role(v1::API_KEY_ROLE_MEMBER);
  kreq.set_name("fixture-member");
  v1::CreateApiKeyResponse key;
  auto c1 = testing::Ctx();
  EXPECT_TRUE(projects->CreateApiKey(c1.get(), kreq, &key).ok());
  expected["member_key"] = key.secret();

  const v1::Agent agent = h.CreateAgent("echo", "Answer briefly.", {"get_weather"});
  expected["agent_id"] = agent.agent_id();
  h.CreateSession(agent.agent_id(), "fixture-session");
  v1::TurnResult r;
  EXPECT_TRUE(Turn(h, "fixture-session", "hello from an older build", &r).ok());
  EXPECT_TRUE(Turn(h, "fixture-session", "/tool get_weather {\"city\": \"Paris\"}", &r).ok());
  EXPECT_EQ(r.status(), v1::TURN_STATUS_REQUIRES_ACTION);
  v1::RunTurnRequest answer;
  answer.set_session_id("fixture-session");
  v1::ToolResult* tr = answer.add_tool_results();
  tr->set_tool_call_id(r.required_tool_calls(0).id());
  tr->set_output("sunny");
  EXPECT_TRUE(h.Run(answer, &r).ok());

  v1::PutStateRequest sreq;
  sreq.set_session_id("fixture-session");
  sreq.set_key("cart");
  sreq.set_value_json("{\"items\":[1,2]}");
  v1::StateEntry state;
  auto c2 = testing::Ctx();
  EXPECT_TRUE(h.sessions().PutState(c2.get(), sreq, &state).ok());

  auto memory = v1::MemoryService::NewStub(h.channel());
  v1::PutMemoryRequest mreq;
  mreq.set_namespace_("users/alice");
  mreq.set_key("pref");
  mreq.set_text("alice prefers window seats");
  v1::MemoryRecord rec;
  auto c3 = testing::Ctx();
  EXPECT_TRUE(memory->PutMemory(c3.get(), mreq, &rec).ok());

  for (const v1::Event& e : h.AllEvents("fixture-session")) {
    expected["events"].push_back(ToJson(e));
  }
  expected["state"] = ToJson(state);
  expected["format_version"] = store::schema::kFormatVersion;
  return expected;
}

TEST(UpgradeTest, ADataDirFromAnEarlierBuildOpensWithEverythingIntact) {
  if (const char* out = std::getenv("AGENTD_WRITE_FIXTURE")) {
    testing::ServerHarness h;
    const json expected = WriteFixtureContent(h);
    const std::string data_dir = h.data_dir();
    h.Stop();
    fs::remove_all(out);
    fs::create_directories(out);
    fs::copy(data_dir, fs::path(out) / "data", fs::copy_options::recursive);
    for (const auto& entry : fs::directory_iterator(fs::path(out) / "data")) {
      const std::string name = entry.path().filename().string();
      if (name.rfind("LOG", 0) == 0 || name == "LOCK") fs::remove(entry.path());
    }
    std::ofstream(fs::path(out) / "expected.json") << expected.dump(2) << "\n";
    GTEST_SKIP() << "wrote the fixture to " << out;
  }

  const fs::path fixture = fs::path(AGENTD_FIXTURE_DIR) / "datadir-v1";
  std::ifstream in(fixture / "expected.json");
  ASSERT_TRUE(in.good()) << "missing " << (fixture / "expected.json");
  const json expected = json::parse(in);
  testing::TempDir copy;
  const std::string data_dir = copy.Sub("data");
  fs::copy(fixture / "data", data_dir, fs::copy_options::recursive);
  EXPECT_LE(expected["format_version"].get<int>(), store::schema::kFormatVersion);

  testing::ServerHarness h([&](server::Config* c) { c->data_dir = data_dir; });
  // Every event, byte for byte as JSON.
  const std::vector<v1::Event> events = h.AllEvents("fixture-session");
  ASSERT_EQ(events.size(), expected["events"].size());
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(ToJson(events[i]), expected["events"][i].get<std::string>()) << "event " << i;
  }
  // State, memory, the agent and the member key all survived.
  v1::GetStateRequest sreq;
  sreq.set_session_id("fixture-session");
  sreq.set_key("cart");
  v1::StateEntry state;
  auto c1 = testing::Ctx();
  ASSERT_TRUE(h.sessions().GetState(c1.get(), sreq, &state).ok());
  EXPECT_EQ(ToJson(state), expected["state"].get<std::string>());

  auto memory = v1::MemoryService::NewStub(h.channel());
  v1::SearchMemoryRequest mreq;
  mreq.set_query("window seats");
  v1::SearchMemoryResponse found;
  auto c2 = testing::Ctx();
  ASSERT_TRUE(memory->SearchMemory(c2.get(), mreq, &found).ok());
  ASSERT_EQ(found.results_size(), 1);
  EXPECT_EQ(found.results(0).record().key(), "pref");

  auto member = h.NewChannel(grpc::InsecureChannelCredentials(),
                             expected["member_key"].get<std::string>());
  auto agents = v1::AgentService::NewStub(member);
  v1::GetAgentRequest areq;
  areq.set_agent_id(expected["agent_id"].get<std::string>());
  v1::Agent agent;
  auto c3 = testing::Ctx();
  ASSERT_TRUE(agents->GetAgent(c3.get(), areq, &agent).ok());
  EXPECT_EQ(agent.instructions(), "Answer briefly.");

  // The old session goes on where it stopped.
  v1::TurnResult r;
  ASSERT_TRUE(h.Send("fixture-session", "still here?", &r).ok());
  EXPECT_EQ(r.status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(r.output_text(), "still here?");
  EXPECT_EQ(r.events(0).seq(), static_cast<int64_t>(events.size()) + 1);
}

}  // namespace
}  // namespace agentd
