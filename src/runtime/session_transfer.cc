#include "runtime/session_transfer.h"

#include <google/protobuf/util/message_differencer.h>

#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/ids.h"
#include "common/status_macros.h"
#include "common/time_util.h"
#include "runtime/event_hub.h"
#include "runtime/json_schema.h"
#include "runtime/limits.h"
#include "runtime/validation.h"
#include "store/schema.h"

namespace agentd::runtime {
namespace {

constexpr int32_t kExportPageEvents = 500;

/// Same definition: everything but the times (an agent re-created elsewhere has other times).
bool SameDefinition(v1::Agent a, v1::Agent b) {
  for (v1::Agent* x : {&a, &b}) {
    x->clear_create_time();
    x->clear_update_time();
  }
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

}  // namespace

// ---- Export ------------------------------------------------------------------------------

SessionExporter::SessionExporter(store::ContextStore* store, std::string project_id,
                                 v1::Session session, v1::Agent agent)
    : store_(store),
      project_id_(std::move(project_id)),
      session_(std::move(session)),
      agent_(std::move(agent)) {}

absl::StatusOr<std::unique_ptr<SessionExporter>> SessionExporter::Open(
    store::ContextStore* store, const std::string& project_id, const std::string& session_id) {
  AGENTD_RETURN_IF_ERROR(ValidateId("session_id", session_id));
  absl::StatusOr<storage::SessionRecord> record = store->GetSession(project_id, session_id);
  if (absl::IsNotFound(record.status())) {
    return absl::NotFoundError(absl::StrCat("session \"", session_id, "\" not found"));
  }
  AGENTD_RETURN_IF_ERROR(record.status());
  const v1::Session& s = record->session();
  if (s.status() == v1::SESSION_STATUS_RUNNING) {
    return absl::FailedPreconditionError(absl::StrCat("a turn is running on session \"", session_id,
                                                      "\"; export it when the turn is over"));
  }
  absl::StatusOr<v1::Agent> agent =
      store->GetAgent(project_id, s.agent_id(), s.agent_version(), /*include_deleted=*/true);
  if (absl::IsNotFound(agent.status())) {
    return absl::FailedPreconditionError(absl::StrCat("agent \"", s.agent_id(), "\" version ",
                                                      s.agent_version(), " of session \"",
                                                      session_id, "\" is gone"));
  }
  AGENTD_RETURN_IF_ERROR(agent.status());
  return std::unique_ptr<SessionExporter>(
      new SessionExporter(store, project_id, s, *std::move(agent)));
}

absl::StatusOr<std::optional<v1::ExportChunk>> SessionExporter::Next() {
  v1::ExportChunk chunk;
  switch (phase_) {
    case Phase::kSession:
      *chunk.mutable_session() = session_;
      phase_ = Phase::kAgent;
      return chunk;
    case Phase::kAgent:
      *chunk.mutable_agent() = agent_;
      phase_ = Phase::kEvents;
      return chunk;
    case Phase::kEvents: {
      if (page_pos_ == page_.size() && after_seq_ < session_.last_seq()) {
        // Only up to the exported record's last_seq: a turn may append meanwhile.
        const int64_t want = std::min<int64_t>(kExportPageEvents, session_.last_seq() - after_seq_);
        AGENTD_ASSIGN_OR_RETURN(page_, store_->ReadEvents(project_id_, session_.session_id(),
                                                          after_seq_, static_cast<int32_t>(want)));
        page_pos_ = 0;
        if (page_.empty() || page_.front().seq() != after_seq_ + 1) {
          return absl::DataLossError(absl::StrCat("session \"", session_.session_id(),
                                                  "\" has no event ", after_seq_ + 1));
        }
      }
      if (page_pos_ < page_.size()) {
        after_seq_ = page_[page_pos_].seq();
        *chunk.mutable_event() = std::move(page_[page_pos_++]);
        return chunk;
      }
      AGENTD_ASSIGN_OR_RETURN(state_, store_->ListState(project_id_, session_.session_id()));
      phase_ = Phase::kState;
      [[fallthrough]];
    }
    case Phase::kState:
      if (state_pos_ < state_.size()) {
        *chunk.mutable_state() = std::move(state_[state_pos_++]);
        return chunk;
      }
      phase_ = Phase::kDone;
      [[fallthrough]];
    case Phase::kDone:
      break;
  }
  return std::optional<v1::ExportChunk>();
}

// ---- Import ------------------------------------------------------------------------------

SessionImporter::SessionImporter(store::ContextStore* store, HistoryCache* history,
                                 std::string project_id, size_t max_bytes)
    : store_(store), history_(history), project_id_(std::move(project_id)), max_bytes_(max_bytes) {}

absl::Status SessionImporter::Add(v1::ExportChunk chunk) {
  ++chunks_;
  bytes_ += chunk.ByteSizeLong();
  if (bytes_ > max_bytes_) {
    return absl::InvalidArgumentError(
        absl::StrCat("the import is larger than ", max_bytes_, " bytes"));
  }
  absl::Status st;
  switch (chunk.kind_case()) {
    case v1::ExportChunk::kSession:
      st = AddSession(std::move(*chunk.mutable_session()));
      break;
    case v1::ExportChunk::kAgent:
      st = AddAgent(std::move(*chunk.mutable_agent()));
      break;
    case v1::ExportChunk::kEvent:
      st = AddEvent(std::move(*chunk.mutable_event()));
      break;
    case v1::ExportChunk::kState:
      st = AddState(std::move(*chunk.mutable_state()));
      break;
    case v1::ExportChunk::KIND_NOT_SET:
      st = absl::InvalidArgumentError("the chunk is empty");
      break;
  }
  if (st.ok()) return st;
  return absl::InvalidArgumentError(absl::StrCat("import chunk ", chunks_, ": ", st.message()));
}

absl::Status SessionImporter::AddSession(v1::Session session) {
  if (phase_ != Phase::kSession || chunks_ != 1) {
    return absl::InvalidArgumentError("the session must be the first chunk, and only once");
  }
  if (!session.session_id().empty()) {
    AGENTD_RETURN_IF_ERROR(ValidateId("session.session_id", session.session_id()));
  }
  AGENTD_RETURN_IF_ERROR(ValidateId("session.agent_id", session.agent_id()));
  if (session.agent_version() < 1) {
    return absl::InvalidArgumentError("session.agent_version must be >= 1");
  }
  if (session.last_seq() < 0) return absl::InvalidArgumentError("session.last_seq must be >= 0");
  switch (session.status()) {
    case v1::SESSION_STATUS_IDLE:
    case v1::SESSION_STATUS_FAILED:
      if (session.pending_tool_calls_size() > 0) {
        return absl::InvalidArgumentError(
            "session.pending_tool_calls are only allowed with status REQUIRES_ACTION");
      }
      break;
    case v1::SESSION_STATUS_REQUIRES_ACTION:
      if (session.pending_tool_calls_size() == 0) {
        return absl::InvalidArgumentError(
            "session.status REQUIRES_ACTION needs pending_tool_calls");
      }
      break;
    default:
      return absl::InvalidArgumentError(
          "session.status must be IDLE, REQUIRES_ACTION or FAILED (export a session when no "
          "turn runs on it)");
  }
  AGENTD_RETURN_IF_ERROR(ValidateMetadata(session.metadata()));
  AGENTD_RETURN_IF_ERROR(TimeOf("session.create_time", session.create_time()).status());
  AGENTD_RETURN_IF_ERROR(TimeOf("session.update_time", session.update_time()).status());
  if (session.has_expire_time()) {
    AGENTD_ASSIGN_OR_RETURN(const absl::Time expire,
                            TimeOf("session.expire_time", session.expire_time()));
    if (expire <= absl::Now()) {
      return absl::InvalidArgumentError("the session's expire_time has passed");
    }
    if (expire > absl::Now() + absl::Seconds(kMaxTtlSeconds)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the session's expire_time is more than ", kMaxTtlSeconds, " seconds (the TTL cap) away"));
    }
  }
  session_ = std::move(session);
  phase_ = Phase::kAgent;
  return absl::OkStatus();
}

absl::Status SessionImporter::AddAgent(v1::Agent agent) {
  if (phase_ != Phase::kAgent || chunks_ != 2) {
    return absl::InvalidArgumentError("the agent must be the second chunk, after the session");
  }
  if (agent.agent_id() != session_.agent_id() || agent.version() != session_.agent_version()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the agent chunk is ", agent.agent_id(), " version ", agent.version(),
        ", but the session pins ", session_.agent_id(), " version ", session_.agent_version()));
  }
  // The model need not exist here: the history is what is imported, and turns can use
  // model_override.
  // MCP tools are kept as they are: turns resolve them against this server's mcp_servers.
  AGENTD_RETURN_IF_ERROR(ValidateAgentSpec(agent, [](const std::string&) { return true; },
                                           [](const v1::ToolSpec&, const std::string&) {
                                             return absl::OkStatus();
                                           }));
  agent_ = std::move(agent);
  phase_ = Phase::kEvents;
  return absl::OkStatus();
}

absl::Status SessionImporter::AddEvent(v1::Event event) {
  if (phase_ != Phase::kEvents) {
    return absl::InvalidArgumentError(phase_ == Phase::kState
                                          ? "events must come before the state entries"
                                          : "events must come after the session and the agent");
  }
  const int64_t want = static_cast<int64_t>(events_.size()) + 1;
  if (event.seq() != want) {
    return absl::InvalidArgumentError(
        absl::StrCat("event seq ", event.seq(), ", expected ", want, " (seqs are 1..N, no gaps)"));
  }
  if (event.seq() > session_.last_seq()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "event seq ", event.seq(), " is past the session's last_seq ", session_.last_seq()));
  }
  const std::string& owner = session_.session_id().empty() && !events_.empty()
                                 ? events_.front().session_id()
                                 : session_.session_id();
  if (!owner.empty() && event.session_id() != owner) {
    return absl::InvalidArgumentError(absl::StrCat("event ", event.seq(), " belongs to session \"",
                                                   event.session_id(), "\", not \"", owner, "\""));
  }
  if (!v1::EventType_IsValid(event.type()) || event.type() == v1::EVENT_TYPE_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat("event ", event.seq(), " has no valid type"));
  }
  AGENTD_RETURN_IF_ERROR(
      TimeOf(absl::StrCat("event ", event.seq(), " time"), event.time()).status());
  events_.push_back(std::move(event));
  return absl::OkStatus();
}

absl::Status SessionImporter::AddState(v1::StateEntry entry) {
  if (phase_ == Phase::kSession || phase_ == Phase::kAgent) {
    return absl::InvalidArgumentError("state entries must come after the session and the agent");
  }
  phase_ = Phase::kState;
  if (!store::schema::IsValidStateKey(entry.key())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "state key must be 1..", store::schema::kMaxStateKeyBytes, " bytes of printable ASCII"));
  }
  if (entry.value_json().size() > store::schema::kMaxStateValueBytes ||
      JsonNestingDepth(entry.value_json()) > kMaxJsonDepth ||
      !nlohmann::json::accept(entry.value_json())) {
    return absl::InvalidArgumentError(absl::StrCat("state key \"", entry.key(),
                                                   "\": value_json is not JSON of at most ",
                                                   store::schema::kMaxStateValueBytes,
                                                   " bytes nesting at most ", kMaxJsonDepth,
                                                   " levels"));
  }
  for (const v1::StateEntry& e : state_) {
    if (e.key() == entry.key()) {
      return absl::InvalidArgumentError(absl::StrCat("state key \"", entry.key(), "\" repeats"));
    }
  }
  state_.push_back(std::move(entry));
  return absl::OkStatus();
}

absl::StatusOr<v1::Session> SessionImporter::Finish() {
  if (phase_ == Phase::kSession) return absl::InvalidArgumentError("the import has no session");
  if (phase_ == Phase::kAgent) return absl::InvalidArgumentError("the import has no agent");
  if (static_cast<int64_t>(events_.size()) != session_.last_seq()) {
    return absl::InvalidArgumentError(absl::StrCat("the import has ", events_.size(),
                                                   " events, but the session's last_seq is ",
                                                   session_.last_seq()));
  }
  bool created = false;
  AGENTD_ASSIGN_OR_RETURN(const v1::Agent agent, ResolveAgent(&created));
  absl::StatusOr<v1::Session> session = Write(agent);
  if (!session.ok() && created) {
    (void)store_->DeleteAgent(project_id_, agent.agent_id());  // best effort; the error wins
  }
  return session;
}

absl::StatusOr<v1::Agent> SessionImporter::ResolveAgent(bool* created) {
  *created = false;
  absl::StatusOr<v1::Agent> same_version =
      store_->GetAgent(project_id_, agent_.agent_id(), agent_.version(), /*include_deleted=*/true);
  if (same_version.ok() && SameDefinition(*same_version, agent_)) return same_version;
  if (!same_version.ok() && !absl::IsNotFound(same_version.status())) {
    return same_version.status();
  }
  v1::Agent fresh = agent_;
  absl::StatusOr<v1::Agent> any_version =
      store_->GetAgent(project_id_, agent_.agent_id(), 0, /*include_deleted=*/true);
  if (!absl::IsNotFound(any_version.status())) {
    AGENTD_RETURN_IF_ERROR(any_version.status());
    fresh.set_agent_id(NewId("agent_"));  // the id is taken by another definition
  }
  absl::Status st = store_->PutAgentVersion(project_id_, fresh, 0);
  if (absl::IsAlreadyExists(st)) {  // created meanwhile
    fresh.set_agent_id(NewId("agent_"));
    st = store_->PutAgentVersion(project_id_, fresh, 0);
  }
  AGENTD_RETURN_IF_ERROR(st);
  *created = true;
  return fresh;
}

absl::StatusOr<v1::Session> SessionImporter::Write(const v1::Agent& agent) {
  v1::Session s = session_;
  s.set_agent_id(agent.agent_id());
  s.set_agent_version(agent.version());
  s.clear_parent_session_id();
  s.set_fork_seq(0);
  bool keep_id = !s.session_id().empty();
  if (keep_id) {
    absl::StatusOr<storage::SessionRecord> taken = store_->GetSession(project_id_, s.session_id());
    if (!taken.ok() && !absl::IsNotFound(taken.status())) return taken.status();
    keep_id = absl::IsNotFound(taken.status());
  }
  // The session is created empty, then its events, record and state land in one batch.
  storage::SessionRecord empty;
  for (int attempt = 0;; ++attempt) {
    if (!keep_id) s.set_session_id(NewId("sess_"));
    *empty.mutable_session() = s;
    empty.mutable_session()->set_last_seq(0);
    empty.mutable_session()->set_status(v1::SESSION_STATUS_IDLE);
    empty.mutable_session()->clear_pending_tool_calls();
    absl::Status st = store_->CreateSession(project_id_, empty);
    if (st.ok()) break;
    if (!absl::IsAlreadyExists(st) || attempt > 0) return st;
    keep_id = false;  // taken meanwhile
  }
  store::SessionWrite w;
  w.project_id = project_id_;
  w.session_id = s.session_id();
  w.expected_revision = 1;
  w.events = std::move(events_);
  for (v1::Event& e : w.events) e.set_session_id(s.session_id());
  *w.record.mutable_session() = s;
  for (const v1::StateEntry& e : state_) w.state.push_back({e.key(), e.value_json(), 0});
  absl::Status st = store_->CommitSessionWrite(w);
  if (!st.ok()) {
    (void)store_->DeleteSession(project_id_, s.session_id());  // best effort; the error wins
    return st;
  }
  history_->Erase(EventHub::Key(project_id_, s.session_id()));
  AGENTD_ASSIGN_OR_RETURN(storage::SessionRecord stored,
                          store_->GetSession(project_id_, s.session_id()));
  return stored.session();
}

}  // namespace agentd::runtime
