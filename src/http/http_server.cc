#include "http/http_server.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>

#include <atomic>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/thread_name.h"

namespace agentd::http {

// The loop thread and what only it touches. Shared with the exchanges (weakly), so an exchange
// answered after the server is gone finds it stopped instead of a dangling pointer.
struct Exchange::Loop {
  event_base* base = nullptr;
  evhttp* http = nullptr;
  event* wake = nullptr;
  std::thread thread;
  std::atomic<std::thread::id> thread_id{};
  // Requests handed to an Exchange and not yet answered. An exchange touches its request only
  // while it is in here: libevent frees answered requests itself, and frees attached pending
  // ones when the server shuts down.
  std::unordered_set<evhttp_request*> pending;
  // Connections whose exchange asked to hear of a disconnect (OnClientGone), loop thread only.
  std::unordered_map<evhttp_connection*, std::weak_ptr<Exchange>> close_hooks;

  absl::Mutex mu;
  std::deque<std::function<void()>> tasks ABSL_GUARDED_BY(mu);
  bool stopping ABSL_GUARDED_BY(mu) = false;
  bool stopped ABSL_GUARDED_BY(mu) = false;

  bool OnLoopThread() const { return std::this_thread::get_id() == thread_id.load(); }

  /// evhttp close callback of a hooked connection: tells its exchange the client is gone.
  static void OnConnectionClosed(evhttp_connection* conn, void* arg) {
    auto* loop = static_cast<Loop*>(arg);
    auto it = loop->close_hooks.find(conn);
    if (it == loop->close_hooks.end()) return;
    std::shared_ptr<Exchange> ex = it->second.lock();
    loop->close_hooks.erase(it);
    if (ex == nullptr) return;
    std::function<void()> fn;
    {
      absl::MutexLock lock(&ex->mu_);
      if (ex->finished_) return;
      ex->closed_ = true;
      fn.swap(ex->on_gone_);
    }
    if (fn) fn();
  }

  /// Drops the close hook of `req`'s connection (the exchange is finishing).
  void Unhook(evhttp_request* req) {
    evhttp_connection* conn = evhttp_request_get_connection(req);
    if (conn != nullptr && close_hooks.erase(conn) > 0) {
      evhttp_connection_set_closecb(conn, nullptr, nullptr);
    }
  }

  /// Queues `fn` for the loop thread; false once stopping.
  bool Post(std::function<void()> fn) {
    {
      absl::MutexLock lock(&mu);
      if (stopping) return false;
      tasks.push_back(std::move(fn));
    }
    event_active(wake, EV_READ, 0);  // thread-safe with evthread_use_pthreads
    return true;
  }

  static void OnWake(evutil_socket_t, short, void* arg) {
    auto* loop = static_cast<Loop*>(arg);
    std::deque<std::function<void()>> run;
    bool stop;
    {
      absl::MutexLock lock(&loop->mu);
      run.swap(loop->tasks);
      stop = loop->stopping;
    }
    if (stop) {
      event_base_loopbreak(loop->base);
      return;  // `run` is dropped: nothing is sent once shutdown has begun
    }
    for (auto& fn : run) fn();
  }
};

namespace {

const char* MethodName(evhttp_cmd_type cmd) {
  switch (cmd) {
    case EVHTTP_REQ_GET:
      return "GET";
    case EVHTTP_REQ_POST:
      return "POST";
    case EVHTTP_REQ_HEAD:
      return "HEAD";
    case EVHTTP_REQ_PUT:
      return "PUT";
    case EVHTTP_REQ_DELETE:
      return "DELETE";
    case EVHTTP_REQ_OPTIONS:
      return "OPTIONS";
    case EVHTTP_REQ_TRACE:
      return "TRACE";
    case EVHTTP_REQ_CONNECT:
      return "CONNECT";
    case EVHTTP_REQ_PATCH:
      return "PATCH";
  }
  return "UNKNOWN";
}

bool Attached(evhttp_request* req) { return evhttp_request_get_connection(req) != nullptr; }

void AddHeaders(evhttp_request* req, const std::string& content_type, const Headers& extra) {
  evkeyvalq* out = evhttp_request_get_output_headers(req);
  if (!content_type.empty()) evhttp_add_header(out, "Content-Type", content_type.c_str());
  for (const auto& [name, value] : extra) evhttp_add_header(out, name.c_str(), value.c_str());
}

void SendBody(evhttp_request* req, int status, const std::string& content_type,
              const std::string& body, const Headers& extra) {
  AddHeaders(req, content_type, extra);
  evbuffer* buf = evbuffer_new();
  evbuffer_add(buf, body.data(), body.size());
  evhttp_send_reply(req, status, nullptr, buf);
  evbuffer_free(buf);
}

void SendSimple(evhttp_request* req, int status, const std::string& body, const Headers& extra) {
  SendBody(req, status, "text/plain; charset=utf-8", body, extra);
}

}  // namespace

// ---- Exchange ---------------------------------------------------------------------------------

Exchange::~Exchange() {
  bool answered, finished;
  {
    absl::MutexLock lock(&mu_);
    answered = answered_;
    finished = finished_;
  }
  if (finished) return;
  // Dropped without an answer: the client must not hang until its timeout.
  std::shared_ptr<Loop> loop = loop_.lock();
  if (loop == nullptr) return;
  evhttp_request* req = req_;
  auto finish = [loop = loop.get(), req, answered] {
    if (loop->pending.erase(req) == 0) return;
    loop->Unhook(req);
    if (!Attached(req)) {
      evhttp_request_free(req);  // detached: ours to free
    } else if (answered) {
      evhttp_send_reply_end(req);
    } else {
      SendSimple(req, 500, "handler dropped the request\n", {});
    }
  };
  if (loop->OnLoopThread()) {
    finish();
  } else {
    loop->Post(finish);  // runs while the loop (and so `loop`) is alive, or never
  }
}

std::string Exchange::header(const std::string& name) const {
  auto it = headers_.find(absl::AsciiStrToLower(name));
  return it == headers_.end() ? "" : it->second;
}

bool Exchange::closed() const {
  absl::MutexLock lock(&mu_);
  return closed_;
}

void Exchange::OnLoop(std::function<void(Loop*)> fn) {
  std::shared_ptr<Loop> loop = loop_.lock();
  if (loop == nullptr) return;
  if (loop->OnLoopThread()) {
    fn(loop.get());
    return;
  }
  auto self = shared_from_this();
  loop->Post([self, fn = std::move(fn), raw = loop.get()] { fn(raw); });
}

void Exchange::OnClientGone(std::function<void()> fn) {
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return;
    on_gone_ = std::move(fn);
  }
  OnLoop([this](Loop* loop) {
    if (loop->pending.count(req_) == 0) return;
    evhttp_connection* conn = evhttp_request_get_connection(req_);
    if (conn == nullptr) {  // already gone
      std::function<void()> gone;
      {
        absl::MutexLock lock(&mu_);
        if (finished_) return;
        closed_ = true;
        gone.swap(on_gone_);
      }
      if (gone) gone();
      return;
    }
    loop->close_hooks[conn] = weak_from_this();
    evhttp_connection_set_closecb(conn, &Loop::OnConnectionClosed, loop);
  });
}

void Exchange::Respond(int status, const std::string& content_type, std::string body,
                       Headers extra) {
  {
    absl::MutexLock lock(&mu_);
    if (answered_) return;
    answered_ = finished_ = true;
  }
  OnLoop([this, status, content_type, body = std::move(body),
          extra = std::move(extra)](Loop* loop) {
    if (loop->pending.erase(req_) == 0) return;
    loop->Unhook(req_);
    if (!Attached(req_)) {
      evhttp_request_free(req_);
      absl::MutexLock lock(&mu_);
      closed_ = true;
      return;
    }
    AddHeaders(req_, content_type, extra);
    evbuffer* buf = evbuffer_new();
    evbuffer_add(buf, body.data(), body.size());
    evhttp_send_reply(req_, status, nullptr, buf);
    evbuffer_free(buf);
  });
}

void Exchange::StartStream(int status, const std::string& content_type, Headers extra) {
  {
    absl::MutexLock lock(&mu_);
    if (answered_) return;
    answered_ = true;
  }
  OnLoop([this, status, content_type, extra = std::move(extra)](Loop* loop) {
    if (loop->pending.count(req_) == 0) return;
    if (!Attached(req_)) {
      loop->pending.erase(req_);
      evhttp_request_free(req_);
      absl::MutexLock lock(&mu_);
      closed_ = true;
      return;
    }
    AddHeaders(req_, content_type, extra);
    evhttp_send_reply_start(req_, status, nullptr);  // no Content-Length: chunked
  });
}

void Exchange::Write(std::string chunk) {
  {
    absl::MutexLock lock(&mu_);
    if (!answered_ || finished_ || closed_) return;
  }
  OnLoop([this, chunk = std::move(chunk)](Loop* loop) {
    if (loop->pending.count(req_) == 0) return;
    if (!Attached(req_)) {
      loop->pending.erase(req_);
      evhttp_request_free(req_);
      absl::MutexLock lock(&mu_);
      closed_ = true;
      return;
    }
    evbuffer* buf = evbuffer_new();
    evbuffer_add(buf, chunk.data(), chunk.size());
    evhttp_send_reply_chunk(req_, buf);
    evbuffer_free(buf);
  });
}

void Exchange::End() {
  {
    absl::MutexLock lock(&mu_);
    if (!answered_ || finished_) return;
    finished_ = true;
  }
  OnLoop([this](Loop* loop) {
    if (loop->pending.erase(req_) == 0) return;
    loop->Unhook(req_);
    if (!Attached(req_)) {
      evhttp_request_free(req_);
      absl::MutexLock lock(&mu_);
      closed_ = true;
      return;
    }
    evhttp_send_reply_end(req_);
  });
}

// ---- HttpServer -------------------------------------------------------------------------------

bool SplitHostPort(const std::string& listen, std::string* host, int* port) {
  std::string h, p;
  if (!listen.empty() && listen.front() == '[') {
    const size_t close = listen.find(']');
    if (close == std::string::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return false;
    }
    h = listen.substr(1, close - 1);
    p = listen.substr(close + 2);
  } else {
    const size_t colon = listen.rfind(':');
    if (colon == std::string::npos || listen.find(':') != colon) return false;
    h = listen.substr(0, colon);
    p = listen.substr(colon + 1);
  }
  int value = 0;
  if (h.empty() || p.empty() || !absl::SimpleAtoi(p, &value) || value < 0 || value > 65535) {
    return false;
  }
  *host = h;
  *port = value;
  return true;
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& listen,
                                                              std::vector<Route> routes,
                                                              HttpServerOptions options) {
  std::string host;
  int port = 0;
  if (!SplitHostPort(listen, &host, &port)) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", listen, "\" is not a HOST:PORT address (e.g. 127.0.0.1:9464)"));
  }
  static std::once_flag threads_once;
  std::call_once(threads_once, [] { evthread_use_pthreads(); });

  std::unique_ptr<HttpServer> server(new HttpServer());
  server->routes_ = std::move(routes);
  server->options_ = options;
  auto loop = std::make_shared<Exchange::Loop>();
  loop->base = event_base_new();
  loop->http = loop->base != nullptr ? evhttp_new(loop->base) : nullptr;
  if (loop->http == nullptr) {
    if (loop->base != nullptr) event_base_free(loop->base);
    return absl::InternalError("libevent setup failed");
  }
  evhttp_set_timeout(loop->http, options.idle_timeout_s);
  evhttp_set_max_body_size(loop->http, static_cast<ev_ssize_t>(options.max_body_bytes));
  evhttp_set_max_headers_size(loop->http, static_cast<ev_ssize_t>(options.max_headers_bytes));
  // Every method reaches Dispatch, which answers 405 itself (with Allow).
  evhttp_set_allowed_methods(loop->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                             EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                             EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
  evhttp_set_gencb(loop->http, &HttpServer::OnRequest, server.get());
  evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(loop->http, host.c_str(), port);
  if (bound == nullptr) {
    evhttp_free(loop->http);
    event_base_free(loop->base);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", listen, " (address in use or not valid?)"));
  }
  // TCP_NODELAY, inherited by every accepted connection: a stream's small chunks (SSE deltas)
  // must leave at once, not wait for the client's delayed ACK of the previous one (up to 40 ms).
  const int one = 1;
  setsockopt(evhttp_bound_socket_get_fd(bound), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(evhttp_bound_socket_get_fd(bound), reinterpret_cast<sockaddr*>(&addr), &len) ==
      0) {
    port = addr.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                                      : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
  }
  server->host_ = host;
  server->port_ = port;
  loop->wake = event_new(loop->base, -1, 0, &Exchange::Loop::OnWake, loop.get());
  server->loop_ = loop;
  // The id is known before any request can be dispatched (the loop runs on the new thread).
  absl::Mutex started_mu;
  bool started = false;
  loop->thread = std::thread([raw = loop.get(), &started_mu, &started] {
    NameThisThread("agentd-http");
    // A write to a peer that left must fail with EPIPE, not kill the process.
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
    raw->thread_id.store(std::this_thread::get_id());
    {
      absl::MutexLock lock(&started_mu);
      started = true;
    }
    event_base_loop(raw->base, EVLOOP_NO_EXIT_ON_EMPTY);
  });
  absl::MutexLock lock(&started_mu);
  started_mu.Await(absl::Condition(&started));
  return server;
}

HttpServer::~HttpServer() { Shutdown(); }

std::string HttpServer::address() const {
  return host_.find(':') != std::string::npos ? absl::StrCat("[", host_, "]:", port_)
                                              : absl::StrCat(host_, ":", port_);
}

void HttpServer::Shutdown() {
  std::shared_ptr<Exchange::Loop> loop = loop_;
  if (loop == nullptr) return;
  {
    absl::MutexLock lock(&loop->mu);
    if (loop->stopping) {
      loop->mu.Await(absl::Condition(&loop->stopped));
      return;
    }
    loop->stopping = true;
  }
  event_active(loop->wake, EV_READ, 0);
  loop->thread.join();
  loop->thread_id.store(std::thread::id());  // a later thread may reuse the id: never "on the loop"
  // Detached requests (their clients left) are ours; attached ones go with their connections.
  for (evhttp_request* req : loop->pending) {
    if (!Attached(req)) evhttp_request_free(req);
  }
  loop->pending.clear();
  evhttp_free(loop->http);
  event_free(loop->wake);
  event_base_free(loop->base);
  std::deque<std::function<void()>> dropped;
  {
    absl::MutexLock lock(&loop->mu);
    dropped.swap(loop->tasks);
    loop->stopped = true;
  }
  // `dropped` (and the exchanges it holds) is destroyed here, outside the lock.
}

void HttpServer::OnRequest(evhttp_request* req, void* arg) {
  static_cast<HttpServer*>(arg)->Dispatch(req);
}

void HttpServer::Dispatch(evhttp_request* req) {
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* raw_path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
  const char* raw_query = uri != nullptr ? evhttp_uri_get_query(uri) : nullptr;
  const std::string path = raw_path != nullptr && raw_path[0] != '\0' ? raw_path : "/";
  const char* method = MethodName(evhttp_request_get_command(req));

  const Route* route = nullptr;
  std::vector<std::string> allowed;
  for (const Route& r : routes_) {
    if (r.prefix || r.path != path) continue;
    allowed.push_back(r.method);
    if (r.method == method) route = &r;
  }
  if (allowed.empty()) {
    for (const Route& r : routes_) {
      if (!r.prefix || path.compare(0, r.path.size(), r.path) != 0) continue;
      allowed.push_back(r.method);
      if (r.method == method) route = &r;
    }
  }
  if (route == nullptr) {
    const int status = allowed.empty() ? 404 : 405;
    const std::string message =
        allowed.empty() ? absl::StrCat("no such endpoint: ", method, " ", path)
                        : absl::StrCat("method ", method, " is not allowed on ", path);
    Headers extra;
    if (!allowed.empty()) extra.emplace_back("Allow", absl::StrJoin(allowed, ", "));
    if (options_.error_body) {
      HttpServerOptions::ErrorAnswer answer = options_.error_body(status, message);
      extra.insert(extra.end(), answer.headers.begin(), answer.headers.end());
      SendBody(req, status, answer.content_type, answer.body, extra);
    } else {
      SendSimple(req, status, message + "\n", extra);
    }
    return;
  }

  std::shared_ptr<Exchange> ex(new Exchange());
  ex->loop_ = loop_;
  ex->req_ = req;
  ex->method_ = method;
  ex->path_ = path;
  ex->query_ = raw_query != nullptr ? raw_query : "";
  if (evhttp_connection* conn = evhttp_request_get_connection(req)) {
    char* address = nullptr;
    ev_uint16_t port = 0;
    evhttp_connection_get_peer(conn, &address, &port);
    if (address != nullptr) ex->peer_ = absl::StrCat(address, ":", port);
  }
  const evkeyvalq* in = evhttp_request_get_input_headers(req);
  for (const evkeyval* h = in->tqh_first; h != nullptr; h = h->next.tqe_next) {
    ex->headers_[absl::AsciiStrToLower(h->key)] = h->value;
  }
  evbuffer* body = evhttp_request_get_input_buffer(req);
  const size_t n = evbuffer_get_length(body);
  ex->body_.resize(n);
  if (n > 0) evbuffer_copyout(body, ex->body_.data(), n);
  loop_->pending.insert(req);
  route->handler(std::move(ex));
}

}  // namespace agentd::http
