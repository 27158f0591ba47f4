// Config of server-side tools: `mcp_servers:` and `http_tools:` (docs/tools.md). URL templates
// and parameter schemas of HTTP tools are checked when the tool gateway is built at startup
// (tools::ValidateHttpTool), with the same key paths in their messages.
#include <set>

#include "server/config_fields.h"

namespace agentd::server::config_internal {
namespace {

absl::Status ReadToolSettings(const YAML::Node& node, const std::string& path,
                              ToolSettingsConfig* t) {
  Fields f(node, path);
  f.Int("timeout_ms", &t->timeout_ms, 1);
  f.Int("max_concurrency", &t->max_concurrency, 0, 100000);
  f.Bool("idempotent", &t->idempotent);
  return f.Finish();
}

// Names appear in ToolSpec names ("mcp:<name>/<tool>", "http:<name>"), so no separators.
absl::Status CheckName(const std::string& path, const std::string& name,
                       std::set<std::string>* names, const char* what) {
  if (name.empty() || name.find_first_of("/: ") != std::string::npos) {
    return Invalid(KeyPath(path, "name"), "must be non-empty without '/', ':' or spaces");
  }
  if (!names->insert(name).second) {
    return Invalid(KeyPath(path, "name"), absl::StrCat("duplicate ", what, " \"", name, "\""));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ReadMcpServer(const YAML::Node& node, const std::string& path, McpServerConfig* s) {
  Fields f(node, path);
  f.Str("name", &s->name);
  f.Str("url", &s->url);
  f.StrMap("headers", &s->headers);
  f.Int("timeout_ms", &s->timeout_ms, 1);
  f.StrList("allowed_tools", &s->allowed_tools);
  f.Int("max_concurrency", &s->max_concurrency, 0, 100000);
  f.Int("retries", &s->retries, 0, 10);
  f.StructMap<ToolSettingsConfig>("tools", &s->tools, ReadToolSettings);
  return f.Finish();
}

absl::Status ReadHttpTool(const YAML::Node& node, const std::string& path, HttpToolConfig* t) {
  Fields f(node, path);
  f.Str("name", &t->name);
  f.Str("description", &t->description);
  f.OneOf("method", &t->method, {"GET", "POST", "PUT", "PATCH", "DELETE"});
  f.Str("url", &t->url);
  f.StrMap("headers", &t->headers);
  f.Str("parameters_json_schema", &t->parameters_json_schema);
  f.Int("timeout_ms", &t->timeout_ms, 1);
  f.Int("max_concurrency", &t->max_concurrency, 0, 100000);
  f.Bool("idempotent", &t->idempotent);
  f.Int("retries", &t->retries, 0, 10);
  return f.Finish();
}

absl::Status ValidateToolServers(const Config& config) {
  std::set<std::string> names;
  for (size_t i = 0; i < config.mcp_servers.size(); ++i) {
    const McpServerConfig& s = config.mcp_servers[i];
    const std::string path = IndexPath("mcp_servers", i);
    AGENTD_RETURN_IF_ERROR(CheckName(path, s.name, &names, "MCP server"));
    if (!IsHttpUrl(s.url)) {
      return Invalid(KeyPath(path, "url"), "an http:// or https:// URL is required");
    }
    AGENTD_RETURN_IF_ERROR(ValidateHeaders(KeyPath(path, "headers"), s.headers));
    for (const auto& [tool, unused] : s.tools) {
      if (!s.allowed_tools.empty() &&
          std::find(s.allowed_tools.begin(), s.allowed_tools.end(), tool) ==
              s.allowed_tools.end()) {
        return Invalid(KeyPath(KeyPath(path, "tools"), tool),
                       "is not in allowed_tools, so it can never be called");
      }
    }
  }
  std::set<std::string> http_names;
  for (size_t i = 0; i < config.http_tools.size(); ++i) {
    const HttpToolConfig& t = config.http_tools[i];
    const std::string path = IndexPath("http_tools", i);
    AGENTD_RETURN_IF_ERROR(CheckName(path, t.name, &http_names, "HTTP tool"));
    if (!IsHttpUrl(t.url)) {
      return Invalid(KeyPath(path, "url"), "an http:// or https:// URL is required");
    }
    AGENTD_RETURN_IF_ERROR(ValidateHeaders(KeyPath(path, "headers"), t.headers));
  }
  return absl::OkStatus();
}

}  // namespace agentd::server::config_internal
