// SessionManager: forks, tool state, export/import, replay and retention (session_manager.h).
#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "runtime/json_schema.h"
#include "runtime/replay.h"
#include "runtime/session_manager.h"
#include "runtime/session_transfer.h"
#include "store/schema.h"

namespace agentd::runtime {
namespace {

/// Sessions removed per store call by SweepExpired.
constexpr int64_t kSweepBatch = 1000;

/// The events of turn `turn_id`, which ends at `end_seq`: read backwards in growing windows
/// until its TURN_STARTED (a turn is at most a few thousand events).
absl::StatusOr<std::vector<v1::Event>> ReadTurn(store::ContextStore* store,
                                                const std::string& project_id,
                                                const std::string& session_id,
                                                const std::string& turn_id, int64_t end_seq) {
  for (int64_t window = 64;; window *= 4) {
    const int64_t after = std::max<int64_t>(0, end_seq - window);
    AGENTD_ASSIGN_OR_RETURN(
        std::vector<v1::Event> events,
        store->ReadEvents(project_id, session_id, after, static_cast<int32_t>(end_seq - after)));
    for (size_t i = events.size(); i-- > 0;) {
      if (events[i].type() == v1::EVENT_TYPE_TURN_STARTED && events[i].turn_id() == turn_id) {
        events.erase(events.begin(), events.begin() + static_cast<std::ptrdiff_t>(i));
        return events;
      }
    }
    if (after == 0) return events;
  }
}

/// Sets the fork's status (and pending tool calls) to the parent's right after event `at_seq`.
absl::Status SetForkStatus(store::ContextStore* store, const std::string& project_id,
                           const storage::SessionRecord& parent, int64_t at_seq,
                           v1::Session* fork) {
  const v1::Session& p = parent.session();
  fork->set_status(v1::SESSION_STATUS_IDLE);
  if (at_seq == p.last_seq() && p.status() != v1::SESSION_STATUS_RUNNING) {
    fork->set_status(p.status());
    *fork->mutable_pending_tool_calls() = p.pending_tool_calls();
    return absl::OkStatus();
  }
  if (at_seq == 0) return absl::OkStatus();
  AGENTD_ASSIGN_OR_RETURN(std::vector<v1::Event> at,
                          store->ReadEvents(project_id, p.session_id(), at_seq - 1, 1));
  if (at.empty()) {
    return absl::DataLossError(
        absl::StrCat("session \"", p.session_id(), "\" has no event ", at_seq));
  }
  const v1::Event& last = at.front();
  if (last.type() == v1::EVENT_TYPE_TURN_FAILED) {
    fork->set_status(last.turn().status() == v1::TURN_STATUS_CANCELLED ? v1::SESSION_STATUS_IDLE
                                                                       : v1::SESSION_STATUS_FAILED);
  } else if (last.type() == v1::EVENT_TYPE_TURN_COMPLETED &&
             last.turn().status() == v1::TURN_STATUS_REQUIRES_ACTION) {
    // The calls of that turn that got no result inside it are the ones the client owed.
    AGENTD_ASSIGN_OR_RETURN(std::vector<v1::Event> turn,
                            ReadTurn(store, project_id, p.session_id(), last.turn_id(), at_seq));
    std::set<std::string> answered;
    for (const v1::Event& e : turn) {
      if (e.type() == v1::EVENT_TYPE_TOOL_RESULT) answered.insert(e.tool_result().tool_call_id());
    }
    for (const v1::Event& e : turn) {
      if (e.type() == v1::EVENT_TYPE_TOOL_CALL && !answered.count(e.tool_call().id())) {
        *fork->add_pending_tool_calls() = e.tool_call();
      }
    }
    if (fork->pending_tool_calls_size() > 0) {
      fork->set_status(v1::SESSION_STATUS_REQUIRES_ACTION);
    }
  }
  return absl::OkStatus();
}

}  // namespace

// ---- Forks -------------------------------------------------------------------------------

absl::StatusOr<v1::Session> SessionManager::Fork(const std::string& project_id,
                                                 const v1::ForkSessionRequest& request) {
  AGENTD_RETURN_IF_ERROR(ValidateId("session_id", request.session_id()));
  if (request.at_seq() < 0) return absl::InvalidArgumentError("at_seq must be >= 0");
  if (request.at_seq() > 0) {
    return ForkAt(project_id, request.session_id(), request.at_seq(), request.new_session_id());
  }
  absl::StatusOr<storage::SessionRecord> parent =
      deps_.store->GetSession(project_id, request.session_id());
  AGENTD_RETURN_IF_ERROR(SessionNotFoundAs(parent.status(), request.session_id()));
  return ForkAt(project_id, request.session_id(), parent->session().last_seq(),
                request.new_session_id());
}

absl::StatusOr<v1::Session> SessionManager::ForkAt(const std::string& project_id,
                                                   const std::string& session_id, int64_t at_seq,
                                                   const std::string& new_session_id) {
  AGENTD_RETURN_IF_ERROR(ValidateId("session_id", session_id));
  if (!new_session_id.empty()) {
    AGENTD_RETURN_IF_ERROR(ValidateId("new_session_id", new_session_id));
  }
  absl::StatusOr<storage::SessionRecord> parent = deps_.store->GetSession(project_id, session_id);
  AGENTD_RETURN_IF_ERROR(SessionNotFoundAs(parent.status(), session_id));
  const v1::Session& p = parent->session();
  if (at_seq < 0 || at_seq > p.last_seq()) {
    return absl::InvalidArgumentError(absl::StrCat("at_seq ", at_seq, " is past the last_seq ",
                                                   p.last_seq(), " of session \"", session_id,
                                                   "\""));
  }
  storage::SessionRecord record;
  v1::Session* s = record.mutable_session();
  s->set_session_id(new_session_id.empty() ? NewId("sess_") : new_session_id);
  s->set_agent_id(p.agent_id());
  s->set_agent_version(p.agent_version());
  s->set_last_seq(at_seq);
  *s->mutable_metadata() = p.metadata();
  s->set_parent_session_id(session_id);
  s->set_fork_seq(at_seq);
  *s->mutable_create_time() = NowProto();
  *s->mutable_update_time() = s->create_time();
  if (p.has_expire_time()) *s->mutable_expire_time() = p.expire_time();
  AGENTD_RETURN_IF_ERROR(SetForkStatus(deps_.store, project_id, *parent, at_seq, s));
  absl::Status st = deps_.store->ForkSession(project_id, record);
  if (absl::IsAlreadyExists(st)) {
    return absl::AlreadyExistsError(
        absl::StrCat("session \"", s->session_id(), "\" already exists"));
  }
  AGENTD_RETURN_IF_ERROR(SessionNotFoundAs(st, session_id));
  deps_.history->Erase(EventHub::Key(project_id, s->session_id()));
  return *s;
}

// ---- Tool state --------------------------------------------------------------------------

absl::StatusOr<v1::StateEntry> SessionManager::GetState(const std::string& project_id,
                                                        const v1::GetStateRequest& request) {
  AGENTD_RETURN_IF_ERROR(ValidateId("session_id", request.session_id()));
  return deps_.store->GetState(project_id, request.session_id(), request.key());
}

absl::StatusOr<v1::StateEntry> SessionManager::PutState(const std::string& project_id,
                                                        const v1::PutStateRequest& request) {
  AGENTD_RETURN_IF_ERROR(ValidateId("session_id", request.session_id()));
  if (request.expected_version() < 0) {
    return absl::InvalidArgumentError("expected_version must be >= 0");
  }
  // Sizes and key rules are the store's (INVALID_ARGUMENT); parse only what fits.
  if (request.value_json().size() <= store::schema::kMaxStateValueBytes) {
    // Deeper values would overflow the stack of whatever prints them later (state_get).
    if (JsonNestingDepth(request.value_json()) > kMaxJsonDepth) {
      return absl::InvalidArgumentError(
          absl::StrCat("value_json nests deeper than ", kMaxJsonDepth, " levels"));
    }
    if (!nlohmann::json::accept(request.value_json())) {
      return absl::InvalidArgumentError("value_json is not valid JSON");
    }
  }
  return deps_.store->PutState(project_id, request.session_id(),
                               {request.key(), request.value_json(), request.expected_version()});
}

absl::StatusOr<v1::ListStateResponse> SessionManager::ListState(
    const std::string& project_id, const v1::ListStateRequest& request) {
  AGENTD_RETURN_IF_ERROR(ValidateId("session_id", request.session_id()));
  AGENTD_ASSIGN_OR_RETURN(std::vector<v1::StateEntry> entries,
                          deps_.store->ListState(project_id, request.session_id()));
  v1::ListStateResponse response;
  for (v1::StateEntry& e : entries) *response.add_entries() = std::move(e);
  return response;
}

// ---- Export, import, replay --------------------------------------------------------------

absl::StatusOr<std::unique_ptr<SessionExporter>> SessionManager::OpenExport(
    const std::string& project_id, const std::string& session_id) {
  return SessionExporter::Open(deps_.store, project_id, session_id);
}

std::unique_ptr<SessionImporter> SessionManager::NewImport(const std::string& project_id,
                                                           size_t max_bytes) {
  return std::make_unique<SessionImporter>(deps_.store, deps_.history, project_id, max_bytes);
}

std::shared_ptr<ReplayRun> SessionManager::Replay(
    const std::string& project_id, const v1::ReplaySessionRequest& request, absl::Time deadline,
    std::function<void(const absl::Status&, const v1::ReplaySessionResponse&)> done) {
  return ReplayRun::Start(this, project_id, request, deadline, std::move(done));
}

// ---- Retention ---------------------------------------------------------------------------

absl::StatusOr<int64_t> SessionManager::SweepExpired(absl::Time now) {
  int64_t total = 0;
  for (;;) {
    AGENTD_ASSIGN_OR_RETURN(const int64_t n, deps_.store->DeleteExpiredSessions(now, kSweepBatch));
    total += n;
    if (n < kSweepBatch) return total;
  }
}

}  // namespace agentd::runtime
