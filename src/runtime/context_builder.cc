#include "runtime/context_builder.h"

#include "absl/container/flat_hash_set.h"
#include "backend/echo_backend.h"

namespace agentd::runtime {

namespace {

void AppendMessages(absl::Span<const v1::Event> events,
                    const absl::flat_hash_set<std::string>& failed_turns,
                    std::vector<backend::ChatMessage>* messages) {
  for (const v1::Event& e : events) {
    if (!failed_turns.empty() && failed_turns.contains(e.turn_id())) continue;
    if (e.has_message()) {
      backend::ChatMessage m;
      m.role = e.message().role() == v1::ROLE_UNSPECIFIED ? v1::ROLE_USER : e.message().role();
      m.text = e.message().text();
      m.tool_calls.assign(e.message().tool_calls().begin(), e.message().tool_calls().end());
      messages->push_back(std::move(m));
    } else if (e.has_tool_result()) {
      backend::ChatMessage m;
      m.role = v1::ROLE_TOOL;
      m.text = e.tool_result().output();
      m.tool_call_id = e.tool_result().tool_call_id();
      messages->push_back(std::move(m));
    } else if (e.has_summary()) {
      messages->push_back(
          {v1::ROLE_SYSTEM, "Summary of earlier conversation: " + e.summary().text(), {}, {}});
    }
  }
}

void CollectFailedTurns(absl::Span<const v1::Event> events,
                        absl::flat_hash_set<std::string>* failed) {
  for (const v1::Event& e : events) {
    if (e.type() == v1::EVENT_TYPE_TURN_FAILED) failed->insert(e.turn_id());
  }
}

}  // namespace

std::vector<backend::ChatMessage> BuildContext(const v1::Agent& agent,
                                               absl::Span<const v1::Event> history,
                                               absl::Span<const v1::Event> current) {
  absl::flat_hash_set<std::string> failed_turns;
  CollectFailedTurns(history, &failed_turns);
  CollectFailedTurns(current, &failed_turns);
  std::vector<backend::ChatMessage> messages;
  messages.reserve(history.size() + current.size() + 1);
  if (!agent.instructions().empty()) {
    messages.push_back({v1::ROLE_SYSTEM, agent.instructions(), {}, {}});
  }
  AppendMessages(history, failed_turns, &messages);
  AppendMessages(current, failed_turns, &messages);
  return messages;
}

std::vector<backend::ToolDefinition> ToolDefinitions(const v1::Agent& agent) {
  std::vector<backend::ToolDefinition> tools;
  tools.reserve(agent.tools_size());
  for (const v1::ToolSpec& t : agent.tools()) {
    tools.push_back({t.name(), t.description(), t.parameters_json_schema()});
  }
  return tools;
}

int32_t EstimateEventTokens(const v1::Event& event) {
  int64_t n = 4;
  if (event.has_message()) {
    n += backend::EstimateTokens(event.message().text());
    for (const v1::ToolCall& c : event.message().tool_calls()) {
      n += backend::EstimateTokens(c.name()) + backend::EstimateTokens(c.arguments_json());
    }
  } else if (event.has_tool_result()) {
    n += backend::EstimateTokens(event.tool_result().output());
  } else if (event.has_summary()) {
    n += backend::EstimateTokens(event.summary().text());
  } else if (event.has_tool_call()) {
    n = 0;  // carried by the assistant message
  }
  return static_cast<int32_t>(std::min<int64_t>(n, INT32_MAX));
}

}  // namespace agentd::runtime
