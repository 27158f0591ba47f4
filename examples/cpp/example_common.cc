#include "example_common.h"

#include <cstdlib>
#include <iostream>

namespace agentd::examples {
namespace {

std::string Env(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value == nullptr || *value == '\0' ? fallback : std::string(value);
}

}  // namespace

std::string ModelFromEnv() { return Env("AGENTD_MODEL", "echo"); }

std::unique_ptr<Client> ConnectFromEnv() {
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create();  // reads the environment
  if (!client.ok()) std::exit(Fail("bad client settings", client.status()));
  return *std::move(client);
}

int Fail(const std::string& what, const absl::Status& status) {
  std::string message(status.message());
  for (char& c : message) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::string hint;
  if (absl::IsUnavailable(status)) {
    hint = " (is agentd running at " + Env("AGENTD_ADDR", "127.0.0.1:7700") +
           "? set AGENTD_ADDR=HOST:PORT)";
  } else if (absl::IsUnauthenticated(status)) {
    hint = " (set AGENTD_API_KEY to a valid API key)";
  }
  std::cerr << "error: " << what << ": " << absl::StatusCodeToString(status.code()) << ": "
            << message << hint << std::endl;
  return 1;
}

}  // namespace agentd::examples
