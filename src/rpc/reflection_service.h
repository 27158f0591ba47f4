// gRPC server reflection (grpc.reflection.v1alpha), served by agentd itself so that it is
// authenticated like every other RPC (gRPC's reflection plugin cannot be, and C++ server
// interceptors cannot reject a call). Answers come from the generated descriptor pool.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "auth/authenticator.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace agentd::rpc {

class ReflectionService final
    : public grpc::reflection::v1alpha::ServerReflection::CallbackService {
 public:
  /// `services`: fully-qualified names answered to list_services (this service's own name is
  /// added). Only the files of these services and their transitive imports are served; any
  /// other file or symbol is NOT_FOUND, so internal protos linked into the binary stay private.
  /// `auth` is not owned and must outlive the service. Thread-safe after construction.
  ReflectionService(std::vector<std::string> services, auth::Authenticator* auth);

  grpc::ServerBidiReactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                          grpc::reflection::v1alpha::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* context) override;

  /// The answer to one request. `sent` holds the names of files already sent on the stream
  /// (they are not sent again) and is updated. Exposed for tests.
  grpc::reflection::v1alpha::ServerReflectionResponse Answer(
      const grpc::reflection::v1alpha::ServerReflectionRequest& request,
      std::set<std::string>* sent) const;

 private:
  std::vector<std::string> services_;  // sorted, unique
  std::set<std::string> files_;        // names of the files that may be served
  auth::Authenticator* auth_;
};

}  // namespace agentd::rpc
