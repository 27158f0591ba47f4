// MemoryService over gRPC. Long-term memory is not built yet: every RPC authenticates like any
// other and then answers UNIMPLEMENTED.
#pragma once

#include "agentd/v1/memory.grpc.pb.h"
#include "auth/authenticator.h"

namespace agentd::rpc {

class MemoryServiceImpl final : public v1::MemoryService::CallbackService {
 public:
  explicit MemoryServiceImpl(auth::Authenticator* auth) : auth_(auth) {}

  grpc::ServerUnaryReactor* PutMemory(grpc::CallbackServerContext* ctx,
                                      const v1::PutMemoryRequest* request,
                                      v1::MemoryRecord* response) override;
  grpc::ServerUnaryReactor* GetMemory(grpc::CallbackServerContext* ctx,
                                      const v1::GetMemoryRequest* request,
                                      v1::MemoryRecord* response) override;
  grpc::ServerUnaryReactor* ListMemories(grpc::CallbackServerContext* ctx,
                                         const v1::ListMemoriesRequest* request,
                                         v1::ListMemoriesResponse* response) override;
  grpc::ServerUnaryReactor* SearchMemory(grpc::CallbackServerContext* ctx,
                                         const v1::SearchMemoryRequest* request,
                                         v1::SearchMemoryResponse* response) override;
  grpc::ServerUnaryReactor* DeleteMemory(grpc::CallbackServerContext* ctx,
                                         const v1::DeleteMemoryRequest* request,
                                         google::protobuf::Empty* response) override;

 private:
  auth::Authenticator* auth_;
};

}  // namespace agentd::rpc
