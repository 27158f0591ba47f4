#include "testing/subprocess.h"

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>

namespace agentd::testing {

std::string ShellQuote(const std::string& arg) {
  std::string quoted = "'";
  for (char c : arg) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteWholeFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

CommandResult RunCommand(const std::string& command, const std::string& scratch_dir,
                         const std::string& stdin_text) {
  std::string stdin_file = "/dev/null";
  if (!stdin_text.empty()) {
    stdin_file = scratch_dir + "/command.stdin";
    WriteWholeFile(stdin_file, stdin_text);
  }
  const std::string err_file = scratch_dir + "/command.stderr";
  // A group, so the redirections apply to all of `command` however it is written.
  const std::string line =
      "{ " + command + "\n} <" + ShellQuote(stdin_file) + " 2>" + ShellQuote(err_file);
  CommandResult result;
  FILE* pipe = popen(line.c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) result.out.append(buf, n);
  const int status = pclose(pipe);
  result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.err = ReadWholeFile(err_file);
  return result;
}

}  // namespace agentd::testing
