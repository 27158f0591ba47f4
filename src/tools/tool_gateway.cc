#include "tools/tool_gateway.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/time_util.h"

namespace agentd::tools {

using nlohmann::json;

namespace {

constexpr absl::Duration kListRefreshTimeout = absl::Seconds(3);
constexpr absl::Duration kLimiterPoll = absl::Milliseconds(50);

v1::ToolResult ErrorResult(const std::string& text) {
  v1::ToolResult r;
  r.set_output(absl::StrCat("error: ", text));
  r.set_is_error(true);
  return r;
}

// scheme://host[:port]/path of a URL: no credentials, query or fragment (they may hold secrets).
std::string Endpoint(const std::string& url) {
  std::string out = url.substr(0, url.find_first_of("?#"));
  const size_t scheme = out.find("://");
  if (scheme != std::string::npos) {
    const size_t host = scheme + 3;
    const size_t at = out.find('@', host);
    const size_t slash = out.find('/', host);
    if (at != std::string::npos && (slash == std::string::npos || at < slash)) {
      out.erase(host, at + 1 - host);
    }
  }
  return out;
}

}  // namespace

// ---- ToolAllowList -------------------------------------------------------------------------

ToolAllowList ToolAllowList::Only(std::vector<std::string> entries) {
  ToolAllowList l;
  l.restricted_ = true;
  l.entries_ = std::move(entries);
  return l;
}

ToolAllowList ToolAllowList::FromLimits(const v1::ProjectLimits& limits) {
  if (!limits.has_allowed_tools()) return ToolAllowList();
  return Only({limits.allowed_tools().tools().begin(), limits.allowed_tools().tools().end()});
}

bool ToolAllowList::AllowsTool(const std::string& canonical_spec) const {
  if (!restricted_) return true;
  for (const std::string& e : entries_) {
    if (e == canonical_spec) return true;
    // "mcp:<server>" covers "mcp:<server>/<tool>".
    if (absl::StartsWith(e, "mcp:") && e.find('/') == std::string::npos &&
        absl::StartsWith(canonical_spec, e + "/")) {
      return true;
    }
  }
  return false;
}

bool ToolAllowList::AllowsSpec(const std::string& spec_name) const {
  if (!restricted_) return true;
  return std::find(entries_.begin(), entries_.end(), spec_name) != entries_.end() ||
         AllowsTool(spec_name);
}

std::string ToolAllowList::Describe() const {
  if (!restricted_) return "all";
  return entries_.empty() ? "none" : absl::StrJoin(entries_, ", ");
}

// ---- Internals -----------------------------------------------------------------------------

// Calls in flight against a maximum; Acquire waits for a slot until a deadline.
class ToolGateway::Limiter {
 public:
  explicit Limiter(int max) : max_(max) {}

  bool Acquire(absl::Time deadline, const std::function<bool()>& cancelled) {
    absl::MutexLock lock(&mu_);
    auto free = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return max_ <= 0 || in_flight_ < max_;
    };
    while (!free()) {
      if (absl::Now() >= deadline || (cancelled && cancelled())) return false;
      mu_.AwaitWithDeadline(absl::Condition(&free), std::min(deadline, absl::Now() + kLimiterPoll));
    }
    ++in_flight_;
    return true;
  }
  void Release() {
    absl::MutexLock lock(&mu_);
    --in_flight_;
  }
  int in_flight() {
    absl::MutexLock lock(&mu_);
    return in_flight_;
  }
  int max() const { return max_; }

 private:
  const int max_;
  absl::Mutex mu_;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

struct ToolGateway::Health {
  absl::Mutex mu;
  bool healthy ABSL_GUARDED_BY(mu) = true;
  std::string last_error ABSL_GUARDED_BY(mu);
  absl::Time last_contact ABSL_GUARDED_BY(mu) = absl::InfinitePast();

  void Record(const absl::Status& st) {
    absl::MutexLock lock(&mu);
    healthy = st.ok();
    last_error = st.ok() ? "" : std::string(st.message());
    last_contact = absl::Now();
  }
  void Fill(v1::ToolServer* out) {
    absl::MutexLock lock(&mu);
    out->set_healthy(healthy);
    out->set_last_error(last_error);
    if (last_contact != absl::InfinitePast()) *out->mutable_last_contact_time() = ToProto(last_contact);
  }
};

struct ToolGateway::HttpTool {
  HttpToolEntry entry;
  std::unique_ptr<Limiter> limiter;
  Health health;
};

struct ToolGateway::McpServer {
  McpServerPolicy policy;
  std::unique_ptr<Limiter> limiter;
  Health health;
  absl::Mutex mu;
  std::map<std::string, std::unique_ptr<Limiter>> tool_limiters ABSL_GUARDED_BY(mu);
};

// ---- ToolGateway ---------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<ToolGateway>> ToolGateway::Create(ToolGatewayOptions options) {
  for (size_t i = 0; i < options.http.size(); ++i) {
    absl::Status st = ValidateHttpTool(options.http[i].options);
    if (!st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("http_tools[", i, "] (\"",
                                                     options.http[i].options.name,
                                                     "\"): ", st.message()));
    }
  }
  return std::unique_ptr<ToolGateway>(new ToolGateway(std::move(options)));
}

ToolGateway::ToolGateway(ToolGatewayOptions options)
    : max_result_bytes_(options.max_result_bytes), initial_backoff_(options.initial_backoff) {
  for (const McpServerOptions& o : options.mcp.servers) {
    auto s = std::make_unique<McpServer>();
    auto p = options.mcp_policy.find(o.name);
    if (p != options.mcp_policy.end()) s->policy = p->second;
    s->limiter = std::make_unique<Limiter>(s->policy.max_concurrency);
    mcp_servers_.emplace(o.name, std::move(s));
  }
  if (!options.mcp.servers.empty()) mcp_ = std::make_unique<McpRegistry>(std::move(options.mcp));
  for (HttpToolEntry& e : options.http) {
    auto t = std::make_unique<HttpTool>();
    t->limiter = std::make_unique<Limiter>(e.settings.max_concurrency);
    t->entry = std::move(e);
    const std::string name = t->entry.options.name;
    http_tools_.emplace(name, std::move(t));
  }
}

ToolGateway::~ToolGateway() = default;

bool ToolGateway::Handles(const std::string& spec_name) {
  return absl::StartsWith(spec_name, "mcp:") || absl::StartsWith(spec_name, "http:");
}

std::string ToolGateway::HttpModelToolName(const std::string& name) {
  std::string out = absl::StrCat("http__", name);
  for (char& c : out) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) c = '_';
  }
  return out.substr(0, 64);
}

absl::Status ToolGateway::CheckSpec(const v1::ToolSpec& spec, const ToolAllowList& allow,
                                    const std::string& field) {
  const std::string& name = spec.name();
  if (absl::StartsWith(name, "http:")) {
    const std::string tool = name.substr(5);
    if (http_tools_.count(tool) == 0) {
      std::vector<std::string> names;
      for (const auto& [n, unused] : http_tools_) names.push_back(n);
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": unknown HTTP tool \"", tool, "\" (configured: ",
          names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
    }
    if (!spec.parameters_json_schema().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".parameters_json_schema: the schema of HTTP tool \"", name,
          "\" comes from the server's config; leave it empty"));
    }
  } else {
    if (mcp_ == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".name \"", name, "\": no MCP servers are configured"));
    }
    AGENTD_RETURN_IF_ERROR(mcp_->CheckSpec(name, spec.parameters_json_schema(), field));
  }
  if (!allow.AllowsSpec(name)) {
    return absl::PermissionDeniedError(absl::StrCat(
        field, ": this project may not use tool \"", name,
        "\" (its allowed_tools: ", allow.Describe(), ")"));
  }
  return absl::OkStatus();
}

std::vector<ToolBinding> ToolGateway::Resolve(const std::string& spec_name,
                                              const ToolAllowList& allow, absl::Time deadline,
                                              std::string* warning) {
  std::vector<ToolBinding> out;
  if (absl::StartsWith(spec_name, "http:")) {
    auto it = http_tools_.find(spec_name.substr(5));
    if (it == http_tools_.end()) {
      *warning = absl::StrCat("HTTP tool \"", spec_name.substr(5), "\" is not configured");
    } else if (!allow.AllowsTool(spec_name)) {
      *warning = absl::StrCat("tool \"", spec_name, "\" is not allowed for this project");
    } else {
      const HttpToolOptions& o = it->second->entry.options;
      out.push_back({ToolBinding::Kind::kHttp, HttpModelToolName(o.name), spec_name, o.name, "",
                     o.description,
                     o.parameters_json_schema.empty() ? R"({"type":"object"})"
                                                      : o.parameters_json_schema});
    }
    return out;
  }
  if (mcp_ == nullptr) {
    *warning = "no MCP servers are configured";
    return out;
  }
  std::vector<std::string> dropped;
  for (McpToolBinding& b : mcp_->Resolve(spec_name, deadline, warning)) {
    std::string canonical = absl::StrCat("mcp:", b.server, "/", b.tool);
    if (!allow.AllowsTool(canonical)) {
      dropped.push_back(canonical);
      continue;
    }
    out.push_back({ToolBinding::Kind::kMcp, std::move(b.model_name), std::move(canonical),
                   std::move(b.server), std::move(b.tool), std::move(b.description),
                   std::move(b.input_schema_json)});
  }
  if (!dropped.empty()) {
    absl::StrAppend(warning, warning->empty() ? "" : "; ", "not allowed for this project: ",
                    absl::StrJoin(dropped, ", "));
  }
  return out;
}

ToolSettings ToolGateway::McpSettings(const ToolBinding& tool) const {
  ToolSettings s;
  const McpServerOptions* o = mcp_ == nullptr ? nullptr : mcp_->options(tool.server);
  if (o != nullptr) s.timeout = o->timeout;
  auto server = mcp_servers_.find(tool.server);
  if (server == mcp_servers_.end()) return s;
  auto t = server->second->policy.tools.find(tool.tool);
  if (t == server->second->policy.tools.end()) return s;
  if (t->second.timeout > absl::ZeroDuration()) s.timeout = t->second.timeout;
  s.max_concurrency = t->second.max_concurrency;
  s.idempotent = t->second.idempotent;
  return s;
}

ToolGateway::Limiter* ToolGateway::ToolLimiter(const ToolBinding& tool) {
  if (tool.kind == ToolBinding::Kind::kHttp) return http_tools_.at(tool.server)->limiter.get();
  McpServer* s = mcp_servers_.at(tool.server).get();
  absl::MutexLock lock(&s->mu);
  std::unique_ptr<Limiter>& l = s->tool_limiters[tool.tool];
  if (l == nullptr) l = std::make_unique<Limiter>(McpSettings(tool).max_concurrency);
  return l.get();
}

ToolGateway::Limiter* ToolGateway::ServerLimiter(const ToolBinding& tool) {
  if (tool.kind == ToolBinding::Kind::kHttp) return nullptr;
  return mcp_servers_.at(tool.server)->limiter.get();
}

ToolGateway::Health* ToolGateway::HealthOf(const ToolBinding& tool) {
  if (tool.kind == ToolBinding::Kind::kHttp) return &http_tools_.at(tool.server)->health;
  return &mcp_servers_.at(tool.server)->health;
}

absl::StatusOr<std::pair<std::string, bool>> ToolGateway::Attempt(
    const ToolBinding& tool, const json& arguments, absl::Time deadline,
    const std::function<bool()>& cancelled, bool* retryable) {
  *retryable = false;
  if (tool.kind == ToolBinding::Kind::kHttp) {
    const HttpToolEntry& e = http_tools_.at(tool.server)->entry;
    auto reply = CallHttpTool(e.options, arguments, deadline, cancelled, 32 << 20);
    HealthOf(tool)->Record(reply.status());
    if (!reply.ok()) {
      *retryable = absl::IsUnavailable(reply.status()) || absl::IsDeadlineExceeded(reply.status());
      return reply.status();
    }
    const long st = reply->status;
    *retryable = st == 429 || st == 502 || st == 503 || st == 504;
    return HttpToolResultText(*reply);
  }
  McpToolBinding b{tool.model_name, tool.server, tool.tool, tool.description,
                   tool.input_schema_json};
  auto result = mcp_->CallTool(b, arguments, deadline, cancelled);
  // A JSON-RPC error (INVALID_ARGUMENT / UNKNOWN) is an answer: the server is up.
  HealthOf(tool)->Record(result.ok() || absl::IsInvalidArgument(result.status()) ||
                                 absl::IsUnknown(result.status()) ||
                                 absl::IsCancelled(result.status())
                             ? absl::OkStatus()
                             : result.status());
  if (!result.ok()) {
    *retryable = absl::IsUnavailable(result.status()) || absl::IsDeadlineExceeded(result.status());
    return result.status();
  }
  return std::make_pair(McpRegistry::ResultText(*result), result->is_error);
}

v1::ToolResult ToolGateway::Call(const ToolBinding& tool, const json& arguments,
                                 const ToolAllowList& allow, absl::Time deadline,
                                 const std::function<bool()>& cancelled) {
  const auto start = std::chrono::steady_clock::now();
  v1::ToolResult r;
  const bool known = tool.kind == ToolBinding::Kind::kHttp ? (http_tools_.count(tool.server) != 0)
                                                           : (mcp_servers_.count(tool.server) != 0);
  if (!known) {
    r = ErrorResult(absl::StrCat("tool \"", tool.spec_name, "\" is not configured"));
  } else if (!allow.AllowsTool(tool.spec_name)) {
    r = ErrorResult(absl::StrCat("tool \"", tool.spec_name,
                                 "\" is not allowed for this project (allowed_tools: ",
                                 allow.Describe(), ")"));
  } else {
    ToolSettings settings;
    int retries = 0;
    if (tool.kind == ToolBinding::Kind::kHttp) {
      const HttpToolEntry& e = http_tools_.at(tool.server)->entry;
      settings = e.settings;
      retries = e.retries;
    } else {
      settings = McpSettings(tool);
      retries = mcp_servers_.at(tool.server)->policy.retries;
    }
    if (!settings.idempotent) retries = 0;
    Limiter* server_limit = ServerLimiter(tool);
    Limiter* tool_limit = ToolLimiter(tool);
    if (server_limit != nullptr && !server_limit->Acquire(deadline, cancelled)) {
      r = ErrorResult(absl::StrCat("tool \"", tool.spec_name, "\" was not run: its server had ",
                                   server_limit->max(),
                                   " calls in flight (max_concurrency) until the deadline"));
    } else if (!tool_limit->Acquire(deadline, cancelled)) {
      if (server_limit != nullptr) server_limit->Release();
      r = ErrorResult(absl::StrCat("tool \"", tool.spec_name, "\" was not run: ",
                                   tool_limit->max(),
                                   " calls of it were in flight (max_concurrency) until the deadline"));
    } else {
      absl::Duration backoff = initial_backoff_;
      for (int attempt = 0;; ++attempt) {
        const absl::Time now = absl::Now();
        const absl::Time attempt_deadline = std::min(deadline, now + settings.timeout);
        bool retryable = false;
        auto out = Attempt(tool, arguments, attempt_deadline, cancelled, &retryable);
        const bool can_retry = retryable && attempt < retries && !(cancelled && cancelled()) &&
                               absl::Now() + backoff < deadline;
        if (!can_retry) {
          if (out.ok()) {
            r.set_output(std::move(out->first));
            r.set_is_error(out->second);
          } else if (absl::IsDeadlineExceeded(out.status())) {
            r = ErrorResult(absl::StrCat("tool \"", tool.spec_name, "\" did not answer within ",
                                         absl::ToInt64Milliseconds(attempt_deadline - now),
                                         " ms; the call was cancelled"));
          } else {
            r = ErrorResult(std::string(out.status().message()));
          }
          if (attempt > 0 && r.is_error()) {
            absl::StrAppend(r.mutable_output(), " (after ", attempt + 1, " attempts)");
          }
          break;
        }
        spdlog::info("tool {}: attempt {} failed ({}), retrying in {} ms", tool.spec_name,
                     attempt + 1,
                     out.ok() ? std::string("retryable answer") : std::string(out.status().message()),
                     absl::ToInt64Milliseconds(backoff));
        absl::SleepFor(backoff);
        backoff *= 2;
      }
      tool_limit->Release();
      if (server_limit != nullptr) server_limit->Release();
    }
  }
  if (McpRegistry::Truncate(r.mutable_output(), max_result_bytes_)) r.set_truncated(true);
  r.set_served_by(tool.kind == ToolBinding::Kind::kHttp ? absl::StrCat("http:", tool.server)
                                                        : absl::StrCat("mcp:", tool.server));
  r.set_duration_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count());
  return r;
}

v1::ListToolServersResponse ToolGateway::List(const ToolAllowList& allow, bool refresh) {
  v1::ListToolServersResponse response;
  for (const auto& [name, server] : mcp_servers_) {
    const McpServerOptions* o = mcp_->options(name);
    v1::ToolServer* out = response.add_servers();
    out->set_name(name);
    out->set_kind("mcp");
    out->set_endpoint(Endpoint(o->url));
    auto tools = mcp_->ListTools(name, absl::Now() + kListRefreshTimeout, refresh);
    if (refresh || !tools.ok()) server->health.Record(tools.status());
    server->health.Fill(out);
    if (!tools.ok()) continue;
    for (const McpTool& t : *tools) {
      ToolBinding b{ToolBinding::Kind::kMcp, McpRegistry::ModelToolName(name, t.name),
                    absl::StrCat("mcp:", name, "/", t.name), name, t.name, t.description, ""};
      const ToolSettings s = McpSettings(b);
      v1::ToolInfo* info = out->add_tools();
      info->set_name(t.name);
      info->set_spec_name(b.spec_name);
      info->set_model_name(b.model_name);
      info->set_description(t.description);
      info->set_parameters_json_schema(t.input_schema.dump());
      info->set_idempotent(s.idempotent);
      info->set_timeout_ms(absl::ToInt64Milliseconds(s.timeout));
      info->set_max_concurrency(s.max_concurrency);
      info->set_in_flight(ToolLimiter(b)->in_flight());
      info->set_allowed(allow.AllowsTool(b.spec_name));
    }
  }
  for (const auto& [name, tool] : http_tools_) {
    const HttpToolEntry& e = tool->entry;
    v1::ToolServer* out = response.add_servers();
    out->set_name(name);
    out->set_kind("http");
    out->set_endpoint(Endpoint(e.options.url));
    tool->health.Fill(out);
    v1::ToolInfo* info = out->add_tools();
    info->set_name(name);
    info->set_spec_name(absl::StrCat("http:", name));
    info->set_model_name(HttpModelToolName(name));
    info->set_description(e.options.description);
    info->set_parameters_json_schema(e.options.parameters_json_schema.empty()
                                         ? R"({"type":"object"})"
                                         : e.options.parameters_json_schema);
    info->set_idempotent(e.settings.idempotent);
    info->set_timeout_ms(absl::ToInt64Milliseconds(e.settings.timeout));
    info->set_max_concurrency(e.settings.max_concurrency);
    info->set_in_flight(tool->limiter->in_flight());
    info->set_allowed(allow.AllowsTool(info->spec_name()));
  }
  return response;
}

}  // namespace agentd::tools
