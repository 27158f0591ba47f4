// Turn: one run of the model/tool loop on a session, from its input to a TurnResult.
//
// Lifecycle: SessionManager creates a Turn, calls Begin() when it is the session's turn, and is
// told through the `on_finished` callback when the turn is over. Begin() may complete the whole
// turn inline (the echo model answers inline) or return while the model call is in flight; the
// rest then runs on an executor worker. Cancel() is safe from any thread.
//
// A step: apply the context policy (PlanContext; when the window overflows, append a SUMMARY
// event, after a summarizer model call for SUMMARIZE), call the model, record its answer, then
// validate tool-call arguments (and, with an output schema, the final answer) and run the
// BUILTIN tools. Invalid calls or answers are recorded with feedback and the model is asked
// again, up to the agent's max_validation_retries. docs/context.md describes every rule.
//
// Durability and ordering: the turn's opening events (TURN_STARTED, tool results, input
// messages) are committed together with the first model step when the model answers inline, or
// on their own (so the session shows RUNNING durably) when it does not. Every later step is one
// WriteBatch, with the tool-state writes of its builtin calls. Events reach the observer and the
// EventHub only after their commit.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agentd/storage/records.pb.h"
#include "agentd/v1/session.pb.h"
#include "auth/limits.h"
#include "backend/model_router.h"
#include "backend/timer_queue.h"
#include "runtime/builtin_tools.h"
#include "runtime/context_builder.h"
#include "runtime/event_hub.h"
#include "runtime/executor.h"
#include "runtime/history_cache.h"
#include "runtime/json_schema.h"
#include "store/context_store.h"
#include "tools/tool_gateway.h"

namespace agentd::metrics {
class AgentdMetrics;
}
namespace agentd::obs {
struct RequestContext;
}

namespace agentd::runtime {

/// Receives a turn's progress. Calls for one turn never overlap.
class TurnObserver {
 public:
  virtual ~TurnObserver() = default;
  /// Events of this turn, once durable, in seq order.
  virtual void OnEvents(const std::vector<v1::Event>& events) {}
  /// Model text as it arrives (not durable).
  virtual void OnDelta(absl::string_view text) {}
  /// The text streamed so far for the current step is void (its model call is being retried).
  virtual void OnDeltaReset() {}
  /// Exactly once, last. `status` is the call's status; `result` is meaningful when the turn
  /// ran (also for some non-OK statuses, e.g. UNAVAILABLE after a recorded failure).
  virtual void OnFinish(const absl::Status& status, const v1::TurnResult& result) = 0;
  /// Whether OnDelta is wanted (asks the backend to stream).
  virtual bool WantsDeltas() const { return false; }
};

struct TurnDeps {
  store::ContextStore* store = nullptr;
  backend::ModelRouter* router = nullptr;
  EventHub* hub = nullptr;
  HistoryCache* history = nullptr;
  Executor* executor = nullptr;  // runs turn work (commits block on fsync)
  /// Project limits, checked before every model call; null = unlimited (unit tests).
  auth::LimitEnforcer* limits = nullptr;
  int32_t default_max_steps = 8;
  /// Turn outcomes, rejections, latency and commit latency (null = not measured).
  metrics::AgentdMetrics* metrics = nullptr;
  /// The context window (tokens) of a configured model, 0 if unknown; null = always unknown.
  /// Used when an agent sets no ContextPolicy.max_context_tokens.
  std::function<int64_t(const std::string& model)> context_window;
  /// Server-side tools of MCP servers and HTTP endpoints ("mcp:...", "http:..."); null = none.
  tools::ToolGateway* tools = nullptr;
  /// This process's id among the replicas sharing the store (runtime/replicas.h); recorded with
  /// every running turn.
  std::string replica_id = "local";
  /// Wakes turns that wait (on_busy=ENQUEUE) for a turn running on another replica; null = such
  /// turns are rejected as busy instead.
  backend::TimerQueue* timers = nullptr;
};

/// How often a turn queued behind a turn of another replica looks at the session again.
inline constexpr absl::Duration kRemoteBusyPoll = absl::Milliseconds(100);

/// Context budget when neither the agent's policy nor the model's window gives one.
inline constexpr int64_t kDefaultContextTokens = 32768;
/// Tokens of a model's context window kept free for its answer: min(window / 4, this).
inline constexpr int64_t kAnswerReserveTokens = 4096;
/// max_validation_retries when the agent leaves it 0.
inline constexpr int32_t kDefaultValidationRetries = 2;

/// Request context: a Turn captures the thread's current request context (obs::CurrentRequest)
/// when it is created and installs it, with its session and turn ids, on every thread that drives
/// it, so that every log line of the turn carries the request and trace ids; model calls carry it
/// in ModelRequest::context.
class Turn : public std::enable_shared_from_this<Turn> {
 public:
  Turn(TurnDeps deps, std::string project_id, v1::RunTurnRequest request, std::string digest,
       absl::Time deadline, std::shared_ptr<TurnObserver> observer,
       std::function<void(Turn*)> on_finished);

  /// Runs the turn. Called once, by the SessionManager, when no other turn runs on the session.
  void Begin();
  /// Finishes a turn that never began (cancelled while queued, server draining).
  void FinishWithoutRunning(const absl::Status& status);
  /// Stops the turn: the model call is aborted and the turn is recorded as CANCELLED.
  void Cancel(const std::string& reason, absl::StatusCode code = absl::StatusCode::kOk);
  /// Calls `fn(status, result)` when the turn finishes (at once if it has).
  void AddFinishListener(std::function<void(const absl::Status&, const v1::TurnResult&)> fn);

  const std::string& project_id() const { return project_id_; }
  const v1::RunTurnRequest& request() const { return request_; }
  const std::string& digest() const { return digest_; }
  const std::string& turn_id() const { return turn_id_; }

 private:
  struct Outcome {
    v1::TurnStatus status = v1::TURN_STATUS_COMPLETED;
    absl::Status call_status;  // the RPC's status
    std::string error;
  };

  enum class CallKind { kStep, kSummary };

  // turn.cc: lifecycle and commits.
  /// Reads the session and builds the opening events. Runs again from scratch (everything it
  /// sets is reset first) when a turn retries after waiting for another replica's turn. Sets
  /// busy_elsewhere_ when another replica runs a turn on the session, replay_ when a shared
  /// store already holds this request's idempotency record.
  absl::Status Prepare();
  /// The session's stored running-turn fields: busy (another live replica; sets
  /// busy_elsewhere_), in flight (the same idempotency key: ABORTED), or a turn that cannot be
  /// running any more (recorded as failed, then the session is read again).
  absl::Status CheckClaim();
  /// on_busy=ENQUEUE behind another replica's turn: OK when it will look again after
  /// kRemoteBusyPoll; otherwise the status to finish with (no timers, deadline, cancelled).
  absl::Status WaitForRemoteTurn();
  /// Wakes a waiting turn (the timer, or Cancel) onto a worker.
  void ResumeWaiting();
  absl::Status BusyElsewhereError() const;
  /// The status of a turn cancelled before it ran (CANCELLED, or the canceller's code).
  absl::Status CancelledStatusLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// Tools, schemas, validation budget and context limits of agent_ (after model_ is known).
  absl::Status PrepareAgent();
  /// Replaces agent_'s "mcp:..." / "http:..." BUILTIN specs by the tools they stand for
  /// (turn-local), leaving out those the project may no longer use.
  void ExpandGatewayTools();
  /// Records the decisions of request_.approvals: rejected calls get an error result now,
  /// approved ones are kept in approved_calls_ to run before the first step.
  void ApplyApprovals(const v1::Session& s);
  /// Runs the approved calls and commits their results (first thing of Begin, on the worker);
  /// false when the commit failed and the turn was delivered.
  bool RunApprovedCalls();
  absl::Status LoadHistory(const std::string& key, int64_t last_seq);
  v1::Event& AddEvent(v1::EventType type);
  absl::Status Commit(bool final_write, const std::string& idempotency_key,
                      const storage::IdempotencyRecord* idem);
  /// Commits the step's events and tool-state writes; a write whose key changed meanwhile
  /// becomes an error result and the commit is retried without it.
  absl::Status CommitStep();
  void FinishTurn(Outcome outcome);
  void Fail(const absl::Status& status);
  void Deliver(const absl::Status& status, const v1::TurnResult& result);
  void SealPendingEvents();
  void OnDelta(absl::string_view text);
  void OnDeltaReset();
  void NotifyCommitted(const std::vector<v1::Event>& events);

  // turn_step.cc: the model/tool loop.
  void RunStep();
  /// Applies the context policy, then calls the model (possibly after a summarizer call).
  void PrepareContext();
  LogView Log() const;
  ContextPlan Plan() const;
  void CallModel();
  void StartSummary(const ContextPlan& plan);
  void StartCall(backend::ModelRequest request, CallKind kind);
  /// Common start of OnModelDone/OnSummaryDone: false if the turn was finished here.
  bool TakeResponse(absl::StatusOr<backend::ModelResponse>& response);
  void OnModelDone(absl::StatusOr<backend::ModelResponse> response);
  void OnSummaryDone(absl::StatusOr<backend::ModelResponse> response);
  v1::Usage RecordUsage(const backend::ModelResponse& r);
  void HandleToolCalls(const std::vector<v1::ToolCall>& calls);
  void HandleFinalAnswer(const std::string& text);
  /// Counts one invalid model answer; false (and the turn FAILED) when the budget is spent.
  bool SpendValidationRetry(const std::string& error);
  /// Runs a BUILTIN tool call (agentd's own or the gateway's) on this worker thread, within
  /// the turn's deadline.
  v1::ToolResult RunServerTool(const v1::ToolCall& call, const nlohmann::json& args);
  /// The error text for an invalid call, or empty if `call` may run (`*args` = its arguments).
  std::string CheckToolCall(const v1::ToolCall& call, nlohmann::json* args) const;

  const TurnDeps deps_;
  const std::string project_id_;
  const v1::RunTurnRequest request_;
  const std::string digest_;
  const absl::Time deadline_;
  const std::shared_ptr<TurnObserver> observer_;
  std::function<void(Turn*)> on_finished_;
  const std::string turn_id_;
  const std::shared_ptr<const obs::RequestContext> context_;  // null outside a request
  const std::chrono::steady_clock::time_point submitted_;

  // Owned by whichever thread drives the turn (one at a time; handed over via mu_).
  storage::SessionRecord record_;
  v1::Agent agent_;
  std::string model_;
  bool keep_encodings_ = false;  // model_ can reach a backend that sends kept encodings
  absl::flat_hash_map<std::string, v1::ToolSpec> tools_;
  absl::flat_hash_map<std::string, JsonSchema> arg_schemas_;  // by tool name
  // Gateway tools of this turn, by the name the model sees (tools_ holds their expanded specs).
  absl::flat_hash_map<std::string, tools::ToolBinding> gateway_tools_;
  // Names (as the model sees them) of tools whose calls wait for a ToolApproval.
  absl::flat_hash_set<std::string> approval_tools_;
  tools::ToolAllowList allowed_tools_;  // the project's, read when the turn starts
  std::vector<v1::ToolCall> approved_calls_;  // approved by this turn's request, not yet run
  std::optional<JsonSchema> output_schema_;
  std::vector<backend::ToolDefinition> tool_defs_;
  BuiltinToolRunner builtins_;
  ContextLimits context_limits_;  // halved once if the backend reports context_length_exceeded
  int32_t max_validation_retries_ = kDefaultValidationRetries;
  int32_t validation_failures_ = 0;
  bool compacted_this_step_ = false;
  bool overflow_retried_this_step_ = false;
  Compaction compaction_;          // of the summarizer call in flight
  int64_t max_summary_tokens_ = 0;  // of the summarizer call in flight
  int32_t model_calls_ = 0;         // started by this turn (summaries included)
  std::shared_ptr<SessionHistory> history_;  // the session's log (shared with the cache)
  size_t history_base_ = 0;                  // events in history_ from before this turn
  std::vector<v1::Event> turn_events_;  // this turn's events (committed or not)
  size_t committed_ = 0;                // how many of turn_events_ are durable
  int64_t next_seq_ = 0;
  int32_t steps_ = 0;
  int32_t max_steps_ = 8;
  v1::Usage usage_;
  // Usage of model calls not committed yet: goes into the next commit's batch.
  std::vector<store::UsageDelta> pending_usage_;
  v1::Usage pending_usage_total_;
  std::vector<v1::ToolCall> answered_calls_;  // pending calls this turn's results/approvals answer
  std::vector<v1::ToolCall> client_calls_;    // calls the client must run (REQUIRES_ACTION)
  std::string output_text_;
  bool began_ = false;
  bool outcome_recorded_ = false;  // the closing event is durable (counted as a finished turn)
  bool busy_elsewhere_ = false;    // Prepare found another replica's turn running
  std::optional<v1::TurnResult> replay_;  // Prepare found this request's stored result

  // Deltas that arrive before the opening events are durable wait here, so a stream always
  // starts with TURN_STARTED. Lock order: mu_ before delta_mu_.
  absl::Mutex delta_mu_ ABSL_ACQUIRED_AFTER(mu_);
  bool opening_durable_ ABSL_GUARDED_BY(delta_mu_) = false;
  std::vector<std::string> early_deltas_ ABSL_GUARDED_BY(delta_mu_);
  size_t opening_events_ = 0;  // TURN_STARTED + tool results + inputs

  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  std::string cancel_reason_ ABSL_GUARDED_BY(mu_);
  absl::StatusCode cancel_code_ ABSL_GUARDED_BY(mu_) = absl::StatusCode::kOk;
  int64_t call_in_flight_ ABSL_GUARDED_BY(mu_) = 0;  // model call running (0 none)
  std::shared_ptr<backend::ModelCall> call_ ABSL_GUARDED_BY(mu_);
  absl::Status start_commit_status_ ABSL_GUARDED_BY(mu_);
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;  // for another replica's turn (WaitForRemoteTurn)
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status final_status_ ABSL_GUARDED_BY(mu_);
  v1::TurnResult final_result_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void(const absl::Status&, const v1::TurnResult&)>> listeners_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace agentd::runtime
