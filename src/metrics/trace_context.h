// Request context for tracing and logs: the W3C trace context (https://www.w3.org/TR/trace-context/)
// of an RPC and its request id, and the thread-local "current context" that log lines read.
//
// Flow: the RPC layer (rpc::CallScope) builds one RequestContext per call from the client's
// `traceparent` metadata (or a new trace id when it is absent or invalid) and
// `x-agentd-request-id`, and installs it with a ContextScope while it runs handler code. A Turn
// captures the current context when it is created and re-installs it (plus its session and turn
// ids) on every thread that drives it; the model router does the same with the context carried
// in ModelRequest. The OpenAI backend sends `traceparent` with the same trace id and a new span id
// per HTTP attempt. The log formatters (log_format.h) add the current ids to every line.
//
// Threading: a ContextScope affects only its own thread and must be destroyed on it (RAII on the
// stack). The installed RequestContext must outlive the scope.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace agentd::obs {

/// A parsed `traceparent` header.
struct TraceParent {
  std::string trace_id;   // 32 lowercase hex, not all zero
  std::string parent_id;  // 16 lowercase hex, not all zero
  uint8_t flags = 0;      // bit 0: sampled
};

/// Parses a W3C `traceparent` value: `VV-TTTT…(32)-PPPP…(16)-FF`, lowercase hex. Version `ff`
/// is invalid; version 00 must be exactly 55 characters; a higher version may carry more
/// `-`-separated data after the flags (ignored). nullopt when invalid (the caller then starts a
/// new trace).
std::optional<TraceParent> ParseTraceparent(absl::string_view value);
/// `00-<trace_id>-<span_id>-<flags as 2 hex>`.
std::string FormatTraceparent(absl::string_view trace_id, absl::string_view span_id,
                              uint8_t flags);
/// A random trace id (32 lowercase hex, never all zero). Thread-safe.
std::string NewTraceId();
/// A random span id (16 lowercase hex, never all zero). Thread-safe.
std::string NewSpanId();

/// What log lines and outgoing calls need to know about the request being served. Immutable
/// once shared; create with std::make_shared (CurrentRequest() relies on shared_from_this).
struct RequestContext : std::enable_shared_from_this<RequestContext> {
  std::string request_id;      // x-agentd-request-id
  std::string trace_id;        // 32 lowercase hex
  std::string span_id;         // agentd's span for this request, 16 lowercase hex
  std::string parent_span_id;  // the caller's span (empty when agentd started the trace)
  uint8_t trace_flags = 0;     // the caller's flags (00 when agentd started the trace)
  std::string method;          // RPC short name, e.g. "RunTurn"
};

/// The context of the code running on this thread.
struct LogContext {
  const RequestContext* request = nullptr;
  absl::string_view session_id;  // set while a turn runs
  absl::string_view turn_id;
};

/// This thread's current context (all empty outside a request).
const LogContext& CurrentLogContext();
/// Shared ownership of the current request context (null outside a request, or when the
/// installed context is not owned by a shared_ptr).
std::shared_ptr<const RequestContext> CurrentRequest();

/// Installs a context on this thread until destroyed (then restores the previous one).
class ContextScope {
 public:
  explicit ContextScope(const RequestContext* request, absl::string_view session_id = {},
                        absl::string_view turn_id = {});
  ~ContextScope();
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  LogContext saved_;
};

}  // namespace agentd::obs
