#include "cli/cli_common.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "cli/output.h"
#include "cli/structured_output.h"

namespace agentd::cli {
namespace {

constexpr int kMaxMessageBytes = 256 * 1024 * 1024;

// True when the server itself answered (every agentd response carries a request id).
bool ServerAnswered(const grpc::ClientContext& context) {
  return context.GetServerInitialMetadata().count("x-agentd-request-id") > 0 ||
         context.GetServerTrailingMetadata().count("x-agentd-request-id") > 0;
}

std::string Hint(const grpc::Status& status, const GlobalOptions& options, bool server_answered) {
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      if (server_answered) return "";
      if (options.tls()) {
        return absl::StrCat(" (is agentd serving TLS at ", options.addr,
                            "? check --addr, --tls-ca, and --tls-cert/--tls-key if it requires "
                            "client certificates)");
      }
      return absl::StrCat(" (is agentd running at ", options.addr,
                          "? set --addr or AGENTD_ADDR; if it serves TLS, set --tls-ca)");
    case grpc::StatusCode::ABORTED:
      return " (a concurrent change or call conflicts with this one: re-read and retry)";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return absl::StrCat(" (timeout ", options.timeout_seconds, "s; raise it with --timeout)");
    case grpc::StatusCode::UNAUTHENTICATED:
      if (!options.api_key.empty()) {
        return " (check the key given with --api-key or AGENTD_API_KEY; `agentctl keys list` "
               "shows which keys are active)";
      }
      return " (no API key: set --api-key or AGENTD_API_KEY)";
    default:
      return "";
  }
}

// The whole file, or INVALID_ARGUMENT naming the option and the file.
absl::StatusOr<std::string> ReadPem(const char* option, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) {
    return absl::InvalidArgumentError(
        absl::StrCat(option, ": cannot read ", path, ": ", std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad() || text.str().find("-----BEGIN ") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(option, ": ", path, " is not a PEM file"));
  }
  return text.str();
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ChannelCredentials(
    const GlobalOptions& options) {
  for (char c : options.api_key) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          "--api-key / AGENTD_API_KEY: the key may only contain printable ASCII characters "
          "without spaces");
    }
  }
  if (!options.tls()) return grpc::InsecureChannelCredentials();
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key must be given together");
  }
  grpc::SslCredentialsOptions ssl;
  if (!options.tls_ca.empty()) {
    absl::StatusOr<std::string> ca = ReadPem("--tls-ca", options.tls_ca);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (!options.tls_cert.empty()) {
    absl::StatusOr<std::string> cert = ReadPem("--tls-cert", options.tls_cert);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem("--tls-key", options.tls_key);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

Connection::Connection(GlobalOptions options, std::shared_ptr<grpc::ChannelCredentials> credentials)
    : options_(std::move(options)) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  channel_ = grpc::CreateCustomChannel(options_.addr, std::move(credentials), args);
  agents_ = agentd::v1::AgentService::NewStub(channel_);
  sessions_ = agentd::v1::SessionService::NewStub(channel_);
  projects_ = agentd::v1::ProjectService::NewStub(channel_);
  memory_ = agentd::v1::MemoryService::NewStub(channel_);
  admin_ = agentd::v1::AdminService::NewStub(channel_);
  tools_ = agentd::v1::ToolService::NewStub(channel_);
}

void Connection::Print(const google::protobuf::Message& message) const {
  if (options_.output == "yaml") {
    std::cout << ToYaml(message) << std::endl;
  } else {
    PrintJson(message);
  }
}

void Connection::PrintItem(const google::protobuf::Message& message) const {
  if (options_.output == "yaml") {
    std::cout << "---\n" << ToYaml(message) << std::endl;
  } else {
    PrintJsonLine(message);
  }
}

std::unique_ptr<grpc::ClientContext> Connection::NewContext(const std::string& session_id,
                                                            bool with_deadline) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!options_.api_key.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", options_.api_key));
  }
  if (!session_id.empty()) context->AddMetadata("x-agentd-session", session_id);
  if (with_deadline && options_.timeout_seconds > 0) {
    const auto timeout = std::chrono::duration<double>(options_.timeout_seconds);
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
  }
  return context;
}

int Connection::Fail(const grpc::Status& status, const grpc::ClientContext& context) const {
  const std::string message =
      absl::StrReplaceAll(status.error_message(), {{"\r\n", " "}, {"\n", " "}, {"\r", " "}});
  std::cerr << "error: " << StatusCodeName(status.error_code()) << ": " << message
            << Hint(status, options_, ServerAnswered(context)) << std::endl;
  return kExitServerError;
}

std::string StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return absl::StrCat("CODE_", static_cast<int>(code));
  }
}

namespace {
std::string& CommandPathStorage() {
  static auto* path = new std::string();
  return *path;
}
}  // namespace

void SetCommandPath(const std::string& path) { CommandPathStorage() = path; }
const std::string& CommandPath() { return CommandPathStorage(); }

int UsageError(const std::string& message) {
  const std::string& path = CommandPath();
  std::cerr << "error: " << message << " (see 'agentctl" << (path.empty() ? "" : " ") << path
            << " --help')" << std::endl;
  return kExitUsage;
}

CLI::Validator KeyValue() {
  return CLI::Validator(
      [](std::string& arg) -> std::string {
        const size_t eq = arg.find('=');
        return eq == std::string::npos || eq == 0 ? "expected KEY=VALUE, got \"" + arg + "\"" : "";
      },
      "");
}

std::pair<std::string, std::string> SplitKeyValue(const std::string& arg) {
  const size_t eq = arg.find('=');
  return {arg.substr(0, eq), eq == std::string::npos ? "" : arg.substr(eq + 1)};
}

CLI::App* AddCommand(CLI::App& parent, const std::string& name, const std::string& description,
                     const std::string& examples) {
  CLI::App* command = parent.add_subcommand(name, description);
  command->footer("Examples:\n" + examples);
  return command;
}

}  // namespace agentd::cli
