#include "runtime/builtin_tools.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/json_text.h"
#include "runtime/json_schema.h"
#include "store/schema.h"

namespace agentd::runtime {

using nlohmann::json;

namespace {

const std::vector<BuiltinToolInfo>& Table() {
  static const std::vector<BuiltinToolInfo> kTools = {
      {"state_get",
       "Read a value from this session's tool state, a key/value store that persists across the "
       "turns of the session. Returns {\"key\", \"value\", \"version\"}; an error if the key "
       "does not exist.",
       R"({"type":"object","properties":{)"
       R"("key":{"type":"string","minLength":1,"maxLength":256,"description":"The key to read."}},)"
       R"("required":["key"],"additionalProperties":false})"},
      {"state_put",
       "Write a JSON value under a key of this session's tool state. Returns {\"key\", "
       "\"version\"} with the key's new version. With expected_version, nothing is written "
       "unless the key is still at that version (read it with state_get first).",
       R"({"type":"object","properties":{)"
       R"("key":{"type":"string","minLength":1,"maxLength":256,"description":"The key to write."},)"
       R"("value":{"description":"Any JSON value."},)"
       R"("expected_version":{"type":"integer","minimum":0,)"
       R"("description":"Write only if the key is at this version (0 or absent: always write)."}},)"
       R"("required":["key","value"],"additionalProperties":false})"},
      {"memory_search",
       "Search long-term memory, shared by every session of the project, for records about a "
       "query, best match first. namespace_prefix limits the search to namespaces starting with "
       "it (e.g. \"users/alice/\").",
       R"({"type":"object","properties":{)"
       R"("query":{"type":"string","minLength":1,"description":"Words to look for."},)"
       R"("namespace_prefix":{"type":"string","description":"Only namespaces starting with this."},)"
       R"("top_k":{"type":"integer","minimum":1,"maximum":50,"description":"How many results (default 5)."}},)"
       R"("required":["query"],"additionalProperties":false})"},
      {"memory_put",
       "Save a text in long-term memory under a namespace such as \"users/alice/preferences\", "
       "so that later sessions find it with memory_search. Give a key to replace that record; "
       "omit it to add a new record. Returns {\"namespace\", \"key\"}.",
       R"({"type":"object","properties":{)"
       R"("namespace":{"type":"string","minLength":1,"description":"Where to store it, e.g. users/alice/preferences."},)"
       R"("key":{"type":"string","description":"Record key; omit to create a new record."},)"
       R"("text":{"type":"string","minLength":1,"description":"What to remember."}},)"
       R"("required":["namespace","text"],"additionalProperties":false})"},
  };
  return kTools;
}

v1::ToolResult Result(const std::string& call_id, const json& output) {
  v1::ToolResult r;
  r.set_tool_call_id(call_id);
  r.set_output(common::DumpJson(output));  // never throws on a turn thread
  return r;
}

v1::ToolResult Error(const std::string& call_id, const std::string& message) {
  v1::ToolResult r;
  r.set_tool_call_id(call_id);
  r.set_output(absl::StrCat("error: ", message));
  r.set_is_error(true);
  return r;
}

std::string BadKey(const std::string& key) {
  return absl::StrCat("state keys are 1..", store::schema::kMaxStateKeyBytes,
                      " bytes of printable ASCII (got ", key.size(), " bytes)");
}

std::string StatusText(const absl::Status& st) {
  return absl::StrCat(absl::StatusCodeToString(st.code()), ": ", st.message());
}

}  // namespace

const std::vector<BuiltinToolInfo>& BuiltinTools() { return Table(); }

const BuiltinToolInfo* FindBuiltinTool(absl::string_view name) {
  for (const BuiltinToolInfo& t : Table()) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

absl::Status ValidateBuiltinToolSpec(const v1::ToolSpec& tool, const std::string& field) {
  if (absl::StartsWith(tool.name(), "mcp:")) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": MCP tools are not available yet on this server: it has no "
                            "mcp_servers configured (\"", tool.name(), "\")"));
  }
  if (absl::StartsWith(tool.name(), "http:")) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": HTTP tools are not available on this server: it has no "
                            "http_tools configured (\"", tool.name(), "\")"));
  }
  const BuiltinToolInfo* info = FindBuiltinTool(tool.name());
  if (info == nullptr) {
    std::vector<std::string> names;
    for (const BuiltinToolInfo& t : Table()) names.emplace_back(t.name);
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": unknown builtin tool \"", tool.name(),
                     "\" (builtin tools: ", absl::StrJoin(names, ", "), ")"));
  }
  if (!tool.parameters_json_schema().empty()) {
    const json given = json::parse(tool.parameters_json_schema(), nullptr, false);
    if (given != json::parse(info->parameters_json_schema)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".parameters_json_schema: the schema of builtin tool \"", tool.name(),
                       "\" is set by agentd; leave it empty"));
    }
  }
  return absl::OkStatus();
}

void FillBuiltinToolSpec(v1::ToolSpec* tool) {
  const BuiltinToolInfo* info = FindBuiltinTool(tool->name());
  if (info == nullptr) return;
  tool->set_parameters_json_schema(info->parameters_json_schema);
  if (tool->description().empty()) tool->set_description(info->description);
}

v1::ToolResult BuiltinToolRunner::Run(const v1::ToolCall& call, const json& args) {
  v1::ToolResult r;
  if (call.name() == "state_get") {
    r = StateGet(args);
  } else if (call.name() == "state_put") {
    r = StatePut(call, args);
  } else if (call.name() == "memory_search") {
    r = MemorySearch(args);
  } else if (call.name() == "memory_put") {
    r = MemoryPut(args);
  } else {
    r = Error("", absl::StrCat("\"", call.name(), "\" is not a builtin tool"));
  }
  r.set_tool_call_id(call.id());
  return r;
}

absl::StatusOr<std::pair<std::string, int64_t>> BuiltinToolRunner::Current(const std::string& key) {
  auto it = pending_.find(key);
  if (it != pending_.end()) return std::make_pair(it->second.value_json, it->second.version);
  auto entry = store_->GetState(project_id_, session_id_, key);
  if (absl::IsNotFound(entry.status())) return std::make_pair(std::string(), int64_t{0});
  if (!entry.ok()) return entry.status();
  return std::make_pair(entry->value_json(), entry->version());
}

v1::ToolResult BuiltinToolRunner::StateGet(const json& args) {
  const std::string key = args.at("key").get<std::string>();
  if (!store::schema::IsValidStateKey(key)) return Error("", BadKey(key));
  auto cur = Current(key);
  if (!cur.ok()) {
    return Error("",
                 absl::StrCat("cannot read state key \"", key, "\": ", StatusText(cur.status())));
  }
  if (cur->second == 0) return Error("", absl::StrCat("state key \"", key, "\" does not exist"));
  // Stored by a writer that did not check JSON (or its depth): passed on as a string.
  json value = JsonNestingDepth(cur->first) > kMaxJsonDepth
                   ? json(json::value_t::discarded)
                   : json::parse(cur->first, nullptr, false);
  if (value.is_discarded()) value = cur->first;
  return Result("", {{"key", key}, {"value", std::move(value)}, {"version", cur->second}});
}

v1::ToolResult BuiltinToolRunner::StatePut(const v1::ToolCall& call, const json& args) {
  const std::string key = args.at("key").get<std::string>();
  if (!store::schema::IsValidStateKey(key)) return Error("", BadKey(key));
  std::string value_json = args.at("value").dump();
  if (value_json.size() > store::schema::kMaxStateValueBytes) {
    return Error("", absl::StrCat("state values are at most ", store::schema::kMaxStateValueBytes,
                                  " bytes of JSON"));
  }
  auto cur = Current(key);
  if (!cur.ok()) {
    return Error("",
                 absl::StrCat("cannot read state key \"", key, "\": ", StatusText(cur.status())));
  }
  const int64_t version = cur->second;
  const int64_t expected = args.value("expected_version", int64_t{0});
  if (expected != 0 && expected != version) {
    return Error("",
                 absl::StrCat("state key \"", key, "\" is at version ", version, ", not ", expected,
                              "; nothing was written (read it again with state_get)"));
  }
  auto [it, inserted] = pending_.try_emplace(key);
  if (inserted) it->second.read_version = version;
  it->second.value_json = value_json;
  it->second.version = version + 1;
  it->second.call_ids.push_back(call.id());
  mutations_.push_back({key, std::move(value_json), version});
  return Result("", {{"key", key}, {"version", version + 1}});
}

v1::ToolResult BuiltinToolRunner::MemorySearch(const json& args) {
  const std::string query = args.at("query").get<std::string>();
  const std::string prefix = args.value("namespace_prefix", std::string());
  const int32_t top_k = std::min(args.value("top_k", kDefaultTopK), kMaxTopK);
  auto found = memory_.Search(project_id_, prefix, query, top_k);
  if (!found.ok()) {
    return Error("", absl::StrCat("memory search failed: ", StatusText(found.status())));
  }
  json results = json::array();
  for (const store::ScoredMemoryRecord& m : *found) {
    results.push_back({{"namespace", m.record.namespace_()},
                       {"key", m.record.key()},
                       {"text", m.record.text()},
                       {"score", m.score}});
  }
  return Result("", {{"results", std::move(results)}});
}

v1::ToolResult BuiltinToolRunner::MemoryPut(const json& args) {
  v1::MemoryRecord record;
  record.set_namespace_(args.at("namespace").get<std::string>());
  record.set_key(args.value("key", std::string()));  // empty: MemoryManager assigns "mem_…"
  record.set_text(args.at("text").get<std::string>());
  auto stored = memory_.Put(project_id_, std::move(record));
  if (!stored.ok()) {
    return Error("", absl::StrCat("memory write failed: ", StatusText(stored.status())));
  }
  return Result("", {{"namespace", stored->namespace_()}, {"key", stored->key()}});
}

absl::StatusOr<std::vector<v1::ToolResult>> BuiltinToolRunner::DropConflictingWrites() {
  std::vector<v1::ToolResult> replaced;
  for (auto it = pending_.begin(); it != pending_.end();) {
    auto entry = store_->GetState(project_id_, session_id_, it->first);
    int64_t now = 0;
    if (entry.ok()) {
      now = entry->version();
    } else if (!absl::IsNotFound(entry.status())) {
      return entry.status();
    }
    if (now == it->second.read_version) {
      ++it;
      continue;
    }
    const std::string& key = it->first;
    mutations_.erase(std::remove_if(mutations_.begin(), mutations_.end(),
                                    [&](const store::StateMutation& m) { return m.key == key; }),
                     mutations_.end());
    for (const std::string& id : it->second.call_ids) {
      replaced.push_back(
          Error(id, absl::StrCat("state key \"", it->first,
                                 "\" was changed by another writer (now version ", now,
                                 ") before this write was committed; nothing "
                                 "was written (read it again with state_get)")));
    }
    it = pending_.erase(it);
  }
  return replaced;
}

}  // namespace agentd::runtime
