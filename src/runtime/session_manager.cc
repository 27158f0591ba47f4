#include "runtime/session_manager.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <optional>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "metrics/agentd_metrics.h"
#include "runtime/limits.h"
#include "runtime/replicas.h"
#include "runtime/validation.h"

namespace agentd::runtime {
namespace {

absl::Status SessionNotFound(const std::string& session_id) {
  return absl::NotFoundError(absl::StrCat("session \"", session_id, "\" not found"));
}

std::string RequestDigest(const v1::RunTurnRequest& request) {
  std::string bytes;
  google::protobuf::io::StringOutputStream out(&bytes);
  google::protobuf::io::CodedOutputStream coded(&out);
  coded.SetSerializationDeterministic(true);
  request.SerializeToCodedStream(&coded);
  coded.Trim();
  return Sha256(bytes);
}

/// The write that CancelTurn makes on a session waiting in REQUIRES_ACTION (no turn running):
/// a turn of its own whose TOOL_RESULT events answer every pending call with an error, so that
/// later contexts stay valid (every tool call of the log is answered) and tell the model the
/// calls were cancelled. It ends with TURN_COMPLETED, status CANCELLED: a TURN_FAILED turn's
/// events are left out of later contexts, which would leave the calls unanswered. The session
/// becomes IDLE.
store::SessionWrite CancelPendingCallsWrite(const std::string& project_id,
                                            const storage::SessionRecord& stored,
                                            const std::string& turn_id,
                                            const std::string& reason) {
  store::SessionWrite w = store::SessionWrite::Replacing(project_id, stored);
  v1::Session* s = w.record.mutable_session();
  const google::protobuf::Timestamp now = NowProto();
  auto add = [&](v1::EventType type) -> v1::Event& {
    v1::Event& e = w.events.emplace_back();
    e.set_session_id(s->session_id());
    e.set_seq(s->last_seq() + static_cast<int64_t>(w.events.size()));
    e.set_turn_id(turn_id);
    *e.mutable_time() = now;
    e.set_type(type);
    return e;
  };
  add(v1::EVENT_TYPE_TURN_STARTED).mutable_turn()->set_turn_id(turn_id);
  for (const v1::ToolCall& c : stored.session().pending_tool_calls()) {
    v1::ToolResult* r = add(v1::EVENT_TYPE_TOOL_RESULT).mutable_tool_result();
    r->set_tool_call_id(c.id());
    r->set_is_error(true);
    r->set_output(absl::StrCat("error: the call of tool \"", c.name(), "\" was cancelled (",
                               reason, "); it has no result"));
  }
  v1::TurnMarker* end = add(v1::EVENT_TYPE_TURN_COMPLETED).mutable_turn();
  end->set_turn_id(turn_id);
  end->set_status(v1::TURN_STATUS_CANCELLED);
  end->set_error(reason);
  s->set_last_seq(w.events.back().seq());
  *s->mutable_update_time() = now;
  s->set_status(v1::SESSION_STATUS_IDLE);
  s->clear_pending_tool_calls();
  return w;
}

}  // namespace

SessionManager::SessionManager(TurnDeps deps) : deps_(deps) {}

absl::StatusOr<v1::Session> SessionManager::Create(const std::string& project_id,
                                                   const v1::CreateSessionRequest& request) {
  AGENTD_RETURN_IF_ERROR(ValidateId("agent_id", request.agent_id()));
  if (!request.session_id().empty()) {
    AGENTD_RETURN_IF_ERROR(ValidateId("session_id", request.session_id()));
  }
  if (request.agent_version() < 0) return absl::InvalidArgumentError("agent_version must be >= 0");
  if (request.ttl_seconds() < 0 || request.ttl_seconds() > kMaxTtlSeconds) {
    return absl::InvalidArgumentError(
        absl::StrCat("ttl_seconds must be between 0 and ", kMaxTtlSeconds));
  }
  AGENTD_RETURN_IF_ERROR(ValidateMetadata(request.metadata()));
  auto agent = deps_.store->GetAgent(project_id, request.agent_id(), request.agent_version());
  if (absl::IsNotFound(agent.status())) {
    return absl::NotFoundError(
        request.agent_version() == 0
            ? absl::StrCat("agent \"", request.agent_id(), "\" not found")
            : absl::StrCat("agent \"", request.agent_id(), "\" version ", request.agent_version(),
                           " not found"));
  }
  AGENTD_RETURN_IF_ERROR(agent.status());

  storage::SessionRecord record;
  v1::Session* s = record.mutable_session();
  s->set_session_id(request.session_id().empty() ? NewId("sess_") : request.session_id());
  s->set_agent_id(agent->agent_id());
  s->set_agent_version(agent->version());
  s->set_status(v1::SESSION_STATUS_IDLE);
  *s->mutable_metadata() = request.metadata();
  const absl::Time now = absl::Now();
  *s->mutable_create_time() = ToProto(now);
  *s->mutable_update_time() = s->create_time();
  if (request.ttl_seconds() > 0) {
    *s->mutable_expire_time() = ToProto(now + absl::Seconds(request.ttl_seconds()));
  }
  absl::Status st = deps_.store->CreateSession(project_id, record);
  if (absl::IsAlreadyExists(st)) {
    return absl::AlreadyExistsError(absl::StrCat("session \"", s->session_id(), "\" already exists"));
  }
  AGENTD_RETURN_IF_ERROR(st);
  // The id may have named an expired session whose log is still cached.
  deps_.history->Erase(EventHub::Key(project_id, s->session_id()));
  return *s;
}

absl::StatusOr<v1::Session> SessionManager::Get(const std::string& project_id,
                                                const std::string& session_id) {
  AGENTD_RETURN_IF_ERROR(ValidateId("session_id", session_id));
  auto rec = deps_.store->GetSession(project_id, session_id);
  if (absl::IsNotFound(rec.status())) return SessionNotFound(session_id);
  AGENTD_RETURN_IF_ERROR(rec.status());
  v1::Session session = std::move(*rec->mutable_session());
  // A turn's opening events are committed with its first model step, so until then the stored
  // status is still the previous one: a turn running in this process makes the session RUNNING.
  if (session.status() != v1::SESSION_STATUS_RUNNING) {
    absl::MutexLock lock(&mu_);
    auto it = slots_.find(EventHub::Key(project_id, session_id));
    if (it != slots_.end() && it->second.running != nullptr) {
      session.set_status(v1::SESSION_STATUS_RUNNING);
      session.clear_pending_tool_calls();
    }
  }
  return session;
}

absl::StatusOr<v1::ListSessionsResponse> SessionManager::List(
    const std::string& project_id, const v1::ListSessionsRequest& request) {
  if (!request.agent_id().empty()) AGENTD_RETURN_IF_ERROR(ValidateId("agent_id", request.agent_id()));
  if (!v1::SessionStatus_IsValid(request.status())) {
    return absl::InvalidArgumentError("status is not a known session status");
  }
  AGENTD_ASSIGN_OR_RETURN(int32_t size, NormalizePageSize(request.page_size(), 50));
  store::SessionFilter filter{request.agent_id(), request.status()};
  AGENTD_ASSIGN_OR_RETURN(auto page,
                          deps_.store->ListSessions(project_id, filter, size, request.page_token()));
  v1::ListSessionsResponse response;
  for (auto& s : page.sessions) *response.add_sessions() = std::move(s);
  response.set_next_page_token(page.next_page_token);
  return response;
}

absl::Status SessionManager::Delete(const std::string& project_id, const std::string& session_id) {
  AGENTD_RETURN_IF_ERROR(ValidateId("session_id", session_id));
  const std::string key = EventHub::Key(project_id, session_id);
  {
    absl::MutexLock lock(&mu_);  // no turn may start while the session is being removed
    if (slots_.contains(key)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "a turn is running on session \"", session_id, "\"; cancel it before deleting"));
    }
    AGENTD_RETURN_IF_ERROR(CheckNotRunningElsewhere(project_id, session_id, "deleting"));
    absl::Status st = deps_.store->DeleteSession(project_id, session_id);
    deps_.history->Erase(key);
    if (absl::IsNotFound(st)) return SessionNotFound(session_id);
    AGENTD_RETURN_IF_ERROR(st);
  }
  deps_.hub->Close(key);
  return absl::OkStatus();
}

absl::StatusOr<v1::ListEventsResponse> SessionManager::ListEvents(
    const std::string& project_id, const v1::ListEventsRequest& request) {
  AGENTD_RETURN_IF_ERROR(ValidateId("session_id", request.session_id()));
  if (request.after_seq() < 0) return absl::InvalidArgumentError("after_seq must be >= 0");
  if (request.limit() < 0) return absl::InvalidArgumentError("limit must be >= 0");
  const int32_t limit =
      request.limit() == 0 ? kDefaultEventLimit : std::min(request.limit(), kMaxPageSize);
  AGENTD_RETURN_IF_ERROR(Get(project_id, request.session_id()).status());
  AGENTD_ASSIGN_OR_RETURN(auto events, deps_.store->ReadEvents(project_id, request.session_id(),
                                                               request.after_seq(), limit));
  v1::ListEventsResponse response;
  response.set_next_after_seq(events.empty() ? request.after_seq() : events.back().seq());
  for (auto& e : events) *response.add_events() = std::move(e);
  return response;
}

absl::Status SessionManager::CheckInFlightIdempotency(const Slot& slot,
                                                      const v1::RunTurnRequest& request,
                                                      const std::string& digest) const {
  auto check = [&](const std::shared_ptr<Turn>& t) -> absl::Status {
    if (t == nullptr || t->request().idempotency_key() != request.idempotency_key()) {
      return absl::OkStatus();
    }
    if (t->digest() != digest) {
      return absl::InvalidArgumentError(
          "idempotency_key was already used with a different request body");
    }
    return absl::AbortedError("a turn with this idempotency_key is still running; retry later");
  };
  AGENTD_RETURN_IF_ERROR(check(slot.running));
  for (const auto& t : slot.queue) AGENTD_RETURN_IF_ERROR(check(t));
  return absl::OkStatus();
}

absl::Status SessionManager::CheckNotRunningElsewhere(const std::string& project_id,
                                                      const std::string& session_id,
                                                      const char* what) {
  if (!deps_.store->shared()) return absl::OkStatus();
  auto rec = deps_.store->GetSession(project_id, session_id);
  if (absl::IsNotFound(rec.status())) return SessionNotFound(session_id);
  AGENTD_RETURN_IF_ERROR(rec.status());
  AGENTD_ASSIGN_OR_RETURN(ClaimState claim, InspectClaim(deps_.store, *rec, deps_.replica_id));
  if (claim != ClaimState::kLive) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "a turn is running on session \"", session_id, "\" on replica ", rec->running_replica_id(),
      "; ", what, " must reach that replica (send x-agentd-session so the proxy routes it there)",
      " or wait for the turn to end"));
}

std::shared_ptr<Turn> SessionManager::SubmitTurn(const std::string& project_id,
                                                 v1::RunTurnRequest request, absl::Time deadline,
                                                 std::shared_ptr<TurnObserver> observer) {
  absl::Status st = ValidateRunTurnRequest(request);
  if (st.ok()) {
    auto rec = deps_.store->GetSession(project_id, request.session_id());
    st = absl::IsNotFound(rec.status()) ? SessionNotFound(request.session_id()) : rec.status();
  }
  if (!st.ok()) {
    if (deps_.metrics != nullptr) deps_.metrics->TurnRejected(st.code());
    observer->OnFinish(st, v1::TurnResult());
    return nullptr;
  }
  std::string digest = RequestDigest(request);
  const std::string key = EventHub::Key(project_id, request.session_id());
  auto turn = std::make_shared<Turn>(deps_, project_id, std::move(request), std::move(digest),
                                     deadline, observer,
                                     [this](Turn* t) { OnTurnFinished(t); });
  const v1::RunTurnRequest& req = turn->request();
  std::optional<v1::TurnResult> replay;
  bool start = false;
  {
    absl::MutexLock lock(&mu_);
    if (draining_) {
      st = absl::UnavailableError("agentd is shutting down; retry on another replica");
    } else {
      Slot& slot = slots_[key];
      if (!req.idempotency_key().empty()) {
        st = CheckInFlightIdempotency(slot, req, turn->digest());
        if (st.ok()) {
          auto stored = deps_.store->GetIdempotency(project_id, req.session_id(), req.idempotency_key());
          if (!stored.ok()) {
            st = stored.status();
          } else if (stored->has_value()) {
            if ((*stored)->request_digest() != turn->digest()) {
              st = absl::InvalidArgumentError(
                  "idempotency_key was already used with a different request body");
            } else if (!replay.emplace().ParseFromString((*stored)->result())) {
              st = absl::DataLossError("stored idempotency record is corrupt");
            }
          }
        }
      }
      if (st.ok() && !replay) {
        if (slot.running == nullptr) {
          slot.running = turn;
          ++active_;
          start = true;
        } else if (req.on_busy() == v1::BUSY_POLICY_ENQUEUE) {
          if (slot.queue.size() >= kMaxQueuedTurns) {
            st = absl::ResourceExhaustedError(absl::StrCat(
                "more than ", kMaxQueuedTurns, " turns are queued on session \"", req.session_id(), "\""));
          } else {
            slot.queue.push_back(turn);
            ++active_;
            return turn;
          }
        } else {
          st = absl::FailedPreconditionError(absl::StrCat(
              "a turn is already running on session \"", req.session_id(),
              "\" (on_busy=REJECT; use ENQUEUE to wait)"));
        }
      }
      if (!start && slot.running == nullptr && slot.queue.empty()) slots_.erase(key);
    }
  }
  if (start) {
    deps_.executor->Schedule([turn] { turn->Begin(); });
    return turn;
  }
  if (deps_.metrics != nullptr && !st.ok()) deps_.metrics->TurnRejected(st.code());
  observer->OnFinish(st, replay ? *replay : v1::TurnResult());
  return nullptr;
}

void SessionManager::OnTurnFinished(Turn* turn) {
  std::shared_ptr<Turn> next;
  {
    absl::MutexLock lock(&mu_);
    auto it = slots_.find(EventHub::Key(turn->project_id(), turn->request().session_id()));
    if (it == slots_.end() || it->second.running.get() != turn) return;  // dropped while queued
    --active_;
    Slot& slot = it->second;
    slot.running = nullptr;
    if (slot.queue.empty()) {
      slots_.erase(it);
    } else {
      next = slot.queue.front();
      slot.queue.pop_front();
      slot.running = next;
    }
  }
  if (next) deps_.executor->Schedule([next] { next->Begin(); });
}

void SessionManager::Abandon(const std::shared_ptr<Turn>& turn) {
  if (turn == nullptr) return;
  bool was_queued = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = slots_.find(EventHub::Key(turn->project_id(), turn->request().session_id()));
    if (it == slots_.end()) return;
    auto& q = it->second.queue;
    auto pos = std::find(q.begin(), q.end(), turn);
    if (pos != q.end()) {
      q.erase(pos);
      --active_;
      was_queued = true;
    } else if (it->second.running != turn) {
      return;
    }
  }
  if (was_queued) {
    turn->FinishWithoutRunning(absl::CancelledError("the caller cancelled the call"));
  } else {
    // Not OK: the caller is gone and saw no result, so none is remembered under its
    // idempotency key (the retry that follows a timeout runs the turn).
    turn->Cancel("the caller cancelled the call", absl::StatusCode::kCancelled);
  }
}

void SessionManager::CancelTurn(
    const std::string& project_id, const std::string& session_id,
    std::function<void(const absl::Status&, const v1::TurnResult&)> done) {
  absl::Status st = ValidateId("session_id", session_id);
  std::shared_ptr<Turn> running;
  if (st.ok()) {
    absl::MutexLock lock(&mu_);
    auto it = slots_.find(EventHub::Key(project_id, session_id));
    if (it != slots_.end()) running = it->second.running;
  }
  if (running == nullptr) {
    absl::StatusOr<storage::SessionRecord> rec;
    if (st.ok()) {
      rec = deps_.store->GetSession(project_id, session_id);
      st = absl::IsNotFound(rec.status()) ? SessionNotFound(session_id) : rec.status();
    }
    if (st.ok() && deps_.store->shared()) {
      absl::StatusOr<ClaimState> claim = InspectClaim(deps_.store, *rec, deps_.replica_id);
      if (!claim.ok()) {
        st = claim.status();
      } else if (*claim == ClaimState::kLive) {
        CancelRemote(project_id, *rec, std::move(done));
        return;
      }
    }
    if (st.ok() && rec->session().status() == v1::SESSION_STATUS_REQUIRES_ACTION) {
      CancelPendingCalls(project_id, session_id, done);
      return;
    }
    if (st.ok()) {
      st = absl::FailedPreconditionError(
          absl::StrCat("no turn is running and no tool call is pending on session \"",
                       session_id, "\""));
    }
    done(st, v1::TurnResult());
    return;
  }
  CancelRunning(running, done);
}

void SessionManager::CancelRunning(
    const std::shared_ptr<Turn>& running,
    const std::function<void(const absl::Status&, const v1::TurnResult&)>& done) {
  running->Cancel("cancelled by CancelTurn");
  // The answer is the turn's final result, whatever ended it first (this cancel, its caller
  // going away, its own failure); an error only when it ended without one (dropped unrun).
  running->AddFinishListener([done](const absl::Status& status, const v1::TurnResult& result) {
    done(result.turn_id().empty() ? status : absl::OkStatus(), result);
  });
}

void SessionManager::CancelPendingCalls(
    const std::string& project_id, const std::string& session_id,
    const std::function<void(const absl::Status&, const v1::TurnResult&)>& done) {
  const std::string turn_id = NewId("turn_");
  const std::string reason = "cancelled by CancelTurn";
  const std::string key = EventHub::Key(project_id, session_id);
  store::SessionWrite w;
  absl::Status st;
  std::shared_ptr<Turn> running;
  {
    // Under mu_, like SubmitTurn: a turn answering these calls submitted meanwhile is either in
    // the slot already (it is cancelled instead) or starts after this commit and finds nothing
    // pending; it never makes its model call only to lose the revision check afterwards.
    absl::MutexLock lock(&mu_);
    auto it = slots_.find(key);
    if (it != slots_.end()) running = it->second.running;
    if (running == nullptr) {
      absl::StatusOr<storage::SessionRecord> rec = deps_.store->GetSession(project_id, session_id);
      if (!rec.ok()) {
        st = absl::IsNotFound(rec.status()) ? SessionNotFound(session_id) : rec.status();
      } else if (rec->session().status() != v1::SESSION_STATUS_REQUIRES_ACTION) {
        st = absl::FailedPreconditionError(
            absl::StrCat("no turn is running and no tool call is pending on session \"",
                         session_id, "\""));
      } else {
        w = CancelPendingCallsWrite(project_id, *rec, turn_id, reason);
        st = deps_.store->CommitSessionWrite(w);
      }
    }
  }
  if (running != nullptr) {
    CancelRunning(running, done);
    return;
  }
  if (absl::IsAborted(st)) {
    // Another replica's turn answering the calls (or its CancelTurn) got there first.
    st = absl::AbortedError(
        absl::StrCat("session \"", session_id,
                     "\" changed while its pending tool calls were being cancelled; read it "
                     "again and retry"));
  }
  if (!st.ok()) {
    done(st, v1::TurnResult());
    return;
  }
  if (deps_.metrics != nullptr) deps_.metrics->TurnFinished(metrics::TurnOutcome::kCancelled, 0);
  deps_.history->Erase(key);
  deps_.hub->Publish(key, w.events);
  v1::TurnResult result;
  result.set_turn_id(turn_id);
  result.set_status(v1::TURN_STATUS_CANCELLED);
  for (const v1::Event& e : w.events) *result.add_events() = e;
  result.set_last_seq(w.record.session().last_seq());
  result.set_error(reason);
  done(absl::OkStatus(), result);
}

void SessionManager::CancelHere(const std::string& project_id, const std::string& session_id,
                                const std::string& reason) {
  std::shared_ptr<Turn> running;
  {
    absl::MutexLock lock(&mu_);
    auto it = slots_.find(EventHub::Key(project_id, session_id));
    if (it != slots_.end()) running = it->second.running;
  }
  if (running != nullptr) running->Cancel(reason);
}

void SessionManager::CancelRemote(
    const std::string& project_id, const storage::SessionRecord& record,
    std::function<void(const absl::Status&, const v1::TurnResult&)> done) {
  const std::string session_id = record.session().session_id();
  const std::string turn_id = record.running_turn_id();
  const int64_t first_seq = record.running_first_seq();
  absl::Status st = deps_.store->RequestCancel(project_id, session_id);
  if (!st.ok() || deps_.timers == nullptr) {
    done(st.ok() ? absl::FailedPreconditionError("cannot wait for another replica's turn") : st,
         v1::TurnResult());
    return;
  }
  // Polls until the session no longer runs that turn (the owner recorded it CANCELLED, or it
  // ended first, or the owner died and the orphan sweep recorded it).
  const absl::Time give_up = absl::Now() + kRemoteCancelWait;
  // The closure reaches itself weakly: whoever runs or schedules it holds it (no cycle to leak
  // if the timers are dropped at shutdown).
  auto poll = std::make_shared<std::function<void()>>();
  std::weak_ptr<std::function<void()>> weak = poll;
  *poll = [this, project_id, session_id, turn_id, first_seq, give_up, done, weak]() {
    std::shared_ptr<std::function<void()>> self = weak.lock();
    if (self == nullptr) return;
    auto rec = deps_.store->GetSession(project_id, session_id);
    if (!rec.ok() || rec->running_turn_id() != turn_id) {
      auto result = rec.ok() ? ReadTurnResult(project_id, session_id, turn_id, first_seq)
                             : absl::StatusOr<v1::TurnResult>(rec.status());
      if (result.ok() && result->status() == v1::TURN_STATUS_REQUIRES_ACTION &&
          rec->running_turn_id().empty()) {
        *result->mutable_required_tool_calls() = rec->session().pending_tool_calls();
      }
      done(result.status(), result.ok() ? *result : v1::TurnResult());
      return;
    }
    if (absl::Now() >= give_up) {
      done(absl::DeadlineExceededError(absl::StrCat(
               "the replica running turn ", turn_id, " did not record its cancellation within ",
               absl::FormatDuration(kRemoteCancelWait))),
           v1::TurnResult());
      return;
    }
    deps_.timers->Schedule(absl::Now() + kRemoteBusyPoll, [this, self] {
      deps_.executor->Schedule([self] { (*self)(); });
    });
  };
  deps_.executor->Schedule([poll] { (*poll)(); });
}

absl::StatusOr<v1::TurnResult> SessionManager::ReadTurnResult(const std::string& project_id,
                                                              const std::string& session_id,
                                                              const std::string& turn_id,
                                                              int64_t first_seq) {
  v1::TurnResult result;
  result.set_turn_id(turn_id);
  for (int64_t after = std::max<int64_t>(0, first_seq - 1);;) {
    AGENTD_ASSIGN_OR_RETURN(auto page, deps_.store->ReadEvents(project_id, session_id, after, 500));
    if (page.empty()) break;
    after = page.back().seq();
    for (v1::Event& e : page) {
      if (e.turn_id() != turn_id) continue;
      if (e.type() == v1::EVENT_TYPE_MESSAGE && e.message().role() == v1::ROLE_ASSISTANT) {
        result.set_output_text(e.message().text());
      }
      const bool last =
          e.type() == v1::EVENT_TYPE_TURN_COMPLETED || e.type() == v1::EVENT_TYPE_TURN_FAILED;
      if (last) {
        result.set_status(e.turn().status());
        result.set_error(e.turn().error());
        *result.mutable_usage() = e.turn().usage();
        result.set_last_seq(e.seq());
      }
      *result.add_events() = std::move(e);
      if (last) {
        if (result.status() != v1::TURN_STATUS_COMPLETED &&
            result.status() != v1::TURN_STATUS_REQUIRES_ACTION) {
          result.clear_output_text();
        }
        return result;
      }
    }
  }
  return absl::InternalError(
      absl::StrCat("turn ", turn_id, " of session \"", session_id, "\" has no closing event"));
}

absl::Status SessionManager::RecoverInterruptedTurns() {
  int recovered = 0;
  absl::flat_hash_map<std::string, bool> alive;  // replica id → heartbeat alive, for this pass
  AGENTD_RETURN_IF_ERROR(deps_.store->ForEachSessionWithStatus(
      v1::SESSION_STATUS_RUNNING,
      [&](const std::string& project_id, const storage::SessionRecord& stored) -> absl::Status {
        AGENTD_ASSIGN_OR_RETURN(ClaimState claim,
                                InspectClaim(deps_.store, stored, deps_.replica_id, &alive));
        if (claim == ClaimState::kLive) return absl::OkStatus();
        if (claim == ClaimState::kOurs) {
          // Ours and still running here: leave it. Ours and not running (its last commit
          // failed): interrupted like any other.
          absl::MutexLock lock(&mu_);
          auto it = slots_.find(EventHub::Key(project_id, stored.session().session_id()));
          if (it != slots_.end() && it->second.running != nullptr) return absl::OkStatus();
        }
        absl::Status st = deps_.store->CommitSessionWrite(InterruptedTurnWrite(
            project_id, stored,
            claim == ClaimState::kOurs || !deps_.store->shared()
                ? "agentd stopped while the turn was running"
                : "the agentd replica running the turn stopped"));
        // ABORTED: the session moved on (its replica finished, or another replica recorded it).
        if (absl::IsAborted(st)) return absl::OkStatus();
        AGENTD_RETURN_IF_ERROR(st);
        deps_.history->Erase(EventHub::Key(project_id, stored.session().session_id()));
        ++recovered;
        return absl::OkStatus();
      }));
  if (recovered > 0) {
    spdlog::warn("recovered {} interrupted turn(s); recorded as failed", recovered);
  }
  return absl::OkStatus();
}

void SessionManager::Drain(absl::Duration grace) {
  std::vector<std::shared_ptr<Turn>> running;
  std::vector<std::shared_ptr<Turn>> queued;
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return active_ == 0; };
    mu_.AwaitWithTimeout(absl::Condition(&idle), grace);
    for (auto& [key, slot] : slots_) {
      if (slot.running) running.push_back(slot.running);
      for (auto& t : slot.queue) queued.push_back(t);
      active_ -= slot.queue.size();
      slot.queue.clear();
    }
  }
  for (auto& t : queued) {
    t->FinishWithoutRunning(absl::UnavailableError("agentd is shutting down"));
  }
  for (auto& t : running) t->Cancel("agentd is shutting down", absl::StatusCode::kUnavailable);
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return active_ == 0; };
  mu_.AwaitWithTimeout(absl::Condition(&idle), absl::Seconds(5));
}

size_t SessionManager::active_turns() const {
  absl::MutexLock lock(&mu_);
  return active_;
}

SessionManager::TurnStats SessionManager::turn_stats() const {
  TurnStats stats;
  absl::MutexLock lock(&mu_);
  stats.sessions = slots_.size();
  for (const auto& [key, slot] : slots_) {
    if (slot.running != nullptr) ++stats.running;
    stats.queued += slot.queue.size();
  }
  return stats;
}

}  // namespace agentd::runtime
