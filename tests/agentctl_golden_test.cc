// Golden tests of agentctl's output: the real binary against an in-process agentd, one fixed
// scenario, and every read command's output in table, json and yaml compared with the files in
// tests/golden/agentctl/. Random ids and times are replaced by placeholders of the same length
// (so tables stay aligned). Regenerate after an intended change with
//   AGENTD_UPDATE_GOLDEN=1 build/bin/agentctl_golden_test
// and review the diff of tests/golden/agentctl/.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "agentctl_runner.h"
#include "json_yaml_texts.h"
#include "nlohmann/json.hpp"
#include "testing/server_harness.h"
#include "testing/temp_dir.h"
#include "yaml-cpp/yaml.h"

namespace agentd {
namespace {

using ::testing::HasSubstr;
using testing::Texts;

bool UpdateGolden() {
  const char* update = std::getenv("AGENTD_UPDATE_GOLDEN");
  return update != nullptr && std::string(update) == "1";
}

// Times become YYYY-MM-DDTHH:MM:SSZ (and bare dates YYYY-MM-DD); each random id becomes its
// prefix and a counter, zero-padded to the id's length, numbered in order of appearance.
std::string Normalize(const std::string& text) {
  static const std::regex kTime(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z)");
  static const std::regex kDate(R"(\b\d{4}-\d{2}-\d{2}\b)");
  static const std::regex kId(R"(\b(agent|sess|turn|mem)_[0-9a-f]{32}\b)");
  std::string out = std::regex_replace(text, kTime, "YYYY-MM-DDTHH:MM:SSZ");
  out = std::regex_replace(out, kDate, "YYYY-MM-DD");
  std::map<std::string, std::string> ids;
  std::map<std::string, int> counters;
  std::string result;
  auto begin = std::sregex_iterator(out.begin(), out.end(), kId);
  size_t last = 0;
  for (auto it = begin; it != std::sregex_iterator(); ++it) {
    const std::string id = it->str();
    const std::string prefix = (*it)[1].str() + "_";
    auto [entry, added] = ids.emplace(id, "");
    if (added) {
      const std::string n = std::to_string(++counters[prefix]);
      entry->second = prefix + std::string(id.size() - prefix.size() - n.size(), '0') + n;
    }
    result += out.substr(last, it->position() - last) + entry->second;
    last = it->position() + it->length();
  }
  return result + out.substr(last);
}

void ExpectGolden(const std::string& name, const std::string& actual) {
  const std::string path = std::string(AGENTD_GOLDEN_DIR) + "/" + name;
  if (UpdateGolden()) {
    testing::WriteWholeFile(path, actual);
    return;
  }
  std::ifstream exists(path);
  if (!exists) {
    ADD_FAILURE() << "no golden file " << path << "; create it with AGENTD_UPDATE_GOLDEN=1";
    return;
  }
  EXPECT_EQ(actual, testing::ReadWholeFile(path))
      << "agentctl output differs from " << path
      << "; if the change is intended, regenerate with AGENTD_UPDATE_GOLDEN=1 and review the diff";
}

class AgentctlGoldenTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    harness_ = new testing::ServerHarness();
    scratch_ = new testing::TempDir();
    seeded_ = Seed();
  }
  static void TearDownTestSuite() {
    delete harness_;
    delete scratch_;
  }

  void SetUp() override { ASSERT_TRUE(seeded_) << "the scenario could not be set up"; }

  static testing::CliResult Cli(const std::vector<std::string>& args) {
    return testing::RunAgentctl(
        {harness_->address(), harness_->admin_key(), args, "", scratch_->path()});
  }

  // Runs a command that must succeed and returns its stdout.
  static std::string Out(const std::vector<std::string>& args) {
    const testing::CliResult r = Cli(args);
    EXPECT_EQ(r.code, 0) << ::testing::PrintToString(args) << ": " << r.all();
    return r.out;
  }

  // The scenario: one agent with a client tool, two sessions with fixed ids, a tool round trip
  // on golden-a, two state entries, three memory records.
  static bool Seed() {
    const testing::CliResult agent =
        Cli({"agent", "create", "--name", "golden", "--model", "echo", "--instructions",
             "Answer briefly.", "--tool", "get_weather:client:Weather for a city", "--meta",
             "team=docs", "-o", "json"});
    if (agent.code != 0) return false;
    agent_id_ = nlohmann::json::parse(agent.out).value("agent_id", "");
    const std::vector<std::vector<std::string>> steps = {
        {"session", "create", "--agent", agent_id_, "--id", "golden-a", "--meta", "user=alice"},
        {"session", "create", "--agent", agent_id_, "--id", "golden-b"},
        {"send", "golden-a", "hello golden"},
        {"send", "golden-a", R"(/tool get_weather {"city": "Paris"})"},
        {"send", "golden-a", "--tool-result", R"(call_echo_1={"temp_c": 21})"},
        {"state", "put", "golden-a", "cart", R"({"items": 2, "total": 9.5})"},
        {"state", "put", "golden-a", "note", R"("call back on Monday")"},
        {"memory", "put", "-n", "users/alice", "-k", "tea", "Alice drinks green tea every morning",
         "--meta", "source=chat"},
        {"memory", "put", "-n", "users/alice", "-k", "coffee", "Alice never drinks coffee"},
        {"memory", "put", "-n", "users/bob", "-k", "tea", "Bob prefers black tea, no sugar"},
    };
    for (const auto& step : steps) {
      const testing::CliResult r = Cli(step);
      if (r.code != 0) {
        ADD_FAILURE() << ::testing::PrintToString(step) << ": " << r.all();
        return false;
      }
    }
    return true;
  }

  // Compares the command's output in the three formats with `<name>.table|json|yaml`, and checks
  // that the YAML holds exactly the JSON's content.
  static void CheckAllFormats(const std::string& name, std::vector<std::string> args) {
    std::string json_out;
    std::string yaml_out;
    for (const std::string format : {"table", "json", "yaml"}) {
      std::vector<std::string> with_format = args;
      with_format.insert(with_format.end(), {"-o", format});
      const std::string out = Out(with_format);
      ExpectGolden(name + "." + format, Normalize(out));
      (format == "json" ? json_out : yaml_out) = out;
    }
    const nlohmann::json json = nlohmann::json::parse(json_out, nullptr, false);
    ASSERT_FALSE(json.is_discarded()) << json_out;
    EXPECT_EQ(Texts(YAML::Load(yaml_out)), Texts(json)) << name;
  }

  static testing::ServerHarness* harness_;
  static testing::TempDir* scratch_;
  static bool seeded_;
  static std::string agent_id_;
};

testing::ServerHarness* AgentctlGoldenTest::harness_ = nullptr;
testing::TempDir* AgentctlGoldenTest::scratch_ = nullptr;
bool AgentctlGoldenTest::seeded_ = false;
std::string AgentctlGoldenTest::agent_id_;

TEST(AgentctlNormalizeTest, KeepsLengthsAndNumbersIdsInOrder) {
  const std::string a = "agent_" + std::string(31, 'f') + "a";
  const std::string b = "agent_" + std::string(32, '0');
  EXPECT_EQ(Normalize(a + " " + b + " " + a + " 2024-05-01T12:00:00.123Z 2024-05-01 x"),
            "agent_" + std::string(31, '0') + "1 agent_" + std::string(31, '0') + "2 agent_" +
                std::string(31, '0') + "1 YYYY-MM-DDTHH:MM:SSZ YYYY-MM-DD x");
  EXPECT_EQ(Normalize("sess_123 golden-a"), "sess_123 golden-a");  // not a random id
}

TEST_F(AgentctlGoldenTest, AgentGet) { CheckAllFormats("agent_get", {"agent", "get", agent_id_}); }

TEST_F(AgentctlGoldenTest, AgentList) { CheckAllFormats("agent_list", {"agent", "list"}); }

TEST_F(AgentctlGoldenTest, SessionGet) {
  CheckAllFormats("session_get", {"session", "get", "golden-a"});
}

TEST_F(AgentctlGoldenTest, SessionList) {
  CheckAllFormats("session_list", {"session", "list", "--agent", agent_id_});
}

TEST_F(AgentctlGoldenTest, Events) { CheckAllFormats("events", {"events", "golden-a"}); }

TEST_F(AgentctlGoldenTest, StateList) {
  CheckAllFormats("state_list", {"state", "list", "golden-a"});
}

TEST_F(AgentctlGoldenTest, MemorySearch) {
  CheckAllFormats("memory_search", {"memory", "search", "green tea", "--prefix", "users/"});
}

TEST_F(AgentctlGoldenTest, Usage) { CheckAllFormats("usage", {"usage", "--by", "model"}); }

// A stream: JSON Lines, or YAML documents each after `---`, with the same content.
TEST_F(AgentctlGoldenTest, FollowedEventsStream) {
  const std::vector<std::string> args = {"events",   "golden-a", "--after", "4",
                                         "--follow", "--limit",  "3"};
  std::vector<std::string> json_args = args;
  json_args.insert(json_args.end(), {"-o", "json"});
  std::vector<std::string> yaml_args = args;
  yaml_args.insert(yaml_args.end(), {"-o", "yaml"});
  const std::string json_out = Out(json_args);
  const std::string yaml_out = Out(yaml_args);
  ExpectGolden("events_follow.jsonl", Normalize(json_out));
  ExpectGolden("events_follow.yaml", Normalize(yaml_out));

  std::vector<nlohmann::json> from_json;
  std::istringstream lines(json_out);
  for (std::string line; std::getline(lines, line);) {
    from_json.push_back(Texts(nlohmann::json::parse(line)));
  }
  std::vector<nlohmann::json> from_yaml;
  for (const YAML::Node& doc : YAML::LoadAll(yaml_out)) from_yaml.push_back(Texts(doc));
  ASSERT_EQ(from_json.size(), 3u);
  EXPECT_EQ(from_yaml, from_json);
  EXPECT_EQ(from_json[0].value("seq", ""), "5");
}

}  // namespace
}  // namespace agentd
