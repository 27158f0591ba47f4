// The MCP client (src/tools/mcp_client.h) and registry helpers against a tiny fake MCP server
// on loopback: JSON and SSE answers, session ids and protocol headers, pagination, session
// expiry, cancellation on deadline, errors, and secrets kept out of messages.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "mcp/fake_mcp_server.h"
#include "tools/mcp_client.h"
#include "tools/mcp_registry.h"
#include "tools/tool_gateway.h"

namespace agentd::tools {
namespace {

using nlohmann::json;
using testing::FakeMcpServer;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kSecret[] = "Bearer sk-very-secret-token";

McpClientOptions Options(const std::string& url) {
  McpClientOptions o;
  o.name = "fake";
  o.url = url;
  o.headers["Authorization"] = kSecret;
  return o;
}

absl::Time Soon(int ms = 5000) { return absl::Now() + absl::Milliseconds(ms); }

std::vector<std::string> Names(const std::vector<McpTool>& tools) {
  std::vector<std::string> names;
  for (const McpTool& t : tools) names.push_back(t.name);
  return names;
}

class McpClientTest : public ::testing::TestWithParam<bool> {};  // param: SSE answers

TEST_P(McpClientTest, InitializesListsAllPagesAndCallsWithSessionHeaders) {
  FakeMcpServer::Options so;
  so.sse = GetParam();
  FakeMcpServer server(so);
  McpClient client(Options(server.url()));

  auto tools = client.ListTools(Soon());
  ASSERT_TRUE(tools.ok()) << tools.status();
  EXPECT_THAT(Names(*tools), ::testing::ElementsAre("echo", "add", "fail", "slow", "big"));
  EXPECT_EQ((*tools)[0].description, "The echo tool.");
  EXPECT_EQ((*tools)[0].input_schema["type"], "object");
  EXPECT_EQ(client.protocol_version(), "2025-06-18");
  EXPECT_EQ(client.session_id(), "sess-1");

  auto r = client.CallTool("echo", {{"message", "hi"}}, Soon());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->is_error);
  EXPECT_EQ(McpRegistry::ResultText(*r), "Echo: hi");

  const auto received = server.received();
  ASSERT_EQ(received.size(), 6u);  // initialize, initialized, 3 pages, call
  EXPECT_EQ(received[0].message["method"], "initialize");
  EXPECT_EQ(received[0].message["params"]["protocolVersion"], McpProtocolVersions().front());
  EXPECT_EQ(received[0].session_id, "") << "no session before initialize";
  EXPECT_EQ(received[0].protocol_version, "") << "no version header before negotiation";
  EXPECT_EQ(received[1].message["method"], "notifications/initialized");
  EXPECT_FALSE(received[1].message.contains("id"));
  EXPECT_EQ(received[3].message["params"]["cursor"], "2");
  EXPECT_EQ(received[4].message["params"]["cursor"], "4");
  for (size_t i = 1; i < received.size(); ++i) {
    EXPECT_EQ(received[i].session_id, "sess-1") << i;
    EXPECT_EQ(received[i].protocol_version, "2025-06-18") << i;
  }
  for (const auto& m : received) {
    EXPECT_EQ(m.authorization, kSecret);
    EXPECT_THAT(m.accept, HasSubstr("text/event-stream"));
    EXPECT_THAT(m.accept, HasSubstr("application/json"));
  }
}

TEST_P(McpClientTest, IsErrorResultsAndRpcErrorsAreTellable) {
  FakeMcpServer::Options so;
  so.sse = GetParam();
  FakeMcpServer server(so);
  McpClient client(Options(server.url()));
  auto r = client.CallTool("fail", json::object(), Soon());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->is_error);
  EXPECT_EQ(McpRegistry::ResultText(*r), "it failed");

  auto unknown = client.CallTool("nope", json::object(), Soon());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("MCP server \"fake\""));
  EXPECT_THAT(std::string(unknown.status().message()), HasSubstr("Unknown tool"));
}

INSTANTIATE_TEST_SUITE_P(JsonAndSse, McpClientTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Sse" : "Json"; });

TEST(McpClientSse, ListChangedNotificationBumpsTheGenerationAndServerRequestsAreIgnored) {
  FakeMcpServer::Options so;
  so.sse = true;  // the first tools/list page comes with list_changed and a ping request first
  FakeMcpServer server(so);
  McpClient client(Options(server.url()));
  ASSERT_TRUE(client.ListTools(Soon()).ok());
  const int64_t after_first = client.tools_generation();
  ASSERT_TRUE(client.ListTools(Soon()).ok());
  EXPECT_EQ(client.tools_generation(), after_first + 1);
}

class McpClientSession : public ::testing::TestWithParam<int> {};  // param: unknown-session status

TEST_P(McpClientSession, ExpiredSessionIsInitializedAgainOnce) {
  FakeMcpServer::Options so;
  so.unknown_session_status = GetParam();
  FakeMcpServer server(so);
  McpClient client(Options(server.url()));
  ASSERT_TRUE(client.CallTool("echo", {{"message", "a"}}, Soon()).ok());
  EXPECT_EQ(client.session_id(), "sess-1");
  server.ForgetSessions();  // as a restarted server would
  auto r = client.CallTool("echo", {{"message", "b"}}, Soon());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(McpRegistry::ResultText(*r), "Echo: b");
  EXPECT_EQ(client.session_id(), "sess-2");
  EXPECT_EQ(server.Count("initialize"), 2);
  EXPECT_EQ(server.Count("tools/call"), 3);  // ok, 404 (or 400), resent
}

INSTANTIATE_TEST_SUITE_P(NotFoundAndBadRequest, McpClientSession, ::testing::Values(404, 400));

TEST(McpClientErrors, WrongEndpointIsAnHttpErrorNotASessionRetry) {
  FakeMcpServer server({});
  McpClient wrong(Options(server.url() + "/nope"));  // 404 before any session exists
  auto r = wrong.ListTools(Soon());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("HTTP 404"));
  EXPECT_EQ(server.Count("initialize"), 0);
}

TEST(McpClientDeadline, SlowCallIsCancelledAtTheDeadlineWithANotification) {
  FakeMcpServer::Options so;
  so.slow_tool_ms = 2500;
  FakeMcpServer server(so);
  McpClient client(Options(server.url()));
  const absl::Time start = absl::Now();
  auto r = client.CallTool("slow", json::object(), Soon(500));
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded) << r.status();
  EXPECT_LT(took, absl::Seconds(2)) << "the client gave up at its deadline, not the server's pace";
  int64_t call_id = -1;
  bool cancelled_sent = false;
  for (const auto& m : server.received()) {
    if (m.message.value("method", std::string()) == "tools/call") call_id = m.message["id"];
    if (m.message.value("method", std::string()) == "notifications/cancelled") {
      cancelled_sent = true;
      EXPECT_EQ(m.message["params"]["requestId"], call_id);
      EXPECT_EQ(m.session_id, "sess-1");
    }
  }
  EXPECT_TRUE(cancelled_sent);
}

TEST(McpClientDeadline, CancelPredicateStopsTheCall) {
  FakeMcpServer::Options so;
  so.slow_tool_ms = 2500;
  FakeMcpServer server(so);
  McpClient client(Options(server.url()));
  const absl::Time cancel_at = absl::Now() + absl::Milliseconds(300);
  auto r = client.CallTool("slow", json::object(), Soon(10000),
                           [cancel_at] { return absl::Now() >= cancel_at; });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled) << r.status();
  EXPECT_EQ(server.Count("notifications/cancelled"), 1);
}

TEST(McpClientErrors, ServerDownIsUnavailableAndRetriedLazily) {
  int port;
  {
    FakeMcpServer gone({});
    port = std::stoi(gone.url().substr(gone.url().rfind(':') + 1));
  }
  McpClient client(Options(absl::StrCat("http://127.0.0.1:", port, "/mcp")));
  auto r = client.ListTools(Soon(2000));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("MCP server \"fake\""));
  EXPECT_EQ(client.session_id(), "");
}

TEST(McpClientErrors, SecretsNeverAppearInErrors) {
  FakeMcpServer::Options so;
  so.echo_auth_in_500 = true;
  FakeMcpServer server(so);
  McpClient client(Options(server.url()));
  auto r = client.CallTool("echo", json::object(), Soon());
  ASSERT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  const std::string message(r.status().message());
  EXPECT_THAT(message, HasSubstr("HTTP 500"));
  EXPECT_THAT(message, HasSubstr("[redacted]"));
  EXPECT_THAT(message, Not(HasSubstr("sk-very-secret-token")));
}

TEST(McpClientErrors, UnsupportedProtocolVersionIsRefused) {
  FakeMcpServer::Options so;
  so.protocol_version = "2024-11-05";
  FakeMcpServer server(so);
  McpClient client(Options(server.url()));
  auto r = client.ListTools(Soon());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("2024-11-05"));
}

TEST(McpRegistryNames, ModelNamesAreValidFunctionNames) {
  EXPECT_EQ(McpRegistry::ModelToolName("everything", "get-sum"), "mcp__everything__get-sum");
  EXPECT_EQ(McpRegistry::ModelToolName("fs", "read.file v2"), "mcp__fs__read_file_v2");
  const std::string a = McpRegistry::ModelToolName("srv", std::string(80, 'a'));
  const std::string b = McpRegistry::ModelToolName("srv", std::string(79, 'a') + "b");
  EXPECT_EQ(a.size(), 64u);
  EXPECT_EQ(b.size(), 64u);
  EXPECT_NE(a, b) << "long names stay distinct (hash suffix)";
  EXPECT_EQ(a, McpRegistry::ModelToolName("srv", std::string(80, 'a'))) << "stable";

  std::string server, tool;
  EXPECT_TRUE(McpRegistry::ParseSpecName("mcp:everything/echo", &server, &tool));
  EXPECT_EQ(server, "everything");
  EXPECT_EQ(tool, "echo");
  EXPECT_TRUE(McpRegistry::ParseSpecName("mcp:everything", &server, &tool));
  EXPECT_EQ(tool, "");
  EXPECT_FALSE(McpRegistry::ParseSpecName("mcp:", &server, &tool));
  EXPECT_FALSE(McpRegistry::ParseSpecName("mcp:everything/", &server, &tool));
  EXPECT_FALSE(McpRegistry::ParseSpecName("everything/echo", &server, &tool));
}

TEST(McpRegistryResults, TruncationIsVisibleAndKeepsUtf8Whole) {
  std::string text = "ab\xC3\xA9" "cd";  // "abécd": é is 2 bytes at offsets 2..3
  EXPECT_TRUE(McpRegistry::Truncate(&text, 3));
  EXPECT_EQ(text, "ab\n[agentd: output truncated: 2 of 6 bytes shown]");
  std::string small = "fine";
  EXPECT_FALSE(McpRegistry::Truncate(&small, 4));
  EXPECT_EQ(small, "fine");
}

TEST(McpRegistryResults, RegistryCallTruncatesAndLabelsResults) {
  FakeMcpServer server({});
  McpRegistryOptions o;
  o.servers.push_back({"fake", server.url(), {{"Authorization", kSecret}}, absl::Seconds(5), {}});
  ToolGatewayOptions go;
  go.max_result_bytes = 1024;
  go.mcp = std::move(o);
  auto gateway = ToolGateway::Create(std::move(go));
  ASSERT_TRUE(gateway.ok()) << gateway.status();
  std::string warning;
  auto tools = (*gateway)->Resolve("mcp:fake/big", ToolAllowList(), Soon(), &warning);
  ASSERT_EQ(tools.size(), 1u) << warning;
  EXPECT_EQ(tools[0].model_name, "mcp__fake__big");
  EXPECT_EQ(tools[0].spec_name, "mcp:fake/big");
  v1::ToolResult r = (*gateway)->Call(tools[0], json::object(), ToolAllowList(), Soon(), nullptr);
  EXPECT_FALSE(r.is_error());
  EXPECT_TRUE(r.truncated());
  EXPECT_EQ(r.served_by(), "mcp:fake");
  EXPECT_GE(r.duration_ms(), 0);
  EXPECT_THAT(r.output(), HasSubstr("[agentd: output truncated: 1024 of "));
  EXPECT_LE(r.output().size(), 1024u + 80u);

  // A whole server, minus what allowed_tools leaves out.
  McpRegistryOptions o2;
  o2.servers.push_back({"fake", server.url(), {}, absl::Seconds(5), {"echo", "fail"}});
  McpRegistry limited(std::move(o2));
  auto all = limited.Resolve("mcp:fake", Soon(), &warning);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].tool, "echo");
  EXPECT_EQ(all[1].tool, "fail");
  EXPECT_TRUE(limited.Resolve("mcp:fake/big", Soon(), &warning).empty());
  EXPECT_EQ(limited.CheckSpec("mcp:fake/big", "", "agent.tools[0]").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(limited.CheckSpec("mcp:other/echo", "", "agent.tools[0]").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(limited.CheckSpec("mcp:fake/echo", "", "agent.tools[0]").ok());
}

TEST(McpRegistryResults, NonTextBlocksBecomePlaceholders) {
  McpCallResult r;
  r.content = json::parse(R"([{"type":"text","text":"one"},
      {"type":"image","mimeType":"image/png","data":"AAAABBBB"},
      {"type":"resource","resource":{"uri":"file:///a.txt","text":"inline text"}},
      {"type":"resource_link","uri":"file:///b","name":"b"}])");
  EXPECT_EQ(McpRegistry::ResultText(r),
            "one\n[image image/png, 8 bytes of base64 omitted]\ninline text\n"
            "[resource link file:///b (b)]");
  McpCallResult hostile;  // wrong types from a server never throw
  hostile.content = json::parse(R"([{"type":5,"text":7},{"type":"text","text":["x"]},3])");
  EXPECT_EQ(McpRegistry::ResultText(hostile), "[unknown , 0 bytes of base64 omitted]\n[text , 0 bytes of base64 omitted]");
  McpCallResult structured;
  structured.structured_content = {{"temperature", 21}};
  EXPECT_EQ(McpRegistry::ResultText(structured), R"({"temperature":21})");
}

}  // namespace
}  // namespace agentd::tools
