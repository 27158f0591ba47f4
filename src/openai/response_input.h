// Parsing and validation of a POST /v1/responses body, before anything is created: a request
// that fails here changes nothing. Unknown fields are ignored, as OpenAI does.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agentd/v1/agent.pb.h"
#include "agentd/v1/session.pb.h"
#include "nlohmann/json.hpp"

namespace agentd::openai {

struct ResponseRequest {
  std::string model;  // routable model name or "agent:<agent_id>"
  std::string instructions;
  std::string previous_response_id;
  std::string conversation;  // an agentd session id
  bool stream = false;
  bool store = true;
  std::vector<v1::InputMessage> input;
  std::vector<v1::ToolResult> tool_results;  // function_call_output items
  std::vector<v1::ToolApproval> approvals;   // mcp_approval_response items
  std::vector<v1::ToolSpec> tools;           // `type: function` tools, as CLIENT tools
};

/// INVALID_ARGUMENT naming the offending field (in the message) for wrong types and shapes.
/// `*param` is set to the field's path for the error's `param`.
absl::StatusOr<ResponseRequest> ParseResponseRequest(const nlohmann::json& body,
                                                     std::string* param);

/// The text of a message's `content`: a string, or an array of text parts (input_text,
/// output_text, text). INVALID_ARGUMENT for other shapes or part types.
absl::StatusOr<std::string> ContentText(const nlohmann::json& content, const std::string& field);

/// Id of the agent the door creates for (model, instructions, tools) in a project: the same
/// inputs give the same agent, so repeated requests reuse one agent version.
std::string ImplicitAgentId(const ResponseRequest& request);

}  // namespace agentd::openai
