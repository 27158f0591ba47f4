#include "tools/mcp_registry.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <functional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace agentd::tools {

using nlohmann::json;

namespace {

constexpr size_t kMaxModelToolName = 64;

// j[key] if it is a string, else "" (server JSON is never trusted to have the right types:
// nlohmann's value() would throw).
std::string Str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

// A block that is not text: its kind and size, never its (base64) payload.
std::string Placeholder(const json& block) {
  std::string type = Str(block, "type");
  if (type.empty()) type = "unknown";
  auto str = [](const json& j, const char* key) { return Str(j, key); };
  if (type == "resource" && block.contains("resource")) {
    const json& r = block["resource"];
    if (!str(r, "text").empty()) return str(r, "text");
    return absl::StrCat("[resource ", str(r, "uri"), " ", str(r, "mimeType"), ", ",
                        str(r, "blob").size(), " bytes of base64 omitted]");
  }
  if (type == "resource_link") {
    return absl::StrCat("[resource link ", str(block, "uri"),
                        str(block, "name").empty() ? "" : absl::StrCat(" (", str(block, "name"), ")"),
                        "]");
  }
  return absl::StrCat("[", type, " ", str(block, "mimeType"), ", ", str(block, "data").size(),
                      " bytes of base64 omitted]");
}

}  // namespace

McpRegistry::McpRegistry(McpRegistryOptions options)
    : validate_timeout_(options.validate_timeout) {
  for (McpServerOptions& o : options.servers) {
    auto s = std::make_unique<Server>();
    McpClientOptions co;
    co.name = o.name;
    co.url = o.url;
    co.headers = o.headers;
    co.timeout = o.timeout;
    s->client = std::make_unique<McpClient>(std::move(co));
    s->options = std::move(o);
    const std::string name = s->options.name;
    servers_.emplace(name, std::move(s));
  }
}

std::string McpRegistry::ModelToolName(const std::string& server, const std::string& tool) {
  std::string name = absl::StrCat("mcp__", server, "__", tool);
  for (char& c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) c = '_';
  }
  if (name.size() <= kMaxModelToolName) return name;
  // FNV-1a of the full (unsanitized) name: stable across processes, unlike std::hash.
  uint32_t h = 2166136261u;
  for (unsigned char c : absl::StrCat(server, "/", tool)) h = (h ^ c) * 16777619u;
  return absl::StrCat(name.substr(0, kMaxModelToolName - 9), "_", absl::StrFormat("%08x", h));
}

bool McpRegistry::ParseSpecName(const std::string& spec_name, std::string* server, std::string* tool) {
  if (!absl::StartsWith(spec_name, "mcp:")) return false;
  const std::string rest = spec_name.substr(4);
  const size_t slash = rest.find('/');
  *server = rest.substr(0, slash);
  *tool = slash == std::string::npos ? "" : rest.substr(slash + 1);
  if (server->empty()) return false;
  if (slash != std::string::npos && tool->empty()) return false;
  return true;
}

std::vector<std::string> McpRegistry::ServerNames() const {
  std::vector<std::string> names;
  for (const auto& [name, unused] : servers_) names.push_back(name);
  return names;
}

McpRegistry::Server* McpRegistry::Find(const std::string& name) {
  auto it = servers_.find(name);
  return it == servers_.end() ? nullptr : it->second.get();
}

McpClient* McpRegistry::client(const std::string& server) {
  Server* s = Find(server);
  return s == nullptr ? nullptr : s->client.get();
}

bool McpRegistry::Allowed(const Server& s, const std::string& tool) const {
  const auto& allowed = s.options.allowed_tools;
  return allowed.empty() || std::find(allowed.begin(), allowed.end(), tool) != allowed.end();
}

absl::StatusOr<std::vector<McpTool>> McpRegistry::Tools(Server* s, absl::Time deadline,
                                                        bool refresh) {
  if (!refresh) {
    absl::MutexLock lock(&s->mu);
    if (s->listed && s->generation == s->client->tools_generation() &&
        absl::Now() - s->listed_at < kToolsCacheTtl) {
      return s->tools;
    }
  }
  auto listed = s->client->ListTools(deadline);
  if (!listed.ok()) return listed.status();
  std::vector<McpTool> allowed;
  for (McpTool& t : *listed) {
    if (Allowed(*s, t.name)) allowed.push_back(std::move(t));
  }
  absl::MutexLock lock(&s->mu);
  s->tools = allowed;
  s->listed = true;
  s->listed_at = absl::Now();
  s->generation = s->client->tools_generation();
  return allowed;
}

absl::Status McpRegistry::CheckSpec(const std::string& spec_name,
                                    const std::string& parameters_json_schema,
                                    const std::string& field) {
  std::string server, tool;
  if (!ParseSpecName(spec_name, &server, &tool)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".name \"", spec_name, "\": MCP tools are named \"mcp:<server>/<tool>\" or \"mcp:<server>\""));
  }
  Server* s = Find(server);
  if (s == nullptr) {
    const std::vector<std::string> names = ServerNames();
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": unknown MCP server \"", server, "\" (configured: ",
        names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
  }
  if (!parameters_json_schema.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".parameters_json_schema: the schema of MCP tool \"", spec_name,
        "\" comes from the server; leave it empty"));
  }
  if (tool.empty()) return absl::OkStatus();
  if (!Allowed(*s, tool)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": tool \"", tool, "\" of MCP server \"", server, "\" is not in its allowed_tools (",
        absl::StrJoin(s->options.allowed_tools, ", "), ")"));
  }
  auto tools = Tools(s, absl::Now() + validate_timeout_);
  if (!tools.ok()) {
    spdlog::warn("agent tool {}: not checked against the server: {}", spec_name,
                 std::string(tools.status().message()));
    return absl::OkStatus();  // connected lazily; the turn will tell
  }
  for (const McpTool& t : *tools) {
    if (t.name == tool) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": MCP server \"", server, "\" has no tool \"", tool, "\""));
}

std::vector<McpToolBinding> McpRegistry::Resolve(const std::string& spec_name, absl::Time deadline,
                                                 std::string* warning) {
  std::vector<McpToolBinding> out;
  std::string server, tool;
  if (!ParseSpecName(spec_name, &server, &tool)) {
    *warning = absl::StrCat("\"", spec_name, "\" is not an MCP tool name");
    return out;
  }
  Server* s = Find(server);
  if (s == nullptr) {
    *warning = absl::StrCat("MCP server \"", server, "\" is not configured");
    return out;
  }
  if (!tool.empty() && !Allowed(*s, tool)) {
    *warning = absl::StrCat("tool \"", tool, "\" of MCP server \"", server, "\" is not allowed");
    return out;
  }
  auto tools = Tools(s, std::min(deadline, absl::Now() + s->options.timeout));
  if (!tools.ok()) {
    *warning = std::string(tools.status().message());
    if (!tool.empty()) {
      out.push_back({ModelToolName(server, tool), server, tool,
                     absl::StrCat("Tool \"", tool, "\" of MCP server \"", server,
                                  "\" (its description is unavailable: the server cannot be reached)."),
                     R"({"type":"object"})"});
    }
    return out;
  }
  for (const McpTool& t : *tools) {
    if (!tool.empty() && t.name != tool) continue;
    out.push_back({ModelToolName(server, t.name), server, t.name, t.description, t.input_schema.dump()});
  }
  if (out.empty() && !tool.empty()) {
    *warning = absl::StrCat("MCP server \"", server, "\" no longer lists tool \"", tool, "\"");
  }
  return out;
}

bool McpRegistry::Truncate(std::string* text, size_t max_bytes) {
  if (text->size() <= max_bytes) return false;
  const size_t total = text->size();
  size_t cut = max_bytes;
  // Back off to a UTF-8 boundary (never split a multi-byte character).
  while (cut > 0 && (static_cast<unsigned char>((*text)[cut]) & 0xC0) == 0x80) --cut;
  text->resize(cut);
  absl::StrAppend(text, "\n[agentd: output truncated: ", cut, " of ", total, " bytes shown]");
  return true;
}

std::string McpRegistry::ResultText(const McpCallResult& result) {
  std::vector<std::string> parts;
  for (const json& block : result.content) {
    if (!block.is_object()) continue;
    if (Str(block, "type") == "text" && block.contains("text") && block["text"].is_string()) {
      parts.push_back(block["text"].get<std::string>());
    } else {
      parts.push_back(Placeholder(block));
    }
  }
  if (parts.empty() && !result.structured_content.is_null()) {
    return result.structured_content.dump();
  }
  return absl::StrJoin(parts, "\n");
}

absl::StatusOr<McpCallResult> McpRegistry::CallTool(const McpToolBinding& tool,
                                                    const json& arguments, absl::Time deadline,
                                                    const std::function<bool()>& cancelled) {
  Server* s = Find(tool.server);
  if (s == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("MCP server \"", tool.server, "\" is not configured"));
  }
  if (!Allowed(*s, tool.tool)) {
    return absl::FailedPreconditionError(absl::StrCat("tool \"", tool.tool, "\" of MCP server \"",
                                                      tool.server, "\" is not allowed"));
  }
  return s->client->CallTool(tool.tool, arguments, deadline, cancelled);
}

absl::StatusOr<std::vector<McpTool>> McpRegistry::ListTools(const std::string& server,
                                                            absl::Time deadline, bool refresh) {
  Server* s = Find(server);
  if (s == nullptr) {
    return absl::NotFoundError(absl::StrCat("MCP server \"", server, "\" is not configured"));
  }
  return Tools(s, deadline, refresh);
}

const McpServerOptions* McpRegistry::options(const std::string& server) {
  Server* s = Find(server);
  return s == nullptr ? nullptr : &s->options;
}

}  // namespace agentd::tools
