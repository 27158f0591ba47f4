// Long-term memory outlives sessions: one session's flow saves what it learned with PutMemory;
// a new session finds it, once with Client::SearchMemory and once through the agent's builtin
// `memory_search` tool (which runs inside agentd, so no client-side handler is needed).
#include <iostream>
#include <string>

#include "example_common.h"

int main() {
  using agentd::examples::Fail;
  namespace v1 = agentd::v1;
  std::unique_ptr<agentd::Client> client = agentd::examples::ConnectFromEnv();
  const std::string model = agentd::examples::ModelFromEnv();

  v1::Agent spec;
  spec.set_name("memory-example");
  spec.set_model(model);
  spec.set_instructions("Use memory_search to recall what users told you before.");
  for (const char* builtin : {"memory_search", "memory_put"}) {
    v1::ToolSpec* tool = spec.add_tools();
    tool->set_name(builtin);
    tool->set_kind(v1::TOOL_KIND_BUILTIN);
  }
  auto agent = client->CreateAgent(spec);
  if (!agent.ok()) return Fail("cannot create the agent", agent.status());

  // First session: the user says something worth keeping; the application stores it.
  auto first = client->CreateSession(agent->agent_id());
  if (!first.ok()) return Fail("cannot create the session", first.status());
  const std::string said = "I always prefer window seats on trains.";
  auto turn = first->Run(said);
  if (!turn.ok()) return Fail("turn failed", turn.status());
  v1::PutMemoryRequest put;
  put.set_namespace_("users/alice/preferences");
  put.set_text("Alice prefers window seats on trains");
  (*put.mutable_metadata())["source_session"] = first->id();
  auto saved = client->PutMemory(put);
  if (!saved.ok()) return Fail("cannot save the memory", saved.status());
  std::cout << "session " << first->id() << " saved memory " << saved->namespace_() << "/"
            << saved->key() << std::endl;

  // A new session, later: the memory is project-wide.
  auto second = client->CreateSession(agent->agent_id());
  if (!second.ok()) return Fail("cannot create the session", second.status());
  auto found = client->SearchMemory("users/alice/", "window seat", 3);
  if (!found.ok()) return Fail("search failed", found.status());
  if (found->empty()) {
    std::cerr << "error: the saved memory was not found" << std::endl;
    return 1;
  }
  std::cout << "SearchMemory: " << (*found)[0].record().text() << " (score " << (*found)[0].score()
            << ")" << std::endl;

  // The same through the agent: with echo, `/tool memory_search {...}` makes the model call the
  // builtin tool and answer with its result; a real model is simply asked.
  const std::string question =
      model == "echo"
          ? R"(/tool memory_search {"query":"window seats","namespace_prefix":"users/alice/"})"
          : "Which seats does Alice prefer? Look it up in memory.";
  auto answer = second->Run(question);
  if (!answer.ok()) return Fail("turn failed", answer.status());
  std::cout << "session " << second->id() << " memory_search tool answered: " << answer->output_text
            << std::endl;
  return 0;
}
