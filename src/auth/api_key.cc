#include "auth/api_key.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <array>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/ids.h"

namespace agentd::auth {
namespace {

constexpr size_t kKeyIdHexChars = 16;   // 64 bits
constexpr size_t kSecretHexChars = 64;  // 256 bits
// "agd_" + "k" + 16 hex + "_" + 64 hex.
constexpr size_t kGeneratedKeyLength = 4 + 1 + kKeyIdHexChars + 1 + kSecretHexChars;

/// `n` random bytes from the OpenSSL CSPRNG. A failing CSPRNG is an environment fault that no
/// caller can handle, and a key must never come from a weaker source: abort.
std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    std::fprintf(stderr, "agentd: OpenSSL RAND_bytes failed; cannot generate key material\n");
    std::abort();
  }
  return out;
}

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

/// The key id of a key in agentd's own format, or "" when `key` is not in that format.
absl::string_view GeneratedKeyId(absl::string_view key) {
  if (key.size() != kGeneratedKeyLength || !absl::StartsWith(key, kKeyPrefix)) return {};
  const absl::string_view key_id = key.substr(kKeyPrefix.size(), 1 + kKeyIdHexChars);
  const size_t sep = kKeyPrefix.size() + key_id.size();
  if (key_id[0] != 'k' || !IsLowerHex(key_id.substr(1)) || key[sep] != '_' ||
      !IsLowerHex(key.substr(sep + 1))) {
    return {};
  }
  return key_id;
}

}  // namespace

GeneratedKey GenerateApiKey() {
  GeneratedKey out;
  out.key_id = absl::StrCat("k", HexEncode(RandomBytes(kKeyIdHexChars / 2)));
  out.secret =
      absl::StrCat(kKeyPrefix, out.key_id, "_", HexEncode(RandomBytes(kSecretHexChars / 2)));
  return out;
}

absl::StatusOr<std::string> KeyIdOf(absl::string_view key) {
  if (key.empty()) return absl::InvalidArgumentError("API key is empty");
  if (key.size() > kMaxKeyLength) {
    return absl::InvalidArgumentError(absl::StrCat("API key must be at most ", kMaxKeyLength,
                                                   " characters long (got ", key.size(), ")"));
  }
  for (char c : key) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7e) {
      return absl::InvalidArgumentError(
          "API key may only contain printable ASCII characters (no spaces or control characters)");
    }
  }
  const absl::string_view generated = GeneratedKeyId(key);
  if (!generated.empty()) return std::string(generated);
  // A custom key (AGENTD_BOOTSTRAP_KEY): derive a stable id; the NUL separates the domain tag.
  std::string tagged("agentd-key-id", 13);
  tagged.push_back('\0');
  tagged.append(key.data(), key.size());
  return absl::StrCat("kb", HexEncode(Sha256(tagged)).substr(0, kKeyIdHexChars));
}

std::string NewSalt() { return RandomBytes(16); }

std::string HashKey(absl::string_view salt, absl::string_view key) {
  return Sha256(absl::StrCat(salt, key));
}

bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  // The lengths are not secret (hashes are always 32 bytes); only the contents are compared
  // without an early exit.
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace agentd::auth
