// HttpServer: a small HTTP/1.1 server on libevent's evhttp, with one loop thread of its own.
// agentd serves its Prometheus endpoint with it today; the OpenAI-compatible door (many
// concurrent SSE streams) is meant to use it too, which is why replies may be sent later and from
// any thread, and why a response may be streamed in chunks.
//
// Threading: routes are fixed at Start. Handlers run on the loop thread and must not block (a
// scrape renders in microseconds; slow work belongs elsewhere, replying through the Exchange).
// Exchange methods are thread-safe: called off the loop thread they are queued to it.
// Shutdown() stops accepting, drops open connections (pending exchanges are abandoned: their
// later replies are ignored) and joins the thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

struct evhttp_request;

namespace agentd::http {

class HttpServer;

using Headers = std::vector<std::pair<std::string, std::string>>;

/// One request and its response. Handlers answer at once or keep the shared_ptr and answer later
/// (from any thread). Exactly one of Respond() or StartStream() … End() should be called; an
/// exchange dropped without an answer gets 500 when its last reference goes.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  /// An exchange dropped without an answer gets 500 (or, mid-stream, its end).
  ~Exchange();
  const std::string& method() const { return method_; }  // "GET", "POST", …
  const std::string& path() const { return path_; }      // without the query string
  const std::string& query() const { return query_; }    // raw, without '?'
  const std::string& body() const { return body_; }
  /// A request header by case-insensitive name ("" if absent).
  std::string header(const std::string& name) const;
  /// The connection's remote address, "host:port" ("" if unknown).
  const std::string& peer() const { return peer_; }

  /// Sends a complete response. Only the first answer of an exchange counts.
  void Respond(int status, const std::string& content_type, std::string body,
               Headers extra = {});
  /// Starts a chunked response (e.g. text/event-stream); then Write() chunks and End().
  void StartStream(int status, const std::string& content_type, Headers extra = {});
  void Write(std::string chunk);
  void End();
  /// True once a write found the client gone (later writes are dropped), or the client
  /// disconnected while a hook from OnClientGone was set.
  bool closed() const;
  /// Calls `fn` once, on the loop thread (it must not block), if the client disconnects before
  /// the exchange is finished (e.g. a stream's reader goes away between chunks). Set it once,
  /// before finishing; it is dropped when the exchange finishes.
  void OnClientGone(std::function<void()> fn);

 private:
  friend class HttpServer;
  struct Loop;
  Exchange() = default;
  /// Runs `fn` on the loop thread (inline when already there); dropped after shutdown.
  void OnLoop(std::function<void(Loop*)> fn);

  std::weak_ptr<Loop> loop_;
  evhttp_request* req_ = nullptr;  // touched on the loop thread only, while it is pending there
  std::string method_, path_, query_, body_, peer_;
  std::map<std::string, std::string> headers_;  // lower-case names
  mutable absl::Mutex mu_;
  bool answered_ ABSL_GUARDED_BY(mu_) = false;   // Respond or StartStream called
  bool finished_ ABSL_GUARDED_BY(mu_) = false;   // Respond or End called
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> on_gone_ ABSL_GUARDED_BY(mu_);
};

using Handler = std::function<void(std::shared_ptr<Exchange>)>;

struct Route {
  std::string method;  // exact, e.g. "GET"
  std::string path;    // exact, e.g. "/metrics"; with `prefix`, every path starting with it
  Handler handler;
  /// Match every path that starts with `path` (e.g. "/v1/": the handler routes further itself).
  /// Exact routes are preferred over prefix routes.
  bool prefix = false;
};

struct HttpServerOptions {
  int idle_timeout_s = 60;                     // per connection, read/write inactivity
  size_t max_body_bytes = 4 * 1024 * 1024;     // larger bodies get 413
  size_t max_headers_bytes = 64 * 1024;
  /// The server's own 404 and 405 answers for a status and a message (unset: plain text), so an
  /// API keeps its error shape (and headers) on unknown routes.
  struct ErrorAnswer {
    std::string content_type;
    std::string body;
    Headers headers;
  };
  std::function<ErrorAnswer(int status, const std::string& message)> error_body;
};

class HttpServer {
 public:
  /// Binds `listen` (HOST:PORT or [V6]:PORT; port 0 = any free port) and starts the loop thread.
  /// Unknown paths get 404; a known path with another method gets 405 with `Allow`.
  /// INVALID_ARGUMENT for a malformed address, UNAVAILABLE when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& listen,
                                                           std::vector<Route> routes,
                                                           HttpServerOptions options = {});
  /// Shutdown().
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  int port() const { return port_; }
  /// HOST:PORT actually bound (the port resolved when 0 was asked).
  std::string address() const;
  /// Stops serving and joins the loop thread. Idempotent; thread-safe; not from a handler.
  void Shutdown();

 private:
  HttpServer() = default;
  static void OnRequest(evhttp_request* req, void* arg);
  void Dispatch(evhttp_request* req);

  std::string host_;
  int port_ = 0;
  std::vector<Route> routes_;
  HttpServerOptions options_;
  std::shared_ptr<Exchange::Loop> loop_;  // exchanges hold it weakly
};

/// Splits HOST:PORT / [V6]:PORT; false when malformed (port must be 0..65535).
bool SplitHostPort(const std::string& listen, std::string* host, int* port);

}  // namespace agentd::http
