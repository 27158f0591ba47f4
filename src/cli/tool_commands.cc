// `agentctl tools list`: the server's tool servers (MCP, HTTP), their tools, settings and health
// (ToolService.ListToolServers), and which of them the caller's project may use.
#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "cli/cli_common.h"
#include "cli/output.h"

namespace agentd::cli {
namespace {

namespace v1 = agentd::v1;

struct ListOptions {
  bool refresh = false;
  bool verbose = false;
};

std::string HealthText(const v1::ToolServer& s) {
  if (!s.has_last_contact_time()) return "not contacted yet";
  if (s.healthy()) return absl::StrCat("ok at ", TimeText(s.last_contact_time()));
  return absl::StrCat("failing since ", TimeText(s.last_contact_time()), ": ",
                      OneLine(s.last_error(), 160));
}

int ListTools(Connection& c, const ListOptions& o) {
  v1::ListToolServersRequest request;
  request.set_refresh(o.refresh);
  v1::ListToolServersResponse response;
  auto context = c.NewContext();
  const grpc::Status status = c.tools().ListToolServers(context.get(), request, &response);
  if (!status.ok()) return c.Fail(status, *context);
  if (c.structured()) return c.Print(response), kExitOk;
  if (response.servers().empty()) {
    std::cout << "no tool servers are configured (mcp_servers / http_tools in the server config)\n";
    return kExitOk;
  }
  Table servers({"server", "kind", "endpoint", "tools", "health"});
  for (const v1::ToolServer& s : response.servers()) {
    servers.Add({s.name(), s.kind(), s.endpoint(), absl::StrCat(s.tools_size()), HealthText(s)});
  }
  servers.Print(std::cout);
  std::cout << "\n";
  Table tools({"tool (agent ToolSpec name)", "model sees", "allowed", "idempotent", "timeout_ms",
               "max_concurrency", "in_flight"});
  for (const v1::ToolServer& s : response.servers()) {
    for (const v1::ToolInfo& t : s.tools()) {
      tools.Add({t.spec_name(), t.model_name(), t.allowed() ? "yes" : "no",
                 t.idempotent() ? "yes" : "no", absl::StrCat(t.timeout_ms()),
                 t.max_concurrency() == 0 ? "-" : absl::StrCat(t.max_concurrency()),
                 absl::StrCat(t.in_flight())});
    }
  }
  tools.Print(std::cout);
  if (o.verbose) {
    for (const v1::ToolServer& s : response.servers()) {
      for (const v1::ToolInfo& t : s.tools()) {
        std::cout << "\n" << t.spec_name() << ": " << t.description() << "\n  parameters: "
                  << t.parameters_json_schema() << "\n";
      }
    }
  }
  return kExitOk;
}

}  // namespace

void AddToolCommands(CLI::App& app, Dispatch* d) {
  CLI::App* tools = AddCommand(app, "tools", "Server-side tools: MCP servers and HTTP tools",
                               "  agentctl tools list\n  agentctl tools list --refresh -o yaml");
  tools->require_subcommand(1);
  auto o = std::make_shared<ListOptions>();
  CLI::App* list = AddCommand(
      *tools, "list",
      "Configured tool servers, their tools, settings and health, and which ones this project "
      "may use",
      "  agentctl tools list\n  agentctl tools list --refresh --verbose");
  list->add_flag("--refresh", o->refresh,
                 "Ask every MCP server for its tool list now (instead of the cached one)");
  list->add_flag("--verbose,-v", o->verbose, "Also print each tool's description and schema");
  list->callback([d, o] { d->action = [o](Connection& c) { return ListTools(c, *o); }; });
}

}  // namespace agentd::cli
