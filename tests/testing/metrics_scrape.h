// Reads one sample from a running agentd's Prometheus endpoint (tests that wait on a gauge, e.g.
// agentd_turns_queued, to know a server-side state the gRPC API does not show).
#pragma once

#include <string>

namespace agentd::testing {

/// The value of the unlabelled sample `name` at http://<address>/metrics; -1 when the endpoint
/// cannot be read or has no such sample.
double ScrapeGauge(const std::string& address, const std::string& name);
/// The sum of every sample of `name` (all label sets); -1 when the endpoint cannot be read or
/// has no such sample.
double ScrapeSum(const std::string& address, const std::string& name);

}  // namespace agentd::testing
