// The fixture of the session state tests (session_state_test.cc, session_transfer_test.cc):
// an in-process server, and the calls for state, forks, export/import and replay.
#pragma once

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "agentd/v1/project.grpc.pb.h"
#include "common/time_util.h"
#include "runtime/session_manager.h"
#include "runtime/session_transfer.h"
#include "store/rocksdb_store.h"
#include "testing/server_harness.h"
#include "testing/temp_dir.h"

namespace agentd::session_state_test {

using testing::Ctx;
using testing::ServerHarness;

/// Every text the model saw in one request, joined (to check what a context contained).
inline std::string ContextText(const backend::ModelRequest& request) {
  std::string all;
  for (const backend::ChatMessage& m : request.messages) all += m.text + "|";
  return all;
}

class SessionStateTest : public ::testing::Test {
 protected:
  v1::Session GetSession(const std::string& id, grpc::Status* status = nullptr) {
    v1::GetSessionRequest req;
    req.set_session_id(id);
    v1::Session s;
    grpc::Status st = h_.sessions().GetSession(Ctx().get(), req, &s);
    if (status != nullptr) *status = st;
    return s;
  }

  grpc::Status PutState(const std::string& session, const std::string& key,
                        const std::string& value, int64_t expected, v1::StateEntry* out) {
    v1::PutStateRequest req;
    req.set_session_id(session);
    req.set_key(key);
    req.set_value_json(value);
    req.set_expected_version(expected);
    return h_.sessions().PutState(Ctx().get(), req, out);
  }

  grpc::Status Fork(const std::string& session, int64_t at_seq, v1::Session* out,
                    const std::string& new_id = "") {
    v1::ForkSessionRequest req;
    req.set_session_id(session);
    req.set_at_seq(at_seq);
    req.set_new_session_id(new_id);
    return h_.sessions().ForkSession(Ctx().get(), req, out);
  }

  std::vector<v1::ExportChunk> Export(const std::string& session, grpc::Status* status) {
    v1::ExportSessionRequest req;
    req.set_session_id(session);
    auto ctx = Ctx();
    std::unique_ptr<grpc::ClientReader<v1::ExportChunk>> reader =
        h_.sessions().ExportSession(ctx.get(), req);
    std::vector<v1::ExportChunk> chunks;
    v1::ExportChunk chunk;
    while (reader->Read(&chunk)) chunks.push_back(chunk);
    *status = reader->Finish();
    return chunks;
  }

  grpc::Status Import(const std::vector<v1::ExportChunk>& chunks, v1::Session* out,
                      grpc::ClientContext* ctx = nullptr) {
    std::unique_ptr<grpc::ClientContext> own;
    if (ctx == nullptr) {
      own = Ctx();
      ctx = own.get();
    }
    std::unique_ptr<grpc::ClientWriter<v1::ExportChunk>> writer =
        h_.sessions().ImportSession(ctx, out);
    for (const v1::ExportChunk& c : chunks) {
      if (!writer->Write(c)) break;  // the server ended the call early
    }
    writer->WritesDone();
    return writer->Finish();
  }

  std::vector<std::string> SessionIds() {
    v1::ListSessionsRequest req;
    req.set_page_size(1000);
    v1::ListSessionsResponse resp;
    EXPECT_TRUE(h_.sessions().ListSessions(Ctx().get(), req, &resp).ok());
    std::vector<std::string> ids;
    for (const v1::Session& s : resp.sessions()) ids.push_back(s.session_id());
    return ids;
  }

  grpc::Status Replay(const std::string& session, const std::string& model,
                      v1::ReplaySessionResponse* out) {
    v1::ReplaySessionRequest req;
    req.set_session_id(session);
    req.set_model(model);
    return h_.sessions().ReplaySession(Ctx(20).get(), req, out);
  }

  ServerHarness h_;
};

}  // namespace agentd::session_state_test
