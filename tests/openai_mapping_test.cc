// Unit tests for the OpenAI wire mapping (request bodies, responses, stream chunks, HTTP errors)
// and the SSE parser. No network.
#include "backend/openai_mapping.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "backend/openai_backend.h"
#include "backend/sse_parser.h"

namespace agentd::backend {
namespace {

using ::nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

ChatMessage Msg(v1::Role role, std::string text) {
  ChatMessage m;
  m.role = role;
  m.text = std::move(text);
  return m;
}

v1::ToolCall Tc(std::string id, std::string name, std::string args) {
  v1::ToolCall tc;
  tc.set_id(std::move(id));
  tc.set_name(std::move(name));
  tc.set_arguments_json(std::move(args));
  return tc;
}

ModelRequest Conversation() {
  ModelRequest r;
  r.model = "qwen2.5-7b";
  r.messages.push_back(Msg(v1::ROLE_SYSTEM, "You are terse."));
  r.messages.push_back(Msg(v1::ROLE_USER, "Weather in Paris and Rome?"));
  ChatMessage assistant = Msg(v1::ROLE_ASSISTANT, "");
  assistant.tool_calls.push_back(Tc("call_1", "get_weather", R"({"city":"Paris"})"));
  assistant.tool_calls.push_back(Tc("call_2", "get_weather", R"({"city":"Rome"})"));
  r.messages.push_back(assistant);
  ChatMessage t1 = Msg(v1::ROLE_TOOL, "18C");
  t1.tool_call_id = "call_1";
  ChatMessage t2 = Msg(v1::ROLE_TOOL, "22C");
  t2.tool_call_id = "call_2";
  r.messages.push_back(t1);
  r.messages.push_back(t2);
  r.tools.push_back(
      {"get_weather", "Current weather for a city",
       R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})"});
  r.tools.push_back({"now", "", ""});
  return r;
}

// ---------------------------------------------------------------------------- request bodies

TEST(OpenAiRequestTest, FullConversationExactJson) {
  absl::StatusOr<std::string> body = openai::BuildChatRequestBody(Conversation());
  ASSERT_TRUE(body.ok()) << body.status();
  const json expected = json::parse(R"({
    "model": "qwen2.5-7b",
    "stream": false,
    "messages": [
      {"role": "system", "content": "You are terse."},
      {"role": "user", "content": "Weather in Paris and Rome?"},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": "call_2", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\":\"Rome\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
      {"role": "tool", "tool_call_id": "call_2", "content": "22C"}
    ],
    "tools": [
      {"type": "function", "function": {"name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}},
      {"type": "function", "function": {"name": "now", "description": "",
        "parameters": {"type": "object", "properties": {}}}}
    ]
  })");
  EXPECT_EQ(json::parse(*body), expected) << *body;
  // Written by hand, not by nlohmann: byte for byte what dumping the same document gives.
  EXPECT_EQ(*body, json::parse(*body).dump()) << *body;
}

TEST(OpenAiRequestTest, TextIsEscapedExactlyAsNlohmannWouldWriteIt) {
  ModelRequest r;
  r.model = "m\"odel";
  r.messages.push_back(Msg(v1::ROLE_SYSTEM, "line1\nline2\ttab \"q\" back\\slash \x01 é 中文 🙂"));
  ChatMessage a = Msg(v1::ROLE_ASSISTANT, "calling\r\n");
  a.tool_calls.push_back(Tc("id\"1", "f", R"({"s":"a\"b"})"));
  r.messages.push_back(a);
  ChatMessage t = Msg(v1::ROLE_TOOL, "{\"ok\":true}\f");
  t.tool_call_id = "id\"1";
  r.messages.push_back(t);
  r.tools.push_back({"f", "desc \"quoted\"\n", R"({"type":"object","properties":{"s":{"type":"string"}}})"});
  absl::StatusOr<std::string> body = openai::BuildChatRequestBody(r);
  ASSERT_TRUE(body.ok()) << body.status();
  const json parsed = json::parse(*body);
  EXPECT_EQ(*body, parsed.dump()) << *body;
  EXPECT_EQ(parsed["messages"][0]["content"], r.messages[0].text);
  EXPECT_EQ(parsed["messages"][1]["tool_calls"][0]["function"]["arguments"], R"({"s":"a\"b"})");
  EXPECT_EQ(parsed["messages"][2]["tool_call_id"], "id\"1");
  EXPECT_EQ(parsed["tools"][0]["function"]["description"], "desc \"quoted\"\n");
}

TEST(OpenAiRequestTest, KeptEncodingsAreCopiedAsIsAndMatchTheFields) {
  ModelRequest plain = Conversation();
  ModelRequest kept = Conversation();
  for (ChatMessage& m : kept.messages) {
    absl::StatusOr<std::string> e = openai::EncodeChatMessage(m);
    ASSERT_TRUE(e.ok()) << e.status();
    m.encoded = std::make_shared<const std::string>(*e);
  }
  EXPECT_EQ(*openai::BuildChatRequestBody(kept), *openai::BuildChatRequestBody(plain));
  // The backend trusts a kept encoding: it is what goes on the wire, not the fields.
  kept.messages[1].encoded = std::make_shared<const std::string>(R"({"content":"kept","role":"user"})");
  EXPECT_THAT(*openai::BuildChatRequestBody(kept), HasSubstr(R"({"content":"kept","role":"user"})"));
  EXPECT_EQ(openai::EncodeChatMessage(Msg(v1::ROLE_UNSPECIFIED, "x")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(OpenAiRequestTest, DecodingAnEncodedMessageGivesItsFieldsBack) {
  std::vector<ChatMessage> messages = Conversation().messages;
  ChatMessage odd = Msg(v1::ROLE_ASSISTANT, "line1\nline2 \"q\" \x01 é 中文 🙂");
  odd.tool_calls.push_back(Tc("id\"1", "f", R"({"s":"a\"b"})"));
  odd.tool_calls.push_back(Tc("id2", "g", ""));  // sent as "{}"
  messages.push_back(odd);
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    absl::StatusOr<std::string> e = openai::EncodeChatMessage(m);
    ASSERT_TRUE(e.ok()) << e.status();
    absl::StatusOr<ChatMessage> d = openai::DecodeChatMessage(*e);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->role, m.role) << i;
    EXPECT_EQ(d->text, m.text) << i;
    EXPECT_EQ(d->tool_call_id, m.tool_call_id) << i;
    ASSERT_EQ(d->tool_calls.size(), m.tool_calls.size()) << i;
    for (size_t c = 0; c < m.tool_calls.size(); ++c) {
      EXPECT_EQ(d->tool_calls[c].id(), m.tool_calls[c].id());
      EXPECT_EQ(d->tool_calls[c].name(), m.tool_calls[c].name());
      const std::string& args = m.tool_calls[c].arguments_json();
      EXPECT_EQ(d->tool_calls[c].arguments_json(), args.empty() ? "{}" : args);
    }
    EXPECT_EQ(*openai::EncodeChatMessage(*d), *e) << i;
  }
  for (const char* bad : {"", "[]", "not json", R"({"content":"x"})", R"({"role":"robot"})"}) {
    EXPECT_EQ(openai::DecodeChatMessage(bad).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(OpenAiRequestTest, ExpandingElidedMessagesRestoresTheirFieldsAndKeepsTheEncodings) {
  const ModelRequest plain = Conversation();
  ModelRequest elided = Conversation();
  for (ChatMessage& m : elided.messages) {
    auto e = std::make_shared<const std::string>(*openai::EncodeChatMessage(m));
    m = ChatMessage{m.role, "", {}, "", e, /*elided=*/true};
  }
  elided.messages[0] = plain.messages[0];  // a message sent in full stays as it is
  EXPECT_EQ(*openai::BuildChatRequestBody(elided), *openai::BuildChatRequestBody(plain));
  ModelRequest expanded = elided;
  ASSERT_TRUE(openai::ExpandElidedMessages(&expanded.messages).ok());
  for (size_t i = 0; i < plain.messages.size(); ++i) {
    EXPECT_FALSE(expanded.messages[i].elided) << i;
    EXPECT_EQ(expanded.messages[i].text, plain.messages[i].text) << i;
    EXPECT_EQ(expanded.messages[i].tool_calls.size(), plain.messages[i].tool_calls.size()) << i;
    EXPECT_EQ(expanded.messages[i].tool_call_id, plain.messages[i].tool_call_id) << i;
    EXPECT_EQ(expanded.messages[i].encoded, elided.messages[i].encoded) << i;
  }
  elided.messages[1].encoded = nullptr;
  EXPECT_EQ(openai::ExpandElidedMessages(&elided.messages).code(), absl::StatusCode::kInternal);
}

TEST(OpenAiRequestTest, StreamingAddsUsageOptionAndNoToolsKeyWithoutTools) {
  ModelRequest r;
  r.model = "m";
  r.stream = true;
  r.messages.push_back(Msg(v1::ROLE_USER, "hi"));
  ChatMessage a = Msg(v1::ROLE_ASSISTANT, "checking");
  a.tool_calls.push_back(Tc("c", "f", ""));
  r.messages.push_back(a);
  absl::StatusOr<std::string> body = openai::BuildChatRequestBody(r);
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(json::parse(*body), json::parse(R"({
    "model": "m", "stream": true, "stream_options": {"include_usage": true},
    "messages": [{"role": "user", "content": "hi"},
                 {"role": "assistant", "content": "checking", "tool_calls": [
                   {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]
  })"));
}

TEST(OpenAiRequestTest, RejectsMissingRoleAndBadSchema) {
  ModelRequest r;
  r.messages.push_back(Msg(v1::ROLE_UNSPECIFIED, "x"));
  EXPECT_EQ(openai::BuildChatRequestBody(r).status().code(), absl::StatusCode::kInvalidArgument);
  ModelRequest t;
  t.messages.push_back(Msg(v1::ROLE_USER, "x"));
  t.tools.push_back({"f", "", "[1,2"});
  EXPECT_EQ(openai::BuildChatRequestBody(t).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(OpenAiRequestTest, InvalidUtf8IsReplacedNotThrown) {
  ModelRequest r;
  r.messages.push_back(Msg(v1::ROLE_USER, std::string("bad \xff byte")));
  EXPECT_TRUE(openai::BuildChatRequestBody(r).ok());
}

// -------------------------------------------------------------------- non-streaming responses

TEST(OpenAiResponseTest, TextAndUsage) {
  absl::StatusOr<ModelResponse> r = openai::ParseChatResponse(R"({
    "id": "x", "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->text, "Hello");
  EXPECT_EQ(r->finish_reason, "stop");
  EXPECT_EQ(r->input_tokens, 12);
  EXPECT_EQ(r->output_tokens, 3);
  EXPECT_TRUE(r->tool_calls.empty());
}

TEST(OpenAiResponseTest, ToolCallsWithNullContent) {
  absl::StatusOr<ModelResponse> r = openai::ParseChatResponse(R"({
    "choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
      {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}},
      {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": {"y": 2}}}]},
      "finish_reason": "tool_calls"}]})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->text, "");
  ASSERT_EQ(r->tool_calls.size(), 2u);
  EXPECT_EQ(r->tool_calls[0].id(), "call_a");
  EXPECT_EQ(r->tool_calls[0].name(), "f");
  EXPECT_EQ(r->tool_calls[0].arguments_json(), R"({"x":1})");
  EXPECT_EQ(r->tool_calls[1].arguments_json(), R"({"y":2})");  // object form tolerated
  EXPECT_EQ(r->finish_reason, "tool_calls");
  EXPECT_EQ(r->input_tokens, 0);
}

TEST(OpenAiResponseTest, MalformedAndEmptyAreUnavailable) {
  EXPECT_EQ(openai::ParseChatResponse("{\"choices\": [").status().code(),
            absl::StatusCode::kUnavailable);
  absl::Status empty = openai::ParseChatResponse(R"({"choices": []})").status();
  EXPECT_EQ(empty.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(empty.message(), HasSubstr("empty"));
  EXPECT_EQ(openai::ParseChatResponse(R"({"id": 1})").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(openai::ParseChatResponse("[]").status().code(), absl::StatusCode::kUnavailable);
}

TEST(OpenAiResponseTest, ErrorObjectInOkBodyIsClassified) {
  absl::Status s = openai::ParseChatResponse(
                       R"({"error": {"message": "too long", "code": "context_length_exceeded"}})")
                       .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("too long"));
}

// ------------------------------------------------------------------------- streamed chunks

absl::StatusOr<ModelResponse> Accumulate(const std::vector<std::string>& data,
                                         std::vector<std::string>* deltas) {
  openai::ChatStreamAccumulator acc;
  std::string delta;
  for (const std::string& d : data) {
    absl::Status s = acc.AddData(d, &delta);
    if (!s.ok()) return s;
    if (!delta.empty()) deltas->push_back(delta);
  }
  return acc.Finish();
}

TEST(OpenAiStreamTest, ContentDeltasFinishReasonUsageDone) {
  std::vector<std::string> deltas;
  absl::StatusOr<ModelResponse> r =
      Accumulate({R"({"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]})",
                  R"({"choices":[{"index":0,"delta":{"content":"Hel"}}]})",
                  R"({"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]})",
                  R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]})",
                  R"({"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":2}})", "[DONE]"},
                 &deltas);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(deltas, ElementsAre("Hel", "lo"));
  EXPECT_EQ(r->text, "Hello");
  EXPECT_EQ(r->finish_reason, "stop");
  EXPECT_EQ(r->input_tokens, 7);
  EXPECT_EQ(r->output_tokens, 2);
}

TEST(OpenAiStreamTest, ParallelToolCallsAssembledByIndex) {
  std::vector<std::string> deltas;
  absl::StatusOr<ModelResponse> r = Accumulate(
      {R"({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_p","type":"function","function":{"name":"get_weather","arguments":""}}]}}]})",
       R"({"choices":[{"delta":{"tool_calls":[{"index":1,"id":"call_r","type":"function","function":{"name":"get_weather","arguments":"{\"ci"}}]}}]})",
       R"({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]})",
       R"({"choices":[{"delta":{"tool_calls":[{"index":1,"function":{"arguments":"ty\":\"Rome\"}"}}]}}]})",
       R"({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}}]})",
       R"({"choices":[{"delta":{},"finish_reason":"tool_calls"}]})",
       R"({"choices":[],"usage":{"prompt_tokens":30,"completion_tokens":20}})", "[DONE]"},
      &deltas);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(deltas.empty());
  ASSERT_EQ(r->tool_calls.size(), 2u);
  EXPECT_EQ(r->tool_calls[0].id(), "call_p");
  EXPECT_EQ(r->tool_calls[0].name(), "get_weather");
  EXPECT_EQ(r->tool_calls[0].arguments_json(), R"({"city":"Paris"})");
  EXPECT_EQ(r->tool_calls[1].id(), "call_r");
  EXPECT_EQ(r->tool_calls[1].arguments_json(), R"({"city":"Rome"})");
  EXPECT_EQ(r->finish_reason, "tool_calls");
  EXPECT_EQ(r->input_tokens, 30);
  EXPECT_EQ(r->output_tokens, 20);
}

TEST(OpenAiStreamTest, CutStreamIsUnavailable) {
  std::vector<std::string> deltas;
  absl::Status no_done =
      Accumulate({R"({"choices":[{"delta":{"content":"Hi"}}]})"}, &deltas).status();
  EXPECT_EQ(no_done.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(no_done.message(), HasSubstr("cut"));
  absl::Status no_finish =
      Accumulate({R"({"choices":[{"delta":{"content":"Hi"}}]})", "[DONE]"}, &deltas).status();
  EXPECT_EQ(no_finish.code(), absl::StatusCode::kUnavailable);
  absl::Status no_marker =
      Accumulate({R"({"choices":[{"delta":{"content":"Hi"},"finish_reason":"stop"}]})"}, &deltas)
          .status();
  EXPECT_EQ(no_marker.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(no_marker.message(), HasSubstr("[DONE]"));
}

TEST(OpenAiStreamTest, MalformedChunkAndInStreamError) {
  openai::ChatStreamAccumulator acc;
  std::string delta;
  absl::Status s = acc.AddData(R"({"choices":[{"delta":{"content":"Hi")", &delta);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(s.message(), HasSubstr("malformed JSON"));
  openai::ChatStreamAccumulator acc2;
  EXPECT_EQ(acc2.AddData(R"({"error":{"message":"overloaded","code":503}})", &delta).code(),
            absl::StatusCode::kUnavailable);
}

TEST(OpenAiStreamTest, DataAfterDoneIsIgnored) {
  openai::ChatStreamAccumulator acc;
  std::string delta;
  ASSERT_TRUE(
      acc.AddData(R"({"choices":[{"delta":{"content":"a"},"finish_reason":"stop"}]})", &delta)
          .ok());
  ASSERT_TRUE(acc.AddData("[DONE]", &delta).ok());
  EXPECT_TRUE(acc.done());
  EXPECT_TRUE(acc.AddData("garbage", &delta).ok());
  absl::StatusOr<ModelResponse> r = acc.Finish();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->text, "a");
}

// ---------------------------------------------------------------------------- HTTP errors

TEST(OpenAiErrorTest, Classification) {
  auto code = [](int http, absl::string_view body) {
    return openai::HttpErrorStatus(http, body, std::nullopt).code();
  };
  EXPECT_EQ(
      code(
          429,
          R"({"error":{"message":"quota","type":"insufficient_quota","code":"insufficient_quota"}})"),
      absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(code(429, R"({"error":{"message":"slow down","type":"requests"}})"),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(code(500, "oops"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(code(502, ""), absl::StatusCode::kUnavailable);
  EXPECT_EQ(code(503, "<html>"), absl::StatusCode::kUnavailable);
  EXPECT_EQ(
      code(400, R"({"error":{"message":"too many tokens","code":"context_length_exceeded"}})"),
      absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      code(
          400,
          R"({"object":"error","message":"This model's maximum context length is 4096 tokens","code":400})"),
      absl::StatusCode::kFailedPrecondition);  // vLLM's shape
  EXPECT_EQ(code(400, R"({"error":{"message":"bad"}})"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(404, R"({"error":"model not found"})"), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(401, R"({"error":{"message":"bad key"}})"), absl::StatusCode::kPermissionDenied);
}

TEST(OpenAiErrorTest, MessageAndPayloads) {
  absl::Status s = openai::HttpErrorStatus(
      400, R"({"error":{"message":"prompt is 9000 tokens","code":"context_length_exceeded"}})",
      std::nullopt);
  EXPECT_THAT(s.message(), HasSubstr("prompt is 9000 tokens"));
  EXPECT_EQ(HttpStatus(s), 400);
  EXPECT_EQ(RetryAfter(s), std::nullopt);

  absl::Status limited = openai::HttpErrorStatus(429, "{}", openai::ParseRetryAfter("2", ""));
  EXPECT_EQ(limited.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(RetryAfter(limited), absl::Seconds(2));
  EXPECT_EQ(HttpStatus(limited), 429);

  absl::Status quota =
      openai::HttpErrorStatus(429, R"({"error":{"code":"insufficient_quota"}})", absl::Seconds(5));
  EXPECT_EQ(RetryAfter(quota), std::nullopt);  // not retryable: no retry hint

  std::string huge(5000, 'x');
  EXPECT_LT(openai::HttpErrorStatus(500, huge, std::nullopt).message().size(), 700u);
}

TEST(OpenAiErrorTest, ParseRetryAfter) {
  EXPECT_EQ(openai::ParseRetryAfter("3", ""), absl::Seconds(3));
  EXPECT_EQ(openai::ParseRetryAfter("3", "250"), absl::Milliseconds(250));
  EXPECT_EQ(openai::ParseRetryAfter(" 1.5 ", ""), absl::Milliseconds(1500));
  EXPECT_EQ(openai::ParseRetryAfter("", ""), std::nullopt);
  EXPECT_EQ(openai::ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", ""), std::nullopt);
  EXPECT_EQ(openai::ParseRetryAfter("-1", ""), std::nullopt);
}

// ------------------------------------------------------------------------------ SSE parser

std::vector<SseParser::Event> FeedAll(const std::vector<std::string>& pieces, bool finish = false) {
  SseParser parser;
  std::vector<SseParser::Event> events;
  for (const std::string& p : pieces) EXPECT_TRUE(parser.Feed(p, &events).ok());
  if (finish) parser.Finish(&events);
  return events;
}

std::vector<std::string> Data(const std::vector<SseParser::Event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.data);
  return out;
}

TEST(SseParserTest, SimpleEvents) {
  EXPECT_THAT(Data(FeedAll({"data: a\n\ndata: b\n\n"})), ElementsAre("a", "b"));
}

TEST(SseParserTest, SplitAcrossReadsAtEveryByte) {
  const std::string stream = "data: {\"x\":1}\r\n\r\n: keep-alive\r\ndata: [DONE]\r\n\r\n";
  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    EXPECT_THAT(Data(FeedAll({stream.substr(0, cut), stream.substr(cut)})),
                ElementsAre("{\"x\":1}", "[DONE]"))
        << "cut at " << cut;
  }
  std::vector<std::string> bytes;
  for (char c : stream) bytes.emplace_back(1, c);
  EXPECT_THAT(Data(FeedAll(bytes)), ElementsAre("{\"x\":1}", "[DONE]"));
}

TEST(SseParserTest, CrLfCrAndLfLineEndings) {
  EXPECT_THAT(Data(FeedAll({"data: a\r\n\r\n", "data: b\n\n", "data: c\r\r"})),
              ElementsAre("a", "b", "c"));
  // "\r" at the end of one read and "\n" at the start of the next are one line break.
  EXPECT_THAT(Data(FeedAll({"data: a\r", "\n", "\r", "\ndata: b\n\n"})), ElementsAre("a", "b"));
}

TEST(SseParserTest, CommentsAreIgnored) {
  EXPECT_THAT(Data(FeedAll({":ping\n\n: another\ndata: x\n:mid\n\n"})), ElementsAre("x"));
}

TEST(SseParserTest, MultiLineDataAndFields) {
  std::vector<SseParser::Event> events =
      FeedAll({"event: message\nid: 7\ndata: line1\ndata:line2\ndata\nretry: 10\n\n"});
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data, "line1\nline2\n");
  EXPECT_EQ(events[0].type, "message");
  EXPECT_EQ(events[0].id, "7");
}

TEST(SseParserTest, BlankLinesWithoutDataDispatchNothing) {
  EXPECT_TRUE(FeedAll({"\n\n\r\n", "event: x\n\n"}).empty());
}

TEST(SseParserTest, BomIsSkippedEvenWhenSplit) {
  EXPECT_THAT(Data(FeedAll({"\xEF", "\xBB",
                            "\xBF"
                            "data: a\n\n"})),
              ElementsAre("a"));
}

TEST(SseParserTest, FinishDispatchesTerminatedLinesOnly) {
  EXPECT_THAT(Data(FeedAll({"data: [DONE]\n"}, /*finish=*/true)), ElementsAre("[DONE]"));
  EXPECT_TRUE(FeedAll({"data: [DO"}, /*finish=*/true).empty());
  EXPECT_TRUE(FeedAll({"data: [DONE]\n"}, /*finish=*/false).empty());
}

TEST(SseParserTest, OversizedLineFails) {
  SseParser parser(/*max_event_bytes=*/16);
  std::vector<SseParser::Event> events;
  EXPECT_TRUE(parser.Feed("data: 0123456", &events).ok());
  EXPECT_EQ(parser.Feed("789abcdef", &events).code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace agentd::backend
