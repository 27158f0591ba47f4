#include "testing/server_harness.h"

#include <gtest/gtest.h>

namespace agentd::testing {

std::unique_ptr<grpc::ClientContext> Ctx(double seconds) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)));
  return ctx;
}

ServerHarness::ServerHarness() : data_dir_(dir_.Sub("data")) { StartServer(); }

ServerHarness::ServerHarness(std::function<void(server::Config*)> configure)
    : configure_(std::move(configure)), data_dir_(dir_.Sub("data")) {
  StartServer();
}

ServerHarness::~ServerHarness() { Stop(); }

void ServerHarness::StartServer() {
  scripted_ = std::make_shared<backend::ScriptedBackend>();
  server::ServerOptions options;
  options.config.listen = "127.0.0.1:0";
  options.config.data_dir = data_dir_;
  options.config.drain_grace_ms = 2000;
  options.config.router.initial_backoff_ms = 5;
  options.config.router.max_backoff_ms = 20;
  server::BackendConfig b;
  b.name = "scripted";
  b.type = "scripted";
  options.config.backends.push_back(b);
  server::ModelConfig m;
  m.name = "scripted";
  m.deployments.push_back({"scripted", "scripted-model", 1});
  m.price = {1.0, 2.0};
  options.config.models.push_back(m);
  options.extra_backends["scripted"] = scripted_;
  options.bootstrap_key = admin_key_;
  if (configure_) configure_(&options.config);
  auto started = server::AgentdServer::Start(std::move(options));
  ASSERT_TRUE(started.ok()) << started.status();
  server_ = *std::move(started);
  channel_ = NewChannel(grpc::InsecureChannelCredentials());
  agent_stub_ = v1::AgentService::NewStub(channel_);
  session_stub_ = v1::SessionService::NewStub(channel_);
}

std::shared_ptr<grpc::Channel> ServerHarness::NewChannel(
    std::shared_ptr<grpc::ChannelCredentials> creds, const std::string& key,
    grpc::ChannelArguments args) {
  args.SetInt(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, 64 << 20);
  return AuthChannel(server_->address(), std::move(creds), key, args);
}

void ServerHarness::Stop() {
  if (server_ == nullptr) return;
  agent_stub_.reset();
  session_stub_.reset();
  channel_.reset();
  server_->Shutdown(absl::Seconds(2));
  server_.reset();
}

void ServerHarness::Restart() {
  Stop();
  StartServer();
}

v1::Agent ServerHarness::CreateAgent(const std::string& model, const std::string& instructions,
                                     const std::vector<std::string>& client_tools) {
  v1::CreateAgentRequest req;
  req.mutable_agent()->set_name("test-agent");
  req.mutable_agent()->set_model(model);
  req.mutable_agent()->set_instructions(instructions);
  for (const auto& t : client_tools) {
    v1::ToolSpec* spec = req.mutable_agent()->add_tools();
    spec->set_name(t);
    spec->set_description("tool " + t);
    spec->set_parameters_json_schema(R"({"type":"object"})");
    spec->set_kind(v1::TOOL_KIND_CLIENT);
  }
  v1::Agent agent;
  grpc::Status st = agents().CreateAgent(Ctx().get(), req, &agent);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return agent;
}

v1::Session ServerHarness::CreateSession(const std::string& agent_id, const std::string& session_id) {
  v1::CreateSessionRequest req;
  req.set_agent_id(agent_id);
  req.set_session_id(session_id);
  v1::Session s;
  grpc::Status st = sessions().CreateSession(Ctx().get(), req, &s);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return s;
}

grpc::Status ServerHarness::Send(const std::string& session_id, const std::string& text,
                                 v1::TurnResult* out) {
  v1::RunTurnRequest req;
  req.set_session_id(session_id);
  v1::InputMessage* in = req.add_input();
  in->set_role(v1::ROLE_USER);
  in->set_text(text);
  return Run(req, out);
}

grpc::Status ServerHarness::Run(const v1::RunTurnRequest& request, v1::TurnResult* out) {
  return sessions().RunTurn(Ctx().get(), request, out);
}

std::vector<v1::ToolResult> ServerHarness::ToolResults(const std::string& session_id) {
  std::vector<v1::ToolResult> out;
  for (const v1::Event& e : AllEvents(session_id)) {
    if (e.type() == v1::EVENT_TYPE_TOOL_RESULT) out.push_back(e.tool_result());
  }
  return out;
}

void ServerHarness::PushReply(std::vector<v1::ToolCall> calls, const std::string& text) {
  backend::ScriptedReply r;
  r.text = text;
  r.tool_calls = std::move(calls);
  scripted_->Push(std::move(r));
}

std::vector<v1::Event> ServerHarness::AllEvents(const std::string& session_id) {
  std::vector<v1::Event> all;
  v1::ListEventsRequest req;
  req.set_session_id(session_id);
  req.set_limit(1000);
  for (;;) {
    v1::ListEventsResponse resp;
    grpc::Status st = sessions().ListEvents(Ctx().get(), req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    if (!st.ok() || resp.events().empty()) break;
    for (const auto& e : resp.events()) all.push_back(e);
    req.set_after_seq(resp.next_after_seq());
  }
  return all;
}

server::BackendConfig& AddFakeOpenAiModel(server::Config* config, const std::string& base_url,
                                          server::PriceConfig price) {
  server::BackendConfig b;
  b.name = "fake";
  b.type = "openai";
  b.base_url = base_url;
  config->backends.push_back(b);
  server::ModelConfig m;
  m.name = "gpt";
  m.deployments.push_back({"fake", "fake-gpt", 1});
  m.price = price;
  config->models.push_back(m);
  return config->backends.back();
}

}  // namespace agentd::testing
