// ModelRouter: resolves the model names agents use to deployments on registered backends.
//
// It is itself an InferenceBackend: Start(request) reads request.model as the agent-facing model
// name, picks a deployment (weighted), rewrites request.model to the deployment's model and
// forwards. The built-in model `echo` is always routable. Retries, circuit breakers and fallbacks
// belong here (inference routing work); this version forwards to one weighted deployment.
// Threading: configure (RegisterBackend/AddModel) before serving; Start() is thread-safe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "backend/inference_backend.h"

namespace agentd::backend {

struct Price {
  double input_per_mtok = 0;
  double output_per_mtok = 0;
};

struct Deployment {
  std::string backend;  // registered backend name
  std::string model;    // model name sent to that backend
  int32_t weight = 1;
};

struct ModelSpec {
  std::string name;
  std::vector<Deployment> deployments;
  std::vector<std::string> fallback;
  int64_t context_window = 0;
  Price price;
};

class ModelRouter final : public InferenceBackend {
 public:
  /// Registers the built-in `echo` backend and model.
  ModelRouter();

  /// ALREADY_EXISTS on a duplicate name.
  absl::Status RegisterBackend(const std::string& name, std::shared_ptr<InferenceBackend> backend);
  /// INVALID_ARGUMENT when a deployment names an unknown backend or the model exists.
  absl::Status AddModel(ModelSpec spec);

  /// True if `model` is a configured model name (or `echo`).
  bool HasModel(const std::string& model) const;
  /// Cost in USD of a call with these token counts on `model` (0 for unknown / free models).
  double Cost(const std::string& model, int64_t input_tokens, int64_t output_tokens) const;
  /// Configured model names, sorted.
  std::vector<std::string> ModelNames() const;

  /// Unknown model: on_done(INVALID_ARGUMENT) inline.
  std::shared_ptr<ModelCall> Start(ModelRequest request, ModelCallbacks callbacks) override;

 private:
  std::map<std::string, std::shared_ptr<InferenceBackend>> backends_;
  std::map<std::string, ModelSpec> models_;
};

}  // namespace agentd::backend
