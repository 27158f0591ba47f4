// ScanChatRequest (tests/testing/fake_openai_scan.h), the benchmark mock's reader of request
// bodies: it must find what a real parse finds.
#include "testing/fake_openai_scan.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace {

using agentd::testing::ScanChatRequest;

// The benchmark mock's reader: what it finds must agree with a real parse of the same bodies,
// whatever the client's key order and spacing.
TEST(FakeOpenAiScan, FindsModelStreamAndLastRoleLikeAParse) {
  const std::vector<std::string> bodies = {
      R"({"messages":[{"content":"say \"role\":\"tool\"","role":"user"}],"model":"m1","stream":false})",
      R"({"model": "m2", "stream": true, "stream_options": {"include_usage": true},
          "messages": [{"role": "user", "content": "x"},
                       {"role": "assistant", "content": null, "tool_calls": []},
                       {"role": "tool", "tool_call_id": "c1", "content": "{\"ok\":1}"}]})",
      R"({"model":"m3","messages":[{"role":"system","content":"s"}],"stream_options":{"include_usage":false},"stream":true})",
  };
  for (const std::string& body : bodies) {
    const nlohmann::json full = nlohmann::json::parse(body);
    const nlohmann::json scanned = ScanChatRequest(body);
    ASSERT_TRUE(scanned.is_object()) << body;
    EXPECT_EQ(scanned["model"], full["model"]) << body;
    EXPECT_EQ(scanned.value("stream", false), full.value("stream", false)) << body;
    EXPECT_EQ(scanned.contains("stream_options"), full.contains("stream_options")) << body;
    if (full.contains("stream_options")) {
      EXPECT_EQ(scanned["stream_options"]["include_usage"], full["stream_options"]["include_usage"]);
    }
    ASSERT_EQ(scanned["messages"].size(), 1u) << body;
    EXPECT_EQ(scanned["messages"][0]["role"], full["messages"].back()["role"]) << body;
  }
  EXPECT_TRUE(ScanChatRequest("not json").is_discarded());
  EXPECT_TRUE(ScanChatRequest("").is_discarded());
}

}  // namespace
