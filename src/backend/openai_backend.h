// An InferenceBackend for OpenAI-compatible `POST <base_url>/chat/completions` endpoints (vLLM,
// llama.cpp server, Ollama, OpenAI, Bedrock's OpenAI-compatible endpoint).
//
// I/O model: one thread per backend instance drives every transfer through libcurl's multi
// interface (curl_multi_poll; curl_multi_wakeup picks up new calls and cancellations), so
// thousands of calls waiting on a slow model cost a socket each, not a thread. Connections are
// kept alive and reused across calls (HTTP/2 multiplexing where the server offers it over TLS).
//
// Callbacks: `on_delta` and `on_done` run on the I/O thread (or, for calls that fail before any
// I/O, e.g. a deadline already past, inline in Start()). They must be quick and must not block on
// other calls of this backend, and must not destroy the backend. Failure codes (the router
// classifies them): UNAVAILABLE = retryable (5xx, 429, connection errors, cut or malformed
// streams); RESOURCE_EXHAUSTED = quota; FAILED_PRECONDITION = context too long;
// INVALID_ARGUMENT / PERMISSION_DENIED = other 4xx; DEADLINE_EXCEEDED; CANCELLED. The API key
// never appears in a status message.
// Tracing: a request with a context (ModelRequest::context) is sent with a `traceparent` header
// carrying its trace id and a new span id per HTTP request.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "backend/inference_backend.h"

struct curl_slist;

namespace agentd::backend {

struct OpenAiBackendOptions {
  std::string name;      // reported as ModelResponse::served_by and in error messages
  std::string base_url;  // e.g. http://host:8000/v1 (a trailing slash is tolerated)
  std::string api_key;   // resolved value, may be empty (then no Authorization header)
  absl::Duration timeout = absl::Seconds(60);  // per call; the request's deadline may be sooner
  std::map<std::string, std::string> headers;  // extra headers, already resolved
  bool tls_verify = true;
};

class OpenAiBackend final : public InferenceBackend {
 public:
  /// Starts the I/O thread. Never touches the network.
  explicit OpenAiBackend(OpenAiBackendOptions options);
  /// Cancels every call in flight (each gets on_done(CANCELLED) exactly once, on the I/O
  /// thread) and joins the thread. Must not run on the I/O thread (i.e. inside a callback).
  ~OpenAiBackend() override;
  OpenAiBackend(const OpenAiBackend&) = delete;
  OpenAiBackend& operator=(const OpenAiBackend&) = delete;

  /// Thread-safe; never blocks on the network. The returned handle's Cancel() is thread-safe,
  /// may race with completion, and is a no-op after on_done (even after the backend is gone).
  std::shared_ptr<ModelCall> Start(const ModelRequest& request, ModelCallbacks callbacks) override;
  bool UsesEncodedMessages() const override { return true; }

  const OpenAiBackendOptions& options() const { return options_; }

 private:
  class Call;
  class Loop;

  const OpenAiBackendOptions options_;
  std::string url_;
  curl_slist* headers_ = nullptr;  // shared, read-only, by every transfer
  bool static_traceparent_ = false;  // a configured `traceparent` header replaces the per-call one
  /// kIoLoops event loops, each its own thread, curl multi handle and connection cache; a call
  /// goes to the least busy. More than one because curl looks for a reusable connection by
  /// walking every connection its multi handle holds to the host: with thousands of calls in
  /// flight on one loop that walk was the I/O thread's main cost (bench/concurrency_bench).
  static constexpr int kIoLoops = 2;
  std::vector<std::unique_ptr<Loop>> loops_;  // last: destroyed first, completing every call
};

// RetryAfter() and HttpStatus() read this backend's failure payloads: see inference_backend.h.

}  // namespace agentd::backend
