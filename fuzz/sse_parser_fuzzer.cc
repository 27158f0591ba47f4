// Fuzzes the SSE stream parser (backend/sse_parser.h; used by the OpenAI backend's streaming
// path and the MCP client) and the OpenAI chat-completion parsers fed by it.
//
// Input: byte 0 seeds the split points; the rest is the stream as a server would send it.
// Invariants: the events do not depend on how the stream is cut into network reads; a parser with
// a small limit stops with RESOURCE_EXHAUSTED instead of buffering without bound.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "backend/openai_mapping.h"
#include "backend/sse_parser.h"
#include "fuzz_util.h"

namespace {

using agentd::backend::SseParser;

bool SameEvents(const std::vector<SseParser::Event>& a, const std::vector<SseParser::Event>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].type != b[i].type || a[i].data != b[i].data || a[i].id != b[i].id) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const unsigned seed = data[0];
  const absl::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);

  // The whole stream in one read.
  SseParser whole;
  std::vector<SseParser::Event> whole_events;
  const bool whole_ok = whole.Feed(stream, &whole_events).ok();
  whole.Finish(&whole_events);

  // The same stream in reads of 1..8 bytes (sizes drawn from the seed), so every boundary case
  // (a "\r" at the end of one read and its "\n" at the start of the next, a split BOM) occurs.
  SseParser split;
  std::vector<SseParser::Event> split_events;
  bool split_ok = true;
  unsigned state = seed * 2654435761u + 1;
  for (size_t pos = 0; pos < stream.size() && split_ok;) {
    state = state * 1103515245u + 12345u;
    const size_t n = std::min<size_t>(1 + (state >> 16) % 8, stream.size() - pos);
    split_ok = split.Feed(stream.substr(pos, n), &split_events).ok();
    pos += n;
  }
  if (split_ok) split.Finish(&split_events);
  FUZZ_CHECK(whole_ok && split_ok, "a 16 MiB limit was hit by an input smaller than that");
  FUZZ_CHECK(SameEvents(whole_events, split_events), "events depend on how the stream was split");

  // A tiny limit: either everything fits or Feed reports RESOURCE_EXHAUSTED (never a crash).
  SseParser small(16);
  std::vector<SseParser::Event> small_events;
  absl::Status st = small.Feed(stream, &small_events);
  FUZZ_CHECK(st.ok() || absl::IsResourceExhausted(st), "limit error has the wrong code");
  for (const SseParser::Event& e : small_events) {
    FUZZ_CHECK(e.data.size() <= 16 + 16, "event larger than the limit was dispatched");
  }

  // What the OpenAI backend does with the events of a streamed response...
  agentd::backend::openai::ChatStreamAccumulator acc;
  std::string delta;
  bool acc_ok = true;
  for (const SseParser::Event& e : whole_events) {
    if (!acc.AddData(e.data, &delta).ok()) {
      acc_ok = false;
      break;
    }
  }
  if (acc_ok) (void)acc.Finish();
  // ...and with the body of a non-streaming one or of an HTTP error.
  (void)agentd::backend::openai::ParseChatResponse(stream);
  (void)agentd::backend::openai::HttpErrorStatus(400 + seed, stream, std::nullopt);
  const size_t half = stream.size() / 2;
  (void)agentd::backend::openai::ParseRetryAfter(stream.substr(0, half), stream.substr(half));
  return 0;
}
