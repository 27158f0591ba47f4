// Export and import of a session as a portable stream of v1::ExportChunk:
//
//   session (1 chunk) → agent (1 chunk: the agent version the session pins) → events (seq 1..N,
//   gap-free, N = session.last_seq) → state entries (any number, distinct keys).
//
// An export is self-contained: a fork exports its inherited events too (with its own
// session_id), so the import needs nothing else. Importing re-creates the events byte for byte
// (seq, time, type, body, turn ids; session_id too when the id is kept).
//
// Threading: an exporter or importer is used by one thread at a time (a gRPC reactor).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agentd/v1/session.pb.h"
#include "runtime/history_cache.h"
#include "store/context_store.h"

namespace agentd::runtime {

/// Default cap on the bytes of one import (the sum of the chunks' serialized sizes): the import
/// is validated in full before anything is written, so it is held in memory.
inline constexpr size_t kDefaultMaxImportBytes = 256u << 20;

/// Reads a session out chunk by chunk, when the caller can send one (so a slow reader costs no
/// memory): events are read from the store a page at a time; the state is read after the last
/// event.
class SessionExporter {
 public:
  /// NOT_FOUND (session), FAILED_PRECONDITION while a turn runs on it or when its agent version
  /// is gone.
  static absl::StatusOr<std::unique_ptr<SessionExporter>> Open(store::ContextStore* store,
                                                               const std::string& project_id,
                                                               const std::string& session_id);
  /// The next chunk; nullopt once everything was returned.
  absl::StatusOr<std::optional<v1::ExportChunk>> Next();

 private:
  enum class Phase { kSession, kAgent, kEvents, kState, kDone };
  SessionExporter(store::ContextStore* store, std::string project_id, v1::Session session,
                  v1::Agent agent);

  store::ContextStore* const store_;
  const std::string project_id_;
  v1::Session session_;
  v1::Agent agent_;
  Phase phase_ = Phase::kSession;
  std::vector<v1::Event> page_;
  size_t page_pos_ = 0;
  int64_t after_seq_ = 0;
  std::vector<v1::StateEntry> state_;
  size_t state_pos_ = 0;
};

/// Validates an export stream chunk by chunk, then writes it. Nothing is written before Finish(),
/// and a failed Finish() removes what it wrote.
class SessionImporter {
 public:
  SessionImporter(store::ContextStore* store, HistoryCache* history, std::string project_id,
                  size_t max_bytes);

  /// INVALID_ARGUMENT naming the chunk when it breaks the stream's order or contents, or when
  /// the stream grows past max_bytes.
  absl::Status Add(v1::ExportChunk chunk);

  /// Ends the stream and creates the session. The agent version is reused when the importing
  /// project has that agent at that version with the same definition; created under the same id
  /// and version when the agent id is free; otherwise created under a new agent id. The session
  /// keeps its id when it is free in the project, else gets a new one (the events then carry the
  /// new id). It keeps status, pending tool calls, metadata, usage, times and expire_time; it is
  /// not a fork (parent_session_id and fork_seq are cleared). State entries restart at version 1.
  absl::StatusOr<v1::Session> Finish();

 private:
  enum class Phase { kSession, kAgent, kEvents, kState };
  absl::Status AddSession(v1::Session session);
  absl::Status AddAgent(v1::Agent agent);
  absl::Status AddEvent(v1::Event event);
  absl::Status AddState(v1::StateEntry entry);
  /// The agent version the session will pin; `*created` when this import made it.
  absl::StatusOr<v1::Agent> ResolveAgent(bool* created);
  absl::StatusOr<v1::Session> Write(const v1::Agent& agent);

  store::ContextStore* const store_;
  HistoryCache* const history_;
  const std::string project_id_;
  const size_t max_bytes_;
  size_t bytes_ = 0;
  int64_t chunks_ = 0;
  Phase phase_ = Phase::kSession;
  v1::Session session_;
  v1::Agent agent_;
  std::vector<v1::Event> events_;
  std::vector<v1::StateEntry> state_;
};

}  // namespace agentd::runtime
