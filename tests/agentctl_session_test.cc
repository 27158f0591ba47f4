// agentctl's session-side commands end to end: the real binary against an in-process agentd
// (real RocksDB in a temp dir, echo and scripted models). Chat with piped stdin and the echo
// model's tool flow, turn cancel, fork, export -> import, state compare-and-set, memory, agent
// update, and the one-line errors and exit codes for bad input, a server that is down and a
// wrong key.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agentctl_runner.h"
#include "nlohmann/json.hpp"
#include "testing/free_port.h"
#include "testing/server_harness.h"
#include "testing/temp_dir.h"

namespace agentd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

size_t LineCount(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

class AgentctlSessionTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    harness_ = new testing::ServerHarness();
    scratch_ = new testing::TempDir();
  }
  static void TearDownTestSuite() {
    delete harness_;
    delete scratch_;
  }

  static testing::CliResult Cli(const std::vector<std::string>& args,
                                const std::string& stdin_text = "") {
    return testing::RunAgentctl(
        {harness_->address(), harness_->admin_key(), args, stdin_text, scratch_->path()});
  }

  // Runs a command the server must refuse: exit code 1 and stderr starting "error: <code>: ".
  // Returns its result for further checks.
  static testing::CliResult CliError(const std::vector<std::string>& args, const std::string& code,
                                     const std::string& stdin_text = "") {
    testing::CliResult r = Cli(args, stdin_text);
    EXPECT_EQ(r.code, 1) << ::testing::PrintToString(args) << ": " << r.all();
    EXPECT_THAT(r.err, StartsWith("error: " + code + ": ")) << ::testing::PrintToString(args);
    return r;
  }

  static nlohmann::json Json(std::vector<std::string> args) {
    args.insert(args.end(), {"-o", "json"});
    const testing::CliResult r = Cli(args);
    EXPECT_EQ(r.code, 0) << ::testing::PrintToString(args) << ": " << r.all();
    return nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  }

  // An echo agent with the client tool get_weather, and a session of it with id `session_id`.
  static std::string NewSession(const std::string& session_id, const std::string& model = "echo") {
    const std::string agent_id = Json({"agent", "create", "--name", "cli-" + session_id, "--model",
                                       model, "--tool", "get_weather:client:Weather for a city"})
                                     .value("agent_id", "");
    EXPECT_FALSE(agent_id.empty());
    EXPECT_EQ(Json({"session", "create", "--agent", agent_id, "--id", session_id})
                  .value("session_id", ""),
              session_id);
    return agent_id;
  }

  static testing::ServerHarness* harness_;
  static testing::TempDir* scratch_;
};

testing::ServerHarness* AgentctlSessionTest::harness_ = nullptr;
testing::TempDir* AgentctlSessionTest::scratch_ = nullptr;

TEST_F(AgentctlSessionTest, ChatStreamsRepliesListsToolsAndStateAndQuits) {
  NewSession("chat-1");
  ASSERT_EQ(Cli({"state", "put", "chat-1", "cart", R"({"items": 2})"}).code, 0);
  const testing::CliResult r =
      Cli({"chat", "chat-1"}, "hello from a pipe\n\n/tools\n/state\n/quit\nnever sent\n");
  ASSERT_EQ(r.code, 0) << r.all();
  EXPECT_THAT(r.out, StartsWith("hello from a pipe\n"));  // the echo reply; no prompt
  EXPECT_THAT(r.out, HasSubstr("get_weather  client  Weather for a city"));
  EXPECT_THAT(r.out, HasSubstr("cart  1        {\"items\": 2}"));
  EXPECT_EQ(r.err, "");

  // One turn ran: the line after /quit was not sent.
  const std::vector<v1::Event> events = harness_->AllEvents("chat-1");
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[1].message().text(), "hello from a pipe");
  EXPECT_EQ(events[2].message().text(), "hello from a pipe");
  EXPECT_EQ(events[3].turn().status(), v1::TURN_STATUS_COMPLETED);
}

TEST_F(AgentctlSessionTest, ChatRunsTheEchoToolFlow) {
  NewSession("chat-tool");
  const testing::CliResult r =
      Cli({"chat", "chat-tool"},
          "/tool get_weather {\"city\": \"Paris\"}\n"
          "is it warm?\n"                             // refused: a result is owed
          "/result call_nope 1\n"                     // not a pending call
          "/result call_echo_1 {\"temp_c\": 21}\n");  // end of input ends the chat
  ASSERT_EQ(r.code, 0) << r.all();
  EXPECT_THAT(r.out, HasSubstr("the agent called 1 client tool:"));
  EXPECT_THAT(r.out, HasSubstr("call_echo_1  get_weather  {\"city\": \"Paris\"}"));
  EXPECT_THAT(r.out, HasSubstr("\n{\"temp_c\": 21}\n"));  // echo answers with the result
  EXPECT_THAT(r.err, HasSubstr("error: the agent waits for 1 tool result(s)"));
  EXPECT_THAT(r.err, HasSubstr("no pending tool call \"call_nope\" (pending: call_echo_1)"));

  const std::vector<v1::Event> events = harness_->AllEvents("chat-tool");
  std::vector<std::string> texts;
  for (const v1::Event& e : events) {
    if (e.has_message()) texts.push_back(e.message().text());
    if (e.has_tool_result()) {
      EXPECT_EQ(e.tool_result().tool_call_id(), "call_echo_1");
      EXPECT_EQ(e.tool_result().output(), "{\"temp_c\": 21}");
    }
  }
  EXPECT_THAT(texts, Not(::testing::Contains("is it warm?")));
  EXPECT_EQ(events.back().turn().status(), v1::TURN_STATUS_COMPLETED);
  EXPECT_EQ(Json({"session", "get", "chat-tool"}).value("status", ""), "SESSION_STATUS_IDLE");
}

TEST_F(AgentctlSessionTest, ChatResumesPendingCallsAndReportsFailures) {
  NewSession("chat-resume");
  ASSERT_EQ(Cli({"send", "chat-resume", "/tool get_weather {}"}).code, 0);
  const testing::CliResult resumed = Cli({"chat", "chat-resume"}, "/result call_echo_1 sunny\n");
  ASSERT_EQ(resumed.code, 0) << resumed.all();
  EXPECT_THAT(resumed.out, StartsWith("the agent called 1 client tool:"));
  EXPECT_THAT(resumed.out, HasSubstr("\nsunny\n"));

  // A failed turn: reported on one line, and the chat exits 1.
  backend::ScriptedReply failure;
  failure.error = absl::InvalidArgumentError("scripted rejection");  // not retried
  harness_->scripted().Push(failure);
  const testing::CliResult failed =
      Cli({"chat", "chat-resume", "--model", "scripted"}, "this fails\n/quit\n");
  EXPECT_EQ(failed.code, 1) << failed.all();
  EXPECT_THAT(failed.err, HasSubstr("scripted rejection"));

  const testing::CliResult missing = CliError({"chat", "no-such-session"}, "NOT_FOUND", "hi\n");
  EXPECT_EQ(LineCount(missing.err), 1u) << missing.err;
}

// `send --stream` shares its printing with chat: the reply once (streamed, not repeated with the
// result), or every TurnEvent as a JSON line ending with the result.
TEST_F(AgentctlSessionTest, SendStreamPrintsTheReplyOnceOrJsonLines) {
  NewSession("stream-1");
  const testing::CliResult table = Cli({"send", "stream-1", "hello stream", "--stream"});
  ASSERT_EQ(table.code, 0) << table.all();
  EXPECT_EQ(table.out, "hello stream\n");
  EXPECT_THAT(table.err, HasSubstr(": completed ("));
  EXPECT_EQ(LineCount(table.err), 1u) << table.err;

  const testing::CliResult json = Cli({"send", "stream-1", "hi json", "--stream", "-o", "json"});
  ASSERT_EQ(json.code, 0) << json.all();
  EXPECT_EQ(json.err, "");
  std::vector<nlohmann::json> items;
  std::istringstream lines(json.out);
  for (std::string line; std::getline(lines, line);) items.push_back(nlohmann::json::parse(line));
  ASSERT_GE(items.size(), 2u) << json.out;
  std::string deltas;
  for (const nlohmann::json& item : items) {
    if (item.contains("delta")) deltas += item["delta"].value("text", "");
  }
  EXPECT_EQ(deltas, "hi json");
  EXPECT_EQ(items.back()["result"].value("status", ""), "TURN_STATUS_COMPLETED");
  EXPECT_EQ(items.back()["result"].value("output_text", ""), "hi json");

  CliError({"send", "no-such-session", "hello", "--stream"}, "NOT_FOUND");
}

TEST_F(AgentctlSessionTest, TurnCancelStopsARunningTurn) {
  NewSession("cancel-1", "scripted");
  backend::ScriptedReply slow;
  slow.text = "too late";
  slow.delay = absl::Seconds(30);
  harness_->scripted().Push(slow);
  grpc::Status turn_status;
  v1::TurnResult turn_result;
  std::thread turn(
      [&] { turn_status = harness_->Send("cancel-1", "take your time", &turn_result); });
  // Wait (bounded) until the turn is running.
  bool running = false;
  for (int i = 0; i < 500 && !running; ++i) {
    running = Json({"session", "get", "cancel-1"}).value("status", "") == "SESSION_STATUS_RUNNING";
    if (!running) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(running);
  const testing::CliResult cancelled = Cli({"turn", "cancel", "cancel-1"});
  turn.join();
  ASSERT_EQ(cancelled.code, 0) << cancelled.all();
  EXPECT_THAT(cancelled.out, StartsWith("cancelled turn turn_"));
  EXPECT_THAT(cancelled.err, HasSubstr(": cancelled"));
  ASSERT_TRUE(turn_status.ok()) << turn_status.error_message();
  EXPECT_EQ(turn_result.status(), v1::TURN_STATUS_CANCELLED);

  CliError({"turn", "cancel", "cancel-1"}, "FAILED_PRECONDITION");  // no turn runs now
}

TEST_F(AgentctlSessionTest, ForkContinuesFromASeq) {
  NewSession("fork-parent");
  ASSERT_EQ(Cli({"send", "fork-parent", "one"}).code, 0);
  ASSERT_EQ(Cli({"send", "fork-parent", "two"}).code, 0);
  const nlohmann::json fork =
      Json({"session", "fork", "fork-parent", "--at-seq", "4", "--id", "fork-child"});
  EXPECT_EQ(fork.value("session_id", ""), "fork-child");
  EXPECT_EQ(fork.value("parent_session_id", ""), "fork-parent");
  EXPECT_EQ(fork.value("fork_seq", ""), "4");
  EXPECT_EQ(fork.value("last_seq", ""), "4");
  const nlohmann::json events = Json({"events", "fork-child"})["events"];
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[1]["message"].value("text", ""), "one");

  const nlohmann::json latest = Json({"session", "fork", "fork-parent"});
  EXPECT_THAT(latest.value("session_id", ""), StartsWith("sess_"));
  EXPECT_EQ(latest.value("fork_seq", ""), "8");

  CliError({"session", "fork", "fork-parent", "--at-seq", "99"}, "INVALID_ARGUMENT");
  // Refused by agentctl itself, in words a user can read.
  const testing::CliResult negative = Cli({"session", "fork", "fork-parent", "--at-seq", "-1"});
  EXPECT_EQ(negative.code, 2) << negative.all();
  EXPECT_THAT(negative.err, HasSubstr("--at-seq: must not be negative (got -1)"));
  const testing::CliResult word = Cli({"state", "put", "s", "k", "1", "--expected-version", "abc"});
  EXPECT_EQ(word.code, 2) << word.all();
  EXPECT_THAT(word.err, HasSubstr("\"abc\" is not a whole number"));
}

TEST_F(AgentctlSessionTest, ExportImportRoundTrip) {
  NewSession("export-src");
  ASSERT_EQ(Cli({"send", "export-src", "remember this"}).code, 0);
  ASSERT_EQ(Cli({"send", "export-src", "/tool get_weather {\"city\": \"Rome\"}"}).code, 0);
  ASSERT_EQ(Cli({"state", "put", "export-src", "k", "[1, 2, 3]"}).code, 0);
  const std::string file = scratch_->Sub("export-src.agentd");
  const testing::CliResult exported = Cli({"session", "export", "export-src", "-f", file});
  ASSERT_EQ(exported.code, 0) << exported.all();
  EXPECT_THAT(exported.out, HasSubstr("(9 events, 1 state entries)"));

  const nlohmann::json imported = Json({"session", "import", "-f", file, "--id", "export-copy"});
  EXPECT_EQ(imported.value("session_id", ""), "export-copy");
  EXPECT_EQ(imported.value("status", ""), "SESSION_STATUS_REQUIRES_ACTION");

  // The events are equal (byte for byte, apart from the session id they carry).
  std::vector<v1::Event> source = harness_->AllEvents("export-src");
  std::vector<v1::Event> copy = harness_->AllEvents("export-copy");
  ASSERT_EQ(copy.size(), source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    source[i].clear_session_id();
    copy[i].clear_session_id();
    EXPECT_EQ(copy[i].SerializeAsString(), source[i].SerializeAsString()) << "event " << i + 1;
  }
  EXPECT_EQ(Json({"state", "get", "export-copy", "k"}).value("value_json", ""), "[1, 2, 3]");

  // Through stdout and stdin (-f -).
  const testing::CliResult piped = Cli({"session", "export", "export-src", "-f", "-"});
  ASSERT_EQ(piped.code, 0) << piped.err;
  EXPECT_THAT(piped.err, HasSubstr("to stdout"));
  const testing::CliResult from_stdin =
      Cli({"session", "import", "-f", "-", "--id", "export-piped"}, piped.out);
  ASSERT_EQ(from_stdin.code, 0) << from_stdin.all();
  EXPECT_EQ(harness_->AllEvents("export-piped").size(), source.size());

  // The exported id is taken: the server picks a new one, and agentctl says so.
  const testing::CliResult again = Cli({"session", "import", "-f", file});
  ASSERT_EQ(again.code, 0) << again.all();
  EXPECT_THAT(again.err, HasSubstr("note: session id export-src is taken"));

  // Not an export: a usage error naming the file, nothing sent.
  const std::string junk = scratch_->Sub("junk.agentd");
  testing::WriteWholeFile(junk, "name: not an export\n");
  const testing::CliResult bad = Cli({"session", "import", "-f", junk});
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, StartsWith("error: " + junk + ": not a session export"));
  EXPECT_EQ(LineCount(bad.err), 1u);
  CliError({"session", "export", "no-such-session", "-f", file}, "NOT_FOUND");
  EXPECT_EQ(testing::ReadWholeFile(file).empty(), false) << "a failed export clobbered the file";
}

TEST_F(AgentctlSessionTest, StateCompareAndSet) {
  NewSession("state-1");
  EXPECT_EQ(Json({"state", "put", "state-1", "n", "1"}).value("version", ""), "1");
  EXPECT_EQ(
      Json({"state", "put", "state-1", "n", "2", "--expected-version", "1"}).value("version", ""),
      "2");
  const testing::CliResult conflict =
      CliError({"state", "put", "state-1", "n", "3", "--expected-version", "1"}, "ABORTED");
  EXPECT_EQ(LineCount(conflict.err), 1u);
  const nlohmann::json entry = Json({"state", "get", "state-1", "n"});
  EXPECT_EQ(entry.value("value_json", ""), "2");
  EXPECT_EQ(entry.value("version", ""), "2");

  const testing::CliResult not_json = Cli({"state", "put", "state-1", "n", "three"});
  EXPECT_EQ(not_json.code, 2);
  EXPECT_THAT(not_json.err, HasSubstr("not valid JSON"));
  CliError({"state", "get", "state-1", "absent"}, "NOT_FOUND");
  const nlohmann::json listed = Json({"state", "list", "state-1"})["entries"];
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].value("key", ""), "n");
}

TEST_F(AgentctlSessionTest, MemoryRoundTrip) {
  const nlohmann::json put = Json({"memory", "put", "-n", "teams/cli", "-k", "lunch",
                                   "The team eats lunch at noon", "--meta", "source=test"});
  EXPECT_EQ(put.value("key", ""), "lunch");
  const nlohmann::json assigned = Json({"memory", "put", "-n", "teams/cli", "Standup is at ten"});
  const std::string assigned_key = assigned.value("key", "");
  EXPECT_THAT(assigned_key, StartsWith("mem_"));

  const nlohmann::json got = Json({"memory", "get", "teams/cli", "lunch"});
  EXPECT_EQ(got.value("text", ""), "The team eats lunch at noon");
  EXPECT_EQ(got["metadata"].value("source", ""), "test");
  EXPECT_EQ(Json({"memory", "list", "--prefix", "teams/"})["memories"].size(), 2u);
  const nlohmann::json found = Json({"memory", "search", "lunch noon", "--prefix", "teams/cli"});
  ASSERT_EQ(found["results"].size(), 1u);
  EXPECT_EQ(found["results"][0]["record"].value("key", ""), "lunch");
  EXPECT_EQ(Json({"memory", "search", "standup", "--top-k", "1"})["results"].size(), 1u);

  const testing::CliResult deleted = Cli({"memory", "delete", "teams/cli", "lunch"});
  ASSERT_EQ(deleted.code, 0) << deleted.all();
  EXPECT_THAT(deleted.out, HasSubstr("deleted memory teams/cli lunch"));
  CliError({"memory", "get", "teams/cli", "lunch"}, "NOT_FOUND");
  CliError({"memory", "put", "-n", "/bad//ns", "text"}, "INVALID_ARGUMENT");
}

TEST_F(AgentctlSessionTest, AgentUpdateMakesANewVersion) {
  const std::string agent_id = NewSession("update-1");
  const nlohmann::json v2 =
      Json({"agent", "update", agent_id, "--instructions", "Answer in French."});
  EXPECT_EQ(v2.value("version", ""), "2");
  EXPECT_EQ(v2.value("instructions", ""), "Answer in French.");
  EXPECT_EQ(v2["tools"].size(), 1u);  // kept from version 1

  const std::string file = scratch_->Sub("update.yaml");
  testing::WriteWholeFile(file,
                          "instructions: From the file.\n"
                          "tools:\n"
                          "  - name: state_get\n"
                          "    kind: builtin\n");
  const nlohmann::json v3 = Json({"agent", "update", agent_id, "-f", file, "--name", "renamed"});
  EXPECT_EQ(v3.value("version", ""), "3");
  EXPECT_EQ(v3.value("name", ""), "renamed");
  EXPECT_EQ(v3.value("model", ""), "echo");
  EXPECT_EQ(v3.value("instructions", ""), "From the file.");
  ASSERT_EQ(v3["tools"].size(), 1u);
  EXPECT_EQ(v3["tools"][0].value("name", ""), "state_get");
  // The session keeps the version it pinned.
  EXPECT_EQ(Json({"session", "get", "update-1"}).value("agent_version", ""), "1");

  const testing::CliResult nothing = Cli({"agent", "update", agent_id});
  EXPECT_EQ(nothing.code, 2);
  EXPECT_THAT(nothing.err, HasSubstr("nothing to change"));
  CliError({"agent", "update", "agent_missing", "--name", "x"}, "NOT_FOUND");
}

TEST_F(AgentctlSessionTest, UsageErrorsAreOneLineAndExit2) {
  const std::string malformed = scratch_->Sub("malformed.yaml");
  testing::WriteWholeFile(malformed, "name: a\n  model: [echo\n");
  const std::string unknown = scratch_->Sub("unknown.yaml");
  testing::WriteWholeFile(unknown, "name: a\nmodel: echo\ntools:\n  - name: t\n    knd: client\n");
  const std::string not_a_map = scratch_->Sub("list.yaml");
  testing::WriteWholeFile(not_a_map, "- name: a\n");
  struct Case {
    std::vector<std::string> args;
    std::string expected;  // part of the one line
  };
  const std::vector<Case> cases = {
      {{"agnet", "list"}, "unknown command \"agnet\" for 'agentctl' (did you mean \"agent\"?)"},
      {{"session", "frok", "x"}, "unknown command \"frok\" for 'agentctl session'"},
      {{"session"}, "missing command: 'agentctl session' needs one of create,"},
      {{"session", "fork"}, "SESSION is required (see 'agentctl session fork --help')"},
      {{"state", "put", "s", "k"}, "VALUE is required"},
      {{"memory", "search"}, "QUERY is required"},
      {{"session", "export", "s"}, "--file is required"},
      {{"agent", "create", "--nme", "x"}, "unknown option \"--nme\""},
      {{"agent", "create", "-f", malformed},
       malformed + ": invalid YAML at line 2, column 8: illegal map value"},
      {{"agent", "create", "-f", unknown},
       unknown + ": tools[0]: unknown field \"knd\" (ToolSpec fields: name,"},
      {{"agent", "create", "-f", not_a_map}, not_a_map + ": expected a map of Agent fields"},
      {{"agent", "create", "-f", scratch_->Sub("absent.yaml")}, "File does not exist"},
      {{"-o", "xml", "agent", "list"}, "xml not in {table,json,yaml}"},
      {{"memory", "search", "x", "--top-k", "1000"}, "--top-k"},
  };
  for (const Case& c : cases) {
    const testing::CliResult r = Cli(c.args);
    EXPECT_EQ(r.code, 2) << ::testing::PrintToString(c.args) << ": " << r.all();
    EXPECT_THAT(r.err, StartsWith("error: ")) << ::testing::PrintToString(c.args);
    EXPECT_THAT(r.err, HasSubstr(c.expected)) << ::testing::PrintToString(c.args);
    EXPECT_EQ(LineCount(r.err), 1u) << r.err;
    EXPECT_EQ(r.out, "");
  }
}

TEST_F(AgentctlSessionTest, ServerDownIsOneLineWithAHint) {
  const std::string addr = "127.0.0.1:" + std::to_string(testing::FreePort());  // nothing listens
  const testing::CliResult r =
      testing::RunAgentctl({addr, harness_->admin_key(), {"agent", "list"}, "", scratch_->path()});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("error: UNAVAILABLE: "));
  EXPECT_THAT(r.err, HasSubstr("is agentd running at " + addr + "?"));
  EXPECT_EQ(LineCount(r.err), 1u) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(AgentctlSessionTest, WrongKeyIsUnauthenticated) {
  const std::string wrong = "agd_k0000000000000000_" + std::string(64, '0');
  const testing::CliResult r =
      testing::RunAgentctl({harness_->address(), wrong, {"session", "list"}, "", scratch_->path()});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, StartsWith("error: UNAUTHENTICATED: "));
  EXPECT_THAT(r.err, HasSubstr("AGENTD_API_KEY"));
  EXPECT_THAT(r.err, Not(HasSubstr(wrong.substr(22))));
  EXPECT_EQ(LineCount(r.err), 1u) << r.err;
}

TEST_F(AgentctlSessionTest, NewCommandsHaveHelpWithExamples) {
  const std::vector<std::vector<std::string>> commands = {{"agent", "update"},
                                                          {"session", "fork"},
                                                          {"session", "export"},
                                                          {"session", "import"},
                                                          {"session", "replay"},
                                                          {"turn", "cancel"},
                                                          {"chat"},
                                                          {"state", "get"},
                                                          {"state", "put"},
                                                          {"state", "list"},
                                                          {"memory", "put"},
                                                          {"memory", "get"},
                                                          {"memory", "list"},
                                                          {"memory", "search"},
                                                          {"memory", "delete"},
                                                          {"events"},
                                                          {"send"},
                                                          {"agent", "create"},
                                                          {"agent", "get"},
                                                          {"agent", "list"},
                                                          {"agent", "delete"},
                                                          {"session", "create"},
                                                          {"session", "get"},
                                                          {"session", "list"},
                                                          {"session", "delete"}};
  for (std::vector<std::string> args : commands) {
    std::string prefix = "  agentctl";
    for (const std::string& a : args) prefix += " " + a;
    args.push_back("--help");
    const testing::CliResult r = Cli(args);
    EXPECT_EQ(r.code, 0) << r.all();
    EXPECT_THAT(r.out, HasSubstr("Examples:\n" + prefix)) << r.out;
  }
}

}  // namespace
}  // namespace agentd
