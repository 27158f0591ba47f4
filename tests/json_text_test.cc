// common::AppendJsonString must write exactly what nlohmann::json's dump (ensure_ascii off,
// replace handler) writes: the model request body is written with it and compared with
// nlohmann-written JSON by providers' parsers and by our tests.
#include "common/json_text.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "absl/strings/escaping.h"

namespace agentd::common {
namespace {

std::string Reference(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string Ours(const std::string& s) {
  std::string out = "prefix:";
  AppendJsonString(&out, s);
  EXPECT_EQ(out.rfind("prefix:", 0), 0u);  // appends, never rewrites what was there
  return out.substr(7);
}

TEST(JsonTextTest, EscapesLikeNlohmann) {
  for (const std::string& s : {std::string(""), std::string("plain ascii"),
                              std::string("quote \" backslash \\ slash /"),
                              std::string("\b\t\n\f\r\x01\x1f\x7f"), std::string("nul \0 in", 8),
                              std::string("é ü 中文 🙂 \xe2\x80\xa8"),
                              std::string("{\"city\":\"Paris\"}")}) {
    EXPECT_EQ(Ours(s), Reference(s)) << s;
  }
  EXPECT_EQ(Ours("a\"b\n"), R"("a\"b\n")");
  EXPECT_EQ(Ours("\x01"), R"("\u0001")");
}

TEST(JsonTextTest, InvalidUtf8IsReplacedLikeNlohmann) {
  for (const std::string& s :
       {std::string("bad \xff byte"), std::string("\xc0\xaf overlong"),
        std::string("\xed\xa0\x80 surrogate"), std::string("\xf4\x90\x80\x80 too big"),
        std::string("cut \xe4\xb8"), std::string("\x80 lone continuation"),
        std::string("ok é then \xfe and \"quote\"")}) {
    const std::string ours = Ours(s);
    EXPECT_EQ(ours, Reference(s)) << s;
    EXPECT_NE(ours.find("\xef\xbf\xbd"), std::string::npos) << ours;  // U+FFFD
  }
}

// Random byte strings biased toward the interesting classes: every one must match.
TEST(JsonTextTest, RandomStringsMatchNlohmann) {
  std::mt19937 rng(20261126);
  const std::string pool = std::string("aZ \"\\/\n\t\x01\x1f\x7f", 11) +
                           "\xc3\xa9\xe4\xb8\xad\xf0\x9f\x99\x82\x80\xbf\xc0\xed\xf4\xff";
  for (int n = 0; n < 20000; ++n) {
    std::string s(rng() % 24, ' ');
    for (char& c : s) c = rng() % 4 == 0 ? static_cast<char>(rng() % 256) : pool[rng() % pool.size()];
    ASSERT_EQ(Ours(s), Reference(s)) << absl::BytesToHexString(s);
  }
}

}  // namespace
}  // namespace agentd::common
