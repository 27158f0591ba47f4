// Runs a command line as a subprocess, for tests that drive real binaries (agentctl, the SDK
// examples): stdin from given text, stdout and stderr captured separately, and the exit code.
#pragma once

#include <string>

namespace agentd::testing {

struct CommandResult {
  int code = -1;  // the exit code; -1 if the command could not start or did not exit normally
  std::string out;
  std::string err;
  std::string all() const { return out + err; }
};

/// `arg` single-quoted for /bin/sh (quotes inside it escaped), so it stays one word.
std::string ShellQuote(const std::string& arg);

/// The file's bytes ("" if it cannot be read).
std::string ReadWholeFile(const std::string& path);
/// Replaces the file's content with `text`.
void WriteWholeFile(const std::string& path, const std::string& text);

/// Runs `command` with /bin/sh and blocks until it exits. Its stdin is `stdin_text` (empty:
/// /dev/null); stdout is read through a pipe and stderr through a file in `scratch_dir` (as is
/// stdin), so calls sharing a scratch dir must not run at the same time.
CommandResult RunCommand(const std::string& command, const std::string& scratch_dir,
                         const std::string& stdin_text = "");

}  // namespace agentd::testing
