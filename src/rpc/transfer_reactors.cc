// Reactors of ExportSession, ImportSession and ReplaySession (reactors.h). Each deletes itself in
// OnDone() and calls Finish() exactly once.
#include <memory>
#include <optional>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "rpc/reactors.h"
#include "runtime/replay.h"
#include "runtime/session_transfer.h"

namespace agentd::rpc {
namespace {

class ExportReactor final : public grpc::ServerWriteReactor<v1::ExportChunk> {
 public:
  ExportReactor(grpc::CallbackServerContext* ctx, auth::Authenticator* auth)
      : scope_(ctx, "ExportSession", auth) {}

  void Start(runtime::SessionManager* sessions, const v1::ExportSessionRequest& request) {
    obs::ContextScope log_scope(scope_.context());
    if (!scope_.ok()) {
      Finish(scope_.Done(scope_.auth_status()));
      return;
    }
    auto exporter = sessions->OpenExport(scope_.identity().project_id, request.session_id());
    if (!exporter.ok()) {
      Finish(scope_.Done(exporter.status()));
      return;
    }
    exporter_ = *std::move(exporter);
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(scope_.Done(absl::CancelledError("the client stopped reading the export")));
      return;
    }
    WriteNext();
  }

  void OnDone() override { delete this; }

 private:
  // Called with no write in flight: reads the next chunk and starts its write, or finishes.
  void WriteNext() {
    absl::StatusOr<std::optional<v1::ExportChunk>> next = exporter_->Next();
    if (!next.ok() || !next->has_value()) {
      Finish(scope_.Done(next.status()));
      return;
    }
    chunk_ = **std::move(next);
    StartWrite(&chunk_);
  }

  CallScope scope_;
  std::unique_ptr<runtime::SessionExporter> exporter_;
  v1::ExportChunk chunk_;  // the write in flight
};

class ImportReactor final : public grpc::ServerReadReactor<v1::ExportChunk> {
 public:
  ImportReactor(grpc::CallbackServerContext* ctx, auth::Authenticator* auth, v1::Session* response)
      : ctx_(ctx), scope_(ctx, "ImportSession", auth), response_(response) {}

  void Start(runtime::SessionManager* sessions, size_t max_bytes) {
    obs::ContextScope log_scope(scope_.context());
    if (!scope_.ok()) {
      Finish(scope_.Done(scope_.auth_status()));
      return;
    }
    importer_ = sessions->NewImport(scope_.identity().project_id, max_bytes);
    StartRead(&chunk_);
  }

  void OnReadDone(bool ok) override {
    obs::ContextScope log_scope(scope_.context());
    if (!ok) {  // the client half-closed (or went away)
      if (ctx_->IsCancelled()) {
        Finish(scope_.Done(absl::CancelledError("the client cancelled the import")));
        return;
      }
      absl::StatusOr<v1::Session> session = importer_->Finish();
      if (session.ok()) *response_ = *session;
      Finish(scope_.Done(session.status()));
      return;
    }
    absl::Status st = importer_->Add(std::move(chunk_));
    if (!st.ok()) {
      Finish(scope_.Done(st));  // the rest of the stream is not read
      return;
    }
    chunk_.Clear();
    StartRead(&chunk_);
  }

  void OnDone() override { delete this; }

 private:
  grpc::CallbackServerContext* const ctx_;
  CallScope scope_;
  v1::Session* const response_;
  std::unique_ptr<runtime::SessionImporter> importer_;
  v1::ExportChunk chunk_;  // the read in flight
};

class ReplayReactor final : public grpc::ServerUnaryReactor {
 public:
  ReplayReactor(grpc::CallbackServerContext* ctx, auth::Authenticator* auth,
                v1::ReplaySessionResponse* response)
      : scope_(ctx, "ReplaySession", auth), response_(response) {}

  void Start(runtime::SessionManager* sessions, const v1::ReplaySessionRequest& request) {
    obs::ContextScope log_scope(scope_.context());
    if (!scope_.ok()) {
      Finish(scope_.Done(scope_.auth_status()));
      return;
    }
    std::shared_ptr<runtime::ReplayRun> run = sessions->Replay(
        scope_.identity().project_id, request, scope_.deadline(),
        [this](const absl::Status& status, const v1::ReplaySessionResponse& response) {
          if (status.ok()) *response_ = response;
          Finish(scope_.Done(status));
        });
    bool cancel;
    {
      absl::MutexLock lock(&mu_);
      run_ = run;
      cancel = cancelled_;
    }
    if (cancel) run->Cancel();
  }

  void OnCancel() override {
    std::shared_ptr<runtime::ReplayRun> run;
    {
      absl::MutexLock lock(&mu_);
      cancelled_ = true;
      run = run_;
    }
    if (run) run->Cancel();
  }

  void OnDone() override { delete this; }

 private:
  CallScope scope_;
  v1::ReplaySessionResponse* const response_;
  absl::Mutex mu_;
  std::shared_ptr<runtime::ReplayRun> run_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

grpc::ServerWriteReactor<v1::ExportChunk>* StartExport(grpc::CallbackServerContext* ctx,
                                                       runtime::SessionManager* sessions,
                                                       auth::Authenticator* auth,
                                                       const v1::ExportSessionRequest* request) {
  auto* reactor = new ExportReactor(ctx, auth);
  reactor->Start(sessions, *request);
  return reactor;
}

grpc::ServerReadReactor<v1::ExportChunk>* StartImport(grpc::CallbackServerContext* ctx,
                                                      runtime::SessionManager* sessions,
                                                      auth::Authenticator* auth,
                                                      v1::Session* response, size_t max_bytes) {
  auto* reactor = new ImportReactor(ctx, auth, response);
  reactor->Start(sessions, max_bytes);
  return reactor;
}

grpc::ServerUnaryReactor* StartReplay(grpc::CallbackServerContext* ctx,
                                      runtime::SessionManager* sessions, auth::Authenticator* auth,
                                      const v1::ReplaySessionRequest* request,
                                      v1::ReplaySessionResponse* response) {
  auto* reactor = new ReplayReactor(ctx, auth, response);
  reactor->Start(sessions, *request);
  return reactor;
}

}  // namespace agentd::rpc
