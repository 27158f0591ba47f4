// agentd_process_* and agentd_build_info: read at scrape time from /proc and getrusage, so they
// cost nothing between scrapes.
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "metrics/agentd_metrics.h"

#ifndef AGENTD_VERSION
#define AGENTD_VERSION "unknown"
#endif

namespace agentd::metrics {
namespace {

// Resident and virtual size in bytes from /proc/self/statm (pages: size resident ...).
bool ReadStatm(double* resident, double* virtual_size) {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return false;
  unsigned long size = 0, rss = 0;
  const bool ok = std::fscanf(f, "%lu %lu", &size, &rss) == 2;
  std::fclose(f);
  if (!ok) return false;
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  *resident = static_cast<double>(rss) * page;
  *virtual_size = static_cast<double>(size) * page;
  return true;
}

double OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  double n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the directory stream's own fd
}

double CpuSeconds() {
  rusage u{};
  if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
  auto secs = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return secs(u.ru_utime) + secs(u.ru_stime);
}

}  // namespace

void RegisterProcessMetrics(Registry* registry) {
  registry->AddCallback("agentd_process_resident_memory_bytes",
                        "Resident memory size in bytes (/proc/self/statm).", MetricType::kGauge,
                        {}, [](SampleSink& sink) {
                          double rss = 0, vsz = 0;
                          if (ReadStatm(&rss, &vsz)) sink.Add({}, rss);
                        });
  registry->AddCallback("agentd_process_virtual_memory_bytes",
                        "Virtual memory size in bytes (/proc/self/statm).", MetricType::kGauge, {},
                        [](SampleSink& sink) {
                          double rss = 0, vsz = 0;
                          if (ReadStatm(&rss, &vsz)) sink.Add({}, vsz);
                        });
  registry->AddCallback("agentd_process_cpu_seconds_total",
                        "User and system CPU time spent, in seconds.", MetricType::kCounter, {},
                        [](SampleSink& sink) { sink.Add({}, CpuSeconds()); });
  registry->AddCallback("agentd_process_open_fds", "Open file descriptors.", MetricType::kGauge,
                        {}, [](SampleSink& sink) { sink.Add({}, OpenFds()); });
  const double start = static_cast<double>(std::time(nullptr));
  registry->AddCallback("agentd_process_start_time_seconds",
                        "Start time of the process (metrics registration) since the Unix epoch.",
                        MetricType::kGauge, {},
                        [start](SampleSink& sink) { sink.Add({}, start); });
  registry->AddCallback("agentd_build_info", "agentd build information; the value is always 1.",
                        MetricType::kGauge, {"version", "compiler"}, [](SampleSink& sink) {
#if defined(__clang__)
                          const std::string compiler = "clang-" __clang_version__;
#elif defined(__GNUC__)
                          const std::string compiler = "gcc-" __VERSION__;
#else
                          const std::string compiler = "unknown";
#endif
                          sink.Add({AGENTD_VERSION, compiler}, 1);
                        });
}

}  // namespace agentd::metrics
