// JsonSchema: a compiled JSON Schema of the subset agentd supports (docs/context.md), used for
// tool arguments and an agent's output_schema_json.
//
// Supported keywords: type (a name or an array of names; "integer" accepts 1.0), properties,
// required, additionalProperties (boolean or schema), items (one schema; the array form is not
// supported), enum, const, minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers),
// minLength, maxLength (in Unicode code points), pattern (ECMAScript, unanchored search),
// anyOf, oneOf, allOf, and the boolean schemas true/false. Annotations that are accepted and
// ignored: title, description, default, examples, format, $comment, $schema, and $id at the root.
// Any other keyword is rejected when the schema is compiled, so a schema never silently means
// less than its author wrote.
//
// Threading: a compiled JsonSchema is immutable; Validate() may be called from any thread.
// Copies share the compiled form.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace agentd::runtime {

/// Deepest nesting of arrays and objects agentd parses from a model or a schema: deeper
/// documents are refused before parsing (parsing, validating and printing JSON recurse).
inline constexpr size_t kMaxJsonDepth = 128;

/// The deepest nesting of arrays and objects in the JSON `text` (string contents skipped; the
/// text is not otherwise checked). Linear, no recursion.
size_t JsonNestingDepth(absl::string_view text);

/// One way an instance fails a schema.
struct SchemaError {
  std::string pointer;  // JSON pointer into the instance ("" = the root), RFC 6901
  std::string message;  // e.g. "must be >= 0"
};

class JsonSchema {
 public:
  /// How many errors Validate() reports by default.
  static constexpr size_t kDefaultMaxErrors = 5;
  /// Strings longer than this (bytes) fail a `pattern` instead of being searched: the standard
  /// library's regex engine recurses per character.
  static constexpr size_t kMaxPatternInputBytes = 4096;

  /// A schema that accepts everything (the empty schema {}).
  JsonSchema();

  /// Compiles `schema`. INVALID_ARGUMENT naming the keyword and its location (a JSON pointer
  /// into the schema) for an unsupported keyword ("unsupported JSON Schema keyword ...") or a
  /// keyword with a malformed value.
  static absl::StatusOr<JsonSchema> Compile(const nlohmann::json& schema);
  /// Parses `text` as JSON and compiles it. INVALID_ARGUMENT if it is not JSON or nests deeper
  /// than kMaxJsonDepth.
  static absl::StatusOr<JsonSchema> CompileText(absl::string_view text);

  /// The first `max_errors` errors of `instance` (empty = valid), in document order.
  std::vector<SchemaError> Validate(const nlohmann::json& instance,
                                    size_t max_errors = kDefaultMaxErrors) const;
  bool Accepts(const nlohmann::json& instance) const { return Validate(instance, 1).empty(); }

  /// "/a/b: must be >= 0; (root): missing required property \"c\"".
  static std::string Describe(const std::vector<SchemaError>& errors);

  struct Node;  // the compiled form (json_schema.cc)

 private:
  explicit JsonSchema(std::shared_ptr<const Node> root) : root_(std::move(root)) {}
  std::shared_ptr<const Node> root_;
};

}  // namespace agentd::runtime
