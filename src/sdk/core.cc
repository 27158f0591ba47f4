#include "sdk/core.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace agentd::internal {
namespace {

constexpr char kDefaultAddress[] = "127.0.0.1:7700";
// Turn results carry every event of the turn; the gRPC default (4 MiB) is too small for long ones.
constexpr int kMaxReceiveBytes = 64 << 20;

std::string Getenv(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

absl::StatusOr<std::string> ReadPem(const char* option, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError(absl::StrCat(option, ": cannot read \"", path, "\""));
  std::ostringstream text;
  text << in.rdbuf();
  if (text.str().find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(option, ": \"", path, "\" is not a PEM file"));
  }
  return text.str();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials(const ClientOptions& o) {
  const bool tls =
      o.tls || !o.tls_ca_file.empty() || !o.tls_cert_file.empty() || !o.tls_key_file.empty();
  if (!tls) return grpc::InsecureChannelCredentials();
  if (o.tls_cert_file.empty() != o.tls_key_file.empty()) {
    return absl::InvalidArgumentError("tls_cert_file and tls_key_file must be given together");
  }
  grpc::SslCredentialsOptions ssl;
  if (!o.tls_ca_file.empty()) {
    absl::StatusOr<std::string> ca = ReadPem("tls_ca_file", o.tls_ca_file);
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *std::move(ca);
  }
  if (!o.tls_cert_file.empty()) {
    absl::StatusOr<std::string> cert = ReadPem("tls_cert_file", o.tls_cert_file);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadPem("tls_key_file", o.tls_key_file);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(cert);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace

absl::Status FromGrpc(const grpc::Status& status) {
  absl::StatusCode code = absl::StatusCode::kUnknown;
  switch (status.error_code()) {
    case grpc::StatusCode::OK:
      return absl::OkStatus();
    case grpc::StatusCode::CANCELLED:
      code = absl::StatusCode::kCancelled;
      break;
    case grpc::StatusCode::UNKNOWN:
      code = absl::StatusCode::kUnknown;
      break;
    case grpc::StatusCode::INVALID_ARGUMENT:
      code = absl::StatusCode::kInvalidArgument;
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      code = absl::StatusCode::kDeadlineExceeded;
      break;
    case grpc::StatusCode::NOT_FOUND:
      code = absl::StatusCode::kNotFound;
      break;
    case grpc::StatusCode::ALREADY_EXISTS:
      code = absl::StatusCode::kAlreadyExists;
      break;
    case grpc::StatusCode::PERMISSION_DENIED:
      code = absl::StatusCode::kPermissionDenied;
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      code = absl::StatusCode::kUnauthenticated;
      break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      code = absl::StatusCode::kResourceExhausted;
      break;
    case grpc::StatusCode::FAILED_PRECONDITION:
      code = absl::StatusCode::kFailedPrecondition;
      break;
    case grpc::StatusCode::ABORTED:
      code = absl::StatusCode::kAborted;
      break;
    case grpc::StatusCode::OUT_OF_RANGE:
      code = absl::StatusCode::kOutOfRange;
      break;
    case grpc::StatusCode::UNIMPLEMENTED:
      code = absl::StatusCode::kUnimplemented;
      break;
    case grpc::StatusCode::INTERNAL:
      code = absl::StatusCode::kInternal;
      break;
    case grpc::StatusCode::UNAVAILABLE:
      code = absl::StatusCode::kUnavailable;
      break;
    case grpc::StatusCode::DATA_LOSS:
      code = absl::StatusCode::kDataLoss;
      break;
    default:
      break;
  }
  return absl::Status(code, status.error_message());
}

absl::Status FromGrpc(const grpc::Status& status, const grpc::ClientContext& ctx) {
  absl::Status out = FromGrpc(status);
  if (out.ok()) return out;
  const auto& trailing = ctx.GetServerTrailingMetadata();
  auto it = trailing.find("x-agentd-turn-id");
  if (it != trailing.end()) {
    out.SetPayload(kRecordedTurnPayload, absl::Cord(absl::string_view(it->second.data(),
                                                                       it->second.size())));
  }
  return out;
}

ClientOptions ResolveOptions(ClientOptions options) {
  if (options.address.empty()) options.address = Getenv("AGENTD_ADDR");
  if (options.address.empty()) options.address = kDefaultAddress;
  if (options.api_key.empty()) options.api_key = Getenv("AGENTD_API_KEY");
  return options;
}

absl::StatusOr<std::shared_ptr<Core>> Core::Create(ClientOptions options) {
  options = ResolveOptions(std::move(options));
  for (char c : options.api_key) {
    if (c < 0x21 || c > 0x7e) {
      // The key itself is never part of a message.
      return absl::InvalidArgumentError(
          "api_key / AGENTD_API_KEY may only contain printable ASCII characters without spaces");
    }
  }
  if (options.max_attempts < 1) return absl::InvalidArgumentError("max_attempts must be >= 1");
  if (options.deadline <= absl::ZeroDuration() || options.turn_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("deadline and turn_deadline must be positive");
  }
  if (options.initial_backoff < absl::ZeroDuration() ||
      options.max_backoff < options.initial_backoff) {
    return absl::InvalidArgumentError("need 0 <= initial_backoff <= max_backoff");
  }

  std::shared_ptr<Core> core(new Core());
  core->channel_ = options.channel;
  if (core->channel_ == nullptr) {
    absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = Credentials(options);
    if (!creds.ok()) return creds.status();
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
    core->channel_ = grpc::CreateCustomChannel(options.address, *creds, args);
  }
  if (!options.api_key.empty()) core->bearer_ = absl::StrCat("Bearer ", options.api_key);
  core->policy_ = {options.max_attempts, options.initial_backoff, options.max_backoff};
  core->agents_ = v1::AgentService::NewStub(core->channel_);
  core->sessions_ = v1::SessionService::NewStub(core->channel_);
  core->memory_ = v1::MemoryService::NewStub(core->channel_);
  core->projects_ = v1::ProjectService::NewStub(core->channel_);
  core->options_ = std::move(options);
  return core;
}

std::unique_ptr<grpc::ClientContext> Core::NewContext(const std::string& session_id,
                                                      absl::Duration deadline) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  if (!bearer_.empty()) ctx->AddMetadata("authorization", bearer_);
  if (!session_id.empty()) ctx->AddMetadata("x-agentd-session", session_id);
  if (deadline != absl::InfiniteDuration()) {
    ctx->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  }
  return ctx;
}

}  // namespace agentd::internal
