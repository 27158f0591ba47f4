// Transport security of the gRPC listener: TLS (and mTLS) from the config's PEM files, or
// plaintext where the config allows it (server/config.h CheckPlaintextAllowed).
#pragma once

#include <memory>

#include "absl/status/statusor.h"
#include "server/config.h"

namespace grpc {
class ServerCredentials;
}

namespace agentd::server {

/// The credentials to pass to grpc::ServerBuilder::AddListeningPort for `config.listen`.
/// With tls.cert_file: TLS with that certificate chain and tls.key_file; with
/// tls.client_ca_file also, clients must present a certificate signed by that CA (mTLS,
/// GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY). Without TLS: insecure
/// credentials if CheckPlaintextAllowed passes, else its error.
/// The files are read and checked here (PEM, key matches certificate), so a bad file is a clear
/// startup error naming the file and its config key (INVALID_ARGUMENT), not a failed bind.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> BuildServerCredentials(
    const Config& config);

}  // namespace agentd::server
