// agentctl's `-o json` and `-o yaml` outputs compared by content: both parsed into JSON trees
// whose scalars are all text (int64 fields are strings in protobuf JSON, and YAML scalars are
// untyped when read back), so equal content compares equal.
#pragma once

#include <string>

#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace agentd::testing {

/// `json` with every scalar that is not a string replaced by its JSON text.
inline nlohmann::json Texts(const nlohmann::json& json) {
  if (json.is_object()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& [key, value] : json.items()) out[key] = Texts(value);
    return out;
  }
  if (json.is_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& value : json) out.push_back(Texts(value));
    return out;
  }
  return json.is_string() ? json : nlohmann::json(json.dump());
}

/// `node` as JSON: maps become objects, sequences arrays, and scalars their text.
inline nlohmann::json Texts(const YAML::Node& node) {
  if (node.IsMap()) {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& kv : node) out[kv.first.as<std::string>()] = Texts(kv.second);
    return out;
  }
  if (node.IsSequence()) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& item : node) out.push_back(Texts(item));
    return out;
  }
  return node.Scalar();
}

}  // namespace agentd::testing
