// `agentctl state get|put|list`: a session's tool state (GetState / PutState / ListState).
#include <iostream>

#include "absl/strings/str_cat.h"
#include "cli/cli_common.h"
#include "cli/output.h"
#include "nlohmann/json.hpp"

namespace agentd::cli {
namespace {

namespace v1 = agentd::v1;

struct KeyOptions {
  std::string session_id;
  std::string key;
};

struct PutOptions {
  std::string session_id;
  std::string key;
  std::string value_json;
  int64_t expected_version = 0;
};

void PrintEntry(Connection& c, const v1::StateEntry& entry) {
  if (c.structured()) return c.Print(entry);
  PrintStateEntries({entry});
}

int GetState(Connection& c, const KeyOptions& o) {
  v1::GetStateRequest request;
  request.set_session_id(o.session_id);
  request.set_key(o.key);
  v1::StateEntry entry;
  auto context = c.NewContext(o.session_id);
  const grpc::Status status = c.sessions().GetState(context.get(), request, &entry);
  if (!status.ok()) return c.Fail(status, *context);
  PrintEntry(c, entry);
  return kExitOk;
}

int PutState(Connection& c, const PutOptions& o) {
  // The server checks too; checking here makes a typo a usage error before any call.
  if (!nlohmann::json::accept(o.value_json)) {
    return UsageError(absl::StrCat("VALUE is not valid JSON: ", OneLine(o.value_json, 80),
                                   " (quote strings: '\"text\"')"));
  }
  v1::PutStateRequest request;
  request.set_session_id(o.session_id);
  request.set_key(o.key);
  request.set_value_json(o.value_json);
  request.set_expected_version(o.expected_version);
  v1::StateEntry entry;
  auto context = c.NewContext(o.session_id);
  const grpc::Status status = c.sessions().PutState(context.get(), request, &entry);
  if (!status.ok()) return c.Fail(status, *context);
  PrintEntry(c, entry);
  return kExitOk;
}

int ListState(Connection& c, const std::string& session_id) {
  v1::ListStateRequest request;
  request.set_session_id(session_id);
  v1::ListStateResponse response;
  auto context = c.NewContext(session_id);
  const grpc::Status status = c.sessions().ListState(context.get(), request, &response);
  if (!status.ok()) return c.Fail(status, *context);
  if (c.structured()) return c.Print(response), kExitOk;
  PrintStateEntries({response.entries().begin(), response.entries().end()});
  return kExitOk;
}

}  // namespace

void AddStateCommands(CLI::App& app, Dispatch* d) {
  CLI::App* state = AddCommand(app, "state", "Read and write a session's tool state",
                               "  agentctl state list sess_0123\n"
                               "  agentctl state put sess_0123 cart '{\"items\": 2}'");
  state->require_subcommand(1);

  auto g = std::make_shared<KeyOptions>();
  CLI::App* get = AddCommand(*state, "get", "Show one state entry (NOT_FOUND if absent)",
                             "  agentctl state get sess_0123 cart -o json");
  get->add_option("SESSION", g->session_id, "Session id")->required();
  get->add_option("KEY", g->key, "State key")->required();
  get->callback([d, g] { d->action = [g](Connection& c) { return GetState(c, *g); }; });

  auto p = std::make_shared<PutOptions>();
  CLI::App* put =
      AddCommand(*state, "put",
                 "Write a state entry; with --expected-version, only if the stored version matches "
                 "(ABORTED otherwise)",
                 "  agentctl state put sess_0123 cart '{\"items\": 2}'\n"
                 "  agentctl state put sess_0123 cart '{\"items\": 3}' --expected-version 1\n"
                 "  agentctl state put sess_0123 note '\"a JSON string\"'");
  put->add_option("SESSION", p->session_id, "Session id")->required();
  put->add_option("KEY", p->key, "State key (1-256 printable ASCII characters)")->required();
  put->add_option("VALUE", p->value_json, "Value: any JSON document")->required();
  put->add_option("--expected-version", p->expected_version,
                  "Write only if the stored version is N (0 = unconditional; a missing key is 0)")
      ->check(kWholeNumber);
  put->callback([d, p] { d->action = [p](Connection& c) { return PutState(c, *p); }; });

  auto session_id = std::make_shared<std::string>();
  CLI::App* list = AddCommand(*state, "list", "Show every state entry of a session, by key",
                              "  agentctl state list sess_0123\n"
                              "  agentctl state list sess_0123 -o yaml");
  list->add_option("SESSION", *session_id, "Session id")->required();
  list->callback([d, session_id] {
    d->action = [session_id](Connection& c) { return ListState(c, *session_id); };
  });
}

}  // namespace agentd::cli
