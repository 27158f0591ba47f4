// The two clients of openai_door_bench: a gRPC SessionService client (RunTurn, StreamTurn) and
// an HTTP client of the OpenAI-compatible door (POST /v1/responses, JSON and SSE) on one reused
// libcurl easy handle. Each checks its answers and reports the first text delta's arrival time.
#pragma once

#include <curl/curl.h>
#include <grpcpp/channel.h>
#include <grpcpp/client_context.h>

#include <chrono>
#include <memory>
#include <string>

#include "agentd/v1/session.grpc.pb.h"
#include "nlohmann/json.hpp"

namespace agentd::bench::door {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace v1 = agentd::v1;

inline double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// ---- gRPC client -------------------------------------------------------------------------------

class GrpcClient {
 public:
  GrpcClient(const std::shared_ptr<grpc::Channel>& channel, const std::string& api_key)
      : stub_(v1::SessionService::NewStub(channel)), authorization_("Bearer " + api_key) {}

  /// One unary turn; "" when it completed and echoed `text`, else what went wrong.
  std::string RunTurn(const std::string& session, const std::string& text, double* ms) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    v1::RunTurnRequest req = Request(session, text);
    v1::TurnResult result;
    const Clock::time_point t0 = Clock::now();
    const grpc::Status st = stub_->RunTurn(&ctx, req, &result);
    *ms = Ms(Clock::now() - t0);
    if (!st.ok())
      return "rpc status " + std::to_string(st.error_code()) + ": " + st.error_message();
    if (result.status() != v1::TURN_STATUS_COMPLETED)
      return "turn status " + v1::TurnStatus_Name(result.status()) + ": " + result.error();
    if (result.output_text() != text) return "echo output does not match the input";
    return "";
  }

  /// One StreamTurn; `first` = when the first non-empty TextDelta was read. "" when it completed
  /// with `want_first` first and `want_all` in the end.
  std::string StreamTurn(const std::string& session, const std::string& text,
                         const std::string& want_first, const std::string& want_all,
                         Clock::time_point* first) {
    grpc::ClientContext ctx;
    Prepare(&ctx);
    auto reader = stub_->StreamTurn(&ctx, Request(session, text));
    v1::TurnEvent ev;
    bool got_first = false, got_result = false;
    std::string first_text, problem;
    while (reader->Read(&ev)) {
      const Clock::time_point now = Clock::now();
      if (ev.has_delta() && !got_first && !ev.delta().text().empty()) {
        got_first = true;
        *first = now;
        first_text = ev.delta().text();
      } else if (ev.has_result()) {
        got_result = true;
        if (ev.result().status() != v1::TURN_STATUS_COMPLETED) {
          problem = "turn status " + v1::TurnStatus_Name(ev.result().status());
        } else if (ev.result().output_text() != want_all) {
          problem = "final text \"" + ev.result().output_text() + "\"";
        }
      }
    }
    const grpc::Status st = reader->Finish();
    if (!st.ok())
      return "rpc status " + std::to_string(st.error_code()) + ": " + st.error_message();
    if (!got_result) return "no TurnResult";
    if (!problem.empty()) return problem;
    if (!got_first || first_text != want_first) return "first delta \"" + first_text + "\"";
    return "";
  }

 private:
  void Prepare(grpc::ClientContext* ctx) const {
    ctx->AddMetadata("authorization", authorization_);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  }
  static v1::RunTurnRequest Request(const std::string& session, const std::string& text) {
    v1::RunTurnRequest req;
    req.set_session_id(session);
    v1::InputMessage* in = req.add_input();
    in->set_role(v1::ROLE_USER);
    in->set_text(text);
    return req;
  }

  std::unique_ptr<v1::SessionService::Stub> stub_;
  const std::string authorization_;
};

// ---- HTTP client (one libcurl easy handle, reused: keep-alive) ---------------------------------

// The SSE reader of one streamed response: stamps the first non-empty output_text delta at the
// moment its bytes reach the write callback, before any parsing.
struct SseState {
  std::string buf;
  size_t parsed = 0;
  bool got_first = false;
  Clock::time_point first;
  std::string first_text;
  bool completed = false;
  std::string final_text, problem;
};

inline std::string OutputText(const json& response) {
  if (!response.is_object() || !response.contains("output")) return "";
  for (const json& item : response["output"]) {
    if (item.value("type", "") == "message" && !item["content"].empty()) {
      return item["content"][0].value("text", "");
    }
  }
  return "";
}

inline size_t CollectBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

inline size_t CollectSse(char* data, size_t size, size_t n, void* user) {
  const Clock::time_point now = Clock::now();
  auto* st = static_cast<SseState*>(user);
  st->buf.append(data, size * n);
  size_t end;
  while ((end = st->buf.find("\n\n", st->parsed)) != std::string::npos) {
    const std::string frame = st->buf.substr(st->parsed, end - st->parsed);
    st->parsed = end + 2;
    const size_t d = frame.find("data: ");
    if (d == std::string::npos) continue;
    const json ev = json::parse(frame.substr(d + 6), nullptr, false);
    const std::string type = ev.is_object() ? ev.value("type", "") : "";
    if (type == "response.output_text.delta" && !st->got_first) {
      const std::string delta = ev.value("delta", "");
      if (delta.empty()) continue;
      st->got_first = true;
      st->first = now;
      st->first_text = delta;
    } else if (type == "response.completed") {
      st->completed = true;
      st->final_text = OutputText(ev["response"]);
    } else if (type == "response.failed") {
      st->problem = "response.failed: " + frame;
    }
  }
  return size * n;
}

class HttpClient {
 public:
  HttpClient(const std::string& address, const std::string& api_key)
      : url_("http://" + address + "/v1/responses"), easy_(curl_easy_init()) {
    headers_ = curl_slist_append(nullptr, "Content-Type: application/json");
    headers_ = curl_slist_append(headers_, ("Authorization: Bearer " + api_key).c_str());
    curl_easy_setopt(easy_, CURLOPT_URL, url_.c_str());
    curl_easy_setopt(easy_, CURLOPT_POST, 1L);
    curl_easy_setopt(easy_, CURLOPT_HTTPHEADER, headers_);
    curl_easy_setopt(easy_, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(easy_, CURLOPT_NOSIGNAL, 1L);
  }
  ~HttpClient() {
    curl_slist_free_all(headers_);
    curl_easy_cleanup(easy_);
  }
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// One non-streaming response on `session`; "" when it completed and echoed `text`.
  std::string Respond(const std::string& agent, const std::string& session, const std::string& text,
                      double* ms) {
    const std::string body =
        json{{"model", "agent:" + agent}, {"conversation", session}, {"input", text}}.dump();
    std::string out;
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &CollectBody);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, &out);
    const Clock::time_point t0 = Clock::now();
    const CURLcode rc = curl_easy_perform(easy_);
    const json r = json::parse(out, nullptr, false);  // part of what a client waits for
    *ms = Ms(Clock::now() - t0);
    std::string problem = Check(rc);
    if (!problem.empty()) return problem;
    if (!r.is_object() || r.value("status", "") != "completed")
      return "response not completed: " + out.substr(0, 300);
    if (OutputText(r) != text) return "echo output does not match the input";
    if (!r.contains("conversation") || r["conversation"].value("id", "") != session)
      return "conversation.id is not the session";
    return "";
  }

  /// One streamed response; `first` = receipt of the first non-empty text delta.
  std::string Stream(const std::string& agent, const std::string& session, const std::string& text,
                     const std::string& want_first, const std::string& want_all,
                     Clock::time_point* first) {
    const std::string body = json{
        {"model", "agent:" + agent},
        {"conversation", session},
        {"input", text},
        {"stream", true}}.dump();
    SseState st;
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(easy_, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(easy_, CURLOPT_WRITEFUNCTION, &CollectSse);
    curl_easy_setopt(easy_, CURLOPT_WRITEDATA, &st);
    std::string problem = Check(curl_easy_perform(easy_));
    if (!problem.empty()) return problem + ": " + st.buf.substr(0, 300);
    if (!st.problem.empty()) return st.problem.substr(0, 300);
    if (!st.completed) return "no response.completed event";
    if (st.final_text != want_all) return "final text \"" + st.final_text + "\"";
    if (!st.got_first || st.first_text != want_first)
      return "first delta \"" + st.first_text + "\"";
    *first = st.first;
    return "";
  }

  /// New TCP connections this handle opened (1 when keep-alive held throughout).
  int64_t connects() const { return connects_; }

 private:
  std::string Check(CURLcode rc) {
    long connects = 0;
    curl_easy_getinfo(easy_, CURLINFO_NUM_CONNECTS, &connects);
    connects_ += connects;
    if (rc != CURLE_OK) return std::string("curl: ") + curl_easy_strerror(rc);
    long status = 0;
    curl_easy_getinfo(easy_, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) return "HTTP " + std::to_string(status);
    return "";
  }

  const std::string url_;
  CURL* easy_;
  curl_slist* headers_ = nullptr;
  int64_t connects_ = 0;
};

}  // namespace agentd::bench::door
