#include "rpc/memory_service.h"

#include "rpc/rpc_context.h"

namespace agentd::rpc {

grpc::ServerUnaryReactor* MemoryServiceImpl::PutMemory(grpc::CallbackServerContext* ctx,
                                                       const v1::PutMemoryRequest* request,
                                                       v1::MemoryRecord* response) {
  return Unary(ctx, "PutMemory", auth_, [&](const CallScope& scope) {
    v1::MemoryRecord record;
    record.set_namespace_(request->namespace_());
    record.set_key(request->key());
    record.set_text(request->text());
    *record.mutable_metadata() = request->metadata();
    return Assign(memory_->Put(scope.identity().project_id, std::move(record)), response);
  });
}

grpc::ServerUnaryReactor* MemoryServiceImpl::GetMemory(grpc::CallbackServerContext* ctx,
                                                       const v1::GetMemoryRequest* request,
                                                       v1::MemoryRecord* response) {
  return Unary(ctx, "GetMemory", auth_, [&](const CallScope& scope) {
    return Assign(memory_->Get(scope.identity().project_id, request->namespace_(), request->key()),
                  response);
  });
}

grpc::ServerUnaryReactor* MemoryServiceImpl::ListMemories(grpc::CallbackServerContext* ctx,
                                                          const v1::ListMemoriesRequest* request,
                                                          v1::ListMemoriesResponse* response) {
  return Unary(ctx, "ListMemories", auth_, [&](const CallScope& scope) {
    auto page = memory_->List(scope.identity().project_id, request->namespace_prefix(),
                              request->page_size(), request->page_token());
    if (page.ok()) {
      for (auto& r : page->records) *response->add_memories() = std::move(r);
      response->set_next_page_token(page->next_page_token);
    }
    return page.status();
  });
}

grpc::ServerUnaryReactor* MemoryServiceImpl::SearchMemory(grpc::CallbackServerContext* ctx,
                                                          const v1::SearchMemoryRequest* request,
                                                          v1::SearchMemoryResponse* response) {
  return Unary(ctx, "SearchMemory", auth_, [&](const CallScope& scope) {
    auto found = memory_->Search(scope.identity().project_id, request->namespace_prefix(),
                                 request->query(), request->top_k());
    if (found.ok()) {
      for (auto& s : *found) {
        v1::ScoredMemory* out = response->add_results();
        *out->mutable_record() = std::move(s.record);
        out->set_score(s.score);
      }
    }
    return found.status();
  });
}

grpc::ServerUnaryReactor* MemoryServiceImpl::DeleteMemory(grpc::CallbackServerContext* ctx,
                                                          const v1::DeleteMemoryRequest* request,
                                                          google::protobuf::Empty*) {
  return Unary(ctx, "DeleteMemory", auth_, [&](const CallScope& scope) {
    return memory_->Delete(scope.identity().project_id, request->namespace_(), request->key());
  });
}

}  // namespace agentd::rpc
