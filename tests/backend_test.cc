// Unit tests for src/backend: TimerQueue, EchoBackend, ScriptedBackend, ModelRouter.
//
// Asynchronous tests wait on absl::Notification / absl::BlockingCounter; timeouts are failure
// guards only. "Never runs" is proven with the timer thread's ordering: a later-scheduled
// sentinel finishing means every earlier entry has either run or been removed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/cleanup/cleanup.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "backend/echo_backend.h"
#include "backend/inference_backend.h"
#include "backend/model_router.h"
#include "backend/scripted_backend.h"
#include "backend/timer_queue.h"

namespace agentd::backend {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Failure guard for waits that should finish in milliseconds.
constexpr absl::Duration kGuard = absl::Seconds(30);

ChatMessage Msg(v1::Role role, std::string text) {
  ChatMessage m;
  m.role = role;
  m.text = std::move(text);
  return m;
}

ModelRequest RequestWithUserText(std::string model, std::string text) {
  ModelRequest r;
  r.model = std::move(model);
  r.messages.push_back(Msg(v1::ROLE_USER, std::move(text)));
  return r;
}

ScriptedReply Reply(std::string text, absl::Duration delay = absl::ZeroDuration()) {
  ScriptedReply r;
  r.text = std::move(text);
  r.delay = delay;
  return r;
}

ScriptedReply Failure(absl::Status error, absl::Duration delay = absl::ZeroDuration()) {
  ScriptedReply r;
  r.error = std::move(error);
  r.delay = delay;
  return r;
}

ModelSpec Model(std::string name, std::vector<Deployment> deployments) {
  ModelSpec spec;
  spec.name = std::move(name);
  spec.deployments = std::move(deployments);
  return spec;
}

ModelCallbacks Ignore() {
  ModelCallbacks cb;
  cb.on_done = [](absl::StatusOr<ModelResponse>) {};
  return cb;
}

// Collects what a model call reports. Thread-safe; `done` fires on the first on_done.
struct CallRecorder {
  absl::Mutex mu;
  std::vector<std::string> deltas ABSL_GUARDED_BY(mu);
  std::vector<absl::StatusOr<ModelResponse>> results ABSL_GUARDED_BY(mu);
  std::thread::id done_thread ABSL_GUARDED_BY(mu);
  absl::Time done_time ABSL_GUARDED_BY(mu);
  absl::Notification done;
  std::atomic<bool> notified{false};

  ModelCallbacks Callbacks() {
    ModelCallbacks cb;
    cb.on_delta = [this](absl::string_view text) {
      absl::MutexLock lock(&mu);
      deltas.emplace_back(text);
    };
    cb.on_done = [this](absl::StatusOr<ModelResponse> r) {
      {
        absl::MutexLock lock(&mu);
        results.push_back(std::move(r));
        done_thread = std::this_thread::get_id();
        done_time = absl::Now();
      }
      if (!notified.exchange(true)) done.Notify();
    };
    return cb;
  }

  size_t done_count() {
    absl::MutexLock lock(&mu);
    return results.size();
  }
  absl::StatusOr<ModelResponse> result() {
    absl::MutexLock lock(&mu);
    return results.empty() ? absl::StatusOr<ModelResponse>(absl::UnknownError("no result"))
                           : results.front();
  }
  std::vector<std::string> delta_list() {
    absl::MutexLock lock(&mu);
    return deltas;
  }
};

// ---------------------------------------------------------------------------------------------
// TimerQueue

// Holds the timer thread inside a callback so entries can be queued (or cancelled) before the
// loop looks at them again; makes ordering tests independent of scheduling latency.
class TimerGate {
 public:
  explicit TimerGate(TimerQueue* q) {
    q->Schedule(absl::InfinitePast(), [this] {
      entered_.Notify();
      release_.WaitForNotification();
    });
    EXPECT_TRUE(entered_.WaitForNotificationWithTimeout(kGuard));
  }
  ~TimerGate() { Release(); }
  void Release() {
    if (!release_.HasBeenNotified()) release_.Notify();
  }

 private:
  absl::Notification entered_;
  absl::Notification release_;
};

// A notification a timer thread waits on. Declare it before the queue/backend that owns that
// thread (so the thread is joined while the latch still exists) and open it in an absl::Cleanup
// declared after (so a failed ASSERT cannot leave the thread blocked in the owner's destructor).
class Latch {
 public:
  void Open() {
    if (!n_.HasBeenNotified()) n_.Notify();
  }
  /// Waits until opened (or the failure guard expires).
  void Wait() { EXPECT_TRUE(n_.WaitForNotificationWithTimeout(kGuard)); }

 private:
  absl::Notification n_;
};

TEST(TimerQueueTest, RunsCallbacksInTimeOrderNotSchedulingOrder) {
  TimerQueue q;
  absl::Mutex mu;
  std::vector<int> order;
  absl::BlockingCounter ran(3);
  TimerGate gate(&q);
  const absl::Time base = absl::Now() - absl::Seconds(1);  // all due when the gate opens
  for (int i : {3, 1, 2}) {
    q.Schedule(base + absl::Milliseconds(i), [&, i] {
      {
        absl::MutexLock lock(&mu);
        order.push_back(i);
      }
      ran.DecrementCount();
    });
  }
  gate.Release();
  ran.Wait();
  absl::MutexLock lock(&mu);
  EXPECT_THAT(order, ElementsAre(1, 2, 3));
}

TEST(TimerQueueTest, FutureCallbacksRunInTimeOrder) {
  TimerQueue q;
  absl::Mutex mu;
  std::vector<int> order;
  absl::BlockingCounter ran(3);
  TimerGate gate(&q);
  const absl::Time base = absl::Now() + absl::Milliseconds(20);
  for (int i : {3, 1, 2}) {
    q.Schedule(base + absl::Milliseconds(10 * i), [&, i] {
      {
        absl::MutexLock lock(&mu);
        order.push_back(i);
      }
      ran.DecrementCount();
    });
  }
  gate.Release();
  ran.Wait();
  absl::MutexLock lock(&mu);
  EXPECT_THAT(order, ElementsAre(1, 2, 3));
}

TEST(TimerQueueTest, EqualTimesRunInSchedulingOrder) {
  TimerQueue q;
  absl::Mutex mu;
  std::vector<int> order;
  absl::BlockingCounter ran(5);
  TimerGate gate(&q);
  const absl::Time when = absl::Now();
  for (int i = 0; i < 5; ++i) {
    q.Schedule(when, [&, i] {
      {
        absl::MutexLock lock(&mu);
        order.push_back(i);
      }
      ran.DecrementCount();
    });
  }
  gate.Release();
  ran.Wait();
  absl::MutexLock lock(&mu);
  EXPECT_THAT(order, ElementsAre(0, 1, 2, 3, 4));
}

TEST(TimerQueueTest, DoesNotRunCallbacksBeforeTheirTime) {
  TimerQueue q;
  absl::Notification ran;
  absl::Time ran_at;
  const absl::Time when = absl::Now() + absl::Milliseconds(30);
  q.Schedule(when, [&] {
    ran_at = absl::Now();
    ran.Notify();
  });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(kGuard));
  EXPECT_GE(ran_at, when);
}

TEST(TimerQueueTest, PastDeadlineRunsOnTheTimerThread) {
  TimerQueue q;
  absl::Notification ran;
  std::thread::id ran_on;
  q.Schedule(absl::Now() - absl::Seconds(10), [&] {
    ran_on = std::this_thread::get_id();
    ran.Notify();
  });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(kGuard));
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TEST(TimerQueueTest, CancelBeforeRunReturnsTrueAndCallbackNeverRuns) {
  TimerQueue q;
  std::atomic<bool> cancelled_ran{false};
  absl::Notification sentinel;
  TimerGate gate(&q);
  const absl::Time base = absl::Now();
  TimerQueue::TimerId id = q.Schedule(base, [&] { cancelled_ran = true; });
  // Due after `id`: once it has run, `id` would have run too had it not been removed.
  q.Schedule(base + absl::Milliseconds(1), [&] { sentinel.Notify(); });

  EXPECT_TRUE(q.Cancel(id));
  gate.Release();
  ASSERT_TRUE(sentinel.WaitForNotificationWithTimeout(kGuard));
  EXPECT_FALSE(cancelled_ran.load());
  EXPECT_FALSE(q.Cancel(id)) << "second Cancel of the same id";
}

TEST(TimerQueueTest, CancelAfterRunReturnsFalse) {
  TimerQueue q;
  absl::Notification ran;
  TimerQueue::TimerId id = q.Schedule(absl::Now(), [&] { ran.Notify(); });
  ASSERT_TRUE(ran.WaitForNotificationWithTimeout(kGuard));
  EXPECT_FALSE(q.Cancel(id));
}

TEST(TimerQueueTest, CancelWhileRunningReturnsFalse) {
  Latch release;
  TimerQueue q;
  absl::Cleanup open_release = [&] { release.Open(); };
  absl::Notification started;
  TimerQueue::TimerId id = q.Schedule(absl::Now(), [&] {
    started.Notify();
    release.Wait();
  });
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(kGuard));
  EXPECT_FALSE(q.Cancel(id));
  release.Open();
}

TEST(TimerQueueTest, CancelUnknownIdReturnsFalse) {
  TimerQueue q;
  EXPECT_FALSE(q.Cancel(0));
  EXPECT_FALSE(q.Cancel(12345));
}

TEST(TimerQueueTest, CallbackMayScheduleAnother) {
  TimerQueue q;
  absl::Notification second;
  q.Schedule(absl::Now(), [&] { q.Schedule(absl::Now(), [&] { second.Notify(); }); });
  EXPECT_TRUE(second.WaitForNotificationWithTimeout(kGuard));
}

TEST(TimerQueueTest, DestructorDropsPendingCallbacksWithoutRunning) {
  std::atomic<int> ran{0};
  auto owned = std::make_shared<int>(7);
  std::weak_ptr<int> watch = owned;
  {
    TimerQueue q;
    q.Schedule(absl::Now() + absl::Hours(1), [&ran, owned] { ran++; });
    q.Schedule(absl::Now() + absl::Hours(2), [&ran] { ran++; });
    owned.reset();
    EXPECT_FALSE(watch.expired()) << "the pending callback holds its captures";
  }  // Joins the timer thread: nothing can run after this point.
  EXPECT_EQ(ran.load(), 0);
  EXPECT_TRUE(watch.expired()) << "dropped callbacks are destroyed";
}

// ---------------------------------------------------------------------------------------------
// EchoBackend

TEST(EstimateTokensTest, RoundsUpAtFourCharactersPerToken) {
  EXPECT_EQ(EstimateTokens(""), 0);
  EXPECT_EQ(EstimateTokens("a"), 1);
  EXPECT_EQ(EstimateTokens("abcd"), 1);
  EXPECT_EQ(EstimateTokens("abcde"), 2);
  EXPECT_EQ(EstimateTokens(std::string(400, 'x')), 100);
}

TEST(EchoBackendTest, AnswersLastUserMessageInline) {
  EchoBackend echo;
  ModelRequest req;
  req.model = "echo";
  req.messages = {Msg(v1::ROLE_SYSTEM, "be brief"), Msg(v1::ROLE_USER, "first"),
                  Msg(v1::ROLE_ASSISTANT, "reply"), Msg(v1::ROLE_USER, "second question"),
                  Msg(v1::ROLE_ASSISTANT, "not this")};
  CallRecorder rec;
  auto call = echo.Start(req, rec.Callbacks());
  // Inline: on_done has run before Start returned.
  ASSERT_TRUE(rec.done.HasBeenNotified());
  ASSERT_NE(call, nullptr);
  call->Cancel();  // no-op after completion
  EXPECT_EQ(rec.done_count(), 1u);

  absl::StatusOr<ModelResponse> r = rec.result();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->text, "second question");
  EXPECT_EQ(r->finish_reason, "stop");
  EXPECT_EQ(r->served_by, "echo");
  EXPECT_TRUE(r->tool_calls.empty());
  EXPECT_THAT(rec.delta_list(), ElementsAre("second question"));
}

TEST(EchoBackendTest, ToolCommandCallsAKnownToolThenAnswersWithItsResult) {
  EchoBackend echo;
  ModelRequest req;
  req.tools = {ToolDefinition{"get_weather", "Weather", "{}"}};
  req.messages = {Msg(v1::ROLE_USER, "/tool get_weather {\"city\": \"Paris\"}")};
  CallRecorder rec;
  echo.Start(req, rec.Callbacks());
  absl::StatusOr<ModelResponse> r = rec.result();
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->tool_calls.size(), 1u);
  EXPECT_EQ(r->tool_calls[0].name(), "get_weather");
  EXPECT_EQ(r->tool_calls[0].arguments_json(), "{\"city\": \"Paris\"}");
  EXPECT_EQ(r->tool_calls[0].id(), "call_echo_1");
  EXPECT_EQ(r->finish_reason, "tool_calls");
  EXPECT_EQ(r->text, "");

  // The next step sees the call and its result: the answer is the result's text.
  ChatMessage assistant = Msg(v1::ROLE_ASSISTANT, "");
  assistant.tool_calls = r->tool_calls;
  ChatMessage result = Msg(v1::ROLE_TOOL, "sunny");
  result.tool_call_id = "call_echo_1";
  req.messages.push_back(assistant);
  req.messages.push_back(result);
  CallRecorder rec2;
  echo.Start(req, rec2.Callbacks());
  r = rec2.result();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->tool_calls.empty());
  EXPECT_EQ(r->text, "sunny");
  EXPECT_EQ(r->finish_reason, "stop");
}

TEST(EchoBackendTest, ToolCommandForAnUnknownToolIsEchoed) {
  EchoBackend echo;
  ModelRequest req;
  req.messages = {Msg(v1::ROLE_USER, "/tool rm -rf")};
  CallRecorder rec;
  echo.Start(req, rec.Callbacks());
  absl::StatusOr<ModelResponse> r = rec.result();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->tool_calls.empty());
  EXPECT_EQ(r->text, "/tool rm -rf");
}

TEST(EchoBackendTest, TokenEstimatesCountEveryMessagePlusOverhead) {
  EchoBackend echo;
  ModelRequest req;
  req.messages = {Msg(v1::ROLE_SYSTEM, "12345678"),  // 2 tokens + 4
                  Msg(v1::ROLE_USER, "hello")};      // 2 tokens + 4
  CallRecorder rec;
  echo.Start(req, rec.Callbacks());
  absl::StatusOr<ModelResponse> r = rec.result();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->input_tokens, 12);
  EXPECT_EQ(r->output_tokens, 2);
}

TEST(EchoBackendTest, NoUserMessageGivesEmptyTextAndNoDelta) {
  EchoBackend echo;
  ModelRequest req;
  req.messages = {Msg(v1::ROLE_SYSTEM, "instructions")};
  CallRecorder rec;
  echo.Start(req, rec.Callbacks());
  absl::StatusOr<ModelResponse> r = rec.result();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->text, "");
  EXPECT_EQ(r->output_tokens, 0);
  EXPECT_TRUE(rec.delta_list().empty());
}

TEST(EchoBackendTest, WorksWithoutDeltaCallback) {
  EchoBackend echo;
  absl::StatusOr<ModelResponse> got = absl::UnknownError("not called");
  ModelCallbacks cb;
  cb.on_done = [&](absl::StatusOr<ModelResponse> r) { got = std::move(r); };
  echo.Start(RequestWithUserText("echo", "hi"), std::move(cb));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->text, "hi");
}

// ---------------------------------------------------------------------------------------------
// ScriptedBackend

TEST(ScriptedBackendTest, ServesQueuedRepliesInOrderThenEchoes) {
  ScriptedBackend backend;
  backend.Push(Reply("one"));
  backend.Push(Reply("two"));
  EXPECT_EQ(backend.pending_replies(), 2u);

  std::vector<std::string> texts;
  std::vector<std::string> served_by;
  for (int i = 0; i < 3; ++i) {
    CallRecorder rec;
    backend.Start(RequestWithUserText("m", "user says " + std::to_string(i)), rec.Callbacks());
    ASSERT_TRUE(rec.done.HasBeenNotified()) << "undelayed replies complete inline";
    absl::StatusOr<ModelResponse> r = rec.result();
    ASSERT_TRUE(r.ok()) << r.status();
    texts.push_back(r->text);
    served_by.push_back(r->served_by);
  }
  EXPECT_THAT(texts, ElementsAre("one", "two", "user says 2"));
  EXPECT_THAT(served_by, ElementsAre("scripted", "scripted", "echo"));
  EXPECT_EQ(backend.pending_replies(), 0u);
}

TEST(ScriptedBackendTest, ReplyStreamsDeltasAndReportsToolCallsAndTokens) {
  ScriptedBackend backend;
  ScriptedReply reply = Reply("hello world");
  v1::ToolCall& tc = reply.tool_calls.emplace_back();
  tc.set_id("call_1");
  tc.set_name("lookup");
  tc.set_arguments_json("{}");
  reply.deltas = {"hello ", "world"};
  reply.input_tokens = 11;
  reply.output_tokens = 22;
  backend.Push(reply);

  CallRecorder rec;
  backend.Start(RequestWithUserText("m", "q"), rec.Callbacks());
  absl::StatusOr<ModelResponse> r = rec.result();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(rec.delta_list(), ElementsAre("hello ", "world"));
  EXPECT_EQ(r->text, "hello world");
  ASSERT_EQ(r->tool_calls.size(), 1u);
  EXPECT_EQ(r->tool_calls[0].id(), "call_1");
  EXPECT_EQ(r->tool_calls[0].name(), "lookup");
  EXPECT_EQ(r->finish_reason, "tool_calls");
  EXPECT_EQ(r->input_tokens, 11);
  EXPECT_EQ(r->output_tokens, 22);
}

TEST(ScriptedBackendTest, DefaultDeltaIsTheTextAndTokensAreEstimated) {
  ScriptedBackend backend;
  backend.Push(Reply("abcdefgh"));
  CallRecorder rec;
  backend.Start(RequestWithUserText("m", "1234"), rec.Callbacks());
  absl::StatusOr<ModelResponse> r = rec.result();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(rec.delta_list(), ElementsAre("abcdefgh"));
  EXPECT_EQ(r->input_tokens, 1 + 4);
  EXPECT_EQ(r->output_tokens, 2);
  EXPECT_EQ(r->finish_reason, "stop");
  EXPECT_EQ(r->served_by, "scripted");
}

TEST(ScriptedBackendTest, ErrorPropagatesWithItsCode) {
  ScriptedBackend backend;
  ScriptedReply failing = Failure(absl::UnavailableError("backend down"));
  failing.text = "ignored";
  backend.Push(failing);
  backend.Push(Failure(absl::ResourceExhaustedError("rate limited")));
  CallRecorder first;
  CallRecorder second;
  backend.Start(RequestWithUserText("m", "q"), first.Callbacks());
  backend.Start(RequestWithUserText("m", "q"), second.Callbacks());
  ASSERT_TRUE(first.done.HasBeenNotified());
  EXPECT_EQ(first.result().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(first.result().status().message(), HasSubstr("backend down"));
  EXPECT_TRUE(first.delta_list().empty()) << "a failing reply streams no default delta";
  EXPECT_EQ(second.result().status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(ScriptedBackendTest, DelayedReplyCompletesLaterOnAnotherThread) {
  CallRecorder rec;  // outlives the backend and its timer thread
  ScriptedBackend backend;
  const absl::Duration delay = absl::Milliseconds(100);
  backend.Push(Reply("late", delay));
  const absl::Time before = absl::Now();
  auto call = backend.Start(RequestWithUserText("m", "q"), rec.Callbacks());
  ASSERT_TRUE(rec.done.WaitForNotificationWithTimeout(kGuard));

  absl::StatusOr<ModelResponse> r = rec.result();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->text, "late");
  absl::MutexLock lock(&rec.mu);
  EXPECT_NE(rec.done_thread, std::this_thread::get_id()) << "completed inline";
  EXPECT_GE(rec.done_time - before, delay) << "completed before its delay";
  EXPECT_EQ(rec.results.size(), 1u);
}

TEST(ScriptedBackendTest, DeadlineShorterThanDelayGivesDeadlineExceeded) {
  CallRecorder rec;  // outlives the backend and its timer thread
  ScriptedBackend backend;
  // If the deadline were ignored the call would take an hour and the guard would fail.
  backend.Push(Reply("too late", absl::Hours(1)));
  ModelRequest req = RequestWithUserText("m", "q");
  req.deadline = absl::Now() + absl::Milliseconds(20);
  backend.Start(req, rec.Callbacks());
  ASSERT_TRUE(rec.done.WaitForNotificationWithTimeout(kGuard));
  EXPECT_EQ(rec.result().status().code(), absl::StatusCode::kDeadlineExceeded);
  absl::MutexLock lock(&rec.mu);
  EXPECT_GE(rec.done_time, req.deadline);
  EXPECT_EQ(rec.results.size(), 1u);
}

TEST(ScriptedBackendTest, AlreadyPassedDeadlineGivesDeadlineExceeded) {
  CallRecorder rec;  // outlives the backend and its timer thread
  ScriptedBackend backend;
  backend.Push(Reply("instant"));
  ModelRequest req = RequestWithUserText("m", "q");
  req.deadline = absl::Now() - absl::Seconds(1);
  backend.Start(req, rec.Callbacks());
  ASSERT_TRUE(rec.done.WaitForNotificationWithTimeout(kGuard));
  EXPECT_EQ(rec.result().status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(ScriptedBackendTest, CancelDelayedCallCompletesCancelledExactlyOnce) {
  CallRecorder rec;  // recorders outlive the backend and its timer thread
  CallRecorder sentinel;
  Latch release;
  absl::Notification holding;
  ScriptedBackend backend;
  absl::Cleanup open_release = [&] { release.Open(); };
  // A first delayed call whose on_done blocks holds the backend's timer thread, so the call
  // under test cannot fire on its own while we cancel it.
  backend.Push(Reply("holder", absl::Milliseconds(1)));
  ModelCallbacks hold_cb;
  const std::thread::id test_thread = std::this_thread::get_id();
  hold_cb.on_done = [&](absl::StatusOr<ModelResponse>) {
    holding.Notify();
    if (std::this_thread::get_id() == test_thread) {
      ADD_FAILURE() << "a delayed reply completed inline";
      return;  // blocking here would deadlock the test
    }
    release.Wait();
  };
  backend.Start(RequestWithUserText("m", "q"), std::move(hold_cb));
  ASSERT_TRUE(holding.WaitForNotificationWithTimeout(kGuard));

  backend.Push(Reply("never", absl::Milliseconds(1)));
  auto call = backend.Start(RequestWithUserText("m", "q"), rec.Callbacks());
  EXPECT_FALSE(rec.done.HasBeenNotified());
  call->Cancel();
  // Cancel completes the call on the cancelling thread.
  ASSERT_TRUE(rec.done.HasBeenNotified());
  EXPECT_EQ(rec.result().status().code(), absl::StatusCode::kCancelled);
  call->Cancel();  // a second Cancel is a no-op

  // The sentinel is due after the cancelled reply; once it is done the timer thread has passed
  // the cancelled reply's time, so a second on_done would already have happened.
  backend.Push(Reply("sentinel", absl::Milliseconds(2)));
  backend.Start(RequestWithUserText("m", "q"), sentinel.Callbacks());
  release.Open();
  ASSERT_TRUE(sentinel.done.WaitForNotificationWithTimeout(kGuard));
  ASSERT_TRUE(sentinel.result().ok());
  EXPECT_EQ(sentinel.result()->text, "sentinel");

  EXPECT_EQ(rec.done_count(), 1u);
  EXPECT_EQ(rec.result().status().code(), absl::StatusCode::kCancelled);
}

TEST(ScriptedBackendTest, CancelAfterCompletionIsANoOp) {
  CallRecorder inline_rec;
  CallRecorder rec;  // outlives the backend and its timer thread
  ScriptedBackend backend;
  backend.Push(Reply("quick", absl::Milliseconds(5)));
  auto call = backend.Start(RequestWithUserText("m", "q"), rec.Callbacks());
  ASSERT_TRUE(rec.done.WaitForNotificationWithTimeout(kGuard));
  call->Cancel();
  EXPECT_EQ(rec.done_count(), 1u);
  ASSERT_TRUE(rec.result().ok());
  EXPECT_EQ(rec.result()->text, "quick");

  backend.Push(Reply("inline"));  // inline completion: Cancel has nothing to stop
  auto inline_call = backend.Start(RequestWithUserText("m", "q"), inline_rec.Callbacks());
  inline_call->Cancel();
  EXPECT_EQ(inline_rec.done_count(), 1u);
  EXPECT_TRUE(inline_rec.result().ok());
}

TEST(ScriptedBackendTest, RecordsEveryRequestInOrder) {
  ScriptedBackend backend;
  backend.Push(Reply("scripted"));
  ModelRequest a = RequestWithUserText("model-a", "first");
  ToolDefinition tool;
  tool.name = "search";
  a.tools.push_back(tool);
  a.stream = true;
  backend.Start(a, Ignore());
  backend.Start(RequestWithUserText("model-b", "second"), Ignore());  // echoes

  std::vector<ModelRequest> got = backend.requests();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].model, "model-a");
  ASSERT_EQ(got[0].messages.size(), 1u);
  EXPECT_EQ(got[0].messages[0].text, "first");
  ASSERT_EQ(got[0].tools.size(), 1u);
  EXPECT_EQ(got[0].tools[0].name, "search");
  EXPECT_TRUE(got[0].stream);
  EXPECT_EQ(got[1].model, "model-b");
  ASSERT_EQ(got[1].messages.size(), 1u);
  EXPECT_EQ(got[1].messages[0].text, "second");
}

TEST(ScriptedBackendTest, ScriptedDeltasStreamBeforeAFailure) {
  ScriptedBackend backend;
  ScriptedReply reply = Failure(absl::AbortedError("stream broke"));
  reply.deltas = {"par", "tial"};
  backend.Push(reply);
  CallRecorder rec;
  backend.Start(RequestWithUserText("m", "q"), rec.Callbacks());
  EXPECT_THAT(rec.delta_list(), ElementsAre("par", "tial"));
  EXPECT_EQ(rec.result().status().code(), absl::StatusCode::kAborted);
}

TEST(ScriptedBackendTest, DelayedFailureCompletesLaterOnAnotherThread) {
  CallRecorder rec;  // outlives the backend and its timer thread
  ScriptedBackend backend;
  const absl::Duration delay = absl::Milliseconds(100);
  backend.Push(Failure(absl::InternalError("boom"), delay));
  const absl::Time before = absl::Now();
  auto call = backend.Start(RequestWithUserText("m", "q"), rec.Callbacks());
  ASSERT_TRUE(rec.done.WaitForNotificationWithTimeout(kGuard));

  EXPECT_EQ(rec.result().status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(rec.result().status().message(), HasSubstr("boom"));
  absl::MutexLock lock(&rec.mu);
  EXPECT_NE(rec.done_thread, std::this_thread::get_id()) << "completed inline";
  EXPECT_GE(rec.done_time - before, delay) << "completed before its delay";
  EXPECT_EQ(rec.results.size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// ModelRouter

TEST(ModelRouterTest, EchoIsAlwaysRoutable) {
  ModelRouter router;
  EXPECT_TRUE(router.HasModel("echo"));
  EXPECT_FALSE(router.HasModel("gpt-x"));
  EXPECT_THAT(router.ModelNames(), ElementsAre("echo"));
  EXPECT_EQ(router.Cost("echo", 1000000, 1000000), 0.0);

  CallRecorder rec;
  router.Start(RequestWithUserText("echo", "ping"), rec.Callbacks());
  ASSERT_TRUE(rec.done.HasBeenNotified());
  ASSERT_TRUE(rec.result().ok()) << rec.result().status();
  EXPECT_EQ(rec.result()->text, "ping");
  EXPECT_EQ(rec.result()->served_by, "echo/echo");  // backend/deployment model
  EXPECT_EQ(rec.result()->served_model, "echo");
}

TEST(ModelRouterTest, RegisterBackendTwiceIsAlreadyExists) {
  ModelRouter router;
  ASSERT_TRUE(router.RegisterBackend("s", std::make_shared<ScriptedBackend>()).ok());
  absl::Status st = router.RegisterBackend("s", std::make_shared<ScriptedBackend>());
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(st.message(), HasSubstr("\"s\""));
  EXPECT_EQ(router.RegisterBackend("echo", std::make_shared<EchoBackend>()).code(),
            absl::StatusCode::kAlreadyExists);
}

TEST(ModelRouterTest, AddModelWithUnknownBackendIsInvalidArgument) {
  ModelRouter router;
  absl::Status st = router.AddModel(Model("m", {{"nope", "x", 1}}));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("nope"));
  EXPECT_FALSE(router.HasModel("m"));
}

TEST(ModelRouterTest, AddModelRejectsDuplicatesEmptyNameAndNoDeployments) {
  ModelRouter router;
  ASSERT_TRUE(router.AddModel(Model("m", {{"echo", "echo", 1}})).ok());
  absl::Status dup = router.AddModel(Model("m", {{"echo", "echo", 1}}));
  EXPECT_EQ(dup.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(dup.message(), HasSubstr("\"m\""));
  EXPECT_EQ(router.AddModel(Model("echo", {{"echo", "echo", 1}})).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router.AddModel(Model("", {{"echo", "echo", 1}})).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router.AddModel(Model("empty", {})).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(router.ModelNames(), ElementsAre("echo", "m"));
}

TEST(ModelRouterTest, UnknownModelCompletesInlineWithInvalidArgument) {
  ModelRouter router;
  CallRecorder rec;
  auto call = router.Start(RequestWithUserText("missing-model", "hi"), rec.Callbacks());
  ASSERT_NE(call, nullptr);
  ASSERT_TRUE(rec.done.HasBeenNotified());
  EXPECT_EQ(rec.result().status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(rec.result().status().message(), HasSubstr("missing-model"));
  call->Cancel();
  EXPECT_EQ(rec.done_count(), 1u);
}

TEST(ModelRouterTest, RewritesModelToTheDeploymentModel) {
  ModelRouter router;
  auto scripted = std::make_shared<ScriptedBackend>();
  ASSERT_TRUE(router.RegisterBackend("scripted", scripted).ok());
  ASSERT_TRUE(router.AddModel(Model("smart", {{"scripted", "vendor-model-v2", 1}})).ok());
  scripted->Push(Reply("from scripted"));

  CallRecorder rec;
  router.Start(RequestWithUserText("smart", "hi"), rec.Callbacks());
  ASSERT_TRUE(rec.done.WaitForNotificationWithTimeout(kGuard));
  ASSERT_TRUE(rec.result().ok()) << rec.result().status();
  EXPECT_EQ(rec.result()->text, "from scripted");

  std::vector<ModelRequest> got = scripted->requests();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].model, "vendor-model-v2");
  ASSERT_EQ(got[0].messages.size(), 1u);
  EXPECT_EQ(got[0].messages[0].text, "hi");
}

TEST(ModelRouterTest, ForwardsNonRetryableBackendErrorsUnchanged) {
  ModelRouter router;
  auto scripted = std::make_shared<ScriptedBackend>();
  ASSERT_TRUE(router.RegisterBackend("scripted", scripted).ok());
  ASSERT_TRUE(router.AddModel(Model("m", {{"scripted", "x", 1}})).ok());
  scripted->Push(Failure(absl::FailedPreconditionError("context_length_exceeded")));
  CallRecorder rec;
  router.Start(RequestWithUserText("m", "hi"), rec.Callbacks());
  ASSERT_TRUE(rec.done.HasBeenNotified());
  EXPECT_EQ(rec.result().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(rec.result().status().message(), "context_length_exceeded");
  EXPECT_EQ(scripted->requests().size(), 1u);  // not retried
}

TEST(ModelRouterTest, WeightedChoiceRoughlyFollowsWeights) {
  ModelRouter router;
  auto light = std::make_shared<ScriptedBackend>();
  auto heavy = std::make_shared<ScriptedBackend>();
  ASSERT_TRUE(router.RegisterBackend("light", light).ok());
  ASSERT_TRUE(router.RegisterBackend("heavy", heavy).ok());
  ASSERT_TRUE(
      router.AddModel(Model("m", {{"light", "light-model", 1}, {"heavy", "heavy-model", 3}})).ok());
  constexpr int kCalls = 4000;
  int succeeded = 0;
  for (int i = 0; i < kCalls; ++i) {
    ModelCallbacks cb;
    cb.on_done = [&succeeded](absl::StatusOr<ModelResponse> r) {
      if (r.ok()) ++succeeded;
    };
    router.Start(RequestWithUserText("m", "x"), std::move(cb));
  }
  EXPECT_EQ(succeeded, kCalls);  // scripted backends with empty queues echo inline
  const std::vector<ModelRequest> to_light = light->requests();
  const std::vector<ModelRequest> to_heavy = heavy->requests();
  EXPECT_EQ(to_light.size() + to_heavy.size(), static_cast<size_t>(kCalls));
  const double heavy_share = static_cast<double>(to_heavy.size()) / kCalls;
  EXPECT_GE(heavy_share, 0.65);
  EXPECT_LE(heavy_share, 0.85);
  for (const ModelRequest& r : to_heavy) ASSERT_EQ(r.model, "heavy-model");
  for (const ModelRequest& r : to_light) ASSERT_EQ(r.model, "light-model");
}

TEST(ModelRouterTest, NonPositiveWeightsAreRejected) {
  ModelRouter router;
  ASSERT_TRUE(router.RegisterBackend("b", std::make_shared<ScriptedBackend>()).ok());
  EXPECT_EQ(router.AddModel(Model("zero", {{"b", "n", 0}})).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(router.AddModel(Model("negative", {{"b", "n", -3}})).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(router.HasModel("zero"));
}

TEST(ModelRouterTest, CostUsesPricePerMillionTokens) {
  ModelRouter router;
  ModelSpec spec = Model("priced", {{"echo", "echo", 1}});
  spec.price.input_per_mtok = 3.0;
  spec.price.output_per_mtok = 15.0;
  ASSERT_TRUE(router.AddModel(spec).ok());
  EXPECT_DOUBLE_EQ(router.Cost("priced", 1'000'000, 0), 3.0);
  EXPECT_DOUBLE_EQ(router.Cost("priced", 0, 1'000'000), 15.0);
  EXPECT_DOUBLE_EQ(router.Cost("priced", 2'000, 1'000), (2'000 * 3.0 + 1'000 * 15.0) / 1e6);
  EXPECT_DOUBLE_EQ(router.Cost("priced", 0, 0), 0.0);
  EXPECT_EQ(router.Cost("unknown", 1'000'000, 1'000'000), 0.0);
}

}  // namespace
}  // namespace agentd::backend
