#include "common/ids.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <array>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"

namespace agentd {

std::string HexEncode(absl::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

std::string NewId(absl::string_view prefix) {
  std::array<unsigned char, 16> raw{};
  if (RAND_bytes(raw.data(), raw.size()) != 1) {
    // The OpenSSL CSPRNG failing is an environment fault; fall back to absl's seeded generator.
    thread_local absl::BitGen gen;
    for (auto& b : raw) b = absl::Uniform<unsigned char>(gen);
  }
  return absl::StrCat(prefix, HexEncode(absl::string_view(reinterpret_cast<const char*>(raw.data()), raw.size())));
}

absl::Status ValidateId(absl::string_view field, absl::string_view id) {
  if (id.empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is required"));
  if (id.size() > kMaxIdLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is longer than ", kMaxIdLength, " characters"));
  }
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == ':';
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, " may only contain letters, digits and . _ - :"));
    }
  }
  return absl::OkStatus();
}

std::string Sha256(absl::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<const char*>(md), len);
}

}  // namespace agentd
