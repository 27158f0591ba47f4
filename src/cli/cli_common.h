// Shared plumbing of agentctl: global options, the connection to agentd, exit codes and the
// one-line error report. Commands are registered by the Add*Commands functions; a subcommand's
// callback stores the Action to run in a Dispatch, and main() runs it once parsing succeeded.
#pragma once

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "absl/strings/numbers.h"
#include "absl/status/statusor.h"
#include "agentd/v1/admin.grpc.pb.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "agentd/v1/memory.grpc.pb.h"
#include "agentd/v1/project.grpc.pb.h"
#include "agentd/v1/session.grpc.pb.h"
#include "agentd/v1/tool.grpc.pb.h"

namespace agentd::cli {

/// For whole-number options: 0 and up, said plainly (CLI11's NonNegativeNumber prints its range
/// as a 309-digit decimal and calls "abc" out of range).
inline const CLI::Validator kWholeNumber(
    [](std::string& value) -> std::string {
      int64_t n = 0;
      if (!absl::SimpleAtoi(value, &n)) {
        return "\"" + value + "\" is not a whole number from 0 to 9223372036854775807";
      }
      return n < 0 ? "must not be negative (got " + value + ")" : "";
    },
    "INT>=0");

inline constexpr int kExitOk = 0;
inline constexpr int kExitServerError = 1;
inline constexpr int kExitUsage = 2;

struct GlobalOptions {
  std::string addr = "127.0.0.1:7700";
  std::string api_key;   // never printed
  std::string tls_ca;    // PEM CA bundle to verify the server (empty: system roots)
  std::string tls_cert;  // PEM client certificate (mTLS), with tls_key
  std::string tls_key;
  bool tls() const { return !tls_ca.empty() || !tls_cert.empty() || !tls_key.empty(); }
  double timeout_seconds = 30;   // 0 = no deadline
  std::string output = "table";  // table | json | yaml
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
  agentd::v1::MemoryService::Stub& memory() { return *memory_; }
  agentd::v1::AdminService::Stub& admin() { return *admin_; }
  agentd::v1::ToolService::Stub& tools() { return *tools_; }
  const GlobalOptions& options() const { return options_; }

  /// True for `-o json` and `-o yaml`: commands print the RPC's response message with Print()
  /// instead of a table.
  bool structured() const { return options_.output != "table"; }
  /// The whole response: pretty protobuf JSON (proto field names), or the same content as one
  /// YAML document.
  void Print(const google::protobuf::Message& message) const;
  /// One item of a stream (events, turn events): a JSON line, or a YAML document after `---`.
  void PrintItem(const google::protobuf::Message& message) const;

  /// Prints `error: <CODE_NAME>: <message>` (one line, plus a hint where one helps) to stderr
  /// and returns kExitServerError. `context` is the failed call's (for its server metadata).
  int Fail(const grpc::Status& status, const grpc::ClientContext& context) const;

 private:
  GlobalOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<agentd::v1::AgentService::Stub> agents_;
  std::unique_ptr<agentd::v1::SessionService::Stub> sessions_;
  std::unique_ptr<agentd::v1::ProjectService::Stub> projects_;
  std::unique_ptr<agentd::v1::MemoryService::Stub> memory_;
  std::unique_ptr<agentd::v1::AdminService::Stub> admin_;
  std::unique_ptr<agentd::v1::ToolService::Stub> tools_;
};

/// Plaintext, or TLS when any --tls-* option is set (reading the PEM files). On error, the
/// message names the option and the file; the API key is checked too (it must fit in a header)
/// and is never part of a message.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const GlobalOptions& options);

/// "NOT_FOUND" for grpc::StatusCode::NOT_FOUND, etc.
std::string StatusCodeName(grpc::StatusCode code);

/// Prints `error: <message> (see 'agentctl <command> --help')` on one line to stderr and returns
/// kExitUsage (for usage errors CLI11 cannot see). The command is the one SetCommandPath() named.
int UsageError(const std::string& message);

/// The invoked command ("session fork"), for the hint of UsageError(); set by main() once parsed.
void SetCommandPath(const std::string& path);
const std::string& CommandPath();

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
/// `session create|get|list|delete|fork`; calls AddSessionTransferCommands() for the rest.
void AddSessionCommands(CLI::App& app, Dispatch* dispatch);
/// `session export|import|replay` under the `session` group.
void AddSessionTransferCommands(CLI::App& session, Dispatch* dispatch);
/// `send`, `events` and `turn cancel`.
void AddTurnCommands(CLI::App& app, Dispatch* dispatch);
/// Runs `request` over StreamTurn (for `send --stream` and `chat`), printing as it arrives: with
/// -o json|yaml every TurnEvent (PrintItem()), else the reply's text deltas (and a note when a
/// model call is retried), ending on a newline. Returns kExitOk with the turn's result in
/// `*result` and whether any text was printed in `*text_streamed`; or reports the failure (the
/// RPC's, or a stream that ended without a result) on stderr and returns kExitServerError.
int PrintStreamedTurn(Connection& c, const agentd::v1::RunTurnRequest& request,
                      agentd::v1::TurnResult* result, bool* text_streamed);
/// `chat SESSION`: an interactive (or piped) conversation over StreamTurn.
void AddChatCommand(CLI::App& app, Dispatch* dispatch);
/// `state get|put|list` (a session's tool state).
void AddStateCommands(CLI::App& app, Dispatch* dispatch);
/// `memory put|get|list|search|delete` (MemoryService).
void AddMemoryCommands(CLI::App& app, Dispatch* dispatch);
/// `projects`, `keys`, `usage`, `limits` and `audit` (ProjectService).
void AddProjectCommands(CLI::App& app, Dispatch* dispatch);
/// `admin backup|backups|restore` (AdminService, operator key).
void AddAdminCommands(CLI::App& app, Dispatch* dispatch);
/// `agentctl tools list` (tool_commands.cc).
void AddToolCommands(CLI::App& app, Dispatch* dispatch);

}  // namespace agentd::cli
