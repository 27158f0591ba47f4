// The JSON Schema subset (src/runtime/json_schema.h): unit tests, and every case of Debian's
// json-schema-test-suite (draft 7) for the supported keywords.
#include "runtime/json_schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#ifndef JSON_SCHEMA_TEST_SUITE_DIR
#define JSON_SCHEMA_TEST_SUITE_DIR "/usr/share/json-schema-test-suite/tests/draft7"
#endif

namespace agentd::runtime {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

JsonSchema MustCompile(const std::string& text) {
  auto schema = JsonSchema::CompileText(text);
  EXPECT_TRUE(schema.ok()) << schema.status() << " for " << text;
  return schema.ok() ? *std::move(schema) : JsonSchema();
}

std::string Errors(const JsonSchema& schema, const std::string& instance) {
  return JsonSchema::Describe(schema.Validate(json::parse(instance)));
}

// ---- Compile ------------------------------------------------------------------------------

TEST(JsonSchemaCompileTest, RejectsUnsupportedKeywordsNamingKeywordAndPath) {
  auto st = JsonSchema::CompileText(
                R"({"type":"object","properties":{"tags":{"type":"array","uniqueItems":true}}})")
                .status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("unsupported JSON Schema keyword \"uniqueItems\""));
  EXPECT_THAT(std::string(st.message()), HasSubstr("/properties/tags"));

  for (const char* kw : {"$ref", "patternProperties", "not", "if", "dependencies", "multipleOf",
                         "minItems", "definitions", "$defs", "propertyNames", "contains"}) {
    json schema = {{kw, json::object()}};
    auto compiled = JsonSchema::Compile(schema);
    ASSERT_FALSE(compiled.ok()) << kw;
    EXPECT_THAT(std::string(compiled.status().message()), HasSubstr(std::string("\"") + kw + "\""));
    EXPECT_THAT(std::string(compiled.status().message()), HasSubstr("unsupported"));
  }
}

TEST(JsonSchemaCompileTest, RejectsTupleItemsAndNestedId) {
  auto st = JsonSchema::CompileText(R"({"items":[{"type":"string"}]})").status();
  EXPECT_THAT(std::string(st.message()), HasSubstr("unsupported JSON Schema keyword \"items\""));
  EXPECT_TRUE(JsonSchema::CompileText(R"({"$id":"https://x/y","type":"object"})").ok());
  st = JsonSchema::CompileText(R"({"properties":{"a":{"$id":"#a"}}})").status();
  EXPECT_THAT(std::string(st.message()), HasSubstr("\"$id\" at /properties/a"));
}

TEST(JsonSchemaCompileTest, AcceptsAnnotations) {
  EXPECT_TRUE(JsonSchema::CompileText(R"({
    "$schema":"http://json-schema.org/draft-07/schema#","title":"t","description":"d",
    "$comment":"c","default":{},"examples":[1],
    "properties":{"when":{"type":"string","format":"date-time","description":"x"}}})")
                  .ok());
}

TEST(JsonSchemaCompileTest, RejectsMalformedKeywordValues) {
  struct Case {
    const char* schema;
    const char* expect;
  } cases[] = {
      {R"({"type":"float"})", "\"type\""},
      {R"({"type":[]})", "\"type\""},
      {R"({"properties":[1]})", "\"properties\""},
      {R"({"required":"a"})", "\"required\""},
      {R"({"minimum":"1"})", "\"minimum\""},
      {R"({"exclusiveMinimum":true})", "\"exclusiveMinimum\""},
      {R"({"minLength":-1})", "\"minLength\""},
      {R"({"maxLength":1.5})", "\"maxLength\""},
      {R"({"pattern":"(unclosed"})", "\"pattern\""},
      {R"({"anyOf":[]})", "\"anyOf\""},
      {R"({"enum":3})", "\"enum\""},
      {R"({"additionalProperties":3})", "a schema must be"},
      {R"(42)", "a schema must be"},
  };
  for (const Case& c : cases) {
    auto st = JsonSchema::CompileText(c.schema).status();
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << c.schema;
    EXPECT_THAT(std::string(st.message()), HasSubstr(c.expect)) << c.schema;
  }
  EXPECT_THAT(std::string(JsonSchema::CompileText("{nope").status().message()),
              HasSubstr("not valid JSON"));
}

// ---- Validate -----------------------------------------------------------------------------

TEST(JsonSchemaValidateTest, ReportsErrorsWithJsonPointers) {
  JsonSchema s = MustCompile(R"({
    "type":"object",
    "properties":{
      "city":{"type":"string","minLength":2},
      "days":{"type":"integer","minimum":1,"maximum":14},
      "units":{"enum":["c","f"]},
      "tags":{"type":"array","items":{"type":"string","pattern":"^[a-z]+$"}},
      "a/b":{"const":1}
    },
    "required":["city"],
    "additionalProperties":false})");
  EXPECT_THAT(s.Validate(json::parse(R"({"city":"Paris","days":3,"units":"c"})")), IsEmpty());
  EXPECT_EQ(Errors(s, R"({"days":3})"), "(root): missing required property \"city\"");
  EXPECT_EQ(Errors(s, R"({"city":"P"})"), "/city: must be at least 2 characters long");
  EXPECT_EQ(Errors(s, R"({"city":"Paris","days":0})"), "/days: must be >= 1");
  EXPECT_EQ(Errors(s, R"({"city":"Paris","days":2.5})"),
            "/days: must be of type integer, not number");
  EXPECT_EQ(Errors(s, R"({"city":"Paris","units":"k"})"), "/units: must be one of [\"c\",\"f\"]");
  EXPECT_EQ(Errors(s, R"({"city":"Paris","tags":["ok","NO"]})"),
            "/tags/1: must match pattern \"^[a-z]+$\"");
  EXPECT_EQ(Errors(s, R"({"city":"Paris","a/b":2})"), "/a~1b: must equal 1");
  EXPECT_EQ(Errors(s, R"({"city":"Paris","extra":1})"),
            "/extra: property \"extra\" is not allowed");
  EXPECT_EQ(Errors(s, R"([1])"), "(root): must be of type object, not array");
}

TEST(JsonSchemaValidateTest, StopsAtMaxErrorsInDocumentOrder) {
  JsonSchema s = MustCompile(R"({"type":"array","items":{"type":"integer"}})");
  EXPECT_THAT(s.Validate(json::parse(R"(["a","b","c","d","e","f","g"])")), SizeIs(5));
  std::vector<SchemaError> two = s.Validate(json::parse(R"(["a","b","c"])"), 2);
  ASSERT_THAT(two, SizeIs(2));
  EXPECT_EQ(two[0].pointer, "/0");
  EXPECT_EQ(two[1].pointer, "/1");
}

TEST(JsonSchemaValidateTest, IntegerAcceptsWholeFloatsAndLengthCountsCodePoints) {
  JsonSchema integer = MustCompile(R"({"type":"integer"})");
  EXPECT_TRUE(integer.Accepts(json::parse("1.0")));
  EXPECT_FALSE(integer.Accepts(json::parse("1.5")));
  JsonSchema two = MustCompile(R"({"maxLength":2})");
  EXPECT_TRUE(two.Accepts(json("\xC3\xA9\xC3\xA9")));  // "éé": 2 code points, 4 bytes
  EXPECT_FALSE(two.Accepts(json("abc")));
}

TEST(JsonSchemaValidateTest, CombinatorsAndBooleanSchemas) {
  JsonSchema one = MustCompile(R"({"oneOf":[{"type":"integer"},{"minimum":2}]})");
  EXPECT_TRUE(one.Accepts(1));
  EXPECT_TRUE(one.Accepts(2.5));
  EXPECT_EQ(Errors(one, "3"),
            "(root): must match exactly one of the oneOf schemas (matches #0, #1)");
  JsonSchema any = MustCompile(R"({"anyOf":[{"type":"string"},{"type":"null"}]})");
  EXPECT_TRUE(any.Accepts(nullptr));
  EXPECT_EQ(Errors(any, "1"), "(root): must match at least one of the anyOf schemas");
  JsonSchema never = MustCompile("false");
  EXPECT_FALSE(never.Accepts(json::object()));
  EXPECT_TRUE(MustCompile("true").Accepts(42));
  EXPECT_TRUE(JsonSchema().Accepts(json::array()));
}

TEST(JsonSchemaValidateTest, PatternIsAnUnanchoredSearchWithAnInputLimit) {
  JsonSchema s = MustCompile(R"({"pattern":"b+"})");
  EXPECT_TRUE(s.Accepts("abba"));
  EXPECT_FALSE(s.Accepts("aaa"));
  EXPECT_TRUE(s.Accepts(42)) << "pattern applies to strings only";
  const std::string huge(JsonSchema::kMaxPatternInputBytes + 1, 'b');
  EXPECT_THAT(Errors(s, json(huge).dump()), HasSubstr("too long"));
}

TEST(JsonNestingDepthTest, CountsBracketsOutsideStrings) {
  EXPECT_EQ(JsonNestingDepth("42"), 0u);
  EXPECT_EQ(JsonNestingDepth(R"({"a":[1,{"b":[]}]})"), 4u);
  EXPECT_EQ(JsonNestingDepth(R"({"a":"[[[{{{\"[["})"), 1u);
  const std::string deep =
      std::string(kMaxJsonDepth + 1, '[') + std::string(kMaxJsonDepth + 1, ']');
  EXPECT_EQ(JsonNestingDepth(deep), kMaxJsonDepth + 1);
  EXPECT_THAT(std::string(JsonSchema::CompileText(std::string(200, '{')).status().message()),
              HasSubstr("nests deeper than"));
}

// ---- Debian's json-schema-test-suite (draft 7) --------------------------------------------

TEST(JsonSchemaSuiteTest, Draft7CasesOfTheSupportedKeywords) {
  const std::filesystem::path dir = JSON_SCHEMA_TEST_SUITE_DIR;
  ASSERT_TRUE(std::filesystem::is_directory(dir))
      << dir << " is missing: install the json-schema-test-suite package (scripts/setup.sh)";
  const char* files[] = {"type",
                         "properties",
                         "required",
                         "additionalProperties",
                         "items",
                         "enum",
                         "const",
                         "minimum",
                         "maximum",
                         "exclusiveMinimum",
                         "exclusiveMaximum",
                         "minLength",
                         "maxLength",
                         "pattern",
                         "anyOf",
                         "oneOf",
                         "allOf"};
  int run = 0, skipped_groups = 0, skipped_tests = 0;
  for (const char* name : files) {
    std::ifstream in(dir / (std::string(name) + ".json"));
    ASSERT_TRUE(in.good()) << name;
    const json groups = json::parse(in);
    for (const json& group : groups) {
      const std::string where =
          std::string(name) + ".json: " + group.at("description").get<std::string>();
      auto schema = JsonSchema::Compile(group.at("schema"));
      if (!schema.ok()) {
        // Only schemas that use keywords outside the subset may be skipped (e.g. the array
        // form of items, patternProperties, maxItems); anything else is a bug.
        ASSERT_THAT(std::string(schema.status().message()),
                    HasSubstr("unsupported JSON Schema keyword"))
            << where << ": " << schema.status();
        ++skipped_groups;
        skipped_tests += static_cast<int>(group.at("tests").size());
        std::cout << "[ skipped  ] " << where << " (" << schema.status().message() << ")\n";
        continue;
      }
      for (const json& t : group.at("tests")) {
        const bool valid = t.at("valid").get<bool>();
        EXPECT_EQ(schema->Accepts(t.at("data")), valid)
            << where << " / " << t.at("description").get<std::string>() << ": "
            << t.at("data").dump() << " " << JsonSchema::Describe(schema->Validate(t.at("data")));
        ++run;
      }
    }
  }
  std::cout << "[ suite    ] " << run << " cases run, " << skipped_tests << " cases in "
            << skipped_groups << " schema groups skipped (unsupported keywords)\n";
  EXPECT_GE(run, 180);
  EXPECT_LT(skipped_tests, 30);
}

}  // namespace
}  // namespace agentd::runtime
