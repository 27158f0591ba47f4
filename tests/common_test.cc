#include <gtest/gtest.h>

#include "common/ids.h"

namespace agentd {
namespace {

TEST(IdsTest, NewIdHasPrefixAnd128RandomBits) {
  std::string a = NewId("sess_");
  std::string b = NewId("sess_");
  EXPECT_EQ(a.rfind("sess_", 0), 0u);
  EXPECT_EQ(a.size(), 5u + 32u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(ValidateId("id", a).ok());
}

TEST(IdsTest, ValidateIdRejectsEmptyLongAndOddCharacters) {
  EXPECT_EQ(ValidateId("session_id", "").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateId("session_id", std::string(129, 'a')).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateId("session_id", "a/b").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateId("session_id", std::string("a\0b", 3)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateId("session_id", "my-session_1.2:x").ok());
  EXPECT_NE(ValidateId("session_id", "").message().find("session_id"), std::string::npos);
}

TEST(IdsTest, Sha256MatchesKnownVector) {
  EXPECT_EQ(HexEncode(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace agentd
