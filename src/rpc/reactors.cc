#include "rpc/reactors.h"

#include <deque>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"
#include "runtime/limits.h"

namespace agentd::rpc {
namespace {

// Ties a call to the turn it started, so a client that goes away abandons the turn (whether
// the cancellation arrives before or after SubmitTurn returned the handle).
class TurnLink {
 public:
  explicit TurnLink(runtime::SessionManager* sessions) : sessions_(sessions) {}

  void Attach(std::shared_ptr<runtime::Turn> turn) {
    bool abandon;
    {
      absl::MutexLock lock(&mu_);
      turn_ = turn;
      abandon = cancelled_;
    }
    if (abandon) sessions_->Abandon(turn);
  }

  void ClientCancelled() {
    std::shared_ptr<runtime::Turn> turn;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      turn = turn_;
    }
    if (turn) sessions_->Abandon(turn);
  }

 private:
  runtime::SessionManager* const sessions_;
  absl::Mutex mu_;
  std::shared_ptr<runtime::Turn> turn_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

// A turn that ran and failed on its own (TURN_FAILED, status FAILED: e.g. UNAVAILABLE, every
// deployment failed after the server's retries and fallbacks): its id goes in the trailing
// metadata (kRecordedTurnHeader), so a client can tell that outcome, which an automatic retry
// would only record again, from a transport failure. Not for a turn cancelled because this
// server is shutting down (UNAVAILABLE too): a retry on another replica is what is wanted.
void MarkRecordedTurn(grpc::CallbackServerContext* ctx, const absl::Status& status,
                      const v1::TurnResult& result) {
  if (!status.ok() && !result.turn_id().empty() &&
      result.status() == v1::TURN_STATUS_FAILED) {
    ctx->AddTrailingMetadata(kRecordedTurnHeader, result.turn_id());
  }
}

// ---- RunTurn ------------------------------------------------------------------------------

class RunTurnReactor final : public grpc::ServerUnaryReactor {
 public:
  RunTurnReactor(grpc::CallbackServerContext* ctx, runtime::SessionManager* sessions,
                 auth::Authenticator* auth, v1::TurnResult* response)
      : ctx_(ctx), scope_(ctx, "RunTurn", auth), sessions_(sessions), response_(response) {}

  void Start(const v1::RunTurnRequest& request) {
    obs::ContextScope log_scope(scope_.context());
    if (!scope_.ok()) {
      Finish(scope_.Done(scope_.auth_status()));
      return;
    }
    class Observer final : public runtime::TurnObserver {
     public:
      explicit Observer(RunTurnReactor* r) : r_(r) {}
      void OnFinish(const absl::Status& status, const v1::TurnResult& result) override {
        if (status.ok()) *r_->response_ = result;
        MarkRecordedTurn(r_->ctx_, status, result);
        r_->Finish(r_->scope_.Done(status));
      }

     private:
      RunTurnReactor* r_;
    };
    link_.Attach(sessions_->SubmitTurn(scope_.identity().project_id, request, scope_.deadline(),
                                       std::make_shared<Observer>(this)));
  }

  void OnCancel() override { link_.ClientCancelled(); }

  void OnDone() override { delete this; }

 private:
  grpc::CallbackServerContext* const ctx_;
  CallScope scope_;
  runtime::SessionManager* sessions_;
  v1::TurnResult* response_;
  TurnLink link_{sessions_};
};

// ---- Ordered writer shared by the streaming reactors ----------------------------------------

// Queues messages and writes them one at a time; finishes once the queue is drained after
// FinishWhenDrained(). Subclasses supply OnDone cleanup.
template <typename Msg>
class QueuedWriter : public grpc::ServerWriteReactor<Msg> {
 public:
  /// Queues `msg`; false if the queue is over `limit` (the caller decides what to do).
  bool Push(Msg msg, size_t limit = SIZE_MAX) {
    absl::MutexLock lock(&mu_);
    if (finishing_ || broken_) return true;
    if (queue_.size() >= limit) return false;
    queue_.push_back(std::move(msg));
    if (!writing_) WriteFrontLocked();
    return true;
  }

  // Finish() is called after mu_ is released: gRPC may run OnDone() (which deletes this
  // reactor) on another thread as soon as Finish() is called, so nothing of `this` may be
  // touched after it — not even the unlock of mu_.
  void FinishWhenDrained(grpc::Status status) {
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      finishing_ = true;
      final_ = status;
      if (writing_) return;  // OnWriteDone finishes once the queue is drained
    }
    this->Finish(std::move(status));
  }

  void OnWriteDone(bool ok) override {
    grpc::Status finish;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      queue_.pop_front();
      if (!ok) {
        broken_ = true;
        queue_.clear();
      }
      if (!queue_.empty()) {
        WriteFrontLocked();
        return;
      }
      if (!finishing_) return;
      finish = *final_;
    }
    this->Finish(std::move(finish));
  }

 private:
  void WriteFrontLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    writing_ = true;
    this->StartWrite(&queue_.front());
  }

  absl::Mutex mu_;
  std::deque<Msg> queue_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> final_ ABSL_GUARDED_BY(mu_);
};

// ---- StreamTurn ---------------------------------------------------------------------------

class StreamTurnReactor final : public QueuedWriter<v1::TurnEvent> {
 public:
  StreamTurnReactor(grpc::CallbackServerContext* ctx, runtime::SessionManager* sessions,
                    auth::Authenticator* auth)
      : ctx_(ctx), scope_(ctx, "StreamTurn", auth), sessions_(sessions) {}

  void Start(const v1::RunTurnRequest& request) {
    obs::ContextScope log_scope(scope_.context());
    if (!scope_.ok()) {
      FinishWhenDrained(scope_.Done(scope_.auth_status()));
      return;
    }
    class Observer final : public runtime::TurnObserver {
     public:
      explicit Observer(StreamTurnReactor* r) : r_(r) {}
      bool WantsDeltas() const override { return true; }
      void OnEvents(const std::vector<v1::Event>& events) override {
        for (const v1::Event& e : events) {
          v1::TurnEvent te;
          *te.mutable_event() = e;
          r_->Push(std::move(te));
        }
      }
      void OnDelta(absl::string_view text) override {
        v1::TurnEvent te;
        te.mutable_delta()->set_text(std::string(text));
        r_->Push(std::move(te));
      }
      void OnDeltaReset() override {
        v1::TurnEvent te;
        te.mutable_delta()->set_reset(true);
        r_->Push(std::move(te));
      }
      void OnFinish(const absl::Status& status, const v1::TurnResult& result) override {
        if (!result.turn_id().empty()) {
          v1::TurnEvent te;
          *te.mutable_result() = result;
          r_->Push(std::move(te));
        }
        MarkRecordedTurn(r_->ctx_, status, result);
        r_->FinishWhenDrained(r_->scope_.Done(status));
      }

     private:
      StreamTurnReactor* r_;
    };
    link_.Attach(sessions_->SubmitTurn(scope_.identity().project_id, request, scope_.deadline(),
                                       std::make_shared<Observer>(this)));
  }

  void OnCancel() override { link_.ClientCancelled(); }

  void OnDone() override { delete this; }

 private:
  grpc::CallbackServerContext* const ctx_;
  CallScope scope_;
  runtime::SessionManager* sessions_;
  TurnLink link_{sessions_};
};

// ---- WatchEvents --------------------------------------------------------------------------

// Most events a watcher may have queued before it is cut off (it can resume from its cursor).
constexpr size_t kMaxWatchBacklog = 100000;

class WatchReactor final : public QueuedWriter<v1::Event> {
 public:
  WatchReactor(grpc::CallbackServerContext* ctx, runtime::SessionManager* sessions,
               auth::Authenticator* auth)
      : scope_(ctx, "WatchEvents", auth), sessions_(sessions) {}

  void Start(const v1::WatchEventsRequest& request) {
    obs::ContextScope log_scope(scope_.context());
    if (!scope_.ok()) {
      End(scope_.auth_status());
      return;
    }
    const std::string& project = scope_.identity().project_id;
    absl::Status st = ValidateId("session_id", request.session_id());
    if (st.ok() && request.after_seq() < 0) st = absl::InvalidArgumentError("after_seq must be >= 0");
    if (st.ok()) st = sessions_->Get(project, request.session_id()).status();
    if (!st.ok()) {
      FinishWhenDrained(scope_.Done(st));
      return;
    }
    key_ = runtime::EventHub::Key(project, request.session_id());
    {
      absl::MutexLock lock(&mu_);
      last_seq_ = request.after_seq();
    }
    // Subscribe first, then read history: every event is either in the history read or
    // published to us afterwards; duplicates are dropped by seq.
    project_ = project;
    session_id_ = request.session_id();
    subscription_ = sessions_->hub()->Subscribe(
        key_, {[this](const std::vector<v1::Event>& events) { OnLive(events); },
               [this]() { End(absl::NotFoundError("session was deleted")); },
               [this](int64_t last_seq) { OnNotice(last_seq); }});
    int64_t after = request.after_seq();
    for (;;) {
      auto page = sessions_->store()->ReadEvents(project, request.session_id(), after, 500);
      if (!page.ok()) {
        End(page.status());
        return;
      }
      if (page->empty()) break;
      after = page->back().seq();
      absl::MutexLock lock(&mu_);
      DeliverLocked(*page);
    }
    bool overflow;
    {
      absl::MutexLock lock(&mu_);
      live_ = true;
      DeliverLocked(buffered_);
      buffered_.clear();
      overflow = overflow_;
      MaybeFetchLocked();
    }
    if (overflow) EndOverflow();
  }

  void OnCancel() override { End(absl::CancelledError("watch cancelled by the client")); }

  void OnDone() override {
    Unsubscribe();
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      if (fetching_) return;  // the fetch deletes the reactor when it ends
    }
    delete this;
  }

 private:
  void OnLive(const std::vector<v1::Event>& events) {
    bool overflow;
    {
      absl::MutexLock lock(&mu_);
      if (!live_) {
        buffered_.insert(buffered_.end(), events.begin(), events.end());
        return;
      }
      DeliverLocked(events);
      overflow = overflow_;
      MaybeFetchLocked();
    }
    if (overflow) EndOverflow();
  }

  // Another replica committed up to `last_seq` (hub thread: only note it and schedule the read).
  void OnNotice(int64_t last_seq) {
    absl::MutexLock lock(&mu_);
    want_seq_ = std::max(want_seq_, last_seq);
    MaybeFetchLocked();
  }

  // Queues events newer than the last one queued, in order. An event past the next seq means
  // some were committed elsewhere and not seen here yet: it and what follows are left to the
  // fetch, which reads them from the store in order.
  void DeliverLocked(const std::vector<v1::Event>& events) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (const v1::Event& e : events) {
      if (overflow_ || e.seq() <= last_seq_) continue;
      if (live_ && e.seq() != last_seq_ + 1) {
        want_seq_ = std::max(want_seq_, e.seq());
        return;
      }
      if (!Push(e, kMaxWatchBacklog)) {
        overflow_ = true;
        return;
      }
      last_seq_ = e.seq();
    }
  }

  void MaybeFetchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!live_ || fetching_ || ended_ || done_ || overflow_ || want_seq_ <= last_seq_) return;
    fetching_ = true;
    sessions_->executor()->Schedule([this] { Fetch(); });
  }

  // Reads from the cursor until the store has nothing newer (on a turn worker).
  void Fetch() {
    absl::Status status;
    bool overflow = false;
    for (;;) {
      int64_t after;
      {
        absl::MutexLock lock(&mu_);
        if (ended_ || done_ || overflow_ || want_seq_ <= last_seq_) break;
        after = last_seq_;
      }
      auto page = sessions_->store()->ReadEvents(project_, session_id_, after, 500);
      absl::MutexLock lock(&mu_);
      if (!page.ok()) {
        status = page.status();
        break;
      }
      if (page->empty()) {
        want_seq_ = std::min(want_seq_, last_seq_);  // a resync notice asked for "anything"
        break;
      }
      DeliverLocked(*page);
      overflow = overflow_;
    }
    // Still `fetching_`: OnDone cannot delete the reactor while these run.
    if (!status.ok()) End(status);
    if (overflow) EndOverflow();
    bool done;
    {
      absl::MutexLock lock(&mu_);
      fetching_ = false;
      done = done_;
      if (!done) MaybeFetchLocked();  // a notice that came while this read
    }
    if (done) delete this;
  }

  void EndOverflow() {
    End(absl::ResourceExhaustedError(
        "watcher fell too far behind; reconnect with after_seq set to the last seq received"));
  }

  void End(const absl::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (ended_) return;
      ended_ = true;
    }
    FinishWhenDrained(scope_.Done(status));
  }

  void Unsubscribe() {
    if (subscription_ != 0) sessions_->hub()->Unsubscribe(key_, subscription_);
    subscription_ = 0;
  }

  CallScope scope_;
  runtime::SessionManager* sessions_;
  std::string key_;
  uint64_t subscription_ = 0;
  absl::Mutex mu_;
  std::string project_;
  std::string session_id_;
  int64_t last_seq_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t want_seq_ ABSL_GUARDED_BY(mu_) = 0;  // committed elsewhere up to here (notices, gaps)
  bool fetching_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;     // OnDone ran: the fetch in flight deletes us
  bool live_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  bool overflow_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<v1::Event> buffered_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerUnaryReactor* StartRunTurn(grpc::CallbackServerContext* ctx,
                                       runtime::SessionManager* sessions, auth::Authenticator* auth,
                                       const v1::RunTurnRequest* request, v1::TurnResult* response) {
  auto* reactor = new RunTurnReactor(ctx, sessions, auth, response);
  reactor->Start(*request);
  return reactor;
}

grpc::ServerWriteReactor<v1::TurnEvent>* StartStreamTurn(grpc::CallbackServerContext* ctx,
                                                         runtime::SessionManager* sessions,
                                                         auth::Authenticator* auth,
                                                         const v1::RunTurnRequest* request) {
  auto* reactor = new StreamTurnReactor(ctx, sessions, auth);
  reactor->Start(*request);
  return reactor;
}

grpc::ServerWriteReactor<v1::Event>* StartWatch(grpc::CallbackServerContext* ctx,
                                                runtime::SessionManager* sessions,
                                                auth::Authenticator* auth,
                                                const v1::WatchEventsRequest* request) {
  auto* reactor = new WatchReactor(ctx, sessions, auth);
  reactor->Start(*request);
  return reactor;
}

}  // namespace agentd::rpc
