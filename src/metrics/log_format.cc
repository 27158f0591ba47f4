#include "metrics/log_format.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include "metrics/trace_context.h"

namespace agentd::obs {
namespace {

constexpr char kTextPattern[] = "%Y-%m-%dT%H:%M:%S.%fZ %^%l%$ %*%v";

// `%*` in the text pattern: "[<request id> trace=<trace id>] " while a request is served.
class RequestIdsFlag final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg&, const std::tm&, spdlog::memory_buf_t& dest) override {
    const RequestContext* r = CurrentLogContext().request;
    if (r == nullptr) return;
    dest.push_back('[');
    dest.append(r->request_id.data(), r->request_id.data() + r->request_id.size());
    static constexpr absl::string_view kTrace = " trace=";
    dest.append(kTrace.data(), kTrace.data() + kTrace.size());
    dest.append(r->trace_id.data(), r->trace_id.data() + r->trace_id.size());
    dest.push_back(']');
    dest.push_back(' ');
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<RequestIdsFlag>();
  }
};

std::string UtcTime(spdlog::log_clock::time_point t) {
  const auto since_epoch = t.time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - secs);
  const std::time_t tt = static_cast<std::time_t>(secs.count());
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof(buf) - n, ".%06ldZ", static_cast<long>(micros.count()));
  return buf;
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    // ordered_json: keys in the documented order (time, level, message, ids, fields).
    nlohmann::ordered_json line = nlohmann::ordered_json::object();
    line["time"] = UtcTime(msg.time);
    const auto level = spdlog::level::to_string_view(msg.level);
    line["level"] = std::string(level.data(), level.size());
    line["message"] = std::string(msg.payload.data(), msg.payload.size());
    const LogContext& ctx = CurrentLogContext();
    nlohmann::ordered_json fields = nlohmann::ordered_json::object();
    if (ctx.request != nullptr) {
      line["request_id"] = ctx.request->request_id;
      line["trace_id"] = ctx.request->trace_id;
      fields["span_id"] = ctx.request->span_id;
      if (!ctx.request->method.empty()) fields["method"] = ctx.request->method;
    } else {
      line["request_id"] = nullptr;
      line["trace_id"] = nullptr;
    }
    if (!ctx.session_id.empty()) fields["session_id"] = std::string(ctx.session_id);
    if (!ctx.turn_id.empty()) fields["turn_id"] = std::string(ctx.turn_id);
    fields["thread"] = msg.thread_id;
    line["fields"] = std::move(fields);
    // Invalid UTF-8 in a message (e.g. echoed client bytes) becomes U+FFFD rather than throwing.
    const std::string text = line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    dest.append(text.data(), text.data() + text.size());
    dest.push_back('\n');
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

std::optional<LogFormat> ParseLogFormat(absl::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return std::nullopt;
}

std::unique_ptr<spdlog::formatter> MakeFormatter(LogFormat format) {
  if (format == LogFormat::kJson) return std::make_unique<JsonFormatter>();
  auto text = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  text->add_flag<RequestIdsFlag>('*').set_pattern(kTextPattern);
  return text;
}

void ConfigureLogging(LogFormat format) { spdlog::set_formatter(MakeFormatter(format)); }

}  // namespace agentd::obs
