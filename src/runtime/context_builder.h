// Context assembly: which of a session's events go into the model's context, and how they are
// rendered as chat messages. Pure functions over a LogView (docs/context.md states the rules).
//
// Cost: PlanContext walks the log backwards from the newest event and stops at the latest
// SUMMARY boundary or when the token budget is spent, using the token_estimate stored in each
// event; so the work per model step is proportional to the window, not to the session's length.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/types/span.h"
#include "agentd/v1/agent.pb.h"
#include "agentd/v1/common.pb.h"
#include "backend/inference_backend.h"

namespace agentd::runtime {

/// A session's log as one sequence: the events of earlier turns, then the current turn's.
/// Both spans must be in seq order and outlive the view.
class LogView {
 public:
  LogView(absl::Span<const v1::Event> history, absl::Span<const v1::Event> current)
      : history_(history), current_(current) {}
  size_t size() const { return history_.size() + current_.size(); }
  const v1::Event& operator[](size_t i) const {
    return i < history_.size() ? history_[i] : current_[i - history_.size()];
  }
  /// Index of the current turn's first event.
  size_t current_begin() const { return history_.size(); }

 private:
  absl::Span<const v1::Event> history_;
  absl::Span<const v1::Event> current_;
};

struct ContextLimits {
  /// Budget for the whole prompt (instructions, tools, summary, events); <= 0 = unlimited.
  int64_t max_tokens = 0;
  /// The newest this-many context events are kept even over the budget (whole call groups).
  int32_t keep_last_events = 0;
  /// Estimated tokens of the instructions and tool definitions (always sent).
  int64_t fixed_tokens = 0;
};

struct ContextPlan {
  /// The latest SUMMARY event (a summary, or with empty text a sliding-window drop marker), or
  /// null. Events with seq <= boundary_seq are outside the context.
  const v1::Event* summary = nullptr;
  int64_t boundary_seq = 0;
  /// Indices (in the LogView) of the events sent, ascending.
  std::vector<size_t> included;
  /// Estimated prompt tokens: fixed + summary text + included events.
  int64_t tokens = 0;
  /// Some events after the boundary did not fit: the context should be compacted.
  bool overflow = false;
  /// With overflow: the first event to keep after compaction (everything before it leaves the
  /// context). The kept part fits in half of what the budget leaves for events, unless the
  /// current turn and keep_last_events alone need more. Never splits a tool call from its result.
  size_t keep_from = 0;
};

/// The window for the next model call. See the file comment for the cost.
ContextPlan PlanContext(const LogView& log, const ContextLimits& limits);

/// Chat Completions encodings of a log's earlier events (LogView indices below
/// current_begin()), kept by the owner of the log across model calls. Slots below `from` (where
/// the last window began) are empty: released when the window moved past them. An event that
/// comes back into a window, as after the agent's budget grows, is encoded again and released
/// again once the window moves past it.
struct EncodedMessages {
  std::vector<std::shared_ptr<const std::string>> slots;
  size_t from = 0;
};

/// Instructions (a system message), the summary (a system message, if it has text), then the
/// planned events: MESSAGE and TOOL_RESULT events as chat messages. With `encoded`, the
/// earlier turns' messages also carry their encoding (ChatMessage::encoded), made once and kept
/// there; encodings of events before the window are dropped. A message whose encoding was
/// already kept is elided (ChatMessage::elided: role and encoding only): pass `encoded` only
/// for a model that may reach a backend sending encodings (ModelRouter decodes for others).
std::vector<backend::ChatMessage> RenderContext(const v1::Agent& agent, const LogView& log,
                                                const ContextPlan& plan,
                                                EncodedMessages* encoded = nullptr);

/// The whole unbounded context of `history` + `current` (events of failed turns left out).
std::vector<backend::ChatMessage> BuildContext(const v1::Agent& agent,
                                               absl::Span<const v1::Event> history,
                                               absl::Span<const v1::Event> current);

/// What a compaction covers: the new boundary and the events to condense.
struct Compaction {
  int64_t from_seq = 0;        // first seq the new SUMMARY event stands for
  int64_t to_seq = 0;          // the new boundary
  std::vector<size_t> events;  // context events to summarize, ascending (SUMMARIZE only)
};

/// The compaction of an overflowing `plan`. With `summarize`, the events between the old
/// boundary and plan.keep_from are listed, newest first until `summarizer_tokens` are used (older
/// ones are dropped), and from_seq extends over the previous summary's range.
Compaction PlanCompaction(const LogView& log, const ContextPlan& plan, bool summarize,
                          int64_t summarizer_tokens);

/// The model request messages that ask for a summary of `compaction.events`, folding in the
/// previous summary text, in at most `max_summary_tokens`.
std::vector<backend::ChatMessage> SummaryPrompt(const LogView& log, const ContextPlan& plan,
                                                const Compaction& compaction,
                                                int64_t max_summary_tokens);

/// The tools of `agent` as the model sees them.
std::vector<backend::ToolDefinition> ToolDefinitions(const v1::Agent& agent);

/// Estimated context tokens of the instructions and tool definitions of `agent`.
int64_t EstimateFixedTokens(const v1::Agent& agent);

/// Estimated context tokens of one event (stored in Event.token_estimate at append).
int32_t EstimateEventTokens(const v1::Event& event);

/// The event's stored estimate, or a fresh one for events sealed before estimates existed.
int64_t EventTokens(const v1::Event& event);

/// `text` cut to at most `max_bytes` bytes at a UTF-8 character boundary.
std::string TruncateUtf8(const std::string& text, size_t max_bytes);

}  // namespace agentd::runtime
