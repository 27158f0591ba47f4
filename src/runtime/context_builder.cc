#include "runtime/context_builder.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "backend/echo_backend.h"
#include "backend/openai_mapping.h"

namespace agentd::runtime {

namespace {

constexpr char kSummaryPrefix[] = "Summary of earlier conversation: ";

bool IsContextEvent(const v1::Event& e) { return e.has_message() || e.has_tool_result(); }

bool HasToolCalls(const v1::Event& e) {
  return e.has_message() && e.message().tool_calls_size() > 0;
}

// Skips the events of failed turns while walking a log backwards: a TURN_FAILED marker comes
// after its turn's events, so it is met first.
class FailedTurnFilter {
 public:
  /// True if `e` is a marker or belongs to a failed turn.
  bool Skip(const v1::Event& e) {
    if (e.type() == v1::EVENT_TYPE_TURN_FAILED) {
      failed_turn_ = e.turn_id();
      return true;
    }
    if (!failed_turn_.empty()) {
      if (e.turn_id() == failed_turn_) {
        if (e.type() == v1::EVENT_TYPE_TURN_STARTED) failed_turn_.clear();
        return true;
      }
      failed_turn_.clear();
    }
    return false;
  }

 private:
  std::string failed_turn_;
};

v1::Role ToChatRole(v1::Role role) { return role == v1::ROLE_UNSPECIFIED ? v1::ROLE_USER : role; }

backend::ChatMessage ToChat(const v1::Event& e) {
  backend::ChatMessage m;
  if (e.has_message()) {
    m.role = ToChatRole(e.message().role());
    m.text = e.message().text();
    m.tool_calls.assign(e.message().tool_calls().begin(), e.message().tool_calls().end());
  } else {
    m.role = v1::ROLE_TOOL;
    m.text = e.tool_result().output();
    m.tool_call_id = e.tool_result().tool_call_id();
  }
  return m;
}

std::string RoleName(v1::Role role) {
  switch (role) {
    case v1::ROLE_SYSTEM:
      return "system";
    case v1::ROLE_ASSISTANT:
      return "assistant";
    case v1::ROLE_TOOL:
      return "tool";
    default:
      return "user";
  }
}

}  // namespace

ContextPlan PlanContext(const LogView& log, const ContextLimits& limits) {
  ContextPlan plan;
  const size_t n = log.size();
  // The latest SUMMARY event sets the boundary (also one recorded by a turn that later failed:
  // it describes older events, which that failure does not change).
  for (size_t i = n; i-- > 0;) {
    if (log[i].has_summary()) {
      plan.summary = &log[i];
      plan.boundary_seq = log[i].summary().to_seq();
      break;
    }
  }
  const bool summary_text = plan.summary != nullptr && !plan.summary->summary().text().empty();
  plan.tokens = limits.fixed_tokens;
  if (summary_text) {
    plan.tokens += EventTokens(*plan.summary) + backend::EstimateTokens(kSummaryPrefix);
  }
  const int64_t avail = limits.max_tokens <= 0
                            ? std::numeric_limits<int64_t>::max()
                            : std::max<int64_t>(0, limits.max_tokens - plan.tokens);
  const int64_t target = avail / 2;

  int64_t used = 0;
  int64_t seen = 0;  // context events met, newest first (keep_last_events)
  plan.keep_from = n;
  std::vector<size_t> unit;  // a message, or a call message with its results; newest first
  int64_t unit_tokens = 0;
  bool unit_mandatory = false;
  bool in_group = false;  // tool results met, their call message not yet
  auto admit_unit = [&]() {
    if (!unit_mandatory && used + unit_tokens > avail) return false;
    used += unit_tokens;
    if (unit_mandatory || used <= target) plan.keep_from = unit.back();
    plan.included.insert(plan.included.end(), unit.begin(), unit.end());
    unit.clear();
    unit_tokens = 0;
    unit_mandatory = false;
    return true;
  };
  FailedTurnFilter filter;
  for (size_t i = n; i-- > 0;) {
    const v1::Event& e = log[i];
    if (plan.boundary_seq > 0 && e.seq() <= plan.boundary_seq) break;
    if (filter.Skip(e) || !IsContextEvent(e)) continue;
    ++seen;
    unit.push_back(i);
    unit_tokens += EventTokens(e);
    unit_mandatory |= i >= log.current_begin() || seen <= limits.keep_last_events;
    if (e.has_tool_result()) {
      in_group = true;
      continue;
    }
    if (in_group && !HasToolCalls(e)) continue;  // the group reaches back to its call message
    in_group = false;
    if (!admit_unit()) {
      plan.overflow = true;
      unit.clear();
      break;
    }
  }
  // Tool results left without their call message (it is before the boundary): they cannot be
  // sent alone, unless this turn needs them.
  if (!unit.empty() && unit_mandatory) admit_unit();
  std::reverse(plan.included.begin(), plan.included.end());
  plan.tokens += used;
  return plan;
}

std::vector<backend::ChatMessage> RenderContext(const v1::Agent& agent, const LogView& log,
                                                const ContextPlan& plan,
                                                EncodedMessages* encoded) {
  std::vector<backend::ChatMessage> messages;
  messages.reserve(plan.included.size() + 2);
  if (!agent.instructions().empty()) {
    messages.push_back({v1::ROLE_SYSTEM, agent.instructions(), {}, {}, nullptr});
  }
  if (plan.summary != nullptr && !plan.summary->summary().text().empty()) {
    messages.push_back(
        {v1::ROLE_SYSTEM, kSummaryPrefix + plan.summary->summary().text(), {}, {}, nullptr});
  }
  const size_t earlier = log.current_begin();
  if (encoded != nullptr) {
    // Events before the window's first one never come back into it: release their encodings.
    const size_t first = plan.included.empty() ? earlier : std::min(plan.included.front(), earlier);
    if (encoded->slots.size() < earlier) encoded->slots.resize(earlier);
    for (size_t i = encoded->from; i < first; ++i) encoded->slots[i].reset();
    encoded->from = first;  // back with the window too, so what comes back is released again
  }
  for (size_t i : plan.included) {
    if (encoded != nullptr && i < earlier && encoded->slots[i] != nullptr) {
      // Sent before: the encoding stands for the message; its text is not copied again.
      backend::ChatMessage& m = messages.emplace_back();
      m.role = log[i].has_message() ? ToChatRole(log[i].message().role()) : v1::ROLE_TOOL;
      m.encoded = encoded->slots[i];
      m.elided = true;
      continue;
    }
    backend::ChatMessage& m = messages.emplace_back(ToChat(log[i]));
    if (encoded == nullptr || i >= earlier) continue;
    absl::StatusOr<std::string> text = backend::openai::EncodeChatMessage(m);
    if (text.ok()) encoded->slots[i] = std::make_shared<const std::string>(*std::move(text));
    m.encoded = encoded->slots[i];
  }
  return messages;
}

std::vector<backend::ChatMessage> BuildContext(const v1::Agent& agent,
                                               absl::Span<const v1::Event> history,
                                               absl::Span<const v1::Event> current) {
  const LogView log(history, current);
  return RenderContext(agent, log, PlanContext(log, ContextLimits()));
}

Compaction PlanCompaction(const LogView& log, const ContextPlan& plan, bool summarize,
                          int64_t summarizer_tokens) {
  Compaction c;
  if (log.size() == 0) return c;
  c.to_seq =
      plan.keep_from < log.size() ? log[plan.keep_from].seq() - 1 : log[log.size() - 1].seq();
  c.from_seq = plan.boundary_seq + 1;
  if (!summarize) return c;
  int64_t used = 0;
  FailedTurnFilter filter;
  for (size_t i = plan.keep_from; i-- > 0;) {
    const v1::Event& e = log[i];
    if (plan.boundary_seq > 0 && e.seq() <= plan.boundary_seq) break;
    if (filter.Skip(e) || !IsContextEvent(e)) continue;
    const int64_t t = EventTokens(e);
    if (!c.events.empty() && used + t > summarizer_tokens) break;
    used += t;
    c.events.push_back(i);
  }
  std::reverse(c.events.begin(), c.events.end());
  // The previous summary's text is folded in, so the new one stands for its range too.
  if (plan.summary != nullptr && !plan.summary->summary().text().empty() &&
      plan.summary->summary().from_seq() > 0) {
    c.from_seq = plan.summary->summary().from_seq();
  }
  return c;
}

std::vector<backend::ChatMessage> SummaryPrompt(const LogView& log, const ContextPlan& plan,
                                                const Compaction& compaction,
                                                int64_t max_summary_tokens) {
  const int64_t words = std::max<int64_t>(16, max_summary_tokens * 3 / 4);
  std::string system = absl::StrCat(
      "You maintain the running summary of a conversation between a user and an AI assistant. "
      "The summary replaces the original messages in the assistant's memory, so keep every fact, "
      "decision, name, number, preference, open question and tool result that may matter later. "
      "Answer with the updated summary only, in at most ",
      words, " words.");
  std::string user;
  if (plan.summary != nullptr && !plan.summary->summary().text().empty()) {
    absl::StrAppend(&user, "Summary so far:\n", plan.summary->summary().text(), "\n\n");
  }
  absl::StrAppend(&user, "Messages to add to the summary:\n");
  // A single event larger than the summarizer's input is cut (PlanCompaction lists at least one).
  const size_t max_line = static_cast<size_t>(std::max<int64_t>(max_summary_tokens, 1024)) * 16;
  for (size_t i : compaction.events) {
    const v1::Event& e = log[i];
    std::string line;
    if (e.has_message()) {
      const v1::Role role =
          e.message().role() == v1::ROLE_UNSPECIFIED ? v1::ROLE_USER : e.message().role();
      line = absl::StrCat("[", e.seq(), "] ", RoleName(role), ": ", e.message().text());
      for (const v1::ToolCall& c : e.message().tool_calls()) {
        absl::StrAppend(&line, " [calls tool ", c.name(), " with ", c.arguments_json(), "]");
      }
    } else {
      line =
          absl::StrCat("[", e.seq(), "] tool result", e.tool_result().is_error() ? " (error)" : "",
                       ": ", e.tool_result().output());
    }
    absl::StrAppend(&user, TruncateUtf8(line, max_line), "\n");
  }
  return {{v1::ROLE_SYSTEM, std::move(system), {}, {}}, {v1::ROLE_USER, std::move(user), {}, {}}};
}

std::vector<backend::ToolDefinition> ToolDefinitions(const v1::Agent& agent) {
  std::vector<backend::ToolDefinition> tools;
  tools.reserve(agent.tools_size());
  for (const v1::ToolSpec& t : agent.tools()) {
    tools.push_back({t.name(), t.description(), t.parameters_json_schema()});
  }
  return tools;
}

int64_t EstimateFixedTokens(const v1::Agent& agent) {
  int64_t n = 0;
  if (!agent.instructions().empty()) n += 4 + backend::EstimateTokens(agent.instructions());
  for (const v1::ToolSpec& t : agent.tools()) {
    n += 8 + backend::EstimateTokens(t.name()) + backend::EstimateTokens(t.description()) +
         backend::EstimateTokens(t.parameters_json_schema());
  }
  return n;
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

int64_t EventTokens(const v1::Event& event) {
  return event.token_estimate() > 0 ? event.token_estimate() : EstimateEventTokens(event);
}

std::string TruncateUtf8(const std::string& text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

}  // namespace agentd::runtime
