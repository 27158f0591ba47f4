// Tests of the fake OpenAI-compatible server, driven by libcurl as a real HTTP client.
#include "testing/fake_openai.h"

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace {

using agentd::testing::FakeMode;
using agentd::testing::FakeOpenAiServer;
using agentd::testing::FakeReply;
using agentd::testing::FakeToolCall;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

const char kChatBody[] = R"({"model":"gpt-test","messages":[{"role":"user","content":"hi"}]})";
const char kStreamBody[] =
    R"({"model":"gpt-test","stream":true,"messages":[{"role":"user","content":"hi"}]})";
const char kStreamUsageBody[] =
    R"({"model":"gpt-test","stream":true,"stream_options":{"include_usage":true},)"
    R"("messages":[{"role":"user","content":"hi"}]})";

struct HttpResult {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-cased names
  double ms = 0;
};

size_t OnBody(char* data, size_t size, size_t n, void* out) {
  static_cast<HttpResult*>(out)->body.append(data, size * n);
  return size * n;
}

size_t OnHeader(char* data, size_t size, size_t n, void* out) {
  std::string line(data, size * n);
  const size_t colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    value.erase(value.find_last_not_of(" \t\r\n") + 1);
    static_cast<HttpResult*>(out)->headers[name] = value;
  }
  return size * n;
}

// One prepared transfer; a fresh handle per request, so connections are never reused.
class Transfer {
 public:
  Transfer(const std::string& url, const std::string& body,
           const std::vector<std::string>& extra_headers = {}, long timeout_ms = 10000)
      : easy_(curl_easy_init()) {
    headers_ = curl_slist_append(headers_, "Content-Type: application/json");
    for (const std::string& h : extra_headers) headers_ = curl_slist_append(headers_, h.c_str());
    curl_easy_setopt(easy_, CURLOPT_URL, url.c_str());
    if (body.empty()) {
      curl_easy_setopt(easy_, CURLOPT_HTTPGET, 1L);
    } else {
      curl_easy_setopt(easy_, CURLOPT_COPYPOSTFIELDS, body.c_str());
    }
    curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, &result_);
    curl_easy_setopt(easy_, CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(easy_, CURLOPT_HEADERDATA, &result_);
    curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy_, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(easy_, CURLOPT_PRIVATE, this);
  }
  ~Transfer() {
    curl_easy_cleanup(easy_);
    curl_slist_free_all(headers_);
  }
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  CURL* easy() { return easy_; }
  void Start() { start_ = Clock::now(); }
  HttpResult Done(CURLcode code) {
    result_.code = code;
    result_.ms = std::chrono::duration<double, std::milli>(Clock::now() - start_).count();
    curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &result_.status);
    return result_;
  }

 private:
  CURL* easy_;
  curl_slist* headers_ = nullptr;
  HttpResult result_;
  Clock::time_point start_ = Clock::now();
};

HttpResult Post(const std::string& url, const std::string& body,
                const std::vector<std::string>& extra_headers = {}, long timeout_ms = 10000) {
  Transfer t(url, body, extra_headers, timeout_ms);
  t.Start();
  return t.Done(curl_easy_perform(t.easy()));
}

// Runs all transfers at once on one curl multi handle; results in input order.
std::vector<HttpResult> RunConcurrently(std::vector<std::unique_ptr<Transfer>>& transfers) {
  CURLM* multi = curl_multi_init();
  for (auto& t : transfers) {
    t->Start();
    curl_multi_add_handle(multi, t->easy());
  }
  std::map<Transfer*, HttpResult> done;
  int running = 0;
  do {
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Transfer* t = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
      done[t] = t->Done(msg->data.result);
    }
    if (running > 0) curl_multi_poll(multi, nullptr, 0, 100, nullptr);
  } while (running > 0);
  std::vector<HttpResult> results;
  for (auto& t : transfers) {
    curl_multi_remove_handle(multi, t->easy());
    results.push_back(done[t.get()]);
  }
  curl_multi_cleanup(multi);
  return results;
}

// The data: payloads of an SSE body, in order.
std::vector<std::string> SseData(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    const std::string event = body.substr(pos, end - pos);
    if (event.rfind("data: ", 0) == 0) out.push_back(event.substr(6));
    pos = end + 2;
  }
  return out;
}

bool ParsesAsJson(const std::string& s) { return json::accept(s); }

class FakeOpenAiTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  std::string url() const { return server_.base_url() + "/chat/completions"; }
  FakeOpenAiServer server_;
};

TEST_F(FakeOpenAiTest, NonStreamingCompletion) {
  FakeReply reply;
  reply.text = "Hi there";
  reply.prompt_tokens = 5;
  reply.completion_tokens = 3;
  server_.Push(reply);
  const HttpResult r = Post(url(), kChatBody);
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.at("content-type"), "application/json");
  const json j = json::parse(r.body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["model"], "gpt-test");
  EXPECT_EQ(j["id"].get<std::string>().rfind("chatcmpl-", 0), 0u);
  EXPECT_TRUE(j["created"].is_number());
  ASSERT_EQ(j["choices"].size(), 1u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hi there");
  EXPECT_FALSE(j["choices"][0]["message"].contains("tool_calls"));
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["usage"],
            json::parse(R"({"prompt_tokens":5,"completion_tokens":3,"total_tokens":8})"));
}

TEST_F(FakeOpenAiTest, NonStreamingToolCallsHaveNullContent) {
  FakeReply reply;
  reply.text = "";
  reply.tool_calls = {{"call_1", "get_weather", R"({"city":"Paris"})"},
                      {"call_2", "get_time", R"({"tz":"CET"})"}};
  server_.Push(reply);
  const json j = json::parse(Post(url(), kChatBody).body);
  const json& msg = j["choices"][0]["message"];
  EXPECT_TRUE(msg["content"].is_null());
  ASSERT_EQ(msg["tool_calls"].size(), 2u);
  EXPECT_EQ(msg["tool_calls"][0]["id"], "call_1");
  EXPECT_EQ(msg["tool_calls"][0]["type"], "function");
  EXPECT_EQ(msg["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(msg["tool_calls"][0]["function"]["arguments"], R"({"city":"Paris"})");
  EXPECT_EQ(msg["tool_calls"][1]["function"]["name"], "get_time");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
}

TEST_F(FakeOpenAiTest, StreamsContentDeltasFinishUsageAndDone) {
  FakeReply reply;
  reply.text = "Hello, wörld!";  // 13 code points; ö is two bytes
  reply.chunk_chars = 4;
  server_.Push(reply);
  const HttpResult r = Post(url(), kStreamUsageBody);
  ASSERT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.at("content-type"), "text/event-stream");
  EXPECT_EQ(r.headers.at("transfer-encoding"), "chunked");
  const std::vector<std::string> data = SseData(r.body);
  // role, 4 content deltas (4+4+4+1), finish, usage, [DONE]
  ASSERT_EQ(data.size(), 8u) << r.body;
  EXPECT_EQ(data.back(), "[DONE]");
  const json first = json::parse(data[0]);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["model"], "gpt-test");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  std::string text;
  for (size_t i = 1; i <= 4; ++i) {
    const json chunk = json::parse(data[i]);
    EXPECT_EQ(chunk["id"], first["id"]);
    EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
    text += chunk["choices"][0]["delta"]["content"].get<std::string>();
  }
  EXPECT_EQ(text, reply.text);
  EXPECT_EQ(json::parse(data[3])["choices"][0]["delta"]["content"], "örld");  // code points
  const json finish = json::parse(data[5]);
  EXPECT_EQ(finish["choices"][0]["delta"], json::object());
  EXPECT_EQ(finish["choices"][0]["finish_reason"], "stop");
  const json usage = json::parse(data[6]);
  EXPECT_EQ(usage["choices"], json::array());
  EXPECT_EQ(usage["usage"]["total_tokens"], 18);
}

TEST_F(FakeOpenAiTest, StreamsParallelToolCallFragments) {
  FakeReply reply;
  reply.text = "";
  reply.tool_calls = {{"call_a", "search", R"({"query":"libevent evhttp"})"},
                      {"call_b", "sum", R"({"a":1,"b":2})"}};
  server_.Push(reply);
  const HttpResult r = Post(url(), kStreamBody);
  ASSERT_EQ(r.code, CURLE_OK);
  const std::vector<std::string> data = SseData(r.body);
  ASSERT_GE(data.size(), 4u);
  EXPECT_EQ(data.back(), "[DONE]");
  EXPECT_TRUE(json::parse(data[0])["choices"][0]["delta"]["content"].is_null());
  std::map<int, json> calls;
  std::map<int, int> fragments;
  std::string finish_reason;
  for (size_t i = 1; i + 1 < data.size(); ++i) {
    const json chunk = json::parse(data[i]);
    ASSERT_FALSE(chunk.contains("usage")) << "usage chunk without include_usage";
    const json& choice = chunk["choices"][0];
    if (!choice["finish_reason"].is_null()) finish_reason = choice["finish_reason"];
    if (!choice["delta"].contains("tool_calls")) continue;
    const json& tc = choice["delta"]["tool_calls"][0];
    const int index = tc["index"];
    if (tc.contains("id")) {
      ASSERT_EQ(calls.count(index), 0u);
      EXPECT_EQ(tc["type"], "function");
      EXPECT_EQ(tc["function"]["arguments"], "");
      calls[index] = {{"id", tc["id"]}, {"name", tc["function"]["name"]}, {"arguments", ""}};
    } else {
      ASSERT_EQ(calls.count(index), 1u) << "fragment before the call's first delta";
      EXPECT_FALSE(tc["function"].contains("name"));
      calls[index]["arguments"] = calls[index]["arguments"].get<std::string>() +
                                  tc["function"]["arguments"].get<std::string>();
      ++fragments[index];
    }
  }
  EXPECT_EQ(finish_reason, "tool_calls");
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0]["id"], "call_a");
  EXPECT_EQ(calls[0]["name"], "search");
  EXPECT_EQ(calls[0]["arguments"], reply.tool_calls[0].arguments);
  EXPECT_EQ(calls[1]["id"], "call_b");
  EXPECT_EQ(calls[1]["arguments"], reply.tool_calls[1].arguments);
  for (int i = 0; i < 2; ++i) {
    EXPECT_GE(fragments[i], 2);
    EXPECT_LE(fragments[i], 3);
  }
}

TEST_F(FakeOpenAiTest, ErrorModesHaveStatusAndOpenAiErrorBody) {
  struct Case {
    FakeMode mode;
    long status;
    std::optional<std::string> code;
    std::string type;
  };
  const std::vector<Case> cases = {
      {FakeMode::kStatus500, 500, std::nullopt, "server_error"},
      {FakeMode::kStatus502, 502, std::nullopt, "server_error"},
      {FakeMode::kStatus503, 503, std::nullopt, "server_error"},
      {FakeMode::k429RateLimit, 429, "rate_limit_exceeded", "requests"},
      {FakeMode::k429InsufficientQuota, 429, "insufficient_quota", "insufficient_quota"},
      {FakeMode::k400ContextLength, 400, "context_length_exceeded", "invalid_request_error"},
      {FakeMode::k400Other, 400, "invalid_request_error", "invalid_request_error"},
      {FakeMode::k401, 401, "invalid_api_key", "invalid_request_error"},
  };
  for (const Case& c : cases) {
    for (const char* body : {kChatBody, kStreamBody}) {  // errors are JSON even when streaming
      FakeReply reply;
      reply.mode = c.mode;
      server_.Push(reply);
      const HttpResult r = Post(url(), body);
      SCOPED_TRACE(testing::Message() << "status " << c.status << " body " << body);
      ASSERT_EQ(r.code, CURLE_OK);
      EXPECT_EQ(r.status, c.status);
      EXPECT_EQ(r.headers.at("content-type"), "application/json");
      EXPECT_EQ(r.headers.count("retry-after"), 0u);
      const json j = json::parse(r.body);
      EXPECT_TRUE(j["error"]["message"].is_string());
      EXPECT_EQ(j["error"]["type"], c.type);
      if (c.code) {
        EXPECT_EQ(j["error"]["code"], *c.code);
      } else {
        EXPECT_TRUE(j["error"]["code"].is_null());
      }
    }
  }
  FakeReply context;
  context.mode = FakeMode::k400ContextLength;
  server_.Push(context);
  const std::string message = json::parse(Post(url(), kChatBody).body)["error"]["message"];
  EXPECT_EQ(message.rfind("This model's maximum context length is ", 0), 0u);
}

TEST_F(FakeOpenAiTest, RateLimitSendsRetryAfter) {
  FakeReply reply;
  reply.mode = FakeMode::k429RateLimit;
  reply.retry_after_s = 7;
  server_.Push(reply);
  const HttpResult r = Post(url(), kChatBody);
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(r.headers.at("retry-after"), "7");
}

TEST_F(FakeOpenAiTest, ResetBeforeHeadersClosesWithoutAnyResponse) {
  FakeReply reply;
  reply.mode = FakeMode::kResetBeforeHeaders;
  reply.latency_ms = 100;
  server_.Push(reply);
  const HttpResult r = Post(url(), kChatBody);
  EXPECT_TRUE(r.code == CURLE_GOT_NOTHING || r.code == CURLE_RECV_ERROR)
      << curl_easy_strerror(r.code);
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.body.empty());
  EXPECT_GE(r.ms, 100);
  EXPECT_EQ(server_.request_count(), 1);  // curl did not retry on a fresh connection
}

TEST_F(FakeOpenAiTest, CutStreamStopsHalfwayWithoutFinishOrDone) {
  FakeReply reply;
  reply.mode = FakeMode::kCutMidStream;
  reply.text = "abcdefghijklmnopqrstuvwx";  // 6 deltas of 4; 3 are sent
  server_.Push(reply);
  const HttpResult r = Post(url(), kStreamUsageBody);
  EXPECT_NE(r.code, CURLE_OK);  // chunked body never terminated
  EXPECT_EQ(r.status, 200);
  const std::vector<std::string> data = SseData(r.body);
  ASSERT_EQ(data.size(), 4u) << r.body;
  std::string text;
  for (const std::string& d : data) {
    ASSERT_NE(d, "[DONE]");
    const json chunk = json::parse(d);
    EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
    EXPECT_FALSE(chunk.contains("usage"));
    text += chunk["choices"][0]["delta"].value("content", "");
  }
  EXPECT_EQ(text, "abcdefghijkl");
}

TEST_F(FakeOpenAiTest, CutNonStreamingSendsLessThanContentLength) {
  FakeReply reply;
  reply.mode = FakeMode::kCutMidStream;
  server_.Push(reply);
  const HttpResult r = Post(url(), kChatBody);
  EXPECT_EQ(r.code, CURLE_PARTIAL_FILE) << curl_easy_strerror(r.code);
  EXPECT_EQ(r.status, 200);
  ASSERT_EQ(r.headers.count("content-length"), 1u);
  EXPECT_GT(std::stoul(r.headers.at("content-length")), r.body.size());
  EXPECT_FALSE(r.body.empty());
  EXPECT_FALSE(ParsesAsJson(r.body));
}

TEST_F(FakeOpenAiTest, MalformedJsonInBothModes) {
  FakeReply reply;
  reply.mode = FakeMode::kMalformedJson;
  server_.Push(reply);
  server_.Push(reply);
  const HttpResult plain = Post(url(), kChatBody);
  EXPECT_EQ(plain.code, CURLE_OK);
  EXPECT_EQ(plain.status, 200);
  EXPECT_FALSE(ParsesAsJson(plain.body));
  const HttpResult stream = Post(url(), kStreamBody);
  EXPECT_EQ(stream.code, CURLE_OK);
  const std::vector<std::string> data = SseData(stream.body);
  ASSERT_EQ(data.size(), 3u);
  EXPECT_TRUE(ParsesAsJson(data[0]));
  EXPECT_FALSE(ParsesAsJson(data[1]));
  EXPECT_EQ(data[2], "[DONE]");
}

TEST_F(FakeOpenAiTest, EmptyChoicesInBothModes) {
  FakeReply reply;
  reply.mode = FakeMode::kEmptyChoices;
  server_.Push(reply);
  server_.Push(reply);
  const json plain = json::parse(Post(url(), kChatBody).body);
  EXPECT_EQ(plain["choices"], json::array());
  EXPECT_EQ(plain["object"], "chat.completion");
  const std::vector<std::string> data = SseData(Post(url(), kStreamBody).body);
  ASSERT_GE(data.size(), 2u);
  EXPECT_EQ(data.back(), "[DONE]");
  for (size_t i = 0; i + 1 < data.size(); ++i)
    EXPECT_EQ(json::parse(data[i])["choices"], json::array());
}

TEST_F(FakeOpenAiTest, LatencyIsHonoured) {
  FakeReply reply;
  reply.latency_ms = 250;
  server_.Push(reply);
  const HttpResult r = Post(url(), kChatBody);
  EXPECT_EQ(r.status, 200);
  EXPECT_GE(r.ms, 250);
}

TEST_F(FakeOpenAiTest, DripIntervalSpacesStreamChunks) {
  FakeReply reply;
  reply.text = "abcdefghijkl";  // role + 3 deltas + finish + [DONE] = 6 frames, 5 gaps
  reply.drip_interval_ms = 60;
  server_.Push(reply);
  const HttpResult r = Post(url(), kStreamBody);
  EXPECT_EQ(r.code, CURLE_OK);
  EXPECT_EQ(SseData(r.body).size(), 6u);
  EXPECT_GE(r.ms, 5 * 60);
}

TEST_F(FakeOpenAiTest, ScriptedRepliesAreFifoThenDefault) {
  FakeReply a, b, fallback;
  a.text = "first";
  b.text = "second";
  fallback.text = "default";
  server_.Push(a);
  server_.Push(b);
  server_.SetDefault(fallback);
  std::vector<std::string> got;
  for (int i = 0; i < 4; ++i) {
    got.push_back(json::parse(Post(url(), kChatBody).body)["choices"][0]["message"]["content"]);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"first", "second", "default", "default"}));
}

TEST_F(FakeOpenAiTest, RecordsBodiesAndHeaders) {
  Post(url(), kChatBody, {"Authorization: Bearer sk-test-123", "X-Trace-Id: t1"});
  Post(url(), kStreamBody);
  ASSERT_EQ(server_.request_count(), 2);
  EXPECT_EQ(server_.request_bodies(), (std::vector<std::string>{kChatBody, kStreamBody}));
  const auto headers = server_.request_headers();
  ASSERT_EQ(headers.size(), 2u);
  EXPECT_EQ(headers[0].at("authorization"), "Bearer sk-test-123");
  EXPECT_EQ(headers[0].at("x-trace-id"), "t1");
  EXPECT_EQ(headers[0].at("content-type"), "application/json");
  EXPECT_EQ(headers[1].count("authorization"), 0u);

  server_.set_record_requests(false);
  Post(url(), kChatBody);
  EXPECT_EQ(server_.request_count(), 3);
  EXPECT_EQ(server_.request_bodies().size(), 2u);
  EXPECT_EQ(server_.max_in_flight(), 1);
}

TEST_F(FakeOpenAiTest, UnknownPathIs404AndNonJsonBodyIs400) {
  FakeReply scripted;
  scripted.text = "kept";
  server_.Push(scripted);
  const HttpResult missing = Post(server_.base_url() + "/embeddings", kChatBody);
  EXPECT_EQ(missing.status, 404);
  EXPECT_TRUE(json::parse(missing.body)["error"].is_object());
  EXPECT_EQ(Post(url(), "").status, 405);  // GET
  const HttpResult bad = Post(url(), "this is {not json");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(json::parse(bad.body)["error"]["type"], "invalid_request_error");
  EXPECT_EQ(server_.request_count(), 1);  // the bad body is counted and recorded...
  EXPECT_EQ(server_.request_bodies().at(0), "this is {not json");
  // ...but consumed no scripted reply.
  EXPECT_EQ(json::parse(Post(url(), kChatBody).body)["choices"][0]["message"]["content"], "kept");
}

TEST_F(FakeOpenAiTest, KeepAliveConnectionServesSeveralRequests) {
  CURL* easy = curl_easy_init();
  HttpResult r;
  curl_easy_setopt(easy, CURLOPT_URL, url().c_str());
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &r);
  long connects = 0;
  for (const char* body : {kChatBody, kStreamBody, kChatBody}) {
    r.body.clear();
    curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body);
    ASSERT_EQ(curl_easy_perform(easy), CURLE_OK);
    long status = 0, new_connects = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &new_connects);
    EXPECT_EQ(status, 200);
    EXPECT_FALSE(r.body.empty());
    connects += new_connects;
  }
  curl_easy_cleanup(easy);
  EXPECT_EQ(connects, 1);
}

TEST_F(FakeOpenAiTest, ServesManySlowRequestsConcurrently) {
  constexpr int kRequests = 200;
  constexpr int kLatencyMs = 300;
  FakeReply slow;
  slow.latency_ms = kLatencyMs;
  server_.SetDefault(slow);
  server_.set_record_requests(false);
  std::vector<std::unique_ptr<Transfer>> transfers;
  for (int i = 0; i < kRequests; ++i) {
    transfers.push_back(std::make_unique<Transfer>(url(), i % 2 ? kChatBody : kStreamBody));
  }
  const Clock::time_point start = Clock::now();
  const std::vector<HttpResult> results = RunConcurrently(transfers);
  const double elapsed_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  for (const HttpResult& r : results) {
    ASSERT_EQ(r.code, CURLE_OK) << curl_easy_strerror(r.code);
    ASSERT_EQ(r.status, 200);
    ASSERT_GE(r.ms, kLatencyMs);
  }
  EXPECT_EQ(server_.request_count(), kRequests);
  EXPECT_GE(server_.max_in_flight(), 150);
  EXPECT_LT(elapsed_ms, 10.0 * kLatencyMs);  // serial would be 200 × 300 ms = 60 s
  EXPECT_EQ(server_.in_flight(), 0);
  std::printf("200 concurrent 300 ms requests: %.0f ms, max in flight %d\n", elapsed_ms,
              server_.max_in_flight());
}

TEST_F(FakeOpenAiTest, ClientThatLeavesMidStreamDoesNotBreakTheServer) {
  FakeReply slow;
  slow.text = std::string(400, 'x');
  slow.chunk_chars = 1;
  slow.drip_interval_ms = 5;  // ~2 s of drip
  server_.Push(slow);
  const HttpResult gone = Post(url(), kStreamBody, {}, /*timeout_ms=*/200);
  EXPECT_EQ(gone.code, CURLE_OPERATION_TIMEDOUT);
  // The server notices on a later write, drops the stream and keeps serving.
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(5);
  while (server_.in_flight() > 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(server_.in_flight(), 0);
  EXPECT_EQ(Post(url(), kChatBody).status, 200);
}

TEST(FakeOpenAiLifetime, DestroyWithRequestsPendingClosesThem) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  auto server = std::make_unique<FakeOpenAiServer>();
  FakeReply stuck;
  stuck.latency_ms = 60000;
  server->SetDefault(stuck);
  Transfer t(server->base_url() + "/chat/completions", kChatBody);
  CURLM* multi = curl_multi_init();
  curl_multi_add_handle(multi, t.easy());
  int running = 1;
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(5);
  while (server->request_count() == 0 && Clock::now() < deadline) {
    curl_multi_perform(multi, &running);
    curl_multi_poll(multi, nullptr, 0, 10, nullptr);
  }
  ASSERT_EQ(server->request_count(), 1);
  const Clock::time_point before = Clock::now();
  server.reset();  // must not wait for the 60 s latency
  EXPECT_LT(Clock::now() - before, std::chrono::seconds(2));
  while (running > 0) {
    curl_multi_perform(multi, &running);
    if (running > 0) curl_multi_poll(multi, nullptr, 0, 10, nullptr);
  }
  int left = 0;
  CURLMsg* msg = curl_multi_info_read(multi, &left);
  ASSERT_NE(msg, nullptr);
  EXPECT_NE(msg->data.result, CURLE_OK);
  curl_multi_remove_handle(multi, t.easy());
  curl_multi_cleanup(multi);
}

}  // namespace
