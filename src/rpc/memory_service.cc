#include "rpc/memory_service.h"

#include "rpc/reactors.h"
#include "rpc/rpc_context.h"

namespace agentd::rpc {

grpc::ServerUnaryReactor* MemoryServiceImpl::PutMemory(grpc::CallbackServerContext* ctx,
                                                       const v1::PutMemoryRequest*,
                                                       v1::MemoryRecord*) {
  return Unary(ctx, "PutMemory", auth_, [](const CallScope&) { return NotBuiltYet("PutMemory"); });
}

grpc::ServerUnaryReactor* MemoryServiceImpl::GetMemory(grpc::CallbackServerContext* ctx,
                                                       const v1::GetMemoryRequest*,
                                                       v1::MemoryRecord*) {
  return Unary(ctx, "GetMemory", auth_, [](const CallScope&) { return NotBuiltYet("GetMemory"); });
}

grpc::ServerUnaryReactor* MemoryServiceImpl::ListMemories(grpc::CallbackServerContext* ctx,
                                                          const v1::ListMemoriesRequest*,
                                                          v1::ListMemoriesResponse*) {
  return Unary(ctx, "ListMemories", auth_,
               [](const CallScope&) { return NotBuiltYet("ListMemories"); });
}

grpc::ServerUnaryReactor* MemoryServiceImpl::SearchMemory(grpc::CallbackServerContext* ctx,
                                                          const v1::SearchMemoryRequest*,
                                                          v1::SearchMemoryResponse*) {
  return Unary(ctx, "SearchMemory", auth_,
               [](const CallScope&) { return NotBuiltYet("SearchMemory"); });
}

grpc::ServerUnaryReactor* MemoryServiceImpl::DeleteMemory(grpc::CallbackServerContext* ctx,
                                                          const v1::DeleteMemoryRequest*,
                                                          google::protobuf::Empty*) {
  return Unary(ctx, "DeleteMemory", auth_,
               [](const CallScope&) { return NotBuiltYet("DeleteMemory"); });
}

}  // namespace agentd::rpc
