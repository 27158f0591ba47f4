// Fuzzes the validation of every request message the gRPC API accepts: byte 0 picks the message
// type, the rest is parsed with ParseFromArray (as gRPC would) and handed to the checks the
// server runs on it before touching the store (runtime/validation.h, the id rules of
// common/ids.h, the memory rules of runtime/memory_manager.h, the state rules of
// store/schema.h, and ImportSession's chunk-by-chunk SessionImporter).
//
// Invariants: every rejection is INVALID_ARGUMENT, except two answers for one tool call, which
// API.md files under "tool results that don't match the pending calls" (FAILED_PRECONDITION);
// validation is a function of the message, so a message that was accepted is accepted again
// (with the same verdict) after serialize + parse.
//
// Not reached here: the checks ProjectService and AdminService requests get inside
// ProjectManager / the backup code (they live in anonymous namespaces next to store calls); for
// those the ids are checked and the message must survive the round trip.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agentd/v1/admin.pb.h"
#include "agentd/v1/agent.pb.h"
#include "agentd/v1/memory.pb.h"
#include "agentd/v1/project.pb.h"
#include "agentd/v1/session.pb.h"
#include "agentd/v1/tool.pb.h"
#include "common/ids.h"
#include "fuzz_util.h"
#include "google/protobuf/io/coded_stream.h"
#include "nlohmann/json.hpp"
#include "runtime/limits.h"
#include "runtime/memory_manager.h"
#include "runtime/session_transfer.h"
#include "runtime/validation.h"
#include "store/schema.h"

namespace {

namespace v1 = agentd::v1;
namespace rt = agentd::runtime;
using agentd::ValidateId;

#define RETURN_IF_ERROR(expr)        \
  do {                               \
    absl::Status _st = (expr);       \
    if (!_st.ok()) return _st;       \
  } while (0)

absl::Status OptionalId(const char* field, const std::string& id) {
  return id.empty() ? absl::OkStatus() : ValidateId(field, id);
}

absl::Status PageSize(int32_t page_size) { return rt::NormalizePageSize(page_size, 50).status(); }

bool ModelExists(const std::string& name) { return name == "echo" || name == "gpt-4o-mini"; }

// AgentService: AgentManager::Create / Update.
absl::Status CheckAgent(const v1::Agent& agent, bool update) {
  if (update || !agent.agent_id().empty()) RETURN_IF_ERROR(ValidateId("agent.agent_id", agent.agent_id()));
  return rt::ValidateAgentSpec(agent, ModelExists);
}

// MemoryService: MemoryManager::Put.
absl::Status CheckPutMemory(const v1::PutMemoryRequest& r) {
  RETURN_IF_ERROR(rt::ValidateMemoryNamespace("namespace", r.namespace_()));
  RETURN_IF_ERROR(OptionalId("key", r.key()));
  RETURN_IF_ERROR(rt::ValidateMemoryText("text", r.text()));
  return rt::ValidateMetadata(r.metadata());
}

absl::Status CheckMemoryName(const std::string& name_space, const std::string& key) {
  RETURN_IF_ERROR(rt::ValidateMemoryNamespace("namespace", name_space));
  return ValidateId("key", key);
}

absl::Status CheckSearchMemory(const v1::SearchMemoryRequest& r) {
  RETURN_IF_ERROR(rt::ValidateMemoryNamespacePrefix("namespace_prefix", r.namespace_prefix()));
  if (r.query().empty()) return absl::InvalidArgumentError("query must not be empty");
  if (r.query().size() > rt::kMaxMemoryQueryBytes) return absl::InvalidArgumentError("query");
  RETURN_IF_ERROR(rt::ValidateMemoryText("query", r.query()));
  return rt::NormalizeMemoryTopK(r.top_k()).status();
}

// SessionService: SessionManager::Create.
absl::Status CheckCreateSession(const v1::CreateSessionRequest& r) {
  RETURN_IF_ERROR(ValidateId("agent_id", r.agent_id()));
  RETURN_IF_ERROR(OptionalId("session_id", r.session_id()));
  if (r.agent_version() < 0) return absl::InvalidArgumentError("agent_version");
  if (r.ttl_seconds() < 0 || r.ttl_seconds() > rt::kMaxTtlSeconds) {
    return absl::InvalidArgumentError("ttl_seconds");
  }
  return rt::ValidateMetadata(r.metadata());
}

// SessionService: SessionManager::PutState (the key rule is the store's).
absl::Status CheckPutState(const v1::PutStateRequest& r) {
  RETURN_IF_ERROR(ValidateId("session_id", r.session_id()));
  if (r.expected_version() < 0) return absl::InvalidArgumentError("expected_version");
  if (r.value_json().size() > agentd::store::schema::kMaxStateValueBytes) {
    return absl::InvalidArgumentError("value_json too large");
  }
  if (!nlohmann::json::accept(r.value_json())) return absl::InvalidArgumentError("value_json");
  if (!agentd::store::schema::IsValidStateKey(r.key())) return absl::InvalidArgumentError("key");
  return absl::OkStatus();
}

// SessionService.ImportSession: the payload is a stream of ExportChunk messages, framed here as
// varint length + bytes, added one by one as the server's reactor does.
absl::Status CheckImport(const std::string& bytes) {
  rt::SessionImporter importer(/*store=*/nullptr, /*history=*/nullptr, "default", 1 << 20);
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  uint32_t len = 0;
  int chunks = 0;
  while (chunks < 64 && in.ReadVarint32(&len)) {
    std::string chunk_bytes;
    if (!in.ReadString(&chunk_bytes, static_cast<int>(len & 0xfffff))) break;
    v1::ExportChunk chunk;
    if (!chunk.ParseFromString(chunk_bytes)) return absl::InvalidArgumentError("unparsable chunk");
    ++chunks;
    RETURN_IF_ERROR(importer.Add(std::move(chunk)));
  }
  return absl::OkStatus();
}

// Parses `bytes` as M and validates it; when it parses, checks the round-trip invariant.
template <class M>
absl::Status Check(const std::string& bytes, const std::function<absl::Status(const M&)>& check) {
  M m;
  if (!m.ParseFromString(bytes)) return absl::OkStatus();  // gRPC rejects it before any handler
  const absl::Status first = check(m);
  const bool duplicate_answer = absl::IsFailedPrecondition(first) &&
                                absl::StrContains(first.message(), "more than one");
  FUZZ_CHECK(first.ok() || absl::IsInvalidArgument(first) || duplicate_answer,
             "rejection is not INVALID_ARGUMENT");
  M again;
  FUZZ_CHECK(again.ParseFromString(m.SerializeAsString()), "a parsed request does not re-parse");
  const absl::Status second = check(again);
  FUZZ_CHECK(second == first, "validation changed after serialize + parse");
  return first;
}

using Checker = std::function<void(const std::string&)>;

template <class M>
Checker Make(std::function<absl::Status(const M&)> check) {
  return [check](const std::string& bytes) { (void)Check<M>(bytes, check); };
}

const std::vector<Checker>& Checkers() {
  static const auto* checkers = new std::vector<Checker>{
      // AgentService
      Make<v1::CreateAgentRequest>([](const auto& r) { return CheckAgent(r.agent(), false); }),
      Make<v1::GetAgentRequest>([](const auto& r) {
        RETURN_IF_ERROR(ValidateId("agent_id", r.agent_id()));
        return r.version() < 0 ? absl::InvalidArgumentError("version") : absl::OkStatus();
      }),
      Make<v1::ListAgentsRequest>([](const auto& r) { return PageSize(r.page_size()); }),
      Make<v1::UpdateAgentRequest>([](const auto& r) { return CheckAgent(r.agent(), true); }),
      Make<v1::DeleteAgentRequest>([](const auto& r) { return ValidateId("agent_id", r.agent_id()); }),
      // SessionService
      Make<v1::CreateSessionRequest>(CheckCreateSession),
      Make<v1::GetSessionRequest>([](const auto& r) { return ValidateId("session_id", r.session_id()); }),
      Make<v1::ListSessionsRequest>([](const auto& r) {
        RETURN_IF_ERROR(OptionalId("agent_id", r.agent_id()));
        if (!v1::SessionStatus_IsValid(r.status())) return absl::InvalidArgumentError("status");
        return PageSize(r.page_size());
      }),
      Make<v1::DeleteSessionRequest>([](const auto& r) { return ValidateId("session_id", r.session_id()); }),
      Make<v1::ForkSessionRequest>([](const auto& r) {
        RETURN_IF_ERROR(ValidateId("session_id", r.session_id()));
        if (r.at_seq() < 0) return absl::InvalidArgumentError("at_seq");
        return OptionalId("new_session_id", r.new_session_id());
      }),
      Make<v1::RunTurnRequest>(rt::ValidateRunTurnRequest),
      Make<v1::CancelTurnRequest>([](const auto& r) { return ValidateId("session_id", r.session_id()); }),
      Make<v1::ListEventsRequest>([](const auto& r) {
        RETURN_IF_ERROR(ValidateId("session_id", r.session_id()));
        return PageSize(r.limit());
      }),
      Make<v1::WatchEventsRequest>([](const auto& r) { return ValidateId("session_id", r.session_id()); }),
      Make<v1::GetStateRequest>([](const auto& r) { return ValidateId("session_id", r.session_id()); }),
      Make<v1::PutStateRequest>(CheckPutState),
      Make<v1::ListStateRequest>([](const auto& r) { return ValidateId("session_id", r.session_id()); }),
      Make<v1::ExportSessionRequest>([](const auto& r) { return ValidateId("session_id", r.session_id()); }),
      Make<v1::ReplaySessionRequest>([](const auto& r) {
        RETURN_IF_ERROR(ValidateId("session_id", r.session_id()));
        if (!ModelExists(r.model())) return absl::InvalidArgumentError("model");
        return OptionalId("new_session_id", r.new_session_id());
      }),
      // MemoryService
      Make<v1::PutMemoryRequest>(CheckPutMemory),
      Make<v1::GetMemoryRequest>([](const auto& r) { return CheckMemoryName(r.namespace_(), r.key()); }),
      Make<v1::ListMemoriesRequest>([](const auto& r) {
        RETURN_IF_ERROR(rt::ValidateMemoryNamespacePrefix("namespace_prefix", r.namespace_prefix()));
        return PageSize(r.page_size());
      }),
      Make<v1::SearchMemoryRequest>(CheckSearchMemory),
      Make<v1::DeleteMemoryRequest>([](const auto& r) { return CheckMemoryName(r.namespace_(), r.key()); }),
      // ProjectService, AdminService, ToolService (ids only; see the header comment)
      Make<v1::CreateProjectRequest>([](const auto&) { return absl::OkStatus(); }),
      Make<v1::GetProjectRequest>([](const auto& r) { return OptionalId("project_id", r.project_id()); }),
      Make<v1::ListProjectsRequest>([](const auto& r) { return PageSize(r.page_size()); }),
      Make<v1::CreateApiKeyRequest>([](const auto& r) { return OptionalId("project_id", r.project_id()); }),
      Make<v1::ListApiKeysRequest>([](const auto& r) { return OptionalId("project_id", r.project_id()); }),
      Make<v1::RevokeApiKeyRequest>([](const auto& r) { return ValidateId("key_id", r.key_id()); }),
      Make<v1::GetUsageRequest>([](const auto& r) { return OptionalId("project_id", r.project_id()); }),
      Make<v1::SetLimitsRequest>([](const auto& r) { return OptionalId("project_id", r.project_id()); }),
      Make<v1::ListAuditEventsRequest>([](const auto& r) { return PageSize(r.page_size()); }),
      Make<v1::CreateBackupRequest>([](const auto&) { return absl::OkStatus(); }),
      Make<v1::ListBackupsRequest>([](const auto&) { return absl::OkStatus(); }),
      Make<v1::RestoreBackupRequest>([](const auto&) { return absl::OkStatus(); }),
      Make<v1::ListToolServersRequest>([](const auto&) { return absl::OkStatus(); }),
  };
  return *checkers;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::vector<Checker>& checkers = Checkers();
  const size_t pick = data[0] % (checkers.size() + 1);
  if (pick == checkers.size()) {
    const absl::Status st = CheckImport(bytes);
    FUZZ_CHECK(st.ok() || absl::IsInvalidArgument(st), "import rejection is not INVALID_ARGUMENT");
    return 0;
  }
  checkers[pick](bytes);
  return 0;
}
