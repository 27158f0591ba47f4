// Authenticated client channels for tests and benchmarks: every call carries
// `authorization: Bearer <key>` (API.md "Metadata"), added by a client interceptor.
#pragma once

#include <grpcpp/channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <memory>
#include <string>

namespace agentd::testing {

/// The admin key of the `default` project in test servers (ServerHarness sets it as
/// ServerOptions::bootstrap_key, ChildServer as AGENTD_BOOTSTRAP_KEY).
inline constexpr char kTestAdminKey[] = "agd-test-bootstrap-admin-key-0001";

/// A channel to `target` whose calls send `authorization: Bearer <key>`, except calls whose
/// ClientContext already has an `authorization` entry (tests of other or malformed keys set
/// their own; to send no key at all, use a channel without this interceptor).
std::shared_ptr<grpc::Channel> AuthChannel(const std::string& target,
                                           std::shared_ptr<grpc::ChannelCredentials> creds,
                                           const std::string& key,
                                           const grpc::ChannelArguments& args = {});

/// The `authorization` metadata value for `key` ("Bearer <key>").
std::string BearerValue(const std::string& key);

}  // namespace agentd::testing
