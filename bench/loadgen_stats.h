// loadgen and mock-openai helpers: fixed-size texts; latency samples and their summaries
// (overall and by turn index within a session); readings of another process from /proc (CPU,
// bytes written) and of a data dir's size. Header-only, no gRPC.
#pragma once

#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "bench_util.h"

namespace agentd::bench::loadgen {

/// Exactly `bytes` of text: `head`, then `filler` repeated (cut at `bytes`).
inline std::string FilledText(const std::string& head, size_t bytes,
                              const std::string& filler = " the quick brown fox jumps over.") {
  std::string text = head;
  while (text.size() < bytes) text += filler;
  text.resize(bytes);
  return text;
}

/// One finished step: its 1-based turn index within its session and its latency.
struct Sample {
  int32_t turn_index = 0;
  float ms = 0;
};

struct LatencySummary {
  size_t n = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0;
};

inline LatencySummary Summarize(std::vector<double> ms) {
  LatencySummary s;
  s.n = ms.size();
  if (ms.empty()) return s;
  s.p50 = Percentile(ms, 0.50);
  s.p90 = Percentile(ms, 0.90);
  s.p99 = Percentile(ms, 0.99);
  s.max = *std::max_element(ms.begin(), ms.end());
  return s;
}

/// Turn-index buckets for the report: 1, 2-10, 11-100, 101-1000, 1001+.
struct Bucket {
  int lo, hi;  // inclusive
  std::string Label() const {
    if (lo == hi) return std::to_string(lo);
    if (hi == INT32_MAX) return std::to_string(lo) + "+";
    return std::to_string(lo) + "-" + std::to_string(hi);
  }
};
inline const std::vector<Bucket>& Buckets() {
  static const std::vector<Bucket> kBuckets = {
      {1, 1}, {2, 10}, {11, 100}, {101, 1000}, {1001, INT32_MAX}};
  return kBuckets;
}

/// Summaries of every bucket that has samples (label → summary, in bucket order).
inline std::vector<std::pair<std::string, LatencySummary>> ByBucket(
    const std::vector<Sample>& samples) {
  std::vector<std::vector<double>> per(Buckets().size());
  for (const Sample& s : samples) {
    for (size_t b = 0; b < Buckets().size(); ++b) {
      if (s.turn_index >= Buckets()[b].lo && s.turn_index <= Buckets()[b].hi) {
        per[b].push_back(s.ms);
        break;
      }
    }
  }
  std::vector<std::pair<std::string, LatencySummary>> out;
  for (size_t b = 0; b < per.size(); ++b) {
    if (!per[b].empty()) out.emplace_back(Buckets()[b].Label(), Summarize(std::move(per[b])));
  }
  return out;
}

/// Writes `turn_index,n,p50_ms,p90_ms,p99_ms,max_ms` per turn index (for plotting). False if
/// the file cannot be written.
inline bool WriteIndexCsv(const std::string& path, const std::vector<Sample>& samples) {
  std::map<int32_t, std::vector<double>> per;
  for (const Sample& s : samples) per[s.turn_index].push_back(s.ms);
  std::ofstream out(path);
  out << "turn_index,n,p50_ms,p90_ms,p99_ms,max_ms\n";
  for (auto& [index, ms] : per) {
    const LatencySummary s = Summarize(std::move(ms));
    out << index << ',' << s.n << ',' << s.p50 << ',' << s.p90 << ',' << s.p99 << ',' << s.max
        << '\n';
  }
  return static_cast<bool>(out);
}

/// What /proc says about another process at one moment.
struct ProcReading {
  double cpu_s = 0;             // utime + stime
  int64_t write_bytes = -1;     // /proc/PID/io write_bytes (-1: not readable)
};

/// Reads /proc/PID/stat (and io); nullopt if the process does not exist.
inline std::optional<ProcReading> ReadProc(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return std::nullopt;
  // Fields after the parenthesised command name (which may hold spaces): state is field 3,
  // utime field 14, stime field 15.
  const size_t close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 2));
  std::vector<std::string> fields;
  for (std::string f; rest >> f && fields.size() < 13;) fields.push_back(f);
  if (fields.size() < 13) return std::nullopt;
  ProcReading r;
  const double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  r.cpu_s = (std::stod(fields[11]) + std::stod(fields[12])) / tick;
  std::ifstream io("/proc/" + std::to_string(pid) + "/io");
  for (std::string key; io >> key;) {
    int64_t value = 0;
    io >> value;
    if (key == "write_bytes:") r.write_bytes = value;
  }
  return r;
}

/// Total size of the regular files under `dir` (-1 if it cannot be walked).
inline int64_t DirBytes(const std::string& dir) {
  std::error_code ec;
  int64_t total = 0;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file(ec)) total += static_cast<int64_t>(it->file_size(ec));
  }
  return ec ? -1 : total;
}

}  // namespace agentd::bench::loadgen
