// `agentctl projects|keys|usage|limits|audit`: the Projects API (ProjectService).
#include <google/protobuf/util/time_util.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <limits>
#include <map>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "cli/cli_common.h"
#include "cli/output.h"

namespace agentd::cli {
namespace {

namespace v1 = agentd::v1;
using google::protobuf::Timestamp;
using Stub = v1::ProjectService::Stub;

constexpr int32_t kProjectsPerPage = 100;
constexpr int64_t kMaxAuditPage = 1000;  // the server's page size limit

const std::map<std::string, v1::UsageGroupBy>& GroupByNames() {
  static const auto* names =
      new std::map<std::string, v1::UsageGroupBy>{{"agent", v1::USAGE_GROUP_BY_AGENT},
                                                  {"session", v1::USAGE_GROUP_BY_SESSION},
                                                  {"model", v1::USAGE_GROUP_BY_MODEL},
                                                  {"day", v1::USAGE_GROUP_BY_DAY}};
  return *names;
}

struct KeyCreateOptions {
  std::string role;  // admin | member | reader (checked by CLI11)
  std::string name;
  std::string project;
};

// --since / --until as given on the command line (checked by TimeFlag()).
struct TimeRange {
  std::string since;
  std::string until;
};

struct UsageOptions {
  std::string project;
  std::string by = "day";
  TimeRange range;
};

struct LimitsOptions {
  std::string project;
  double monthly_budget_usd = 0;
  int64_t daily_token_limit = 0;
  int32_t requests_per_minute = 0;
  // Set at registration: which of the flags were given (the others keep the current value).
  CLI::Option* budget_flag = nullptr;
  CLI::Option* tokens_flag = nullptr;
  CLI::Option* rpm_flag = nullptr;
  std::string allowed_tools;  // comma-separated; "*" = all; "none" = no tool servers
  CLI::Option* tools_flag = nullptr;
};

struct AuditOptions {
  std::string project;
  TimeRange range;
  int64_t limit = 0;  // 0 = all
};

// ---- Flag values ----------------------------------------------------------------------------

// A time flag: RFC 3339 ("2024-05-01T12:00:00Z", "2024-05-01T14:00:00+02:00") or a UTC date
// "YYYY-MM-DD", which means the start of that day, or with `end_of_day` the start of the next
// (so `--until 2024-05-31` includes all of May 31).
absl::StatusOr<Timestamp> ParseTimeFlag(const std::string& text, bool end_of_day) {
  absl::CivilDay day;
  if (text.size() == 10 && absl::ParseCivilTime(text, &day)) {
    if (end_of_day) day += 1;
    Timestamp ts;
    ts.set_seconds(absl::ToUnixSeconds(absl::FromCivil(day, absl::UTCTimeZone())));
    return ts;
  }
  Timestamp ts;
  if (google::protobuf::util::TimeUtil::FromString(text, &ts)) return ts;
  return absl::InvalidArgumentError(
      absl::StrCat("expected an RFC 3339 time like 2024-05-01T12:00:00Z or a UTC date like ",
                   "2024-05-01, got \"", text, "\""));
}

CLI::Validator TimeFlag() {
  return CLI::Validator(
      [](std::string& arg) -> std::string {
        const absl::StatusOr<Timestamp> parsed = ParseTimeFlag(arg, false);
        return parsed.ok() ? "" : std::string(parsed.status().message());
      },
      "");
}

// Sets the request's start_time/end_time from the flags given (they passed TimeFlag()); a usage
// error (exit 2) when --until is before --since, kExitOk otherwise.
template <typename Request>
int SetTimeRange(const TimeRange& range, Request* request) {
  if (!range.since.empty()) *request->mutable_start_time() = *ParseTimeFlag(range.since, false);
  if (!range.until.empty()) *request->mutable_end_time() = *ParseTimeFlag(range.until, true);
  if (request->has_start_time() && request->has_end_time() &&
      request->end_time() < request->start_time()) {
    return UsageError(absl::StrCat("--until ", range.until, " is before --since ", range.since));
  }
  return kExitOk;
}

CLI::Validator NonNegativeFinite() {
  return CLI::Validator(
      [](std::string& arg) -> std::string {
        double value = 0;
        if (absl::SimpleAtod(arg, &value) && std::isfinite(value) && value >= 0) return "";
        return "expected a number >= 0 (0 = unlimited), got \"" + arg + "\"";
      },
      "");
}

void AddTimeRangeFlags(CLI::App* cmd, TimeRange* range) {
  cmd->add_option("--since", range->since,
                  "From this time: RFC 3339, or YYYY-MM-DD for the start of that UTC day")
      ->check(TimeFlag())
      ->type_name("TIME");
  cmd->add_option("--until", range->until,
                  "Before this time: RFC 3339, or YYYY-MM-DD to include that whole UTC day")
      ->check(TimeFlag())
      ->type_name("TIME");
}

CLI::Option* AddProjectFlag(CLI::App* cmd, std::string* project) {
  return cmd->add_option("--project,-p", *project,
                         "Project id (default: the API key's project; another project needs an "
                         "operator key)");
}

// ---- Calls ----------------------------------------------------------------------------------

// One unary ProjectService call with a fresh context; reports a failure (exit 1).
template <typename Request, typename Response>
int Call(Connection& c,
         grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
         const Request& request, Response* response) {
  auto context = c.NewContext();
  const grpc::Status status = (c.projects().*method)(context.get(), request, response);
  return status.ok() ? kExitOk : c.Fail(status, *context);
}

int CreateProject(Connection& c, const std::string& name) {
  v1::CreateProjectRequest request;
  request.set_name(name);
  v1::Project project;
  if (int rc = Call(c, &Stub::CreateProject, request, &project); rc != kExitOk) return rc;
  if (c.structured()) return c.Print(project), kExitOk;
  PrintProjects({project});
  return kExitOk;
}

int GetProject(Connection& c, const std::string& id, v1::Project* project) {
  v1::GetProjectRequest request;
  request.set_project_id(id);
  return Call(c, &Stub::GetProject, request, project);
}

int ShowProject(Connection& c, const std::string& id) {
  v1::Project project;
  if (int rc = GetProject(c, id, &project); rc != kExitOk) return rc;
  if (c.structured()) return c.Print(project), kExitOk;
  PrintProjects({project});
  return kExitOk;
}

int ListProjects(Connection& c) {
  v1::ListProjectsResponse all;
  v1::ListProjectsRequest request;
  request.set_page_size(kProjectsPerPage);
  do {
    v1::ListProjectsResponse page;
    if (int rc = Call(c, &Stub::ListProjects, request, &page); rc != kExitOk) return rc;
    for (v1::Project& p : *page.mutable_projects()) *all.add_projects() = std::move(p);
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty());
  if (c.structured()) return c.Print(all), kExitOk;
  PrintProjects({all.projects().begin(), all.projects().end()});
  return kExitOk;
}

int CreateKey(Connection& c, const KeyCreateOptions& o) {
  v1::CreateApiKeyRequest request;
  request.set_project_id(o.project);
  v1::ApiKeyRole role = v1::API_KEY_ROLE_UNSPECIFIED;
  v1::ApiKeyRole_Parse("API_KEY_ROLE_" + absl::AsciiStrToUpper(o.role), &role);
  request.set_role(role);
  request.set_name(o.name);
  v1::CreateApiKeyResponse response;
  if (int rc = Call(c, &Stub::CreateApiKey, request, &response); rc != kExitOk) return rc;
  constexpr char kNotice[] = "Store the secret now: it is not shown again.";
  if (c.structured()) {
    c.Print(response);  // includes `secret`
    std::cerr << kNotice << std::endl;
    return kExitOk;
  }
  PrintApiKeys({response.key()});
  std::cout << "\nsecret: " << response.secret() << "\n" << kNotice << std::endl;
  return kExitOk;
}

int ListKeys(Connection& c, const std::string& project) {
  v1::ListApiKeysRequest request;
  request.set_project_id(project);
  v1::ListApiKeysResponse response;
  if (int rc = Call(c, &Stub::ListApiKeys, request, &response); rc != kExitOk) return rc;
  if (c.structured()) return c.Print(response), kExitOk;
  PrintApiKeys({response.keys().begin(), response.keys().end()});
  return kExitOk;
}

int RevokeKey(Connection& c, const std::string& key_id) {
  v1::RevokeApiKeyRequest request;
  request.set_key_id(key_id);
  google::protobuf::Empty response;
  if (int rc = Call(c, &Stub::RevokeApiKey, request, &response); rc != kExitOk) return rc;
  if (c.structured()) return c.Print(response), kExitOk;
  std::cout << "revoked key " << key_id << std::endl;
  return kExitOk;
}

int ShowUsage(Connection& c, const UsageOptions& o) {
  v1::GetUsageRequest request;
  request.set_project_id(o.project);
  request.set_group_by(GroupByNames().at(o.by));
  if (int rc = SetTimeRange(o.range, &request); rc != kExitOk) return rc;
  v1::GetUsageResponse response;
  if (int rc = Call(c, &Stub::GetUsage, request, &response); rc != kExitOk) return rc;
  if (c.structured()) return c.Print(response), kExitOk;
  PrintUsage(o.by, response);
  return kExitOk;
}

int ShowLimits(Connection& c, const std::string& project_id) {
  v1::Project project;
  if (int rc = GetProject(c, project_id, &project); rc != kExitOk) return rc;
  if (c.structured()) return c.Print(project), kExitOk;
  PrintLimits(project);
  return kExitOk;
}

// Read-modify-write: the limits not given keep the values GetProject returned.
int SetLimits(Connection& c, const LimitsOptions& o) {
  const bool budget = o.budget_flag->count() > 0;
  const bool tokens = o.tokens_flag->count() > 0;
  const bool rpm = o.rpm_flag->count() > 0;
  const bool tools = o.tools_flag->count() > 0;
  if (!budget && !tokens && !rpm && !tools) {
    return UsageError(
        "give at least one of --monthly-budget-usd, --daily-token-limit, --requests-per-minute, "
        "--allowed-tools");
  }
  v1::Project current;
  if (int rc = GetProject(c, o.project, &current); rc != kExitOk) return rc;
  v1::SetLimitsRequest request;
  request.set_project_id(current.project_id());
  v1::ProjectLimits* limits = request.mutable_limits();
  *limits = current.limits();
  if (budget) limits->set_monthly_budget_usd(o.monthly_budget_usd);
  if (tokens) limits->set_daily_token_limit(o.daily_token_limit);
  if (rpm) limits->set_requests_per_minute(o.requests_per_minute);
  // Absent keeps the server's list (only the operator may change it).
  limits->clear_allowed_tools();
  if (tools) {
    v1::ToolAllowList* list = limits->mutable_allowed_tools();
    if (o.allowed_tools != "none") {
      for (absl::string_view t : absl::StrSplit(o.allowed_tools, ',', absl::SkipWhitespace())) {
        list->add_tools(std::string(absl::StripAsciiWhitespace(t)));
      }
    }
  }
  v1::Project updated;
  if (int rc = Call(c, &Stub::SetLimits, request, &updated); rc != kExitOk) return rc;
  if (c.structured()) return c.Print(updated), kExitOk;
  PrintLimits(updated);
  return kExitOk;
}

// Pages through ListAuditEvents (oldest first) until the end or --limit records.
int ListAudit(Connection& c, const AuditOptions& o) {
  v1::ListAuditEventsRequest request;
  request.set_project_id(o.project);
  if (int rc = SetTimeRange(o.range, &request); rc != kExitOk) return rc;
  v1::ListAuditEventsResponse all;
  auto want_more = [&] { return o.limit == 0 || all.events_size() < o.limit; };
  do {
    const int64_t remaining = o.limit == 0 ? kMaxAuditPage : o.limit - all.events_size();
    request.set_page_size(static_cast<int32_t>(std::min(remaining, kMaxAuditPage)));
    v1::ListAuditEventsResponse page;
    if (int rc = Call(c, &Stub::ListAuditEvents, request, &page); rc != kExitOk) return rc;
    for (v1::AuditEvent& e : *page.mutable_events()) {
      if (!want_more()) break;
      *all.add_events() = std::move(e);
    }
    request.set_page_token(page.next_page_token());
  } while (!request.page_token().empty() && want_more());
  if (c.structured()) return c.Print(all), kExitOk;
  PrintAuditEvents({all.events().begin(), all.events().end()});
  return kExitOk;
}

// ---- Registration ---------------------------------------------------------------------------

void AddProjectsGroup(CLI::App& app, Dispatch* d) {
  CLI::App* projects = AddCommand(app, "projects", "Create, show and list projects (tenants)",
                                  "  agentctl projects create team-a\n  agentctl projects get\n"
                                  "  agentctl projects list -o json");
  projects->require_subcommand(1);

  auto name = std::make_shared<std::string>();
  CLI::App* create = AddCommand(*projects, "create", "Create a project (operator key only)",
                                "  agentctl projects create team-a");
  create->add_option("NAME", *name, "Project name (1-128 printable characters)")->required();
  create->callback(
      [d, name] { d->action = [name](Connection& c) { return CreateProject(c, *name); }; });

  auto id = std::make_shared<std::string>();
  CLI::App* get = AddCommand(*projects, "get", "Show a project and its limits",
                             "  agentctl projects get\n  agentctl projects get proj_0123 -o json");
  get->add_option("PROJECT_ID", *id, "Project id (default: the API key's project)");
  get->callback([d, id] { d->action = [id](Connection& c) { return ShowProject(c, *id); }; });

  CLI::App* list =
      AddCommand(*projects, "list", "List projects (the operator sees all, others their own)",
                 "  agentctl projects list");
  list->callback([d] { d->action = [](Connection& c) { return ListProjects(c); }; });
}

void AddKeysGroup(CLI::App& app, Dispatch* d) {
  CLI::App* keys = AddCommand(app, "keys", "Create, list and revoke API keys (admin key)",
                              "  agentctl keys create --role member --name ci\n"
                              "  agentctl keys list\n  agentctl keys revoke k0123456789abcdef");
  keys->require_subcommand(1);

  auto o = std::make_shared<KeyCreateOptions>();
  CLI::App* create =
      AddCommand(*keys, "create", "Create an API key; its secret is printed once and never again",
                 "  agentctl keys create --role member --name ci\n"
                 "  agentctl keys create --role reader --project proj_0123 -o json");
  create->add_option("--role", o->role, "What the key may do")
      ->required()
      ->check(CLI::IsMember({"admin", "member", "reader"}, CLI::ignore_case));
  create->add_option("--name", o->name, "A label for the key");
  AddProjectFlag(create, &o->project);
  create->callback([d, o] { d->action = [o](Connection& c) { return CreateKey(c, *o); }; });

  auto project = std::make_shared<std::string>();
  CLI::App* list = AddCommand(*keys, "list", "List a project's keys, revoked ones included",
                              "  agentctl keys list\n  agentctl keys list --project proj_0123");
  AddProjectFlag(list, project.get());
  list->callback(
      [d, project] { d->action = [project](Connection& c) { return ListKeys(c, *project); }; });

  auto key_id = std::make_shared<std::string>();
  CLI::App* revoke = AddCommand(*keys, "revoke", "Revoke a key: it fails from its next call on",
                                "  agentctl keys revoke k0123456789abcdef");
  revoke->add_option("KEY_ID", *key_id, "Key id (as shown by `keys list`)")->required();
  revoke->callback(
      [d, key_id] { d->action = [key_id](Connection& c) { return RevokeKey(c, *key_id); }; });
}

void AddUsage(CLI::App& app, Dispatch* d) {
  auto o = std::make_shared<UsageOptions>();
  CLI::App* cmd =
      AddCommand(app, "usage", "Show token usage, model calls and cost, grouped, with a TOTAL row",
                 "  agentctl usage\n"
                 "  agentctl usage --by model --since 2024-05-01 --until 2024-05-31\n"
                 "  agentctl usage --project proj_0123 --by agent -o json");
  AddProjectFlag(cmd, &o->project);
  cmd->add_option("--by", o->by, "Group rows by")
      ->check(CLI::IsMember({"agent", "session", "model", "day"}))
      ->capture_default_str();
  AddTimeRangeFlags(cmd, &o->range);
  cmd->callback([d, o] { d->action = [o](Connection& c) { return ShowUsage(c, *o); }; });
}

void AddLimitsGroup(CLI::App& app, Dispatch* d) {
  CLI::App* limits = AddCommand(app, "limits", "Show or change a project's limits (0 = unlimited)",
                                "  agentctl limits get\n"
                                "  agentctl limits set --monthly-budget-usd 50");
  limits->require_subcommand(1);

  auto project = std::make_shared<std::string>();
  CLI::App* get = AddCommand(*limits, "get", "Show a project's limits",
                             "  agentctl limits get --project proj_0123");
  AddProjectFlag(get, project.get());
  get->callback(
      [d, project] { d->action = [project](Connection& c) { return ShowLimits(c, *project); }; });

  auto o = std::make_shared<LimitsOptions>();
  CLI::App* set = AddCommand(
      *limits, "set", "Change limits; the ones not given keep their current value (admin key)",
      "  agentctl limits set --monthly-budget-usd 50 --requests-per-minute 120\n"
      "  agentctl limits set --project proj_0123 --daily-token-limit 0");
  AddProjectFlag(set, &o->project);
  o->budget_flag = set->add_option("--monthly-budget-usd", o->monthly_budget_usd,
                                   "Cost per UTC calendar month in USD (0 = unlimited)")
                       ->check(NonNegativeFinite())
                       ->type_name("USD");
  o->tokens_flag = set->add_option("--daily-token-limit", o->daily_token_limit,
                                   "Input + output tokens per UTC day (0 = unlimited)")
                       ->check(kWholeNumber)
                       ->type_name("N");
  o->rpm_flag = set->add_option("--requests-per-minute", o->requests_per_minute,
                                "Turn requests per minute, per replica (0 = unlimited)")
                    ->check(CLI::Range(0, std::numeric_limits<int32_t>::max()))
                    ->type_name("N");
  o->tools_flag = set->add_option("--allowed-tools", o->allowed_tools,
                                  "Server-side tools the project may use, comma-separated: "
                                  "mcp:SERVER, mcp:SERVER/TOOL, http:NAME; '*' = all, 'none' = "
                                  "none (operator key)")
                      ->type_name("LIST");
  set->callback([d, o] { d->action = [o](Connection& c) { return SetLimits(c, *o); }; });
}

void AddAudit(CLI::App& app, Dispatch* d) {
  auto o = std::make_shared<AuditOptions>();
  CLI::App* cmd =
      AddCommand(app, "audit", "Show a project's audit records, oldest first (admin key)",
                 "  agentctl audit --since 2024-05-01\n"
                 "  agentctl audit --project proj_0123 --limit 50 -o json");
  AddProjectFlag(cmd, &o->project);
  AddTimeRangeFlags(cmd, &o->range);
  cmd->add_option("--limit", o->limit, "At most N records, the oldest first (0 = all)")
      ->check(kWholeNumber);
  cmd->callback([d, o] { d->action = [o](Connection& c) { return ListAudit(c, *o); }; });
}

}  // namespace

void AddProjectCommands(CLI::App& app, Dispatch* dispatch) {
  AddProjectsGroup(app, dispatch);
  AddKeysGroup(app, dispatch);
  AddUsage(app, dispatch);
  AddLimitsGroup(app, dispatch);
  AddAudit(app, dispatch);
}

}  // namespace agentd::cli
