#include "runtime/json_schema.h"

#include <cmath>
#include <map>
#include <optional>
#include <regex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace agentd::runtime {

using nlohmann::json;

namespace {

enum TypeBit : uint8_t {
  kNull = 1 << 0,
  kBoolean = 1 << 1,
  kObject = 1 << 2,
  kArray = 1 << 3,
  kNumber = 1 << 4,
  kString = 1 << 5,
  kInteger = 1 << 6,  // a number with no fractional part
};

constexpr std::pair<const char*, uint8_t> kTypeNames[] = {
    {"null", kNull},     {"boolean", kBoolean}, {"object", kObject},   {"array", kArray},
    {"number", kNumber}, {"string", kString},   {"integer", kInteger},
};

std::string TypeNames(uint8_t mask) {
  std::vector<std::string> names;
  for (const auto& [name, bit] : kTypeNames) {
    if (mask & bit) names.emplace_back(name);
  }
  return absl::StrJoin(names, " or ");
}

bool IsIntegral(const json& v) {
  if (v.is_number_integer()) return true;
  if (!v.is_number_float()) return false;
  const double d = v.get<double>();
  return std::isfinite(d) && std::floor(d) == d;
}

uint8_t TypeOf(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return kNull;
    case json::value_t::boolean:
      return kBoolean;
    case json::value_t::object:
      return kObject;
    case json::value_t::array:
      return kArray;
    case json::value_t::string:
      return kString;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return IsIntegral(v) ? (kNumber | kInteger) : kNumber;
    default:
      return 0;
  }
}

size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// RFC 6901 escaping of one reference token.
std::string Escape(const std::string& token) {
  std::string out;
  for (char c : token) {
    if (c == '~') {
      out += "~0";
    } else if (c == '/') {
      out += "~1";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Where(const std::string& pointer) { return pointer.empty() ? "the root" : pointer; }

}  // namespace

struct JsonSchema::Node {
  // A boolean schema, or a schema object whose keywords follow.
  std::optional<bool> constant;
  uint8_t types = 0;  // 0 = any type
  std::map<std::string, std::unique_ptr<Node>> properties;
  std::vector<std::string> required;
  std::unique_ptr<Node> additional_properties;  // null = any
  std::unique_ptr<Node> items;                  // null = any
  std::optional<std::vector<json>> enum_values;
  std::optional<json> const_value;
  std::optional<double> minimum, maximum, exclusive_minimum, exclusive_maximum;
  std::optional<uint64_t> min_length, max_length;
  std::optional<std::regex> pattern;
  std::string pattern_source;
  std::vector<Node> any_of, one_of, all_of;
};

namespace {

using Node = JsonSchema::Node;

class Compiler {
 public:
  absl::Status Compile(const json& schema, const std::string& at, Node* out) {
    if (schema.is_boolean()) {
      out->constant = schema.get<bool>();
      return absl::OkStatus();
    }
    if (!schema.is_object()) {
      return Invalid(at, "a schema must be a JSON object or a boolean");
    }
    for (const auto& [key, value] : schema.items()) {
      const std::string here = at + "/" + Escape(key);
      absl::Status st = Keyword(key, value, at, here, out);
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }

 private:
  static absl::Status Invalid(const std::string& at, const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat("schema at ", Where(at), ": ", what));
  }
  static absl::Status BadValue(const std::string& key, const std::string& at,
                               const std::string& what) {
    return absl::InvalidArgumentError(
        absl::StrCat("schema keyword \"", key, "\" at ", Where(at), " ", what));
  }

  absl::Status Keyword(const std::string& key, const json& value, const std::string& at,
                       const std::string& here, Node* out) {
    if (key == "title" || key == "description" || key == "default" || key == "examples" ||
        key == "format" || key == "$comment" || key == "$schema") {
      return absl::OkStatus();  // annotations
    }
    if (key == "$id") {
      if (!at.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("unsupported JSON Schema keyword \"$id\" at ", Where(at),
                         " (only allowed at the root)"));
      }
      return absl::OkStatus();
    }
    if (key == "type") return Type(value, here, out);
    if (key == "properties") {
      if (!value.is_object()) return BadValue(key, here, "must be an object");
      for (const auto& [name, sub] : value.items()) {
        auto& node = out->properties[name];
        node = std::make_unique<Node>();
        absl::Status st = Compile(sub, here + "/" + Escape(name), node.get());
        if (!st.ok()) return st;
      }
      return absl::OkStatus();
    }
    if (key == "required") {
      if (!value.is_array()) return BadValue(key, here, "must be an array of strings");
      for (const json& name : value) {
        if (!name.is_string()) return BadValue(key, here, "must be an array of strings");
        out->required.push_back(name.get<std::string>());
      }
      return absl::OkStatus();
    }
    if (key == "additionalProperties") return Sub(value, here, &out->additional_properties);
    if (key == "items") {
      if (value.is_array()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "unsupported JSON Schema keyword \"items\" with an array value (tuple validation) at ",
            here, "; use one schema for every item"));
      }
      return Sub(value, here, &out->items);
    }
    if (key == "enum") {
      if (!value.is_array()) return BadValue(key, here, "must be an array");
      out->enum_values.emplace(value.begin(), value.end());
      return absl::OkStatus();
    }
    if (key == "const") {
      out->const_value = value;
      return absl::OkStatus();
    }
    if (key == "minimum") return Number(key, value, here, &out->minimum);
    if (key == "maximum") return Number(key, value, here, &out->maximum);
    if (key == "exclusiveMinimum") return Number(key, value, here, &out->exclusive_minimum);
    if (key == "exclusiveMaximum") return Number(key, value, here, &out->exclusive_maximum);
    if (key == "minLength") return Count(key, value, here, &out->min_length);
    if (key == "maxLength") return Count(key, value, here, &out->max_length);
    if (key == "pattern") {
      if (!value.is_string()) return BadValue(key, here, "must be a string");
      out->pattern_source = value.get<std::string>();
      try {
        out->pattern.emplace(out->pattern_source, std::regex::ECMAScript);
      } catch (const std::regex_error& e) {
        return BadValue(
            key, here,
            absl::StrCat("is not a valid ECMAScript regular expression (", e.what(), ")"));
      }
      return absl::OkStatus();
    }
    if (key == "anyOf") return List(key, value, here, &out->any_of);
    if (key == "oneOf") return List(key, value, here, &out->one_of);
    if (key == "allOf") return List(key, value, here, &out->all_of);
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported JSON Schema keyword \"", key, "\" at ", Where(at),
        " (supported: type, properties, required, additionalProperties, items, enum, const, "
        "minimum, maximum, exclusiveMinimum, exclusiveMaximum, minLength, maxLength, pattern, "
        "anyOf, oneOf, allOf; see docs/context.md)"));
  }

  absl::Status Type(const json& value, const std::string& here, Node* out) {
    auto bit_of = [](const json& name) -> uint8_t {
      if (!name.is_string()) return 0;
      for (const auto& [n, bit] : kTypeNames) {
        if (name.get<std::string>() == n) return bit;
      }
      return 0;
    };
    const char* what =
        "must be a type name (null, boolean, object, array, number, string, integer) or a "
        "non-empty array of them";
    if (value.is_array()) {
      if (value.empty()) return BadValue("type", here, what);
      for (const json& name : value) {
        const uint8_t bit = bit_of(name);
        if (bit == 0) return BadValue("type", here, what);
        out->types |= bit;
      }
      return absl::OkStatus();
    }
    out->types = bit_of(value);
    if (out->types == 0) return BadValue("type", here, what);
    return absl::OkStatus();
  }

  absl::Status Sub(const json& value, const std::string& here, std::unique_ptr<Node>* out) {
    *out = std::make_unique<Node>();
    return Compile(value, here, out->get());
  }

  absl::Status List(const std::string& key, const json& value, const std::string& here,
                    std::vector<Node>* out) {
    if (!value.is_array() || value.empty()) {
      return BadValue(key, here, "must be a non-empty array of schemas");
    }
    out->resize(value.size());
    for (size_t i = 0; i < value.size(); ++i) {
      absl::Status st = Compile(value[i], absl::StrCat(here, "/", i), &(*out)[i]);
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }

  static absl::Status Number(const std::string& key, const json& value, const std::string& here,
                             std::optional<double>* out) {
    if (!value.is_number()) return BadValue(key, here, "must be a number");
    *out = value.get<double>();
    return absl::OkStatus();
  }

  static absl::Status Count(const std::string& key, const json& value, const std::string& here,
                            std::optional<uint64_t>* out) {
    if (!IsIntegral(value) || value.get<double>() < 0) {
      return BadValue(key, here, "must be a non-negative integer");
    }
    *out = value.is_number_float() ? static_cast<uint64_t>(value.get<double>())
                                   : value.get<uint64_t>();
    return absl::OkStatus();
  }
};

class Validator {
 public:
  explicit Validator(size_t max_errors) : max_errors_(max_errors) {}

  void Check(const Node& node, const json& v, const std::string& at) {
    if (Full()) return;
    if (node.constant.has_value()) {
      if (!*node.constant) Add(at, "no value is allowed here");
      return;
    }
    const uint8_t type = TypeOf(v);
    if (node.types != 0 && (node.types & type) == 0) {
      Add(at, absl::StrCat("must be of type ", TypeNames(node.types), ", not ",
                           TypeNames((type & kInteger) ? uint8_t{kInteger} : type)));
      return;  // other keywords would only repeat the mismatch
    }
    if (node.const_value.has_value() && v != *node.const_value) {
      Add(at, absl::StrCat("must equal ", node.const_value->dump()));
    }
    if (node.enum_values.has_value() &&
        std::find(node.enum_values->begin(), node.enum_values->end(), v) ==
            node.enum_values->end()) {
      Add(at, absl::StrCat("must be one of ", json(*node.enum_values).dump()));
    }
    if (v.is_number()) CheckNumber(node, v.get<double>(), at);
    if (v.is_string()) CheckString(node, v.get_ref<const std::string&>(), at);
    if (v.is_object()) CheckObject(node, v, at);
    if (v.is_array() && node.items != nullptr) {
      for (size_t i = 0; i < v.size() && !Full(); ++i) {
        Check(*node.items, v[i], absl::StrCat(at, "/", i));
      }
    }
    for (const Node& sub : node.all_of) Check(sub, v, at);
    if (!node.any_of.empty()) {
      bool any = false;
      for (const Node& sub : node.any_of) {
        if ((any = Matches(sub, v))) break;
      }
      if (!any) Add(at, "must match at least one of the anyOf schemas");
    }
    if (!node.one_of.empty()) {
      std::vector<std::string> matched;
      for (size_t i = 0; i < node.one_of.size(); ++i) {
        if (Matches(node.one_of[i], v)) matched.push_back(absl::StrCat("#", i));
      }
      if (matched.size() != 1) {
        Add(at, matched.empty() ? "must match exactly one of the oneOf schemas (matches none)"
                                : absl::StrCat("must match exactly one of the oneOf schemas "
                                               "(matches ",
                                               absl::StrJoin(matched, ", "), ")"));
      }
    }
  }

  std::vector<SchemaError> Take() { return std::move(errors_); }

 private:
  bool Full() const { return errors_.size() >= max_errors_; }
  void Add(const std::string& at, std::string message) {
    if (!Full()) errors_.push_back({at, std::move(message)});
  }
  static bool Matches(const Node& node, const json& v) {
    Validator sub(1);
    sub.Check(node, v, "");
    return sub.errors_.empty();
  }

  void CheckNumber(const Node& node, double d, const std::string& at) {
    auto fmt = [](double x) {
      if (std::floor(x) == x && std::fabs(x) < 1e15) return std::to_string(static_cast<int64_t>(x));
      return json(x).dump();
    };
    if (node.minimum && d < *node.minimum) Add(at, "must be >= " + fmt(*node.minimum));
    if (node.maximum && d > *node.maximum) Add(at, "must be <= " + fmt(*node.maximum));
    if (node.exclusive_minimum && d <= *node.exclusive_minimum) {
      Add(at, "must be > " + fmt(*node.exclusive_minimum));
    }
    if (node.exclusive_maximum && d >= *node.exclusive_maximum) {
      Add(at, "must be < " + fmt(*node.exclusive_maximum));
    }
  }

  void CheckString(const Node& node, const std::string& s, const std::string& at) {
    if (node.min_length || node.max_length) {
      const size_t n = CodePoints(s);
      if (node.min_length && n < *node.min_length) {
        Add(at, absl::StrCat("must be at least ", *node.min_length, " characters long"));
      }
      if (node.max_length && n > *node.max_length) {
        Add(at, absl::StrCat("must be at most ", *node.max_length, " characters long"));
      }
    }
    if (!node.pattern) return;
    if (s.size() > JsonSchema::kMaxPatternInputBytes) {
      Add(at, absl::StrCat("is too long (", s.size(), " bytes) to check against pattern ",
                           json(node.pattern_source).dump(), " (limit ",
                           JsonSchema::kMaxPatternInputBytes, ")"));
      return;
    }
    bool found = false;
    try {
      found = std::regex_search(s, *node.pattern);
    } catch (const std::regex_error&) {
      Add(at, absl::StrCat("could not be checked against pattern ",
                           json(node.pattern_source).dump(), " (regex too complex)"));
      return;
    }
    if (!found) Add(at, "must match pattern " + json(node.pattern_source).dump());
  }

  void CheckObject(const Node& node, const json& v, const std::string& at) {
    for (const std::string& name : node.required) {
      if (!v.contains(name)) Add(at, absl::StrCat("missing required property \"", name, "\""));
    }
    for (const auto& [name, value] : v.items()) {
      if (Full()) return;
      const std::string here = at + "/" + Escape(name);
      auto it = node.properties.find(name);
      if (it != node.properties.end()) {
        Check(*it->second, value, here);
      } else if (node.additional_properties != nullptr) {
        if (node.additional_properties->constant == false) {
          Add(here, absl::StrCat("property \"", name, "\" is not allowed"));
        } else {
          Check(*node.additional_properties, value, here);
        }
      }
    }
  }

  const size_t max_errors_;
  std::vector<SchemaError> errors_;
};

}  // namespace

JsonSchema::JsonSchema() : root_(std::make_shared<Node>()) {}

absl::StatusOr<JsonSchema> JsonSchema::Compile(const json& schema) {
  auto root = std::make_shared<Node>();
  Compiler compiler;
  absl::Status st = compiler.Compile(schema, "", root.get());
  if (!st.ok()) return st;
  return JsonSchema(std::move(root));
}

size_t JsonNestingDepth(absl::string_view text) {
  size_t depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return deepest;
}

absl::StatusOr<JsonSchema> JsonSchema::CompileText(absl::string_view text) {
  if (JsonNestingDepth(text) > kMaxJsonDepth) {
    return absl::InvalidArgumentError(
        absl::StrCat("schema nests deeper than ", kMaxJsonDepth, " levels"));
  }
  json parsed = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return absl::InvalidArgumentError("schema is not valid JSON");
  return Compile(parsed);
}

std::vector<SchemaError> JsonSchema::Validate(const json& instance, size_t max_errors) const {
  Validator v(std::max<size_t>(max_errors, 1));
  v.Check(*root_, instance, "");
  return v.Take();
}

std::string JsonSchema::Describe(const std::vector<SchemaError>& errors) {
  std::vector<std::string> parts;
  parts.reserve(errors.size());
  for (const SchemaError& e : errors) {
    parts.push_back(absl::StrCat(e.pointer.empty() ? "(root)" : e.pointer, ": ", e.message));
  }
  return absl::StrJoin(parts, "; ");
}

}  // namespace agentd::runtime
