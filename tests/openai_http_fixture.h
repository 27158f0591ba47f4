// The fixture of the OpenAI-compatible HTTP door tests: an in-process agentd with http_listen
// 127.0.0.1:0, plain libcurl calls, and checks of OpenAI's error shape.
#pragma once

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agentd/v1/session.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "testing/server_harness.h"

namespace agentd::openai_http_test {

using nlohmann::json;
using testing::ServerHarness;

struct HttpResult {
  long status = 0;
  std::string body;
  json Json() const { return json::parse(body, nullptr, false); }
};

inline size_t Collect(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

class OpenAiHttpTest : public ::testing::Test {
 protected:
  OpenAiHttpTest()
      : harness_([](server::Config* c) {
          c->http_listen = "127.0.0.1:0";
          c->max_message_bytes = 1024 * 1024;
        }) {}

  std::string Url(const std::string& path) {
    return "http://" + harness_.server().http_address() + path;
  }

  HttpResult Call(const std::string& method, const std::string& path, const std::string& body = "",
                  const std::string& key = testing::kTestAdminKey,
                  std::vector<std::string> extra_headers = {}) {
    HttpResult r;
    CURL* easy = curl_easy_init();
    const std::string url = Url(path);
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method.c_str());
    if (!body.empty()) {
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    }
    curl_slist* headers = nullptr;
    headers = curl_slist_append(headers, "Content-Type: application/json");
    if (!key.empty())
      headers = curl_slist_append(headers, ("Authorization: Bearer " + key).c_str());
    for (const std::string& h : extra_headers) headers = curl_slist_append(headers, h.c_str());
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &Collect);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    EXPECT_EQ(curl_easy_perform(easy), CURLE_OK) << method << " " << path;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(easy);
    return r;
  }

  HttpResult Post(const std::string& path, const json& body) {
    return Call("POST", path, body.dump());
  }

  /// The OpenAI error of `r`, checking its shape and status.
  json ExpectError(const HttpResult& r, long status, const std::string& type) {
    EXPECT_EQ(r.status, status) << r.body;
    json j = r.Json();
    EXPECT_TRUE(j.is_object() && j.contains("error")) << r.body;
    if (!j.is_object() || !j.contains("error")) return json();
    const json& e = j["error"];
    EXPECT_EQ(e.value("type", ""), type) << r.body;
    EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty());
    EXPECT_TRUE(e.contains("param") && e.contains("code"));
    return e;
  }

  int SessionCount() {
    grpc::ClientContext ctx;
    v1::ListSessionsRequest req;
    req.set_page_size(1000);
    v1::ListSessionsResponse resp;
    EXPECT_TRUE(harness_.sessions().ListSessions(&ctx, req, &resp).ok());
    return resp.sessions_size();
  }

  v1::Session GetSession(const std::string& id) {
    grpc::ClientContext ctx;
    v1::GetSessionRequest req;
    req.set_session_id(id);
    v1::Session s;
    EXPECT_TRUE(harness_.sessions().GetSession(&ctx, req, &s).ok()) << id;
    return s;
  }

  static std::string OutputText(const json& response) {
    for (const json& item : response["output"]) {
      if (item["type"] == "message") return item["content"][0]["text"];
    }
    return "";
  }

  static json WeatherTool() {
    return {{"type", "function"},
            {"name", "get_weather"},
            {"description", "weather of a city"},
            {"parameters",
             {{"type", "object"},
              {"properties", {{"city", {{"type", "string"}}}}},
              {"required", {"city"}}}}};
  }

  /// A response that ends with a get_weather call (REQUIRES_ACTION).
  json CallingResponse() {
    HttpResult r = Post("/v1/responses", {{"model", "echo"},
                                          {"input", R"(/tool get_weather {"city":"Paris"})"},
                                          {"tools", {WeatherTool()}}});
    EXPECT_EQ(r.status, 200) << r.body;
    return r.Json();
  }

  ServerHarness harness_;
};

}  // namespace agentd::openai_http_test
