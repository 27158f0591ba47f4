// ModelRouter reliability: retries with backoff, Retry-After, circuit breakers, fallbacks,
// per-backend concurrency limits, deadlines and cancellation. Scripted backends stand in for
// deployments (the HTTP path is covered by openai_backend_test and the fault matrix).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "backend/echo_backend.h"
#include "backend/model_router.h"
#include "backend/scripted_backend.h"

namespace agentd::backend {
namespace {

struct Outcome {
  absl::Notification done;
  absl::StatusOr<ModelResponse> result = absl::UnknownError("not finished");
  std::atomic<int> calls{0};
};

ModelCallbacks Capture(Outcome* o) {
  ModelCallbacks cb;
  cb.on_done = [o](absl::StatusOr<ModelResponse> r) {
    o->calls.fetch_add(1);
    o->result = std::move(r);
    o->done.Notify();
  };
  return cb;
}

ModelRequest Request(const std::string& model, absl::Duration timeout = absl::Seconds(10)) {
  ModelRequest r;
  r.model = model;
  r.messages.push_back({v1::ROLE_USER, "hi", {}, {}});
  r.deadline = absl::Now() + timeout;
  return r;
}

RouterOptions FastOptions() {
  RouterOptions o;
  o.max_retries = 2;
  o.initial_backoff = absl::Milliseconds(5);
  o.max_backoff = absl::Milliseconds(20);
  o.breaker_failures = 3;
  o.breaker_cooldown = absl::Milliseconds(300);
  return o;
}

absl::Status Unavailable(const std::string& msg) { return absl::UnavailableError(msg); }

ScriptedReply Fail(absl::Status st) {
  ScriptedReply r;
  r.error = std::move(st);
  return r;
}

ScriptedReply Ok(const std::string& text) {
  ScriptedReply r;
  r.text = text;
  return r;
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router_ = std::make_unique<ModelRouter>(FastOptions());
    ASSERT_TRUE(router_->RegisterBackend("a", a_).ok());
    ASSERT_TRUE(router_->RegisterBackend("b", b_).ok());
  }
  absl::StatusOr<ModelResponse> Call(const std::string& model, absl::Duration timeout = absl::Seconds(10)) {
    Outcome o;
    router_->Start(Request(model, timeout), Capture(&o));
    EXPECT_TRUE(o.done.WaitForNotificationWithTimeout(absl::Seconds(30)));
    EXPECT_EQ(o.calls.load(), 1);
    return o.result;
  }

  std::shared_ptr<ScriptedBackend> a_ = std::make_shared<ScriptedBackend>();
  std::shared_ptr<ScriptedBackend> b_ = std::make_shared<ScriptedBackend>();
  std::unique_ptr<ModelRouter> router_;
};

TEST_F(RouterTest, RetriesTransientFailuresThenSucceeds) {
  ASSERT_TRUE(router_->AddModel({"m", {{"a", "a-model", 1}}}).ok());
  a_->Push(Fail(Unavailable("503")));
  a_->Push(Fail(Unavailable("502")));
  a_->Push(Ok("third time"));
  auto r = Call("m");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->text, "third time");
  EXPECT_EQ(r->attempts, 3);
  EXPECT_EQ(r->served_by, "a/a-model");
  EXPECT_EQ(r->served_model, "m");
}

TEST_F(RouterTest, RetryBudgetIsBoundedAndFinalCodeIsUnavailable) {
  ASSERT_TRUE(router_->AddModel({"m", {{"a", "a-model", 1}}}).ok());
  for (int i = 0; i < 10; ++i) a_->Push(Fail(Unavailable("boom " + std::to_string(i))));
  auto r = Call("m");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(a_->requests().size(), 3u);  // 1 + max_retries
  EXPECT_NE(r.status().message().find("boom 2"), std::string::npos) << r.status();
}

TEST_F(RouterTest, NonRetryableErrorsEndTheCallAtOnce) {
  ASSERT_TRUE(router_->AddModel({"m", {{"a", "a-model", 1}}, {"f"}}).ok());
  ASSERT_TRUE(router_->AddModel({"f", {{"b", "b-model", 1}}}).ok());
  a_->Push(Fail(absl::FailedPreconditionError("context_length_exceeded: too long")));
  auto r = Call("m");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(a_->requests().size(), 1u);
  EXPECT_EQ(b_->requests().size(), 0u);  // no fallback for a request the model itself rejects
}

TEST_F(RouterTest, FallsBackToTheNextModelWhenDeploymentsAreExhausted) {
  ASSERT_TRUE(router_->AddModel({"m", {{"a", "a-model", 1}}, {"f"}}).ok());
  ASSERT_TRUE(router_->AddModel({"f", {{"b", "b-model", 1}}}).ok());
  ASSERT_TRUE(router_->Validate().ok());
  for (int i = 0; i < 3; ++i) a_->Push(Fail(Unavailable("down")));
  b_->Push(Ok("from fallback"));
  auto r = Call("m");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->text, "from fallback");
  EXPECT_EQ(r->served_model, "f");
  EXPECT_EQ(r->attempts, 4);
}

TEST_F(RouterTest, InsufficientQuotaSkipsRetriesAndFallsBack) {
  ASSERT_TRUE(router_->AddModel({"m", {{"a", "a-model", 1}}, {"f"}}).ok());
  ASSERT_TRUE(router_->AddModel({"f", {{"b", "b-model", 1}}}).ok());
  a_->Push(Fail(absl::ResourceExhaustedError("insufficient_quota")));
  b_->Push(Ok("paid by someone else"));
  auto r = Call("m");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(a_->requests().size(), 1u);
  EXPECT_EQ(r->served_model, "f");
}

TEST_F(RouterTest, RetryAfterIsHonoured) {
  ASSERT_TRUE(router_->AddModel({"m", {{"a", "a-model", 1}}}).ok());
  absl::Status limited = Unavailable("429 rate_limit_exceeded");
  limited.SetPayload("agentd.dev/retry-after-ms", absl::Cord("250"));
  a_->Push(Fail(limited));
  a_->Push(Ok("after waiting"));
  const absl::Time start = absl::Now();
  auto r = Call("m");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(250));
}

TEST_F(RouterTest, RetryAfterBeyondTheDeadlineFailsNowNotLater) {
  ASSERT_TRUE(router_->AddModel({"m", {{"a", "a-model", 1}}}).ok());
  absl::Status limited = Unavailable("429 rate_limit_exceeded");
  limited.SetPayload("agentd.dev/retry-after-ms", absl::Cord("60000"));
  a_->Push(Fail(limited));
  const absl::Time start = absl::Now();
  auto r = Call("m", absl::Milliseconds(500));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(400));
}

TEST_F(RouterTest, DeadlineBoundsASlowDeployment) {
  ASSERT_TRUE(router_->AddModel({"m", {{"a", "a-model", 1}}}).ok());
  ScriptedReply slow = Ok("late");
  slow.delay = absl::Seconds(5);
  a_->Push(slow);
  const absl::Time start = absl::Now();
  auto r = Call("m", absl::Milliseconds(200));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(300));  // within 100 ms of the deadline
}

TEST_F(RouterTest, CircuitBreakerOpensThenProbesAfterCooldown) {
  ASSERT_TRUE(router_->AddModel({"m", {{"a", "a-model", 1}, {"b", "b-model", 1}}}).ok());
  // Deployment a fails every time; b always answers. Drive enough calls to open a's breaker.
  for (int i = 0; i < 50; ++i) a_->Push(Fail(Unavailable("a is down")));
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Call("m").ok());
  const size_t a_calls_when_open = a_->requests().size();
  EXPECT_GE(a_calls_when_open, 3u);  // it took breaker_failures failures to open
  bool open = false;
  for (const auto& h : router_->Health()) open |= h.backend == "a" && h.open;
  EXPECT_TRUE(open);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Call("m").ok());
  EXPECT_EQ(a_->requests().size(), a_calls_when_open);  // no traffic while open
  absl::SleepFor(absl::Milliseconds(350));               // cooldown passes: half-open
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(Call("m").ok());
  EXPECT_EQ(a_->requests().size(), a_calls_when_open + 1);  // exactly one probe, which failed
}

TEST_F(RouterTest, MaxConcurrencyQueuesCallsAndAQueueLimitRejects) {
  auto slow = std::make_shared<ScriptedBackend>();
  ASSERT_TRUE(router_->RegisterBackend("slow", slow, {2, 2}).ok());
  ASSERT_TRUE(router_->AddModel({"s", {{"slow", "s-model", 1}}}).ok());
  for (int i = 0; i < 4; ++i) {
    ScriptedReply r = Ok("r" + std::to_string(i));
    r.delay = absl::Milliseconds(200);
    slow->Push(r);
  }
  std::vector<std::unique_ptr<Outcome>> outcomes;
  for (int i = 0; i < 5; ++i) {
    outcomes.push_back(std::make_unique<Outcome>());
    router_->Start(Request("s"), Capture(outcomes.back().get()));
  }
  // Two run, two wait; the fifth finds the queue full and is retried until a slot frees up or
  // the budget ends.
  EXPECT_EQ(slow->requests().size(), 2u);
  for (auto& o : outcomes) ASSERT_TRUE(o->done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  int ok = 0;
  for (auto& o : outcomes) ok += o->result.ok();
  EXPECT_GE(ok, 4);
  EXPECT_LE(slow->requests().size(), 5u);
}

TEST_F(RouterTest, CancelReachesTheCallInFlightAndWaitingCalls) {
  auto slow = std::make_shared<ScriptedBackend>();
  ASSERT_TRUE(router_->RegisterBackend("slow", slow, {1, 4}).ok());
  ASSERT_TRUE(router_->AddModel({"s", {{"slow", "s-model", 1}}}).ok());
  ScriptedReply r = Ok("never");
  r.delay = absl::Seconds(30);
  slow->Push(r);
  Outcome running, waiting;
  auto c1 = router_->Start(Request("s", absl::Seconds(60)), Capture(&running));
  auto c2 = router_->Start(Request("s", absl::Seconds(60)), Capture(&waiting));
  c2->Cancel();
  ASSERT_TRUE(waiting.done.WaitForNotificationWithTimeout(absl::Seconds(2)));
  EXPECT_EQ(waiting.result.status().code(), absl::StatusCode::kCancelled);
  c1->Cancel();
  ASSERT_TRUE(running.done.WaitForNotificationWithTimeout(absl::Seconds(2)));
  EXPECT_EQ(running.result.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(running.calls.load(), 1);
  EXPECT_EQ(slow->requests().size(), 1u);  // the waiting call never reached the backend
}

TEST_F(RouterTest, ValidateRejectsUnknownAndSelfFallbacks) {
  ASSERT_TRUE(router_->AddModel({"m", {{"a", "a-model", 1}}, {"ghost"}}).ok());
  EXPECT_EQ(router_->Validate().code(), absl::StatusCode::kInvalidArgument);
  ModelRouter r2;
  ASSERT_TRUE(r2.AddModel({"self", {{"echo", "echo", 1}}, {"self"}}).ok());
  EXPECT_EQ(r2.Validate().code(), absl::StatusCode::kInvalidArgument);
}

/// Answers like echo, and says it sends kept message encodings (as the OpenAI backend does).
/// Keeps the messages of the last request.
class EncodingBackend final : public InferenceBackend {
 public:
  std::shared_ptr<ModelCall> Start(const ModelRequest& request, ModelCallbacks callbacks) override {
    last_messages = request.messages;
    return EchoBackend().Start(request, std::move(callbacks));
  }
  bool UsesEncodedMessages() const override { return true; }
  std::vector<ChatMessage> last_messages;
};

TEST_F(RouterTest, ElidedMessagesAreDecodedOnlyForABackendThatReadsFields) {
  auto wire = std::make_shared<EncodingBackend>();
  ASSERT_TRUE(router_->RegisterBackend("wire", wire).ok());
  ASSERT_TRUE(router_->AddModel({"w", {{"wire", "x", 1}}, {}}).ok());
  ASSERT_TRUE(router_->AddModel({"s", {{"a", "x", 1}}, {}}).ok());
  ModelRequest r = Request("w");
  auto encoded = std::make_shared<const std::string>(R"({"content":"earlier","role":"user"})");
  r.messages.insert(r.messages.begin(), ChatMessage{v1::ROLE_USER, "", {}, "", encoded, true});
  Outcome to_wire;
  router_->Start(r, Capture(&to_wire));
  ASSERT_TRUE(to_wire.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(to_wire.result.ok()) << to_wire.result.status();
  ASSERT_EQ(wire->last_messages.size(), 2u);
  EXPECT_TRUE(wire->last_messages[0].elided);  // sent as its encoding
  EXPECT_EQ(wire->last_messages[0].text, "");

  a_->Push(Ok("fine"));
  r.model = "s";
  Outcome to_fields;
  router_->Start(r, Capture(&to_fields));
  ASSERT_TRUE(to_fields.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(to_fields.result.ok()) << to_fields.result.status();
  const std::vector<ModelRequest> seen = a_->requests();
  ASSERT_EQ(seen.size(), 1u);
  const std::vector<ChatMessage>& got = seen[0].messages;
  ASSERT_EQ(got.size(), 2u);
  EXPECT_FALSE(got[0].elided);
  EXPECT_EQ(got[0].text, "earlier");
  EXPECT_EQ(got[0].role, v1::ROLE_USER);
  EXPECT_EQ(got[1].text, "hi");
}

TEST_F(RouterTest, AModelUsesEncodedMessagesIfAnyDeploymentOrFallbackSendsThem) {
  ASSERT_TRUE(router_->RegisterBackend("wire", std::make_shared<EncodingBackend>()).ok());
  ASSERT_TRUE(router_->AddModel({"direct", {{"a", "x", 1}, {"wire", "x", 1}}, {}}).ok());
  ASSERT_TRUE(router_->AddModel({"plain", {{"a", "x", 1}}, {}}).ok());
  ASSERT_TRUE(router_->AddModel({"falls", {{"b", "x", 1}}, {"direct"}}).ok());
  ASSERT_TRUE(router_->Validate().ok());
  EXPECT_TRUE(router_->ModelUsesEncodedMessages("direct"));
  EXPECT_TRUE(router_->ModelUsesEncodedMessages("falls"));
  EXPECT_FALSE(router_->ModelUsesEncodedMessages("plain"));
  EXPECT_FALSE(router_->ModelUsesEncodedMessages("echo"));
  EXPECT_FALSE(router_->ModelUsesEncodedMessages("ghost"));
}

}  // namespace
}  // namespace agentd::backend
