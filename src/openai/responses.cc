// POST /v1/responses and /v1/responses/{id}: a response is one turn of an agentd session.
#include <spdlog/spdlog.h>

#include <memory>
#include <optional>
#include <thread>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "backend/model_router.h"
#include "openai/endpoints.h"
#include "openai/response_input.h"
#include "openai/response_view.h"
#include "runtime/agent_manager.h"
#include "runtime/session_manager.h"

namespace agentd::openai {
namespace {

absl::Status ResponseNotFound(const std::string& id) {
  return absl::NotFoundError(absl::StrCat("response \"", id, "\" not found"));
}

struct LoadedTurn {
  v1::Session session;
  TurnView view;
  v1::Agent agent;  // the session's (pinned version): its instructions are the turn's
};

/// The configured model name of an assistant message's `model` ("<model> (<backend>/<deployment
/// model>)" names the deployment too; a response's `model` is the configured name).
std::string ConfiguredModel(const std::string& message_model) {
  const size_t paren = message_model.find(" (");
  return paren == std::string::npos ? message_model : message_model.substr(0, paren);
}

/// Reads a response's session and folds its turn from the events. NOT_FOUND (one message for
/// every cause) when the id, the session or the turn is unknown in the caller's project.
absl::StatusOr<LoadedTurn> LoadTurn(const DoorDeps& deps, const std::string& project,
                                    const std::string& id) {
  auto rid = ParseResponseId(id);
  if (!rid.ok()) return rid.status();
  LoadedTurn out;
  auto session = deps.sessions->Get(project, rid->session_id);
  if (absl::IsNotFound(session.status())) return ResponseNotFound(id);
  if (!session.ok()) return session.status();
  out.session = *std::move(session);
  v1::ListEventsRequest req;
  req.set_session_id(rid->session_id);
  req.set_limit(1000);
  while (true) {
    auto page = deps.sessions->ListEvents(project, req);
    if (!page.ok()) return page.status();
    std::vector<v1::Event> events(page->events().begin(), page->events().end());
    FoldTurnEvents(events, rid->turn_id, &out.view);
    if (events.empty() || out.view.finished) break;
    req.set_after_seq(page->next_after_seq());
  }
  if (!out.view.found) return ResponseNotFound(id);
  auto agent = deps.agents->Get(project, out.session.agent_id(), out.session.agent_version());
  if (!agent.ok() && !absl::IsNotFound(agent.status())) return agent.status();
  if (agent.ok()) out.agent = *std::move(agent);  // a deleted agent: no instructions to show
  return out;
}

/// What a stored turn says about its response (GET, and the answer to a cancel).
ResponseMeta MetaOf(const std::string& id, const LoadedTurn& t) {
  ResponseMeta meta;
  meta.id = id;
  meta.model = t.view.model.empty() ? t.agent.model() : ConfiguredModel(t.view.model);
  meta.instructions = t.agent.instructions();
  meta.session_id = t.session.session_id();
  meta.created_unix = t.view.created_unix;
  return meta;
}

json ViewJson(const std::string& id, const LoadedTurn& t, const std::string& turn_id) {
  const ResponseMeta meta = MetaOf(id, t);
  if (!t.view.finished) {
    return ResponseJson(meta, "in_progress", json::array(), nullptr, "");
  }
  const bool calls = t.view.status == v1::TURN_STATUS_REQUIRES_ACTION;
  json output = OutputItems(turn_id, t.view.output_text,
                            calls ? t.view.open_calls : std::vector<v1::ToolCall>{});
  return ResponseJson(meta, StatusName(t.view.status), output, &t.view.usage, t.view.error);
}

// Streams a turn as Responses events, or answers with the finished Responses object.
class ResponseObserver final : public runtime::TurnObserver,
                               public std::enable_shared_from_this<ResponseObserver> {
 public:
  /// A turn that continues the session's latest response (expected_last_seq): if another
  /// request appends first, it runs again on a fork at that response, as a branch.
  struct Branch {
    v1::RunTurnRequest turn;
    int64_t at_seq = 0;
  };

  /// `created`: this request made the session (new, or a fork), so a turn that is refused
  /// before it starts takes the session with it; `delete_after`: store:false, it goes anyway.
  ResponseObserver(const DoorDeps& deps, Scope scope, ResponseMeta meta, bool stream, bool created,
                   bool delete_after)
      : deps_(deps),
        scope_(std::move(scope)),
        meta_(std::move(meta)),
        stream_(stream),
        created_(created),
        delete_after_(delete_after) {}

  bool WantsDeltas() const override { return stream_; }

  /// The turn CreateResponse submitted (ignored if it already branched: RunOnFork's is newer).
  void SetTurn(std::shared_ptr<runtime::Turn> turn) {
    absl::MutexLock lock(&mu_);
    if (branched_) return;
    SetTurnLocked(std::move(turn));
  }

  /// The client disconnected (from the HTTP loop thread): the turn is abandoned.
  void ClientGone() {
    absl::MutexLock lock(&mu_);
    AbandonLocked();
  }

  void OnEvents(const std::vector<v1::Event>& events) override {
    absl::MutexLock lock(&mu_);
    for (const v1::Event& e : events) {
      if (e.type() != v1::EVENT_TYPE_TURN_STARTED || started_) continue;
      StartLocked(e.turn_id(), e.time().seconds());
    }
  }

  void OnDelta(absl::string_view text) override {
    absl::MutexLock lock(&mu_);
    if (!stream_ || !started_) return;
    if (scope_->client_gone()) {
      AbandonLocked();
      return;
    }
    OpenMessageLocked();
    streamed_.append(text.data(), text.size());
    Emit("response.output_text.delta", {{"item_id", MessageItem(turn_id_, "", "")["id"]},
                                        {"output_index", 0},
                                        {"content_index", 0},
                                        {"delta", std::string(text)},
                                        {"logprobs", json::array()}});
  }

  void SetBranch(Branch branch) {
    absl::MutexLock lock(&mu_);
    branch_ = std::move(branch);
  }

  void OnFinish(const absl::Status& status, const v1::TurnResult& result) override {
    std::optional<Branch> branch;
    {
      absl::MutexLock lock(&mu_);
      // A reader that left gets no branch: the turn was abandoned (or is about to be).
      if (!started_ && absl::IsAborted(status) && !abandoned_ && !scope_->client_gone()) {
        branch.swap(branch_);
        branched_ = branch.has_value();
      }
    }
    // Outside the lock: the new turn may finish (and call back) before SubmitTurn returns.
    if (branch.has_value()) return RunOnFork(*std::move(branch));
    absl::MutexLock lock(&mu_);
    // Not started: the turn was refused (a limit, a bad input) and appended nothing.
    if (delete_after_ || (created_ && !started_)) {
      absl::Status st = deps_.sessions->Delete(scope_->project(), meta_.session_id);
      if (!st.ok())
        spdlog::warn("session {} made for this response not deleted: {}", meta_.session_id,
                     st.ToString());
    }
    if (!status.ok()) {
      if (!stream_ || !started_) {
        scope_->Fail(status);
        return;
      }
      json r = ResponseJson(meta_, "failed", json::array(), nullptr, std::string(status.message()));
      Emit("response.failed", {{"response", r}});
      scope_->EndEvents();
      return;
    }
    if (!started_) StartLocked(result.turn_id(), absl::ToUnixSeconds(absl::Now()));
    std::vector<v1::ToolCall> calls(result.required_tool_calls().begin(),
                                    result.required_tool_calls().end());
    const std::string name = StatusName(result.status());
    json output = OutputItems(turn_id_, result.output_text(), calls);
    json response = ResponseJson(meta_, name, output, &result.usage(), result.error());
    if (!stream_) {
      scope_->Reply(response);
      return;
    }
    int index = 0;
    if (!result.output_text().empty() || calls.empty()) {
      if (!message_open_ && !result.output_text().empty()) {
        OpenMessageLocked();
        Emit("response.output_text.delta", {{"item_id", output[0]["id"]},
                                            {"output_index", 0},
                                            {"content_index", 0},
                                            {"delta", result.output_text()},
                                            {"logprobs", json::array()}});
      } else {
        OpenMessageLocked();
      }
      const json& item = output[0];
      Emit("response.output_text.done", {{"item_id", item["id"]},
                                         {"output_index", 0},
                                         {"content_index", 0},
                                         {"text", result.output_text()},
                                         {"logprobs", json::array()}});
      Emit("response.content_part.done", {{"item_id", item["id"]},
                                          {"output_index", 0},
                                          {"content_index", 0},
                                          {"part", item["content"][0]}});
      Emit("response.output_item.done", {{"output_index", 0}, {"item", item}});
      index = 1;
    }
    for (const v1::ToolCall& c : calls) {
      if (c.requires_approval()) {
        Emit("response.output_item.added", {{"output_index", index}, {"item", output[index]}});
        Emit("response.output_item.done", {{"output_index", index}, {"item", output[index]}});
        ++index;
        continue;
      }
      json added = FunctionCallItem(c, "in_progress");
      added["arguments"] = "";
      Emit("response.output_item.added", {{"output_index", index}, {"item", added}});
      Emit("response.function_call_arguments.delta",
           {{"item_id", added["id"]}, {"output_index", index}, {"delta", c.arguments_json()}});
      Emit("response.function_call_arguments.done", {{"item_id", added["id"]},
                                                     {"output_index", index},
                                                     {"name", c.name()},
                                                     {"arguments", c.arguments_json()}});
      Emit("response.output_item.done", {{"output_index", index}, {"item", output[index]}});
      ++index;
    }
    Emit(name == "completed" ? "response.completed" : "response.failed", {{"response", response}});
    scope_->EndEvents();
  }

 private:
  void RunOnFork(Branch branch) {
    auto fork = deps_.sessions->ForkAt(scope_->project(), branch.turn.session_id(), branch.at_seq,
                                       "");
    if (!fork.ok()) return scope_->Fail(fork.status());
    branch.turn.set_session_id(fork->session_id());
    branch.turn.set_expected_last_seq(0);
    {
      absl::MutexLock lock(&mu_);
      meta_.session_id = fork->session_id();
      created_ = true;  // refused now, the fork goes
    }
    auto handle = deps_.sessions->SubmitTurn(scope_->project(), std::move(branch.turn),
                                             absl::InfiniteFuture(), shared_from_this());
    if (handle == nullptr) return;
    absl::MutexLock lock(&mu_);
    SetTurnLocked(std::move(handle));
  }

  void SetTurnLocked(std::shared_ptr<runtime::Turn> turn) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    turn_ = std::move(turn);
    if (scope_->client_gone()) AbandonLocked();
  }

  void StartLocked(const std::string& turn_id, int64_t created) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    started_ = true;
    turn_id_ = turn_id;
    meta_.id =
        meta_.store ? MakeResponseId(meta_.session_id, turn_id) : "resp_" + turn_id.substr(5);
    meta_.created_unix = created;
    if (!stream_) return;
    scope_->StartEvents();
    json r = ResponseJson(meta_, "in_progress", json::array(), nullptr, "");
    Emit("response.created", {{"response", r}});
    Emit("response.in_progress", {{"response", r}});
  }

  void OpenMessageLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (message_open_) return;
    message_open_ = true;
    json item = MessageItem(turn_id_, "", "in_progress");
    item["content"] = json::array();
    Emit("response.output_item.added", {{"output_index", 0}, {"item", item}});
    Emit("response.content_part.added",
         {{"item_id", item["id"]},
          {"output_index", 0},
          {"content_index", 0},
          {"part", {{"type", "output_text"}, {"text", ""}, {"annotations", json::array()}}}});
  }

  void Emit(const char* type, json data) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    data["type"] = type;
    data["sequence_number"] = sequence_++;
    scope_->Event(type, data);
  }

  void AbandonLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (abandoned_) return;
    auto turn = turn_.lock();
    if (turn == nullptr) return;  // not submitted yet, or already finished
    abandoned_ = true;
    auto* sessions = deps_.sessions;
    // Not under the turn's callback: Abandon cancels the turn, which may call back.
    std::thread([sessions, turn] { sessions->Abandon(turn); }).detach();
  }

  const DoorDeps deps_;
  const Scope scope_;
  absl::Mutex mu_;
  ResponseMeta meta_ ABSL_GUARDED_BY(mu_);
  const bool stream_;
  bool created_ ABSL_GUARDED_BY(mu_);
  const bool delete_after_;
  std::optional<Branch> branch_ ABSL_GUARDED_BY(mu_);
  bool branched_ ABSL_GUARDED_BY(mu_) = false;  // RunOnFork took over
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool message_open_ ABSL_GUARDED_BY(mu_) = false;
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
  int64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  std::string turn_id_ ABSL_GUARDED_BY(mu_);
  std::string streamed_ ABSL_GUARDED_BY(mu_);
  // Weak: the turn holds this observer, and the session manager keeps a running turn alive.
  std::weak_ptr<runtime::Turn> turn_ ABSL_GUARDED_BY(mu_);
};

/// The agent for a request without a session: `agent:<id>`, or the implicit agent of
/// (model, instructions, tools), created on first use.
absl::StatusOr<v1::Agent> ResolveAgent(const DoorDeps& deps, const std::string& project,
                                       const ResponseRequest& req, std::string* param) {
  if (absl::StartsWith(req.model, "agent:")) {
    auto agent = deps.agents->Get(project, req.model.substr(6), 0);
    if (!agent.ok()) *param = "model";
    return agent;
  }
  if (!deps.router->HasModel(req.model)) {
    *param = "model";
    return absl::NotFoundError(
        absl::StrCat("model \"", req.model, "\" does not exist (GET /v1/models lists them)"));
  }
  auto agent = ImplicitAgent(deps, project, req);
  if (absl::IsInvalidArgument(agent.status())) {
    *param = absl::StrContains(agent.status().message(), "instructions") ? "instructions" : "tools";
  }
  return agent;
}

// Variants of an implicit agent's id tried after deleted ones (a bound, not a quota: each one
// needs someone to have deleted the previous).
constexpr int kImplicitAgentVariants = 64;

/// Checks that every function_call_output answers one of the function calls of `open`, and
/// every mcp_approval_response one of its approval requests (so a wrong id changes nothing,
/// not even a fork).
absl::Status CheckCallIds(const ResponseRequest& req, const std::vector<v1::ToolCall>& open) {
  auto find = [&open](const std::string& id) -> const v1::ToolCall* {
    for (const v1::ToolCall& c : open) {
      if (c.id() == id) return &c;
    }
    return nullptr;
  };
  absl::flat_hash_set<std::string> answered;
  for (const v1::ToolResult& r : req.tool_results) {
    if (!answered.insert(r.tool_call_id()).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "function_call_output call_id \"", r.tool_call_id(), "\" is answered more than once"));
    }
    const v1::ToolCall* c = find(r.tool_call_id());
    if (c == nullptr || c->requires_approval()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "function_call_output call_id \"", r.tool_call_id(), "\" matches no pending function call",
          c == nullptr ? "" : " (it is an mcp_approval_request: answer it with mcp_approval_response)"));
    }
  }
  for (const v1::ToolApproval& a : req.approvals) {
    if (!answered.insert(a.tool_call_id()).second) {
      return absl::InvalidArgumentError(absl::StrCat("mcp_approval_response approval_request_id \"",
                                                     a.tool_call_id(),
                                                     "\" is answered more than once"));
    }
    const v1::ToolCall* c = find(a.tool_call_id());
    if (c == nullptr || !c->requires_approval()) {
      return absl::InvalidArgumentError(absl::StrCat("mcp_approval_response approval_request_id \"",
                                                     a.tool_call_id(),
                                                     "\" matches no pending mcp_approval_request"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::Agent> ImplicitAgent(const DoorDeps& deps, const std::string& project,
                                        const ResponseRequest& req) {
  const std::string base = ImplicitAgentId(req);
  for (int variant = 1; variant <= kImplicitAgentVariants; ++variant) {
    const std::string id = variant == 1 ? base : absl::StrCat(base, "-", variant);
    auto existing = deps.agents->Get(project, id, 0);
    if (!absl::IsNotFound(existing.status())) return existing;
    v1::Agent agent;
    agent.set_agent_id(id);
    agent.set_name(absl::StrCat("openai:", req.model));
    agent.set_model(req.model);
    agent.set_instructions(req.instructions);
    for (const v1::ToolSpec& t : req.tools) *agent.add_tools() = t;
    (*agent.mutable_metadata())["agentd.created_by"] = "openai-responses";
    auto created = deps.agents->Create(project, agent);
    if (!absl::IsAlreadyExists(created.status())) return created;
    // Made by a concurrent request (then Get finds it), or deleted (then the next variant).
    existing = deps.agents->Get(project, id, 0);
    if (!absl::IsNotFound(existing.status())) return existing;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the implicit agent ", base, " and its ", kImplicitAgentVariants - 1,
      " variants were all deleted; use \"agent:<agent_id>\" with an agent of your own"));
}

void CreateResponse(const DoorDeps& deps, Scope scope) {
  std::string param;
  auto body = ParseBody(scope->exchange().body());
  if (!body.ok()) return scope->Fail(body.status());
  auto req = ParseResponseRequest(*body, &param);
  if (!req.ok()) return scope->Fail(req.status(), param);
  const std::string& project = scope->project();

  ResponseMeta meta;
  meta.model = req->model;
  meta.instructions = req->instructions;
  meta.previous_response_id = req->previous_response_id;
  meta.store = req->store;
  v1::RunTurnRequest turn;
  bool created_session = false;
  int64_t branch_at = -1;  // >= 0: continues the latest response (expected_last_seq)
  if (!req->previous_response_id.empty()) {
    auto prev = LoadTurn(deps, project, req->previous_response_id);
    if (!prev.ok()) return scope->Fail(prev.status(), "previous_response_id");
    if (!prev->view.finished) {
      return scope->Fail(
          absl::FailedPreconditionError(absl::StrCat(
              "previous response \"", req->previous_response_id, "\" is still in progress")),
          "previous_response_id");
    }
    const bool open = prev->view.status == v1::TURN_STATUS_REQUIRES_ACTION;
    absl::Status st =
        CheckCallIds(*req, open ? prev->view.open_calls : std::vector<v1::ToolCall>{});
    if (!st.ok()) return scope->Fail(st, "input");
    meta.session_id = prev->session.session_id();
    meta.instructions = prev->agent.instructions();  // the request's are ignored (docs)
    if (meta.model.empty()) meta.model = prev->agent.model();
    if (prev->view.last_seq != prev->session.last_seq() || !req->store) {
      // An earlier response: continue from it on a fork, as OpenAI branches the conversation.
      // store:false also runs on a fork (deleted after), so the stored session stays as it is.
      auto fork = deps.sessions->ForkAt(project, meta.session_id, prev->view.last_seq, "");
      if (!fork.ok()) return scope->Fail(fork.status());
      meta.session_id = fork->session_id();
      created_session = true;
    } else {
      // The latest response: appended to, unless another request appends first (it waits for
      // a running one, then finds the session moved on and branches: ResponseObserver::Branch).
      turn.set_expected_last_seq(prev->view.last_seq);
      turn.set_on_busy(v1::BUSY_POLICY_ENQUEUE);
      branch_at = prev->view.last_seq;
    }
  } else if (!req->conversation.empty()) {
    auto session = deps.sessions->Get(project, req->conversation);
    if (!session.ok()) return scope->Fail(session.status(), "conversation");
    std::vector<v1::ToolCall> open(session->pending_tool_calls().begin(),
                                   session->pending_tool_calls().end());
    absl::Status st = CheckCallIds(*req, open);
    if (!st.ok()) return scope->Fail(st, "input");
    meta.session_id = session->session_id();
    auto agent = deps.agents->Get(project, session->agent_id(), session->agent_version());
    meta.instructions = agent.ok() ? agent->instructions() : "";  // the request's are ignored
    if (meta.model.empty() && agent.ok()) meta.model = agent->model();
    if (!req->store && session->status() == v1::SESSION_STATUS_RUNNING) {
      // A fork now would hold the running turn's unfinished half.
      return scope->Fail(absl::FailedPreconditionError(absl::StrCat(
                             "a turn is running on conversation \"", req->conversation,
                             "\"; send store:false once it has finished")),
                         "conversation");
    }
    if (!req->store) {
      // store:false: the turn runs on a fork of the conversation, deleted after.
      auto fork = deps.sessions->ForkAt(project, meta.session_id, session->last_seq(), "");
      if (!fork.ok()) return scope->Fail(fork.status());
      meta.session_id = fork->session_id();
      created_session = true;
    }
  } else {
    absl::Status st = CheckCallIds(*req, {});
    if (!st.ok()) return scope->Fail(st, "input");
    auto agent = ResolveAgent(deps, project, *req, &param);
    if (!agent.ok()) return scope->Fail(agent.status(), param);
    meta.instructions = agent->instructions();  // an agent:<id>'s own
    v1::CreateSessionRequest create;
    create.set_agent_id(agent->agent_id());
    (*create.mutable_metadata())["agentd.created_by"] = "openai-responses";
    auto session = deps.sessions->Create(project, create);
    if (!session.ok()) return scope->Fail(session.status());
    meta.session_id = session->session_id();
    created_session = true;
  }
  turn.set_session_id(meta.session_id);
  for (const v1::InputMessage& m : req->input) *turn.add_input() = m;
  for (const v1::ToolResult& r : req->tool_results) *turn.add_tool_results() = r;
  for (const v1::ToolApproval& a : req->approvals) *turn.add_approvals() = a;
  const bool continues = !req->previous_response_id.empty() || !req->conversation.empty();
  if (!req->model.empty() && !absl::StartsWith(req->model, "agent:") && continues &&
      deps.router->HasModel(req->model)) {
    turn.set_model_override(req->model);
  }
  if (meta.model.empty()) meta.model = "agent";
  auto observer = std::make_shared<ResponseObserver>(deps, scope, meta, req->stream,
                                                     created_session, !req->store && created_session);
  if (branch_at >= 0) observer->SetBranch({turn, branch_at});
  if (req->stream) {
    // A reader that goes away mid-stream abandons the turn (cancelled, recorded as such).
    scope->exchange().OnClientGone([weak = std::weak_ptr<ResponseObserver>(observer)] {
      if (auto o = weak.lock()) o->ClientGone();
    });
  }
  obs::ContextScope log_scope(scope->context().get());
  auto handle =
      deps.sessions->SubmitTurn(project, std::move(turn), absl::InfiniteFuture(), observer);
  if (handle != nullptr) observer->SetTurn(std::move(handle));
}

void GetResponse(const DoorDeps& deps, Scope scope, const std::string& id) {
  auto t = LoadTurn(deps, scope->project(), id);
  if (!t.ok()) return scope->Fail(t.status());
  scope->Reply(ViewJson(id, *t, ParseResponseId(id)->turn_id));
}

void DeleteResponse(const DoorDeps& deps, Scope scope, const std::string& id) {
  auto t = LoadTurn(deps, scope->project(), id);
  if (!t.ok()) return scope->Fail(t.status());
  // A response is a turn of a session; turns are not deleted one by one: the session goes.
  absl::Status st = deps.sessions->Delete(scope->project(), t->session.session_id());
  if (!st.ok()) return scope->Fail(st);
  scope->Reply({{"id", id}, {"object", "response"}, {"deleted", true}});
}

void CancelResponse(const DoorDeps& deps, Scope scope, const std::string& id) {
  auto t = LoadTurn(deps, scope->project(), id);
  if (!t.ok()) return scope->Fail(t.status());
  if (t->view.finished) {
    return scope->Fail(
        absl::FailedPreconditionError(absl::StrCat("response \"", id, "\" is not in progress")));
  }
  const std::string turn_id = ParseResponseId(id)->turn_id;
  deps.sessions->CancelTurn(
      scope->project(), t->session.session_id(),
      [scope, turn_id, meta = MetaOf(id, *t)](const absl::Status& st, const v1::TurnResult& r) {
        if (!st.ok()) return scope->Fail(st);
        std::vector<v1::ToolCall> calls(r.required_tool_calls().begin(),
                                        r.required_tool_calls().end());
        scope->Reply(ResponseJson(meta, StatusName(r.status()),
                                  OutputItems(turn_id, r.output_text(), calls), &r.usage(),
                                  r.error()));
      });
}

}  // namespace agentd::openai
