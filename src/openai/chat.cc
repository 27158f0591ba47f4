// POST /v1/chat/completions (stateless: one routed model call, with the project's limits and
// usage accounting) and GET /v1/models.
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "auth/limits.h"
#include "backend/model_router.h"
#include "common/ids.h"
#include "openai/endpoints.h"
#include "openai/response_input.h"
#include "store/context_store.h"

namespace agentd::openai {
namespace {

struct ChatRequest {
  std::string model;
  bool stream = false;
  bool include_usage = false;
  std::vector<backend::ChatMessage> messages;
  std::vector<backend::ToolDefinition> tools;
};

absl::Status Bad(std::string* param, const std::string& field, const std::string& message) {
  *param = field;
  return absl::InvalidArgumentError(message);
}

absl::Status ParseMessage(const json& m, const std::string& field, ChatRequest* out,
                          std::string* param) {
  if (!m.is_object()) return Bad(param, field, field + " must be an object");
  auto role = StringField(m, "role");
  if (!role.ok() || role->empty())
    return Bad(param, field + ".role", field + ".role must be a string");
  backend::ChatMessage msg;
  if (*role == "system" || *role == "developer") {
    msg.role = v1::ROLE_SYSTEM;
  } else if (*role == "user") {
    msg.role = v1::ROLE_USER;
  } else if (*role == "assistant") {
    msg.role = v1::ROLE_ASSISTANT;
  } else if (*role == "tool") {
    msg.role = v1::ROLE_TOOL;
    auto id = StringField(m, "tool_call_id");
    if (!id.ok() || id->empty()) {
      return Bad(param, field + ".tool_call_id",
                 field + ".tool_call_id must be a non-empty string");
    }
    msg.tool_call_id = *id;
  } else {
    return Bad(param, field + ".role", absl::StrCat("role \"", *role, "\" is not supported"));
  }
  auto content = m.find("content");
  if (content != m.end() && !content->is_null()) {
    auto text = ContentText(*content, field + ".content");
    if (!text.ok()) return Bad(param, field + ".content", std::string(text.status().message()));
    msg.text = *text;
  }
  auto calls = m.find("tool_calls");
  if (calls != m.end() && !calls->is_null()) {
    if (!calls->is_array())
      return Bad(param, field + ".tool_calls", field + ".tool_calls must be an array");
    for (const json& c : *calls) {
      if (!c.is_object() || !c.contains("function") || !c["function"].is_object()) {
        return Bad(param, field + ".tool_calls",
                   field + ".tool_calls items need a function object");
      }
      auto id = StringField(c, "id");
      auto name = StringField(c["function"], "name");
      auto args = StringField(c["function"], "arguments");
      if (!id.ok() || !name.ok() || !args.ok()) {
        return Bad(param, field + ".tool_calls",
                   field + ".tool_calls: id, name and arguments must be strings");
      }
      v1::ToolCall tc;
      tc.set_id(*id);
      tc.set_name(*name);
      tc.set_arguments_json(*args);
      msg.tool_calls.push_back(std::move(tc));
    }
  }
  out->messages.push_back(std::move(msg));
  return absl::OkStatus();
}

absl::StatusOr<ChatRequest> ParseChat(const json& body, std::string* param) {
  ChatRequest out;
  auto model = StringField(body, "model");
  if (!model.ok() || model->empty())
    return Bad(param, "model", "'model' must be a non-empty string");
  out.model = *model;
  auto stream = BoolField(body, "stream", false);
  if (!stream.ok()) return Bad(param, "stream", std::string(stream.status().message()));
  out.stream = *stream;
  auto so = body.find("stream_options");
  if (so != body.end() && so->is_object()) {
    auto iu = BoolField(*so, "include_usage", false);
    if (!iu.ok())
      return Bad(param, "stream_options.include_usage", std::string(iu.status().message()));
    out.include_usage = *iu;
  }
  auto messages = body.find("messages");
  if (messages == body.end() || !messages->is_array() || messages->empty()) {
    return Bad(param, "messages", "'messages' must be a non-empty array");
  }
  for (size_t i = 0; i < messages->size(); ++i) {
    absl::Status st = ParseMessage((*messages)[i], absl::StrCat("messages[", i, "]"), &out, param);
    if (!st.ok()) return st;
  }
  auto tools = body.find("tools");
  if (tools != body.end() && !tools->is_null()) {
    if (!tools->is_array()) return Bad(param, "tools", "'tools' must be an array");
    for (size_t i = 0; i < tools->size(); ++i) {
      const json& t = (*tools)[i];
      const std::string f = absl::StrCat("tools[", i, "]");
      if (!t.is_object() || t.value("type", "") != "function" || !t.contains("function") ||
          !t["function"].is_object()) {
        return Bad(param, f, f + " must be {\"type\":\"function\",\"function\":{...}}");
      }
      const json& fn = t["function"];
      auto name = StringField(fn, "name");
      auto description = StringField(fn, "description");
      if (!description.ok()) {
        return Bad(param, f + ".function.description", f + ".function.description must be a string");
      }
      if (!name.ok() || name->empty()) {
        return Bad(param, f + ".function.name", f + ".function.name must be a non-empty string");
      }
      backend::ToolDefinition def;
      def.name = *name;
      def.description = *description;
      def.parameters_json_schema = fn.contains("parameters") && fn["parameters"].is_object()
                                       ? fn["parameters"].dump()
                                       : R"({"type":"object"})";
      out.tools.push_back(std::move(def));
    }
  }
  return out;
}

json ToolCallsJson(const std::vector<v1::ToolCall>& calls, bool with_index) {
  json out = json::array();
  for (size_t i = 0; i < calls.size(); ++i) {
    json c = {{"id", calls[i].id()},
              {"type", "function"},
              {"function", {{"name", calls[i].name()}, {"arguments", calls[i].arguments_json()}}}};
    if (with_index) c["index"] = i;
    out.push_back(std::move(c));
  }
  return out;
}

// One model call's answer, as a completion or as chunks.
class ChatCall : public std::enable_shared_from_this<ChatCall> {
 public:
  ChatCall(const DoorDeps& deps, Scope scope, ChatRequest req)
      : deps_(deps),
        scope_(std::move(scope)),
        req_(std::move(req)),
        id_("chatcmpl-" + NewId("").substr(0, 24)),
        created_(absl::ToUnixSeconds(absl::Now())) {}

  void Start() {
    backend::ModelRequest mr;
    mr.model = req_.model;
    mr.messages = req_.messages;
    mr.tools = req_.tools;
    mr.stream = req_.stream;
    mr.context = scope_->context();
    backend::ModelCallbacks cb;
    auto self = shared_from_this();
    if (req_.stream) cb.on_delta = [self](absl::string_view text) { self->OnDelta(text); };
    cb.on_done = [self](absl::StatusOr<backend::ModelResponse> r) { self->OnDone(std::move(r)); };
    std::shared_ptr<backend::ModelCall> call = deps_.router->Start(std::move(mr), std::move(cb));
    if (req_.stream && call != nullptr) {
      // A reader that goes away stops the model call.
      scope_->exchange().OnClientGone([weak = std::weak_ptr<backend::ModelCall>(call)] {
        if (auto c = weak.lock()) c->Cancel();
      });
    }
  }

 private:
  json Chunk(json delta, json finish_reason) const {
    return {{"id", id_},
            {"object", "chat.completion.chunk"},
            {"created", created_},
            {"model", req_.model},
            {"choices", json::array({{{"index", 0},
                                      {"delta", std::move(delta)},
                                      {"logprobs", nullptr},
                                      {"finish_reason", std::move(finish_reason)}}})}};
  }

  void StartLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (started_) return;
    started_ = true;
    scope_->StartEvents();
    scope_->Event("", Chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
  }

  void OnDelta(absl::string_view text) {
    absl::MutexLock lock(&mu_);
    StartLocked();
    scope_->Event("", Chunk({{"content", std::string(text)}}, nullptr));
    streamed_ = true;
  }

  void OnDone(absl::StatusOr<backend::ModelResponse> r) {
    absl::MutexLock lock(&mu_);
    if (!r.ok()) {
      if (!started_) return scope_->Fail(r.status());
      scope_->Event("", ErrorBody(r.status()));
      return scope_->EndEvents(true);
    }
    v1::Usage usage;
    usage.set_input_tokens(r->input_tokens);
    usage.set_output_tokens(r->output_tokens);
    usage.set_model_calls(1);
    const std::string& served = r->served_model.empty() ? req_.model : r->served_model;
    usage.set_cost_usd(deps_.router->Cost(served, r->input_tokens, r->output_tokens));
    absl::Status st = deps_.store->AddUsage(
        scope_->project(), auth::UsageDeltas("", "", served, auth::DayOf(absl::Now()), usage));
    if (!st.ok()) spdlog::warn("chat completion usage not recorded: {}", st.ToString());
    if (deps_.limits != nullptr) deps_.limits->Recorded(scope_->project(), usage);
    const std::string finish = !r->tool_calls.empty()
                                   ? "tool_calls"
                                   : (r->finish_reason.empty() ? "stop" : r->finish_reason);
    json usage_json = {{"prompt_tokens", r->input_tokens},
                       {"completion_tokens", r->output_tokens},
                       {"total_tokens", r->input_tokens + r->output_tokens}};
    if (!req_.stream) {
      json message = {{"role", "assistant"}, {"content", r->text}, {"refusal", nullptr}};
      if (!r->tool_calls.empty()) message["tool_calls"] = ToolCallsJson(r->tool_calls, false);
      scope_->Reply({{"id", id_},
                     {"object", "chat.completion"},
                     {"created", created_},
                     {"model", req_.model},
                     {"choices", json::array({{{"index", 0},
                                               {"message", std::move(message)},
                                               {"logprobs", nullptr},
                                               {"finish_reason", finish}}})},
                     {"usage", usage_json}});
      return;
    }
    StartLocked();
    if (!streamed_ && !r->text.empty()) scope_->Event("", Chunk({{"content", r->text}}, nullptr));
    if (!r->tool_calls.empty()) {
      scope_->Event("", Chunk({{"tool_calls", ToolCallsJson(r->tool_calls, true)}}, nullptr));
    }
    scope_->Event("", Chunk(json::object(), finish));
    if (req_.include_usage) {
      json last = Chunk(json::object(), nullptr);
      last["choices"] = json::array();
      last["usage"] = usage_json;
      scope_->Event("", last);
    }
    scope_->EndEvents(true);
  }

  const DoorDeps deps_;
  const Scope scope_;
  const ChatRequest req_;
  const std::string id_;
  const int64_t created_;
  absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool streamed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

void CreateChatCompletion(const DoorDeps& deps, Scope scope) {
  std::string param;
  auto body = ParseBody(scope->exchange().body());
  if (!body.ok()) return scope->Fail(body.status());
  auto req = ParseChat(*body, &param);
  if (!req.ok()) return scope->Fail(req.status(), param);
  if (!deps.router->HasModel(req->model)) {
    return scope->Fail(
        absl::NotFoundError(
            absl::StrCat("model \"", req->model, "\" does not exist (GET /v1/models lists them)")),
        "model");
  }
  if (deps.limits != nullptr) {
    absl::Status st = deps.limits->AdmitTurn(scope->project());
    if (!st.ok()) return scope->Fail(st);
  }
  obs::ContextScope log_scope(scope->context().get());
  std::make_shared<ChatCall>(deps, scope, *std::move(req))->Start();
}

void ListModels(const DoorDeps& deps, Scope scope) {
  json data = json::array();
  for (const std::string& name : deps.router->ModelNames()) {
    data.push_back({{"id", name}, {"object", "model"}, {"created", 0}, {"owned_by", "agentd"}});
  }
  scope->Reply({{"object", "list"}, {"data", std::move(data)}});
}

}  // namespace agentd::openai
