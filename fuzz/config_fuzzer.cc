// Fuzzes the config loader (server/config.h): ParseConfig on arbitrary text, then the
// cross-field checks on whatever parsed. Bad YAML must come back as INVALID_ARGUMENT (yaml-cpp's
// exceptions are caught), never as a crash, an escaped exception or a hang.
//
// Invariant: parsing is deterministic (the same text gives the same status and, when it parses,
// the same validation verdict).
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "fuzz_util.h"
#include "server/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Real config files are small; beyond this yaml-cpp's own (uninstrumented) cost dominates.
  if (size > 64 * 1024) return 0;
  const std::string text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<agentd::server::Config> config = agentd::server::ParseConfig(text);
  if (!config.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(config.status()), "a parse error is not INVALID_ARGUMENT");
    return 0;
  }
  const absl::Status valid = agentd::server::ValidateConfig(*config);
  FUZZ_CHECK(valid.ok() || absl::IsInvalidArgument(valid) || absl::IsFailedPrecondition(valid),
             "ValidateConfig returned an unexpected code");
  (void)agentd::server::IsLocalListenAddress(config->listen);

  absl::StatusOr<agentd::server::Config> again = agentd::server::ParseConfig(text);
  FUZZ_CHECK(again.ok(), "the same text parsed once and failed the second time");
  FUZZ_CHECK(agentd::server::ValidateConfig(*again).code() == valid.code(),
             "validation is not deterministic");
  return 0;
}
