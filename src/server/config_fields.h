// Internal to the config loader (config.cc, tool_config.cc): the `Fields` reader every struct
// is read with, and the helpers of cross-field validation. Not part of agentd's API.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "server/config.h"
#include "yaml-cpp/yaml.h"

namespace agentd::server::config_internal {

constexpr int64_t kUnbounded = std::numeric_limits<int64_t>::max();
constexpr int64_t kMiB = int64_t{1024} * 1024;

inline std::string IndexPath(const std::string& path, size_t i) { return absl::StrCat(path, "[", i, "]"); }

inline std::string KeyPath(const std::string& path, const std::string& key) {
  return path.empty() ? key : absl::StrCat(path, ".", key);
}

// " (line N)" for nodes that come from the parsed text.
inline std::string Where(const YAML::Node& node) {
  if (!node.IsDefined()) return "";
  const YAML::Mark mark = node.Mark();
  return mark.line < 0 ? "" : absl::StrCat(" (line ", mark.line + 1, ")");
}

inline std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a map";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "null";
    case YAML::NodeType::Scalar: {
      std::string value = node.Scalar();
      if (value.size() > 40) value = value.substr(0, 40) + "...";
      return absl::StrCat(node.Tag() == "!" ? "the quoted string \"" : "\"", value, "\"");
    }
    default:
      return "nothing";
  }
}

inline absl::Status TypeError(const std::string& path, const char* expected, const YAML::Node& node) {
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": expected ", expected, ", got ", Describe(node), Where(node)));
}

// A plain (unquoted) scalar: numbers and booleans must not be written as quoted strings.
inline bool IsPlainScalar(const YAML::Node& node) { return node.IsScalar() && node.Tag() != "!"; }

inline size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

inline std::string BoundsText(int64_t min, int64_t max) {
  if (max == kUnbounded) return min == 1 ? "must be > 0" : absl::StrCat("must be >= ", min);
  return absl::StrCat("must be between ", min, " and ", max);
}

// Reads the fields of one YAML map. Methods are no-ops after the first error; Finish() reports
// that error, or else the first unknown or duplicate key. Absent and null keys keep the default.
class Fields {
 public:
  template <typename T>
  using ReadFn = std::function<absl::Status(const YAML::Node&, const std::string&, T*)>;

  Fields(const YAML::Node& node, std::string path) : node_(node), path_(std::move(path)) {
    if (!node_.IsMap() && !node_.IsNull()) {
      status_ = TypeError(path_.empty() ? "top level" : path_, "a map", node_);
    }
  }

  void Str(const char* key, std::string* out) {
    const YAML::Node v = Take(key);
    if (!v) return;
    if (!v.IsScalar()) return Fail(TypeError(KeyPath(path_, key), "a string", v));
    *out = v.Scalar();
  }

  void OneOf(const char* key, std::string* out, std::initializer_list<const char*> allowed) {
    const YAML::Node v = Take(key);
    if (!v) return;
    const std::string path = KeyPath(path_, key);
    if (!v.IsScalar()) return Fail(TypeError(path, "a string", v));
    for (const char* a : allowed) {
      if (v.Scalar() == a) {
        *out = a;
        return;
      }
    }
    Fail(absl::InvalidArgumentError(absl::StrCat(
        path, ": must be one of ", absl::StrJoin(allowed, ", "), ", got ", Describe(v), Where(v))));
  }

  template <typename I>
  void Int(const char* key, I* out, int64_t min, int64_t max = kUnbounded) {
    static_assert(std::is_integral<I>::value, "integer fields only");
    const YAML::Node v = Take(key);
    if (!v) return;
    const std::string path = KeyPath(path_, key);
    int64_t n = 0;
    if (!IsPlainScalar(v) || !absl::SimpleAtoi(v.Scalar(), &n)) {
      return Fail(TypeError(path, "an integer", v));
    }
    const int64_t limit = std::min<int64_t>(max, std::numeric_limits<I>::max());
    if (n < min || n > limit) {
      const bool type_limit = n > limit && limit != max;
      return Fail(RangeError(
          path, type_limit ? absl::StrCat("must be <= ", limit) : BoundsText(min, max), v));
    }
    *out = static_cast<I>(n);
  }

  void Double(const char* key, double* out, double min) {
    const YAML::Node v = Take(key);
    if (!v) return;
    const std::string path = KeyPath(path_, key);
    double d = 0;
    if (!IsPlainScalar(v) || !absl::SimpleAtod(v.Scalar(), &d) || !std::isfinite(d)) {
      return Fail(TypeError(path, "a number", v));
    }
    if (d < min) return Fail(RangeError(path, absl::StrCat("must be >= ", min), v));
    *out = d;
  }

  void Bool(const char* key, bool* out) {
    const YAML::Node v = Take(key);
    if (!v) return;
    if (!IsPlainScalar(v) || !YAML::convert<bool>::decode(v, *out)) {
      Fail(TypeError(KeyPath(path_, key), "true or false", v));
    }
  }

  void StrList(const char* key, std::vector<std::string>* out) {
    List<std::string>(key, out, [](const YAML::Node& n, const std::string& p, std::string* s) {
      if (!n.IsScalar()) return TypeError(p, "a string", n);
      *s = n.Scalar();
      return absl::OkStatus();
    });
  }

  void StrMap(const char* key, std::map<std::string, std::string>* out) {
    const YAML::Node v = Take(key);
    if (!v) return;
    const std::string path = KeyPath(path_, key);
    if (!v.IsMap()) return Fail(TypeError(path, "a map of strings", v));
    out->clear();
    for (const auto& kv : v) {
      if (!kv.first.IsScalar()) return Fail(TypeError(path, "string keys", kv.first));
      const std::string entry = KeyPath(path, kv.first.Scalar());
      if (!kv.second.IsScalar()) return Fail(TypeError(entry, "a string", kv.second));
      if (!out->emplace(kv.first.Scalar(), kv.second.Scalar()).second) {
        return Fail(DuplicateKey(entry, kv.first));
      }
    }
  }

  /// A map of name → struct (e.g. per-tool settings), read with `read` under "path.name".
  template <typename T>
  void StructMap(const char* key, std::map<std::string, T>* out, const ReadFn<T>& read) {
    const YAML::Node v = Take(key);
    if (!v) return;
    const std::string path = KeyPath(path_, key);
    if (!v.IsMap()) return Fail(TypeError(path, "a map", v));
    out->clear();
    for (const auto& kv : v) {
      if (!status_.ok()) return;
      if (!kv.first.IsScalar()) return Fail(TypeError(path, "string keys", kv.first));
      const std::string entry = KeyPath(path, kv.first.Scalar());
      if (out->count(kv.first.Scalar()) != 0) return Fail(DuplicateKey(entry, kv.first));
      Fail(read(kv.second, entry, &(*out)[kv.first.Scalar()]));
    }
  }

  template <typename T>
  void Struct(const char* key, T* out, const ReadFn<T>& read) {
    const YAML::Node v = Take(key);
    if (v) Fail(read(v, KeyPath(path_, key), out));
  }

  template <typename T>
  void List(const char* key, std::vector<T>* out, const ReadFn<T>& read) {
    const YAML::Node v = Take(key);
    if (!v) return;
    const std::string path = KeyPath(path_, key);
    if (!v.IsSequence()) return Fail(TypeError(path, "a list", v));
    out->assign(v.size(), T{});
    for (size_t i = 0; i < v.size() && status_.ok(); ++i) {
      Fail(read(v[i], IndexPath(path, i), &(*out)[i]));
    }
  }

  [[nodiscard]] absl::Status Finish() {
    if (!status_.ok() || !node_.IsMap()) return status_;
    std::set<std::string> seen;
    for (const auto& kv : node_) {
      if (!kv.first.IsScalar()) {
        return TypeError(path_.empty() ? "top level" : path_, "string keys", kv.first);
      }
      const std::string& key = kv.first.Scalar();
      if (!seen.insert(key).second) return DuplicateKey(KeyPath(path_, key), kv.first);
      if (known_.count(key) == 0) return UnknownKey(key, kv.first);
    }
    return absl::OkStatus();
  }

 private:
  // The value under `key`, or an undefined node if it is absent or null (keep the default).
  YAML::Node Take(const char* key) {
    known_.insert(key);
    if (!status_.ok() || !node_.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
    YAML::Node v = node_[key];
    if (!v || v.IsNull()) return YAML::Node(YAML::NodeType::Undefined);
    return v;
  }

  void Fail(absl::Status status) {
    if (status_.ok()) status_ = std::move(status);
  }

  static absl::Status RangeError(const std::string& path, const std::string& rule,
                                 const YAML::Node& v) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", rule, ", got ", v.Scalar(), Where(v)));
  }

  static absl::Status DuplicateKey(const std::string& path, const YAML::Node& key) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": duplicate key", Where(key)));
  }

  absl::Status UnknownKey(const std::string& key, const YAML::Node& key_node) const {
    std::string message = path_.empty() ? absl::StrCat("unknown key \"", key, "\" at top level")
                                        : absl::StrCat(KeyPath(path_, key), ": unknown key");
    absl::StrAppend(&message, Where(key_node));
    const std::string* best = nullptr;
    size_t best_distance = 3;  // suggest only close matches
    for (const std::string& candidate : known_) {
      const size_t d = EditDistance(key, candidate);
      if (d < best_distance) best = &candidate, best_distance = d;
    }
    if (best != nullptr) absl::StrAppend(&message, "; did you mean \"", *best, "\"?");
    return absl::InvalidArgumentError(message);
  }

  const YAML::Node node_;
  const std::string path_;
  std::set<std::string> known_;
  absl::Status status_;
};

// ---- Cross-field validation helpers ----

inline absl::Status Invalid(const std::string& path, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", message));
}

// The variable must be set and non-empty. Its value is never put in a message.
inline absl::Status RequireEnv(const std::string& path, const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr || *value == '\0') {
    return Invalid(path, absl::StrCat("environment variable ", name, " is not set"));
  }
  return absl::OkStatus();
}

inline absl::Status ValidateHeaders(const std::string& path, const std::map<std::string, std::string>& h) {
  for (const auto& [name, value] : h) {
    if (absl::StartsWith(value, "env:")) {
      AGENTD_RETURN_IF_ERROR(RequireEnv(KeyPath(path, name), value.substr(4)));
    }
  }
  return absl::OkStatus();
}

inline bool IsHttpUrl(const std::string& url) {
  for (const char* scheme : {"http://", "https://"}) {
    if (absl::StartsWith(url, scheme) && url.size() > std::strlen(scheme)) return true;
  }
  return false;
}

// Readers and checks of mcp_servers / http_tools (tool_config.cc), used by the loader.
absl::Status ReadMcpServer(const YAML::Node& node, const std::string& path, McpServerConfig* s);
absl::Status ReadHttpTool(const YAML::Node& node, const std::string& path, HttpToolConfig* t);
/// Names unique across both lists, URLs, header variables, per-tool settings, HTTP templates.
absl::Status ValidateToolServers(const Config& config);

}  // namespace agentd::server::config_internal
