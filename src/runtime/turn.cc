#include "runtime/turn.h"

#include <optional>

#include <spdlog/spdlog.h>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "metrics/agentd_metrics.h"
#include "metrics/trace_context.h"
#include "runtime/context_builder.h"
#include "runtime/replicas.h"

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

v1::Event& Turn::AddEvent(v1::EventType type) {
  v1::Event& e = turn_events_.emplace_back();
  e.set_session_id(request_.session_id());
  e.set_seq(next_seq_++);
  e.set_turn_id(turn_id_);
  *e.mutable_time() = NowProto();
  e.set_type(type);
  return e;
}

void Turn::SealPendingEvents() {
  for (size_t i = committed_; i < turn_events_.size(); ++i) {
    turn_events_[i].set_token_estimate(EstimateEventTokens(turn_events_[i]));
  }
}

absl::Status Turn::Commit(bool final_write, const std::string& idempotency_key,
                          const storage::IdempotencyRecord* idem) {
  SealPendingEvents();
  store::SessionWrite w;
  w.project_id = project_id_;
  w.session_id = request_.session_id();
  w.expected_revision = record_.revision();
  w.events.assign(turn_events_.begin() + committed_, turn_events_.end());
  v1::Session* s = record_.mutable_session();
  s->set_last_seq(next_seq_ - 1);
  *s->mutable_update_time() = NowProto();
  w.record = std::move(record_);  // moved back right after the commit, whatever its outcome
  if (idem != nullptr && !idempotency_key.empty()) {
    w.idempotency_key = idempotency_key;
    w.idempotency = *idem;
  }
  w.usage = pending_usage_;  // counted in the same batch as the step's events
  w.state = builtins_.PendingState();  // tool-state writes of the step's builtin calls
  // Only the write that ends the turn is acknowledged (to the caller, to idempotent retries):
  // the opening and step writes before it need no fsync of their own; the final one's covers
  // them. One fsync per turn instead of one per step.
  w.sync = final_write;
  const std::string key = EventHub::Key(project_id_, request_.session_id());
  const auto commit_start = std::chrono::steady_clock::now();
  absl::Status st = deps_.store->CommitSessionWrite(w);
  record_ = std::move(w.record);
  if (deps_.metrics != nullptr) deps_.metrics->StoreCommit(metrics::SecondsSince(commit_start));
  if (!st.ok()) {
    deps_.history->Erase(key);
    return st;
  }
  if (!pending_usage_.empty()) {
    if (deps_.limits != nullptr) deps_.limits->Recorded(project_id_, pending_usage_total_);
    pending_usage_.clear();
    pending_usage_total_.Clear();
  }
  builtins_.ClearPendingState();
  record_.set_revision(record_.revision() + 1);
  // This turn owns the session: extend the shared history in place.
  history_->events.insert(history_->events.end(), w.events.begin(), w.events.end());
  history_->last_seq = record_.session().last_seq();
  committed_ = turn_events_.size();
  deps_.hub->Publish(key, w.events);
  NotifyCommitted(w.events);
  return absl::OkStatus();
}

absl::Status Turn::CommitStep() {
  for (int attempt = 0;; ++attempt) {
    absl::Status st = Commit(/*final_write=*/false, "", nullptr);
    if (st.ok() || !absl::IsAborted(st) || !builtins_.HasPendingState() || attempt == 2) return st;
    // A PutState between this step's state_get/state_put and its commit: that write is given
    // up and its call answered with a conflict error; the rest of the step commits.
    auto replaced = builtins_.DropConflictingWrites();
    if (!replaced.ok() || replaced->empty()) return st;
    for (const v1::ToolResult& r : *replaced) {
      for (size_t i = committed_; i < turn_events_.size(); ++i) {
        v1::Event& e = turn_events_[i];
        if (e.has_tool_result() && e.tool_result().tool_call_id() == r.tool_call_id()) {
          *e.mutable_tool_result() = r;
        }
      }
    }
  }
}

void Turn::OnDelta(absl::string_view text) {
  absl::MutexLock lock(&delta_mu_);
  if (!opening_durable_) {
    early_deltas_.emplace_back(text);
    return;
  }
  observer_->OnDelta(text);
}

void Turn::OnDeltaReset() {
  absl::MutexLock lock(&delta_mu_);
  if (!opening_durable_) {
    early_deltas_.clear();  // never shown: just drop them
    return;
  }
  observer_->OnDeltaReset();
}

void Turn::NotifyCommitted(const std::vector<v1::Event>& events) {
  absl::MutexLock lock(&delta_mu_);
  if (opening_durable_) {
    observer_->OnEvents(events);
    return;
  }
  // First commit of the turn: opening events, then any text that arrived meanwhile, then the rest.
  const size_t split = std::min(opening_events_, events.size());
  observer_->OnEvents({events.begin(), events.begin() + split});
  for (const std::string& d : early_deltas_) observer_->OnDelta(d);
  early_deltas_.clear();
  opening_durable_ = true;
  if (split < events.size()) observer_->OnEvents({events.begin() + split, events.end()});
}

void Turn::Fail(const absl::Status& status) {
  FinishTurn({v1::TURN_STATUS_FAILED, status, std::string(status.message())});
}

void Turn::FinishTurn(Outcome outcome) {
  // State writes reach the store only with a committed step (REQUIRES_ACTION commits its step
  // first); a failed or cancelled step's writes are dropped.
  builtins_.ClearPendingState();
  const bool ok_end = outcome.status == v1::TURN_STATUS_COMPLETED ||
                      outcome.status == v1::TURN_STATUS_REQUIRES_ACTION;
  v1::Event& marker = AddEvent(ok_end ? v1::EVENT_TYPE_TURN_COMPLETED : v1::EVENT_TYPE_TURN_FAILED);
  v1::TurnMarker* tm = marker.mutable_turn();
  tm->set_turn_id(turn_id_);
  tm->set_status(outcome.status);
  tm->set_error(outcome.error);
  *tm->mutable_usage() = usage_;
  tm->set_idempotency_key(request_.idempotency_key());

  v1::Session* s = record_.mutable_session();
  record_.clear_running_turn_id();
  record_.clear_running_replica_id();
  record_.clear_running_idempotency_key();
  record_.clear_running_request_digest();
  record_.clear_running_first_seq();
  record_.clear_answered_tool_calls();
  s->clear_pending_tool_calls();
  if (outcome.status == v1::TURN_STATUS_COMPLETED) {
    s->set_status(v1::SESSION_STATUS_IDLE);
  } else if (outcome.status == v1::TURN_STATUS_REQUIRES_ACTION) {
    s->set_status(v1::SESSION_STATUS_REQUIRES_ACTION);
    for (const v1::ToolCall& c : client_calls_) *s->add_pending_tool_calls() = c;
  } else if (!answered_calls_.empty()) {
    // The failed turn's tool results are not part of later contexts: ask for them again.
    s->set_status(v1::SESSION_STATUS_REQUIRES_ACTION);
    for (const v1::ToolCall& c : answered_calls_) *s->add_pending_tool_calls() = c;
  } else {
    s->set_status(outcome.status == v1::TURN_STATUS_CANCELLED ? v1::SESSION_STATUS_IDLE
                                                              : v1::SESSION_STATUS_FAILED);
  }

  SealPendingEvents();
  v1::TurnResult result;
  result.set_turn_id(turn_id_);
  result.set_status(outcome.status);
  if (ok_end) result.set_output_text(output_text_);
  if (outcome.status == v1::TURN_STATUS_REQUIRES_ACTION) {
    for (const v1::ToolCall& c : client_calls_) *result.add_required_tool_calls() = c;
  }
  for (const v1::Event& e : turn_events_) *result.add_events() = e;
  *result.mutable_usage() = usage_;
  result.set_last_seq(next_seq_ - 1);
  result.set_error(outcome.error);

  storage::IdempotencyRecord idem;
  const bool remember = !request_.idempotency_key().empty() && outcome.call_status.ok();
  if (remember) {
    idem.set_request_digest(digest_);
    idem.set_result(result.SerializeAsString());
    *idem.mutable_create_time() = NowProto();
  }
  absl::Status st = Commit(/*final_write=*/true, request_.idempotency_key(), remember ? &idem : nullptr);
  if (!st.ok()) {
    Deliver(st, v1::TurnResult());
    return;
  }
  outcome_recorded_ = true;
  if (deps_.metrics != nullptr) {
    metrics::TurnOutcome o = metrics::TurnOutcome::kFailed;
    if (outcome.status == v1::TURN_STATUS_COMPLETED) o = metrics::TurnOutcome::kCompleted;
    if (outcome.status == v1::TURN_STATUS_REQUIRES_ACTION) o = metrics::TurnOutcome::kRequiresAction;
    if (outcome.status == v1::TURN_STATUS_CANCELLED) o = metrics::TurnOutcome::kCancelled;
    deps_.metrics->TurnFinished(o, metrics::SecondsSince(submitted_));
  }
  Deliver(outcome.call_status, result);
}

void Turn::FinishWithoutRunning(const absl::Status& status) {
  obs::ContextScope log_scope(context_.get(), request_.session_id(), turn_id_);
  Deliver(status, v1::TurnResult());
}

void Turn::Cancel(const std::string& reason, absl::StatusCode code) {
  std::shared_ptr<backend::ModelCall> call;
  bool waiting;
  {
    absl::MutexLock lock(&mu_);
    if (finished_ || cancelled_) return;
    cancelled_ = true;
    cancel_reason_ = reason;
    cancel_code_ = code;
    call = call_;
    waiting = waiting_;
  }
  if (call) call->Cancel();
  if (waiting) ResumeWaiting();  // finishes it now rather than at the next look
}

void Turn::AddFinishListener(std::function<void(const absl::Status&, const v1::TurnResult&)> fn) {
  absl::Status status;
  v1::TurnResult result;
  {
    absl::MutexLock lock(&mu_);
    if (!finished_) {
      listeners_.push_back(std::move(fn));
      return;
    }
    status = final_status_;
    result = final_result_;
  }
  fn(status, result);
}

void Turn::Deliver(const absl::Status& status, const v1::TurnResult& result) {
  std::vector<std::function<void(const absl::Status&, const v1::TurnResult&)>> listeners;
  {
    absl::MutexLock lock(&mu_);
    finished_ = true;
    final_status_ = status;
    final_result_ = result;
    listeners.swap(listeners_);
  }
  if (deps_.metrics != nullptr && !outcome_recorded_ && !status.ok()) {
    deps_.metrics->TurnRejected(status.code());
  }
  // Free the session before answering: a client that sends its next turn the moment it has
  // this answer must not find the session still busy.
  if (on_finished_) on_finished_(this);
  observer_->OnFinish(status, result);
  for (auto& fn : listeners) fn(status, result);
}

}  // namespace agentd::runtime
