// PostgreSQL cluster figures for bench/replica_bench.cc: the CPU the whole cluster has used
// (postmaster and children, from /proc) and pg_stat_wal's counters. Linux only; thread-compatible.
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "testing/pg_cluster.h"

namespace agentd::bench {

/// ppid and CPU ticks of one process, from /proc/PID/stat.
struct ProcTicks {
  long ppid = 0;
  double own = 0;       // utime + stime
  double children = 0;  // cutime + cstime: children it has waited for
};

inline std::optional<ProcTicks> ReadProcTicks(long pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::string stat;
  if (!std::getline(in, stat)) return std::nullopt;
  const size_t paren = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (paren == std::string::npos) return std::nullopt;
  char state = 0;
  long ppid = 0;
  unsigned long long skip = 0, utime = 0, stime = 0;
  long long cutime = 0, cstime = 0;
  // Fields 3 (state) .. 17 (cstime); 5..13 are skipped.
  const int n =
      std::sscanf(stat.c_str() + paren + 1,
                  " %c %ld %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %lld %lld",
                  &state, &ppid, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip, &skip,
                  &utime, &stime, &cutime, &cstime);
  if (n != 15) return std::nullopt;
  return ProcTicks{ppid, static_cast<double>(utime + stime), static_cast<double>(cutime + cstime)};
}

/// CPU seconds the cluster has used: the postmaster, the children it has reaped (its cutime) and
/// the children still running (backends, walwriter, checkpointer...). 0 if the postmaster is gone.
inline double PgClusterCpuSeconds(long postmaster) {
  const std::optional<ProcTicks> pm = ReadProcTicks(postmaster);
  if (!pm) return 0;
  double ticks = pm->own + pm->children;
  if (DIR* proc = opendir("/proc")) {
    while (dirent* e = readdir(proc)) {
      char* end = nullptr;
      const long pid = std::strtol(e->d_name, &end, 10);
      if (*end != '\0' || pid <= 0) continue;
      const std::optional<ProcTicks> child = ReadProcTicks(pid);
      if (child && child->ppid == postmaster) ticks += child->own;
    }
    closedir(proc);
  }
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

/// The postmaster's pid (first line of postmaster.pid in the data directory), or -1.
inline long PostmasterPid(testing::PgCluster& cluster) {
  absl::StatusOr<std::string> data = cluster.Query("postgres", "SHOW data_directory");
  if (!data.ok()) return -1;
  std::ifstream in(*data + "/postmaster.pid");
  long pid = -1;
  in >> pid;
  return pid;
}

/// pg_stat_wal's wal_sync and wal_bytes (cluster-wide counters).
struct WalStats {
  double syncs = 0, bytes = 0;
};
inline WalStats ReadWalStats(testing::PgCluster& cluster) {
  absl::StatusOr<std::string> row =
      cluster.Query("postgres", "SELECT wal_sync || ' ' || wal_bytes FROM pg_stat_wal");
  WalStats w;
  if (row.ok()) std::sscanf(row->c_str(), "%lf %lf", &w.syncs, &w.bytes);
  return w;
}

/// "t_123_4" from "... dbname=t_123_4 ...".
inline std::string DbName(const std::string& dsn) {
  const size_t at = dsn.find("dbname=");
  if (at == std::string::npos) return "";
  const size_t begin = at + 7;
  return dsn.substr(begin, dsn.find(' ', begin) - begin);
}

}  // namespace agentd::bench
