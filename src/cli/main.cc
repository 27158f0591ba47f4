// agentctl: a command-line client for agentd. Flags are parsed here only; each command's
// options live in the file that registers it. Exit codes: 0 ok, 1 server error, 2 usage error.
#include <algorithm>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/cli_common.h"

namespace {

using agentd::cli::kExitServerError;

// The deepest subcommand that was parsed (the app itself if none).
CLI::App* Selected(CLI::App& app) {
  CLI::App* current = &app;
  while (!current->get_subcommands().empty()) current = current->get_subcommands().front();
  return current;
}

// "session fork" for the selected subcommand.
std::string PathOf(CLI::App* command) {
  std::vector<std::string> names;
  for (CLI::App* c = command; c != nullptr && c->get_parent() != nullptr; c = c->get_parent()) {
    names.insert(names.begin(), c->get_name());
  }
  return absl::StrJoin(names, " ");
}

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// One line for a missing or misspelt subcommand of `group`: what is wrong, and the closest name.
std::string SubcommandProblem(CLI::App& app, CLI::App* group) {
  std::vector<std::string> names;
  for (CLI::App* sub : group->get_subcommands([](CLI::App*) { return true; })) {
    names.push_back(sub->get_name());
  }
  // With fallthrough, what a group could not place is left with the app.
  const std::vector<std::string> remaining = app.remaining(/*recurse=*/true);
  const std::string where = group->get_parent() == nullptr
                                ? std::string("agentctl")
                                : absl::StrCat("agentctl ", PathOf(group));
  if (remaining.empty() || remaining.front().rfind("-", 0) == 0) {
    return absl::StrCat("missing command: '", where, "' needs one of ", absl::StrJoin(names, ", "));
  }
  const std::string& typo = remaining.front();
  std::string best;
  size_t best_distance = 3;  // suggest only close names
  for (const std::string& name : names) {
    const size_t d = EditDistance(typo, name);
    if (d < best_distance || (name.rfind(typo, 0) == 0 && best.empty())) {
      best = name;
      best_distance = std::min(d, best_distance);
    }
  }
  return absl::StrCat("unknown command \"", typo, "\" for '", where, "'",
                      best.empty() ? "" : absl::StrCat(" (did you mean \"", best, "\"?)"));
}

// Help and version print and exit 0; every other parse error is one line and exit 2.
int ReportParseError(CLI::App& app, const CLI::ParseError& e) {
  if (e.get_exit_code() == 0) return app.exit(e);  // --help, --help-all, --version
  CLI::App* selected = Selected(app);
  agentd::cli::SetCommandPath(PathOf(selected));
  const bool needs_subcommand =
      selected->get_require_subcommand_min() > 0 && selected->get_subcommands().empty();
  if (needs_subcommand && dynamic_cast<const CLI::RequiredError*>(&e) != nullptr) {
    return agentd::cli::UsageError(SubcommandProblem(app, selected));
  }
  if (dynamic_cast<const CLI::ExtrasError*>(&e) != nullptr) {
    // CLI11 lists every extra argument (in reverse order); name the first one instead.
    const std::vector<std::string> extras = app.remaining(/*recurse=*/true);
    for (const std::string& arg : extras) {
      if (arg.size() > 1 && arg[0] == '-') {
        return agentd::cli::UsageError(absl::StrCat("unknown option \"", arg, "\""));
      }
    }
    if (!extras.empty()) {
      return agentd::cli::UsageError(absl::StrCat("unexpected argument \"", extras.front(), "\""));
    }
  }
  return agentd::cli::UsageError(e.what());
}

void AddGlobalOptions(CLI::App& app, agentd::cli::GlobalOptions* global) {
  app.add_option("--addr", global->addr, "agentd address HOST:PORT")
      ->envname("AGENTD_ADDR")
      ->capture_default_str();
  app.add_option("--api-key", global->api_key,
                 "API key, sent as `authorization: Bearer KEY` on every call")
      ->envname("AGENTD_API_KEY");
  app.add_option("--tls-ca", global->tls_ca,
                 "Connect with TLS, verifying the server with this PEM CA bundle")
      ->envname("AGENTD_TLS_CA");
  app.add_option(
      "--tls-cert", global->tls_cert,
      "Connect with TLS, presenting this PEM client certificate (mTLS; needs --tls-key)");
  app.add_option("--tls-key", global->tls_key, "PEM private key of --tls-cert");
  app.add_option("--timeout", global->timeout_seconds,
                 "Deadline of each call in seconds (0 = none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("-o,--output", global->output, "Output format")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str();
}

int Run(int argc, char** argv) {
  CLI::App app{
      "agentctl: manage agents, sessions, projects and API keys of an agentd server, and talk to "
      "agents"};
  app.footer(
      "Examples:\n"
      "  agentctl agent create --name helper --model echo\n"
      "  agentctl session create --agent agent_0123\n"
      "  agentctl send sess_0123 'hello'\n"
      "  agentctl chat sess_0123\n"
      "  agentctl events sess_0123 --follow\n"
      "  agentctl state list sess_0123 -o yaml\n"
      "  agentctl memory search 'tea preferences' --prefix users/alice/\n"
      "  agentctl keys create --role member --name ci\n"
      "  agentctl usage --by model --since 2024-05-01\n"
      "  agentctl --addr agentd.example:7700 --tls-ca ca.crt agent list\n"
      "Without --tls-* options the connection is plaintext (agentd serves plaintext only on\n"
      "loopback addresses unless configured otherwise).\n"
      "Environment: AGENTD_ADDR, AGENTD_API_KEY, AGENTD_TLS_CA.\n"
      "Exit codes: 0 ok, 1 server error, 2 usage error.");
  app.set_version_flag("--version", "agentctl 0.1.0");
  app.fallthrough();  // global options are accepted after the subcommand too
  app.require_subcommand(1);

  agentd::cli::GlobalOptions global;
  AddGlobalOptions(app, &global);
  agentd::cli::Dispatch dispatch;
  agentd::cli::AddAgentCommands(app, &dispatch);
  agentd::cli::AddSessionCommands(app, &dispatch);
  agentd::cli::AddTurnCommands(app, &dispatch);
  agentd::cli::AddChatCommand(app, &dispatch);
  agentd::cli::AddStateCommands(app, &dispatch);
  agentd::cli::AddMemoryCommands(app, &dispatch);
  agentd::cli::AddProjectCommands(app, &dispatch);
  agentd::cli::AddAdminCommands(app, &dispatch);
  agentd::cli::AddToolCommands(app, &dispatch);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return ReportParseError(app, e);
  }
  agentd::cli::SetCommandPath(PathOf(Selected(app)));
  if (!dispatch.action) return agentd::cli::UsageError("no command given");
  auto credentials = agentd::cli::ChannelCredentials(global);
  if (!credentials.ok()) {
    return agentd::cli::UsageError(std::string(credentials.status().message()));
  }
  agentd::cli::Connection connection(global, *std::move(credentials));
  return dispatch.action(connection);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "error: INTERNAL: " << e.what() << std::endl;
  } catch (...) {
    std::cerr << "error: INTERNAL: unexpected failure" << std::endl;
  }
  return kExitServerError;
}
