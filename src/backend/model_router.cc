#include "backend/model_router.h"

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "backend/echo_backend.h"

namespace agentd::backend {

ModelRouter::ModelRouter() {
  backends_["echo"] = std::make_shared<EchoBackend>();
  ModelSpec echo;
  echo.name = "echo";
  echo.deployments.push_back({"echo", "echo", 1});
  models_["echo"] = echo;
}

absl::Status ModelRouter::RegisterBackend(const std::string& name,
                                          std::shared_ptr<InferenceBackend> backend) {
  if (!backends_.emplace(name, std::move(backend)).second) {
    return absl::AlreadyExistsError(absl::StrCat("backend \"", name, "\" is already registered"));
  }
  return absl::OkStatus();
}

absl::Status ModelRouter::AddModel(ModelSpec spec) {
  if (spec.name.empty()) return absl::InvalidArgumentError("model name is empty");
  if (models_.count(spec.name)) {
    return absl::InvalidArgumentError(absl::StrCat("model \"", spec.name, "\" is defined twice"));
  }
  if (spec.deployments.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("model \"", spec.name, "\" has no deployments"));
  }
  for (const Deployment& d : spec.deployments) {
    if (d.weight < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("model \"", spec.name, "\": deployment weights must be >= 1"));
    }
    if (!backends_.count(d.backend)) {
      return absl::InvalidArgumentError(
          absl::StrCat("model \"", spec.name, "\" names unknown backend \"", d.backend, "\""));
    }
  }
  std::string name = spec.name;
  models_.emplace(std::move(name), std::move(spec));
  return absl::OkStatus();
}

bool ModelRouter::HasModel(const std::string& model) const { return models_.count(model) > 0; }

double ModelRouter::Cost(const std::string& model, int64_t input_tokens,
                         int64_t output_tokens) const {
  auto it = models_.find(model);
  if (it == models_.end()) return 0;
  return (static_cast<double>(input_tokens) * it->second.price.input_per_mtok +
          static_cast<double>(output_tokens) * it->second.price.output_per_mtok) /
         1e6;
}

std::vector<std::string> ModelRouter::ModelNames() const {
  std::vector<std::string> names;
  for (const auto& [name, spec] : models_) names.push_back(name);
  return names;
}

std::shared_ptr<ModelCall> ModelRouter::Start(ModelRequest request, ModelCallbacks callbacks) {
  auto it = models_.find(request.model);
  if (it == models_.end()) {
    callbacks.on_done(
        absl::InvalidArgumentError(absl::StrCat("model \"", request.model, "\" is not configured")));
    return std::make_shared<CompletedCall>();
  }
  const ModelSpec& spec = it->second;
  const Deployment* chosen = &spec.deployments.front();
  if (spec.deployments.size() > 1) {
    int64_t total = 0;
    for (const Deployment& d : spec.deployments) total += d.weight;
    thread_local absl::BitGen gen;
    int64_t pick = absl::Uniform<int64_t>(gen, 0, total);
    for (const Deployment& d : spec.deployments) {
      if (pick < d.weight) {
        chosen = &d;
        break;
      }
      pick -= d.weight;
    }
  }
  request.model = chosen->model;
  return backends_.at(chosen->backend)->Start(std::move(request), std::move(callbacks));
}

}  // namespace agentd::backend
