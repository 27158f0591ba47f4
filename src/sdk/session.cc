// Session: everything but the turn loop (turn_loop.cc): the session's record, events, watch,
// forks, replay and tool state. Every call carries `x-agentd-session: <id>`.
#include <grpcpp/support/sync_stream.h>

#include <algorithm>

#include "agentd/client.h"
#include "sdk/core.h"

namespace agentd {

using internal::RetryClass;

namespace {
// ListEvents returns at most this many events per page.
constexpr int kMaxEventsPerPage = 1000;
}  // namespace

absl::StatusOr<v1::Session> Session::Get() const {
  v1::GetSessionRequest req;
  req.set_session_id(id_);
  return core_->Call<v1::Session>(RetryClass::kSafe, id_,
                                  [&](grpc::ClientContext* ctx, v1::Session* out) {
                                    return core_->sessions().GetSession(ctx, req, out);
                                  });
}

absl::Status Session::Delete() {
  v1::DeleteSessionRequest req;
  req.set_session_id(id_);
  return core_
      ->Call<google::protobuf::Empty>(RetryClass::kSafe, id_,
                                      [&](grpc::ClientContext* ctx, google::protobuf::Empty* out) {
                                        return core_->sessions().DeleteSession(ctx, req, out);
                                      })
      .status();
}

absl::StatusOr<v1::TurnResult> Session::Cancel() {
  v1::CancelTurnRequest req;
  req.set_session_id(id_);
  return core_->Call<v1::TurnResult>(RetryClass::kNever, id_,
                                     [&](grpc::ClientContext* ctx, v1::TurnResult* out) {
                                       return core_->sessions().CancelTurn(ctx, req, out);
                                     });
}

absl::StatusOr<std::vector<v1::Event>> Session::Events(int64_t after_seq, int limit) const {
  if (limit < 0) return absl::InvalidArgumentError("limit must be >= 0");
  std::vector<v1::Event> events;
  v1::ListEventsRequest req;
  req.set_session_id(id_);
  req.set_after_seq(after_seq);
  for (;;) {
    const int want =
        limit == 0 ? kMaxEventsPerPage : std::min<int>(kMaxEventsPerPage, limit - events.size());
    req.set_limit(want);
    auto page = core_->Call<v1::ListEventsResponse>(
        RetryClass::kSafe, id_, [&](grpc::ClientContext* ctx, v1::ListEventsResponse* out) {
          return core_->sessions().ListEvents(ctx, req, out);
        });
    if (!page.ok()) return page.status();
    const int got = page->events_size();
    for (v1::Event& e : *page->mutable_events()) events.push_back(std::move(e));
    // A short page is the last one (the server fills pages up to `limit`).
    const bool last_page = got < want || page->next_after_seq() <= req.after_seq();
    const bool full = limit != 0 && static_cast<int>(events.size()) >= limit;
    if (full || last_page) return events;
    req.set_after_seq(page->next_after_seq());
  }
}

absl::Status Session::Watch(int64_t after_seq,
                            const std::function<bool(const v1::Event&)>& on_event,
                            absl::Duration timeout) const {
  const bool bounded = timeout > absl::ZeroDuration();
  const absl::Time end = bounded ? absl::Now() + timeout : absl::InfiniteFuture();
  internal::Retrier retrier(core_->retry_policy(), RetryClass::kSafe);
  v1::WatchEventsRequest req;
  req.set_session_id(id_);
  req.set_after_seq(after_seq);
  for (;;) {
    // A reconnect resumes after the last event delivered: nothing is lost or repeated.
    std::unique_ptr<grpc::ClientContext> ctx =
        core_->NewContext(id_, bounded ? end - absl::Now() : absl::InfiniteDuration());
    std::unique_ptr<grpc::ClientReader<v1::Event>> reader =
        core_->sessions().WatchEvents(ctx.get(), req);
    v1::Event event;
    bool stopped = false;
    while (reader->Read(&event)) {
      retrier.Reset();
      req.set_after_seq(event.seq());
      if (!on_event(event)) {
        stopped = true;
        ctx->TryCancel();
        break;
      }
    }
    const absl::Status status = internal::FromGrpc(reader->Finish());
    if (stopped) return absl::OkStatus();
    if (bounded && absl::IsDeadlineExceeded(status) && absl::Now() >= end) return absl::OkStatus();
    if (status.ok()) return status;  // the server ended the stream
    if (!retrier.ShouldRetry(status)) return status;
    if (bounded && absl::Now() >= end) return absl::OkStatus();
  }
}

absl::StatusOr<Session> Session::Fork(int64_t at_seq, const std::string& new_session_id) const {
  v1::ForkSessionRequest req;
  req.set_session_id(id_);
  req.set_at_seq(at_seq);
  req.set_new_session_id(new_session_id);
  auto forked = core_->Call<v1::Session>(RetryClass::kNever, id_,
                                         [&](grpc::ClientContext* ctx, v1::Session* out) {
                                           return core_->sessions().ForkSession(ctx, req, out);
                                         });
  if (!forked.ok()) return forked.status();
  return Session(core_, forked->session_id());
}

absl::StatusOr<v1::ReplaySessionResponse> Session::Replay(const std::string& model,
                                                          const std::string& new_session_id) const {
  v1::ReplaySessionRequest req;
  req.set_session_id(id_);
  req.set_model(model);
  req.set_new_session_id(new_session_id);
  return core_->Call<v1::ReplaySessionResponse>(
      RetryClass::kNever, id_, core_->options().turn_deadline,
      [&](grpc::ClientContext* ctx, v1::ReplaySessionResponse* out) {
        return core_->sessions().ReplaySession(ctx, req, out);
      });
}

absl::StatusOr<v1::StateEntry> Session::GetState(const std::string& key) const {
  v1::GetStateRequest req;
  req.set_session_id(id_);
  req.set_key(key);
  return core_->Call<v1::StateEntry>(RetryClass::kSafe, id_,
                                     [&](grpc::ClientContext* ctx, v1::StateEntry* out) {
                                       return core_->sessions().GetState(ctx, req, out);
                                     });
}

absl::StatusOr<v1::StateEntry> Session::PutState(const std::string& key,
                                                 const std::string& value_json,
                                                 int64_t expected_version) {
  v1::PutStateRequest req;
  req.set_session_id(id_);
  req.set_key(key);
  req.set_value_json(value_json);
  req.set_expected_version(expected_version);
  if (expected_version == 0) {
    // Unconditional: a repeat would write a second version, so it is never retried.
    return core_->Call<v1::StateEntry>(RetryClass::kNever, id_,
                                       [&](grpc::ClientContext* ctx, v1::StateEntry* out) {
                                         return core_->sessions().PutState(ctx, req, out);
                                       });
  }
  // Compare-and-set: a repeat can never write twice. If an attempt that got UNAVAILABLE had in
  // fact been applied, the retry sees ABORTED; the key then holds our value at
  // expected_version + 1, which is our write's result.
  internal::Retrier retrier(core_->retry_policy(), RetryClass::kSafe);
  bool retried = false;
  for (;;) {
    std::unique_ptr<grpc::ClientContext> ctx = core_->NewContext(id_, core_->options().deadline);
    v1::StateEntry entry;
    const absl::Status status =
        internal::FromGrpc(core_->sessions().PutState(ctx.get(), req, &entry));
    if (status.ok()) return entry;
    if (retried && absl::IsAborted(status)) {
      absl::StatusOr<v1::StateEntry> now = GetState(key);
      if (now.ok() && now->version() == expected_version + 1 && now->value_json() == value_json) {
        return *now;
      }
      return status;
    }
    if (!retrier.ShouldRetry(status)) return status;
    retried = true;
  }
}

absl::StatusOr<std::vector<v1::StateEntry>> Session::ListState() const {
  v1::ListStateRequest req;
  req.set_session_id(id_);
  auto listed = core_->Call<v1::ListStateResponse>(
      RetryClass::kSafe, id_, [&](grpc::ClientContext* ctx, v1::ListStateResponse* out) {
        return core_->sessions().ListState(ctx, req, out);
      });
  if (!listed.ok()) return listed.status();
  return std::vector<v1::StateEntry>(listed->entries().begin(), listed->entries().end());
}

}  // namespace agentd
