// Loopback ports for tests.
#pragma once

namespace agentd::testing {

/// A free loopback TCP port: bound and released, so nothing listens on it (a tiny race with
/// other processes is accepted in tests). Also the way to get an address that refuses.
int FreePort();

}  // namespace agentd::testing
