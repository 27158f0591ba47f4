// A chat REPL: each line read from stdin is a user turn whose reply is streamed as it arrives.
// `/quit` (or end of input) leaves.
//
//   AGENTD_ADDR=127.0.0.1:7700 AGENTD_API_KEY=... build/bin/example_chat
#include <unistd.h>

#include <iostream>
#include <string>

#include "example_common.h"

int main() {
  using agentd::examples::Fail;
  namespace v1 = agentd::v1;
  std::unique_ptr<agentd::Client> client = agentd::examples::ConnectFromEnv();
  const std::string model = agentd::examples::ModelFromEnv();

  auto agent = client->CreateAgent("chat-example", model, "You are a friendly assistant.");
  if (!agent.ok()) return Fail("cannot create the agent", agent.status());
  auto session = client->CreateSession(agent->agent_id());
  if (!session.ok()) return Fail("cannot create the session", session.status());
  std::cout << "session " << session->id() << " with model " << model << "; type /quit to leave"
            << std::endl;

  const bool interactive = isatty(STDIN_FILENO);
  std::string line;
  for (;;) {
    if (interactive) std::cout << "you> " << std::flush;
    if (!std::getline(std::cin, line) || line == "/quit") break;
    if (line.empty()) continue;

    // The iterator form of streaming: deltas are printed as they come.
    std::cout << "assistant: " << std::flush;
    std::unique_ptr<agentd::TurnStream> stream = session->StartStream(line);
    v1::TurnEvent event;
    while (stream->Next(&event)) {
      if (!event.has_delta()) continue;
      if (event.delta().reset()) std::cout << " [retrying]\nassistant: ";
      std::cout << event.delta().text() << std::flush;
    }
    std::cout << std::endl;
    absl::StatusOr<agentd::TurnResult> result = stream->Finish();
    if (!result.ok()) return Fail("turn failed", result.status());
    if (result->status != v1::TURN_STATUS_COMPLETED) {
      std::cerr << "turn " << v1::TurnStatus_Name(result->status) << ": " << result->error
                << std::endl;
    }
  }
  std::cout << "bye" << std::endl;
  return 0;
}
