#include "testing/metrics_scrape.h"

#include <curl/curl.h>

#include <optional>
#include <sstream>

namespace agentd::testing {
namespace {

size_t AppendBody(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

/// The text of http://<address>/metrics, or nothing when it cannot be read.
std::optional<std::string> Fetch(const std::string& address) {
  std::string body;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return std::nullopt;
  const std::string url = "http://" + address + "/metrics";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &AppendBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 2000L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) return std::nullopt;
  return body;
}

}  // namespace

double ScrapeGauge(const std::string& address, const std::string& name) {
  const std::optional<std::string> body = Fetch(address);
  if (!body.has_value()) return -1;
  std::istringstream lines(*body);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
  }
  return -1;
}

double ScrapeSum(const std::string& address, const std::string& name) {
  const std::optional<std::string> body = Fetch(address);
  if (!body.has_value()) return -1;
  std::istringstream lines(*body);
  double sum = 0;
  bool found = false;
  for (std::string line; std::getline(lines, line);) {
    if (line.compare(0, name.size(), name) != 0 || line.size() <= name.size()) continue;
    const char next = line[name.size()];
    if (next != ' ' && next != '{') continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
    found = true;
  }
  return found ? sum : -1;
}

}  // namespace agentd::testing
