// mock-openai: a fast OpenAI-compatible chat-completions server for load tests (issue #8), used
// by agentd and by the peer frameworks alike over HTTP on loopback.
//
// POST /v1/chat/completions answers, after --think-ms:
//   - a request whose last message is not a `tool` message: a ~1 KB assistant message with ONE
//     tool call (--tool-name, arguments --tool-args; default `state_get` {"key":"doc"}, agentd's
//     built-in session-state read, so agentd runs the whole step inside one RunTurn);
//   - a request whose last message is a `tool` message: a plain ~1 KB text answer.
// So one agent step is: model call -> tool call -> tool result -> model call -> final answer.
// JSON or SSE ("stream": true, usage chunk with stream_options.include_usage), usage in every
// response. Request bodies are scanned, not parsed (--full-parse parses them): a full window of
// context costs the mock ~1 ms of JSON parsing per request otherwise, CPU taken from whatever it
// is measured against on the same machine. Built on tests/testing/fake_openai (libevent); --threads loops share the port
// (SO_REUSEPORT). Prints `LISTENING <port>` on stdout once serving; SIGINT/SIGTERM stop it and
// print the request count on stderr.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "loadgen_stats.h"
#include "nlohmann/json.hpp"
#include "testing/fake_openai.h"

namespace {

using agentd::testing::FakeOpenAiOptions;
using agentd::testing::FakeOpenAiServer;
using agentd::testing::FakeReply;
using agentd::testing::FakeToolCall;
using nlohmann::json;

constexpr size_t kReplyBytes = 1024;

struct MockOptions {
  int port = 0;
  int think_ms = 0;
  int threads = 1;
  int chunk_chars = 64;
  std::string tool_name = "state_get";
  std::string tool_args = R"({"key":"doc"})";
  bool full_parse = false;
};

std::string Filled(const std::string& head, size_t bytes) {
  return agentd::bench::loadgen::FilledText(
      head, bytes, " The mock model keeps answering with the same words every time.");
}

// True if the request's last message has role "tool" (the tool result came back).
bool LastMessageIsTool(const json& request) {
  const auto messages = request.find("messages");
  if (messages == request.end() || !messages->is_array() || messages->empty()) return false;
  const json& last = messages->back();
  if (!last.is_object()) return false;
  const auto role = last.find("role");
  return role != last.end() && role->is_string() && role->get_ref<const std::string&>() == "tool";
}

// Rough token counts, as a provider would report them (4 bytes per token).
int Tokens(size_t bytes) { return static_cast<int>(bytes / 4 + 1); }

class ReplyPolicy {
 public:
  explicit ReplyPolicy(const MockOptions& o)
      : options_(o),
        tool_text_(Filled("Let me look that up with " + o.tool_name + ".", kReplyBytes)),
        final_text_(Filled("Here is the answer, based on the tool result.", kReplyBytes)) {}

  /// Thread-safe (each loop thread calls it).
  FakeReply Reply(const json& request) {
    FakeReply r;
    r.latency_ms = options_.think_ms;
    r.chunk_chars = options_.chunk_chars;
    r.prompt_tokens = 1000;  // the request body's size is not passed to the hook; a constant
    if (LastMessageIsTool(request)) {
      r.text = final_text_;
    } else {
      r.text = tool_text_;
      const long id = next_id_.fetch_add(1, std::memory_order_relaxed);
      r.tool_calls.push_back(
          FakeToolCall{"call_mock_" + std::to_string(id), options_.tool_name, options_.tool_args});
    }
    r.completion_tokens = Tokens(r.text.size());
    ++replies_;
    return r;
  }

  long replies() const { return replies_.load(); }

 private:
  const MockOptions options_;
  const std::string tool_text_;
  const std::string final_text_;
  std::atomic<long> next_id_{1};
  std::atomic<long> replies_{0};
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"mock-openai: fast OpenAI-compatible /v1/chat/completions for load tests"};
  MockOptions o;
  app.add_option("--port", o.port, "TCP port on 127.0.0.1 (0 = pick one; printed as LISTENING)")
      ->check(CLI::Range(0, 65535));
  app.add_option("--think-ms", o.think_ms, "model think time per request, ms (default 0)")
      ->check(CLI::Range(0, 600000));
  app.add_option("--threads", o.threads, "event-loop threads sharing the port (default 1)")
      ->check(CLI::Range(1, 64));
  app.add_option("--chunk-chars", o.chunk_chars, "streaming: characters per delta (default 64)")
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--tool-name", o.tool_name, "function the first reply of a step calls");
  app.add_option("--tool-args", o.tool_args, "its JSON arguments");
  app.add_flag("--full-parse", o.full_parse,
               "parse every request body as JSON (default: scan it for model, stream and the last "
               "role only, so the mock's CPU does not grow with the context it is sent)");
  CLI11_PARSE(app, argc, argv);
  if (!json::accept(o.tool_args)) {
    std::fprintf(stderr, "mock-openai: --tool-args is not JSON\n");
    return 2;
  }

  // Block the stop signals before any thread starts; main waits for them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto policy = std::make_shared<ReplyPolicy>(o);
  std::vector<std::unique_ptr<FakeOpenAiServer>> servers;
  try {
    FakeOpenAiOptions listen;
    listen.port = o.port;
    listen.reuse_port = o.threads > 1;
    listen.scan_only = !o.full_parse;
    for (int i = 0; i < o.threads; ++i) {
      servers.push_back(std::make_unique<FakeOpenAiServer>(listen));
      listen.port = servers.front()->port();  // the others join the first one's port
      servers.back()->set_record_requests(false);
      servers.back()->SetReplyFn([policy](const json& request) { return policy->Reply(request); });
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mock-openai: %s (port %d)\n", e.what(), o.port);
    return 1;
  }
  std::printf("LISTENING %d\n", servers.front()->port());
  std::fflush(stdout);

  int sig = 0;
  sigwait(&stop, &sig);
  long requests = 0;
  for (const auto& s : servers) requests += s->request_count();
  servers.clear();
  std::fprintf(stderr, "mock-openai: stopped; %ld requests, %ld replies\n", requests,
               policy->replies());
  return 0;
}
