// Turn, the read side: construction, Begin (claim the session, run the first step), Prepare
// (load the session, the agent, the history; check the request against the session) and the
// gateway tools. The write side (events, commits, finishing) is in turn_finish.cc; the step
// loop in turn_step.cc; the claim across replicas in turn_claim.cc.
#include "runtime/turn.h"

#include <spdlog/spdlog.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "metrics/trace_context.h"

namespace agentd::runtime {

using nlohmann::json;

namespace {

// Pending calls and answers must match one to one: calls that require approval are answered by
// approvals, the others by tool_results (ids of both are unique, validated).
absl::Status MatchToolResults(const v1::Session& s, const v1::RunTurnRequest& request) {
  const bool answers = !request.tool_results().empty() || !request.approvals().empty();
  std::vector<std::string> pending_ids;
  for (const v1::ToolCall& c : s.pending_tool_calls()) pending_ids.push_back(c.id());
  if (s.status() != v1::SESSION_STATUS_REQUIRES_ACTION) {
    if (!answers) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat(
        "session \"", s.session_id(), "\" has no pending tool calls; unexpected ",
        request.tool_results().empty() ? "approval" : "result", " for \"",
        request.tool_results().empty() ? request.approvals(0).tool_call_id()
                                       : request.tool_results(0).tool_call_id(),
        "\""));
  }
  if (!answers) {
    return absl::FailedPreconditionError(
        absl::StrCat("session \"", s.session_id(), "\" is waiting for tool results for calls: ",
                     absl::StrJoin(pending_ids, ", ")));
  }
  auto pending = [&s](const std::string& id) -> const v1::ToolCall* {
    for (const v1::ToolCall& c : s.pending_tool_calls()) {
      if (c.id() == id) return &c;
    }
    return nullptr;
  };
  for (const v1::ToolResult& r : request.tool_results()) {
    const v1::ToolCall* c = pending(r.tool_call_id());
    if (c == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "tool result for \"", r.tool_call_id(), "\" matches no pending tool call (pending: ",
          absl::StrJoin(pending_ids, ", "), ")"));
    }
    if (c->requires_approval()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "tool call \"", r.tool_call_id(), "\" (", c->name(),
          ") requires approval: answer it with an approval, not a tool result"));
    }
  }
  for (const v1::ToolApproval& a : request.approvals()) {
    const v1::ToolCall* c = pending(a.tool_call_id());
    if (c == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "approval for \"", a.tool_call_id(), "\" matches no pending tool call (pending: ",
          absl::StrJoin(pending_ids, ", "), ")"));
    }
    if (!c->requires_approval()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "tool call \"", a.tool_call_id(), "\" (", c->name(),
          ") does not require approval: answer it with a tool result"));
    }
  }
  if (request.tool_results_size() + request.approvals_size() !=
      static_cast<int>(pending_ids.size())) {
    std::vector<std::string> missing;
    for (const std::string& id : pending_ids) {
      bool found = false;
      for (const v1::ToolResult& r : request.tool_results()) found |= r.tool_call_id() == id;
      for (const v1::ToolApproval& a : request.approvals()) found |= a.tool_call_id() == id;
      if (!found) missing.push_back(id);
    }
    return absl::FailedPreconditionError(
        absl::StrCat("missing tool results or approvals for calls: ", absl::StrJoin(missing, ", ")));
  }
  return absl::OkStatus();
}

}  // namespace

Turn::Turn(TurnDeps deps, std::string project_id, v1::RunTurnRequest request, std::string digest,
           absl::Time deadline, std::shared_ptr<TurnObserver> observer,
           std::function<void(Turn*)> on_finished)
    : deps_(deps),
      project_id_(std::move(project_id)),
      request_(std::move(request)),
      digest_(std::move(digest)),
      deadline_(deadline),
      observer_(std::move(observer)),
      on_finished_(std::move(on_finished)),
      turn_id_(NewId("turn_")),
      context_(obs::CurrentRequest()),
      submitted_(std::chrono::steady_clock::now()),
      builtins_(deps_.store, project_id_, request_.session_id()) {}

void Turn::Begin() {
  obs::ContextScope log_scope(context_.get(), request_.session_id(), turn_id_);
  began_ = true;
  absl::Status st = Prepare();
  if (st.ok() && replay_.has_value()) {
    Deliver(absl::OkStatus(), *replay_);  // a retry of a turn another replica completed
    return;
  }
  if (st.ok() && deps_.store->shared()) {
    // The claim: on a shared store the opening events commit before anything runs, so that
    // of two replicas that both found the session free exactly one goes on (revision CAS).
    st = Commit(/*final_write=*/false, "", nullptr);
    if (absl::IsAborted(st) && committed_ == 0) {
      busy_elsewhere_ = true;
      st = BusyElsewhereError();
    }
  }
  if (busy_elsewhere_ && request_.on_busy() == v1::BUSY_POLICY_ENQUEUE) {
    st = WaitForRemoteTurn();
    if (st.ok()) return;  // looks again shortly
  }
  if (!st.ok()) {
    Deliver(st, v1::TurnResult());  // nothing was appended
    return;
  }
  if (!RunApprovedCalls()) return;
  RunStep();
}

absl::Status Turn::Prepare() {
  // Everything below is (re)built from the store: a turn that waited for another replica's
  // turn runs this again.
  busy_elsewhere_ = false;
  replay_.reset();
  tools_.clear();
  arg_schemas_.clear();
  gateway_tools_.clear();
  approval_tools_.clear();
  allowed_tools_ = tools::ToolAllowList();
  approved_calls_.clear();
  output_schema_.reset();
  tool_defs_.clear();
  max_validation_retries_ = kDefaultValidationRetries;
  history_.reset();
  turn_events_.clear();
  committed_ = 0;
  answered_calls_.clear();

  auto rec = deps_.store->GetSession(project_id_, request_.session_id());
  if (absl::IsNotFound(rec.status())) {
    return absl::NotFoundError(absl::StrCat("session \"", request_.session_id(), "\" not found"));
  }
  AGENTD_RETURN_IF_ERROR(rec.status());
  record_ = *std::move(rec);
  AGENTD_RETURN_IF_ERROR(CheckClaim());
  if (deps_.store->shared()) {
    // A retry that reached this replica after another one recorded the turn (this process's
    // SubmitTurn checked before the session was read).
    if (!request_.idempotency_key().empty()) {
      AGENTD_ASSIGN_OR_RETURN(auto stored, deps_.store->GetIdempotency(
                                               project_id_, request_.session_id(),
                                               request_.idempotency_key()));
      if (stored.has_value()) {
        if (stored->request_digest() != digest_) {
          return absl::InvalidArgumentError(
              "idempotency_key was already used with a different request body");
        }
        if (!replay_.emplace().ParseFromString(stored->result())) {
          return absl::DataLossError("stored idempotency record is corrupt");
        }
        return absl::OkStatus();
      }
    }
    if (busy_elsewhere_) return BusyElsewhereError();
  }
  const v1::Session& s = record_.session();
  if (request_.expected_last_seq() != 0 && request_.expected_last_seq() != s.last_seq()) {
    return absl::AbortedError(absl::StrCat("expected_last_seq ", request_.expected_last_seq(),
                                           " does not match the session's last_seq ", s.last_seq()));
  }
  AGENTD_RETURN_IF_ERROR(MatchToolResults(s, request_));
  if (absl::Now() >= deadline_) return absl::DeadlineExceededError("deadline passed before the turn started");

  auto agent = deps_.store->GetAgent(project_id_, s.agent_id(), s.agent_version(),
                                     /*include_deleted=*/true);
  if (!agent.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "agent \"", s.agent_id(), "\" version ", s.agent_version(), " of this session is gone"));
  }
  agent_ = *std::move(agent);
  model_ = request_.model_override().empty() ? agent_.model() : request_.model_override();
  if (!deps_.router->HasModel(model_)) {
    return absl::InvalidArgumentError(absl::StrCat("model \"", model_, "\" is not configured"));
  }
  keep_encodings_ = deps_.router->ModelUsesEncodedMessages(model_);
  max_steps_ = agent_.max_steps_per_turn() > 0 ? agent_.max_steps_per_turn() : deps_.default_max_steps;
  AGENTD_RETURN_IF_ERROR(PrepareAgent());

  // Budget, token limit and request rate: before anything is appended or any model is called.
  if (deps_.limits != nullptr) AGENTD_RETURN_IF_ERROR(deps_.limits->AdmitTurn(project_id_));

  AGENTD_RETURN_IF_ERROR(LoadHistory(EventHub::Key(project_id_, s.session_id()), s.last_seq()));
  history_base_ = history_->events.size();

  next_seq_ = s.last_seq() + 1;
  v1::Event& started = AddEvent(v1::EVENT_TYPE_TURN_STARTED);
  started.mutable_turn()->set_turn_id(turn_id_);
  started.mutable_turn()->set_idempotency_key(request_.idempotency_key());
  for (const v1::ToolResult& r : request_.tool_results()) {
    *AddEvent(v1::EVENT_TYPE_TOOL_RESULT).mutable_tool_result() = r;
  }
  ApplyApprovals(s);
  for (const v1::InputMessage& in : request_.input()) {
    v1::Message* m = AddEvent(v1::EVENT_TYPE_MESSAGE).mutable_message();
    m->set_role(in.role() == v1::ROLE_UNSPECIFIED ? v1::ROLE_USER : in.role());
    m->set_text(in.text());
  }
  opening_events_ = turn_events_.size();
  if (!request_.tool_results().empty() || !request_.approvals().empty()) {
    answered_calls_.assign(s.pending_tool_calls().begin(), s.pending_tool_calls().end());
  }
  v1::Session* ms = record_.mutable_session();
  ms->set_status(v1::SESSION_STATUS_RUNNING);
  ms->clear_pending_tool_calls();
  record_.set_running_turn_id(turn_id_);
  record_.set_running_replica_id(deps_.replica_id);
  record_.set_running_idempotency_key(request_.idempotency_key());
  record_.set_running_request_digest(digest_);
  record_.set_running_first_seq(s.last_seq() + 1);
  *record_.mutable_answered_tool_calls() = {answered_calls_.begin(), answered_calls_.end()};
  return absl::OkStatus();
}

void Turn::ExpandGatewayTools() {
  auto is_gateway = [](const v1::ToolSpec& t) {
    return t.kind() == v1::TOOL_KIND_BUILTIN && tools::ToolGateway::Handles(t.name());
  };
  if (std::none_of(agent_.tools().begin(), agent_.tools().end(), is_gateway)) return;
  if (deps_.limits != nullptr) {
    auto limits = deps_.limits->Limits(project_id_);
    // Unreadable limits: offer nothing rather than more than the project may use.
    allowed_tools_ = limits.ok() ? tools::ToolAllowList::FromLimits(*limits)
                                 : tools::ToolAllowList::Only({});
  }
  absl::flat_hash_set<std::string> names;  // of the agent's other tools: they win a clash
  for (const v1::ToolSpec& t : agent_.tools()) {
    if (!is_gateway(t)) names.insert(t.name());
  }
  google::protobuf::RepeatedPtrField<v1::ToolSpec> expanded;
  for (const v1::ToolSpec& t : agent_.tools()) {
    if (!is_gateway(t)) {
      *expanded.Add() = t;
      continue;
    }
    if (deps_.tools == nullptr) {
      spdlog::warn("agent tool {}: no tool servers are configured; not offered", t.name());
      continue;
    }
    std::string warning;
    for (tools::ToolBinding& b :
         deps_.tools->Resolve(t.name(), allowed_tools_, deadline_, &warning)) {
      if (names.contains(b.model_name) || !names.insert(b.model_name).second) continue;
      v1::ToolSpec* spec = expanded.Add();
      spec->set_name(b.model_name);
      spec->set_kind(v1::TOOL_KIND_BUILTIN);
      spec->set_requires_approval(t.requires_approval());
      // A single tool may carry the agent's own description.
      const bool single = absl::StartsWith(t.name(), "http:") || absl::StrContains(t.name(), "/");
      spec->set_description(!t.description().empty() && single ? t.description() : b.description);
      spec->set_parameters_json_schema(b.input_schema_json);
      gateway_tools_.emplace(b.model_name, std::move(b));
    }
    if (!warning.empty()) spdlog::warn("agent tool {}: {}", t.name(), warning);
  }
  *agent_.mutable_tools() = std::move(expanded);
}

void Turn::ApplyApprovals(const v1::Session& s) {
  for (const v1::ToolApproval& a : request_.approvals()) {
    for (const v1::ToolCall& c : s.pending_tool_calls()) {
      if (c.id() != a.tool_call_id()) continue;
      if (a.approved()) {
        approved_calls_.push_back(c);
        continue;
      }
      v1::ToolResult* r = AddEvent(v1::EVENT_TYPE_TOOL_RESULT).mutable_tool_result();
      r->set_tool_call_id(c.id());
      r->set_is_error(true);
      r->set_output(absl::StrCat("error: the call of tool \"", c.name(),
                                 "\" was rejected by the approver",
                                 a.reason().empty() ? "" : absl::StrCat(": ", a.reason()),
                                 ". Do not retry it unchanged."));
    }
  }
}

bool Turn::RunApprovedCalls() {
  if (approved_calls_.empty()) return true;
  for (const v1::ToolCall& c : approved_calls_) {
    json args;
    const std::string error = CheckToolCall(c, &args);
    v1::ToolResult* r = nullptr;
    if (!error.empty()) {
      r = AddEvent(v1::EVENT_TYPE_TOOL_RESULT).mutable_tool_result();
      r->set_tool_call_id(c.id());
      r->set_is_error(true);
      r->set_output(absl::StrCat("error: ", error));
      continue;
    }
    v1::ToolResult result = RunServerTool(c, args);
    *AddEvent(v1::EVENT_TYPE_TOOL_RESULT).mutable_tool_result() = std::move(result);
  }
  approved_calls_.clear();
  // Like a step's tool calls: results and state writes are durable before the model sees them.
  absl::Status st = CommitStep();
  if (!st.ok()) {
    Deliver(st, v1::TurnResult());
    return false;
  }
  return true;
}

absl::Status Turn::PrepareAgent() {
  ExpandGatewayTools();
  for (const v1::ToolSpec& t : agent_.tools()) {
    tools_.emplace(t.name(), t);
    if (t.kind() == v1::TOOL_KIND_BUILTIN && t.requires_approval()) approval_tools_.insert(t.name());
    const BuiltinToolInfo* builtin =
        t.kind() == v1::TOOL_KIND_BUILTIN ? FindBuiltinTool(t.name()) : nullptr;
    const std::string text =
        builtin != nullptr ? builtin->parameters_json_schema : t.parameters_json_schema();
    if (text.empty()) continue;
    // Compiled at agent create/update; an agent stored before schemas were checked may hold one
    // this validator does not support: its calls then only need a JSON object.
    auto schema = JsonSchema::CompileText(text);
    if (schema.ok()) arg_schemas_.emplace(t.name(), *std::move(schema));
  }
  if (!agent_.output_schema_json().empty()) {
    auto schema = JsonSchema::CompileText(agent_.output_schema_json());
    if (!schema.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "agent \"", agent_.agent_id(), "\" has an unusable output_schema_json: ", schema.status().message()));
    }
    output_schema_ = *std::move(schema);
    // The model must know the shape it is asked for (a turn-local copy of the agent).
    agent_.set_instructions(absl::StrCat(
        agent_.instructions(), agent_.instructions().empty() ? "" : "\n\n",
        "Give your final answer (the reply without tool calls) as a single JSON document, with "
        "nothing before or after it, that satisfies this JSON Schema:\n",
        agent_.output_schema_json()));
  }
  if (agent_.max_validation_retries() > 0) max_validation_retries_ = agent_.max_validation_retries();
  tool_defs_ = ToolDefinitions(agent_);

  // The context budget: the agent's policy, bounded by the model's window minus a reserve for
  // the answer; the window alone; or a default.
  const v1::ContextPolicy& policy = agent_.context_policy();
  const int64_t window = deps_.context_window ? deps_.context_window(model_) : 0;
  const int64_t from_model = window > 0 ? window - std::min(window / 4, kAnswerReserveTokens) : 0;
  int64_t budget = policy.max_context_tokens() > 0 ? policy.max_context_tokens() : from_model;
  if (from_model > 0) budget = std::min(budget, from_model);
  context_limits_.max_tokens = budget > 0 ? budget : kDefaultContextTokens;
  context_limits_.keep_last_events = policy.keep_last_events();
  context_limits_.fixed_tokens = EstimateFixedTokens(agent_);
  return absl::OkStatus();
}

absl::Status Turn::LoadHistory(const std::string& key, int64_t last_seq) {
  history_ = deps_.history->Get(key, last_seq);
  if (history_ != nullptr) return absl::OkStatus();
  // Not cached: read the log once; later turns of the session extend the cached copy. Only up
  // to the record's last_seq: on a shared store another replica may have appended since the
  // record was read (this turn's claim then fails its revision check).
  history_ = std::make_shared<SessionHistory>();
  for (int64_t after = 0; after < last_seq;) {
    const auto limit = static_cast<int32_t>(std::min<int64_t>(1000, last_seq - after));
    AGENTD_ASSIGN_OR_RETURN(auto page,
                            deps_.store->ReadEvents(project_id_, request_.session_id(), after, limit));
    if (page.empty()) break;
    after = page.back().seq();
    for (auto& e : page) history_->events.push_back(std::move(e));
  }
  history_->last_seq = history_->events.empty() ? 0 : history_->events.back().seq();
  if (history_->last_seq != last_seq) {
    return absl::DataLossError(absl::StrCat("session \"", request_.session_id(), "\" has last_seq ",
                                            last_seq, " but its log ends at ", history_->last_seq));
  }
  deps_.history->Put(key, history_);
  return absl::OkStatus();
}

}  // namespace agentd::runtime
