// The C++ examples (examples/cpp, build/bin/example_*) against a real agentd child process,
// configured only through AGENTD_ADDR / AGENTD_API_KEY as a user would; and each one's single
// error line and exit code 1 when nothing listens or the key is wrong.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "testing/child_server.h"
#include "testing/subprocess.h"

namespace agentd {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using testing::ShellQuote;
using ::testing::StartsWith;
using Result = testing::CommandResult;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class ExamplesTest : public testing::ChildServerSuite {
 protected:
  /// Runs `binary` with AGENTD_ADDR=`addr`, AGENTD_API_KEY=`key`, `stdin_text` on stdin.
  static Result Run(const std::string& binary, const std::string& addr, const std::string& key,
                    const std::string& stdin_text = "") {
    return testing::RunCommand("env -u AGENTD_MODEL AGENTD_ADDR=" + ShellQuote(addr) +
                                   " AGENTD_API_KEY=" + ShellQuote(key) + " " + ShellQuote(binary),
                               dir_->path(), stdin_text);
  }

  static Result Run(const std::string& binary, const std::string& stdin_text = "") {
    return Run(binary, server_->address(), server_->admin_key(), stdin_text);
  }

  /// Runs `binary` against the suite's server; it must succeed with each of `expected` in its
  /// stdout.
  static void ExpectOutputHas(const std::string& binary, const std::vector<std::string>& expected,
                              const std::string& stdin_text = "") {
    const Result r = Run(binary, stdin_text);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    for (const std::string& text : expected) EXPECT_THAT(r.out, HasSubstr(text));
  }

  /// Runs `example` with `addr` and `key`; it must fail with exit code 1 and one line on stderr,
  /// "error: ..." matching `line`.
  static void ExpectOneErrorLine(const std::string& example, const std::string& addr,
                                 const std::string& key,
                                 const ::testing::Matcher<const std::string&>& line) {
    const Result r = Run(example, addr, key, "hello\n");
    EXPECT_EQ(r.code, 1) << example;
    const std::vector<std::string> lines = Lines(r.err);
    ASSERT_EQ(lines.size(), 1u) << example << ": " << r.err;
    EXPECT_THAT(lines[0], StartsWith("error: "));
    EXPECT_THAT(lines[0], line) << example;
  }
};

const std::vector<std::string>& AllExamples() {
  static const std::vector<std::string> all = {EXAMPLE_CHAT, EXAMPLE_TOOLS, EXAMPLE_MEMORY,
                                               EXAMPLE_FORK_REPLAY};
  return all;
}

TEST_F(ExamplesTest, ChatStreamsEachLineUntilQuit) {
  const Result r = Run(EXAMPLE_CHAT, "hello there\n\nhow are you?\n/quit\nnever sent\n");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.err, "");
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  EXPECT_THAT(lines[0], StartsWith("session sess_"));
  EXPECT_EQ(lines[1], "assistant: hello there");
  EXPECT_EQ(lines[2], "assistant: how are you?");
  EXPECT_EQ(lines[3], "bye");
}

TEST_F(ExamplesTest, ChatEndsAtEndOfInput) {
  ExpectOutputHas(EXAMPLE_CHAT, {"assistant: just one\nbye\n"}, "just one\n");
}

TEST_F(ExamplesTest, ToolsRunsTheClientSideTool) {
  ExpectOutputHas(EXAMPLE_TOOLS, {"tool get_weather called with {\"city\":\"Paris\"}\n",
                                  "answer: Sunny and 22 C in Paris\n", "turns: 2, model calls: 2"});
}

TEST_F(ExamplesTest, MemoryIsFoundByANewSession) {
  ExpectOutputHas(EXAMPLE_MEMORY, {"saved memory users/alice/preferences/mem_",
                                   "SearchMemory: Alice prefers window seats on trains",
                                   "memory_search tool answered: {\"results\":[{",
                                   "\"text\":\"Alice prefers window seats on trains\""});
}

TEST_F(ExamplesTest, ForkReplayShowsBothHistories) {
  const Result r = Run(EXAMPLE_FORK_REPLAY);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  const std::string& out = r.out;
  const size_t original = out.find("== original sess_");
  const size_t fork = out.find("== fork sess_");
  const size_t replay = out.find("== replay sess_");
  ASSERT_NE(original, std::string::npos) << out;
  ASSERT_NE(fork, std::string::npos) << out;
  ASSERT_NE(replay, std::string::npos) << out;
  const std::string original_part = out.substr(original, fork - original);
  const std::string fork_part = out.substr(fork, replay - fork);
  EXPECT_THAT(original_part, HasSubstr("user: What do I like?"));
  EXPECT_THAT(original_part, Not(HasSubstr("coffee")));
  EXPECT_THAT(fork_part, HasSubstr("user: I like tea."));  // shared with the parent
  EXPECT_THAT(fork_part, HasSubstr("user: Actually, I like coffee."));
  EXPECT_THAT(fork_part, Not(HasSubstr("What do I like?")));
  EXPECT_THAT(out, HasSubstr("with model echo: 3 turns"));
  EXPECT_THAT(out, HasSubstr("TURN_STATUS_COMPLETED: What do I like?"));
}

TEST_F(ExamplesTest, EachExampleFailsWithOneLineWhenNoServerListens) {
  const std::string nowhere = "127.0.0.1:" + std::to_string(testing::FreePort());
  for (const std::string& example : AllExamples()) {
    ExpectOneErrorLine(
        example, nowhere, server_->admin_key(),
        AllOf(HasSubstr("UNAVAILABLE"), HasSubstr("is agentd running at " + nowhere)));
  }
}

TEST_F(ExamplesTest, EachExampleFailsWithOneLineOnAWrongKey) {
  for (const std::string& example : AllExamples()) {
    ExpectOneErrorLine(
        example, server_->address(), "agd-this-key-does-not-exist",
        AllOf(HasSubstr("UNAUTHENTICATED"), Not(HasSubstr("agd-this-key-does-not-exist"))));
  }
}

}  // namespace
}  // namespace agentd
