// Shared by the C++ examples: a client from the environment, and the one-line error exit.
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "agentd/client.h"

namespace agentd::examples {

/// $AGENTD_MODEL, or "echo" (the built-in model, which needs no backend).
std::string ModelFromEnv();

/// A client for $AGENTD_ADDR (default 127.0.0.1:7700) with $AGENTD_API_KEY. On bad settings
/// prints one error line and exits 1.
std::unique_ptr<Client> ConnectFromEnv();

/// Prints `error: <what>: <CODE>: <message>` as one line on stderr (with a hint for the usual
/// causes: no server, wrong key) and returns 1, the examples' exit code for errors.
int Fail(const std::string& what, const absl::Status& status);

}  // namespace agentd::examples
