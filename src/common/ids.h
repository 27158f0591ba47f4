// Identifiers: generation of random ids and validation of client-supplied ones.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace agentd {

/// Longest id (agent, session, project, idempotency key) accepted from a client.
inline constexpr size_t kMaxIdLength = 128;

/// A new random id: `prefix` + 32 lowercase hex chars (128 random bits). Thread-safe.
std::string NewId(absl::string_view prefix);

/// OK when `id` is 1..kMaxIdLength characters of [A-Za-z0-9._:-]; INVALID_ARGUMENT naming
/// `field` otherwise.
absl::Status ValidateId(absl::string_view field, absl::string_view id);

/// Lowercase hex of `bytes`.
std::string HexEncode(absl::string_view bytes);

/// SHA-256 of `data` (32 raw bytes).
std::string Sha256(absl::string_view data);

}  // namespace agentd
