// A throwaway PostgreSQL 15 cluster for tests: initdb into a temp dir, a server on 127.0.0.1 at a
// free port with a socket dir of its own, one fresh database per caller, stopped (pg_ctl stop
// -m fast) and deleted at the end.
//
// One cluster per test binary: PgCluster::Shared() starts it on first use and a gtest
// Environment (registered by this file) stops it after the last test. Under ctest, which runs
// every test case in a process of its own, a fixture (pg_test_cluster start/stop, see
// tests/CMakeLists.txt) starts one cluster for the whole run and AGENTD_TEST_PG_CLUSTER names its
// state file: Shared() then attaches to it instead of running initdb per test. PostgreSQL refuses to run as root: when the test runs as uid 0, the data dir
// belongs to the `postgres` user and initdb/pg_ctl run through `runuser -u postgres --`.
//
// When the PostgreSQL server binaries are missing (AGENTD_PG_BIN, default
// /usr/lib/postgresql/15/bin), Shared() fails with a message saying to install postgresql-15:
// a test that needs the cluster fails, it never passes silently.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace agentd::testing {

class PgCluster {
 public:
  /// The binary's shared cluster, started on first call (thread-safe). The error (binaries
  /// missing, initdb or start failed, with the server log's tail) is returned on every call.
  static absl::StatusOr<PgCluster*> Shared();

  /// Starts a cluster of its own (tests of cluster behaviour; most tests use Shared()).
  static absl::StatusOr<std::unique_ptr<PgCluster>> Start();
  /// Attaches to the cluster described by `state_file` (written by Detach) without owning it:
  /// the destructor leaves it running.
  static absl::StatusOr<std::unique_ptr<PgCluster>> Attach(const std::string& state_file);
  /// Writes this cluster's port and directories to `state_file` and gives up ownership: the
  /// server keeps running after this object is gone, until StopFromState.
  absl::Status Detach(const std::string& state_file);
  /// Stops and removes the cluster described by `state_file`, and the file.
  static absl::Status StopFromState(const std::string& state_file);

  /// Stops the server (pg_ctl stop -m fast) and removes the directory, if it owns them.
  ~PgCluster();
  PgCluster(const PgCluster&) = delete;
  PgCluster& operator=(const PgCluster&) = delete;

  /// Creates an empty database (t_<n>) and returns its libpq connection string.
  absl::StatusOr<std::string> NewDatabase();
  /// A connection string of database `dbname` on this cluster.
  std::string Dsn(const std::string& dbname) const;
  /// Runs one SQL statement (no parameters) as the superuser on database `dbname`.
  absl::Status Exec(const std::string& dbname, const std::string& sql);
  /// Runs one query as the superuser on `dbname` and returns its first cell as text ("" when
  /// there is no row).
  absl::StatusOr<std::string> Query(const std::string& dbname, const std::string& sql);

  int port() const { return port_; }

  /// Stops the shared cluster, if it was started (the Environment calls this at exit).
  static void StopShared();

 private:
  PgCluster() = default;
  absl::Status Init();
  /// Runs a PostgreSQL server binary (as `postgres` when root).
  absl::Status RunPg(const std::string& binary, const std::string& args);

  std::string bin_dir_;
  std::string dir_;  // owned temp dir: data/, the socket, the server log
  int port_ = 0;
  bool started_ = false;
  bool owned_ = true;  // false when attached or detached: someone else stops it
  absl::Mutex mu_;
  int64_t next_db_ ABSL_GUARDED_BY(mu_) = 0;
};

/// A fresh database on the shared cluster, or "" after recording a test failure that says why.
std::string NewPgDatabaseOrFail();

}  // namespace agentd::testing
