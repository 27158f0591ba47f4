// Log line formats for spdlog's default logger: `text` (human, the default) and `json` (one
// object per line, for log collectors). Both add the current request's ids (trace_context.h) to
// every line logged while a request is being served, on whichever thread serves it.
//
// text: `2024-05-01T12:00:00.123456Z info [req_… trace=4bf9…] message`
// json: {"time":"2024-05-01T12:00:00.123456Z","level":"info","message":"…",
//        "request_id":"req_…","trace_id":"4bf9…","fields":{"span_id":"…","method":"RunTurn",
//        "session_id":"…","turn_id":"…","thread":1234}}
//        request_id and trace_id are null outside a request; `fields` holds what is known.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"

namespace spdlog {
class formatter;
}

namespace agentd::obs {

enum class LogFormat { kText, kJson };

/// "text" or "json"; nullopt otherwise.
std::optional<LogFormat> ParseLogFormat(absl::string_view name);

/// Sets the formatter of every sink of spdlog's default logger (call at startup, before other
/// threads log).
void ConfigureLogging(LogFormat format);

/// A new formatter of the given format (for sinks added later, e.g. in tests).
std::unique_ptr<spdlog::formatter> MakeFormatter(LogFormat format);

}  // namespace agentd::obs
