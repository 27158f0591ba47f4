// API keys: format, generation, salted hashing and constant-time comparison.
//
// Format of keys agentd generates: "agd_" + key_id + "_" + 64 hex chars (256 random bits), with
// key_id = "k" + 16 hex chars (64 random bits). The key id is public (it names the key in
// ListApiKeys and in audit records) and is how a presented key is looked up; the rest is the
// secret. A key set by the operator through AGENTD_BOOTSTRAP_KEY may be any string of 1..256
// printable ASCII characters (bootstrap warns below kWeakKeyLength): its key id is derived from
// it (see KeyIdOf).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace agentd::auth {

inline constexpr absl::string_view kKeyPrefix = "agd_";
/// Operator-chosen keys shorter than this are accepted, with a startup warning: guessable.
inline constexpr size_t kWeakKeyLength = 16;
inline constexpr size_t kMaxKeyLength = 256;

struct GeneratedKey {
  std::string key_id;  // "k" + 16 hex
  std::string secret;  // the whole key string handed to the user ("agd_<key_id>_<64 hex>")
};

/// A new random key (OpenSSL RAND_bytes). Thread-safe.
GeneratedKey GenerateApiKey();

/// The key id a presented key string is stored under: parsed from an "agd_<key_id>_<hex>" key;
/// for any other well-formed key (a custom bootstrap key), "kb" + the first 16 hex chars of
/// SHA-256("agentd-key-id\0" + key). INVALID_ARGUMENT (message safe to show; never contains the
/// key) when the key is empty, longer than kMaxKeyLength or has characters outside printable ASCII.
absl::StatusOr<std::string> KeyIdOf(absl::string_view key);

/// 16 random bytes.
std::string NewSalt();

/// SHA-256(salt || key), 32 raw bytes. Keys carry >= 128 random bits, so a fast hash is enough
/// (a slow KDF only helps low-entropy passwords) and keeps verification in microseconds.
std::string HashKey(absl::string_view salt, absl::string_view key);

/// Compares without an early exit (CRYPTO_memcmp).
bool ConstantTimeEquals(absl::string_view a, absl::string_view b);

}  // namespace agentd::auth
