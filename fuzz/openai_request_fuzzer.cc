// Fuzzes the OpenAI-compatible door's request parsing (openai/http_util.h ParseBody and
// openai/response_input.h ParseResponseRequest, the POST /v1/responses body) on arbitrary bytes,
// and openai/response_view.h ParseResponseId on the same bytes as a response id.
//
// Invariants: failures are INVALID_ARGUMENT; a body that parses gives the same request after
// nlohmann::json's dump + parse (the door may log or re-read it); ImplicitAgentId is stable.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "fuzz_util.h"
#include "nlohmann/json.hpp"
#include "openai/http_util.h"
#include "openai/response_input.h"
#include "openai/response_view.h"

namespace openai = agentd::openai;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (size <= 256) (void)openai::ParseResponseId(text);

  absl::StatusOr<nlohmann::json> body = openai::ParseBody(text);
  if (!body.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(body.status()), "a bad body is not INVALID_ARGUMENT");
    return 0;
  }
  std::string param;
  absl::StatusOr<openai::ResponseRequest> request = openai::ParseResponseRequest(*body, &param);
  if (body->is_object() && body->contains("input")) {
    (void)openai::ContentText((*body)["input"], "input");
  }
  if (!request.ok()) {
    FUZZ_CHECK(absl::IsInvalidArgument(request.status()), "a bad request is not INVALID_ARGUMENT");
    return 0;
  }
  // ParseBody produced the json; dumping it must give text that parses to the same request.
  // (Invalid UTF-8 in strings makes dump() throw; the door never dumps client JSON that way.)
  std::string dumped;
  try {
    dumped = body->dump();
  } catch (const nlohmann::json::exception&) {
    return 0;
  }
  absl::StatusOr<nlohmann::json> again = openai::ParseBody(dumped);
  FUZZ_CHECK(again.ok(), "dumped JSON does not parse");
  std::string param2;
  absl::StatusOr<openai::ResponseRequest> request2 = openai::ParseResponseRequest(*again, &param2);
  FUZZ_CHECK(request2.ok(), "a request stopped parsing after dump + parse");
  FUZZ_CHECK(request2->model == request->model && request2->input.size() == request->input.size() &&
                 request2->tools.size() == request->tools.size() &&
                 request2->tool_results.size() == request->tool_results.size() &&
                 request2->approvals.size() == request->approvals.size() &&
                 request2->instructions == request->instructions &&
                 request2->stream == request->stream && request2->store == request->store,
             "the request changed through dump + parse");
  FUZZ_CHECK(openai::ImplicitAgentId(*request) == openai::ImplicitAgentId(*request2),
             "ImplicitAgentId is not stable");
  return 0;
}
