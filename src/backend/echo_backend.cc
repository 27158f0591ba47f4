#include "backend/echo_backend.h"

namespace agentd::backend {

int64_t EstimateTokens(absl::string_view text) {
  return static_cast<int64_t>((text.size() + 3) / 4);
}

std::shared_ptr<ModelCall> EchoBackend::Start(ModelRequest request, ModelCallbacks callbacks) {
  ModelResponse response;
  int64_t input_tokens = 0;
  for (const ChatMessage& m : request.messages) {
    input_tokens += EstimateTokens(m.text) + 4;
    if (m.role == v1::ROLE_USER) response.text = m.text;
  }
  response.input_tokens = input_tokens;
  response.output_tokens = EstimateTokens(response.text);
  response.finish_reason = "stop";
  response.served_by = "echo";
  if (callbacks.on_delta && !response.text.empty()) callbacks.on_delta(response.text);
  callbacks.on_done(std::move(response));
  return std::make_shared<CompletedCall>();
}

}  // namespace agentd::backend
