#include "openai/door.h"

#include <functional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/ids.h"
#include "common/json_text.h"
#include "http/http_server.h"
#include "openai/endpoints.h"
#include "runtime/executor.h"

namespace agentd::openai {

struct OpenAiDoor::Impl {
  DoorDeps deps;
  std::unique_ptr<runtime::Executor> workers;
};

namespace {

using Body = std::function<void(Scope)>;

struct Match {
  const char* operation = nullptr;  // auth/policy.cc name
  Body body;
};

/// Maps METHOD + path to an operation; operation null when nothing matches.
Match Route(const DoorDeps& deps, const std::string& method, const std::string& path) {
  std::vector<std::string> parts = absl::StrSplit(path, '/', absl::SkipEmpty());
  // parts[0] == "v1" (the route prefix)
  const size_t n = parts.size();
  auto id = [&](size_t i) { return PercentDecode(parts[i]); };
  const DoorDeps* d = &deps;
  if (n == 2 && parts[1] == "responses" && method == "POST") {
    return {"CreateResponse", [d](Scope s) { CreateResponse(*d, std::move(s)); }};
  }
  if (n == 3 && parts[1] == "responses") {
    const std::string rid = id(2);
    if (method == "GET")
      return {"GetResponse", [d, rid](Scope s) { GetResponse(*d, std::move(s), rid); }};
    if (method == "DELETE") {
      return {"DeleteResponse", [d, rid](Scope s) { DeleteResponse(*d, std::move(s), rid); }};
    }
  }
  if (n == 4 && parts[1] == "responses" && parts[3] == "cancel" && method == "POST") {
    const std::string rid = id(2);
    return {"CancelResponse", [d, rid](Scope s) { CancelResponse(*d, std::move(s), rid); }};
  }
  if (n == 2 && parts[1] == "conversations" && method == "POST") {
    return {"CreateConversation", [d](Scope s) { CreateConversation(*d, std::move(s)); }};
  }
  if (n == 3 && parts[1] == "conversations") {
    const std::string cid = id(2);
    if (method == "GET") {
      return {"GetConversation", [d, cid](Scope s) { GetConversation(*d, std::move(s), cid); }};
    }
    if (method == "DELETE") {
      return {"DeleteConversation",
              [d, cid](Scope s) { DeleteConversation(*d, std::move(s), cid); }};
    }
  }
  if (n == 4 && parts[1] == "conversations" && parts[3] == "items" && method == "GET") {
    const std::string cid = id(2);
    return {"ListConversationItems",
            [d, cid](Scope s) { ListConversationItems(*d, std::move(s), cid); }};
  }
  if (n == 3 && parts[1] == "chat" && parts[2] == "completions" && method == "POST") {
    return {"CreateChatCompletion", [d](Scope s) { CreateChatCompletion(*d, std::move(s)); }};
  }
  if (n == 2 && parts[1] == "models" && method == "GET") {
    return {"ListModels", [d](Scope s) { ListModels(*d, std::move(s)); }};
  }
  return {};
}

}  // namespace

absl::StatusOr<std::unique_ptr<OpenAiDoor>> OpenAiDoor::Start(DoorOptions options, DoorDeps deps) {
  std::unique_ptr<OpenAiDoor> door(new OpenAiDoor());
  door->impl_ = std::make_shared<Impl>();
  door->impl_->deps = deps;
  door->impl_->workers = std::make_unique<runtime::Executor>(options.worker_threads);
  std::weak_ptr<Impl> weak = door->impl_;
  // Runs on the loop thread: routes, then hands the request to a worker (authentication reads
  // the store; handlers read and commit).
  http::Handler handler = [weak](std::shared_ptr<http::Exchange> ex) {
    std::shared_ptr<Impl> impl = weak.lock();
    if (impl == nullptr) return;  // shutting down: the exchange answers 500 as it goes
    Match m = Route(impl->deps, ex->method(), ex->path());
    if (m.operation == nullptr) {
      const std::string request_id = NewId("req_");
      ex->Respond(404, "application/json",
                  common::DumpJson(ErrorBody(absl::NotFoundError(
                      absl::StrCat("no such endpoint: ", ex->method(), " ", ex->path())))),
                  {{"x-agentd-request-id", request_id}, {"x-request-id", request_id}});
      return;
    }
    impl->workers->Schedule([impl, ex = std::move(ex), m = std::move(m)]() mutable {
      auto scope = std::make_shared<RequestScope>(std::move(ex), m.operation, impl->deps.auth);
      if (!scope->ok()) return scope->Fail(scope->auth_status());
      m.body(std::move(scope));
    });
  };
  std::vector<http::Route> routes;
  for (const char* method : {"GET", "POST", "DELETE"}) {
    routes.push_back({method, "/v1/", handler, /*prefix=*/true});
  }
  http::HttpServerOptions http_options;
  http_options.max_body_bytes = options.max_body_bytes;
  http_options.idle_timeout_s = 600;  // streams of long turns stay open
  http_options.error_body = [](int status, const std::string& message) {
    const absl::Status st = status == 404 ? absl::NotFoundError(message)
                                          : absl::InvalidArgumentError(message);
    const std::string request_id = NewId("req_");
    return http::HttpServerOptions::ErrorAnswer{
        "application/json", common::DumpJson(ErrorBody(st)),
        {{"x-agentd-request-id", request_id}, {"x-request-id", request_id}}};
  };
  auto server = http::HttpServer::Start(options.listen, std::move(routes), http_options);
  if (!server.ok()) return server.status();
  door->http_ = *std::move(server);
  return door;
}

std::string OpenAiDoor::address() const { return http_ ? http_->address() : ""; }

void OpenAiDoor::Shutdown() {
  if (http_) http_->Shutdown();
  if (impl_ && impl_->workers) impl_->workers.reset();  // runs what is queued, joins
}

OpenAiDoor::~OpenAiDoor() { Shutdown(); }

}  // namespace agentd::openai
