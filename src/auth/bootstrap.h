// Bootstrap: the `default` project and its first ADMIN key, created when the data dir is new
// (or predates projects: no `default` project record).
#pragma once

#include <string>

#include "absl/status/status.h"
#include "store/context_store.h"

namespace agentd::auth {

struct BootstrapOptions {
  std::string data_dir;
  /// AGENTD_BOOTSTRAP_KEY. Empty = generate one, print it once on stdout and write it to
  /// data_dir/bootstrap.key with mode 0600.
  std::string bootstrap_key;
};

/// Creates the `default` project and its ADMIN key "bootstrap" if the project does not exist;
/// does nothing otherwise (a bootstrap key set later is ignored, with a log line saying so).
/// INVALID_ARGUMENT if bootstrap_key is malformed (see KeyIdOf).
absl::Status EnsureBootstrap(store::ContextStore* store, const BootstrapOptions& options);

}  // namespace agentd::auth
