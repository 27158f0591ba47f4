#include "tools/http_post.h"

#include <curl/curl.h>

#include <algorithm>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace agentd::tools {
namespace {

constexpr absl::Duration kConnectTimeout = absl::Seconds(10);

void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Drops CR/LF so configured header values cannot inject extra header lines.
std::string HeaderSafe(absl::string_view s) {
  return absl::StrReplaceAll(s, {{"\r", ""}, {"\n", ""}});
}

struct Transfer {
  const HttpPostRequest* request = nullptr;
  HttpPostResponse response;
  bool headers_reported = false;
  bool too_large = false;
  bool cancelled = false;
  char errbuf[CURL_ERROR_SIZE] = {};

  void ReportHeaders(CURL* easy) {
    if (headers_reported) return;
    headers_reported = true;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &response.status);
    if (request->on_headers) request->on_headers(response.status, response.headers);
  }

  static size_t OnHeader(char* data, size_t size, size_t n, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    absl::string_view line(data, size * n);
    line = absl::StripTrailingAsciiWhitespace(line);
    if (absl::StartsWith(line, "HTTP/")) {
      t->response.headers.clear();  // a new response (after a 100 Continue or a redirect)
      return size * n;
    }
    const size_t colon = line.find(':');
    if (colon != absl::string_view::npos) {
      t->response.headers[absl::AsciiStrToLower(line.substr(0, colon))] =
          std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    }
    return size * n;
  }

  static size_t OnBody(char* data, size_t size, size_t n, void* userp) {
    auto* t = static_cast<Transfer*>(userp);
    const size_t len = size * n;
    if (t->request->on_body) {
      if (!t->request->on_body(absl::string_view(data, len))) {
        t->response.stopped = true;
        return 0;  // CURLE_WRITE_ERROR: ends the transfer
      }
      return len;
    }
    if (t->response.body.size() + len > t->request->max_body_bytes) {
      t->too_large = true;
      return 0;
    }
    t->response.body.append(data, len);
    return len;
  }

  static int OnProgress(void* userp, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    auto* t = static_cast<Transfer*>(userp);
    if (t->request->cancelled && t->request->cancelled()) {
      t->cancelled = true;
      return 1;  // CURLE_ABORTED_BY_CALLBACK
    }
    return 0;
  }
};

// Bridges OnHeader and OnBody: the body callback reports the headers first.
struct BodyShim {
  Transfer* transfer;
  CURL* easy;
  static size_t OnBody(char* data, size_t size, size_t n, void* userp) {
    auto* shim = static_cast<BodyShim*>(userp);
    shim->transfer->ReportHeaders(shim->easy);
    return Transfer::OnBody(data, size, n, shim->transfer);
  }
};

}  // namespace

absl::StatusOr<HttpPostResponse> HttpPost(const HttpPostRequest& request) {
  GlobalInitOnce();
  const absl::Duration left = request.deadline - absl::Now();
  if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError("deadline passed before the request");
  if (request.cancelled && request.cancelled()) return absl::CancelledError("cancelled before the request");

  CURL* easy = curl_easy_init();
  if (easy == nullptr) return absl::InternalError("curl_easy_init failed");
  Transfer t;
  t.request = &request;
  BodyShim shim{&t, easy};
  curl_slist* headers = nullptr;
  for (const auto& [name, value] : request.headers) {
    headers = curl_slist_append(headers, absl::StrCat(HeaderSafe(name), ": ", HeaderSafe(value)).c_str());
  }
  headers = curl_slist_append(headers, "Expect:");  // no 100-continue round trip

  curl_easy_setopt(easy, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  if (request.method == "POST") {
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
  } else if (request.method == "GET") {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  if (request.method != "GET") {
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data());
  }
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &Transfer::OnHeader);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &BodyShim::OnBody);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &shim);
  curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, &Transfer::OnProgress);
  curl_easy_setopt(easy, CURLOPT_XFERINFODATA, &t);
  curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, t.errbuf);
  const long ms = std::max<long>(1, static_cast<long>(absl::ToInt64Milliseconds(left)));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, ms);
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   std::min(ms, static_cast<long>(absl::ToInt64Milliseconds(kConnectTimeout))));

  const CURLcode code = curl_easy_perform(easy);
  if (code == CURLE_OK || code == CURLE_WRITE_ERROR) t.ReportHeaders(easy);
  const std::string detail = t.errbuf[0] != '\0' ? t.errbuf : curl_easy_strerror(code);
  curl_easy_cleanup(easy);
  curl_slist_free_all(headers);

  if (t.response.stopped) return std::move(t.response);
  if (t.cancelled) return absl::CancelledError("the call was cancelled");
  if (t.too_large) {
    return absl::ResourceExhaustedError(
        absl::StrCat("response body larger than ", request.max_body_bytes, " bytes"));
  }
  if (code == CURLE_OPERATION_TIMEDOUT) {
    if (absl::Now() >= request.deadline - absl::Milliseconds(50)) {
      return absl::DeadlineExceededError("deadline exceeded");
    }
    return absl::UnavailableError(absl::StrCat("connection timed out: ", detail));
  }
  if (code != CURLE_OK) {
    if (t.headers_reported && t.response.status >= 200) {
      return absl::UnavailableError(absl::StrCat("response was cut: ", detail));
    }
    return absl::UnavailableError(absl::StrCat("connection error: ", detail));
  }
  return std::move(t.response);
}

}  // namespace agentd::tools
