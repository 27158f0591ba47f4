// Client (agents, sessions, memory, usage), ToolRegistry and NewIdempotencyKey.
#include "agentd/client.h"

#include <cstdint>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "sdk/core.h"

namespace agentd {

using internal::RetryClass;

// ---- ToolRegistry ---------------------------------------------------------------------------

ToolRegistry& ToolRegistry::Add(const std::string& name, ToolHandler handler,
                                std::string description, std::string parameters_json_schema) {
  Entry& e = tools_[name];
  e.handler = std::move(handler);
  e.spec.Clear();
  e.spec.set_name(name);
  e.spec.set_description(std::move(description));
  e.spec.set_parameters_json_schema(
      parameters_json_schema.empty() ? R"({"type":"object"})" : std::move(parameters_json_schema));
  e.spec.set_kind(v1::TOOL_KIND_CLIENT);
  return *this;
}

const ToolHandler* ToolRegistry::Find(const std::string& name) const {
  auto it = tools_.find(name);
  if (it == tools_.end() || !it->second.handler) return nullptr;
  return &it->second.handler;
}

std::vector<v1::ToolSpec> ToolRegistry::Specs() const {
  std::vector<v1::ToolSpec> specs;
  specs.reserve(tools_.size());
  for (const auto& [name, entry] : tools_) specs.push_back(entry.spec);
  return specs;
}

std::string NewIdempotencyKey() {
  thread_local absl::BitGen gen;
  const uint64_t hi = absl::Uniform<uint64_t>(gen);
  const uint64_t lo = absl::Uniform<uint64_t>(gen);
  return absl::StrCat("idem_", absl::Hex(hi, absl::kZeroPad16), absl::Hex(lo, absl::kZeroPad16));
}

// ---- Client ---------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Client>> Client::Create(ClientOptions options) {
  absl::StatusOr<std::shared_ptr<internal::Core>> core = internal::Core::Create(std::move(options));
  if (!core.ok()) return core.status();
  return std::unique_ptr<Client>(new Client(*std::move(core)));
}

Client::~Client() = default;

absl::StatusOr<v1::Agent> Client::CreateAgent(const v1::Agent& agent) {
  v1::CreateAgentRequest req;
  *req.mutable_agent() = agent;
  return core_->Call<v1::Agent>(RetryClass::kNever, "",
                                [&](grpc::ClientContext* ctx, v1::Agent* out) {
                                  return core_->agents().CreateAgent(ctx, req, out);
                                });
}

absl::StatusOr<v1::Agent> Client::CreateAgent(const std::string& name, const std::string& model,
                                              const std::string& instructions,
                                              const ToolRegistry& tools) {
  v1::Agent agent;
  agent.set_name(name);
  agent.set_model(model);
  agent.set_instructions(instructions);
  for (v1::ToolSpec& spec : tools.Specs()) *agent.add_tools() = std::move(spec);
  return CreateAgent(agent);
}

absl::StatusOr<v1::Agent> Client::GetAgent(const std::string& agent_id, int32_t version) const {
  v1::GetAgentRequest req;
  req.set_agent_id(agent_id);
  req.set_version(version);
  return core_->Call<v1::Agent>(RetryClass::kSafe, "",
                                [&](grpc::ClientContext* ctx, v1::Agent* out) {
                                  return core_->agents().GetAgent(ctx, req, out);
                                });
}

absl::StatusOr<std::vector<v1::Agent>> Client::ListAgents() const {
  std::vector<v1::Agent> agents;
  v1::ListAgentsRequest req;
  for (;;) {
    auto page = core_->Call<v1::ListAgentsResponse>(
        RetryClass::kSafe, "", [&](grpc::ClientContext* ctx, v1::ListAgentsResponse* out) {
          return core_->agents().ListAgents(ctx, req, out);
        });
    if (!page.ok()) return page.status();
    for (v1::Agent& a : *page->mutable_agents()) agents.push_back(std::move(a));
    if (page->next_page_token().empty()) return agents;
    req.set_page_token(page->next_page_token());
  }
}

absl::StatusOr<v1::Agent> Client::UpdateAgent(const v1::Agent& agent) {
  v1::UpdateAgentRequest req;
  *req.mutable_agent() = agent;
  return core_->Call<v1::Agent>(RetryClass::kNever, "",
                                [&](grpc::ClientContext* ctx, v1::Agent* out) {
                                  return core_->agents().UpdateAgent(ctx, req, out);
                                });
}

absl::Status Client::DeleteAgent(const std::string& agent_id) {
  v1::DeleteAgentRequest req;
  req.set_agent_id(agent_id);
  return core_
      ->Call<google::protobuf::Empty>(RetryClass::kSafe, "",
                                      [&](grpc::ClientContext* ctx, google::protobuf::Empty* out) {
                                        return core_->agents().DeleteAgent(ctx, req, out);
                                      })
      .status();
}

absl::StatusOr<Session> Client::CreateSession(const std::string& agent_id,
                                              const SessionOptions& options) {
  v1::CreateSessionRequest req;
  req.set_agent_id(agent_id);
  req.set_agent_version(options.agent_version);
  req.set_session_id(options.session_id);
  req.set_ttl_seconds(options.ttl_seconds);
  for (const auto& [k, v] : options.metadata) (*req.mutable_metadata())[k] = v;
  // A client-chosen id is sent as x-agentd-session too, so a proxy routes the create where
  // the session's later calls will go.
  auto created = core_->Call<v1::Session>(RetryClass::kNever, options.session_id,
                                          [&](grpc::ClientContext* ctx, v1::Session* out) {
                                            return core_->sessions().CreateSession(ctx, req, out);
                                          });
  if (!created.ok()) return created.status();
  return Session(core_, created->session_id());
}

absl::StatusOr<Session> Client::GetSession(const std::string& session_id) const {
  Session session = OpenSession(session_id);
  absl::StatusOr<v1::Session> got = session.Get();
  if (!got.ok()) return got.status();
  return session;
}

Session Client::OpenSession(const std::string& session_id) const {
  return Session(core_, session_id);
}

absl::StatusOr<std::vector<v1::Session>> Client::ListSessions(const std::string& agent_id,
                                                              v1::SessionStatus status) const {
  std::vector<v1::Session> sessions;
  v1::ListSessionsRequest req;
  req.set_agent_id(agent_id);
  req.set_status(status);
  for (;;) {
    auto page = core_->Call<v1::ListSessionsResponse>(
        RetryClass::kSafe, "", [&](grpc::ClientContext* ctx, v1::ListSessionsResponse* out) {
          return core_->sessions().ListSessions(ctx, req, out);
        });
    if (!page.ok()) return page.status();
    for (v1::Session& s : *page->mutable_sessions()) sessions.push_back(std::move(s));
    if (page->next_page_token().empty()) return sessions;
    req.set_page_token(page->next_page_token());
  }
}

absl::StatusOr<v1::MemoryRecord> Client::PutMemory(const v1::PutMemoryRequest& request) {
  // With a key, PutMemory replaces that record: repeating it is harmless. Without one, each
  // attempt would add a record.
  const RetryClass retry = request.key().empty() ? RetryClass::kNever : RetryClass::kSafe;
  return core_->Call<v1::MemoryRecord>(retry, "",
                                       [&](grpc::ClientContext* ctx, v1::MemoryRecord* out) {
                                         return core_->memory().PutMemory(ctx, request, out);
                                       });
}

absl::StatusOr<std::vector<v1::ScoredMemory>> Client::SearchMemory(
    const std::string& namespace_prefix, const std::string& query, int top_k) const {
  v1::SearchMemoryRequest req;
  req.set_namespace_prefix(namespace_prefix);
  req.set_query(query);
  req.set_top_k(top_k);
  auto found = core_->Call<v1::SearchMemoryResponse>(
      RetryClass::kSafe, "", [&](grpc::ClientContext* ctx, v1::SearchMemoryResponse* out) {
        return core_->memory().SearchMemory(ctx, req, out);
      });
  if (!found.ok()) return found.status();
  return std::vector<v1::ScoredMemory>(found->results().begin(), found->results().end());
}

absl::StatusOr<v1::MemoryRecord> Client::GetMemory(const std::string& ns,
                                                   const std::string& key) const {
  v1::GetMemoryRequest req;
  req.set_namespace_(ns);
  req.set_key(key);
  return core_->Call<v1::MemoryRecord>(RetryClass::kSafe, "",
                                       [&](grpc::ClientContext* ctx, v1::MemoryRecord* out) {
                                         return core_->memory().GetMemory(ctx, req, out);
                                       });
}

absl::Status Client::DeleteMemory(const std::string& ns, const std::string& key) {
  v1::DeleteMemoryRequest req;
  req.set_namespace_(ns);
  req.set_key(key);
  return core_
      ->Call<google::protobuf::Empty>(RetryClass::kSafe, "",
                                      [&](grpc::ClientContext* ctx, google::protobuf::Empty* out) {
                                        return core_->memory().DeleteMemory(ctx, req, out);
                                      })
      .status();
}

absl::StatusOr<v1::GetUsageResponse> Client::GetUsage(const v1::GetUsageRequest& request) const {
  return core_->Call<v1::GetUsageResponse>(
      RetryClass::kSafe, "", [&](grpc::ClientContext* ctx, v1::GetUsageResponse* out) {
        return core_->projects().GetUsage(ctx, request, out);
      });
}

}  // namespace agentd
