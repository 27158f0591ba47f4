#include "metrics/trace_context.h"

#include "absl/random/random.h"

namespace agentd::obs {
namespace {

thread_local LogContext current;

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool AllZero(absl::string_view s) { return s.find_first_not_of('0') == absl::string_view::npos; }

int HexValue(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }

std::string RandomHex(size_t bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  thread_local absl::BitGen gen;
  std::string out(bytes * 2, '0');
  for (;;) {
    for (size_t i = 0; i < bytes; i += 8) {
      uint64_t r = absl::Uniform<uint64_t>(gen);
      for (size_t j = 0; j < 8 && i + j < bytes; ++j, r >>= 8) {
        out[2 * (i + j)] = kHex[(r >> 4) & 0xf];
        out[2 * (i + j) + 1] = kHex[r & 0xf];
      }
    }
    if (!AllZero(out)) return out;  // all-zero ids are invalid; 2^-64 odds, but be exact
  }
}

}  // namespace

std::optional<TraceParent> ParseTraceparent(absl::string_view value) {
  // version(2) '-' trace-id(32) '-' parent-id(16) '-' flags(2) = 55 characters.
  constexpr size_t kLength = 55;
  if (value.size() < kLength) return std::nullopt;
  const absl::string_view version = value.substr(0, 2);
  if (!IsLowerHex(version) || version == "ff") return std::nullopt;
  if (version == "00" ? value.size() != kLength
                      : value.size() > kLength && value[kLength] != '-') {
    return std::nullopt;
  }
  if (value[2] != '-' || value[35] != '-' || value[52] != '-') return std::nullopt;
  const absl::string_view trace_id = value.substr(3, 32);
  const absl::string_view parent_id = value.substr(36, 16);
  const absl::string_view flags = value.substr(53, 2);
  if (!IsLowerHex(trace_id) || !IsLowerHex(parent_id) || !IsLowerHex(flags)) return std::nullopt;
  if (AllZero(trace_id) || AllZero(parent_id)) return std::nullopt;
  TraceParent tp;
  tp.trace_id = std::string(trace_id);
  tp.parent_id = std::string(parent_id);
  tp.flags = static_cast<uint8_t>(HexValue(flags[0]) * 16 + HexValue(flags[1]));
  return tp;
}

std::string FormatTraceparent(absl::string_view trace_id, absl::string_view span_id,
                              uint8_t flags) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(55);
  out.append("00-");
  out.append(trace_id.data(), trace_id.size());
  out.push_back('-');
  out.append(span_id.data(), span_id.size());
  out.push_back('-');
  out.push_back(kHex[flags >> 4]);
  out.push_back(kHex[flags & 0xf]);
  return out;
}

std::string NewTraceId() { return RandomHex(16); }
std::string NewSpanId() { return RandomHex(8); }

const LogContext& CurrentLogContext() { return current; }

std::shared_ptr<const RequestContext> CurrentRequest() {
  if (current.request == nullptr) return nullptr;
  return current.request->weak_from_this().lock();  // null if not owned by a shared_ptr
}

ContextScope::ContextScope(const RequestContext* request, absl::string_view session_id,
                           absl::string_view turn_id)
    : saved_(current) {
  // Re-installing the current request (the router on a turn's thread) keeps the turn's ids.
  if (request == current.request && session_id.empty() && turn_id.empty()) return;
  current = LogContext{request, session_id, turn_id};
}

ContextScope::~ContextScope() { current = saved_; }

}  // namespace agentd::obs
