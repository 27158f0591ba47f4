// Unit tests of the context policy (PlanContext, PlanCompaction, SummaryPrompt), agent checks of
// schemas and built-in tools, and the BuiltinToolRunner over a real RocksDB in a temp dir.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "backend/openai_mapping.h"
#include "runtime/builtin_tools.h"
#include "runtime/context_builder.h"
#include "runtime/json_schema.h"
#include "runtime/validation.h"
#include "store/rocksdb_store.h"
#include "testing/temp_dir.h"

namespace agentd::runtime {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// A session log built event by event with explicit token estimates.
class Log {
 public:
  v1::Event& Add(const std::string& turn, v1::EventType type, int32_t tokens) {
    v1::Event& e = events_.emplace_back();
    e.set_seq(static_cast<int64_t>(events_.size()));
    e.set_turn_id(turn);
    e.set_type(type);
    e.set_token_estimate(tokens);
    return e;
  }
  void Message(const std::string& turn, v1::Role role, const std::string& text, int32_t tokens) {
    v1::Message* m = Add(turn, v1::EVENT_TYPE_MESSAGE, tokens).mutable_message();
    m->set_role(role);
    m->set_text(text);
  }
  void Call(const std::string& turn, const std::string& call_id, int32_t tokens) {
    v1::Message* m = Add(turn, v1::EVENT_TYPE_MESSAGE, tokens).mutable_message();
    m->set_role(v1::ROLE_ASSISTANT);
    m->set_text("calling " + call_id);
    m->add_tool_calls()->set_id(call_id);
    Add(turn, v1::EVENT_TYPE_TOOL_CALL, 0).mutable_tool_call()->set_id(call_id);
  }
  void Result(const std::string& turn, const std::string& call_id, int32_t tokens) {
    v1::ToolResult* r = Add(turn, v1::EVENT_TYPE_TOOL_RESULT, tokens).mutable_tool_result();
    r->set_tool_call_id(call_id);
    r->set_output("result " + call_id);
  }
  void Marker(const std::string& turn, v1::EventType type) {
    Add(turn, type, 4).mutable_turn()->set_turn_id(turn);
  }
  void Summary(const std::string& turn, const std::string& text, int64_t from, int64_t to,
               int32_t tokens) {
    v1::Summary* s = Add(turn, v1::EVENT_TYPE_SUMMARY, tokens).mutable_summary();
    s->set_text(text);
    s->set_from_seq(from);
    s->set_to_seq(to);
  }
  /// A complete turn: user message and answer, `tokens` each.
  void Turn(const std::string& id, int32_t tokens) {
    Marker(id, v1::EVENT_TYPE_TURN_STARTED);
    Message(id, v1::ROLE_USER, "q " + id, tokens);
    Message(id, v1::ROLE_ASSISTANT, "a " + id, tokens);
    Marker(id, v1::EVENT_TYPE_TURN_COMPLETED);
  }
  /// Splits the log: events from `current_from` (index) on are the current turn's.
  LogView View(size_t current_from) const {
    return LogView(
        absl::MakeConstSpan(events_.data(), current_from),
        absl::MakeConstSpan(events_.data() + current_from, events_.size() - current_from));
  }
  size_t size() const { return events_.size(); }
  const v1::Event& operator[](size_t i) const { return events_[i]; }

 private:
  std::vector<v1::Event> events_;
};

std::vector<std::string> Texts(const LogView& log, const ContextPlan& plan) {
  std::vector<std::string> out;
  for (size_t i : plan.included) {
    out.push_back(log[i].has_message() ? log[i].message().text() : log[i].tool_result().output());
  }
  return out;
}

ContextLimits Budget(int64_t max_tokens, int64_t fixed = 0, int32_t keep_last = 0) {
  ContextLimits l;
  l.max_tokens = max_tokens;
  l.fixed_tokens = fixed;
  l.keep_last_events = keep_last;
  return l;
}

TEST(PlanContextTest, KeepsTheNewestEventsThatFitAndMarksTheOverflow) {
  Log log;
  for (int t = 1; t <= 5; ++t) log.Turn(absl::StrCat("t", t), 10);
  const size_t current = log.size();
  log.Marker("now", v1::EVENT_TYPE_TURN_STARTED);
  log.Message("now", v1::ROLE_USER, "question", 10);
  const LogView view = log.View(current);

  ContextPlan all = PlanContext(view, Budget(1000, 5));
  EXPECT_FALSE(all.overflow);
  EXPECT_EQ(all.included.size(), 11u);
  EXPECT_EQ(all.tokens, 5 + 110);

  // 5 fixed + 60 for events: the question and the newest 5 events fit.
  ContextPlan some = PlanContext(view, Budget(65, 5));
  EXPECT_TRUE(some.overflow);
  EXPECT_THAT(Texts(view, some), ElementsAre("a t3", "q t4", "a t4", "q t5", "a t5", "question"));
  EXPECT_EQ(some.tokens, 65);
  // Compaction keeps at most half of the 60: the question and turn 5.
  EXPECT_EQ(view[some.keep_from].message().text(), "q t5");
  Compaction c = PlanCompaction(view, some, /*summarize=*/false, 0);
  EXPECT_EQ(c.from_seq, 1);
  EXPECT_EQ(c.to_seq, view[some.keep_from].seq() - 1);
}

TEST(PlanContextTest, TheCurrentTurnIsKeptOverTheBudget) {
  Log log;
  log.Turn("old", 10);
  const size_t current = log.size();
  log.Marker("now", v1::EVENT_TYPE_TURN_STARTED);
  log.Message("now", v1::ROLE_USER, "huge", 500);
  ContextPlan plan = PlanContext(log.View(current), Budget(100));
  EXPECT_THAT(Texts(log.View(current), plan), ElementsAre("huge"));
  EXPECT_TRUE(plan.overflow);
  EXPECT_EQ(plan.tokens, 500);
}

TEST(PlanContextTest, NeverSeparatesAToolCallFromItsResults) {
  Log log;
  log.Turn("t1", 10);
  log.Marker("t2", v1::EVENT_TYPE_TURN_STARTED);
  log.Message("t2", v1::ROLE_USER, "look it up", 10);
  log.Call("t2", "c1", 10);
  log.Result("t2", "c1", 40);  // the result fits, its call message does not
  log.Message("t2", v1::ROLE_ASSISTANT, "found it", 10);
  log.Marker("t2", v1::EVENT_TYPE_TURN_COMPLETED);
  const size_t current = log.size();
  log.Message("now", v1::ROLE_USER, "thanks", 10);
  const LogView view = log.View(current);

  ContextPlan plan = PlanContext(view, Budget(65));
  EXPECT_THAT(Texts(view, plan), ElementsAre("found it", "thanks"));
  ContextPlan both = PlanContext(view, Budget(70));
  EXPECT_THAT(Texts(view, both), ElementsAre("calling c1", "result c1", "found it", "thanks"));
  // A compaction boundary never falls between them either.
  ContextPlan small = PlanContext(view, Budget(90));
  ASSERT_TRUE(small.overflow);
  EXPECT_FALSE(view[small.keep_from].has_tool_result());
}

TEST(PlanContextTest, ResultsInTheCurrentTurnPullInTheirCallFromHistory) {
  Log log;
  log.Turn("t1", 10);
  log.Marker("t2", v1::EVENT_TYPE_TURN_STARTED);
  log.Message("t2", v1::ROLE_USER, "weather?", 10);
  log.Call("t2", "c1", 50);
  log.Marker("t2", v1::EVENT_TYPE_TURN_COMPLETED);  // REQUIRES_ACTION
  const size_t current = log.size();
  log.Marker("t3", v1::EVENT_TYPE_TURN_STARTED);
  log.Result("t3", "c1", 10);
  const LogView view = log.View(current);
  ContextPlan plan = PlanContext(view, Budget(20));
  EXPECT_THAT(Texts(view, plan), ElementsAre("calling c1", "result c1"));
}

TEST(PlanContextTest, KeepLastEventsAndFailedTurns) {
  Log log;
  log.Turn("t1", 10);
  log.Marker("bad", v1::EVENT_TYPE_TURN_STARTED);
  log.Message("bad", v1::ROLE_USER, "doomed", 10);
  log.Marker("bad", v1::EVENT_TYPE_TURN_FAILED);
  log.Turn("t2", 10);
  const size_t current = log.size();
  log.Message("now", v1::ROLE_USER, "now", 10);
  const LogView view = log.View(current);
  EXPECT_THAT(Texts(view, PlanContext(view, Budget(1000))),
              ElementsAre("q t1", "a t1", "q t2", "a t2", "now"));
  EXPECT_THAT(Texts(view, PlanContext(view, Budget(10, 0, 3))), ElementsAre("q t2", "a t2", "now"));
}

TEST(PlanContextTest, TheLatestSummaryIsTheBoundaryAndTheHeader) {
  Log log;
  for (int t = 1; t <= 3; ++t) log.Turn(absl::StrCat("t", t), 10);  // seq 1..12
  log.Turn("t4", 10);                                               // seq 13..16
  log.Summary("t4", "they met", 1, 8, 7);                           // seq 17
  const size_t current = log.size();
  log.Message("now", v1::ROLE_USER, "hello", 10);
  const LogView view = log.View(current);
  ContextPlan plan = PlanContext(view, Budget(1000, 3));
  EXPECT_THAT(Texts(view, plan), ElementsAre("q t3", "a t3", "q t4", "a t4", "hello"));
  EXPECT_EQ(plan.boundary_seq, 8);
  EXPECT_EQ(plan.tokens, 3 + 7 + 9 + 50);  // fixed, summary (+ its 9-token header), events
  v1::Agent agent;
  agent.set_instructions("sys");
  std::vector<backend::ChatMessage> msgs = RenderContext(agent, view, plan);
  ASSERT_EQ(msgs.size(), 7u);
  EXPECT_EQ(msgs[1].role, v1::ROLE_SYSTEM);
  EXPECT_EQ(msgs[1].text, "Summary of earlier conversation: they met");

  // A drop marker (no text) moves the boundary without a header.
  log.Summary("now", "", 9, 12, 4);
  const LogView dropped = log.View(current);
  ContextPlan p2 = PlanContext(dropped, Budget(1000));
  EXPECT_THAT(Texts(dropped, p2), ElementsAre("q t4", "a t4", "hello"));
  EXPECT_EQ(RenderContext(v1::Agent(), dropped, p2).size(), 3u);
}

TEST(RenderContextTest, EarlierEventsAreEncodedOnceAndReleasedWhenTheWindowMovesOn) {
  Log log;
  log.Turn("t1", 10);                    // 0..3
  log.Call("t2", "c1", 10);              // 4 (message), 5 (TOOL_CALL)
  log.Result("t2", "c1", 10);            // 6
  log.Message("t3", v1::ROLE_USER, "now \"quoted\"\n", 10);  // 7: the current turn
  v1::Agent agent;
  agent.set_instructions("be brief");
  const LogView view = log.View(7);
  const ContextPlan plan = PlanContext(view, Budget(0));
  ASSERT_THAT(plan.included, ElementsAre(1, 2, 4, 6, 7));

  EncodedMessages cache;
  const std::vector<backend::ChatMessage> first = RenderContext(agent, view, plan, &cache);
  ASSERT_EQ(first.size(), 6u);
  EXPECT_EQ(first[0].encoded, nullptr);  // instructions: not an event
  for (size_t m = 1; m < 5; ++m) {
    ASSERT_NE(first[m].encoded, nullptr) << m;
    absl::StatusOr<std::string> fresh = backend::openai::EncodeChatMessage(first[m]);
    ASSERT_TRUE(fresh.ok());
    EXPECT_EQ(*first[m].encoded, *fresh) << m;
  }
  EXPECT_EQ(first[5].encoded, nullptr);  // the current turn's events are encoded per call
  // The body is the same with and without the kept encodings.
  backend::ModelRequest with, without;
  with.messages = first;
  without.messages = RenderContext(agent, view, plan);
  EXPECT_EQ(*backend::openai::BuildChatRequestBody(with),
            *backend::openai::BuildChatRequestBody(without));

  // The next call reuses them (the same objects), and a window that starts later releases the
  // ones before it.
  const std::vector<backend::ChatMessage> again = RenderContext(agent, view, plan, &cache);
  EXPECT_EQ(again[2].encoded.get(), first[2].encoded.get());
  // ... and elides their fields: the encoding says it all, so the text is not copied again.
  for (size_t m = 1; m < 5; ++m) {
    EXPECT_FALSE(first[m].elided) << m;
    EXPECT_TRUE(again[m].elided) << m;
    EXPECT_EQ(again[m].role, first[m].role) << m;
    EXPECT_TRUE(again[m].text.empty() && again[m].tool_calls.empty()) << m;
  }
  EXPECT_FALSE(again[5].elided);
  EXPECT_EQ(again[5].text, first[5].text);
  backend::ModelRequest elided;
  elided.messages = again;
  EXPECT_EQ(*backend::openai::BuildChatRequestBody(elided),
            *backend::openai::BuildChatRequestBody(without));
  // Decoded for a backend that reads fields, they are the messages rendered without encodings.
  ASSERT_TRUE(backend::openai::ExpandElidedMessages(&elided.messages).ok());
  for (size_t m = 0; m < elided.messages.size(); ++m) {
    EXPECT_EQ(elided.messages[m].role, without.messages[m].role) << m;
    EXPECT_EQ(elided.messages[m].text, without.messages[m].text) << m;
    EXPECT_EQ(elided.messages[m].tool_call_id, without.messages[m].tool_call_id) << m;
    ASSERT_EQ(elided.messages[m].tool_calls.size(), without.messages[m].tool_calls.size()) << m;
  }
  ContextPlan later = plan;
  later.included = {4, 6, 7};
  RenderContext(agent, view, later, &cache);
  EXPECT_EQ(cache.slots[1], nullptr);
  EXPECT_EQ(cache.slots[2], nullptr);
  EXPECT_EQ(cache.slots[4].get(), first[3].encoded.get());
  EXPECT_EQ(cache.from, 4u);
  // An event that comes back into a window is encoded again.
  const std::vector<backend::ChatMessage> back = RenderContext(agent, view, plan, &cache);
  ASSERT_NE(back[1].encoded, nullptr);
  EXPECT_EQ(*back[1].encoded, *first[1].encoded);
  EXPECT_EQ(cache.from, 1u);  // and released again when the window moves past it once more
  RenderContext(agent, view, later, &cache);
  EXPECT_EQ(cache.slots[1], nullptr);
  EXPECT_EQ(cache.slots[2], nullptr);
}

TEST(PlanCompactionTest, SummarizeListsTheLeavingEventsAndExtendsThePreviousRange) {
  Log log;
  log.Summary("t0", "earlier", 1, 0, 5);  // seq 1: summary of nothing yet, for from_seq
  for (int t = 1; t <= 6; ++t) log.Turn(absl::StrCat("t", t), 10);
  const size_t current = log.size();
  log.Message("now", v1::ROLE_USER, "q", 10);
  const LogView view = log.View(current);
  ContextPlan plan = PlanContext(view, Budget(80));
  ASSERT_TRUE(plan.overflow);
  Compaction c = PlanCompaction(view, plan, /*summarize=*/true, 1000);
  EXPECT_EQ(c.from_seq, 1);
  EXPECT_EQ(c.to_seq, view[plan.keep_from].seq() - 1);
  ASSERT_FALSE(c.events.empty());
  EXPECT_EQ(view[c.events.front()].message().text(), "q t1");
  EXPECT_LT(c.events.back(), plan.keep_from);
  // A small summarizer budget keeps the newest of the leaving events.
  Compaction small = PlanCompaction(view, plan, true, 20);
  EXPECT_EQ(small.events.size(), 2u);
  EXPECT_EQ(small.events.back(), c.events.back());

  std::vector<backend::ChatMessage> prompt = SummaryPrompt(view, plan, c, 100);
  ASSERT_EQ(prompt.size(), 2u);
  EXPECT_THAT(prompt[0].text, HasSubstr("at most 75 words"));
  EXPECT_THAT(prompt[1].text, HasSubstr("Summary so far:\nearlier"));
  EXPECT_THAT(prompt[1].text, HasSubstr("] user: q t1"));
}

TEST(TruncateUtf8Test, CutsAtCharacterBoundaries) {
  EXPECT_EQ(TruncateUtf8("abc", 10), "abc");
  EXPECT_EQ(TruncateUtf8("ab\xC3\xA9", 3), "ab");
  EXPECT_EQ(TruncateUtf8("ab\xC3\xA9", 4), "ab\xC3\xA9");
}

// ---- Agent checks: schemas, output schema, retries, built-in tools -----------------------

bool AnyModel(const std::string&) { return true; }

v1::Agent AgentWithTool(v1::ToolKind kind, const std::string& name, const std::string& schema) {
  v1::Agent a;
  a.set_model("echo");
  v1::ToolSpec* t = a.add_tools();
  t->set_name(name);
  t->set_kind(kind);
  t->set_parameters_json_schema(schema);
  return a;
}

TEST(ValidateAgentSchemasTest, ToolSchemasMustCompileInTheSubset) {
  v1::Agent a = AgentWithTool(v1::TOOL_KIND_CLIENT, "lookup",
                              R"({"type":"object","properties":{"q":{"$ref":"#/x"}}})");
  absl::Status st = ValidateAgentSpec(a, AnyModel);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("tool \"lookup\""));
  EXPECT_THAT(std::string(st.message()), HasSubstr("\"$ref\""));
  EXPECT_THAT(std::string(st.message()), HasSubstr("/properties/q"));
}

TEST(ValidateAgentSchemasTest, OutputSchemaAndRetryBounds) {
  v1::Agent a;
  a.set_model("echo");
  a.set_output_schema_json(R"({"type":"object","required":["x"]})");
  EXPECT_TRUE(ValidateAgentSpec(a, AnyModel).ok());
  a.set_output_schema_json(R"({"type":"object","minProperties":1})");
  absl::Status st = ValidateAgentSpec(a, AnyModel);
  EXPECT_THAT(std::string(st.message()), HasSubstr("agent.output_schema_json"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("\"minProperties\""));
  a.set_output_schema_json("[1]");
  EXPECT_THAT(std::string(ValidateAgentSpec(a, AnyModel).message()), HasSubstr("JSON object"));
  a.clear_output_schema_json();
  a.set_max_validation_retries(kMaxValidationRetries);
  EXPECT_TRUE(ValidateAgentSpec(a, AnyModel).ok());
  for (int bad : {-1, kMaxValidationRetries + 1}) {
    a.set_max_validation_retries(bad);
    EXPECT_THAT(std::string(ValidateAgentSpec(a, AnyModel).message()),
                HasSubstr("agent.max_validation_retries"));
  }
}

TEST(ValidateAgentSchemasTest, BuiltinToolsAreAgentdsOwn) {
  for (const BuiltinToolInfo& b : BuiltinTools()) {
    EXPECT_TRUE(JsonSchema::CompileText(b.parameters_json_schema).ok()) << b.name;
    EXPECT_TRUE(ValidateAgentSpec(AgentWithTool(v1::TOOL_KIND_BUILTIN, b.name, ""), AnyModel).ok());
    EXPECT_TRUE(
        ValidateAgentSpec(AgentWithTool(v1::TOOL_KIND_BUILTIN, b.name, b.parameters_json_schema),
                          AnyModel)
            .ok());
  }
  absl::Status st = ValidateAgentSpec(
      AgentWithTool(v1::TOOL_KIND_BUILTIN, "state_get", R"({"type":"object"})"), AnyModel);
  EXPECT_THAT(std::string(st.message()), HasSubstr("set by agentd"));
  st = ValidateAgentSpec(AgentWithTool(v1::TOOL_KIND_BUILTIN, "shell", ""), AnyModel);
  EXPECT_THAT(std::string(st.message()), HasSubstr("unknown builtin tool \"shell\""));
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("state_get, state_put, memory_search, memory_put"));
  st = ValidateAgentSpec(AgentWithTool(v1::TOOL_KIND_BUILTIN, "mcp:everything/echo", ""), AnyModel);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()), HasSubstr("MCP tools are not available yet"));

  v1::ToolSpec spec;
  spec.set_name("memory_put");
  spec.set_kind(v1::TOOL_KIND_BUILTIN);
  FillBuiltinToolSpec(&spec);
  EXPECT_EQ(spec.parameters_json_schema(), FindBuiltinTool("memory_put")->parameters_json_schema);
  EXPECT_THAT(spec.description(), HasSubstr("long-term memory"));
  spec.set_description("Remember user preferences.");
  FillBuiltinToolSpec(&spec);
  EXPECT_EQ(spec.description(), "Remember user preferences.");
}

// ---- BuiltinToolRunner over a real store ---------------------------------------------------

class BuiltinToolRunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store::RocksDbStoreOptions options;
    options.path = dir_.Sub("db");
    options.durability = store::Durability::kRelaxed;
    auto opened = store::RocksDbStore::Open(options);
    ASSERT_TRUE(opened.ok()) << opened.status();
    store_ = *std::move(opened);
    storage::SessionRecord r;
    r.mutable_session()->set_session_id("s");
    r.mutable_session()->set_agent_id("a");
    r.mutable_session()->set_agent_version(1);
    ASSERT_TRUE(store_->CreateSession("p", r).ok());
  }

  v1::ToolResult Run(BuiltinToolRunner& runner, const std::string& id, const std::string& name,
                     const json& args) {
    v1::ToolCall call;
    call.set_id(id);
    call.set_name(name);
    return runner.Run(call, args);
  }

  // Commits the runner's pending state like a turn step (no events).
  absl::Status Commit(BuiltinToolRunner& runner) {
    auto rec = store_->GetSession("p", "s");
    if (!rec.ok()) return rec.status();
    store::SessionWrite w;
    w.project_id = "p";
    w.session_id = "s";
    w.expected_revision = rec->revision();
    w.record = *rec;
    w.state = runner.PendingState();
    return store_->CommitSessionWrite(w);
  }

  testing::TempDir dir_;
  std::unique_ptr<store::RocksDbStore> store_;
};

TEST_F(BuiltinToolRunnerTest, StatePutIsPendingUntilCommittedAndVersionsCount) {
  BuiltinToolRunner runner(store_.get(), "p", "s");
  v1::ToolResult missing = Run(runner, "c0", "state_get", {{"key", "cart"}});
  EXPECT_TRUE(missing.is_error());
  EXPECT_THAT(missing.output(), HasSubstr("does not exist"));
  EXPECT_EQ(missing.tool_call_id(), "c0");

  v1::ToolResult put = Run(runner, "c1", "state_put", {{"key", "cart"}, {"value", {1, 2}}});
  EXPECT_FALSE(put.is_error()) << put.output();
  EXPECT_EQ(json::parse(put.output()), json({{"key", "cart"}, {"version", 1}}));
  // The same step sees its own write; the store does not yet.
  EXPECT_EQ(json::parse(Run(runner, "c2", "state_get", {{"key", "cart"}}).output()),
            json({{"key", "cart"}, {"value", {1, 2}}, {"version", 1}}));
  EXPECT_EQ(store_->GetState("p", "s", "cart").status().code(), absl::StatusCode::kNotFound);
  v1::ToolResult again =
      Run(runner, "c3", "state_put", {{"key", "cart"}, {"value", {3}}, {"expected_version", 1}});
  EXPECT_EQ(json::parse(again.output())["version"], 2);
  ASSERT_TRUE(Commit(runner).ok());
  runner.ClearPendingState();
  auto stored = store_->GetState("p", "s", "cart");
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->version(), 2);
  EXPECT_EQ(stored->value_json(), "[3]");

  v1::ToolResult stale =
      Run(runner, "c4", "state_put", {{"key", "cart"}, {"value", 0}, {"expected_version", 1}});
  EXPECT_TRUE(stale.is_error());
  EXPECT_THAT(stale.output(), HasSubstr("is at version 2, not 1"));
  EXPECT_FALSE(runner.HasPendingState());
  EXPECT_TRUE(Run(runner, "c5", "state_put", {{"key", "bad\nkey"}, {"value", 0}}).is_error());
}

TEST_F(BuiltinToolRunnerTest, AConcurrentPutStateTurnsTheStepsWriteIntoAConflictError) {
  ASSERT_TRUE(store_->PutState("p", "s", {"n", "1", 0}).ok());
  BuiltinToolRunner runner(store_.get(), "p", "s");
  Run(runner, "c1", "state_put", {{"key", "n"}, {"value", 2}});
  Run(runner, "c2", "state_put", {{"key", "other"}, {"value", true}});
  ASSERT_TRUE(store_->PutState("p", "s", {"n", "10", 0}).ok());  // another writer, version 2
  EXPECT_EQ(Commit(runner).code(), absl::StatusCode::kAborted);
  auto replaced = runner.DropConflictingWrites();
  ASSERT_TRUE(replaced.ok());
  ASSERT_EQ(replaced->size(), 1u);
  EXPECT_EQ((*replaced)[0].tool_call_id(), "c1");
  EXPECT_TRUE((*replaced)[0].is_error());
  EXPECT_THAT((*replaced)[0].output(), HasSubstr("changed by another writer (now version 2)"));
  ASSERT_EQ(runner.PendingState().size(), 1u);
  ASSERT_TRUE(Commit(runner).ok());
  EXPECT_EQ(store_->GetState("p", "s", "n")->value_json(), "10");
  EXPECT_EQ(store_->GetState("p", "s", "other")->value_json(), "true");
}

TEST_F(BuiltinToolRunnerTest, MemoryPutThenSearch) {
  BuiltinToolRunner runner(store_.get(), "p", "s");
  v1::ToolResult put = Run(runner, "m1", "memory_put",
                           {{"namespace", "users/alice/prefs"}, {"text", "Alice prefers tea"}});
  ASSERT_FALSE(put.is_error()) << put.output();
  const json stored = json::parse(put.output());
  EXPECT_EQ(stored["namespace"], "users/alice/prefs");
  EXPECT_FALSE(stored["key"].get<std::string>().empty());
  Run(runner, "m2", "memory_put",
      {{"namespace", "users/bob/prefs"}, {"key", "drink"}, {"text", "Bob prefers coffee"}});
  const json found = json::parse(
      Run(runner, "m3", "memory_search", {{"query", "tea"}, {"namespace_prefix", "users/"}})
          .output());
  ASSERT_EQ(found["results"].size(), 1u);
  EXPECT_EQ(found["results"][0]["text"], "Alice prefers tea");
  EXPECT_GT(found["results"][0]["score"].get<double>(), 0);
  EXPECT_TRUE(Run(runner, "m4", "memory_put", {{"namespace", std::string(300, 'n')}, {"text", "x"}})
                  .is_error());
}

}  // namespace
}  // namespace agentd::runtime
