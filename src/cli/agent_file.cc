#include "cli/agent_file.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace agentd::cli {
namespace {

namespace v1 = agentd::v1;
using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

// Scalars become JSON strings (protobuf's JSON parser accepts quoted numbers, booleans and enum
// names), so `name: 123` stays a string; plain `~`/`null`/empty become null (= the default).
nlohmann::ordered_json YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::ordered_json object = nlohmann::ordered_json::object();
      for (const auto& kv : node) object[kv.first.as<std::string>()] = YamlToJson(kv.second);
      return object;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::ordered_json array = nlohmann::ordered_json::array();
      for (const auto& item : node) array.push_back(YamlToJson(item));
      return array;
    }
    case YAML::NodeType::Scalar: {
      const std::string& s = node.Scalar();
      const bool plain = node.Tag() != "!";
      if (plain && (s == "~" || s == "null" || s == "Null" || s == "NULL")) return nullptr;
      return s;
    }
    default:
      return nullptr;
  }
}

// Friendlier file contents: `kind: client`, `strategy: sliding_window`, and a schema written
// as a nested object instead of a JSON string.
void NormalizeAgentJson(nlohmann::ordered_json& agent) {
  if (agent.contains("tools") && agent["tools"].is_array()) {
    for (nlohmann::ordered_json& tool : agent["tools"]) {
      if (!tool.is_object()) continue;
      if (tool.contains("kind") && tool["kind"].is_string()) {
        const std::string kind = tool["kind"];
        if (kind == "client" || kind == "builtin") {
          tool["kind"] = "TOOL_KIND_" + absl::AsciiStrToUpper(kind);
        }
      }
      auto schema = tool.find("parameters_json_schema");
      if (schema != tool.end() && schema->is_object()) *schema = schema->dump();
    }
  }
  auto output_schema = agent.find("output_schema_json");
  if (output_schema != agent.end() && output_schema->is_object()) {
    *output_schema = output_schema->dump();
  }
  auto policy = agent.find("context_policy");
  if (policy != agent.end() && policy->is_object() && policy->contains("strategy") &&
      (*policy)["strategy"].is_string()) {
    const std::string strategy = (*policy)["strategy"];
    if (strategy == "sliding_window" || strategy == "summarize") {
      (*policy)["strategy"] = "CONTEXT_STRATEGY_" + absl::AsciiStrToUpper(strategy);
    }
  }
}

const FieldDescriptor* FindField(const Descriptor* type, const std::string& key) {
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* f = type->field(i);
    if (f->name() == key || f->json_name() == key) return f;
  }
  return nullptr;
}

bool IsWellKnown(const Descriptor* type) { return type->file()->package() == "google.protobuf"; }

std::string Where(const std::string& path) { return path.empty() ? "" : path + ": "; }

// Unknown keys and values of the wrong shape, with the path to them ("tools[1].nme").
absl::Status CheckFields(const nlohmann::ordered_json& object, const Descriptor* type,
                         const std::string& path) {
  for (const auto& [key, value] : object.items()) {
    const std::string at = path.empty() ? key : absl::StrCat(path, ".", key);
    const FieldDescriptor* field = FindField(type, key);
    if (field == nullptr) {
      std::vector<std::string> known;
      for (int i = 0; i < type->field_count(); ++i) known.push_back(type->field(i)->name());
      return absl::InvalidArgumentError(absl::StrCat(Where(path), "unknown field \"", key, "\" (",
                                                     type->name(),
                                                     " fields: ", absl::StrJoin(known, ", "), ")"));
    }
    if (value.is_null()) continue;
    if (field->is_map()) {
      if (!value.is_object()) return absl::InvalidArgumentError(at + ": expected a map");
      continue;
    }
    if (field->is_repeated()) {
      if (!value.is_array()) return absl::InvalidArgumentError(at + ": expected a list");
      if (field->type() != FieldDescriptor::TYPE_MESSAGE) continue;
      for (size_t i = 0; i < value.size(); ++i) {
        const std::string item = absl::StrCat(at, "[", i, "]");
        if (!value[i].is_object()) return absl::InvalidArgumentError(item + ": expected a map");
        absl::Status st = CheckFields(value[i], field->message_type(), item);
        if (!st.ok()) return st;
      }
      continue;
    }
    if (field->type() == FieldDescriptor::TYPE_MESSAGE && !IsWellKnown(field->message_type())) {
      if (!value.is_object()) return absl::InvalidArgumentError(at + ": expected a map");
      absl::Status st = CheckFields(value, field->message_type(), at);
      if (!st.ok()) return st;
      continue;
    }
    if (value.is_object() || value.is_array()) {
      return absl::InvalidArgumentError(at + ": expected a single value, not a map or list");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<AgentFile> LoadAgentFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": cannot read: ", std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::ordered_json json;
  try {
    json = YamlToJson(YAML::Load(text.str()));
  } catch (const YAML::Exception& e) {
    const std::string at = e.mark.is_null() ? std::string()
                                            : absl::StrCat(" at line ", e.mark.line + 1,
                                                           ", column ", e.mark.column + 1);
    return absl::InvalidArgumentError(absl::StrCat(path, ": invalid YAML", at, ": ", e.msg));
  }
  AgentFile file;
  if (json.is_null()) return file;  // an empty file
  if (!json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": expected a map of Agent fields (name: ..., model: ...)"));
  }
  const absl::Status checked = CheckFields(json, v1::Agent::descriptor(), "");
  if (!checked.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", checked.message()));
  NormalizeAgentJson(json);
  const auto parsed = google::protobuf::util::JsonStringToMessage(json.dump(), &file.agent);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", parsed.message().ToString()));
  }
  for (const auto& [key, value] : json.items()) {
    file.fields.push_back(FindField(v1::Agent::descriptor(), key)->name());
  }
  return file;
}

}  // namespace agentd::cli
