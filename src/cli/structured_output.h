// YAML output of agentctl (`-o yaml`): the same content as `-o json` (protobuf JSON with the
// proto field names, field order as in the .proto), written as YAML.
#pragma once

#include <google/protobuf/message.h>

#include <string>

#include "nlohmann/json.hpp"

namespace agentd::cli {

/// `json` as a block-style YAML document (no `---`, no trailing newline). Strings that YAML
/// would read as something else (numbers, booleans, null, dates, "") are double-quoted, so
/// loading the YAML gives back exactly `json`'s values: int64 fields stay strings.
std::string JsonToYaml(const nlohmann::ordered_json& json);

/// `message` as protobuf JSON (ToJson()), then as YAML.
std::string ToYaml(const google::protobuf::Message& message);

}  // namespace agentd::cli
