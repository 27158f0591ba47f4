// Writing JSON text directly into a string, for hot paths where building a nlohmann::json tree
// only to dump it costs more than the work itself (the model request body of every step).
// The output is byte-identical to nlohmann::json's
// `dump(-1, ' ', /*ensure_ascii=*/false, nlohmann::json::error_handler_t::replace)`, so either
// may write a body and tests may compare them.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace agentd::common {

/// Appends `s` as a JSON string literal, quotes included. `"`, `\` and control characters are
/// escaped (\b \t \n \f \r, others as \u00xx); valid UTF-8 is copied as is. A string holding
/// invalid UTF-8 is written the way nlohmann::json's replace handler writes it (U+FFFD in place
/// of each invalid sequence).
void AppendJsonString(std::string* out, absl::string_view s);

/// `v` as compact JSON text, invalid UTF-8 in its strings replaced (U+FFFD) instead of thrown
/// on: for anything sent or stored that may carry bytes from outside (paths, tool output).
std::string DumpJson(const nlohmann::json& v);

}  // namespace agentd::common
