// A chat-completions request read without parsing it: the fields the fake server acts on
// (model, stream, stream_options.include_usage, the last message's role), found by scanning the
// body's text. For the benchmark mock (bench/mock-openai), whose parsing of a full context window
// per request would otherwise cost more CPU than the runtime it measures.
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

namespace agentd::testing {

/// A JSON object shaped like a (very short) request: {"model", "stream", "stream_options":
/// {"include_usage"}, "messages": [{"role": <last role>}]}, each key present only if found.
/// Discarded (is_discarded()) when the body does not start like a JSON object.
/// The last message's role is the value of the last `"role"` key in the body, so it is only
/// right for bodies whose tool schemas have no property named "role" (true of every client the
/// benchmarks run). Keys are matched outside strings only in the sense that a quote inside a
/// JSON string is always escaped; `\\"` sequences inside values can fool it.
nlohmann::json ScanChatRequest(std::string_view body);

}  // namespace agentd::testing
