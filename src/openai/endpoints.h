// The endpoint handlers of the OpenAI door. Each runs on a door worker thread with the request's
// authenticated scope, and answers through it (at once or later, from a turn's thread).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "agentd/v1/agent.pb.h"
#include "openai/door.h"
#include "openai/http_util.h"
#include "openai/response_input.h"

namespace agentd::openai {

using Scope = std::shared_ptr<RequestScope>;

// responses.cc: POST /v1/responses and /v1/responses/{id}[/cancel].
void CreateResponse(const DoorDeps& deps, Scope scope);
void GetResponse(const DoorDeps& deps, Scope scope, const std::string& id);
void DeleteResponse(const DoorDeps& deps, Scope scope, const std::string& id);
void CancelResponse(const DoorDeps& deps, Scope scope, const std::string& id);
/// The implicit agent of (model, instructions, tools) in `project`, created on first use
/// (ImplicitAgentId). If someone deleted it, the next free variant of the id ("<id>-2", …) is
/// used from then on: a deleted agent's id stays taken (its versions outlive it).
absl::StatusOr<v1::Agent> ImplicitAgent(const DoorDeps& deps, const std::string& project,
                                        const ResponseRequest& req);

// conversations.cc: /v1/conversations — views of sessions.
void CreateConversation(const DoorDeps& deps, Scope scope);
void GetConversation(const DoorDeps& deps, Scope scope, const std::string& id);
void ListConversationItems(const DoorDeps& deps, Scope scope, const std::string& id);
void DeleteConversation(const DoorDeps& deps, Scope scope, const std::string& id);

// chat.cc: POST /v1/chat/completions, GET /v1/models.
void CreateChatCompletion(const DoorDeps& deps, Scope scope);
void ListModels(const DoorDeps& deps, Scope scope);

}  // namespace agentd::openai
