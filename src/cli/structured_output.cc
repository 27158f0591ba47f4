#include "cli/structured_output.h"

#include <cctype>
#include <set>

#include "cli/output.h"
#include "yaml-cpp/yaml.h"

namespace agentd::cli {
namespace {

// Plain scalars that a YAML 1.1 or 1.2 reader resolves to a non-string: null, booleans (1.1
// also knows yes/no/on/off), numbers, .inf/.nan, and dates/times (which start with a digit).
// Anything starting with a digit, a sign or a dot is quoted: cheap and never wrong.
bool NeedsQuotes(const std::string& s) {
  static const auto* keywords = new std::set<std::string>{
      "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n", ".inf", ".nan"};
  if (s.empty()) return true;
  const unsigned char first = static_cast<unsigned char>(s[0]);
  if (std::isdigit(first) || first == '+' || first == '-' || first == '.') return true;
  std::string lower;
  for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return keywords->count(lower) > 0;
}

void Emit(YAML::Emitter& out, const nlohmann::ordered_json& json) {
  switch (json.type()) {
    case nlohmann::json::value_t::object:
      if (json.empty()) {
        out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        return;
      }
      out << YAML::BeginMap;
      for (const auto& [key, value] : json.items()) {
        out << YAML::Key;
        if (NeedsQuotes(key)) out << YAML::DoubleQuoted;
        out << key << YAML::Value;
        Emit(out, value);
      }
      out << YAML::EndMap;
      return;
    case nlohmann::json::value_t::array:
      if (json.empty()) {
        out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        return;
      }
      out << YAML::BeginSeq;
      for (const auto& item : json) Emit(out, item);
      out << YAML::EndSeq;
      return;
    case nlohmann::json::value_t::string: {
      const std::string& s = json.get_ref<const std::string&>();
      if (NeedsQuotes(s)) out << YAML::DoubleQuoted;
      out << s;
      return;
    }
    case nlohmann::json::value_t::null:
      out << YAML::Null;
      return;
    default:  // numbers and booleans: the JSON text is valid YAML with the same value
      out << json.dump();
      return;
  }
}

}  // namespace

std::string JsonToYaml(const nlohmann::ordered_json& json) {
  YAML::Emitter out;
  out.SetIndent(2);
  Emit(out, json);
  return out.c_str();
}

std::string ToYaml(const google::protobuf::Message& message) {
  const nlohmann::ordered_json json = nlohmann::ordered_json::parse(
      ToJson(message, /*pretty=*/false), nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return "error: the response could not be converted to YAML";
  return JsonToYaml(json);
}

}  // namespace agentd::cli
