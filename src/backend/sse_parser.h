// Incremental parser for Server-Sent Events (text/event-stream), as the WHATWG spec defines it:
// lines end with "\r\n", "\n" or "\r" (and may be split across network reads anywhere, even
// between "\r" and "\n"); lines starting with ':' are comments; `data` fields of one event are
// joined with '\n'; a blank line dispatches the event; `retry` and unknown fields are ignored.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace agentd::backend {

class SseParser {
 public:
  struct Event {
    std::string type;  // `event:` field; empty means "message"
    std::string data;  // `data:` fields joined with '\n'
    std::string id;    // last `id:` seen in the stream
  };

  /// `max_event_bytes` bounds one line and one event's data (a hostile or broken server cannot
  /// make the parser buffer without limit).
  explicit SseParser(size_t max_event_bytes = 16 << 20) : max_event_bytes_(max_event_bytes) {}

  /// Consumes the next bytes of the stream and appends every event they complete to `out`.
  /// Returns RESOURCE_EXHAUSTED once a line or event exceeds the limit (the parser is then
  /// unusable). Not thread-safe: one parser per stream.
  [[nodiscard]] absl::Status Feed(absl::string_view bytes, std::vector<Event>* out);

  /// End of stream: dispatches an event whose lines were all terminated but whose closing blank
  /// line never came. A partial (unterminated) last line is discarded.
  void Finish(std::vector<Event>* out);

 private:
  void ProcessLine(absl::string_view line, std::vector<Event>* out);
  void Dispatch(std::vector<Event>* out);

  const size_t max_event_bytes_;
  std::string line_;          // current line, without its terminator
  bool skip_lf_ = false;      // the previous byte was '\r': a following '\n' belongs to it
  bool bom_checked_ = false;  // a leading UTF-8 BOM is skipped once
  std::string data_;
  bool has_data_ = false;
  std::string type_;
  std::string last_id_;
};

}  // namespace agentd::backend
