// Runs the real agentctl binary (AGENTCTL_BINARY, a compile definition) as a subprocess for the
// agentctl tests: arguments are shell-quoted, stdout and stderr are captured separately, and no
// AGENTD_* variable of the test's environment leaks in.
#pragma once

#include <string>
#include <vector>

#include "testing/subprocess.h"

namespace agentd::testing {

using CliResult = CommandResult;

struct CliCall {
  std::string addr;               // --addr
  std::string key;                // --api-key (empty: none)
  std::vector<std::string> args;  // the command and its arguments
  std::string stdin_text;         // empty: stdin is /dev/null
  std::string scratch_dir;        // where stdin and stderr are staged (see RunCommand)
};

inline CliResult RunAgentctl(const CliCall& call) {
  std::string command = "env -u AGENTD_API_KEY -u AGENTD_ADDR -u AGENTD_TLS_CA " +
                        ShellQuote(AGENTCTL_BINARY) + " --addr " + ShellQuote(call.addr);
  if (!call.key.empty()) command += " --api-key " + ShellQuote(call.key);
  for (const std::string& arg : call.args) command += " " + ShellQuote(arg);
  return RunCommand(command, call.scratch_dir, call.stdin_text);
}

}  // namespace agentd::testing
