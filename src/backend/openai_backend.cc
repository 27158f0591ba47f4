#include "backend/openai_backend.h"

#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "backend/openai_mapping.h"
#include "backend/sse_parser.h"
#include "common/thread_name.h"
#include "metrics/trace_context.h"

namespace agentd::backend {
namespace {

constexpr absl::Duration kConnectTimeout = absl::Seconds(10);
constexpr size_t kMaxBodyBytes = 32 << 20;

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Drops CR/LF so configured header values cannot inject extra header lines.
std::string HeaderSafe(absl::string_view s) {
  return absl::StrReplaceAll(s, {{"\r", ""}, {"\n", ""}});
}

// Prefixes the backend's name, removes the API key wherever it appears, keeps payloads.
absl::Status Decorate(const absl::Status& status, const OpenAiBackendOptions& options) {
  if (status.ok()) return status;
  std::string message = std::string(status.message());
  if (!options.api_key.empty()) {
    message = absl::StrReplaceAll(message, {{options.api_key, "[redacted]"}});
  }
  absl::Status out(status.code(), absl::StrCat("openai backend '", options.name, "': ", message));
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  return out;
}

}  // namespace

// One model call. Fields below "I/O state" are written in Start() before the call is handed to
// the I/O thread (through Loop::mu_) and afterwards touched only by that thread.
class OpenAiBackend::Call final : public ModelCall, public std::enable_shared_from_this<Call> {
 public:
  Call(ModelCallbacks callbacks, absl::Time deadline, bool stream)
      : callbacks_(std::move(callbacks)), deadline_(deadline), stream_(stream) {}

  ~Call() override {
    if (easy_ != nullptr) curl_easy_cleanup(easy_);
  }

  void Cancel() override;

  // Called on the I/O thread (or inline in Start before handoff) exactly once.
  void Complete(absl::StatusOr<ModelResponse> outcome) {
    {
      absl::MutexLock lock(&mu_);
      loop_ = nullptr;
    }
    if (easy_ != nullptr) {
      curl_easy_cleanup(easy_);
      easy_ = nullptr;
    }
    ModelCallbacks callbacks = std::move(callbacks_);
    callbacks.on_done(std::move(outcome));
  }

  static size_t OnHeader(char* data, size_t size, size_t n, void* user);
  static size_t OnBody(char* data, size_t size, size_t n, void* user);
  absl::StatusOr<ModelResponse> Outcome(CURLcode code);

  absl::Mutex mu_;
  Loop* loop_ ABSL_GUARDED_BY(mu_) = nullptr;  // null once completed
  bool cancel_requested_ ABSL_GUARDED_BY(mu_) = false;

  // I/O state.
  ModelCallbacks callbacks_;
  const absl::Time deadline_;
  const bool stream_;
  CURL* easy_ = nullptr;
  std::string request_body_;
  // `traceparent: …` of this call, linked in front of the backend's shared header list.
  std::string trace_header_;
  curl_slist trace_node_{};
  char errbuf_[CURL_ERROR_SIZE] = {0};
  long http_status_ = 0;
  std::string content_type_;
  std::string retry_after_;
  std::string retry_after_ms_;
  bool decided_ = false;  // first body byte seen: SSE or buffered
  bool sse_ = false;
  std::string body_;
  SseParser parser_;
  std::vector<SseParser::Event> events_;
  openai::ChatStreamAccumulator stream_acc_;
  absl::Status failure_;  // set by a body callback that aborted the transfer
};

// The I/O thread and the curl multi handle it alone drives, on epoll: curl tells us (socket
// callback) which sockets to watch for what and (timer callback) when it next needs a timeout
// call; epoll_wait then costs O(ready sockets), not O(open transfers) as curl_multi_poll does —
// with thousands of slow model calls open that is the difference between idle and busy.
class OpenAiBackend::Loop {
 public:
  Loop(const OpenAiBackendOptions* options, bool plain_http)
      : options_(options), plain_http_(plain_http) {
    multi_ = curl_multi_init();
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (multi_ == nullptr || epoll_ < 0 || wake_ < 0) {
      // Nothing can run without these; fail loudly at startup rather than hang calls.
      std::fprintf(stderr, "agentd: openai backend: cannot set up curl/epoll/eventfd\n");
      std::abort();
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Loop::OnSocket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Loop::OnTimer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    thread_ = std::thread([this] { Run(); });
  }

  ~Loop() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    Wake();
    thread_.join();
    curl_multi_cleanup(multi_);
    close(wake_);
    close(epoll_);
  }

  /// Hands `call` to the I/O thread; false once the loop is stopping.
  bool Submit(std::shared_ptr<Call> call) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return false;
      load_.fetch_add(1, std::memory_order_relaxed);  // before the I/O thread can finish it
      incoming_.push_back(std::move(call));
    }
    Wake();
    return true;
  }

  /// Calls submitted and not finished yet (any thread; a snapshot).
  int load() const { return load_.load(std::memory_order_relaxed); }

  void RequestCancel(std::shared_ptr<Call> call) {
    {
      absl::MutexLock lock(&mu_);
      cancels_.push_back(std::move(call));
    }
    Wake();
  }

 private:
  void Run();
  void Finish(const std::shared_ptr<Call>& call, absl::StatusOr<ModelResponse> outcome);
  /// Takes queued submissions and cancellations; false when the loop must stop.
  bool DrainQueues();
  /// Completes the transfers curl reports done.
  void ReapDone();

  void Wake() {
    const uint64_t one = 1;
    // A full counter (never in practice) still leaves the fd readable: the wakeup is not lost.
    [[maybe_unused]] ssize_t n = write(wake_, &one, sizeof(one));
  }

  // curl: watch socket `s` for `what` (CURL_POLL_IN/OUT/INOUT/REMOVE).
  static int OnSocket(CURL*, curl_socket_t s, int what, void* userp, void*) {
    auto* loop = static_cast<Loop*>(userp);
    if (what == CURL_POLL_REMOVE) {
      if (loop->watched_.erase(s) > 0) epoll_ctl(loop->epoll_, EPOLL_CTL_DEL, s, nullptr);
      return 0;
    }
    epoll_event ev{};
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
    ev.data.fd = s;
    // curl drops a pooled connection's socket between transfers and asks again for the next:
    // knowing which are watched saves a failing MOD per call. (A closed socket leaves epoll by
    // itself; a new socket reusing its number finds MOD failing and is added.)
    const bool fresh = loop->watched_.insert(s).second;
    if (fresh || epoll_ctl(loop->epoll_, EPOLL_CTL_MOD, s, &ev) != 0) {
      epoll_ctl(loop->epoll_, EPOLL_CTL_ADD, s, &ev);
    }
    return 0;
  }

  // curl: open / close a connection's socket. Counting them tells the loop whether any pooled
  // connection can be idle (see DrainQueues). Close-on-exec: tool subprocesses inherit none.
  static curl_socket_t OnOpenSocket(void* userp, curlsocktype, curl_sockaddr* address) {
    const int fd = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (fd >= 0) ++static_cast<Loop*>(userp)->open_sockets_;
    return fd >= 0 ? fd : CURL_SOCKET_BAD;
  }
  static int OnCloseSocket(void* userp, curl_socket_t s) {
    --static_cast<Loop*>(userp)->open_sockets_;
    return close(s);
  }

  // curl: call socket_action(CURL_SOCKET_TIMEOUT) after `timeout_ms` (-1: no timer).
  static int OnTimer(CURLM*, long timeout_ms, void* userp) {
    auto* loop = static_cast<Loop*>(userp);
    loop->timer_ = timeout_ms < 0 ? absl::InfiniteFuture()
                                  : absl::Now() + absl::Milliseconds(timeout_ms);
    return 0;
  }

  const OpenAiBackendOptions* options_;
  // The backend's URL is http:// (HTTP/1.1, one transfer per connection; https may multiplex
  // HTTP/2 streams over one connection, so open sockets say nothing about idle ones there).
  const bool plain_http_;
  CURLM* multi_ = nullptr;
  int epoll_ = -1;
  int wake_ = -1;  // eventfd: Submit/RequestCancel/stop wake the I/O thread
  absl::Time timer_ = absl::InfiniteFuture();  // I/O thread only
  absl::Mutex mu_;
  std::vector<std::shared_ptr<Call>> incoming_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Call>> cancels_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int> load_{0};
  std::unordered_map<Call*, std::shared_ptr<Call>> active_;  // I/O thread only
  std::vector<std::pair<Call*, CURLcode>> done_;  // ReapDone's scratch; I/O thread only
  int64_t open_sockets_ = 0;  // connections' sockets curl opened and has not closed; I/O thread
  absl::flat_hash_set<curl_socket_t> watched_;               // I/O thread only: in epoll_
  std::thread thread_;
};

void OpenAiBackend::Call::Cancel() {
  absl::MutexLock lock(&mu_);
  if (loop_ == nullptr || cancel_requested_) return;
  cancel_requested_ = true;
  loop_->RequestCancel(shared_from_this());
}

void OpenAiBackend::Loop::Finish(const std::shared_ptr<Call>& call,
                                 absl::StatusOr<ModelResponse> outcome) {
  load_.fetch_sub(1, std::memory_order_relaxed);  // every submitted call finishes exactly once
  if (call->easy_ != nullptr && active_.erase(call.get()) > 0) {
    curl_multi_remove_handle(multi_, call->easy_);
  }
  if (outcome.ok()) {
    outcome->served_by = options_->name;
  } else {
    outcome = Decorate(outcome.status(), *options_);
  }
  call->Complete(std::move(outcome));
}

bool OpenAiBackend::Loop::DrainQueues() {
  std::vector<std::shared_ptr<Call>> incoming;
  std::vector<std::shared_ptr<Call>> cancels;
  bool stopping;
  {
    absl::MutexLock lock(&mu_);
    incoming.swap(incoming_);
    cancels.swap(cancels_);
    stopping = stopping_;
  }
  for (std::shared_ptr<Call>& call : incoming) {
    if (stopping) {
      Finish(call, absl::CancelledError("model call cancelled: backend shutting down"));
      continue;
    }
    CURL* easy = call->easy_;
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, &Loop::OnOpenSocket);
    curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, this);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, &Loop::OnCloseSocket);
    curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, this);
    // Over HTTP/1.1 every call in flight holds a connection of its own. When every open one is
    // taken (by the calls in flight, including those added just before this one), none can be
    // reused, and curl's search for one walks all the connections it holds to the host: O(calls
    // in flight) per call, most of the I/O thread's time with thousands in flight. Skip it.
    const bool none_idle = open_sockets_ <= static_cast<int64_t>(active_.size());
    curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, plain_http_ && none_idle ? 1L : 0L);
    if (CURLMcode rc = curl_multi_add_handle(multi_, easy); rc != CURLM_OK) {
      Finish(call, absl::InternalError(
                       absl::StrCat("curl_multi_add_handle: ", curl_multi_strerror(rc))));
    } else {
      active_.emplace(call.get(), call);  // curl's timer callback schedules its start
    }
  }
  for (const std::shared_ptr<Call>& call : cancels) {
    if (active_.count(call.get()) > 0) Finish(call, absl::CancelledError("model call cancelled"));
  }
  if (stopping) {
    std::unordered_map<Call*, std::shared_ptr<Call>> left = active_;
    for (auto& [raw, call] : left) {
      Finish(call, absl::CancelledError("model call cancelled: backend shutting down"));
    }
  }
  return !stopping;
}

void OpenAiBackend::Loop::ReapDone() {
  // Read every message before removing any handle: curl_multi_remove_handle searches the unread
  // messages for the handle's, so removing as we read costs O(done²) when many finish together.
  done_.clear();
  int queued = 0;
  while (CURLMsg* msg = curl_multi_info_read(multi_, &queued)) {
    if (msg->msg != CURLMSG_DONE) continue;
    Call* raw = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &raw);
    done_.emplace_back(raw, msg->data.result);  // `msg` dies with the handle's removal
  }
  for (const auto& [raw, code] : done_) {
    auto it = active_.find(raw);
    if (it == active_.end()) continue;
    std::shared_ptr<Call> call = it->second;
    curl_multi_remove_handle(multi_, call->easy_);
    active_.erase(it);
    Finish(call, call->Outcome(code));
  }
}

void OpenAiBackend::Loop::Run() {
  NameThisThread("agentd-openai");
  constexpr int kMaxEvents = 256;
  epoll_event events[kMaxEvents];
  int running = 0;
  while (DrainQueues()) {
    // Sleep until a socket is ready, curl's timer is due, or a wakeup; at most 1 s.
    int wait_ms = 1000;
    if (timer_ != absl::InfiniteFuture()) {
      const int64_t until = absl::ToInt64Milliseconds(absl::Ceil(timer_ - absl::Now(),
                                                                 absl::Milliseconds(1)));
      wait_ms = static_cast<int>(std::clamp<int64_t>(until, 0, 1000));
    }
    const int n = epoll_wait(epoll_, events, kMaxEvents, wait_ms);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_) {
        uint64_t count;
        [[maybe_unused]] ssize_t r = read(wake_, &count, sizeof(count));
        continue;
      }
      int mask = 0;
      if (events[i].events & EPOLLIN) mask |= CURL_CSELECT_IN;
      if (events[i].events & EPOLLOUT) mask |= CURL_CSELECT_OUT;
      if (events[i].events & (EPOLLERR | EPOLLHUP)) mask |= CURL_CSELECT_ERR;
      curl_multi_socket_action(multi_, fd, mask, &running);
    }
    if (timer_ != absl::InfiniteFuture() && absl::Now() >= timer_) {
      timer_ = absl::InfiniteFuture();  // curl sets a new one if it needs it
      curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    ReapDone();
  }
}

size_t OpenAiBackend::Call::OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* call = static_cast<Call*>(user);
  absl::string_view line(data, size * n);
  line = absl::StripTrailingAsciiWhitespace(line);
  if (absl::StartsWith(line, "HTTP/")) {  // a new response (after 100-continue, etc.)
    call->content_type_.clear();
    call->retry_after_.clear();
    call->retry_after_ms_.clear();
    call->http_status_ = 0;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    int code = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &code)) call->http_status_ = code;
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon == absl::string_view::npos) return size * n;
  const std::string name = absl::AsciiStrToLower(line.substr(0, colon));
  const std::string value(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  if (name == "content-type") call->content_type_ = absl::AsciiStrToLower(value);
  if (name == "retry-after") call->retry_after_ = value;
  if (name == "retry-after-ms") call->retry_after_ms_ = value;
  return size * n;
}

size_t OpenAiBackend::Call::OnBody(char* data, size_t size, size_t n, void* user) {
  auto* call = static_cast<Call*>(user);
  const size_t bytes = size * n;
  if (!call->decided_) {
    call->decided_ = true;
    const bool ok = call->http_status_ >= 200 && call->http_status_ < 300;
    call->sse_ = ok && (absl::StrContains(call->content_type_, "event-stream") ||
                        (call->stream_ && !absl::StrContains(call->content_type_, "json")));
  }
  if (!call->sse_) {
    if (call->body_.size() + bytes > kMaxBodyBytes) {
      call->failure_ = absl::UnavailableError("response body exceeds 32 MiB");
      return 0;
    }
    call->body_.append(data, bytes);
    return bytes;
  }
  call->events_.clear();
  absl::Status fed = call->parser_.Feed(absl::string_view(data, bytes), &call->events_);
  if (!fed.ok()) {
    call->failure_ = absl::UnavailableError(fed.message());
    return 0;
  }
  std::string delta;
  for (const SseParser::Event& event : call->events_) {
    absl::Status added = call->stream_acc_.AddData(event.data, &delta);
    if (!added.ok()) {
      call->failure_ = added;
      return 0;
    }
    if (!delta.empty() && call->stream_ && call->callbacks_.on_delta) {
      call->callbacks_.on_delta(delta);
    }
  }
  return bytes;
}

absl::StatusOr<ModelResponse> OpenAiBackend::Call::Outcome(CURLcode code) {
  if (!failure_.ok()) return failure_;
  if (code == CURLE_OPERATION_TIMEDOUT) {
    if (absl::Now() >= deadline_ - absl::Milliseconds(50)) {
      return absl::DeadlineExceededError("model call deadline exceeded");
    }
    return absl::UnavailableError(absl::StrCat("connection timed out: ", errbuf_));
  }
  if (http_status_ >= 300) {
    // An error response (even one whose body was cut short): classify by status and body.
    return openai::HttpErrorStatus(static_cast<int>(http_status_), body_,
                                   openai::ParseRetryAfter(retry_after_, retry_after_ms_));
  }
  if (code != CURLE_OK) {
    const char* detail = errbuf_[0] != '\0' ? errbuf_ : curl_easy_strerror(code);
    if (sse_) return absl::UnavailableError(absl::StrCat("stream was cut: ", detail));
    if (http_status_ >= 200)
      return absl::UnavailableError(absl::StrCat("response was cut: ", detail));
    return absl::UnavailableError(absl::StrCat("connection error: ", detail));
  }
  if (http_status_ < 200) return absl::UnavailableError("no HTTP response");
  if (sse_) {
    events_.clear();
    parser_.Finish(&events_);
    std::string delta;
    for (const SseParser::Event& event : events_) {
      absl::Status added = stream_acc_.AddData(event.data, &delta);
      if (!added.ok()) return added;
      if (!delta.empty() && stream_ && callbacks_.on_delta) callbacks_.on_delta(delta);
    }
    return stream_acc_.Finish();
  }
  absl::StatusOr<ModelResponse> response = openai::ParseChatResponse(body_);
  // A server that ignored `stream: true` still answers: deliver its text as one delta.
  if (response.ok() && stream_ && !response->text.empty() && callbacks_.on_delta) {
    callbacks_.on_delta(response->text);
  }
  return response;
}

OpenAiBackend::OpenAiBackend(OpenAiBackendOptions options) : options_(std::move(options)) {
  GlobalInitOnce();
  url_ = absl::StrCat(absl::StripSuffix(options_.base_url, "/"), "/chat/completions");
  while (absl::StrContains(url_, "//chat/completions")) {
    url_ = absl::StrReplaceAll(url_, {{"//chat/completions", "/chat/completions"}});
  }
  std::map<std::string, std::string> lower;  // lower-case name → "Name: value"
  lower["content-type"] = "Content-Type: application/json";
  if (!options_.api_key.empty()) {
    lower["authorization"] = absl::StrCat("Authorization: Bearer ", HeaderSafe(options_.api_key));
  }
  lower["expect"] = "Expect:";  // no 100-continue round trip for large bodies
  for (const auto& [name, value] : options_.headers) {
    const std::string safe_name = HeaderSafe(name);
    lower[absl::AsciiStrToLower(safe_name)] =
        value.empty() ? absl::StrCat(safe_name, ";")
                      : absl::StrCat(safe_name, ": ", HeaderSafe(value));
  }
  for (const auto& [unused, line] : lower) headers_ = curl_slist_append(headers_, line.c_str());
  static_traceparent_ = lower.count("traceparent") > 0;  // the operator's explicit choice wins
  const bool plain_http = absl::StartsWithIgnoreCase(url_, "http://");
  for (int i = 0; i < kIoLoops; ++i) {
    loops_.push_back(std::make_unique<Loop>(&options_, plain_http));
  }
}

OpenAiBackend::~OpenAiBackend() {
  loops_.clear();  // cancels and completes every call, joins the threads
  curl_slist_free_all(headers_);
}

std::shared_ptr<ModelCall> OpenAiBackend::Start(const ModelRequest& request,
                                                   ModelCallbacks callbacks) {
  const absl::Time now = absl::Now();
  const absl::Time deadline = std::min(request.deadline, now + options_.timeout);
  auto call = std::make_shared<Call>(std::move(callbacks), deadline, request.stream);
  auto fail = [&](absl::Status status) {
    call->Complete(Decorate(status, options_));
    return call;
  };
  if (deadline <= now) return fail(absl::DeadlineExceededError("model call deadline exceeded"));
  absl::StatusOr<std::string> body = openai::BuildChatRequestBody(request);
  if (!body.ok()) return fail(body.status());
  call->request_body_ = *std::move(body);

  CURL* easy = curl_easy_init();
  if (easy == nullptr) return fail(absl::InternalError("curl_easy_init failed"));
  call->easy_ = easy;
  curl_easy_setopt(easy, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_POST, 1L);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                   static_cast<curl_off_t>(call->request_body_.size()));
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, call->request_body_.data());
  curl_slist* headers = headers_;
  if (request.context != nullptr && !static_traceparent_) {
    // W3C trace context: same trace, a new span id for this HTTP request, the caller's flags.
    const obs::RequestContext& rc = *request.context;
    call->trace_header_ = absl::StrCat(
        "traceparent: ", obs::FormatTraceparent(rc.trace_id, obs::NewSpanId(), rc.trace_flags));
    call->trace_node_.data = call->trace_header_.data();
    call->trace_node_.next = headers_;  // read-only, shared; not freed through this node
    headers = &call->trace_node_;
  }
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &Call::OnHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, call.get());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Call::OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, call.get());
  curl_easy_setopt(easy, CURLOPT_PRIVATE, call.get());
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, call->errbuf_);
  curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, options_.tls_verify ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, options_.tls_verify ? 2L : 0L);
  if (deadline != absl::InfiniteFuture()) {
    const int64_t ms = std::max<int64_t>(
        1, absl::ToInt64Milliseconds(absl::Ceil(deadline - now, absl::Milliseconds(1))));
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(ms));
  }
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(kConnectTimeout)));

  // The least busy loop (the first on a tie, so light traffic stays on one loop's warm
  // connections).
  Loop* loop = loops_.front().get();
  for (const std::unique_ptr<Loop>& l : loops_) {
    if (l->load() < loop->load()) loop = l.get();
  }
  {
    absl::MutexLock lock(&call->mu_);
    call->loop_ = loop;
  }
  if (!loop->Submit(call)) {
    return fail(absl::CancelledError("model call cancelled: backend shutting down"));
  }
  return call;
}

}  // namespace agentd::backend
