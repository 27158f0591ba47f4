// agentd C++ SDK: a client for agentd's gRPC API (library target `agentd_client`).
//
//   auto client = agentd::Client::Create({.address = "127.0.0.1:7700", .api_key = key});
//   agentd::ToolRegistry tools;
//   tools.Add("get_weather", [](const std::string& args) -> absl::StatusOr<std::string> {
//     return std::string("sunny");
//   }, "Weather for a city", R"({"type":"object","properties":{"city":{"type":"string"}}})");
//   auto agent = (*client)->CreateAgent("weather", "echo", "Answer briefly.", tools);
//   auto session = (*client)->CreateSession(agent->agent_id());
//   auto result = session->Run("weather in Paris?", tools);   // loops through REQUIRES_ACTION
//
// Errors are absl::Status values carrying the server's gRPC status code and message. Calls are
// retried on UNAVAILABLE with backoff; turns are retried with the same idempotency key, so a
// retried turn never runs twice. Every session-scoped call carries `x-agentd-session`.
//
// Thread safety: Client and Session are safe to share between threads (each call makes its own
// gRPC context); a TurnStream is used by one thread at a time. A Session keeps the client's
// connection alive on its own, so it may outlive the Client it came from.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agentd/v1/agent.pb.h"
#include "agentd/v1/common.pb.h"
#include "agentd/v1/memory.pb.h"
#include "agentd/v1/project.pb.h"
#include "agentd/v1/session.pb.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace agentd {

namespace internal {
class Core;  // the shared connection: channel, stubs, options
class TurnLoop;
}  // namespace internal

struct ClientOptions {
  /// HOST:PORT. Empty: $AGENTD_ADDR, else 127.0.0.1:7700.
  std::string address;
  /// Sent as `authorization: Bearer ...`. Empty: $AGENTD_API_KEY (none if unset).
  std::string api_key;
  /// TLS: connect with TLS when `tls` is true or any PEM file is named. `tls_ca_file` verifies the
  /// server (empty: system roots); `tls_cert_file` + `tls_key_file` present a client certificate.
  bool tls = false;
  std::string tls_ca_file;
  std::string tls_cert_file;
  std::string tls_key_file;
  /// Deadline of each RPC (a turn's whole loop gets `turn_deadline` per RunTurn call).
  absl::Duration deadline = absl::Seconds(30);
  absl::Duration turn_deadline = absl::Minutes(10);
  /// Attempts per call on UNAVAILABLE (1 = no retry), with exponential backoff and jitter.
  int max_attempts = 4;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(5);
  /// Use this channel instead of dialing `address` (tests, custom channel arguments). The
  /// api_key is still added to every call.
  std::shared_ptr<grpc::Channel> channel;
};

/// What a client-side tool does with the model's arguments (a JSON object as text). The returned
/// string is the tool result sent back to the model; an error status is sent as an error result
/// (`is_error`) with the status message, and the loop goes on.
using ToolHandler = std::function<absl::StatusOr<std::string>(const std::string& arguments_json)>;

/// Client-side tools by name: their specs (for CreateAgent) and their handlers (for Run).
class ToolRegistry {
 public:
  /// Registers (or replaces) `name`. `parameters_json_schema` empty = `{"type":"object"}`.
  ToolRegistry& Add(const std::string& name, ToolHandler handler, std::string description = "",
                    std::string parameters_json_schema = "");
  /// The handler for `name`, or nullptr.
  const ToolHandler* Find(const std::string& name) const;
  /// ToolSpecs of kind CLIENT, in name order.
  std::vector<v1::ToolSpec> Specs() const;
  bool empty() const { return tools_.empty(); }
  size_t size() const { return tools_.size(); }

 private:
  struct Entry {
    ToolHandler handler;
    v1::ToolSpec spec;
  };
  std::map<std::string, Entry> tools_;
};

struct RunOptions {
  /// Sent on the first RunTurn of the call; empty: the SDK generates one (each follow-up
  /// tool-result turn gets its own key derived from it). Retries always reuse the key.
  std::string idempotency_key;
  v1::BusyPolicy on_busy = v1::BUSY_POLICY_UNSPECIFIED;
  std::string model_override;
  /// 0 = ClientOptions::turn_deadline. Applies to each RunTurn call of the loop.
  absl::Duration deadline = absl::ZeroDuration();
  /// Tool rounds Run() may answer before it stops and returns the REQUIRES_ACTION result.
  int max_tool_rounds = 16;
};

/// The outcome of Run()/Stream(): the last turn's status and text, and the totals of every turn
/// the loop made.
struct TurnResult {
  v1::TurnStatus status = v1::TURN_STATUS_UNSPECIFIED;
  std::string output_text;
  /// Non-empty when the loop stopped at REQUIRES_ACTION (a tool with no handler, or
  /// max_tool_rounds reached): the calls still waiting for results.
  std::vector<v1::ToolCall> required_tool_calls;
  std::string error;  // the server's message for FAILED / CANCELLED turns
  v1::Usage usage;    // summed over the loop's turns
  int64_t last_seq = 0;
  int turns = 0;  // RunTurn/StreamTurn calls made
  /// Every event the loop's turns appended, in order.
  std::vector<v1::Event> events;
  /// The last turn's result as the server sent it.
  v1::TurnResult last;
};

/// Per-event callback of Session::Stream. Deltas (`TurnEvent.delta`), durable events
/// (`TurnEvent.event`) and each turn's `TurnEvent.result` arrive in order.
using TurnEventCallback = std::function<void(const v1::TurnEvent&)>;

/// Iterator over the events of a streamed run, across tool rounds:
///   auto stream = session.StartStream("hi", tools);
///   v1::TurnEvent ev;
///   while (stream->Next(&ev)) { ... }
///   absl::StatusOr<TurnResult> result = stream->Finish();
class TurnStream {
 public:
  ~TurnStream();
  TurnStream(const TurnStream&) = delete;
  TurnStream& operator=(const TurnStream&) = delete;

  /// The next event; false when the run is over (then call Finish()).
  bool Next(v1::TurnEvent* event);
  /// The run's outcome (or the error that ended it). Cancels the stream if it is not over.
  absl::StatusOr<TurnResult> Finish();

 private:
  friend class Session;
  explicit TurnStream(std::unique_ptr<internal::TurnLoop> loop);
  std::unique_ptr<internal::TurnLoop> loop_;
};

/// A handle on one session. Cheap to copy.
class Session {
 public:
  const std::string& id() const { return id_; }

  /// Runs a user turn; while the turn requires action and every call has a handler in `tools`,
  /// runs the handlers and submits their results as the next turn.
  absl::StatusOr<TurnResult> Run(const std::string& text, const ToolRegistry& tools = {},
                                 const RunOptions& options = {});
  /// Like Run(), streaming every event to `on_event` as it arrives.
  absl::StatusOr<TurnResult> Stream(const std::string& text, const ToolRegistry& tools,
                                    const TurnEventCallback& on_event,
                                    const RunOptions& options = {});
  /// Like Stream(), as an iterator. `tools` must outlive the stream.
  std::unique_ptr<TurnStream> StartStream(const std::string& text, const ToolRegistry& tools = {},
                                          const RunOptions& options = {});
  /// Answers pending tool calls by hand (one RunTurn with tool_results, no loop).
  absl::StatusOr<v1::TurnResult> SubmitToolResults(const std::vector<v1::ToolResult>& results,
                                                   const RunOptions& options = {});
  /// Answers pending calls by hand: client tools with `results`, and calls with
  /// requires_approval (Run/Stream stop at them) with `approvals` (approved: agentd runs the
  /// tool; rejected: the model is told). One RunTurn, no loop.
  absl::StatusOr<v1::TurnResult> Submit(const std::vector<v1::ToolResult>& results,
                                        const std::vector<v1::ToolApproval>& approvals,
                                        const RunOptions& options = {});
  /// Cancels the running turn.
  absl::StatusOr<v1::TurnResult> Cancel();

  absl::StatusOr<v1::Session> Get() const;
  absl::Status Delete();
  /// Events with seq > after_seq, in order, following pages: at most `limit` of them
  /// (0 = all there are).
  absl::StatusOr<std::vector<v1::Event>> Events(int64_t after_seq = 0, int limit = 0) const;
  /// WatchEvents from `after_seq`: calls `on_event` for each event until it returns false, the
  /// stream ends, or `timeout` (zero = none) passes (then OK).
  absl::Status Watch(int64_t after_seq, const std::function<bool(const v1::Event&)>& on_event,
                     absl::Duration timeout = absl::ZeroDuration()) const;
  /// Forks at `at_seq` (0 = the end) into a new session (`new_session_id` empty = generated).
  absl::StatusOr<Session> Fork(int64_t at_seq = 0, const std::string& new_session_id = "") const;
  /// ReplaySession: re-runs this session's user inputs with `model` in a new session (forked
  /// before the first event; `new_session_id` empty = generated), answering client tool calls
  /// from the recorded results. Not retried (each attempt would make a new session).
  absl::StatusOr<v1::ReplaySessionResponse> Replay(const std::string& model,
                                                   const std::string& new_session_id = "") const;

  absl::StatusOr<v1::StateEntry> GetState(const std::string& key) const;
  /// `expected_version` 0 = unconditional; otherwise a compare-and-set.
  absl::StatusOr<v1::StateEntry> PutState(const std::string& key, const std::string& value_json,
                                          int64_t expected_version = 0);
  absl::StatusOr<std::vector<v1::StateEntry>> ListState() const;

 private:
  friend class Client;
  Session(std::shared_ptr<internal::Core> core, std::string id)
      : core_(std::move(core)), id_(std::move(id)) {}
  std::shared_ptr<internal::Core> core_;
  std::string id_;
};

struct SessionOptions {
  std::string session_id;  // empty: generated by the server
  int64_t agent_version = 0;  // 0 = latest
  int64_t ttl_seconds = 0;    // 0 = none
  std::map<std::string, std::string> metadata;
};

class Client {
 public:
  /// Resolves the options (environment defaults), reads TLS files and builds the channel.
  /// Does not connect: the first call does.
  static absl::StatusOr<std::unique_ptr<Client>> Create(ClientOptions options = {});
  ~Client();

  // Agents.
  absl::StatusOr<v1::Agent> CreateAgent(const v1::Agent& agent);
  /// An agent whose tools are `tools`' CLIENT specs.
  absl::StatusOr<v1::Agent> CreateAgent(const std::string& name, const std::string& model,
                                        const std::string& instructions,
                                        const ToolRegistry& tools = {});
  absl::StatusOr<v1::Agent> GetAgent(const std::string& agent_id, int32_t version = 0) const;
  /// All agents (follows pages).
  absl::StatusOr<std::vector<v1::Agent>> ListAgents() const;
  /// Creates a new version; `agent.agent_id` names the agent.
  absl::StatusOr<v1::Agent> UpdateAgent(const v1::Agent& agent);
  absl::Status DeleteAgent(const std::string& agent_id);

  // Sessions.
  absl::StatusOr<Session> CreateSession(const std::string& agent_id,
                                        const SessionOptions& options = {});
  /// A handle on an existing session, checked with GetSession.
  absl::StatusOr<Session> GetSession(const std::string& session_id) const;
  /// A handle without any call (for a session known to exist).
  Session OpenSession(const std::string& session_id) const;
  /// Sessions, optionally of one agent and/or in one status (follows pages).
  absl::StatusOr<std::vector<v1::Session>> ListSessions(
      const std::string& agent_id = "",
      v1::SessionStatus status = v1::SESSION_STATUS_UNSPECIFIED) const;

  // Long-term memory.
  absl::StatusOr<v1::MemoryRecord> PutMemory(const v1::PutMemoryRequest& request);
  /// Best matches of `query` among records whose namespace starts with `namespace_prefix`.
  absl::StatusOr<std::vector<v1::ScoredMemory>> SearchMemory(const std::string& namespace_prefix,
                                                             const std::string& query,
                                                             int top_k = 5) const;
  absl::StatusOr<v1::MemoryRecord> GetMemory(const std::string& ns, const std::string& key) const;
  absl::Status DeleteMemory(const std::string& ns, const std::string& key);

  // Projects (usage of the key's own project unless `project_id` is given).
  absl::StatusOr<v1::GetUsageResponse> GetUsage(const v1::GetUsageRequest& request) const;

 private:
  explicit Client(std::shared_ptr<internal::Core> core) : core_(std::move(core)) {}
  std::shared_ptr<internal::Core> core_;
};

/// A fresh random idempotency key ("idem_" + 32 hex digits).
std::string NewIdempotencyKey();

}  // namespace agentd
