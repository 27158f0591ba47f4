#include "testing/fake_openai.h"
#include "testing/fake_openai_scan.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "nlohmann/json.hpp"

namespace agentd::testing {
namespace {

using nlohmann::json;

// A cut reply whose write never completes (client gone) is closed after this long.
constexpr int kFlushTimeoutMs = 2000;
// Server-side read/write timeout of a connection; generous so slow drips survive.
constexpr int kConnectionTimeoutS = 600;

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Byte offsets where UTF-8 code points start (offset 0 always counts).
std::vector<size_t> CodePointStarts(const std::string& s) {
  std::vector<size_t> starts;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == 0 || (static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) starts.push_back(i);
  }
  return starts;
}

// Pieces of `n` code points each (the last may be shorter).
std::vector<std::string> SplitEvery(const std::string& s, size_t n) {
  const std::vector<size_t> starts = CodePointStarts(s);
  std::vector<std::string> out;
  for (size_t k = 0; k < starts.size(); k += n) {
    const size_t end = k + n < starts.size() ? starts[k + n] : s.size();
    out.push_back(s.substr(starts[k], end - starts[k]));
  }
  return out;
}

// At most `parts` pieces of about equal length (fewer only if `s` has fewer code points).
std::vector<std::string> SplitInto(const std::string& s, size_t parts) {
  const size_t points = CodePointStarts(s).size();
  if (points == 0) return {};
  parts = std::min(parts, points);
  return SplitEvery(s, (points + parts - 1) / parts);
}

struct ErrorSpec {
  FakeMode mode;
  int status;
  const char* reason;
  const char* type;
  const char* code;  // nullptr → JSON null
  const char* param;
  const char* message;
};

// clang-format off
constexpr ErrorSpec kErrors[] = {
    {FakeMode::kStatus500, 500, "Internal Server Error", "server_error", nullptr, nullptr,
     "The server had an error while processing your request. Sorry about that!"},
    {FakeMode::kStatus502, 502, "Bad Gateway", "server_error", nullptr, nullptr, "Bad gateway."},
    {FakeMode::kStatus503, 503, "Service Unavailable", "server_error", nullptr, nullptr,
     "The engine is currently overloaded, please try again later."},
    {FakeMode::k429RateLimit, 429, "Too Many Requests", "requests", "rate_limit_exceeded", nullptr,
     "Rate limit reached for requests. Please try again later."},
    {FakeMode::k429InsufficientQuota, 429, "Too Many Requests", "insufficient_quota",
     "insufficient_quota", nullptr,
     "You exceeded your current quota, please check your plan and billing details."},
    {FakeMode::k400ContextLength, 400, "Bad Request", "invalid_request_error",
     "context_length_exceeded", "messages",
     "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 "
     "tokens. Please reduce the length of the messages."},
    {FakeMode::k400Other, 400, "Bad Request", "invalid_request_error", "invalid_request_error",
     nullptr, "Invalid request."},
    {FakeMode::k401, 401, "Unauthorized", "invalid_request_error", "invalid_api_key", nullptr,
     "Incorrect API key provided."},
};
// clang-format on

const ErrorSpec* ErrorFor(FakeMode mode) {
  for (const ErrorSpec& e : kErrors) {
    if (e.mode == mode) return &e;
  }
  return nullptr;
}

json OrNull(const char* s) { return s != nullptr ? json(s) : json(nullptr); }

json ErrorJson(const char* message, const char* type, const char* code, const char* param) {
  json err = json::object();
  err["message"] = message;
  err["type"] = type;
  err["param"] = OrNull(param);
  err["code"] = OrNull(code);
  json body = json::object();
  body["error"] = std::move(err);
  return body;
}

// Identity shared by every body of one response.
struct Meta {
  std::string id;
  std::string model;
  long created = 0;
};

json Envelope(const Meta& m, const char* object) {
  json j = json::object();
  j["id"] = m.id;
  j["object"] = object;
  j["created"] = m.created;
  j["model"] = m.model;
  return j;
}

json Usage(const FakeReply& r) {
  json u = json::object();
  u["prompt_tokens"] = r.prompt_tokens;
  u["completion_tokens"] = r.completion_tokens;
  u["total_tokens"] = r.prompt_tokens + r.completion_tokens;
  return u;
}

bool ContentIsNull(const FakeReply& r) { return r.text.empty() && !r.tool_calls.empty(); }
const char* FinishReason(const FakeReply& r) {
  return r.tool_calls.empty() ? "stop" : "tool_calls";
}

json Completion(const Meta& m, const FakeReply& r, bool empty_choices) {
  json message = json::object();
  message["role"] = "assistant";
  message["content"] = ContentIsNull(r) ? json(nullptr) : json(r.text);
  if (!r.tool_calls.empty()) {
    json calls = json::array();
    for (const FakeToolCall& tc : r.tool_calls) {
      calls.push_back({{"id", tc.id},
                       {"type", "function"},
                       {"function", {{"name", tc.name}, {"arguments", tc.arguments}}}});
    }
    message["tool_calls"] = std::move(calls);
  }
  json choice = json::object();
  choice["index"] = 0;
  choice["message"] = std::move(message);
  choice["finish_reason"] = FinishReason(r);
  json j = Envelope(m, "chat.completion");
  j["choices"] = empty_choices ? json::array() : json::array({std::move(choice)});
  j["usage"] = Usage(r);
  return j;
}

std::string Frame(const json& j) { return "data: " + Dump(j) + "\n\n"; }

std::string ChunkFrame(const Meta& m, json delta, json finish_reason = nullptr) {
  json choice = json::object();
  choice["index"] = 0;
  choice["delta"] = std::move(delta);
  choice["finish_reason"] = std::move(finish_reason);
  json j = Envelope(m, "chat.completion.chunk");
  j["choices"] = json::array({std::move(choice)});
  return Frame(j);
}

std::string ToolCallFrame(const Meta& m, json tool_call) {
  return ChunkFrame(m, {{"tool_calls", json::array({std::move(tool_call)})}});
}

// The SSE frames of a streamed reply, in order (kOk, kCutMidStream, kMalformedJson,
// kEmptyChoices). A cut reply stops after half the content deltas.
std::vector<std::string> StreamFrames(const Meta& m, const FakeReply& r, bool include_usage) {
  static const std::string kDone = "data: [DONE]\n\n";
  std::vector<std::string> frames;
  if (r.mode == FakeMode::kEmptyChoices) {
    json j = Envelope(m, "chat.completion.chunk");
    j["choices"] = json::array();
    frames = {Frame(j), Frame(j), kDone};
    return frames;
  }
  const json content = ContentIsNull(r) ? json(nullptr) : json("");
  frames.push_back(ChunkFrame(m, {{"role", "assistant"}, {"content", content}}));
  if (r.mode == FakeMode::kMalformedJson) {
    frames.push_back("data: {\"id\":\"" + m.id + "\",\"choices\":[{\"delta\": not json\n\n");
    frames.push_back(kDone);
    return frames;
  }
  std::vector<std::string> pieces = SplitEvery(r.text, std::max(1, r.chunk_chars));
  if (r.mode == FakeMode::kCutMidStream) {
    pieces.resize(pieces.empty() ? 0 : std::max<size_t>(1, pieces.size() / 2));
  }
  for (const std::string& piece : pieces) frames.push_back(ChunkFrame(m, {{"content", piece}}));
  if (r.mode == FakeMode::kCutMidStream) return frames;
  for (size_t i = 0; i < r.tool_calls.size(); ++i) {
    const FakeToolCall& tc = r.tool_calls[i];
    frames.push_back(ToolCallFrame(m, {{"index", i},
                                       {"id", tc.id},
                                       {"type", "function"},
                                       {"function", {{"name", tc.name}, {"arguments", ""}}}}));
    for (const std::string& piece : SplitInto(tc.arguments, 3)) {
      frames.push_back(ToolCallFrame(m, {{"index", i}, {"function", {{"arguments", piece}}}}));
    }
  }
  frames.push_back(ChunkFrame(m, json::object(), FinishReason(r)));
  if (include_usage) {
    json j = Envelope(m, "chat.completion.chunk");
    j["choices"] = json::array();
    j["usage"] = Usage(r);
    frames.push_back(Frame(j));
  }
  frames.push_back(kDone);
  return frames;
}

void AddHeader(evhttp_request* req, const char* name, const std::string& value) {
  evhttp_add_header(evhttp_request_get_output_headers(req), name, value.c_str());
}

void SendBody(evhttp_request* req, int status, const char* reason, const std::string& body) {
  AddHeader(req, "Content-Type", "application/json");
  evbuffer* buf = evbuffer_new();
  evbuffer_add(buf, body.data(), body.size());
  evhttp_send_reply(req, status, reason, buf);
  evbuffer_free(buf);
}

std::map<std::string, std::string> LowerHeaders(evhttp_request* req) {
  std::map<std::string, std::string> out;
  const evkeyvalq* headers = evhttp_request_get_input_headers(req);
  for (const evkeyval* kv = headers->tqh_first; kv != nullptr; kv = kv->next.tqe_next) {
    std::string name = kv->key;
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    auto [it, inserted] = out.emplace(name, kv->value);
    if (!inserted) it->second += std::string(", ") + kv->value;
  }
  return out;
}

}  // namespace

// One chat-completions request between arrival and the end of its reply. Loop thread only.
struct FakeOpenAiServer::Call {
  enum class Stage { kStart, kStreaming, kClosing };

  FakeOpenAiServer* server = nullptr;
  evhttp_request* req = nullptr;  // owned by libevent; detached (no connection) if the peer left
  event* timer = nullptr;
  FakeReply reply;
  Meta meta;
  bool stream = false;
  bool include_usage = false;
  Stage stage = Stage::kStart;
  std::vector<std::string> frames;  // streaming: SSE frames; frames[next..] are still to send
  size_t next = 0;
  size_t first_content_frame = SIZE_MAX;  // streaming: index of the first content delta
};

FakeOpenAiServer::FakeOpenAiServer(const FakeOpenAiOptions& options)
    : scan_only_(options.scan_only) {
  static std::once_flag threads_once;
  std::call_once(threads_once, [] { evthread_use_pthreads(); });

  // Precise (non-coarse) monotonic clock, so a timer never fires before its latency is up.
  event_config* config = event_config_new();
  event_config_set_flag(config, EVENT_BASE_FLAG_PRECISE_TIMER);
  base_ = event_base_new_with_config(config);
  event_config_free(config);
  http_ = base_ != nullptr ? evhttp_new(base_) : nullptr;
  if (http_ == nullptr) throw std::runtime_error("fake_openai: libevent setup failed");
  evhttp_set_timeout(http_, kConnectionTimeoutS);
  evhttp_set_allowed_methods(http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                        EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                        EVHTTP_REQ_OPTIONS);
  evhttp_set_gencb(http_, &FakeOpenAiServer::OnRequest, this);

  // Own socket: evhttp_bind_socket listens with a backlog of 128, too small for bursts of
  // thousands of connects (the kernel caps ours at net.core.somaxconn).
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(options.port));
  socklen_t len = sizeof(addr);
  const int one = 1;
  // TCP_NODELAY (inherited by accepted connections), as real providers' front ends do: without
  // it a stream's small chunks wait for the client's delayed ACK (up to 40 ms late).
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
      (options.reuse_port && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
      bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 65535) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      evhttp_accept_socket_with_handle(http_, fd) == nullptr) {
    if (fd >= 0) close(fd);
    evhttp_free(http_);
    event_base_free(base_);
    throw std::runtime_error("fake_openai: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(addr.sin_port);

  stop_ev_ = event_new(base_, -1, 0, &FakeOpenAiServer::OnStop, this);
  loop_ = std::thread([this] {
    // A write to a peer that left must fail with EPIPE, not kill the test process.
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
    event_base_loop(base_, EVLOOP_NO_EXIT_ON_EMPTY);
  });
}

FakeOpenAiServer::~FakeOpenAiServer() {
  // event_active is thread-safe with evthread_use_pthreads, and unlike event_base_loopbreak it is
  // not lost if the loop has not started yet.
  event_active(stop_ev_, EV_READ, 0);
  loop_.join();
  for (auto& [raw, call] : live_calls_) {
    event_free(call->timer);
    // Attached requests are freed with their connections by evhttp_free.
    if (evhttp_request_get_connection(call->req) == nullptr) evhttp_request_free(call->req);
  }
  live_calls_.clear();
  event_free(stop_ev_);
  evhttp_free(http_);
  event_base_free(base_);
}

std::string FakeOpenAiServer::base_url() const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/v1";
}

void FakeOpenAiServer::Push(FakeReply reply) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(reply));
}

void FakeOpenAiServer::SetDefault(FakeReply reply) {
  absl::MutexLock lock(&mu_);
  default_ = std::move(reply);
}

void FakeOpenAiServer::SetReplyFn(FakeReplyFn fn) {
  auto shared = fn ? std::make_shared<const FakeReplyFn>(std::move(fn)) : nullptr;
  absl::MutexLock lock(&mu_);
  reply_fn_ = std::move(shared);
}

std::vector<std::string> FakeOpenAiServer::request_bodies() const {
  absl::MutexLock lock(&mu_);
  return bodies_;
}

std::vector<std::map<std::string, std::string>> FakeOpenAiServer::request_headers() const {
  absl::MutexLock lock(&mu_);
  return headers_;
}

int FakeOpenAiServer::request_count() const {
  absl::MutexLock lock(&mu_);
  return count_;
}

int FakeOpenAiServer::in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

int FakeOpenAiServer::max_in_flight() const {
  absl::MutexLock lock(&mu_);
  return max_in_flight_;
}

void FakeOpenAiServer::set_record_requests(bool on) {
  absl::MutexLock lock(&mu_);
  record_ = on;
}

FakeOpenAiServer::FirstContent FakeOpenAiServer::first_content() const {
  absl::MutexLock lock(&mu_);
  return first_content_;
}

void FakeOpenAiServer::OnStop(int, short, void* arg) {
  event_base_loopbreak(static_cast<FakeOpenAiServer*>(arg)->base_);
}

void FakeOpenAiServer::OnRequest(evhttp_request* req, void* arg) {
  auto* self = static_cast<FakeOpenAiServer*>(arg);
  // libevent also calls this with a request whose URI it dropped after an HTTP-level error.
  const evhttp_uri* uri = evhttp_request_get_evhttp_uri(req);
  const char* path = uri != nullptr ? evhttp_uri_get_path(uri) : nullptr;
  if (path == nullptr || std::string(path) != "/v1/chat/completions") {
    SendBody(
        req, 404, "Not Found",
        Dump(ErrorJson("Unknown request URL.", "invalid_request_error", "unknown_url", nullptr)));
    return;
  }
  if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
    SendBody(req, 405, "Method Not Allowed",
             Dump(ErrorJson("Use POST.", "invalid_request_error", "method_not_allowed", nullptr)));
    return;
  }
  self->HandleChat(req);
}

void FakeOpenAiServer::HandleChat(evhttp_request* req) {
  evbuffer* in = evhttp_request_get_input_buffer(req);
  std::string body(evbuffer_get_length(in), '\0');
  evbuffer_copyout(in, body.data(), body.size());
  const json parsed = scan_only_ ? ScanChatRequest(body)
                                 : json::parse(body, nullptr, /*allow_exceptions=*/false);
  const bool is_json = !parsed.is_discarded() && parsed.is_object();

  FakeReply reply;
  std::shared_ptr<const FakeReplyFn> reply_fn;
  {
    absl::MutexLock lock(&mu_);
    ++count_;
    if (record_) {
      bodies_.push_back(body);
      headers_.push_back(LowerHeaders(req));
    }
    if (is_json) {
      if (queue_.empty()) {
        reply_fn = reply_fn_;
        if (reply_fn == nullptr) reply = default_;
      } else {
        reply = std::move(queue_.front());
        queue_.pop_front();
      }
      max_in_flight_ = std::max(max_in_flight_, ++in_flight_);
    }
  }
  if (!is_json) {
    SendBody(req, 400, "Bad Request",
             Dump(ErrorJson("We could not parse the JSON body of your request.",
                            "invalid_request_error", nullptr, nullptr)));
    return;
  }

  if (reply_fn != nullptr) reply = (*reply_fn)(parsed);

  auto call = std::make_unique<Call>();
  call->server = this;
  call->req = req;
  call->reply = std::move(reply);
  call->meta.id = "chatcmpl-fake-" + std::to_string(++next_id_);
  call->meta.created = static_cast<long>(std::time(nullptr));
  const auto model = parsed.find("model");
  call->meta.model = model != parsed.end() && model->is_string() ? model->get<std::string>()
                                                                 : std::string("fake-model");
  const auto stream = parsed.find("stream");
  call->stream = stream != parsed.end() && stream->is_boolean() && stream->get<bool>();
  const auto options = parsed.find("stream_options");
  if (options != parsed.end() && options->is_object()) {
    const auto usage = options->find("include_usage");
    call->include_usage = usage != options->end() && usage->is_boolean() && usage->get<bool>();
  }
  call->timer = evtimer_new(base_, &FakeOpenAiServer::OnTimer, call.get());
  Call* raw = call.get();
  live_calls_.emplace(raw, std::move(call));
  // Always continue from a timer, never inside this callback: closing the connection from
  // within its own request callback would free it under libevent's feet.
  Arm(raw, raw->reply.latency_ms);
}

void FakeOpenAiServer::Arm(Call* call, int delay_ms) {
  delay_ms = std::max(0, delay_ms);
  timeval tv{delay_ms / 1000, (delay_ms % 1000) * 1000};
  evtimer_add(call->timer, &tv);
}

void FakeOpenAiServer::OnTimer(int, short, void* arg) {
  auto* call = static_cast<Call*>(arg);
  call->server->Step(call);
}

void FakeOpenAiServer::OnFlushed(evhttp_connection*, void* arg) {
  // Runs inside libevent's write callback: only schedule the close.
  auto* call = static_cast<Call*>(arg);
  call->server->Arm(call, 0);
}

void FakeOpenAiServer::Step(Call* call) {
  if (evhttp_request_get_connection(call->req) == nullptr) {
    // The client left; libevent detached the request and we own it now.
    evhttp_request_free(call->req);
    Finish(call);
    return;
  }
  switch (call->stage) {
    case Call::Stage::kStart:
      break;
    case Call::Stage::kStreaming:
      SendNextStreamChunks(call);
      return;
    case Call::Stage::kClosing:
      CloseConnection(call);
      return;
  }
  const FakeReply& r = call->reply;
  if (r.mode == FakeMode::kResetBeforeHeaders) {
    CloseConnection(call);
    return;
  }
  if (const ErrorSpec* e = ErrorFor(r.mode)) {
    if (r.mode == FakeMode::k429RateLimit && r.retry_after_s > 0) {
      AddHeader(call->req, "Retry-After", std::to_string(r.retry_after_s));
    }
    SendBody(call->req, e->status, e->reason,
             Dump(ErrorJson(e->message, e->type, e->code, e->param)));
    Finish(call);
    return;
  }
  if (call->stream) {
    StartStream(call);
  } else {
    SendNonStreaming(call);
  }
}

void FakeOpenAiServer::SendNonStreaming(Call* call) {
  const FakeReply& r = call->reply;
  switch (r.mode) {
    case FakeMode::kMalformedJson:
      SendBody(call->req, 200, "OK",
               "{\"id\":\"" + call->meta.id + "\",\"object\":\"chat.completion\",\"choices\":[{");
      break;
    case FakeMode::kCutMidStream: {
      // Declare the full length, send half, then close once that half is on the wire.
      const std::string body = Dump(Completion(call->meta, r, /*empty_choices=*/false));
      AddHeader(call->req, "Content-Type", "application/json");
      AddHeader(call->req, "Content-Length", std::to_string(body.size()));
      evhttp_send_reply_start(call->req, 200, "OK");
      evbuffer* buf = evbuffer_new();
      evbuffer_add(buf, body.data(), body.size() / 2);
      evhttp_send_reply_chunk_with_cb(call->req, buf, &FakeOpenAiServer::OnFlushed, call);
      evbuffer_free(buf);
      call->stage = Call::Stage::kClosing;
      Arm(call, kFlushTimeoutMs);
      return;
    }
    default:
      SendBody(call->req, 200, "OK",
               Dump(Completion(call->meta, r, r.mode == FakeMode::kEmptyChoices)));
      break;
  }
  Finish(call);
}

void FakeOpenAiServer::StartStream(Call* call) {
  call->frames = StreamFrames(call->meta, call->reply, call->include_usage);
  // StreamFrames: the role frame, then the content pieces (if any).
  const FakeMode mode = call->reply.mode;
  if ((mode == FakeMode::kOk || mode == FakeMode::kCutMidStream) && !call->reply.text.empty()) {
    call->first_content_frame = 1;
  }
  AddHeader(call->req, "Content-Type", "text/event-stream");
  AddHeader(call->req, "Cache-Control", "no-cache");
  evhttp_send_reply_start(call->req, 200, "OK");  // chunked: no Content-Length set
  call->stage = Call::Stage::kStreaming;
  SendNextStreamChunks(call);
}

void FakeOpenAiServer::SendNextStreamChunks(Call* call) {
  const bool drip = call->reply.drip_interval_ms > 0;
  const bool cut = call->reply.mode == FakeMode::kCutMidStream;
  evbuffer* buf = evbuffer_new();
  do {
    const std::string& frame = call->frames[call->next++];
    evbuffer_add(buf, frame.data(), frame.size());
    if (call->next - 1 == call->first_content_frame) {
      const auto now = std::chrono::steady_clock::now();
      absl::MutexLock lock(&mu_);
      ++first_content_.count;
      first_content_.at = now;
    }
    if (cut && call->next == call->frames.size()) {
      // Last frame of a cut stream: close (no terminating chunk) once it is written.
      evhttp_send_reply_chunk_with_cb(call->req, buf, &FakeOpenAiServer::OnFlushed, call);
      evbuffer_free(buf);
      call->stage = Call::Stage::kClosing;
      Arm(call, kFlushTimeoutMs);
      return;
    }
    evhttp_send_reply_chunk(call->req, buf);  // one HTTP chunk per SSE frame
  } while (!drip && call->next < call->frames.size());
  evbuffer_free(buf);
  if (call->next < call->frames.size()) {
    Arm(call, call->reply.drip_interval_ms);
    return;
  }
  evhttp_send_reply_end(call->req);
  Finish(call);
}

void FakeOpenAiServer::CloseConnection(Call* call) {
  // Frees the request with it; shutdown(SHUT_WR) + close, so the peer sees a FIN.
  evhttp_connection_free(evhttp_request_get_connection(call->req));
  Finish(call);
}

void FakeOpenAiServer::Finish(Call* call) {
  event_free(call->timer);
  {
    absl::MutexLock lock(&mu_);
    --in_flight_;
  }
  live_calls_.erase(call);  // destroys *call
}

}  // namespace agentd::testing
