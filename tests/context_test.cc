// Context policy, validated tool arguments and outputs, and built-in tools, end to end through
// the gRPC API on an in-process server with the scripted backend (docs/context.md).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "testing/server_harness.h"

namespace agentd {
namespace {

using nlohmann::json;
using testing::Ctx;
using ::testing::HasSubstr;
using testing::ServerHarness;

constexpr char kSummarizerIntro[] = "You maintain the running summary";
constexpr char kSummaryHeader[] = "Summary of earlier conversation: ";

using testing::Call;

bool IsSummaryRequest(const backend::ModelRequest& r) {
  return !r.messages.empty() && absl::StartsWith(r.messages[0].text, kSummarizerIntro);
}

// "msg-007 " padded to 80 bytes: 20 tokens by the estimate (+4 per event).
std::string Padded(const std::string& head) { return head + std::string(80 - head.size(), '.'); }

std::vector<v1::Event> OfType(const google::protobuf::RepeatedPtrField<v1::Event>& events,
                              v1::EventType type) {
  std::vector<v1::Event> out;
  for (const v1::Event& e : events) {
    if (e.type() == type) out.push_back(e);
  }
  return out;
}

class ContextTest : public ::testing::Test {
 protected:
  v1::Agent Create(v1::Agent agent) {
    if (agent.model().empty()) agent.set_model("scripted");
    v1::CreateAgentRequest req;
    *req.mutable_agent() = agent;
    v1::Agent created;
    grpc::Status st = h_.agents().CreateAgent(Ctx().get(), req, &created);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return created;
  }
  v1::Agent WithPolicy(v1::ContextStrategy strategy, int32_t max_tokens) {
    v1::Agent a;
    a.set_instructions("Be brief.");
    a.mutable_context_policy()->set_strategy(strategy);
    a.mutable_context_policy()->set_max_context_tokens(max_tokens);
    a.set_max_steps_per_turn(4);
    return a;
  }
  static void AddTool(v1::Agent* a, const std::string& name, v1::ToolKind kind,
                      const std::string& schema = "") {
    v1::ToolSpec* t = a->add_tools();
    t->set_name(name);
    t->set_kind(kind);
    t->set_parameters_json_schema(schema);
  }
  v1::TurnResult Send(const std::string& session, const std::string& text) {
    v1::TurnResult r;
    grpc::Status st = h_.Send(session, text, &r);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return r;
  }
  v1::TurnResult Answer(const std::string& session, const std::string& call_id,
                        const std::string& output) {
    v1::RunTurnRequest req;
    req.set_session_id(session);
    v1::ToolResult* tr = req.add_tool_results();
    tr->set_tool_call_id(call_id);
    tr->set_output(output);
    v1::TurnResult r;
    grpc::Status st = h_.Run(req, &r);
    EXPECT_TRUE(st.ok()) << st.error_message();
    return r;
  }

  ServerHarness h_;
};

// ---- Context policy ------------------------------------------------------------------------

TEST_F(ContextTest, SummarizeCrossesTheThresholdAndLaterContextsUseTheSummary) {
  v1::Agent agent = Create(WithPolicy(v1::CONTEXT_STRATEGY_SUMMARIZE, 400));
  const std::string sid = h_.CreateSession(agent.agent_id()).session_id();
  // One reply per turn; the turn that summarizes spends it on the summary (the step's own
  // answer then echoes the question), so the SUMMARY text tells which turn it was.
  std::vector<v1::Event> summaries;
  int summarized_at = 0;
  for (int i = 1; i <= 24; ++i) {
    h_.scripted().Push({.text = absl::StrCat("reply-", i)});
    v1::TurnResult r = Send(sid, Padded(absl::StrCat("msg-", i, " ")));
    ASSERT_EQ(r.status(), v1::TURN_STATUS_COMPLETED) << r.error();
    for (const v1::Event& e : OfType(r.events(), v1::EVENT_TYPE_SUMMARY)) {
      summaries.push_back(e);
      if (summarized_at == 0) summarized_at = i;
      EXPECT_EQ(r.usage().model_calls(), 2) << "summary call + step";
      EXPECT_EQ(e.summary().text(), absl::StrCat("reply-", i));
    }
  }
  ASSERT_GE(summaries.size(), 2u) << "24 turns of ~48 tokens cross a 400-token window twice";
  const v1::Summary& first = summaries[0].summary();
  EXPECT_EQ(first.from_seq(), 1);
  EXPECT_GT(first.to_seq(), 4);
  EXPECT_LT(first.to_seq(), summaries[0].seq());
  // Later summaries fold the previous one in: they still start at seq 1.
  EXPECT_EQ(summaries[1].summary().from_seq(), 1);
  EXPECT_GT(summaries[1].summary().to_seq(), first.to_seq());

  // The summarizer saw the oldest messages, and the next step saw the summary instead of them.
  std::vector<backend::ModelRequest> reqs = h_.scripted().requests();
  size_t at = 0;
  while (at < reqs.size() && !IsSummaryRequest(reqs[at])) ++at;
  ASSERT_LT(at + 1, reqs.size());
  EXPECT_THAT(reqs[at].messages.back().text, HasSubstr("user: msg-1 "));
  EXPECT_TRUE(reqs[at].tools.empty());
  const backend::ModelRequest& after = reqs[at + 1];
  ASSERT_GE(after.messages.size(), 3u);
  EXPECT_EQ(after.messages[0].text, "Be brief.");
  EXPECT_EQ(after.messages[1].text, absl::StrCat(kSummaryHeader, "reply-", summarized_at));
  for (size_t m = 2; m < after.messages.size(); ++m) {
    EXPECT_FALSE(absl::StartsWith(after.messages[m].text, "msg-1 ")) << "summarized away";
  }
  // Every step's context stays within the budget (by the same estimate: 4 + bytes/4 per message).
  for (const backend::ModelRequest& r : reqs) {
    if (IsSummaryRequest(r)) continue;
    int64_t tokens = 0;
    for (const backend::ChatMessage& m : r.messages) tokens += 4 + (m.text.size() + 3) / 4;
    EXPECT_LE(tokens, 400);
  }
}

TEST_F(ContextTest, SlidingWindowDropsOldEventsVisiblyAndNeverSeparatesCallsFromResults) {
  v1::Agent spec = WithPolicy(v1::CONTEXT_STRATEGY_SLIDING_WINDOW, 300);
  AddTool(&spec, "lookup", v1::TOOL_KIND_CLIENT,
          R"({"type":"object","properties":{"q":{"type":"string"}}})");
  v1::Agent agent = Create(spec);
  const std::string sid = h_.CreateSession(agent.agent_id()).session_id();
  for (int i = 1; i <= 12; ++i) {
    const std::string id = absl::StrCat("call-", i);
    h_.scripted().Push({.text = "looking", .tool_calls = {Call(id, "lookup", R"({"q":"x"})")}});
    v1::TurnResult r = Send(sid, Padded(absl::StrCat("question-", i, " ")));
    ASSERT_EQ(r.status(), v1::TURN_STATUS_REQUIRES_ACTION) << r.error();
    h_.scripted().Push({.text = absl::StrCat("answer-", i)});
    r = Answer(sid, id, std::string(120, 'r'));
    ASSERT_EQ(r.status(), v1::TURN_STATUS_COMPLETED) << r.error();
  }
  for (const backend::ModelRequest& r : h_.scripted().requests()) {
    std::set<std::string> called;
    for (const backend::ChatMessage& m : r.messages) {
      for (const v1::ToolCall& c : m.tool_calls) called.insert(c.id());
      if (m.role == v1::ROLE_TOOL) {
        EXPECT_TRUE(called.count(m.tool_call_id)) << m.tool_call_id << " without its call";
      }
    }
    std::set<std::string> answered;
    for (const backend::ChatMessage& m : r.messages) {
      if (m.role == v1::ROLE_TOOL) answered.insert(m.tool_call_id);
    }
    for (size_t i = 0; i + 1 < r.messages.size(); ++i) {  // the last one may be pending
      for (const v1::ToolCall& c : r.messages[i].tool_calls) {
        EXPECT_TRUE(answered.count(c.id())) << c.id() << " without its result";
      }
    }
  }
  // What left the window is recorded: SUMMARY events without text, contiguous ranges.
  std::vector<v1::Event> drops;
  for (const v1::Event& e : h_.AllEvents(sid)) {
    if (e.type() == v1::EVENT_TYPE_SUMMARY) drops.push_back(e);
  }
  ASSERT_GE(drops.size(), 2u);
  EXPECT_EQ(drops[0].summary().from_seq(), 1);
  for (size_t i = 0; i < drops.size(); ++i) {
    EXPECT_TRUE(drops[i].summary().text().empty());
    EXPECT_LT(drops[i].summary().to_seq(), drops[i].seq());
    if (i > 0) {
      EXPECT_EQ(drops[i].summary().from_seq(), drops[i - 1].summary().to_seq() + 1);
    }
  }
}

TEST_F(ContextTest, ContextLengthExceededAppliesThePolicyWithHalfTheBudgetAndRetriesOnce) {
  v1::Agent agent = Create(WithPolicy(v1::CONTEXT_STRATEGY_SLIDING_WINDOW, 1000));
  const std::string sid = h_.CreateSession(agent.agent_id()).session_id();
  for (int i = 1; i <= 12; ++i) Send(sid, Padded(absl::StrCat("msg-", i, " ")));  // ~580 tokens
  const size_t before = h_.scripted().requests().size();

  h_.scripted().Push({.error = absl::FailedPreconditionError("context_length_exceeded")});
  h_.scripted().Push({.text = "fits now"});
  v1::TurnResult r = Send(sid, "again");
  ASSERT_EQ(r.status(), v1::TURN_STATUS_COMPLETED) << r.error();
  EXPECT_EQ(r.output_text(), "fits now");
  std::vector<v1::Event> drops = OfType(r.events(), v1::EVENT_TYPE_SUMMARY);
  ASSERT_EQ(drops.size(), 1u) << "the retry's compaction is recorded";
  std::vector<backend::ModelRequest> reqs = h_.scripted().requests();
  ASSERT_EQ(reqs.size(), before + 2);
  EXPECT_LT(reqs[before + 1].messages.size(), reqs[before].messages.size());

  // Only once: a second refusal fails the turn with the backend's error.
  for (int i = 13; i <= 24; ++i) Send(sid, Padded(absl::StrCat("msg-", i, " ")));  // refill
  for (int i = 0; i < 2; ++i) {
    h_.scripted().Push({.error = absl::FailedPreconditionError("context_length_exceeded")});
  }
  v1::TurnResult failed;
  EXPECT_EQ(h_.Send(sid, "and again", &failed).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  const std::vector<v1::Event> events = h_.AllEvents(sid);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back().type(), v1::EVENT_TYPE_TURN_FAILED);
  EXPECT_THAT(events.back().turn().error(), HasSubstr("context_length_exceeded"));
  EXPECT_EQ(h_.scripted().pending_replies(), 0u) << "exactly one retry";
}

// ---- Validated tool arguments and outputs --------------------------------------------------

constexpr char kWeatherSchema[] =
    R"({"type":"object","properties":{"city":{"type":"string","minLength":1}},)"
    R"("required":["city"],"additionalProperties":false})";

TEST_F(ContextTest, InvalidToolArgumentsGetFeedbackAndTheFixedCallGoesToTheClient) {
  v1::Agent spec;
  AddTool(&spec, "get_weather", v1::TOOL_KIND_CLIENT, kWeatherSchema);
  const std::string sid = h_.CreateSession(Create(spec).agent_id()).session_id();
  h_.scripted().Push({.tool_calls = {Call("c1", "get_weather", R"({"city":42})")}});
  h_.scripted().Push({.tool_calls = {Call("c2", "get_weather", R"({"city":"Paris"})")}});
  v1::TurnResult r = Send(sid, "weather?");
  ASSERT_EQ(r.status(), v1::TURN_STATUS_REQUIRES_ACTION) << r.error();
  ASSERT_EQ(r.required_tool_calls_size(), 1);
  EXPECT_EQ(r.required_tool_calls(0).id(), "c2");
  std::vector<v1::Event> results = OfType(r.events(), v1::EVENT_TYPE_TOOL_RESULT);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].tool_result().tool_call_id(), "c1");
  EXPECT_TRUE(results[0].tool_result().is_error());
  EXPECT_THAT(
      results[0].tool_result().output(),
      HasSubstr("invalid arguments for tool \"get_weather\": /city: must be of type string"));
  // The second attempt saw the first one and its error.
  const backend::ModelRequest retry = h_.scripted().requests().back();
  EXPECT_EQ(retry.messages.back().role, v1::ROLE_TOOL);
  EXPECT_EQ(retry.messages.back().tool_call_id, "c1");
}

TEST_F(ContextTest, InvalidToolArgumentsPastTheBudgetFailTheTurn) {
  v1::Agent spec;
  spec.set_max_validation_retries(1);
  AddTool(&spec, "get_weather", v1::TOOL_KIND_CLIENT, kWeatherSchema);
  const std::string sid = h_.CreateSession(Create(spec).agent_id()).session_id();
  h_.scripted().Push({.tool_calls = {Call("c1", "get_weather", R"({})")}});
  h_.scripted().Push({.tool_calls = {Call("c2", "get_weather", R"({"city":"x","extra":1})")}});
  v1::TurnResult r = Send(sid, "weather?");
  EXPECT_EQ(r.status(), v1::TURN_STATUS_FAILED);
  EXPECT_THAT(r.error(), HasSubstr("property \"extra\" is not allowed"));
  EXPECT_THAT(r.error(), HasSubstr("max_validation_retries 1"));
  EXPECT_EQ(r.usage().model_calls(), 2);
  EXPECT_EQ(OfType(r.events(), v1::EVENT_TYPE_TOOL_RESULT).size(), 2u) << "every attempt recorded";
}

TEST_F(ContextTest, DeeplyNestedArgumentsAreRefusedBeforeParsing) {
  v1::Agent spec;
  AddTool(&spec, "get_weather", v1::TOOL_KIND_CLIENT, kWeatherSchema);
  const std::string sid = h_.CreateSession(Create(spec).agent_id()).session_id();
  const std::string deep =
      R"({"city":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  h_.scripted().Push({.tool_calls = {Call("c1", "get_weather", deep)}});
  h_.scripted().Push({.text = "gave up"});
  v1::TurnResult r = Send(sid, "weather?");
  ASSERT_EQ(r.status(), v1::TURN_STATUS_COMPLETED) << r.error();
  std::vector<v1::Event> results = OfType(r.events(), v1::EVENT_TYPE_TOOL_RESULT);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_THAT(results[0].tool_result().output(), HasSubstr("nest deeper than 128 levels"));
}

constexpr char kAnswerSchema[] =
    R"({"type":"object","properties":{"answer":{"type":"string"}},"required":["answer"]})";

TEST_F(ContextTest, OutputSchemaRejectsInvalidAnswersWithRecordedFeedback) {
  v1::Agent spec;
  spec.set_instructions("Answer questions.");
  spec.set_output_schema_json(kAnswerSchema);
  const std::string sid = h_.CreateSession(Create(spec).agent_id()).session_id();
  h_.scripted().Push({.text = "Paris, of course"});
  h_.scripted().Push({.text = R"({"answer": 5})"});
  h_.scripted().Push({.text = R"( {"answer": "Paris"} )"});
  v1::TurnResult r = Send(sid, "capital of France?");
  ASSERT_EQ(r.status(), v1::TURN_STATUS_COMPLETED) << r.error();
  EXPECT_EQ(r.output_text(), R"( {"answer": "Paris"} )");
  std::vector<std::string> feedback;
  int answers = 0;
  for (const v1::Event& e : OfType(r.events(), v1::EVENT_TYPE_MESSAGE)) {
    if (e.message().role() == v1::ROLE_ASSISTANT) ++answers;
    if (absl::StartsWith(e.message().text(), "agentd validation feedback: ")) {
      EXPECT_EQ(e.message().role(), v1::ROLE_USER);
      feedback.push_back(e.message().text());
    }
  }
  EXPECT_EQ(answers, 3);
  ASSERT_EQ(feedback.size(), 2u);
  EXPECT_THAT(feedback[0], HasSubstr("not a JSON document"));
  EXPECT_THAT(feedback[1], HasSubstr("/answer: must be of type string"));
  // The model is told the schema in the instructions.
  const backend::ModelRequest first = h_.scripted().requests().front();
  EXPECT_THAT(first.messages[0].text, HasSubstr("Answer questions."));
  EXPECT_THAT(first.messages[0].text, HasSubstr(kAnswerSchema));
}

TEST_F(ContextTest, OutputSchemaPastTheBudgetFailsTheTurn) {
  v1::Agent spec;
  spec.set_output_schema_json(kAnswerSchema);
  const std::string sid = h_.CreateSession(Create(spec).agent_id()).session_id();
  for (int i = 0; i < 3; ++i) h_.scripted().Push({.text = "[]"});
  v1::TurnResult r = Send(sid, "hi");
  EXPECT_EQ(r.status(), v1::TURN_STATUS_FAILED);
  EXPECT_THAT(r.error(), HasSubstr("final answer rejected"));
  EXPECT_THAT(r.error(), HasSubstr("max_validation_retries 2"));
  EXPECT_EQ(r.usage().model_calls(), 3);
}

// ---- Built-in tools ------------------------------------------------------------------------

v1::Agent BuiltinAgent() {
  v1::Agent a;
  for (const char* name : {"state_get", "state_put", "memory_search", "memory_put"}) {
    v1::ToolSpec* t = a.add_tools();
    t->set_name(name);
    t->set_kind(v1::TOOL_KIND_BUILTIN);
  }
  v1::ToolSpec* client = a.add_tools();
  client->set_name("notify");
  client->set_kind(v1::TOOL_KIND_CLIENT);
  return a;
}

json Output(const v1::Event& e) { return json::parse(e.tool_result().output()); }

TEST_F(ContextTest, BuiltinToolSpecsAreFilledByAgentd) {
  v1::Agent agent = Create(BuiltinAgent());
  ASSERT_EQ(agent.tools_size(), 5);
  EXPECT_THAT(agent.tools(0).description(), HasSubstr("tool state"));
  EXPECT_THAT(agent.tools(0).parameters_json_schema(), HasSubstr("\"key\""));
  v1::CreateAgentRequest bad;
  bad.mutable_agent()->set_model("scripted");
  v1::ToolSpec* t = bad.mutable_agent()->add_tools();
  t->set_name("mcp:everything/echo");
  t->set_kind(v1::TOOL_KIND_BUILTIN);
  v1::Agent out;
  grpc::Status st = h_.agents().CreateAgent(Ctx().get(), bad, &out);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(st.error_message(), HasSubstr("MCP tools are not available yet"));
}

TEST_F(ContextTest, StateToolsRunInsideTheTurnAndPersistAcrossTurns) {
  const std::string sid = h_.CreateSession(Create(BuiltinAgent()).agent_id()).session_id();
  h_.scripted().Push(
      {.tool_calls = {Call("p1", "state_put", R"({"key":"cart","value":["apple"]})")}});
  h_.scripted().Push({.tool_calls = {Call("g1", "state_get", R"({"key":"cart"})")}});
  h_.scripted().Push({.text = "saved"});
  v1::TurnResult r = Send(sid, "remember an apple");
  ASSERT_EQ(r.status(), v1::TURN_STATUS_COMPLETED) << r.error();
  std::vector<v1::Event> results = OfType(r.events(), v1::EVENT_TYPE_TOOL_RESULT);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(Output(results[0]), json({{"key", "cart"}, {"version", 1}}));
  EXPECT_EQ(Output(results[1]), json({{"key", "cart"}, {"value", {"apple"}}, {"version", 1}}));

  // Next turn: a stale expected_version is an error result (the turn goes on), then a CAS write.
  h_.scripted().Push({.tool_calls = {Call("p2", "state_put",
                                          R"({"key":"cart","value":[],"expected_version":7})")}});
  h_.scripted().Push(
      {.tool_calls = {
           Call("p3", "state_put", R"({"key":"cart","value":["pear"],"expected_version":1})")}});
  h_.scripted().Push({.tool_calls = {Call("g2", "state_get", R"({"key":"cart"})")}});
  h_.scripted().Push({.text = "done"});
  r = Send(sid, "swap it for a pear");
  ASSERT_EQ(r.status(), v1::TURN_STATUS_COMPLETED) << r.error();
  results = OfType(r.events(), v1::EVENT_TYPE_TOOL_RESULT);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_TRUE(results[0].tool_result().is_error());
  EXPECT_THAT(results[0].tool_result().output(), HasSubstr("is at version 1, not 7"));
  EXPECT_EQ(Output(results[1])["version"], 2);
  EXPECT_EQ(Output(results[2])["value"], json({"pear"}));

  // Builtin arguments are validated like any tool's.
  h_.scripted().Push({.tool_calls = {Call("g3", "state_get", R"({"name":"cart"})")}});
  h_.scripted().Push({.text = "ok"});
  r = Send(sid, "check");
  results = OfType(r.events(), v1::EVENT_TYPE_TOOL_RESULT);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_THAT(results[0].tool_result().output(), HasSubstr("missing required property \"key\""));
}

TEST_F(ContextTest, MixedBuiltinAndClientCallsRunTheBuiltinsThenRequireAction) {
  const std::string sid = h_.CreateSession(Create(BuiltinAgent()).agent_id()).session_id();
  h_.scripted().Push({.tool_calls = {Call("p1", "state_put", R"({"key":"k","value":1})"),
                                     Call("n1", "notify", R"({"msg":"hi"})")}});
  v1::TurnResult r = Send(sid, "go");
  ASSERT_EQ(r.status(), v1::TURN_STATUS_REQUIRES_ACTION) << r.error();
  ASSERT_EQ(r.required_tool_calls_size(), 1);
  EXPECT_EQ(r.required_tool_calls(0).id(), "n1");
  std::vector<v1::Event> results = OfType(r.events(), v1::EVENT_TYPE_TOOL_RESULT);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].tool_result().tool_call_id(), "p1");

  h_.scripted().Push({.tool_calls = {Call("g1", "state_get", R"({"key":"k"})")}});
  h_.scripted().Push({.text = "all done"});
  r = Answer(sid, "n1", "notified");
  ASSERT_EQ(r.status(), v1::TURN_STATUS_COMPLETED) << r.error();
  results = OfType(r.events(), v1::EVENT_TYPE_TOOL_RESULT);
  ASSERT_EQ(results.size(), 2u);  // the client's result, then state_get
  EXPECT_EQ(Output(results[1])["version"], 1)
      << "the state write of the REQUIRES_ACTION step is durable";
  // The model saw both results of the mixed step after its call message.
  const backend::ModelRequest req = h_.scripted().requests()[1];
  ASSERT_GE(req.messages.size(), 4u);
  EXPECT_EQ(req.messages[1].tool_calls.size(), 2u);
  EXPECT_EQ(req.messages[2].tool_call_id, "p1");
  EXPECT_EQ(req.messages[3].tool_call_id, "n1");
}

TEST_F(ContextTest, MemoryToolsWriteAndSearchTheProjectsMemory) {
  const std::string sid = h_.CreateSession(Create(BuiltinAgent()).agent_id()).session_id();
  h_.scripted().Push(
      {.tool_calls = {Call(
           "m1", "memory_put",
           R"({"namespace":"users/alice/prefs","key":"drink","text":"Alice drinks green tea"})")}});
  h_.scripted().Push({.text = "noted"});
  ASSERT_EQ(Send(sid, "I like green tea").status(), v1::TURN_STATUS_COMPLETED);

  // Another session of the project finds it.
  const std::string other = h_.CreateSession(Create(BuiltinAgent()).agent_id()).session_id();
  h_.scripted().Push(
      {.tool_calls = {Call("s1", "memory_search",
                           R"({"query":"tea","namespace_prefix":"users/alice/","top_k":3})")}});
  h_.scripted().Push({.text = "you like tea"});
  v1::TurnResult r = Send(other, "what do I drink?");
  ASSERT_EQ(r.status(), v1::TURN_STATUS_COMPLETED) << r.error();
  std::vector<v1::Event> results = OfType(r.events(), v1::EVENT_TYPE_TOOL_RESULT);
  ASSERT_EQ(results.size(), 1u);
  const json found = Output(results[0]);
  ASSERT_EQ(found["results"].size(), 1u) << found.dump();
  EXPECT_EQ(found["results"][0]["key"], "drink");
  EXPECT_EQ(found["results"][0]["text"], "Alice drinks green tea");
}

}  // namespace
}  // namespace agentd
