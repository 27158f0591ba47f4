// /v1/conversations: a conversation is an agentd session; its items are the session's events.
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "backend/model_router.h"
#include "openai/endpoints.h"
#include "openai/response_input.h"
#include "runtime/agent_manager.h"
#include "runtime/session_manager.h"

namespace agentd::openai {
namespace {

constexpr int kDefaultItems = 20;
constexpr int kMaxItems = 100;

json ConversationJson(const v1::Session& s) {
  json metadata = json::object();
  for (const auto& [k, v] : s.metadata()) metadata[k] = v;
  return {{"id", s.session_id()},
          {"object", "conversation"},
          {"created_at", s.create_time().seconds()},
          {"metadata", std::move(metadata)}};
}

/// The OpenAI item of an event (null for events that have none: markers, summaries).
json ItemJson(const v1::Event& e) {
  const std::string id = absl::StrCat("item_", e.seq());
  switch (e.type()) {
    case v1::EVENT_TYPE_MESSAGE: {
      const bool assistant = e.message().role() == v1::ROLE_ASSISTANT;
      const char* role = assistant                               ? "assistant"
                         : e.message().role() == v1::ROLE_SYSTEM ? "system"
                                                                 : "user";
      json part = {{"type", assistant ? "output_text" : "input_text"},
                   {"text", e.message().text()}};
      if (assistant) part["annotations"] = json::array();
      return {{"type", "message"},
              {"id", id},
              {"status", "completed"},
              {"role", role},
              {"content", json::array({part})}};
    }
    case v1::EVENT_TYPE_TOOL_CALL:
      return {{"type", "function_call"},
              {"id", id},
              {"call_id", e.tool_call().id()},
              {"name", e.tool_call().name()},
              {"arguments", e.tool_call().arguments_json()},
              {"status", "completed"}};
    case v1::EVENT_TYPE_TOOL_RESULT:
      return {{"type", "function_call_output"},
              {"id", id},
              {"call_id", e.tool_result().tool_call_id()},
              {"output", e.tool_result().output()},
              {"status", "completed"}};
    default:
      return nullptr;
  }
}

}  // namespace

void CreateConversation(const DoorDeps& deps, Scope scope) {
  auto body = ParseBody(scope->exchange().body().empty() ? "{}" : scope->exchange().body());
  if (!body.ok()) return scope->Fail(body.status());
  auto items = body->find("items");
  if (items != body->end() && !items->is_null() && !(items->is_array() && items->empty())) {
    return scope->Fail(
        absl::InvalidArgumentError(
            "initial 'items' are not supported: send them as the first response's input"),
        "items");
  }
  // agentd extension: a session needs an agent: `model` (a model name or agent:<id>).
  ResponseRequest req;
  auto model = StringField(*body, "model");
  if (!model.ok() || model->empty()) {
    return scope->Fail(
        absl::InvalidArgumentError(
            "agentd needs 'model' (a model name or \"agent:<agent_id>\") to create a conversation"),
        "model");
  }
  req.model = *model;
  std::string agent_id;
  if (absl::StartsWith(req.model, "agent:")) {
    auto agent = deps.agents->Get(scope->project(), req.model.substr(6), 0);
    if (!agent.ok()) return scope->Fail(agent.status(), "model");
    agent_id = agent->agent_id();
  } else {
    if (!deps.router->HasModel(req.model)) {
      return scope->Fail(
          absl::NotFoundError(absl::StrCat("model \"", req.model, "\" does not exist")), "model");
    }
    auto agent = ImplicitAgent(deps, scope->project(), req);
    if (!agent.ok()) return scope->Fail(agent.status());
    agent_id = agent->agent_id();
  }
  v1::CreateSessionRequest create;
  create.set_agent_id(agent_id);
  auto md = body->find("metadata");
  if (md != body->end() && !md->is_null()) {
    if (!md->is_object())
      return scope->Fail(absl::InvalidArgumentError("'metadata' must be an object"), "metadata");
    for (const auto& [k, v] : md->items()) {
      if (!v.is_string()) {
        return scope->Fail(absl::InvalidArgumentError("'metadata' values must be strings"),
                           "metadata");
      }
      (*create.mutable_metadata())[k] = v.get<std::string>();
    }
  }
  auto session = deps.sessions->Create(scope->project(), create);
  if (!session.ok()) return scope->Fail(session.status());
  scope->Reply(ConversationJson(*session));
}

void GetConversation(const DoorDeps& deps, Scope scope, const std::string& id) {
  auto session = deps.sessions->Get(scope->project(), id);
  if (!session.ok()) return scope->Fail(session.status());
  scope->Reply(ConversationJson(*session));
}

void ListConversationItems(const DoorDeps& deps, Scope scope, const std::string& id) {
  const std::string& query = scope->exchange().query();
  int limit = kDefaultItems;
  const std::string limit_s = QueryParam(query, "limit");
  if (!limit_s.empty() && (!absl::SimpleAtoi(limit_s, &limit) || limit < 1 || limit > kMaxItems)) {
    return scope->Fail(absl::InvalidArgumentError("'limit' must be 1..100"), "limit");
  }
  const std::string order = QueryParam(query, "order");
  if (!order.empty() && order != "asc") {
    return scope->Fail(absl::InvalidArgumentError("only order=asc is supported"), "order");
  }
  int64_t after = 0;
  const std::string after_s = QueryParam(query, "after");
  if (!after_s.empty()) {
    absl::string_view v = after_s;
    if (!absl::ConsumePrefix(&v, "item_") || !absl::SimpleAtoi(v, &after) || after < 0) {
      return scope->Fail(absl::InvalidArgumentError("'after' must be an item id"), "after");
    }
  }
  json data = json::array();
  bool has_more = false;
  v1::ListEventsRequest req;
  req.set_session_id(id);
  req.set_after_seq(after);
  req.set_limit(200);
  while (!has_more) {
    auto page = deps.sessions->ListEvents(scope->project(), req);
    if (!page.ok()) return scope->Fail(page.status());
    if (page->events().empty()) break;
    for (const v1::Event& e : page->events()) {
      json item = ItemJson(e);
      if (item.is_null()) continue;
      if (static_cast<int>(data.size()) == limit) {
        has_more = true;
        break;
      }
      data.push_back(std::move(item));
    }
    req.set_after_seq(page->next_after_seq());
  }
  json out = {{"object", "list"},
              {"data", data},
              {"has_more", has_more},
              {"first_id", data.empty() ? json(nullptr) : data.front()["id"]},
              {"last_id", data.empty() ? json(nullptr) : data.back()["id"]}};
  scope->Reply(out);
}

void DeleteConversation(const DoorDeps& deps, Scope scope, const std::string& id) {
  absl::Status st = deps.sessions->Delete(scope->project(), id);
  if (!st.ok()) return scope->Fail(st);
  scope->Reply({{"id", id}, {"object", "conversation.deleted"}, {"deleted", true}});
}

}  // namespace agentd::openai
