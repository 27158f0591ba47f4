// The OpenAI-compatible HTTP door against an in-process agentd (http_listen 127.0.0.1:0),
// driven over real HTTP with libcurl: authentication and errors, Responses (multi-turn, function
// tools, streaming, bad input that must change nothing), Chat Completions, Models, Conversations,
// and the same turns seen through gRPC.
#include <curl/curl.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "agentd/v1/project.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "openai_http_fixture.h"
#include "testing/server_harness.h"

namespace agentd {
namespace {

using nlohmann::json;

using openai_http_test::HttpResult;
using openai_http_test::OpenAiHttpTest;

TEST_F(OpenAiHttpTest, AuditRecordsTheSocketsAddressNotAClaimedOne) {
  // Bytes that are not UTF-8 must not make the record unreadable (audit listing would fail).
  ExpectError(Call("GET", "/v1/models", "", "agd_kdeadbeefdeadbeef_00",
                   {"X-Forwarded-For: \xff\xfe"}),
              401, "authentication_error");
  ExpectError(Call("GET", "/v1/models", "", "agd_kdeadbeefdeadbeef_00",
                   {"X-Forwarded-For: 203.0.113.66, forged"}),
              401, "authentication_error");
  auto projects = v1::ProjectService::NewStub(harness_.channel());
  v1::ListAuditEventsRequest req;
  v1::ListAuditEventsResponse resp;
  ASSERT_TRUE(projects->ListAuditEvents(testing::Ctx().get(), req, &resp).ok());
  std::string peer;
  for (const v1::AuditEvent& e : resp.events()) {
    if (e.action() == v1::AUDIT_ACTION_AUTHENTICATION_FAILED) peer = e.peer();
  }
  EXPECT_TRUE(absl::StartsWith(peer, "127.0.0.1:")) << peer;
  EXPECT_TRUE(absl::EndsWith(peer, " (x-forwarded-for: 203.0.113.66, forged)")) << peer;
}

TEST_F(OpenAiHttpTest, AuthenticatesLikeGrpc) {
  ExpectError(Call("GET", "/v1/models", "", ""), 401, "authentication_error");
  ExpectError(Call("GET", "/v1/models", "", "agd_wrong_key"), 401, "authentication_error");
  ExpectError(Call("GET", "/v1/models", "", testing::kTestAdminKey, {"OpenAI-Project: other"}), 403,
              "permission_error");
  HttpResult ok =
      Call("GET", "/v1/models", "", testing::kTestAdminKey, {"OpenAI-Project: default"});
  ASSERT_EQ(ok.status, 200) << ok.body;
  json models = ok.Json();
  EXPECT_EQ(models["object"], "list");
  std::vector<std::string> ids;
  for (const json& m : models["data"]) ids.push_back(m["id"]);
  EXPECT_NE(std::find(ids.begin(), ids.end(), "echo"), ids.end()) << ok.body;
  ExpectError(Call("GET", "/v1/nothing/here"), 404, "not_found_error");
}

TEST_F(OpenAiHttpTest, ReaderKeyMayReadButNotWrite) {
  v1::ProjectService::Stub projects(harness_.channel());
  grpc::ClientContext ctx;
  v1::CreateApiKeyRequest req;
  req.set_project_id("default");
  req.set_role(v1::API_KEY_ROLE_READER);
  req.set_name("reader");
  v1::CreateApiKeyResponse key;
  ASSERT_TRUE(projects.CreateApiKey(&ctx, req, &key).ok());
  EXPECT_EQ(Call("GET", "/v1/models", "", key.secret()).status, 200);
  ExpectError(Call("POST", "/v1/responses", R"({"model":"echo","input":"hi"})", key.secret()), 403,
              "permission_error");
  EXPECT_EQ(SessionCount(), 0);
}

TEST_F(OpenAiHttpTest, ResponsesMultiTurnIsOneSessionVisibleThroughGrpc) {
  HttpResult first =
      Post("/v1/responses", {{"model", "echo"}, {"input", "hello"}, {"instructions", "be brief"}});
  ASSERT_EQ(first.status, 200) << first.body;
  json r1 = first.Json();
  EXPECT_EQ(r1["object"], "response");
  EXPECT_EQ(r1["status"], "completed");
  EXPECT_EQ(OutputText(r1), "hello");
  EXPECT_GT(r1["usage"]["total_tokens"].get<int64_t>(), 0);
  const std::string session = r1["conversation"]["id"];

  HttpResult second =
      Post("/v1/responses", {{"model", "echo"},
                             {"previous_response_id", r1["id"]},
                             {"input", {{{"role", "user"}, {"content", "again"}}}}});
  ASSERT_EQ(second.status, 200) << second.body;
  json r2 = second.Json();
  EXPECT_EQ(OutputText(r2), "again");
  EXPECT_EQ(r2["conversation"]["id"], session);
  EXPECT_EQ(r2["previous_response_id"], r1["id"]);
  EXPECT_EQ(SessionCount(), 1);

  // The same turns through gRPC: an ordinary session with both user messages.
  std::vector<std::string> user_texts;
  for (const v1::Event& e : harness_.AllEvents(session)) {
    if (e.type() == v1::EVENT_TYPE_MESSAGE && e.message().role() == v1::ROLE_USER) {
      user_texts.push_back(e.message().text());
    }
  }
  EXPECT_EQ(user_texts, (std::vector<std::string>{"hello", "again"}));

  HttpResult got = Call("GET", "/v1/responses/" + r1["id"].get<std::string>());
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(OutputText(got.Json()), "hello");
  EXPECT_EQ(got.Json()["usage"], r1["usage"]);
  // Read back, a response is the object its POST returned (model: the configured name, not
  // the deployment; instructions: the session agent's, also for the continuing request).
  EXPECT_EQ(r2["instructions"], "be brief");
  for (const json& posted : {r1, r2}) {
    json read = Call("GET", "/v1/responses/" + posted["id"].get<std::string>()).Json();
    json want = posted;
    for (json* j : {&read, &want}) {
      j->erase("created_at");           // when the turn started vs when the POST answered
      j->erase("previous_response_id");  // a property of the request, not of the turn
    }
    EXPECT_EQ(read, want) << read.dump();
  }

  // Continuing from the first response again branches: a fork, the original is untouched.
  const int64_t last_seq = GetSession(session).last_seq();
  HttpResult branch =
      Post("/v1/responses",
           {{"model", "echo"}, {"previous_response_id", r1["id"]}, {"input", "other way"}});
  ASSERT_EQ(branch.status, 200) << branch.body;
  EXPECT_NE(branch.Json()["conversation"]["id"], session);
  EXPECT_EQ(GetSession(session).last_seq(), last_seq);
  EXPECT_EQ(SessionCount(), 2);
}

TEST_F(OpenAiHttpTest, FunctionToolRoundTrip) {
  json r1 = CallingResponse();
  ASSERT_EQ(r1["output"].size(), 1u) << r1.dump();
  const json& call = r1["output"][0];
  EXPECT_EQ(call["type"], "function_call");
  EXPECT_EQ(call["name"], "get_weather");
  EXPECT_EQ(json::parse(call["arguments"].get<std::string>())["city"], "Paris");
  const std::string session = r1["conversation"]["id"];
  EXPECT_EQ(GetSession(session).status(), v1::SESSION_STATUS_REQUIRES_ACTION);

  HttpResult r2 = Post("/v1/responses", {{"model", "echo"},
                                         {"previous_response_id", r1["id"]},
                                         {"tools", {WeatherTool()}},
                                         {"input",
                                          {call,
                                           {{"type", "function_call_output"},
                                            {"call_id", call["call_id"]},
                                            {"output", "sunny, 21C"}}}}});
  ASSERT_EQ(r2.status, 200) << r2.body;
  EXPECT_EQ(OutputText(r2.Json()), "sunny, 21C");
  EXPECT_EQ(GetSession(session).status(), v1::SESSION_STATUS_IDLE);
}

TEST_F(OpenAiHttpTest, ApprovalRequestsRoundTripAsMcpApprovalItems) {
  // An agent whose server-side tool needs approval, reached as model "agent:<id>".
  v1::CreateAgentRequest areq;
  areq.mutable_agent()->set_model("echo");
  v1::ToolSpec* tool = areq.mutable_agent()->add_tools();
  tool->set_name("state_put");
  tool->set_kind(v1::TOOL_KIND_BUILTIN);
  tool->set_requires_approval(true);
  v1::Agent agent;
  ASSERT_TRUE(harness_.agents().CreateAgent(testing::Ctx().get(), areq, &agent).ok());
  const std::string model = "agent:" + agent.agent_id();
  HttpResult r1 = Post("/v1/responses",
                       {{"model", model}, {"input", R"(/tool state_put {"key":"k","value":1})"}});
  ASSERT_EQ(r1.status, 200) << r1.body;
  const json first = r1.Json();
  ASSERT_EQ(first["output"].size(), 1u) << first.dump();
  const json& request = first["output"][0];
  EXPECT_EQ(request["type"], "mcp_approval_request");
  EXPECT_EQ(request["server_label"], "agentd");
  EXPECT_EQ(request["name"], "state_put");
  const std::string session = first["conversation"]["id"];
  EXPECT_EQ(GetSession(session).status(), v1::SESSION_STATUS_REQUIRES_ACTION);

  // A function_call_output cannot answer it, and nothing changes.
  ExpectError(Post("/v1/responses", {{"model", model},
                                     {"previous_response_id", first["id"]},
                                     {"input",
                                      {{{"type", "function_call_output"},
                                        {"call_id", request["id"]},
                                        {"output", "faked"}}}}}),
              400, "invalid_request_error");
  EXPECT_EQ(GetSession(session).status(), v1::SESSION_STATUS_REQUIRES_ACTION);

  HttpResult r2 = Post("/v1/responses", {{"model", model},
                                         {"previous_response_id", first["id"]},
                                         {"input",
                                          {request,
                                           {{"type", "mcp_approval_response"},
                                            {"approval_request_id", request["id"]},
                                            {"approve", true}}}}});
  ASSERT_EQ(r2.status, 200) << r2.body;
  EXPECT_EQ(r2.Json()["status"], "completed");
  EXPECT_EQ(GetSession(session).status(), v1::SESSION_STATUS_IDLE);
  v1::GetStateRequest get;
  get.set_session_id(session);
  get.set_key("k");
  v1::StateEntry entry;
  ASSERT_TRUE(harness_.sessions().GetState(testing::Ctx().get(), get, &entry).ok())
      << "the approved tool ran";
  EXPECT_EQ(entry.value_json(), "1");
}

TEST_F(OpenAiHttpTest, BadInputChangesNothing) {
  json calling = CallingResponse();
  const std::string session = calling["conversation"]["id"];
  const int64_t last_seq = GetSession(session).last_seq();
  const int sessions = SessionCount();

  ExpectError(Call("POST", "/v1/responses", "{\"model\": \"echo\", \"input\": "), 400,
              "invalid_request_error");
  ExpectError(Call("POST", "/v1/responses", "[1,2]"), 400, "invalid_request_error");
  // Routes the door does not have keep OpenAI's error shape too.
  ExpectError(Call("PUT", "/v1/responses", "{}"), 405, "invalid_request_error");
  ExpectError(Call("PATCH", "/v1/models"), 405, "invalid_request_error");
  ExpectError(Call("GET", "/nowhere"), 404, "not_found_error");
  // Paths and ids that are not UTF-8 once decoded: an error, not a crash of the HTTP thread.
  ExpectError(Call("GET", "/%FF%FE"), 404, "not_found_error");
  ExpectError(Call("GET", "/v1/%FF%FE"), 404, "not_found_error");
  const HttpResult bad_id = Call("GET", "/v1/responses/resp_%FF%FE");
  EXPECT_TRUE(bad_id.status == 400 || bad_id.status == 404) << bad_id.body;
  EXPECT_TRUE(bad_id.Json().contains("error")) << bad_id.body;
  EXPECT_EQ(Call("GET", "/v1/models").status, 200);  // still serving
  EXPECT_EQ(ExpectError(Post("/v1/responses", {{"model", "echo"}, {"input", 42}}), 400,
                        "invalid_request_error")["param"],
            "input");
  EXPECT_EQ(ExpectError(Post("/v1/responses", {{"model", 7}, {"input", "x"}}), 400,
                        "invalid_request_error")["param"],
            "model");
  ExpectError(Post("/v1/responses", {{"model", "echo"}, {"input", "x"}, {"stream", "yes"}}), 400,
              "invalid_request_error");
  ExpectError(
      Post("/v1/responses", {{"model", "echo"}, {"input", {{{"role", "user"}, {"content", 5}}}}}),
      400, "invalid_request_error");
  ExpectError(Post("/v1/responses",
                   {{"model", "echo"}, {"input", "x"}, {"tools", {{{"type", "web_search"}}}}}),
              400, "invalid_request_error");
  ExpectError(Post("/v1/responses", {{"model", "no-such-model"}, {"input", "x"}}), 404,
              "not_found_error");
  ExpectError(Post("/v1/responses",
                   {{"model", "echo"}, {"input", "x"}, {"previous_response_id", "resp_nope"}}),
              404, "not_found_error");
  ExpectError(Post("/v1/responses",
                   {{"model", "echo"},
                    {"input", "x"},
                    {"previous_response_id", "resp_0123456789abcdef0123456789abcdef" + session}}),
              404, "not_found_error");
  ExpectError(
      Post("/v1/responses",
           {{"model", "echo"},
            {"previous_response_id", calling["id"]},
            {"input",
             {{{"type", "function_call_output"}, {"call_id", "call_unknown"}, {"output", "x"}}}}}),
      400, "invalid_request_error");
  // Two outputs for the one pending call: 400 (as OpenAI), nothing run.
  std::string call_id;
  for (const json& item : calling["output"]) {
    if (item["type"] == "function_call") call_id = item["call_id"];
  }
  ASSERT_FALSE(call_id.empty()) << calling.dump();
  ExpectError(Post("/v1/responses",
                   {{"model", "echo"},
                    {"previous_response_id", calling["id"]},
                    {"input",
                     {{{"type", "function_call_output"}, {"call_id", call_id}, {"output", "a"}},
                      {{"type", "function_call_output"}, {"call_id", call_id}, {"output", "b"}}}}}),
              400, "invalid_request_error");
  // A function_call_output on a new conversation answers nothing.
  ExpectError(
      Post("/v1/responses",
           {{"model", "echo"},
            {"input",
             {{{"type", "function_call_output"}, {"call_id", "call_1"}, {"output", "x"}}}}}),
      400, "invalid_request_error");
  // Oversized body: 413 before any parsing.
  HttpResult big =
      Call("POST", "/v1/responses",
           json{{"model", "echo"}, {"input", std::string(2 * 1024 * 1024, 'a')}}.dump());
  EXPECT_EQ(big.status, 413);

  EXPECT_EQ(SessionCount(), sessions);
  v1::Session after = GetSession(session);
  EXPECT_EQ(after.last_seq(), last_seq);
  EXPECT_EQ(after.status(), v1::SESSION_STATUS_REQUIRES_ACTION);

  // Unknown fields are ignored.
  HttpResult ok = Post("/v1/responses", {{"model", "echo"},
                                         {"input", "fine"},
                                         {"temperature", 0.2},
                                         {"some_future_field", {{"a", 1}}}});
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(OutputText(ok.Json()), "fine");
}

/// Parses an SSE body into (event, data) pairs.
std::vector<std::pair<std::string, json>> ParseSse(const std::string& body) {
  std::vector<std::pair<std::string, json>> out;
  std::string event;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string::npos) end = body.size();
    std::string line = body.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("event: ", 0) == 0) event = line.substr(7);
    if (line.rfind("data: ", 0) == 0) {
      const std::string data = line.substr(6);
      out.emplace_back(event, data == "[DONE]" ? json("[DONE]") : json::parse(data));
      event.clear();
    }
  }
  return out;
}

TEST_F(OpenAiHttpTest, StreamingEmitsResponsesEventsInOrder) {
  HttpResult r =
      Post("/v1/responses", {{"model", "echo"}, {"input", "stream me"}, {"stream", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  auto events = ParseSse(r.body);
  std::vector<std::string> types;
  std::string text;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].first, events[i].second["type"]);
    EXPECT_EQ(events[i].second["sequence_number"], i);
    types.push_back(events[i].first);
    if (events[i].first == "response.output_text.delta") text += events[i].second["delta"];
  }
  ASSERT_GE(types.size(), 8u) << r.body;
  EXPECT_EQ(types[0], "response.created");
  EXPECT_EQ(types[1], "response.in_progress");
  EXPECT_EQ(types[2], "response.output_item.added");
  EXPECT_EQ(types[3], "response.content_part.added");
  EXPECT_EQ(types[4], "response.output_text.delta");
  EXPECT_EQ(types.back(), "response.completed");
  EXPECT_EQ(text, "stream me");
  const json& done = events.back().second["response"];
  EXPECT_EQ(OutputText(done), "stream me");
  EXPECT_EQ(done["id"], events[0].second["response"]["id"]);

  // A function call streams as its own item with argument deltas.
  HttpResult c = Post("/v1/responses", {{"model", "echo"},
                                        {"input", R"(/tool get_weather {"city":"Oslo"})"},
                                        {"tools", {WeatherTool()}},
                                        {"stream", true}});
  ASSERT_EQ(c.status, 200) << c.body;
  bool saw_args = false;
  for (const auto& [type, data] : ParseSse(c.body)) {
    if (type == "response.function_call_arguments.delta") {
      saw_args = true;
      EXPECT_EQ(json::parse(data["delta"].get<std::string>())["city"], "Oslo");
    }
  }
  EXPECT_TRUE(saw_args) << c.body;
}

// Aborts the transfer once the body contains `marker` (the client goes away mid-stream).
struct AbortAfter {
  std::string marker;
  std::string body;
};

size_t CollectUntil(char* data, size_t size, size_t n, void* user) {
  auto* st = static_cast<AbortAfter*>(user);
  st->body.append(data, size * n);
  return st->body.find(st->marker) != std::string::npos ? 0 : size * n;
}

TEST_F(OpenAiHttpTest, ClientLeavingAStreamCancelsTheTurn) {
  backend::ScriptedReply slow;
  slow.text = "first words and the rest";
  slow.deltas = {"first words"};
  slow.delay = absl::Seconds(20);  // the answer would come long after the client left
  harness_.scripted().Push(slow);

  AbortAfter st{"response.output_text.delta", ""};
  CURL* easy = curl_easy_init();
  const std::string url = Url("/v1/responses");
  const std::string body = json{{"model", "scripted"}, {"input", "go"}, {"stream", true}}.dump();
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  headers = curl_slist_append(
      headers, (std::string("Authorization: Bearer ") + testing::kTestAdminKey).c_str());
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &CollectUntil);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &st);
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  EXPECT_EQ(curl_easy_perform(easy), CURLE_WRITE_ERROR);  // we aborted after the first delta
  curl_slist_free_all(headers);
  curl_easy_cleanup(easy);

  auto events = ParseSse(st.body.substr(0, st.body.rfind("\n\n") + 2));
  ASSERT_FALSE(events.empty()) << st.body;
  const std::string session = events[0].second["response"]["conversation"]["id"];
  // The turn is cancelled well before the model's 20 s answer (bounded wait for the record).
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  v1::TurnStatus status = v1::TURN_STATUS_UNSPECIFIED;
  while (absl::Now() < deadline && status == v1::TURN_STATUS_UNSPECIFIED) {
    for (const v1::Event& e : harness_.AllEvents(session)) {
      if (e.type() == v1::EVENT_TYPE_TURN_FAILED || e.type() == v1::EVENT_TYPE_TURN_COMPLETED) {
        status = e.turn().status();
      }
    }
    if (status == v1::TURN_STATUS_UNSPECIFIED) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_EQ(status, v1::TURN_STATUS_CANCELLED);
}

TEST_F(OpenAiHttpTest, ChatCompletionsStatelessWithUsage) {
  const int sessions = SessionCount();
  HttpResult r =
      Post("/v1/chat/completions",
           {{"model", "echo"},
            {"messages",
             {{{"role", "system"}, {"content", "sys"}}, {{"role", "user"}, {"content", "ping"}}}}});
  ASSERT_EQ(r.status, 200) << r.body;
  json j = r.Json();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "ping");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_GT(j["usage"]["total_tokens"].get<int64_t>(), 0);

  HttpResult s =
      Post("/v1/chat/completions", {{"model", "echo"},
                                    {"stream", true},
                                    {"stream_options", {{"include_usage", true}}},
                                    {"messages", {{{"role", "user"}, {"content", "pong"}}}}});
  ASSERT_EQ(s.status, 200) << s.body;
  auto chunks = ParseSse(s.body);
  ASSERT_FALSE(chunks.empty());
  EXPECT_EQ(chunks.back().second, "[DONE]");
  std::string text;
  bool usage = false;
  for (const auto& [type, data] : chunks) {
    if (!data.is_object()) continue;
    EXPECT_EQ(data["object"], "chat.completion.chunk");
    if (!data["choices"].empty() && data["choices"][0]["delta"].contains("content")) {
      text += data["choices"][0]["delta"]["content"].get<std::string>();
    }
    usage |= data.contains("usage");
  }
  EXPECT_EQ(text, "pong");
  EXPECT_TRUE(usage);
  EXPECT_EQ(SessionCount(), sessions);  // stateless

  ExpectError(Post("/v1/chat/completions", {{"model", "echo"}, {"messages", "hi"}}), 400,
              "invalid_request_error");
  ExpectError(Post("/v1/chat/completions",
                   {{"model", "nope"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}}),
              404, "not_found_error");
}

TEST_F(OpenAiHttpTest, ExhaustedLimitIs429) {
  v1::ProjectService::Stub projects(harness_.channel());
  grpc::ClientContext ctx;
  v1::SetLimitsRequest req;
  req.set_project_id("default");
  req.mutable_limits()->set_daily_token_limit(1);
  v1::Project project;
  ASSERT_TRUE(projects.SetLimits(&ctx, req, &project).ok());
  // The first call may pass (the limit is checked before spending); the next must not.
  Post("/v1/chat/completions",
       {{"model", "echo"}, {"messages", {{{"role", "user"}, {"content", "spend tokens"}}}}});
  ExpectError(Post("/v1/chat/completions",
                   {{"model", "echo"}, {"messages", {{{"role", "user"}, {"content", "x"}}}}}),
              429, "rate_limit_error");
  ExpectError(Post("/v1/responses", {{"model", "echo"}, {"input", "x"}}), 429, "rate_limit_error");
}

TEST_F(OpenAiHttpTest, ConversationsAreSessions) {
  HttpResult created = Post("/v1/conversations", {{"model", "echo"}, {"metadata", {{"app", "t"}}}});
  ASSERT_EQ(created.status, 200) << created.body;
  const std::string id = created.Json()["id"];
  EXPECT_EQ(GetSession(id).metadata().at("app"), "t");
  for (const char* text : {"one", "two"}) {
    HttpResult r = Post("/v1/responses", {{"conversation", id}, {"input", text}});
    ASSERT_EQ(r.status, 200) << r.body;
  }
  HttpResult items = Call("GET", "/v1/conversations/" + id + "/items?limit=3");
  ASSERT_EQ(items.status, 200) << items.body;
  json page = items.Json();
  ASSERT_EQ(page["data"].size(), 3u);
  EXPECT_TRUE(page["has_more"].get<bool>());
  EXPECT_EQ(page["data"][0]["content"][0]["text"], "one");
  HttpResult rest =
      Call("GET", "/v1/conversations/" + id + "/items?after=" + page["last_id"].get<std::string>());
  ASSERT_EQ(rest.status, 200) << rest.body;
  ASSERT_EQ(rest.Json()["data"].size(), 1u);
  EXPECT_EQ(rest.Json()["data"][0]["content"][0]["text"], "two");

  EXPECT_EQ(Call("GET", "/v1/conversations/" + id).status, 200);
  EXPECT_EQ(Call("DELETE", "/v1/conversations/" + id).status, 200);
  ExpectError(Call("GET", "/v1/conversations/" + id), 404, "not_found_error");
}

TEST_F(OpenAiHttpTest, DeleteAndCancelResponses) {
  HttpResult r = Post("/v1/responses", {{"model", "echo"}, {"input", "bye"}});
  ASSERT_EQ(r.status, 200);
  const std::string id = r.Json()["id"];
  ExpectError(Call("POST", "/v1/responses/" + id + "/cancel"), 409, "conflict_error");
  HttpResult del = Call("DELETE", "/v1/responses/" + id);
  ASSERT_EQ(del.status, 200) << del.body;
  EXPECT_TRUE(del.Json()["deleted"].get<bool>());
  ExpectError(Call("GET", "/v1/responses/" + id), 404, "not_found_error");
  EXPECT_EQ(SessionCount(), 0);

  // store:false keeps nothing.
  HttpResult ephemeral =
      Post("/v1/responses", {{"model", "echo"}, {"input", "x"}, {"store", false}});
  ASSERT_EQ(ephemeral.status, 200) << ephemeral.body;
  EXPECT_EQ(OutputText(ephemeral.Json()), "x");
  EXPECT_EQ(SessionCount(), 0);
}

}  // namespace
}  // namespace agentd
