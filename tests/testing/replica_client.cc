#include "testing/replica_client.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"

namespace agentd::testing {

bool PollUntil(std::chrono::milliseconds timeout, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string Describe(const grpc::Status& status) {
  return absl::StrCat("code ", status.error_code(), ": ", status.error_message());
}

void PrepareSessionCall(grpc::ClientContext* ctx, const std::string& session_id,
                        std::chrono::milliseconds timeout) {
  ctx->AddMetadata("x-agentd-session", session_id);
  ctx->set_deadline(std::chrono::system_clock::now() + timeout);
}

v1::RunTurnRequest TurnRequest(const std::string& session_id, const std::string& text,
                               v1::BusyPolicy on_busy, const std::string& idempotency_key) {
  v1::RunTurnRequest req;
  req.set_session_id(session_id);
  v1::InputMessage* in = req.add_input();
  in->set_role(v1::ROLE_USER);
  in->set_text(text);
  req.set_on_busy(on_busy);
  req.set_idempotency_key(idempotency_key);
  return req;
}

grpc::Status CreateAgent(const std::shared_ptr<grpc::Channel>& channel, const std::string& agent_id,
                         const std::string& model) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::CreateAgentRequest req;
  req.mutable_agent()->set_agent_id(agent_id);
  req.mutable_agent()->set_model(model);
  v1::Agent agent;
  return v1::AgentService::NewStub(channel)->CreateAgent(&ctx, req, &agent);
}

std::chrono::system_clock::time_point EventTime(const v1::Event& event) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(event.time().seconds()) +
          std::chrono::nanoseconds(event.time().nanos())));
}

grpc::Status RunTurn(v1::SessionService::Stub* stub, const v1::RunTurnRequest& request,
                     v1::TurnResult* result, std::chrono::milliseconds timeout) {
  grpc::ClientContext ctx;
  PrepareSessionCall(&ctx, request.session_id(), timeout);
  return stub->RunTurn(&ctx, request, result);
}

grpc::Status GetSession(v1::SessionService::Stub* stub, const std::string& session_id,
                        v1::Session* session) {
  grpc::ClientContext ctx;
  PrepareSessionCall(&ctx, session_id, std::chrono::seconds(10));
  v1::GetSessionRequest req;
  req.set_session_id(session_id);
  return stub->GetSession(&ctx, req, session);
}

grpc::Status CreateSession(v1::SessionService::Stub* stub, const std::string& agent_id,
                           const std::string& session_id) {
  grpc::ClientContext ctx;
  PrepareSessionCall(&ctx, session_id, std::chrono::seconds(10));
  v1::CreateSessionRequest req;
  req.set_agent_id(agent_id);
  req.set_session_id(session_id);
  v1::Session session;
  return stub->CreateSession(&ctx, req, &session);
}

grpc::Status ListAllEvents(v1::SessionService::Stub* stub, const std::string& session_id,
                           std::vector<v1::Event>* events, int page_size) {
  events->clear();
  v1::ListEventsRequest req;
  req.set_session_id(session_id);
  req.set_limit(page_size);
  for (;;) {
    grpc::ClientContext ctx;
    PrepareSessionCall(&ctx, session_id, std::chrono::seconds(10));
    v1::ListEventsResponse resp;
    grpc::Status st = stub->ListEvents(&ctx, req, &resp);
    if (!st.ok()) return st;
    if (resp.events().empty()) return grpc::Status::OK;
    for (const v1::Event& e : resp.events()) events->push_back(e);
    if (resp.next_after_seq() <= req.after_seq()) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "ListEvents: next_after_seq did not advance");
    }
    req.set_after_seq(resp.next_after_seq());
  }
}

EventWatcher::EventWatcher(v1::SessionService::Stub* stub, const std::string& session_id,
                           int64_t after_seq) {
  PrepareSessionCall(&ctx_, session_id, std::chrono::minutes(2));
  v1::WatchEventsRequest req;
  req.set_session_id(session_id);
  req.set_after_seq(after_seq);
  thread_ = std::thread([this, stub, req] {
    auto reader = stub->WatchEvents(&ctx_, req);
    for (v1::Event e; reader->Read(&e);) {
      absl::MutexLock lock(&mu_);
      events_.push_back(e);
    }
    status_ = reader->Finish();
  });
}

int64_t EventWatcher::last_seq() {
  absl::MutexLock lock(&mu_);
  return events_.empty() ? 0 : events_.back().seq();
}

std::vector<v1::Event> EventWatcher::events() {
  absl::MutexLock lock(&mu_);
  return events_;
}

void EventWatcher::Stop() {
  if (!thread_.joinable()) return;
  ctx_.TryCancel();
  thread_.join();
}

LogSummary SummarizeLog(const std::vector<v1::Event>& events) {
  LogSummary s;
  std::string open;  // the turn between its TURN_STARTED and its closing marker
  for (const v1::Event& e : events) {
    const std::string at = absl::StrCat("seq ", e.seq(), " (", v1::EventType_Name(e.type()),
                                        ", turn ", e.turn_id(), "): ");
    if (e.seq() != s.last_seq + 1) {
      s.problems.push_back(absl::StrCat(at, "expected seq ", s.last_seq + 1));
    }
    s.last_seq = e.seq();
    switch (e.type()) {
      case v1::EVENT_TYPE_TURN_STARTED:
        if (!open.empty()) s.problems.push_back(absl::StrCat(at, "turn ", open, " is still open"));
        open = e.turn().turn_id();
        ++s.started;
        if (e.turn_id() != open) s.problems.push_back(absl::StrCat(at, "marker names ", open));
        if (!e.turn().idempotency_key().empty()) s.turn_of_key[e.turn().idempotency_key()] = open;
        break;
      case v1::EVENT_TYPE_TURN_COMPLETED:
      case v1::EVENT_TYPE_TURN_FAILED:
        if (open.empty() || e.turn().turn_id() != open) {
          s.problems.push_back(absl::StrCat(at, "closes turn ", e.turn().turn_id(),
                                            " but the open turn is \"", open, "\""));
        }
        s.ends[e.turn().turn_id()] = e;
        (e.type() == v1::EVENT_TYPE_TURN_COMPLETED ? s.completed : s.failed)++;
        open.clear();
        break;
      default:
        if (open.empty() || e.turn_id() != open) {
          s.problems.push_back(absl::StrCat(at, "outside its turn (open: \"", open, "\")"));
        }
    }
  }
  if (!open.empty()) s.problems.push_back(absl::StrCat("turn ", open, " never closed"));
  return s;
}

bool Completed(const LogSummary& summary, const std::string& turn_id) {
  auto end = summary.ends.find(turn_id);
  return end != summary.ends.end() && end->second.type() == v1::EVENT_TYPE_TURN_COMPLETED;
}

std::string Problems(const LogSummary& summary, size_t max) {
  std::string out;
  for (size_t i = 0; i < summary.problems.size() && i < max; ++i) {
    absl::StrAppend(&out, "\n  ", summary.problems[i]);
  }
  if (summary.problems.size() > max) {
    absl::StrAppend(&out, "\n  ... ", summary.problems.size() - max, " more");
  }
  return out;
}

}  // namespace agentd::testing
