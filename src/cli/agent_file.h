// Agent definitions read from a file (`agent create|update --file`): YAML or JSON with the
// Agent's proto field names, plus a few conveniences (`kind: client`, `strategy: summarize`,
// a JSON schema written as a nested map).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agentd/v1/agent.pb.h"

namespace agentd::cli {

struct AgentFile {
  agentd::v1::Agent agent;
  /// The top-level fields the file sets (proto names, in file order), so an update can replace
  /// exactly those.
  std::vector<std::string> fields;
};

/// Reads and checks an agent file. Errors are INVALID_ARGUMENT with one line that starts with
/// the path and says what is wrong and where: unreadable file, invalid YAML (line and column),
/// not a map, an unknown field (with the known ones), or a value of the wrong shape.
absl::StatusOr<AgentFile> LoadAgentFile(const std::string& path);

}  // namespace agentd::cli
