// Shared plumbing of agentctl: global options, the connection to agentd, exit codes and the
// one-line error report. Commands are registered by the Add*Commands functions; a subcommand's
// callback stores the Action to run in a Dispatch, and main() runs it once parsing succeeded.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "agentd/v1/project.grpc.pb.h"
#include "agentd/v1/session.grpc.pb.h"

namespace agentd::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitServerError = 1;
inline constexpr int kExitUsage = 2;

struct GlobalOptions {
  std::string addr = "127.0.0.1:7700";
  std::string api_key;  // never printed
  std::string tls_ca;    // PEM CA bundle to verify the server (empty: system roots)
  std::string tls_cert;  // PEM client certificate (mTLS), with tls_key
  std::string tls_key;
  bool tls() const { return !tls_ca.empty() || !tls_cert.empty() || !tls_key.empty(); }
  double timeout_seconds = 30;   // 0 = no deadline
  std::string output = "table";  // table | json
};

/// One channel to agentd and its stubs. Builds the per-call contexts that carry the
/// `authorization` and `x-agentd-session` metadata and the deadline. Single-threaded use.
class Connection {
 public:
  /// `credentials`: from ChannelCredentials(options).
  Connection(GlobalOptions options, std::shared_ptr<grpc::ChannelCredentials> credentials);

  /// A context for one RPC. `session_id` (if non-empty) is sent as `x-agentd-session`;
  /// `with_deadline = false` leaves long-lived streams (watch) without a deadline.
  std::unique_ptr<grpc::ClientContext> NewContext(const std::string& session_id = "",
                                                  bool with_deadline = true) const;

  agentd::v1::AgentService::Stub& agents() { return *agents_; }
  agentd::v1::SessionService::Stub& sessions() { return *sessions_; }
  agentd::v1::ProjectService::Stub& projects() { return *projects_; }
  const GlobalOptions& options() const { return options_; }
  bool json() const { return options_.output == "json"; }

  /// Prints `error: <CODE_NAME>: <message>` (one line, plus a hint where one helps) to stderr
  /// and returns kExitServerError. `context` is the failed call's (for its server metadata).
  int Fail(const grpc::Status& status, const grpc::ClientContext& context) const;

 private:
  GlobalOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<agentd::v1::AgentService::Stub> agents_;
  std::unique_ptr<agentd::v1::SessionService::Stub> sessions_;
  std::unique_ptr<agentd::v1::ProjectService::Stub> projects_;
};

/// Plaintext, or TLS when any --tls-* option is set (reading the PEM files). On error, the
/// message names the option and the file; the API key is checked too (it must fit in a header)
/// and is never part of a message.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const GlobalOptions& options);

/// "NOT_FOUND" for grpc::StatusCode::NOT_FOUND, etc.
std::string StatusCodeName(grpc::StatusCode code);

/// Prints `error: <message>` to stderr and returns kExitUsage (for usage errors CLI11 cannot see).
int UsageError(const std::string& message);

/// Validator for KEY=VALUE arguments (the key must be non-empty).
CLI::Validator KeyValue();

/// Splits "KEY=VALUE" at the first '='. Call only on values that passed KeyValue().
std::pair<std::string, std::string> SplitKeyValue(const std::string& arg);

using Action = std::function<int(Connection&)>;

/// Filled by the callback of the subcommand that was invoked.
struct Dispatch {
  Action action;
};

/// Creates `name` under `parent` with a description and a footer of examples.
CLI::App* AddCommand(CLI::App& parent, const std::string& name, const std::string& description,
                     const std::string& examples);

void AddAgentCommands(CLI::App& app, Dispatch* dispatch);
void AddSessionCommands(CLI::App& app, Dispatch* dispatch);
void AddTurnCommands(CLI::App& app, Dispatch* dispatch);
/// `projects`, `keys`, `usage`, `limits` and `audit` (ProjectService).
void AddProjectCommands(CLI::App& app, Dispatch* dispatch);

}  // namespace agentd::cli
