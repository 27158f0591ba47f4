#include "backend/sse_parser.h"

#include <utility>

#include "absl/strings/match.h"

namespace agentd::backend {

absl::Status SseParser::Feed(absl::string_view bytes, std::vector<Event>* out) {
  if (!bom_checked_) {
    // The BOM may itself arrive split; wait until three bytes (or a mismatch) are available.
    static constexpr absl::string_view kBom = "\xEF\xBB\xBF";
    line_.append(bytes.data(), bytes.size());
    if (line_.size() < kBom.size() && absl::string_view(kBom).substr(0, line_.size()) == line_) {
      return absl::OkStatus();
    }
    bom_checked_ = true;
    std::string pending = std::move(line_);
    line_.clear();
    absl::string_view rest = pending;
    if (absl::StartsWith(rest, kBom)) rest.remove_prefix(kBom.size());
    return Feed(rest, out);
  }
  size_t i = 0;
  if (skip_lf_ && !bytes.empty()) {
    skip_lf_ = false;
    if (bytes[0] == '\n') i = 1;
  }
  while (i < bytes.size()) {
    size_t end = i;
    while (end < bytes.size() && bytes[end] != '\n' && bytes[end] != '\r') ++end;
    if (end == bytes.size()) {
      line_.append(bytes.data() + i, end - i);
      if (line_.size() > max_event_bytes_) {
        return absl::ResourceExhaustedError("SSE line exceeds the size limit");
      }
      return absl::OkStatus();
    }
    absl::string_view piece = bytes.substr(i, end - i);
    if (line_.empty()) {
      ProcessLine(piece, out);
    } else {
      line_.append(piece.data(), piece.size());
      std::string line = std::move(line_);
      line_.clear();
      ProcessLine(line, out);
    }
    if (data_.size() > max_event_bytes_) {
      return absl::ResourceExhaustedError("SSE event exceeds the size limit");
    }
    if (bytes[end] == '\r') {
      if (end + 1 < bytes.size()) {
        if (bytes[end + 1] == '\n') ++end;
      } else {
        skip_lf_ = true;
      }
    }
    i = end + 1;
  }
  return absl::OkStatus();
}

void SseParser::Finish(std::vector<Event>* out) {
  line_.clear();
  Dispatch(out);
}

void SseParser::ProcessLine(absl::string_view line, std::vector<Event>* out) {
  if (line.empty()) {
    Dispatch(out);
    return;
  }
  if (line[0] == ':') return;  // comment (keep-alive)
  absl::string_view field = line;
  absl::string_view value;
  if (size_t colon = line.find(':'); colon != absl::string_view::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) data_.push_back('\n');
    data_.append(value.data(), value.size());
    has_data_ = true;
  } else if (field == "event") {
    type_ = std::string(value);
  } else if (field == "id") {
    if (value.find('\0') == absl::string_view::npos) last_id_ = std::string(value);
  }
  // `retry` and unknown fields are ignored.
}

void SseParser::Dispatch(std::vector<Event>* out) {
  if (has_data_) {
    Event event;
    event.type = std::move(type_);
    event.data = std::move(data_);
    event.id = last_id_;
    out->push_back(std::move(event));
  }
  data_.clear();
  type_.clear();
  has_data_ = false;
}

}  // namespace agentd::backend
