// Forks and replays: run three turns, fork the session after the second one, take the fork in
// another direction, and show both histories (the fork shares the parent's first events
// without copying them). Then ReplaySession re-runs the original's inputs with a model of your
// choice in a new session, to compare models on a real conversation.
#include <iostream>
#include <string>
#include <vector>

#include "example_common.h"

namespace {

namespace v1 = agentd::v1;

void PrintHistory(const std::string& title, const std::vector<v1::Event>& events) {
  std::cout << "== " << title << std::endl;
  for (const v1::Event& e : events) {
    if (e.type() != v1::EVENT_TYPE_MESSAGE) continue;
    const char* who = e.message().role() == v1::ROLE_USER ? "user" : "assistant";
    std::cout << "  [" << e.seq() << "] " << who << ": " << e.message().text() << std::endl;
  }
}

}  // namespace

int main() {
  using agentd::examples::Fail;
  std::unique_ptr<agentd::Client> client = agentd::examples::ConnectFromEnv();
  const std::string model = agentd::examples::ModelFromEnv();

  auto agent = client->CreateAgent("fork-example", model, "Answer in one short sentence.");
  if (!agent.ok()) return Fail("cannot create the agent", agent.status());
  auto session = client->CreateSession(agent->agent_id());
  if (!session.ok()) return Fail("cannot create the session", session.status());

  int64_t fork_at = 0;
  for (const char* text : {"My name is Ada.", "I like tea.", "What do I like?"}) {
    auto result = session->Run(text);
    if (!result.ok()) return Fail("turn failed", result.status());
    if (std::string(text) == "I like tea.") fork_at = result->last_seq;  // after turn 2
  }

  auto fork = session->Fork(fork_at);
  if (!fork.ok()) return Fail("cannot fork", fork.status());
  auto other = fork->Run("Actually, I like coffee.");
  if (!other.ok()) return Fail("turn failed on the fork", other.status());

  auto original = session->Events();
  if (!original.ok()) return Fail("cannot read events", original.status());
  auto forked = fork->Events();
  if (!forked.ok()) return Fail("cannot read events", forked.status());
  PrintHistory("original " + session->id(), *original);
  PrintHistory("fork " + fork->id() + " (forked at seq " + std::to_string(fork_at) + ")", *forked);

  auto replay = session->Replay(model);
  if (!replay.ok()) return Fail("cannot replay", replay.status());
  std::cout << "== replay " << replay->session().session_id() << " with model " << model << ": "
            << replay->results_size() << " turns" << std::endl;
  for (const v1::TurnResult& r : replay->results()) {
    std::cout << "  " << v1::TurnStatus_Name(r.status()) << ": " << r.output_text() << std::endl;
  }
  return 0;
}
