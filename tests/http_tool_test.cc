// HTTP tools (src/tools/http_tool.h): config validation, URL templates and argument mapping, and
// real calls against a recording HTTP server on loopback (methods, headers, bodies, non-2xx
// replies, deadline, cancellation, refused connections, oversized bodies), with the configured
// secret kept out of every error message.
#include "tools/http_tool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "http/http_server.h"
#include "testing/free_port.h"

namespace agentd::tools {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "Bearer sk-http-tool-secret-42";
constexpr char kApiKey[] = "key-0123456789-secret";

// Records every request (method, raw path and query, the headers the tests look at, body) and
// answers per exact path with a configured reply, optionally after a delay (on a thread of its
// own, so the loop thread never blocks).
class RecordingServer {
 public:
  struct Reply {
    int status = 200;
    std::string content_type = "application/json";
    std::string body = R"({"ok":true})";
    int delay_ms = 0;
  };
  struct Received {
    std::string method, path, query, body;
    std::map<std::string, std::string> headers;  // the names in kRecorded, if present
  };

  RecordingServer() {
    std::vector<http::Route> routes;
    for (const char* method : {"GET", "POST", "PUT", "PATCH", "DELETE"}) {
      routes.push_back({method, "/", [this](std::shared_ptr<http::Exchange> ex) { Handle(ex); },
                        /*prefix=*/true});
    }
    auto server = http::HttpServer::Start("127.0.0.1:0", std::move(routes));
    EXPECT_TRUE(server.ok()) << server.status();
    http_ = std::move(*server);
  }

  ~RecordingServer() {
    stop_.Notify();
    std::vector<std::thread> delayed;
    {
      absl::MutexLock lock(&mu_);
      delayed.swap(delayed_);
    }
    for (std::thread& t : delayed) t.join();
    http_->Shutdown();
  }

  std::string base() const { return absl::StrCat("http://", http_->address()); }

  void SetReply(const std::string& path, Reply reply) {
    absl::MutexLock lock(&mu_);
    replies_[path] = std::move(reply);
  }

  std::vector<Received> received() const {
    absl::MutexLock lock(&mu_);
    return received_;
  }

 private:
  static constexpr const char* kRecorded[] = {"authorization", "x-api-key", "content-type",
                                              "accept", "content-length"};

  void Handle(std::shared_ptr<http::Exchange> ex) {
    Received r{ex->method(), ex->path(), ex->query(), ex->body(), {}};
    for (const char* name : kRecorded) {
      const std::string value = ex->header(name);
      if (!value.empty()) r.headers[name] = value;
    }
    Reply reply;
    absl::MutexLock lock(&mu_);
    received_.push_back(std::move(r));
    const auto it = replies_.find(ex->path());
    if (it != replies_.end()) reply = it->second;
    if (reply.delay_ms == 0) {
      ex->Respond(reply.status, reply.content_type, reply.body);
      return;
    }
    delayed_.emplace_back([this, ex, reply] {
      stop_.WaitForNotificationWithTimeout(absl::Milliseconds(reply.delay_ms));
      ex->Respond(reply.status, reply.content_type, reply.body);
    });
  }

  mutable absl::Mutex mu_;
  std::map<std::string, Reply> replies_ ABSL_GUARDED_BY(mu_);
  std::vector<Received> received_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> delayed_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::unique_ptr<http::HttpServer> http_;
};

HttpToolOptions Tool(const std::string& method, const std::string& url) {
  HttpToolOptions t;
  t.name = "weather";
  t.description = "Weather by city.";
  t.method = method;
  t.url = url;
  t.headers["Authorization"] = kSecret;
  t.headers["X-Api-Key"] = kApiKey;
  return t;
}

absl::Time Soon(int ms = 5000) { return absl::Now() + absl::Milliseconds(ms); }

void ExpectNoSecret(const absl::Status& s) {
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("sk-http-tool-secret"))) << s;
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr(kApiKey))) << s;
}

// --- ValidateHttpTool -------------------------------------------------------------------------

TEST(ValidateHttpToolTest, AcceptsWellFormedTools) {
  HttpToolOptions t = Tool("GET", "https://api.example.com:8443/v1/weather/{city}?units={units}#x");
  t.parameters_json_schema =
      R"({"type":"object","properties":{"city":{"type":"string"},"units":{"type":"string"}}})";
  EXPECT_TRUE(ValidateHttpTool(t).ok()) << ValidateHttpTool(t);
  for (const char* method : {"POST", "PUT", "PATCH", "DELETE"}) {
    t.method = method;
    EXPECT_TRUE(ValidateHttpTool(t).ok()) << method << ": " << ValidateHttpTool(t);
  }
  HttpToolOptions plain = Tool("POST", "http://127.0.0.1/hook");
  EXPECT_TRUE(ValidateHttpTool(plain).ok()) << ValidateHttpTool(plain);
  plain.parameters_json_schema = R"({"description":"no type, no properties"})";
  EXPECT_TRUE(ValidateHttpTool(plain).ok()) << ValidateHttpTool(plain);
}

TEST(ValidateHttpToolTest, RejectsBadToolsNamingTheProblemAndNoSecret) {
  struct Case {
    std::string method, url, schema, expected;
  };
  const std::vector<Case> cases = {
      {"FETCH", "https://a.example/x", "", "method \"FETCH\""},
      {"get", "https://a.example/x", "", "method \"get\""},
      {"GET", "ftp://a.example/x", "", "http:// or https://"},
      {"GET", "a.example/x", "", "http:// or https://"},
      {"GET", "", "", "url is empty"},
      {"GET", "http:///x", "", "no host"},
      {"GET", "https://user:pw@:8080/x", "", "no host"},
      {"GET", "https://a b.example/x", "", "not a valid URL"},
      {"GET", "https://a.example/x/{city", "", "'{' without a matching '}'"},
      {"GET", "https://a.example/x/city}", "", "'}' without a matching '{'"},
      {"GET", "https://a.example/x/{a{b}}", "", "'{' without a matching '}'"},
      {"GET", "https://a.example/x/{1city}", "", "{1city} is not an identifier"},
      {"GET", "https://a.example/x/{}", "", "{} is not an identifier"},
      {"GET", "https://a.example/x/{ci-ty}", "", "{ci-ty} is not an identifier"},
      {"GET", "https://{tenant}.example.com/x", "", "{tenant} is in the scheme or host"},
      {"GET", "https://api.example.com:{port}/x", "", "{port} is in the scheme or host"},
      {"GET", "https://api.example.com{path}", "", "{path} is in the scheme or host"},
      {"GET", "https://a.example/{city}", R"({"properties":{"town":{}}})",
       "{city} is not a property"},
      {"GET", "https://a.example/x", "[1, 2]", "must be a JSON object"},
      {"GET", "https://a.example/x", "\"object\"", "must be a JSON object"},
      {"GET", "https://a.example/x", "{not json", "not valid JSON"},
      {"GET", "https://a.example/x", R"({"type":"string"})", "must describe an object"},
      {"GET", "https://a.example/x", R"({"properties":[]})", "\"properties\" must be an object"},
  };
  for (const Case& c : cases) {
    HttpToolOptions t = Tool(c.method, c.url);
    t.parameters_json_schema = c.schema;
    const absl::Status s = ValidateHttpTool(t);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.url << " " << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr(c.expected)) << c.url;
    EXPECT_THAT(std::string(s.message()), HasSubstr("HTTP tool \"weather\"")) << c.url;
    ExpectNoSecret(s);
  }
}

TEST(ValidateHttpToolTest, RejectsBadHeadersWithoutEchoingValues) {
  HttpToolOptions t = Tool("GET", "https://a.example/x");
  t.headers["Authorization"] = absl::StrCat(kSecret, "\r\nX-Injected: 1");
  absl::Status s = ValidateHttpTool(t);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("header \"Authorization\""));
  ExpectNoSecret(s);

  t = Tool("GET", "https://a.example/x");
  t.headers["Bad Name"] = "v";
  s = ValidateHttpTool(t);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("header name \"Bad Name\""));

  t = Tool("GET", "https://a.example/x");
  t.name = "";
  EXPECT_EQ(ValidateHttpTool(t).code(), absl::StatusCode::kInvalidArgument);
}

// --- BuildHttpToolRequest ---------------------------------------------------------------------

TEST(BuildHttpToolRequestTest, GetFillsPlaceholdersAndAppendsTheRestAsQuery) {
  const HttpToolOptions t = Tool("GET", "https://api.example.com/v1/weather/{city}?units={units}");
  const json args = {{"city", "S\xC3\xA3o Paulo/Centro & more"},
                     {"units", "metric"},
                     {"days", 3},
                     {"verbose", true},
                     {"ratio", 0.5},
                     {"tags", {"a", "b c"}},
                     {"skip", nullptr},
                     {"q&a", "x=y?"}};
  auto req = BuildHttpToolRequest(t, args);
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->method, "GET");
  EXPECT_EQ(req->url,
            "https://api.example.com/v1/weather/S%C3%A3o%20Paulo%2FCentro%20%26%20more"
            "?units=metric&days=3&q%26a=x%3Dy%3F&ratio=0.5&tags=%5B%22a%22%2C%22b%20c%22%5D"
            "&verbose=true");
  EXPECT_EQ(req->body, "");
  EXPECT_EQ(req->headers.at("Authorization"), kSecret);
  EXPECT_EQ(req->headers.at("Accept"), "application/json, text/plain;q=0.9, */*;q=0.5");
  EXPECT_EQ(req->headers.count("Content-Type"), 0u) << "no body, no content type";
}

TEST(BuildHttpToolRequestTest, QuerySeparatorsAndFragment) {
  auto url = [](const std::string& tmpl, const json& args) {
    auto req = BuildHttpToolRequest(Tool("DELETE", tmpl), args);
    EXPECT_TRUE(req.ok()) << req.status();
    return req.ok() ? req->url : "";
  };
  EXPECT_EQ(url("http://h/items/{id}", {{"id", 7}, {"force", false}}),
            "http://h/items/7?force=false");
  auto del = BuildHttpToolRequest(Tool("DELETE", "http://h/x"), json::object());
  ASSERT_TRUE(del.ok()) << del.status();
  EXPECT_EQ(del->body, "");
  EXPECT_EQ(del->headers.at("Content-Type"), "") << "empty: curl sends no Content-Type";
  EXPECT_EQ(url("http://h/items?", {{"a", "1"}}), "http://h/items?a=1");
  EXPECT_EQ(url("http://h/items?x=1&", {{"a", "1"}}), "http://h/items?x=1&a=1");
  EXPECT_EQ(url("http://h/items?x=1#frag", {{"a", "1"}}), "http://h/items?x=1&a=1#frag");
  EXPECT_EQ(url("http://h/items/{id}", {{"id", "a"}}), "http://h/items/a") << "nothing left";
  EXPECT_EQ(url("http://h/{id}/again/{id}", {{"id", "~x_y.z-"}}), "http://h/~x_y.z-/again/~x_y.z-");
}

TEST(BuildHttpToolRequestTest, PostBodyHoldsOnlyArgumentsNotUsedInTheUrl) {
  auto req = BuildHttpToolRequest(Tool("POST", "https://h/v1/users/{user}/notes"),
                                  {{"user", 42}, {"text", "hello"}, {"tags", {"x"}}});
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->url, "https://h/v1/users/42/notes");
  EXPECT_EQ(json::parse(req->body), json({{"text", "hello"}, {"tags", {"x"}}}));
  EXPECT_EQ(req->headers.at("Content-Type"), "application/json");

  req = BuildHttpToolRequest(Tool("PATCH", "https://h/v1/users/{user}"), {{"user", "u1"}});
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->body, "{}");

  req = BuildHttpToolRequest(Tool("PUT", "https://h/v1/x"), nullptr);
  ASSERT_TRUE(req.ok()) << req.status() << " (null arguments are {})";
  EXPECT_EQ(req->body, "{}");
}

TEST(BuildHttpToolRequestTest, ConfiguredContentTypeAndAcceptWinCaseInsensitively) {
  HttpToolOptions t = Tool("POST", "https://h/x");
  t.headers["content-type"] = "application/vnd.api+json";
  t.headers["ACCEPT"] = "text/csv";
  auto req = BuildHttpToolRequest(t, {{"a", 1}});
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->headers.count("Content-Type"), 0u);
  EXPECT_EQ(req->headers.count("Accept"), 0u);
  EXPECT_EQ(req->headers.at("content-type"), "application/vnd.api+json");
  EXPECT_EQ(req->headers.at("ACCEPT"), "text/csv");
}

TEST(BuildHttpToolRequestTest, BadPlaceholderArgumentsAreInvalidArgumentNamingThem) {
  const HttpToolOptions t = Tool("GET", "https://h/v1/weather/{city}");
  struct Case {
    json args;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {json::object(), "\"city\" is required by the URL but missing"},
      {{{"city", nullptr}}, "\"city\" is required by the URL but missing"},
      {{{"city", {{"name", "Paris"}}}}, "\"city\" is used in the URL and must be"},
      {{{"city", {"Paris"}}}, "\"city\" is used in the URL and must be"},
      {json::array({1}), "arguments must be a JSON object"},
      {"Paris", "arguments must be a JSON object"},
  };
  for (const Case& c : cases) {
    auto req = BuildHttpToolRequest(t, c.args);
    EXPECT_EQ(req.status().code(), absl::StatusCode::kInvalidArgument) << c.args;
    EXPECT_THAT(std::string(req.status().message()), HasSubstr(c.expected)) << c.args;
    ExpectNoSecret(req.status());
  }
  EXPECT_EQ(BuildHttpToolRequest(Tool("HEAD", "https://h/x"), json::object()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- HttpToolResultText -----------------------------------------------------------------------

TEST(HttpToolResultTextTest, SuccessErrorAndEmptyBodies) {
  EXPECT_EQ(HttpToolResultText({200, "application/json", R"({"temp": 21})"}),
            std::make_pair(std::string(R"({"temp": 21})"), false));
  EXPECT_EQ(HttpToolResultText({204, "", ""}),
            std::make_pair(std::string("(empty response, HTTP 204)"), false));
  EXPECT_EQ(HttpToolResultText({404, "text/plain", "no such city"}),
            std::make_pair(std::string("HTTP 404 Not Found: no such city"), true));
  EXPECT_EQ(HttpToolResultText({503, "", ""}),
            std::make_pair(std::string("HTTP 503 Service Unavailable: (empty response)"), true));
  EXPECT_EQ(HttpToolResultText({599, "", "odd"}),
            std::make_pair(std::string("HTTP 599: odd"), true));
  EXPECT_EQ(HttpToolResultText({302, "", ""}).second, true) << "redirects are not followed";
}

// --- CallHttpTool against a loopback server ---------------------------------------------------

TEST(CallHttpToolTest, GetSendsEncodedPathQueryAndConfiguredHeaders) {
  RecordingServer server;
  server.SetReply("/v1/weather/S%C3%A3o%20Paulo%2FCentro%20%26%20more",
                  {200, "application/json", R"({"temp":21,"sky":"clear"})", 0});
  const HttpToolOptions t = Tool("GET", server.base() + "/v1/weather/{city}?units={units}");
  ASSERT_TRUE(ValidateHttpTool(t).ok()) << ValidateHttpTool(t);

  auto reply = CallHttpTool(t,
                            {{"city", "S\xC3\xA3o Paulo/Centro & more"},
                             {"units", "metric"},
                             {"lang", "pt br"},
                             {"days", 2}},
                            Soon(), nullptr, 1 << 20);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->content_type, "application/json");
  EXPECT_EQ(reply->body, R"({"temp":21,"sky":"clear"})");
  EXPECT_EQ(HttpToolResultText(*reply), std::make_pair(reply->body, false));

  const auto got = server.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].method, "GET");
  EXPECT_EQ(got[0].path, "/v1/weather/S%C3%A3o%20Paulo%2FCentro%20%26%20more");
  EXPECT_EQ(got[0].query, "units=metric&days=2&lang=pt%20br");
  EXPECT_EQ(got[0].body, "");
  EXPECT_EQ(got[0].headers.at("authorization"), kSecret);
  EXPECT_EQ(got[0].headers.at("x-api-key"), kApiKey);
  EXPECT_EQ(got[0].headers.at("accept"), "application/json, text/plain;q=0.9, */*;q=0.5");
  EXPECT_EQ(got[0].headers.count("content-type"), 0u);
}

TEST(CallHttpToolTest, PostBodyExcludesUrlArgumentsAndIsJson) {
  RecordingServer server;
  server.SetReply("/v1/users/u%2F1/notes", {201, "application/json", R"({"id":"n1"})", 0});
  const HttpToolOptions t = Tool("POST", server.base() + "/v1/users/{user}/notes");
  auto reply = CallHttpTool(t, {{"user", "u/1"}, {"text", "h\xC3\xA9llo"}, {"pinned", true}},
                            Soon(), nullptr, 1 << 20);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->status, 201);
  EXPECT_EQ(HttpToolResultText(*reply), std::make_pair(std::string(R"({"id":"n1"})"), false));

  const auto got = server.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].method, "POST");
  EXPECT_EQ(got[0].query, "");
  EXPECT_EQ(json::parse(got[0].body), json({{"text", "h\xC3\xA9llo"}, {"pinned", true}}));
  EXPECT_EQ(got[0].headers.at("content-type"), "application/json");
  EXPECT_EQ(got[0].headers.at("authorization"), kSecret);
}

TEST(CallHttpToolTest, PutPatchAndDeleteReachTheServerAsSuch) {
  RecordingServer server;
  for (const char* method : {"PUT", "PATCH", "DELETE"}) {
    const HttpToolOptions t = Tool(method, server.base() + "/items/{id}");
    auto reply = CallHttpTool(t, {{"id", 9}, {"name", "box"}}, Soon(), nullptr, 1 << 20);
    ASSERT_TRUE(reply.ok()) << method << ": " << reply.status();
    EXPECT_EQ(reply->status, 200) << method;
  }
  auto got = server.received();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].method, "PUT");
  EXPECT_EQ(got[1].method, "PATCH");
  EXPECT_EQ(got[2].method, "DELETE");
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(got[i].path, "/items/9");
    EXPECT_EQ(got[i].query, "");
    EXPECT_EQ(json::parse(got[i].body), json({{"name", "box"}})) << got[i].method;
    EXPECT_EQ(got[i].headers.at("content-type"), "application/json");
  }
  EXPECT_EQ(got[2].path, "/items/9");
  EXPECT_EQ(got[2].query, "name=box");
  EXPECT_EQ(got[2].body, "");
  EXPECT_EQ(got[2].headers.count("content-type"), 0u) << got[2].headers["content-type"];
}

TEST(CallHttpToolTest, Non2xxIsAnOkReplyWithErrorText) {
  RecordingServer server;
  server.SetReply("/v1/weather/Atlantis", {404, "text/plain", "no such city", 0});
  server.SetReply("/v1/weather/Boom", {500, "application/json", R"({"error":"boom"})", 0});
  const HttpToolOptions t = Tool("GET", server.base() + "/v1/weather/{city}");

  auto reply = CallHttpTool(t, {{"city", "Atlantis"}}, Soon(), nullptr, 1 << 20);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(reply->status, 404);
  EXPECT_EQ(reply->content_type, "text/plain");
  EXPECT_EQ(HttpToolResultText(*reply),
            std::make_pair(std::string("HTTP 404 Not Found: no such city"), true));

  reply = CallHttpTool(t, {{"city", "Boom"}}, Soon(), nullptr, 1 << 20);
  ASSERT_TRUE(reply.ok()) << reply.status();
  EXPECT_EQ(
      HttpToolResultText(*reply),
      std::make_pair(std::string(R"(HTTP 500 Internal Server Error: {"error":"boom"})"), true));
}

TEST(CallHttpToolTest, MissingPlaceholderArgumentSendsNothing) {
  RecordingServer server;
  const HttpToolOptions t = Tool("GET", server.base() + "/v1/weather/{city}");
  auto reply = CallHttpTool(t, {{"units", "metric"}}, Soon(), nullptr, 1 << 20);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kInvalidArgument) << reply.status();
  EXPECT_THAT(std::string(reply.status().message()), HasSubstr("HTTP tool \"weather\""));
  EXPECT_THAT(std::string(reply.status().message()), HasSubstr("\"city\""));
  ExpectNoSecret(reply.status());
  EXPECT_TRUE(server.received().empty());
}

TEST(CallHttpToolTest, DeadlineEndsTheCallLongBeforeASlowServerAnswers) {
  RecordingServer server;
  constexpr int kDelayMs = 4000;
  server.SetReply("/slow", {200, "application/json", "{}", kDelayMs});
  const HttpToolOptions t = Tool("POST", server.base() + "/slow");
  const absl::Time start = absl::Now();
  auto reply = CallHttpTool(t, {{"a", 1}}, start + absl::Milliseconds(300), nullptr, 1 << 20);
  const absl::Duration elapsed = absl::Now() - start;
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kDeadlineExceeded) << reply.status();
  EXPECT_GE(elapsed, absl::Milliseconds(250));
  EXPECT_LT(elapsed, absl::Milliseconds(kDelayMs / 2)) << elapsed;
  ExpectNoSecret(reply.status());
  EXPECT_EQ(server.received().size(), 1u) << "the request did reach the server";
}

TEST(CallHttpToolTest, CancellationPredicateEndsTheCall) {
  RecordingServer server;
  constexpr int kDelayMs = 6000;
  server.SetReply("/slow", {200, "application/json", "{}", kDelayMs});
  const HttpToolOptions t = Tool("GET", server.base() + "/slow");
  const absl::Time start = absl::Now();
  std::atomic<int> polls{0};
  auto cancelled = [&] {
    ++polls;
    return absl::Now() - start > absl::Milliseconds(200);
  };
  auto reply = CallHttpTool(t, json::object(), start + absl::Seconds(30), cancelled, 1 << 20);
  const absl::Duration elapsed = absl::Now() - start;
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kCancelled) << reply.status();
  EXPECT_LT(elapsed, absl::Milliseconds(kDelayMs - 2000)) << elapsed;
  EXPECT_GT(polls.load(), 0);
  ExpectNoSecret(reply.status());

  // Already cancelled: nothing is sent.
  const size_t before = server.received().size();
  reply = CallHttpTool(
      t, json::object(), Soon(), [] { return true; }, 1 << 20);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kCancelled) << reply.status();
  EXPECT_EQ(server.received().size(), before);
}

TEST(CallHttpToolTest, ConnectionRefusedIsUnavailable) {
  const HttpToolOptions t =
      Tool("POST", absl::StrCat("http://127.0.0.1:", agentd::testing::FreePort(), "/x/{id}"));
  auto reply = CallHttpTool(t, {{"id", 1}}, Soon(), nullptr, 1 << 20);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kUnavailable) << reply.status();
  EXPECT_THAT(std::string(reply.status().message()), HasSubstr("HTTP tool \"weather\""));
  ExpectNoSecret(reply.status());
}

TEST(CallHttpToolTest, BodyOverTheLimitIsResourceExhausted) {
  RecordingServer server;
  server.SetReply("/big", {200, "text/plain", std::string(64 * 1024, 'x'), 0});
  server.SetReply("/fits", {200, "text/plain", std::string(1000, 'y'), 0});
  const HttpToolOptions big = Tool("GET", server.base() + "/big");
  auto reply = CallHttpTool(big, json::object(), Soon(), nullptr, 1000);
  EXPECT_EQ(reply.status().code(), absl::StatusCode::kResourceExhausted) << reply.status();
  ExpectNoSecret(reply.status());

  const HttpToolOptions fits = Tool("GET", server.base() + "/fits");
  reply = CallHttpTool(fits, json::object(), Soon(), nullptr, 1000);
  ASSERT_TRUE(reply.ok()) << reply.status() << " (exactly the limit fits)";
  EXPECT_EQ(reply->body.size(), 1000u);
}

}  // namespace
}  // namespace agentd::tools
