// The OpenAI-compatible HTTP door: what a request makes, and leaves behind, when it continues a
// conversation. Refused requests leave no session or fork, store:false never changes a stored
// session, two requests continuing the same response never share a history, and documents too
// deep to handle are refused before anything runs.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/barrier.h"
#include "absl/time/clock.h"
#include "agentd/v1/agent.grpc.pb.h"
#include "openai/response_view.h"
#include "openai_http_fixture.h"

namespace agentd {
namespace {

using openai_http_test::HttpResult;
using openai_http_test::json;
using openai_http_test::OpenAiHttpTest;
using testing::ServerHarness;

/// The user messages of `session`, in order.
std::vector<std::string> UserTexts(ServerHarness& h, const std::string& session) {
  grpc::ClientContext ctx;
  v1::ListEventsRequest req;
  req.set_session_id(session);
  v1::ListEventsResponse resp;
  EXPECT_TRUE(h.sessions().ListEvents(&ctx, req, &resp).ok());
  std::vector<std::string> texts;
  for (const v1::Event& e : resp.events()) {
    if (e.has_message() && e.message().role() == v1::ROLE_USER) texts.push_back(e.message().text());
  }
  return texts;
}

TEST_F(OpenAiHttpTest, RefusedRequestsLeaveNoSessionAndNoFork) {
  const int sessions = SessionCount();
  json many = json::array();
  for (int i = 0; i < 65; ++i) many.push_back({{"role", "user"}, {"content", "m"}});
  // Refused by the turn's own checks, after the door made a session for it.
  ExpectError(Post("/v1/responses", {{"model", "echo"}, {"input", many}}), 400,
              "invalid_request_error");
  EXPECT_EQ(SessionCount(), sessions);

  // An earlier response continued with input its turn refuses: the fork made for it goes too,
  // so the original can still be deleted.
  json calling = CallingResponse();
  HttpResult answered =
      Post("/v1/responses", {{"model", "echo"},
                             {"previous_response_id", calling["id"]},
                             {"input",
                              {{{"type", "function_call_output"},
                                {"call_id", calling["output"][0]["call_id"]},
                                {"output", "sunny"}}}}});
  ASSERT_EQ(answered.status, 200) << answered.body;
  const int before_fork = SessionCount();
  ExpectError(Post("/v1/responses",
                   {{"model", "echo"}, {"previous_response_id", calling["id"]}, {"input", many}}),
              400, "invalid_request_error");
  EXPECT_EQ(SessionCount(), before_fork);
  HttpResult deleted = Call("DELETE", "/v1/responses/" + answered.Json()["id"].get<std::string>());
  EXPECT_EQ(deleted.status, 200) << deleted.body;
}

TEST_F(OpenAiHttpTest, StoreFalseNeverChangesAStoredSession) {
  HttpResult first = Post("/v1/responses", {{"model", "echo"}, {"input", "one"}});
  ASSERT_EQ(first.status, 200) << first.body;
  const std::string session = first.Json()["conversation"]["id"];
  const int64_t last_seq = GetSession(session).last_seq();
  const int sessions = SessionCount();

  HttpResult unstored = Post("/v1/responses", {{"previous_response_id", first.Json()["id"]},
                                               {"input", "two"},
                                               {"store", false}});
  ASSERT_EQ(unstored.status, 200) << unstored.body;
  EXPECT_EQ(OutputText(unstored.Json()), "two");
  HttpResult in_conversation =
      Post("/v1/responses", {{"conversation", session}, {"input", "three"}, {"store", false}});
  ASSERT_EQ(in_conversation.status, 200) << in_conversation.body;
  EXPECT_EQ(OutputText(in_conversation.Json()), "three");

  EXPECT_EQ(GetSession(session).last_seq(), last_seq);
  EXPECT_EQ(UserTexts(harness_, session), std::vector<std::string>{"one"});
  EXPECT_EQ(SessionCount(), sessions);
  // A continuation that names no model answers with the model it ran on.
  EXPECT_EQ(unstored.Json()["model"], "echo");
}

TEST_F(OpenAiHttpTest, StoreFalseOnABusyConversationIsRefused) {
  HttpResult conversation = Post("/v1/conversations", {{"model", "scripted"}});
  ASSERT_EQ(conversation.status, 200) << conversation.body;
  const std::string id = conversation.Json()["id"];
  backend::ScriptedReply slow;
  slow.text = "late";
  slow.delay = absl::Seconds(2);
  harness_.scripted().Push(slow);
  HttpResult running;
  std::thread post([&] { running = Post("/v1/responses", {{"conversation", id}, {"input", "go"}}); });
  for (int i = 0; i < 250 && GetSession(id).status() != v1::SESSION_STATUS_RUNNING; ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(GetSession(id).status(), v1::SESSION_STATUS_RUNNING);
  // A fork now would hold the running turn's unfinished half.
  const int sessions = SessionCount();
  ExpectError(Post("/v1/responses", {{"conversation", id}, {"input", "aside"}, {"store", false}}),
              409, "conflict_error");
  EXPECT_EQ(SessionCount(), sessions);
  post.join();
  EXPECT_EQ(running.status, 200) << running.body;
}

// Timing decides which path a loser takes (wait for the winner, then branch; or find the
// response no longer the latest and fork at once): both must give every request its own history.
TEST_F(OpenAiHttpTest, ContinuationsOfOneResponseNeverShareAHistory) {
  HttpResult base = Post("/v1/responses", {{"model", "echo"}, {"input", "base"}});
  ASSERT_EQ(base.status, 200) << base.body;
  const json base_id = base.Json()["id"];
  constexpr int kRequests = 6;
  absl::Barrier* start = new absl::Barrier(kRequests);
  std::vector<HttpResult> results(kRequests);
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back([&, i] {
      if (start->Block()) delete start;
      results[i] = Post("/v1/responses", {{"previous_response_id", base_id},
                                          {"input", "c" + std::to_string(i)}});
    });
  }
  for (std::thread& t : threads) t.join();
  // One appends to the base's session; the others find it moved on (or busy) and branch.
  std::set<std::string> sessions;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_EQ(results[i].status, 200) << results[i].body;
    EXPECT_EQ(OutputText(results[i].Json()), "c" + std::to_string(i));
    // Each continuation's session holds the base and its own input, never a sibling's.
    const std::string session = results[i].Json()["conversation"]["id"];
    sessions.insert(session);
    EXPECT_EQ(UserTexts(harness_, session),
              (std::vector<std::string>{"base", "c" + std::to_string(i)}));
  }
  EXPECT_EQ(sessions.size(), static_cast<size_t>(kRequests));
}

TEST_F(OpenAiHttpTest, ADeletedImplicitAgentIsReplacedNotAPermanent404) {
  const json request = {{"model", "echo"}, {"input", "x"}, {"instructions", "I"}};
  HttpResult first = Post("/v1/responses", request);
  ASSERT_EQ(first.status, 200) << first.body;
  const std::string session = first.Json()["conversation"]["id"];
  const std::string agent_id = GetSession(session).agent_id();
  grpc::ClientContext ctx;
  v1::DeleteAgentRequest del;
  del.set_agent_id(agent_id);
  google::protobuf::Empty empty;
  ASSERT_TRUE(harness_.agents().DeleteAgent(&ctx, del, &empty).ok());

  HttpResult again = Post("/v1/responses", request);
  ASSERT_EQ(again.status, 200) << again.body;
  const std::string replacement = GetSession(again.Json()["conversation"]["id"]).agent_id();
  EXPECT_NE(replacement, agent_id);
  HttpResult third = Post("/v1/responses", request);
  ASSERT_EQ(third.status, 200) << third.body;
  EXPECT_EQ(GetSession(third.Json()["conversation"]["id"]).agent_id(), replacement);  // reused
  EXPECT_EQ(Post("/v1/conversations", {{"model", "echo"}}).status, 200);
}

TEST_F(OpenAiHttpTest, ACancelledResponseSaysWhatItWas) {
  backend::ScriptedReply slow;
  slow.text = "late";
  slow.delay = absl::Seconds(20);
  harness_.scripted().Push(slow);
  HttpResult running;
  std::thread post([&] {
    running = Post("/v1/responses", {{"model", "scripted"}, {"input", "go"}, {"instructions", "be terse"}});
  });
  // The running turn's response id, from its TURN_STARTED event.
  std::string id;
  for (int i = 0; i < 250 && id.empty(); ++i) {
    grpc::ClientContext ctx;
    v1::ListSessionsRequest list;
    v1::ListSessionsResponse sessions;
    ASSERT_TRUE(harness_.sessions().ListSessions(&ctx, list, &sessions).ok());
    for (const v1::Session& s : sessions.sessions()) {
      grpc::ClientContext events_ctx;
      v1::ListEventsRequest req;
      req.set_session_id(s.session_id());
      v1::ListEventsResponse events;
      ASSERT_TRUE(harness_.sessions().ListEvents(&events_ctx, req, &events).ok());
      for (const v1::Event& e : events.events()) {
        if (e.type() == v1::EVENT_TYPE_TURN_STARTED) {
          id = openai::MakeResponseId(s.session_id(), e.turn_id());
        }
      }
    }
    if (id.empty()) absl::SleepFor(absl::Milliseconds(20));
  }
  ASSERT_FALSE(id.empty());
  HttpResult cancelled = Call("POST", "/v1/responses/" + id + "/cancel");
  post.join();
  ASSERT_EQ(cancelled.status, 200) << cancelled.body;
  const json c = cancelled.Json();
  EXPECT_EQ(c["status"], "cancelled");
  EXPECT_EQ(c["model"], "scripted");
  EXPECT_EQ(c["instructions"], "be terse");
  HttpResult got = Call("GET", "/v1/responses/" + id);
  ASSERT_EQ(got.status, 200) << got.body;
  EXPECT_EQ(got.Json()["created_at"], c["created_at"]);
}

/// Sends `request` as raw bytes to the door and returns what came back first (curl would encode
/// the bytes a hostile client sends as they are).
std::string RawExchange(const std::string& address, const std::string& request) {
  const int port = std::stoi(address.substr(address.rfind(':') + 1));
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string got;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0 &&
      ::send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size())) {
    char buf[512];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) got.assign(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return got;
}

TEST_F(OpenAiHttpTest, PathBytesThatAreNotUtf8AreAnErrorNotACrash) {
  for (const char* path : {"/\xff", "/v1/\xff\xfe", "/v1/responses/resp_\xff"}) {
    const std::string answer = RawExchange(
        harness_.server().http_address(),
        std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
            testing::kTestAdminKey + "\r\n\r\n");
    EXPECT_TRUE(answer.rfind("HTTP/1.1 404", 0) == 0 || answer.rfind("HTTP/1.1 400", 0) == 0)
        << path << ": " << answer;
  }
  EXPECT_EQ(Call("GET", "/v1/models").status, 200);  // still serving
}

TEST_F(OpenAiHttpTest, DocumentsNestedTooDeeplyAreRefused) {
  const int sessions = SessionCount();
  const std::string deep = std::string(200, '[') + std::string(200, ']');
  HttpResult r =
      Call("POST", "/v1/responses", R"({"model":"echo","input":"x","metadata":)" + deep + "}");
  const json e = ExpectError(r, 400, "invalid_request_error");
  EXPECT_NE(e.value("message", "").find("deeper than 128"), std::string::npos) << r.body;
  ExpectError(Call("POST", "/v1/chat/completions",
                   R"({"model":"echo","messages":[{"role":"user","content":"x"}],"x":)" + deep +
                       "}"),
              400, "invalid_request_error");
  EXPECT_EQ(SessionCount(), sessions);
}

}  // namespace
}  // namespace agentd
