// A client-side tool: get_weather runs in this process. The agent's turn stops with
// REQUIRES_ACTION, Session::Run() calls the handler with the model's arguments, sends the
// result back and returns the final answer.
//
// With the built-in `echo` model the question is `/tool get_weather {"city":"Paris"}`, which
// makes echo call the tool and then answer with its result. With a real model (AGENTD_MODEL)
// it is asked in plain words.
#include <iostream>
#include <string>

#include "example_common.h"
#include "nlohmann/json.hpp"

namespace {

// Arguments arrive as a JSON object, as the model wrote them: check them like any input.
absl::StatusOr<std::string> GetWeather(const std::string& arguments_json) {
  std::cout << "tool get_weather called with " << arguments_json << std::endl;
  nlohmann::json args = nlohmann::json::parse(arguments_json, nullptr, /*allow_exceptions=*/false);
  if (!args.is_object() || !args.contains("city") || !args["city"].is_string()) {
    // Sent back to the model as an error result; the loop goes on.
    return absl::InvalidArgumentError("get_weather needs {\"city\": string}");
  }
  return "Sunny and 22 C in " + args["city"].get<std::string>();
}

}  // namespace

int main() {
  using agentd::examples::Fail;
  std::unique_ptr<agentd::Client> client = agentd::examples::ConnectFromEnv();
  const std::string model = agentd::examples::ModelFromEnv();

  agentd::ToolRegistry tools;
  tools.Add("get_weather", GetWeather, "Current weather for a city",
            R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})");

  auto agent = client->CreateAgent("weather-example", model,
                                   "Answer weather questions with the get_weather tool.", tools);
  if (!agent.ok()) return Fail("cannot create the agent", agent.status());
  auto session = client->CreateSession(agent->agent_id());
  if (!session.ok()) return Fail("cannot create the session", session.status());

  const std::string question =
      model == "echo" ? R"(/tool get_weather {"city":"Paris"})" : "What is the weather in Paris?";
  std::cout << "user: " << question << std::endl;
  absl::StatusOr<agentd::TurnResult> result = session->Run(question, tools);
  if (!result.ok()) return Fail("turn failed", result.status());
  if (result->status != agentd::v1::TURN_STATUS_COMPLETED) {
    std::cerr << "error: the turn ended " << agentd::v1::TurnStatus_Name(result->status) << ": "
              << result->error << std::endl;
    return 1;
  }
  std::cout << "answer: " << result->output_text << std::endl;
  std::cout << "turns: " << result->turns << ", model calls: " << result->usage.model_calls()
            << ", tokens in/out: " << result->usage.input_tokens() << "/"
            << result->usage.output_tokens() << std::endl;
  return 0;
}
