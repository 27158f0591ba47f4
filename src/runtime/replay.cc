#include "runtime/replay.h"

#include <utility>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "runtime/session_manager.h"

namespace agentd::runtime {
namespace {

class ReplayObserver final : public TurnObserver {
 public:
  explicit ReplayObserver(std::function<void(const absl::Status&, const v1::TurnResult&)> fn)
      : fn_(std::move(fn)) {}
  void OnFinish(const absl::Status& status, const v1::TurnResult& result) override {
    fn_(status, result);
  }

 private:
  std::function<void(const absl::Status&, const v1::TurnResult&)> fn_;
};

}  // namespace

ReplayRun::ReplayRun(SessionManager* sessions, std::string project_id, std::string model,
                     absl::Time deadline, Done done)
    : sessions_(sessions),
      project_id_(std::move(project_id)),
      model_(std::move(model)),
      deadline_(deadline),
      done_(std::move(done)) {}

std::vector<ReplayRun::Step> ReplayRun::Plan(const std::vector<v1::Event>& events) {
  absl::flat_hash_map<std::string, std::string> tool_of_call;
  for (const v1::Event& e : events) {
    if (e.type() == v1::EVENT_TYPE_TOOL_CALL)
      tool_of_call[e.tool_call().id()] = e.tool_call().name();
  }
  std::vector<Step> plan;
  for (size_t i = 0; i < events.size();) {
    if (events[i++].type() != v1::EVENT_TYPE_TURN_STARTED) continue;
    // A turn opens with the client's tool results, then its input messages (which, unlike the
    // model's messages, name no model).
    for (; i < events.size() && events[i].type() == v1::EVENT_TYPE_TOOL_RESULT; ++i) {
      const v1::ToolResult& r = events[i].tool_result();
      auto tool = tool_of_call.find(r.tool_call_id());
      if (!plan.empty() && tool != tool_of_call.end())
        plan.back().recorded[tool->second].push_back(r);
    }
    Step step;
    for (; i < events.size() && events[i].type() == v1::EVENT_TYPE_MESSAGE &&
           events[i].message().model().empty() && events[i].message().tool_calls().empty();
         ++i) {
      v1::InputMessage& in = step.input.emplace_back();
      in.set_role(events[i].message().role());
      in.set_text(events[i].message().text());
    }
    if (!step.input.empty()) plan.push_back(std::move(step));
  }
  return plan;
}

std::shared_ptr<ReplayRun> ReplayRun::Start(SessionManager* sessions, const std::string& project_id,
                                            const v1::ReplaySessionRequest& request,
                                            absl::Time deadline, Done done) {
  auto run =
      std::make_shared<ReplayRun>(sessions, project_id, request.model(), deadline, std::move(done));
  absl::Status st = ValidateId("session_id", request.session_id());
  if (st.ok() && request.model().empty()) st = absl::InvalidArgumentError("model is required");
  if (st.ok() && !sessions->router()->HasModel(request.model())) {
    st = absl::InvalidArgumentError(
        absl::StrCat("model \"", request.model(), "\" is not configured"));
  }
  if (st.ok() && !request.new_session_id().empty()) {
    st = ValidateId("new_session_id", request.new_session_id());
  }
  absl::StatusOr<v1::Session> source;
  if (st.ok()) {
    source = sessions->Get(project_id, request.session_id());
    st = source.status();
  }
  std::vector<v1::Event> events;
  for (int64_t after = 0; st.ok() && after < source->last_seq();) {
    absl::StatusOr<std::vector<v1::Event>> page =
        sessions->store()->ReadEvents(project_id, request.session_id(), after, 1000);
    st = page.status();
    if (!st.ok() || page->empty()) break;
    after = page->back().seq();
    for (v1::Event& e : *page) events.push_back(std::move(e));
  }
  if (st.ok()) {
    run->plan_ = Plan(events);
    absl::StatusOr<v1::Session> fork =
        sessions->ForkAt(project_id, request.session_id(), 0, request.new_session_id());
    st = fork.status();
    if (st.ok()) run->session_id_ = fork->session_id();
  }
  if (!st.ok()) {
    run->End(st);
    return run;
  }
  run->RunNext();
  return run;
}

void ReplayRun::Cancel() {
  std::shared_ptr<Turn> turn;
  {
    absl::MutexLock lock(&mu_);
    if (ended_) return;
    cancelled_ = true;
    turn = current_;
  }
  if (turn) sessions_->Abandon(turn);
}

void ReplayRun::RunNext() {
  if (step_ == plan_.size()) {
    absl::StatusOr<v1::Session> session = sessions_->Get(project_id_, session_id_);
    if (session.ok()) *response_.mutable_session() = *session;
    End(session.status());
    return;
  }
  rounds_ = 0;
  v1::RunTurnRequest request;
  *request.mutable_input() = {plan_[step_].input.begin(), plan_[step_].input.end()};
  Submit(std::move(request));
}

void ReplayRun::Submit(v1::RunTurnRequest request) {
  uint64_t generation = 0;  // 0: cancelled
  {
    absl::MutexLock lock(&mu_);
    if (!cancelled_) generation = ++generation_;
  }
  if (generation == 0) {
    End(absl::CancelledError("the replay was cancelled"));
    return;
  }
  request.set_session_id(session_id_);
  request.set_model_override(model_);
  request.set_on_busy(v1::BUSY_POLICY_ENQUEUE);  // the previous turn may still be releasing
  auto self = shared_from_this();
  auto observer = std::make_shared<ReplayObserver>(
      [self](const absl::Status& status, const v1::TurnResult& result) {
        self->OnTurn(status, result);
      });
  std::shared_ptr<Turn> turn =
      sessions_->SubmitTurn(project_id_, std::move(request), deadline_, observer);
  bool cancel;
  {
    absl::MutexLock lock(&mu_);
    // The turn may have finished, and the next one started, before SubmitTurn returned.
    if (generation_ == generation) current_ = turn;
    cancel = cancelled_;
  }
  if (cancel && turn) sessions_->Abandon(turn);  // a finished turn ignores it
}

void ReplayRun::OnTurn(const absl::Status& status, const v1::TurnResult& result) {
  if (!result.turn_id().empty()) *response_.add_results() = result;
  if (!status.ok()) {
    End(status);
    return;
  }
  // A turn can end FAILED or CANCELLED with an OK call (e.g. a CancelTurn on the replay's
  // session; a replay caller that went away gets a non-OK status, above): that ends the replay
  // too, and its session is removed.
  if (result.status() == v1::TURN_STATUS_CANCELLED) {
    End(absl::CancelledError(absl::StrCat("replay: input turn ", step_ + 1, " was cancelled",
                                          result.error().empty() ? "" : ": ", result.error())));
    return;
  }
  if (result.status() == v1::TURN_STATUS_FAILED) {
    End(absl::AbortedError(absl::StrCat("replay: input turn ", step_ + 1, " failed",
                                        result.error().empty() ? "" : ": ", result.error())));
    return;
  }
  if (result.status() == v1::TURN_STATUS_REQUIRES_ACTION) {
    if (++rounds_ > kMaxReplayToolRounds) {
      End(absl::AbortedError(absl::StrCat("replay: the model asked for tools more than ",
                                          kMaxReplayToolRounds, " times for input turn ",
                                          step_ + 1)));
      return;
    }
    v1::RunTurnRequest request;
    for (v1::ToolResult& r : Answer(result)) *request.add_tool_results() = std::move(r);
    // A server-side tool that needs approval is never run by a replay (it could act on the
    // world again): its calls are rejected, and the model is told why.
    for (const v1::ToolCall& call : result.required_tool_calls()) {
      if (!call.requires_approval()) continue;
      v1::ToolApproval* a = request.add_approvals();
      a->set_tool_call_id(call.id());
      a->set_approved(false);
      a->set_reason("a replay does not run tools that need approval");
    }
    Submit(std::move(request));
    return;
  }
  ++step_;
  RunNext();
}

std::vector<v1::ToolResult> ReplayRun::Answer(const v1::TurnResult& result) {
  std::vector<v1::ToolResult> answers;
  for (const v1::ToolCall& call : result.required_tool_calls()) {
    if (call.requires_approval()) continue;  // answered with an approval (RunNext)
    v1::ToolResult& r = answers.emplace_back();
    std::deque<v1::ToolResult>& recorded = plan_[step_].recorded[call.name()];
    if (recorded.empty()) {
      r.set_output(absl::StrCat("no recorded result for tool \"", call.name(),
                                "\" in the replayed session"));
      r.set_is_error(true);
    } else {
      r = std::move(recorded.front());
      recorded.pop_front();
    }
    r.set_tool_call_id(call.id());
  }
  return answers;
}

void ReplayRun::End(const absl::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    if (ended_) return;
    ended_ = true;
    current_.reset();
  }
  if (!status.ok() && !session_id_.empty()) {
    // Best effort; the error is the answer.
    absl::Status deleted = sessions_->Delete(project_id_, session_id_);
    if (!deleted.ok()) {
      spdlog::warn("replay: could not delete the unfinished session {}: {}", session_id_,
                   std::string(deleted.message()));
    }
  }
  Done done = std::move(done_);
  done(status, status.ok() ? response_ : v1::ReplaySessionResponse());
}

}  // namespace agentd::runtime
