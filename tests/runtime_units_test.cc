// Unit tests for the pure parts of src/runtime: validation, context assembly, event fan-out.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "runtime/context_builder.h"
#include "runtime/event_hub.h"
#include "runtime/limits.h"
#include "runtime/validation.h"

namespace agentd::runtime {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// Asserts INVALID_ARGUMENT with a message naming `field`.
#define EXPECT_INVALID(status_expr, field)                            \
  do {                                                                \
    const absl::Status st_ = (status_expr);                           \
    EXPECT_EQ(st_.code(), absl::StatusCode::kInvalidArgument) << st_; \
    EXPECT_THAT(std::string(st_.message()), HasSubstr(field)) << st_; \
  } while (0)

// ---------------------------------------------------------------------------------------------
// ValidateAgentSpec

bool OnlyEchoExists(const std::string& model) { return model == "echo"; }

v1::Agent ValidAgent() {
  v1::Agent a;
  a.set_name("helper");
  a.set_model("echo");
  a.set_instructions("Be helpful.");
  v1::ToolSpec* t = a.add_tools();
  t->set_name("get_weather");
  t->set_description("Weather by city");
  t->set_parameters_json_schema(R"({"type":"object","properties":{"city":{"type":"string"}}})");
  t->set_kind(v1::TOOL_KIND_CLIENT);
  a.set_max_steps_per_turn(8);
  (*a.mutable_metadata())["team"] = "search";
  return a;
}

TEST(ValidateAgentSpecTest, AcceptsAValidAgent) {
  EXPECT_TRUE(ValidateAgentSpec(ValidAgent(), OnlyEchoExists).ok());
  v1::Agent minimal;
  minimal.set_model("echo");
  EXPECT_TRUE(ValidateAgentSpec(minimal, OnlyEchoExists).ok());
}

TEST(ValidateAgentSpecTest, ModelIsRequiredAndMustExist) {
  v1::Agent a = ValidAgent();
  a.clear_model();
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.model");
  a.set_model("gpt-unknown");
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.model");
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "gpt-unknown");
}

TEST(ValidateAgentSpecTest, RejectsSchemaThatIsNotJson) {
  v1::Agent a = ValidAgent();
  a.mutable_tools(0)->set_parameters_json_schema("{not json");
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.tools[0].parameters_json_schema");
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "not valid JSON");
}

TEST(ValidateAgentSpecTest, RejectsSchemaThatIsJsonButNotAnObject) {
  v1::Agent a = ValidAgent();
  for (const char* schema : {"[1,2]", "\"object\"", "42", "null"}) {
    a.mutable_tools(0)->set_parameters_json_schema(schema);
    EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.tools[0].parameters_json_schema");
    EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "JSON object");
  }
  a.mutable_tools(0)->clear_parameters_json_schema();
  EXPECT_TRUE(ValidateAgentSpec(a, OnlyEchoExists).ok()) << "an empty schema is allowed";
}

TEST(ValidateAgentSpecTest, RejectsDuplicateToolNames) {
  v1::Agent a = ValidAgent();
  *a.add_tools() = a.tools(0);
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.tools");
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "duplicate tool name \"get_weather\"");
}

TEST(ValidateAgentSpecTest, RejectsBuiltinAndUnknownToolKindsAcceptsUnspecifiedAsClient) {
  v1::Agent a = ValidAgent();
  a.mutable_tools(0)->set_kind(v1::TOOL_KIND_BUILTIN);
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.tools[0]");
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "builtin");
  a.mutable_tools(0)->set_kind(static_cast<v1::ToolKind>(42));
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.tools[0].kind");
  a.mutable_tools(0)->set_kind(v1::TOOL_KIND_UNSPECIFIED);
  EXPECT_TRUE(ValidateAgentSpec(a, OnlyEchoExists).ok());
}

TEST(ValidateAgentSpecTest, RejectsBadToolNames) {
  v1::Agent a = ValidAgent();
  a.mutable_tools(0)->clear_name();
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.tools[0].name");
  a.mutable_tools(0)->set_name("has space");
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.tools[0].name");
  a.mutable_tools(0)->set_name(std::string(65, 'x'));
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.tools[0].name");
}

TEST(ValidateAgentSpecTest, RejectsMaxStepsOutOfRange) {
  v1::Agent a = ValidAgent();
  a.set_max_steps_per_turn(-1);
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.max_steps_per_turn");
  a.set_max_steps_per_turn(kMaxStepsPerTurn + 1);
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.max_steps_per_turn");
  a.set_max_steps_per_turn(0);
  EXPECT_TRUE(ValidateAgentSpec(a, OnlyEchoExists).ok()) << "0 = server default";
  a.set_max_steps_per_turn(kMaxStepsPerTurn);
  EXPECT_TRUE(ValidateAgentSpec(a, OnlyEchoExists).ok());
}

TEST(ValidateAgentSpecTest, RejectsOversizedInstructionsAndName) {
  v1::Agent a = ValidAgent();
  a.set_instructions(std::string(kMaxInstructionsBytes, 'i'));
  EXPECT_TRUE(ValidateAgentSpec(a, OnlyEchoExists).ok()) << "exactly at the limit";
  a.set_instructions(std::string(kMaxInstructionsBytes + 1, 'i'));
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.instructions");

  a = ValidAgent();
  a.set_name(std::string(kMaxNameBytes + 1, 'n'));
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.name");
}

TEST(ValidateAgentSpecTest, RejectsInvalidUtf8Instructions) {
  v1::Agent a = ValidAgent();
  a.set_instructions("caf\xC3");  // truncated 2-byte sequence
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.instructions");
}

TEST(ValidateAgentSpecTest, RejectsBadContextPolicy) {
  v1::Agent a = ValidAgent();
  a.mutable_context_policy()->set_keep_last_events(-1);
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.context_policy.keep_last_events");
  a = ValidAgent();
  a.mutable_context_policy()->set_max_context_tokens(-5);
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.context_policy.max_context_tokens");
  a = ValidAgent();
  a.mutable_context_policy()->set_strategy(static_cast<v1::ContextStrategy>(99));
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.context_policy.strategy");
}

TEST(ValidateAgentSpecTest, RejectsTooManyTools) {
  v1::Agent a = ValidAgent();
  a.clear_tools();
  for (size_t i = 0; i <= kMaxTools; ++i) {
    v1::ToolSpec* t = a.add_tools();
    t->set_name("tool_" + std::to_string(i));
    t->set_kind(v1::TOOL_KIND_CLIENT);
  }
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "agent.tools");
}

TEST(ValidateAgentSpecTest, RejectsBadMetadata) {
  v1::Agent a = ValidAgent();
  (*a.mutable_metadata())[""] = "v";
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "metadata");

  a = ValidAgent();
  (*a.mutable_metadata())["big"] = std::string(kMaxMetadataValueBytes + 1, 'v');
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "metadata[\"big\"]");

  a = ValidAgent();
  (*a.mutable_metadata())[std::string(kMaxMetadataKeyBytes + 1, 'k')] = "v";
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "metadata key");

  a = ValidAgent();
  for (size_t i = 0; i <= kMaxMetadataEntries; ++i) {
    (*a.mutable_metadata())["k" + std::to_string(i)] = "v";
  }
  EXPECT_INVALID(ValidateAgentSpec(a, OnlyEchoExists), "metadata");
}

TEST(ValidateJsonTest, ObjectRequirementIsOptional) {
  EXPECT_TRUE(ValidateJson("f", "[1]", /*want_object=*/false).ok());
  EXPECT_INVALID(ValidateJson("f", "[1]", /*want_object=*/true), "f must be a JSON object");
  EXPECT_INVALID(ValidateJson("field.x", "", /*want_object=*/false), "field.x");
  EXPECT_TRUE(ValidateJson("f", R"({"a":1})", /*want_object=*/true).ok());
}

// ---------------------------------------------------------------------------------------------
// ValidateRunTurnRequest

v1::RunTurnRequest ValidTurn() {
  v1::RunTurnRequest r;
  r.set_session_id("sess_1");
  v1::InputMessage* m = r.add_input();
  m->set_role(v1::ROLE_USER);
  m->set_text("hello");
  return r;
}

TEST(ValidateRunTurnRequestTest, AcceptsValidRequests) {
  EXPECT_TRUE(ValidateRunTurnRequest(ValidTurn()).ok());

  v1::RunTurnRequest results_only;
  results_only.set_session_id("sess_1");
  v1::ToolResult* tr = results_only.add_tool_results();
  tr->set_tool_call_id("call_1");
  tr->set_output("42");
  EXPECT_TRUE(ValidateRunTurnRequest(results_only).ok());

  v1::RunTurnRequest unspecified_role = ValidTurn();
  unspecified_role.mutable_input(0)->set_role(v1::ROLE_UNSPECIFIED);
  EXPECT_TRUE(ValidateRunTurnRequest(unspecified_role).ok());
}

TEST(ValidateRunTurnRequestTest, RejectsEmptyOrBadSessionId) {
  v1::RunTurnRequest r = ValidTurn();
  r.clear_session_id();
  EXPECT_INVALID(ValidateRunTurnRequest(r), "session_id");
  r.set_session_id("a/b");
  EXPECT_INVALID(ValidateRunTurnRequest(r), "session_id");
}

TEST(ValidateRunTurnRequestTest, RejectsBadIdempotencyKey) {
  v1::RunTurnRequest r = ValidTurn();
  r.set_idempotency_key(std::string(200, 'k'));
  EXPECT_INVALID(ValidateRunTurnRequest(r), "idempotency_key");
}

TEST(ValidateRunTurnRequestTest, RejectsNoInputAndNoToolResults) {
  v1::RunTurnRequest r = ValidTurn();
  r.clear_input();
  EXPECT_INVALID(ValidateRunTurnRequest(r), "input");
  EXPECT_INVALID(ValidateRunTurnRequest(r), "tool_results");
}

TEST(ValidateRunTurnRequestTest, RejectsTooManyInputs) {
  v1::RunTurnRequest r = ValidTurn();
  while (r.input_size() < static_cast<int>(kMaxInputMessages)) *r.add_input() = r.input(0);
  EXPECT_TRUE(ValidateRunTurnRequest(r).ok()) << "exactly at the limit";
  *r.add_input() = r.input(0);
  EXPECT_INVALID(ValidateRunTurnRequest(r), "input");
}

TEST(ValidateRunTurnRequestTest, RejectsToolRoleAndUnknownRolesInInput) {
  v1::RunTurnRequest r = ValidTurn();
  v1::InputMessage* m = r.add_input();
  m->set_role(v1::ROLE_TOOL);
  m->set_text("output");
  EXPECT_INVALID(ValidateRunTurnRequest(r), "input[1].role");

  m->set_role(static_cast<v1::Role>(42));
  EXPECT_INVALID(ValidateRunTurnRequest(r), "input[1].role");
}

// Two answers for one call don't match the pending calls: FAILED_PRECONDITION (API.md), like
// an answer for a call that is not pending. A missing id is malformed: INVALID_ARGUMENT.
TEST(ValidateRunTurnRequestTest, RejectsDuplicateAndMissingToolCallIds) {
  v1::RunTurnRequest r = ValidTurn();
  for (int i = 0; i < 2; ++i) {
    v1::ToolResult* tr = r.add_tool_results();
    tr->set_tool_call_id("call_1");
    tr->set_output("x");
  }
  absl::Status dup = ValidateRunTurnRequest(r);
  EXPECT_EQ(dup.code(), absl::StatusCode::kFailedPrecondition) << dup;
  EXPECT_THAT(std::string(dup.message()), HasSubstr("\"call_1\""));
  r.mutable_tool_results(1)->set_tool_call_id("call_2");
  r.add_approvals()->set_tool_call_id("call_2");
  dup = ValidateRunTurnRequest(r);
  EXPECT_EQ(dup.code(), absl::StatusCode::kFailedPrecondition) << dup;
  EXPECT_THAT(std::string(dup.message()), HasSubstr("approvals"));
  r.clear_approvals();
  r.mutable_tool_results(1)->set_tool_call_id("call_1");

  r.mutable_tool_results(1)->clear_tool_call_id();
  EXPECT_INVALID(ValidateRunTurnRequest(r), "tool_results[1].tool_call_id");
}

TEST(ValidateRunTurnRequestTest, RejectsNegativeExpectedLastSeq) {
  v1::RunTurnRequest r = ValidTurn();
  r.set_expected_last_seq(-1);
  EXPECT_INVALID(ValidateRunTurnRequest(r), "expected_last_seq");
  r.set_expected_last_seq(0);
  EXPECT_TRUE(ValidateRunTurnRequest(r).ok());
}

TEST(ValidateRunTurnRequestTest, RejectsInvalidUtf8) {
  const std::vector<std::string> bad = {
      "\xFF",          // never valid
      "ok\x80",        // lone continuation byte
      "\xC3",          // truncated 2-byte sequence
      "\xE2\x82",      // truncated 3-byte sequence
      "\xE2\x28\xA1",  // bad continuation
  };
  for (const std::string& text : bad) {
    v1::RunTurnRequest r = ValidTurn();
    r.mutable_input(0)->set_text(text);
    EXPECT_INVALID(ValidateRunTurnRequest(r), "input[0].text");

    v1::RunTurnRequest t = ValidTurn();
    v1::ToolResult* tr = t.add_tool_results();
    tr->set_tool_call_id("c");
    tr->set_output(text);
    EXPECT_INVALID(ValidateRunTurnRequest(t), "tool_results[0].output");
  }
  v1::RunTurnRequest good = ValidTurn();
  good.mutable_input(0)->set_text("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
  EXPECT_TRUE(ValidateRunTurnRequest(good).ok());
}

// Overlong encodings, UTF-16 surrogates and code points above U+10FFFF are not UTF-8
// (RFC 3629 §3); protobuf would refuse to read them back, so they must never be stored.
TEST(ValidateRunTurnRequestTest, RejectsOverlongSurrogateAndOutOfRangeUtf8) {
  const std::vector<std::string> bad = {
      "\xC0\xAF",          // overlong '/'
      "\xE0\x80\xAF",      // overlong '/' (3 bytes)
      "\xED\xA0\x80",      // U+D800, a surrogate
      "\xF4\x90\x80\x80",  // U+110000, beyond Unicode
      "\xF5\x80\x80\x80",  // lead byte never valid in UTF-8
  };
  for (const std::string& text : bad) {
    v1::RunTurnRequest r = ValidTurn();
    r.mutable_input(0)->set_text(text);
    EXPECT_INVALID(ValidateRunTurnRequest(r), "input[0].text");
  }
}

TEST(ValidateRunTurnRequestTest, RejectsUnknownBusyPolicyAndLongModelOverride) {
  v1::RunTurnRequest r = ValidTurn();
  r.set_on_busy(static_cast<v1::BusyPolicy>(17));
  EXPECT_INVALID(ValidateRunTurnRequest(r), "on_busy");
  r = ValidTurn();
  r.set_model_override(std::string(kMaxNameBytes + 1, 'm'));
  EXPECT_INVALID(ValidateRunTurnRequest(r), "model_override");
}

// ---------------------------------------------------------------------------------------------
// NormalizePageSize

TEST(NormalizePageSizeTest, DefaultsCapsAndRejectsNegative) {
  absl::StatusOr<int32_t> zero = NormalizePageSize(0, 50);
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(*zero, 50);
  absl::StatusOr<int32_t> some = NormalizePageSize(7, 50);
  ASSERT_TRUE(some.ok());
  EXPECT_EQ(*some, 7);
  absl::StatusOr<int32_t> huge = NormalizePageSize(kMaxPageSize + 1, 50);
  ASSERT_TRUE(huge.ok());
  EXPECT_EQ(*huge, kMaxPageSize);
  EXPECT_INVALID(NormalizePageSize(-1, 50).status(), "page_size");
}

// ---------------------------------------------------------------------------------------------
// BuildContext

v1::Event MessageEvent(const std::string& turn, v1::Role role, const std::string& text) {
  v1::Event e;
  e.set_turn_id(turn);
  e.set_type(v1::EVENT_TYPE_MESSAGE);
  e.mutable_message()->set_role(role);
  e.mutable_message()->set_text(text);
  return e;
}

v1::Event ToolResultEvent(const std::string& turn, const std::string& call_id,
                          const std::string& output) {
  v1::Event e;
  e.set_turn_id(turn);
  e.set_type(v1::EVENT_TYPE_TOOL_RESULT);
  e.mutable_tool_result()->set_tool_call_id(call_id);
  e.mutable_tool_result()->set_output(output);
  return e;
}

v1::Event ToolCallEvent(const std::string& turn, const std::string& call_id) {
  v1::Event e;
  e.set_turn_id(turn);
  e.set_type(v1::EVENT_TYPE_TOOL_CALL);
  e.mutable_tool_call()->set_id(call_id);
  e.mutable_tool_call()->set_name("get_weather");
  e.mutable_tool_call()->set_arguments_json(R"({"city":"Paris"})");
  return e;
}

v1::Event Marker(const std::string& turn, v1::EventType type) {
  v1::Event e;
  e.set_turn_id(turn);
  e.set_type(type);
  e.mutable_turn()->set_turn_id(turn);
  if (type == v1::EVENT_TYPE_TURN_FAILED) e.mutable_turn()->set_status(v1::TURN_STATUS_FAILED);
  if (type == v1::EVENT_TYPE_TURN_COMPLETED) {
    e.mutable_turn()->set_status(v1::TURN_STATUS_COMPLETED);
  }
  return e;
}

// "ROLE:text" per message, for compact order assertions.
std::vector<std::string> Render(const std::vector<backend::ChatMessage>& messages) {
  std::vector<std::string> out;
  for (const backend::ChatMessage& m : messages) {
    out.push_back(v1::Role_Name(m.role) + ":" + m.text);
  }
  return out;
}

TEST(BuildContextTest, InstructionsComeFirstAsASystemMessage) {
  v1::Agent agent;
  agent.set_instructions("You are terse.");
  std::vector<backend::ChatMessage> msgs =
      BuildContext(agent, {MessageEvent("t1", v1::ROLE_USER, "hi")}, {});
  EXPECT_THAT(Render(msgs), ElementsAre("ROLE_SYSTEM:You are terse.", "ROLE_USER:hi"));
}

TEST(BuildContextTest, NoInstructionsNoSystemMessage) {
  std::vector<backend::ChatMessage> msgs =
      BuildContext(v1::Agent(), {}, {MessageEvent("t1", v1::ROLE_USER, "hi")});
  EXPECT_THAT(Render(msgs), ElementsAre("ROLE_USER:hi"));
  EXPECT_THAT(BuildContext(v1::Agent(), {}, {}), IsEmpty());
}

TEST(BuildContextTest, MessagesAndToolResultsInOrderWithToolCalls) {
  v1::Agent agent;
  agent.set_instructions("sys");
  v1::Event assistant = MessageEvent("t1", v1::ROLE_ASSISTANT, "checking");
  v1::ToolCall* tc = assistant.mutable_message()->add_tool_calls();
  tc->set_id("call_1");
  tc->set_name("get_weather");
  tc->set_arguments_json(R"({"city":"Paris"})");

  std::vector<v1::Event> history = {
      Marker("t1", v1::EVENT_TYPE_TURN_STARTED),
      MessageEvent("t1", v1::ROLE_USER, "weather?"),
      assistant,
      ToolCallEvent("t1", "call_1"),
      Marker("t1", v1::EVENT_TYPE_TURN_COMPLETED),
  };
  std::vector<v1::Event> current = {
      Marker("t2", v1::EVENT_TYPE_TURN_STARTED),
      ToolResultEvent("t2", "call_1", "sunny"),
      MessageEvent("t2", v1::ROLE_ASSISTANT, "It is sunny."),
  };
  std::vector<backend::ChatMessage> msgs = BuildContext(agent, history, current);
  ASSERT_THAT(Render(msgs),
              ElementsAre("ROLE_SYSTEM:sys", "ROLE_USER:weather?", "ROLE_ASSISTANT:checking",
                          "ROLE_TOOL:sunny", "ROLE_ASSISTANT:It is sunny."));
  ASSERT_EQ(msgs[2].tool_calls.size(), 1u);
  EXPECT_EQ(msgs[2].tool_calls[0].id(), "call_1");
  EXPECT_EQ(msgs[2].tool_calls[0].name(), "get_weather");
  EXPECT_EQ(msgs[2].tool_calls[0].arguments_json(), R"({"city":"Paris"})");
  EXPECT_EQ(msgs[3].tool_call_id, "call_1");
  EXPECT_TRUE(msgs[1].tool_call_id.empty());
  EXPECT_TRUE(msgs[1].tool_calls.empty());
}

TEST(BuildContextTest, ToolCallAndMarkerEventsContributeNoMessages) {
  std::vector<v1::Event> events = {
      Marker("t1", v1::EVENT_TYPE_TURN_STARTED),
      ToolCallEvent("t1", "call_1"),
      Marker("t1", v1::EVENT_TYPE_TURN_COMPLETED),
  };
  EXPECT_THAT(BuildContext(v1::Agent(), events, {}), IsEmpty());
  EXPECT_THAT(BuildContext(v1::Agent(), {}, events), IsEmpty());
}

TEST(BuildContextTest, SkipsEventsOfFailedTurnsInHistory) {
  std::vector<v1::Event> history = {
      MessageEvent("ok1", v1::ROLE_USER, "first"),
      MessageEvent("ok1", v1::ROLE_ASSISTANT, "answer"),
      Marker("ok1", v1::EVENT_TYPE_TURN_COMPLETED),
      MessageEvent("bad", v1::ROLE_USER, "doomed"),
      ToolResultEvent("bad", "call_x", "partial"),
      MessageEvent("bad", v1::ROLE_ASSISTANT, "half"),
      Marker("bad", v1::EVENT_TYPE_TURN_FAILED),
      MessageEvent("ok2", v1::ROLE_USER, "again"),
  };
  EXPECT_THAT(Render(BuildContext(v1::Agent(), history, {})),
              ElementsAre("ROLE_USER:first", "ROLE_ASSISTANT:answer", "ROLE_USER:again"));
}

TEST(BuildContextTest, SkipsEventsOfFailedTurnsInCurrentAndAcrossLists) {
  // The failure marker is in `current`, the failed turn's first events are in `history`.
  std::vector<v1::Event> history = {
      MessageEvent("ok", v1::ROLE_USER, "kept"),
      MessageEvent("bad", v1::ROLE_USER, "dropped from history"),
  };
  std::vector<v1::Event> current = {
      MessageEvent("bad", v1::ROLE_ASSISTANT, "dropped from current"),
      Marker("bad", v1::EVENT_TYPE_TURN_FAILED),
      MessageEvent("next", v1::ROLE_USER, "also kept"),
  };
  EXPECT_THAT(Render(BuildContext(v1::Agent(), history, current)),
              ElementsAre("ROLE_USER:kept", "ROLE_USER:also kept"));
}

TEST(BuildContextTest, UnspecifiedRoleBecomesUserAndSummaryBecomesSystem) {
  v1::Event summary;
  summary.set_type(v1::EVENT_TYPE_SUMMARY);
  summary.mutable_summary()->set_text("they talked about cats");
  std::vector<v1::Event> events = {summary, MessageEvent("t1", v1::ROLE_UNSPECIFIED, "no role")};
  std::vector<backend::ChatMessage> msgs = BuildContext(v1::Agent(), events, {});
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].role, v1::ROLE_SYSTEM);
  EXPECT_THAT(msgs[0].text, HasSubstr("they talked about cats"));
  EXPECT_EQ(msgs[1].role, v1::ROLE_USER);
}

TEST(ToolDefinitionsTest, CopiesNameDescriptionAndSchema) {
  v1::Agent agent;
  v1::ToolSpec* t = agent.add_tools();
  t->set_name("a");
  t->set_description("desc");
  t->set_parameters_json_schema("{}");
  std::vector<backend::ToolDefinition> tools = ToolDefinitions(agent);
  ASSERT_EQ(tools.size(), 1u);
  EXPECT_EQ(tools[0].name, "a");
  EXPECT_EQ(tools[0].description, "desc");
  EXPECT_EQ(tools[0].parameters_json_schema, "{}");
}

TEST(EstimateEventTokensTest, CountsTextAndToolCallsAndZeroForToolCallEvents) {
  EXPECT_EQ(EstimateEventTokens(MessageEvent("t", v1::ROLE_USER, "abcdefgh")), 4 + 2);
  v1::Event with_call = MessageEvent("t", v1::ROLE_ASSISTANT, "");
  v1::ToolCall* tc = with_call.mutable_message()->add_tool_calls();
  tc->set_name("abcd");          // 1
  tc->set_arguments_json("{}");  // 1
  EXPECT_EQ(EstimateEventTokens(with_call), 4 + 2);
  EXPECT_EQ(EstimateEventTokens(ToolResultEvent("t", "c", "12345")), 4 + 2);
  EXPECT_EQ(EstimateEventTokens(ToolCallEvent("t", "c")), 0);
  EXPECT_EQ(EstimateEventTokens(Marker("t", v1::EVENT_TYPE_TURN_STARTED)), 4);
}

// ---------------------------------------------------------------------------------------------
// EventHub

v1::Event Seq(int64_t seq) {
  v1::Event e;
  e.set_seq(seq);
  return e;
}

// Records what a listener received. Listeners run on the publisher's thread (here: the test's).
struct Watch {
  std::vector<int64_t> seqs;
  int closed = 0;
  EventHub::Listener Listener() {
    return {[this](const std::vector<v1::Event>& events) {
              for (const v1::Event& e : events) seqs.push_back(e.seq());
            },
            [this] { ++closed; }};
  }
};

TEST(EventHubTest, KeyJoinsProjectAndSession) {
  EXPECT_EQ(EventHub::Key("proj", "sess"), "proj/sess");
  EXPECT_NE(EventHub::Key("p", "s1"), EventHub::Key("p", "s2"));
}

TEST(EventHubTest, SubscribersGetEventsForTheirKeyOnly) {
  EventHub hub;
  Watch a1;
  Watch a2;
  Watch b;
  const std::string ka = EventHub::Key("p", "a");
  const std::string kb = EventHub::Key("p", "b");
  hub.Subscribe(ka, a1.Listener());
  hub.Subscribe(ka, a2.Listener());
  hub.Subscribe(kb, b.Listener());
  EXPECT_EQ(hub.watcher_count(), 3u);

  hub.Publish(ka, {Seq(1), Seq(2)});
  hub.Publish(kb, {Seq(7)});
  hub.Publish(ka, {Seq(3)});
  hub.Publish(EventHub::Key("p", "nobody"), {Seq(99)});
  hub.Publish(ka, {});

  EXPECT_THAT(a1.seqs, ElementsAre(1, 2, 3));
  EXPECT_THAT(a2.seqs, ElementsAre(1, 2, 3));
  EXPECT_THAT(b.seqs, ElementsAre(7));
}

TEST(EventHubTest, UnsubscribeStopsDelivery) {
  EventHub hub;
  Watch stays;
  Watch leaves;
  const std::string k = EventHub::Key("p", "s");
  hub.Subscribe(k, stays.Listener());
  uint64_t id = hub.Subscribe(k, leaves.Listener());
  hub.Publish(k, {Seq(1)});
  hub.Unsubscribe(k, id);
  EXPECT_EQ(hub.watcher_count(), 1u);
  hub.Publish(k, {Seq(2)});
  EXPECT_THAT(stays.seqs, ElementsAre(1, 2));
  EXPECT_THAT(leaves.seqs, ElementsAre(1));

  hub.Unsubscribe(k, id);                            // twice: harmless
  hub.Unsubscribe(EventHub::Key("p", "other"), id);  // wrong key: harmless
  EXPECT_EQ(hub.watcher_count(), 1u);
  EXPECT_EQ(leaves.closed, 0);
}

TEST(EventHubTest, SubscriptionIdsAreDistinct) {
  EventHub hub;
  Watch w;
  uint64_t a = hub.Subscribe("k1", w.Listener());
  uint64_t b = hub.Subscribe("k2", w.Listener());
  uint64_t c = hub.Subscribe("k1", w.Listener());
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  EXPECT_NE(b, c);
}

TEST(EventHubTest, CloseCallsOnClosedAndDropsListenersOfThatKeyOnly) {
  EventHub hub;
  Watch w1;
  Watch w2;
  Watch other;
  const std::string k = EventHub::Key("p", "s");
  const std::string ko = EventHub::Key("p", "o");
  hub.Subscribe(k, w1.Listener());
  hub.Subscribe(k, w2.Listener());
  hub.Subscribe(ko, other.Listener());

  hub.Close(k);
  EXPECT_EQ(w1.closed, 1);
  EXPECT_EQ(w2.closed, 1);
  EXPECT_EQ(other.closed, 0);
  EXPECT_EQ(hub.watcher_count(), 1u);

  hub.Publish(k, {Seq(1)});
  hub.Close(k);  // nothing left to close
  EXPECT_THAT(w1.seqs, IsEmpty());
  EXPECT_EQ(w1.closed, 1);

  hub.Publish(ko, {Seq(5)});
  EXPECT_THAT(other.seqs, ElementsAre(5));
}

TEST(EventHubTest, CloseToleratesListenerWithoutOnClosed) {
  EventHub hub;
  std::vector<int64_t> seen;
  EventHub::Listener l;
  l.on_events = [&](const std::vector<v1::Event>& events) { seen.push_back(events[0].seq()); };
  hub.Subscribe("k", l);
  hub.Publish("k", {Seq(3)});
  hub.Close("k");
  EXPECT_EQ(hub.watcher_count(), 0u);
  EXPECT_THAT(seen, ElementsAre(3));
}

}  // namespace
}  // namespace agentd::runtime
