// Deadlines, cancellation and secret hygiene of turns served by an `openai` backend: an
// in-process agentd (gRPC + RocksDB) routing to a FakeOpenAiServer. The rest of the fault matrix
// is in backend_fault_matrix_test.cc.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "testing/fake_openai.h"
#include "testing/log_capture.h"
#include "testing/server_harness.h"

namespace agentd {
namespace {

using testing::Ctx;
using testing::FakeMode;
using testing::FakeOpenAiServer;
using testing::FakeReply;
using testing::ServerHarness;

constexpr char kKeyEnv[] = "AGENTD_TEST_KEY";

v1::RunTurnRequest UserTurn(const std::string& session_id, const std::string& text) {
  v1::RunTurnRequest req;
  req.set_session_id(session_id);
  v1::InputMessage* in = req.add_input();
  in->set_role(v1::ROLE_USER);
  in->set_text(text);
  return req;
}

using testing::Eventually;

class BackendSafetyTest : public ::testing::Test {
 protected:
  // Model "gpt" on an `openai` backend pointed at fake_, with fast retries.
  void Start(const std::string& api_key_env = "") {
    h_ = std::make_unique<ServerHarness>([this, api_key_env](server::Config* c) {
      c->router.max_retries = 2;
      c->router.initial_backoff_ms = 5;
      c->router.max_backoff_ms = 50;
      c->router.breaker_failures = 1000;
      server::BackendConfig& b = testing::AddFakeOpenAiModel(c, fake_.base_url(), {2.0, 8.0});
      b.api_key_env = api_key_env;
      if (!api_key_env.empty()) b.headers["X-Canary-Key"] = "env:" + api_key_env;
      b.timeout_ms = 30000;
    });
  }

  std::string NewSession() {
    return h_->CreateSession(h_->CreateAgent("gpt").agent_id()).session_id();
  }

  bool TurnFailedRecorded(const std::string& session_id) {
    auto events = h_->AllEvents(session_id);
    return !events.empty() && events.back().type() == v1::EVENT_TYPE_TURN_FAILED;
  }

  grpc::Status Cancel(const std::string& session_id, v1::TurnResult* out) {
    v1::CancelTurnRequest cancel;
    cancel.set_session_id(session_id);
    return h_->sessions().CancelTurn(Ctx().get(), cancel, out);
  }

  FakeOpenAiServer fake_;
  std::unique_ptr<ServerHarness> h_;  // declared last: stopped before the fake goes away
};

// ----------------------------------------------------------------------- 6. deadlines

TEST_F(BackendSafetyTest, GrpcDeadlineEndsASlowModelCall) {
  Start();
  FakeReply slow;
  slow.latency_ms = 3000;
  fake_.SetDefault(slow);
  const std::string sid = NewSession();
  v1::TurnResult r;
  auto ctx = Ctx(0.4);
  const absl::Time start = absl::Now();
  grpc::Status st = h_->sessions().RunTurn(ctx.get(), UserTurn(sid, "hurry"), &r);
  const absl::Duration elapsed = absl::Now() - start;
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  EXPECT_LT(elapsed, absl::Milliseconds(500));

  // Server side, the backend's deadline ended the call (well before the 3 s reply): the turn is
  // recorded as failed, without an answer, and was not retried past its deadline.
  ASSERT_TRUE(Eventually([&] { return TurnFailedRecorded(sid); }, absl::Milliseconds(1500)));
  for (const v1::Event& e : h_->AllEvents(sid)) {
    EXPECT_FALSE(e.has_message() && e.message().role() == v1::ROLE_ASSISTANT) << e.DebugString();
  }
  EXPECT_EQ(fake_.request_count(), 1);

  FakeReply quick;
  quick.text = "in time";
  fake_.Push(quick);
  ASSERT_TRUE(h_->Send(sid, "again", &r).ok());
  EXPECT_EQ(r.output_text(), "in time");
}

TEST_F(BackendSafetyTest, GrpcDeadlineMidStreamAbortsTheTransferAndStoresNoPartialAnswer) {
  Start();
  FakeReply drip;
  drip.text = std::string(400, 'd');
  drip.chunk_chars = 1;
  drip.drip_interval_ms = 10;  // ~4 s
  fake_.SetDefault(drip);
  const std::string sid = NewSession();
  auto ctx = Ctx(0.4);
  const absl::Time start = absl::Now();
  auto reader = h_->sessions().StreamTurn(ctx.get(), UserTurn(sid, "slow stream"));
  v1::TurnEvent te;
  int deltas = 0;
  while (reader->Read(&te)) deltas += te.has_delta() ? 1 : 0;
  grpc::Status st = reader->Finish();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
  EXPECT_GT(deltas, 0);  // it was cut mid-stream
  EXPECT_TRUE(Eventually([&] { return fake_.in_flight() == 0; }, absl::Seconds(1)));
  ASSERT_TRUE(Eventually([&] { return TurnFailedRecorded(sid); }, absl::Seconds(1)));
  for (const v1::Event& e : h_->AllEvents(sid)) {
    EXPECT_FALSE(e.has_message() && e.message().role() == v1::ROLE_ASSISTANT) << e.DebugString();
  }
  EXPECT_EQ(fake_.request_count(), 1);
}

// -------------------------------------------------------------------- 6. cancellation

TEST_F(BackendSafetyTest, CancelTurnDuringASlowUnaryCallIsPrompt) {
  Start();
  FakeReply slow;
  slow.latency_ms = 5000;
  fake_.SetDefault(slow);
  const std::string sid = NewSession();
  v1::TurnResult run;
  grpc::Status run_status;
  absl::Time run_returned;
  std::thread t([&] {
    run_status = h_->sessions().RunTurn(Ctx(30).get(), UserTurn(sid, "long"), &run);
    run_returned = absl::Now();
  });
  ASSERT_TRUE(Eventually([&] { return fake_.in_flight() == 1; }, absl::Seconds(5)));

  v1::TurnResult cancelled;
  const absl::Time start = absl::Now();
  grpc::Status st = Cancel(sid, &cancelled);
  const absl::Duration took = absl::Now() - start;
  t.join();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(cancelled.status(), v1::TURN_STATUS_CANCELLED);
  EXPECT_LT(took, absl::Milliseconds(500));
  ASSERT_TRUE(run_status.ok()) << run_status.error_message();
  EXPECT_EQ(run.status(), v1::TURN_STATUS_CANCELLED);
  EXPECT_EQ(run.turn_id(), cancelled.turn_id());
  EXPECT_LT(run_returned - start, absl::Milliseconds(500));
  EXPECT_EQ(fake_.request_count(), 1);  // a cancelled call is not retried
  EXPECT_TRUE(TurnFailedRecorded(sid));
}

// Cancel reaches the router's backoff timer too: a turn waiting out a provider's Retry-After ends
// at once and the retry is never sent.
TEST_F(BackendSafetyTest, CancelTurnDuringRetryAfterBackoffIsPrompt) {
  Start();
  FakeReply limited;
  limited.mode = FakeMode::k429RateLimit;
  limited.retry_after_s = 3;
  fake_.Push(limited);
  const std::string sid = NewSession();
  v1::TurnResult run;
  grpc::Status run_status;
  std::thread t(
      [&] { run_status = h_->sessions().RunTurn(Ctx(30).get(), UserTurn(sid, "x"), &run); });
  ASSERT_TRUE(Eventually([&] { return fake_.request_count() == 1 && fake_.in_flight() == 0; },
                         absl::Seconds(5)));
  absl::SleepFor(absl::Milliseconds(100));  // the 429 has reached the router: it is backing off
  v1::TurnResult cancelled;
  const absl::Time start = absl::Now();
  grpc::Status st = Cancel(sid, &cancelled);
  t.join();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(cancelled.status(), v1::TURN_STATUS_CANCELLED);
  ASSERT_TRUE(run_status.ok()) << run_status.error_message();
  EXPECT_EQ(run.status(), v1::TURN_STATUS_CANCELLED);
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_EQ(fake_.request_count(), 1);
}

// The fake only notices a client that left while it waits out `latency_ms` when that latency is
// over, so whether the HTTP transfer was really aborted is observed on a slow drip instead: the
// fake's next write fails and its in_flight() drops long before the 4 s the drip would take.
TEST_F(BackendSafetyTest, CancelTurnAbortsTheStreamingHttpTransfer) {
  Start();
  FakeReply drip;
  drip.text = std::string(400, 'z');
  drip.chunk_chars = 1;
  drip.drip_interval_ms = 10;
  fake_.SetDefault(drip);
  const std::string sid = NewSession();
  auto ctx = Ctx(30);
  auto reader = h_->sessions().StreamTurn(ctx.get(), UserTurn(sid, "stream slowly"));
  v1::TurnEvent te;
  bool got_delta = false;
  while (!got_delta && reader->Read(&te)) got_delta = te.has_delta();
  ASSERT_TRUE(got_delta);
  ASSERT_EQ(fake_.in_flight(), 1);

  v1::TurnResult cancelled;
  const absl::Time start = absl::Now();
  grpc::Status st = Cancel(sid, &cancelled);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(500));
  EXPECT_EQ(cancelled.status(), v1::TURN_STATUS_CANCELLED);
  EXPECT_TRUE(Eventually([&] { return fake_.in_flight() == 0; }, absl::Seconds(1)))
      << "the HTTP transfer is still open after CancelTurn";

  std::optional<v1::TurnResult> final_result;
  while (reader->Read(&te)) {
    if (te.has_result()) final_result = te.result();
  }
  EXPECT_TRUE(reader->Finish().ok());
  ASSERT_TRUE(final_result.has_value());
  EXPECT_EQ(final_result->status(), v1::TURN_STATUS_CANCELLED);
  EXPECT_EQ(fake_.request_count(), 1);
}

// ------------------------------------------------------------------- 9. API-key canary

std::string RandomHex(int bytes) {
  std::random_device rd;
  std::string out;
  for (int i = 0; i < bytes; ++i) out += absl::StrFormat("%02x", rd() & 0xff);
  return out;
}

TEST_F(BackendSafetyTest, ApiKeyNeverLeaksIntoLogsStatusesEventsOrTheDataDir) {
  // The unique part alone is the canary: a partly redacted key ("sk-canary-****") is fine, any
  // run of its random part is not.
  const std::string canary = RandomHex(16);
  const std::string secret = "sk-canary-" + canary;
  ASSERT_EQ(setenv(kKeyEnv, secret.c_str(), 1), 0);
  testing::LogCapture logs;
  Start(kKeyEnv);
  std::vector<std::string> seen;  // every status message and event the clients got
  const std::string sid = NewSession();
  auto turn = [&](FakeMode mode, bool stream) {
    FakeReply reply;
    reply.mode = mode;
    fake_.SetDefault(reply);
    v1::RunTurnRequest req = UserTurn(sid, "canary check");
    if (!stream) {
      v1::TurnResult r;
      grpc::Status st = h_->sessions().RunTurn(Ctx().get(), req, &r);
      seen.push_back(st.error_message());
      seen.push_back(r.DebugString());
      return st.error_code();
    }
    auto ctx = Ctx();
    auto reader = h_->sessions().StreamTurn(ctx.get(), req);
    v1::TurnEvent te;
    while (reader->Read(&te)) seen.push_back(te.DebugString());
    grpc::Status st = reader->Finish();
    seen.push_back(st.error_message());
    return st.error_code();
  };
  EXPECT_EQ(turn(FakeMode::kOk, false), grpc::StatusCode::OK);
  EXPECT_EQ(turn(FakeMode::k401, false), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(turn(FakeMode::kStatus500, false), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(turn(FakeMode::k401, true), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(turn(FakeMode::kCutMidStream, true), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(turn(FakeMode::k400Other, false), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(turn(FakeMode::kOk, true), grpc::StatusCode::OK);

  // The key did reach the provider, on every request.
  auto headers = fake_.request_headers();
  ASSERT_EQ(headers.size(), 1u + 1 + 3 + 1 + 3 + 1 + 1);
  for (const auto& h : headers) {
    EXPECT_EQ(h.at("authorization"), "Bearer " + secret);
    EXPECT_EQ(h.at("x-canary-key"), secret);  // an "env:" header value is a secret too
  }

  for (const v1::Event& e : h_->AllEvents(sid)) seen.push_back(e.DebugString());
  v1::GetSessionRequest get;
  get.set_session_id(sid);
  v1::Session s;
  ASSERT_TRUE(h_->sessions().GetSession(Ctx().get(), get, &s).ok());
  seen.push_back(s.DebugString());
  for (const std::string& text : seen) {
    EXPECT_EQ(text.find(canary), std::string::npos) << "API key leaked to a client: " << text;
  }

  h_->Stop();
  const std::string log_text = logs.text();
  // The capture really saw the failures (so the check below is not vacuous).
  EXPECT_NE(log_text.find("PERMISSION_DENIED"), std::string::npos) << log_text;
  EXPECT_NE(log_text.find("UNAVAILABLE"), std::string::npos) << log_text;
  EXPECT_EQ(log_text.find(canary), std::string::npos) << "API key leaked to the log";

  int files = 0;
  bool found_turn_text = false;  // the scan reads what the server wrote
  for (const auto& entry : std::filesystem::recursive_directory_iterator(h_->data_dir())) {
    if (!entry.is_regular_file()) continue;
    ++files;
    std::ifstream in(entry.path(), std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find(canary), std::string::npos) << "API key leaked to " << entry.path();
    found_turn_text = found_turn_text || bytes.find("canary check") != std::string::npos;
  }
  EXPECT_TRUE(found_turn_text);
  EXPECT_GT(files, 3);  // RocksDB's files really were there
  unsetenv(kKeyEnv);
}

}  // namespace
}  // namespace agentd
