#include "common/json_text.h"

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>

namespace agentd::common {
namespace {

// 0: copied as is; 1: escaped; 2: the first byte of a multi-byte UTF-8 sequence (or invalid).
constexpr std::array<uint8_t, 256> MakeClasses() {
  std::array<uint8_t, 256> c{};
  for (int i = 0; i < 0x20; ++i) c[i] = 1;
  c['"'] = 1;
  c['\\'] = 1;
  for (int i = 0x80; i < 0x100; ++i) c[i] = 2;
  return c;
}
constexpr std::array<uint8_t, 256> kClass = MakeClasses();

bool Cont(unsigned char b) { return (b & 0xC0) == 0x80; }

// The length of the valid UTF-8 sequence (RFC 3629: no overlongs, no surrogates, ≤ U+10FFFF)
// starting at p[0] (>= 0x80), or 0 if it is not one. `n` bytes are readable.
size_t Utf8Length(const unsigned char* p, size_t n) {
  const unsigned char b = p[0];
  if (b >= 0xC2 && b <= 0xDF) return n >= 2 && Cont(p[1]) ? 2 : 0;
  if (b >= 0xE0 && b <= 0xEF) {
    if (n < 3 || !Cont(p[1]) || !Cont(p[2])) return 0;
    if (b == 0xE0 && p[1] < 0xA0) return 0;  // overlong
    if (b == 0xED && p[1] > 0x9F) return 0;  // surrogate
    return 3;
  }
  if (b >= 0xF0 && b <= 0xF4) {
    if (n < 4 || !Cont(p[1]) || !Cont(p[2]) || !Cont(p[3])) return 0;
    if (b == 0xF0 && p[1] < 0x90) return 0;  // overlong
    if (b == 0xF4 && p[1] > 0x8F) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

void AppendEscape(std::string* out, unsigned char c) {
  switch (c) {
    case '"': out->append("\\\""); return;
    case '\\': out->append("\\\\"); return;
    case '\b': out->append("\\b"); return;
    case '\t': out->append("\\t"); return;
    case '\n': out->append("\\n"); return;
    case '\f': out->append("\\f"); return;
    case '\r': out->append("\\r"); return;
    default: {
      static constexpr char kHex[] = "0123456789abcdef";
      const char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xF]};
      out->append(u, sizeof(u));
    }
  }
}

}  // namespace

void AppendJsonString(std::string* out, absl::string_view s) {
  const size_t start = out->size();
  out->reserve(start + s.size() + 2);
  out->push_back('"');
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t run = 0;  // start of the pending run of bytes copied as is
  for (size_t i = 0; i < n;) {
    const uint8_t cls = kClass[p[i]];
    if (cls == 0) {
      ++i;
      continue;
    }
    if (cls == 2) {
      const size_t len = Utf8Length(p + i, n - i);
      if (len == 0) {
        // Invalid UTF-8: let nlohmann write this string, so the replacement is exactly its.
        out->resize(start);
        out->append(nlohmann::json(std::string(s)).dump(
            -1, ' ', false, nlohmann::json::error_handler_t::replace));
        return;
      }
      i += len;
      continue;
    }
    out->append(s.data() + run, i - run);
    AppendEscape(out, p[i]);
    run = ++i;
  }
  out->append(s.data() + run, n - run);
  out->push_back('"');
}

std::string DumpJson(const nlohmann::json& v) {
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace agentd::common
