#include "loadgen_driver.h"

#include <grpcpp/client_context.h>

#include <algorithm>
#include <atomic>
#include <deque>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"

namespace agentd::bench::loadgen {
namespace {

constexpr size_t kMaxErrorSamples = 8;
constexpr int kMaxRounds = 8;  // RunTurn calls per step in client mode before giving up

std::string CodeName(grpc::StatusCode code) {
  // grpc::StatusCode and absl::StatusCode share their numbers.
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

}  // namespace

int64_t Errors::total() const {
  int64_t n = 0;
  for (const auto& [kind, count] : by_kind) n += count;
  return n;
}

void Errors::Add(const std::string& kind, const std::string& message) {
  ++by_kind[kind];
  if (samples.size() < kMaxErrorSamples) samples.push_back(kind + ": " + message);
}

void Errors::Merge(const Errors& other) {
  for (const auto& [kind, count] : other.by_kind) by_kind[kind] += count;
  for (const std::string& s : other.samples) {
    if (samples.size() < kMaxErrorSamples) samples.push_back(s);
  }
}

SessionRunner::SessionRunner(v1::SessionService::Stub* stub, std::string session_id,
                             const Workload* workload)
    : stub_(stub), session_id_(std::move(session_id)), workload_(workload) {}

void SessionRunner::StartStep(Clock::time_point scheduled, StepListener* listener) {
  listener_ = listener;
  scheduled_ = scheduled;
  ++turn_index_;
  rounds_ = 0;
  saw_tool_call_ = saw_tool_result_ = false;
  step_model_calls_ = 0;
  request_.Clear();
  request_.set_session_id(session_id_);
  v1::InputMessage* in = request_.add_input();
  in->set_role(v1::ROLE_USER);
  message_ = FilledText("step " + std::to_string(turn_index_) + " of " + session_id_ + ":",
                    workload_->message_bytes);
  in->set_text(message_);
  Issue();
}

void SessionRunner::Issue() {
  ++rounds_;
  ctx_ = std::make_unique<grpc::ClientContext>();
  ctx_->AddMetadata("authorization", workload_->authorization);
  ctx_->AddMetadata("x-agentd-session", session_id_);
  ctx_->set_deadline(std::chrono::system_clock::now() + workload_->timeout);
  response_.Clear();
  stub_->async()->RunTurn(ctx_.get(), &request_, &response_,
                          [this](grpc::Status status) { OnReply(status); });
}

void SessionRunner::OnReply(const grpc::Status& status) {
  if (!status.ok()) {
    Finish("rpc:" + CodeName(status.error_code()), status.error_message());
    return;
  }
  for (const v1::Event& e : response_.events()) {
    saw_tool_call_ |= e.type() == v1::EVENT_TYPE_TOOL_CALL;
    saw_tool_result_ |= e.type() == v1::EVENT_TYPE_TOOL_RESULT;
  }
  step_model_calls_ += response_.usage().model_calls();
  if (response_.status() == v1::TURN_STATUS_REQUIRES_ACTION &&
      workload_->tool == ToolMode::kClient && rounds_ < kMaxRounds) {
    request_.Clear();
    request_.set_session_id(session_id_);
    for (const v1::ToolCall& call : response_.required_tool_calls()) {
      v1::ToolResult* result = request_.add_tool_results();
      result->set_tool_call_id(call.id());
      const size_t body = std::max<size_t>(workload_->tool_result_bytes, 16) - 2;
      result->set_output(FilledText("{\"result\":\"" + call.name() + " found:", body) + "\"}");
    }
    Issue();
    return;
  }
  if (response_.status() != v1::TURN_STATUS_COMPLETED) {
    Finish("turn:" + v1::TurnStatus_Name(response_.status()), response_.error());
  } else if (response_.last_seq() <= last_seq_) {
    Finish("check:last_seq", "last_seq did not advance: " + std::to_string(response_.last_seq()));
  } else if (workload_->tool != ToolMode::kNone && !(saw_tool_call_ && saw_tool_result_)) {
    Finish("check:no_tool_step", "the step has no TOOL_CALL and TOOL_RESULT events");
  } else if (workload_->check_echo && response_.output_text() != message_) {
    Finish("check:echo", "the answer is not the message");
  } else {
    Finish("", "");
  }
}

void SessionRunner::Finish(const std::string& error_kind, const std::string& message) {
  const float ms = std::chrono::duration<float, std::milli>(Clock::now() - scheduled_).count();
  if (response_.last_seq() > last_seq_) last_seq_ = response_.last_seq();
  if (record_) {
    if (!error_kind.empty()) {
      errors_.Add(error_kind, session_id_ + " step " + std::to_string(turn_index_) + ": " +
                                  message);
    } else {
      samples_.push_back(Sample{turn_index_, ms});
      if (saw_tool_call_ && saw_tool_result_) ++tool_steps_;
      model_calls_ += step_model_calls_;
    }
  } else if (!error_kind.empty()) {
    errors_.Add("warmup:" + error_kind, message);
  }
  listener_->OnStepDone(this);
}

namespace {

class ClosedLoop : public StepListener {
 public:
  explicit ClosedLoop(size_t runners) : done_(static_cast<int>(runners)) {}

  void OnStepDone(SessionRunner* runner) override {
    if (runner->budget-- > 0) {
      issued_.fetch_add(1, std::memory_order_relaxed);
      runner->StartStep(Clock::now(), this);
    } else {
      done_.DecrementCount();
    }
  }
  void Wait() { done_.Wait(); }
  int64_t issued() const { return issued_.load(); }

 private:
  absl::BlockingCounter done_;
  std::atomic<int64_t> issued_{0};
};

class OpenLoop : public StepListener {
 public:
  explicit OpenLoop(const std::vector<SessionRunner*>& runners)
      : idle_(runners.begin(), runners.end()) {}

  /// A step arrives (the dispatcher thread).
  void Arrive(Clock::time_point at) {
    SessionRunner* runner = nullptr;
    {
      absl::MutexLock lock(&mu_);
      ++issued_;
      ++in_system_;
      if (idle_.empty()) {
        waiting_.push_back(at);
        max_queue_ = std::max<int64_t>(max_queue_, static_cast<int64_t>(waiting_.size()));
        return;
      }
      runner = idle_.back();
      idle_.pop_back();
    }
    runner->StartStep(at, this);
  }

  void OnStepDone(SessionRunner* runner) override {
    Clock::time_point next;
    {
      absl::MutexLock lock(&mu_);
      --in_system_;
      if (waiting_.empty()) {
        idle_.push_back(runner);
        return;
      }
      next = waiting_.front();
      waiting_.pop_front();
    }
    runner->StartStep(next, this);
  }

  /// Blocks until every arrived step has finished.
  void Drain() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](int64_t* n) { return *n == 0; }, &in_system_));
  }
  int64_t issued() {
    absl::MutexLock lock(&mu_);
    return issued_;
  }
  int64_t max_queue() {
    absl::MutexLock lock(&mu_);
    return max_queue_;
  }

 private:
  absl::Mutex mu_;
  std::vector<SessionRunner*> idle_ ABSL_GUARDED_BY(mu_);
  std::deque<Clock::time_point> waiting_ ABSL_GUARDED_BY(mu_);
  int64_t in_system_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t issued_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t max_queue_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

LoopResult RunClosedLoop(const std::vector<SessionRunner*>& runners, int steps) {
  LoopResult result;
  if (runners.empty() || steps <= 0) return result;
  ClosedLoop loop(runners.size());
  const Clock::time_point t0 = Clock::now();
  for (SessionRunner* r : runners) r->budget = steps;
  // Each runner's first step: the same path as a finished step with budget left.
  for (SessionRunner* r : runners) loop.OnStepDone(r);
  loop.Wait();
  result.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  result.issued = loop.issued();
  return result;
}

LoopResult RunOpenLoop(const std::vector<SessionRunner*>& runners, double rate,
                       double duration_s) {
  LoopResult result;
  if (runners.empty() || rate <= 0 || duration_s <= 0) return result;
  OpenLoop loop(runners);
  const Clock::time_point t0 = Clock::now();
  const auto total = static_cast<int64_t>(rate * duration_s);
  for (int64_t i = 0; i < total; ++i) {
    // The schedule is fixed in advance; a late dispatcher sends at once, never shifts it.
    const Clock::time_point at =
        t0 + std::chrono::duration_cast<Clock::duration>(
                 std::chrono::duration<double>(static_cast<double>(i) / rate));
    std::this_thread::sleep_until(at);
    loop.Arrive(at);
  }
  loop.Drain();
  result.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  result.issued = loop.issued();
  result.max_queue = loop.max_queue();
  return result;
}

}  // namespace agentd::bench::loadgen
