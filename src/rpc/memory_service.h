// MemoryService over gRPC: proto in, MemoryManager call, proto out. Nothing else.
#pragma once

#include "agentd/v1/memory.grpc.pb.h"
#include "auth/authenticator.h"
#include "runtime/memory_manager.h"

namespace agentd::rpc {

class MemoryServiceImpl final : public v1::MemoryService::CallbackService {
 public:
  /// Both outlive the service.
  MemoryServiceImpl(runtime::MemoryManager* memory, auth::Authenticator* auth)
      : memory_(memory), auth_(auth) {}

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
  runtime::MemoryManager* memory_;
  auth::Authenticator* auth_;
};

}  // namespace agentd::rpc
