// The built-in `echo` model: answers with the last user message's text. Deterministic, free,
// completes inline (callbacks run before Start() returns).
//
// For tool loops without a real model: a newest user message `/tool NAME ARGS_JSON`, where NAME
// is one of the request's tools, makes echo call that tool with those arguments; when the
// newest messages are tool results, echo answers with their text (joined by newlines).
#pragma once

#include "backend/inference_backend.h"

namespace agentd::backend {

class EchoBackend final : public InferenceBackend {
 public:
  std::shared_ptr<ModelCall> Start(const ModelRequest& request, ModelCallbacks callbacks) override;
};

/// Rough token estimate used where a backend reports none: ~4 characters per token.
int64_t EstimateTokens(absl::string_view text);

}  // namespace agentd::backend
