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

std::string RequestDigest(const v1::RunTurnRequest& request) {
  std::string bytes;
  google::protobuf::io::StringOutputStream out(&bytes);
  google::protobuf::io::CodedOutputStream coded(&out);
  coded.SetSerializationDeterministic(true);
  request.SerializeToCodedStream(&coded);
  coded.Trim();
  return Sha256(bytes);
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
  AGENTD_RETURN_IF_ERROR(SessionNotFoundAs(rec.status(), session_id));
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
    AGENTD_RETURN_IF_ERROR(SessionNotFoundAs(st, session_id));
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
  AGENTD_RETURN_IF_ERROR(SessionNotFoundAs(rec.status(), session_id));
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
    st = SessionNotFoundAs(rec.status(), request.session_id());
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

absl::Status SessionNotFoundAs(const absl::Status& status, const std::string& session_id) {
  if (!absl::IsNotFound(status)) return status;
  return absl::NotFoundError(absl::StrCat("session \"", session_id, "\" not found"));
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
