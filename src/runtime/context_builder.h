// Context assembly: turns an agent and a session's events into the model's message list.
#pragma once

#include <vector>

#include "absl/types/span.h"

#include "agentd/v1/agent.pb.h"
#include "agentd/v1/common.pb.h"
#include "backend/inference_backend.h"

namespace agentd::runtime {

/// Instructions (as a system message), then every MESSAGE and TOOL_RESULT event in seq order,
/// skipping events of turns that ended TURN_FAILED (a failed turn leaves no trace in later
/// contexts; it stays visible in the event log). `events` must be in seq order.
/// `history` (earlier turns) and `current` (this turn's events so far) are concatenated.
std::vector<backend::ChatMessage> BuildContext(const v1::Agent& agent,
                                               absl::Span<const v1::Event> history,
                                               absl::Span<const v1::Event> current);

/// The tools of `agent` as the model sees them.
std::vector<backend::ToolDefinition> ToolDefinitions(const v1::Agent& agent);

/// Estimated context tokens of one event (stored in Event.token_estimate at append).
int32_t EstimateEventTokens(const v1::Event& event);

}  // namespace agentd::runtime
