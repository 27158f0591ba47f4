// A fake OpenAI-compatible HTTP server (POST /v1/chat/completions) for router tests and
// benchmarks. One libevent (evhttp) loop thread serves every connection; latency and slow drips
// are timers, so thousands of concurrent slow requests cost no threads and no blocking sleeps.
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json_fwd.hpp"

struct event;
struct event_base;
struct evhttp;
struct evhttp_connection;
struct evhttp_request;

namespace agentd::testing {

struct FakeToolCall {
  std::string id, name, arguments;
};

enum class FakeMode {
  kOk,  // 200 with a completion (JSON, or SSE when the request has "stream": true)
  kStatus500,
  kStatus502,
  kStatus503,             // error status with an OpenAI-shaped error JSON body
  k429RateLimit,          // 429, error.code "rate_limit_exceeded", Retry-After if retry_after_s > 0
  k429InsufficientQuota,  // 429, error.code and error.type "insufficient_quota"
  k400ContextLength,      // 400, error.code "context_length_exceeded"
  k400Other,              // 400, error.code "invalid_request_error"
  k401,                   // 401, error.code "invalid_api_key"
  kResetBeforeHeaders,    // close the connection (FIN) without sending anything, after latency_ms
  kCutMidStream,   // streaming: half the content deltas then close (no finish_reason, no [DONE]);
                   // non-streaming: Content-Length larger than the body sent, then close
  kMalformedJson,  // 200 with a body that is not JSON (streaming: one data: line that is not JSON)
  kEmptyChoices,   // 200 with "choices": [] (streaming: chunks with empty choices, then [DONE])
};

/// One scripted reply. Error modes answer with JSON even when the request asked for a stream.
struct FakeReply {
  FakeMode mode = FakeMode::kOk;
  /// Assistant content. With tool calls, set text = "" to get "content": null (tool calls only).
  std::string text = "Hello from the fake model.";
  std::vector<FakeToolCall> tool_calls;  // parallel if several; finish_reason "tool_calls"
  int latency_ms = 0;                    // wait before sending headers
  int retry_after_s = 0;
  int drip_interval_ms = 0;  // streaming: delay between chunks (slow drip)
  int chunk_chars = 4;       // streaming: characters (UTF-8 code points) of text per delta
  int prompt_tokens = 11;
  int completion_tokens = 7;
};

/// Where the server listens. The default (127.0.0.1, a free port) is what tests want.
struct FakeOpenAiOptions {
  int port = 0;             // 0 = pick a free port
  bool reuse_port = false;  // SO_REUSEPORT: several servers (loop threads) share one port
  /// Read requests with ScanChatRequest (fake_openai_scan.h) instead of parsing them: the reply
  /// function sees only model, stream options and the last message's role, and a body that is
  /// not JSON is not detected. For benchmarks; tests leave it off.
  bool scan_only = false;
};

/// Picks the reply for a request when no scripted reply is queued (instead of the default).
/// Called on the server's loop thread with the parsed request body (a JSON object).
using FakeReplyFn = std::function<FakeReply(const nlohmann::json& request)>;

/// Threading: all public methods are thread-safe. HTTP work happens on one internal loop thread.
/// Requests: POST /v1/chat/completions takes the next scripted reply (FIFO, else the default).
/// Other paths get 404, other methods 405, a body that is not JSON 400; none of those consume a
/// scripted reply (the non-JSON body is still recorded and counted).
/// Capacity: each open request is one fd here (and one in the client): 10,000 concurrent requests
/// with the client in the same process need RLIMIT_NOFILE above ~20,000. A reset or cut on a
/// connection curl reused can make curl retry once on a fresh one (consuming another reply).
class FakeOpenAiServer {
 public:
  /// Binds 127.0.0.1:0 (listen backlog up to net.core.somaxconn) and starts the loop thread. Throws
  /// std::runtime_error if the socket or libevent setup fails.
  FakeOpenAiServer() : FakeOpenAiServer(FakeOpenAiOptions{}) {}
  /// Binds 127.0.0.1:`options.port`; throws std::runtime_error if it cannot.
  explicit FakeOpenAiServer(const FakeOpenAiOptions& options);
  /// Stops the loop, drops pending replies, closes every connection, joins the thread.
  ~FakeOpenAiServer();
  FakeOpenAiServer(const FakeOpenAiServer&) = delete;
  FakeOpenAiServer& operator=(const FakeOpenAiServer&) = delete;

  int port() const { return port_; }
  /// "http://127.0.0.1:PORT/v1".
  std::string base_url() const;

  /// Appends a scripted reply; replies are served FIFO, one per chat-completions request.
  void Push(FakeReply reply);
  /// Served when the queue is empty.
  void SetDefault(FakeReply reply);
  /// When set, chooses the reply when the queue is empty (SetDefault's reply is then unused).
  void SetReplyFn(FakeReplyFn fn);

  /// Raw bodies of POST /v1/chat/completions, in arrival order (empty if recording is off).
  std::vector<std::string> request_bodies() const;
  /// Request headers with lower-cased names, in arrival order (empty if recording is off).
  std::vector<std::map<std::string, std::string>> request_headers() const;
  /// Chat-completions requests received (counted even when recording is off).
  int request_count() const;
  /// Chat-completions requests currently open (received, reply not finished).
  int in_flight() const;
  /// The most chat-completions requests open at the same time.
  int max_in_flight() const;
  /// Benchmarks turn recording of bodies and headers off; counters keep running.
  void set_record_requests(bool on);

  /// Streamed replies that have sent their first content delta, and when the latest of them
  /// handed that chunk to its connection (steady clock, taken just before; the loop writes it to
  /// the socket on its next turn). Counted even when recording is off. For latency benchmarks.
  struct FirstContent {
    int count = 0;
    std::chrono::steady_clock::time_point at{};
  };
  FirstContent first_content() const;

 private:
  struct Call;

  // Loop-thread only.
  static void OnRequest(evhttp_request* req, void* arg);
  static void OnTimer(int fd, short what, void* arg);
  static void OnStop(int fd, short what, void* arg);
  static void OnFlushed(evhttp_connection* conn, void* arg);
  void HandleChat(evhttp_request* req);
  void Step(Call* call);
  void SendNonStreaming(Call* call);
  void StartStream(Call* call);
  void SendNextStreamChunks(Call* call);
  void CloseConnection(Call* call);
  void Finish(Call* call);
  void Arm(Call* call, int delay_ms);

  event_base* base_ = nullptr;
  evhttp* http_ = nullptr;
  event* stop_ev_ = nullptr;
  int port_ = 0;
  const bool scan_only_ = false;
  std::thread loop_;
  long next_id_ = 0;                                             // loop thread only
  std::unordered_map<Call*, std::unique_ptr<Call>> live_calls_;  // loop thread only

  mutable absl::Mutex mu_;
  std::deque<FakeReply> queue_ ABSL_GUARDED_BY(mu_);
  FakeReply default_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const FakeReplyFn> reply_fn_ ABSL_GUARDED_BY(mu_);
  bool record_ ABSL_GUARDED_BY(mu_) = true;
  std::vector<std::string> bodies_ ABSL_GUARDED_BY(mu_);
  std::vector<std::map<std::string, std::string>> headers_ ABSL_GUARDED_BY(mu_);
  int count_ ABSL_GUARDED_BY(mu_) = 0;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int max_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  FirstContent first_content_ ABSL_GUARDED_BY(mu_);
};

}  // namespace agentd::testing
