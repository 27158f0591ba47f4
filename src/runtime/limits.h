// Input limits enforced on every request (INVALID_ARGUMENT beyond them). docs/api.md lists them.
#pragma once

#include <cstddef>
#include <cstdint>

namespace agentd::runtime {

inline constexpr size_t kMaxNameBytes = 256;
inline constexpr size_t kMaxInstructionsBytes = 256 * 1024;
inline constexpr size_t kMaxTools = 128;
inline constexpr size_t kMaxToolDescriptionBytes = 8 * 1024;
inline constexpr size_t kMaxSchemaBytes = 64 * 1024;
inline constexpr size_t kMaxMetadataEntries = 64;
inline constexpr size_t kMaxMetadataKeyBytes = 128;
inline constexpr size_t kMaxMetadataValueBytes = 2048;
inline constexpr size_t kMaxInputMessages = 64;
inline constexpr size_t kMaxTextBytes = 1024 * 1024;
inline constexpr size_t kMaxToolResults = 128;
inline constexpr int32_t kMaxStepsPerTurn = 1000;
inline constexpr int32_t kMaxContextTokens = 10'000'000;
inline constexpr int32_t kMaxPageSize = 1000;
inline constexpr int32_t kDefaultEventLimit = 100;
inline constexpr int64_t kMaxTtlSeconds = 10LL * 365 * 24 * 3600;
/// Turns that may wait behind a running one (BUSY_POLICY_ENQUEUE) per session.
inline constexpr size_t kMaxQueuedTurns = 256;

}  // namespace agentd::runtime
