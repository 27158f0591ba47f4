// agentctl: a command-line client for agentd. Flags are parsed here only; each command's
// options live in the file that registers it. Exit codes: 0 ok, 1 server error, 2 usage error.
#include <cstdlib>
#include <exception>
#include <iostream>

#include "cli/cli_common.h"

namespace {

using agentd::cli::kExitServerError;
using agentd::cli::kExitUsage;

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
  app.add_option("--tls-cert", global->tls_cert,
                 "Connect with TLS, presenting this PEM client certificate (mTLS; needs --tls-key)");
  app.add_option("--tls-key", global->tls_key, "PEM private key of --tls-cert");
  app.add_option("--timeout", global->timeout_seconds,
                 "Deadline of each call in seconds (0 = none)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("-o,--output", global->output, "Output format")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
}

int Run(int argc, char** argv) {
  CLI::App app{
      "agentctl: manage agents, sessions, projects and API keys of an agentd server, and talk to "
      "agents"};
  app.footer(
      "Examples:\n"
      "  agentctl agent create --name helper --model echo\n"
      "  agentctl session create --agent agt_0123\n"
      "  agentctl send sess_0123 'hello'\n"
      "  agentctl events sess_0123 --follow\n"
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
  agentd::cli::AddProjectCommands(app, &dispatch);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kExitUsage;
  }
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
