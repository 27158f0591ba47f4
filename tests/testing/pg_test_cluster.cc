// pg_test_cluster start|stop STATE_FILE: the ctest fixture that runs one throwaway PostgreSQL
// cluster for all the PostgreSQL tests of a ctest run (each test case is a process of its own;
// without the fixture each would run initdb). `start` replaces a leftover cluster of the same
// state file first. See testing/pg_cluster.h.
#include <cstdio>
#include <string>

#include "testing/pg_cluster.h"

int main(int argc, char** argv) {
  using agentd::testing::PgCluster;
  const std::string cmd = argc == 3 ? argv[1] : "";
  if (cmd != "start" && cmd != "stop") {
    std::fprintf(stderr, "usage: pg_test_cluster start|stop STATE_FILE\n");
    return 2;
  }
  const std::string state = argv[2];
  if (cmd == "stop") {
    absl::Status st = PgCluster::StopFromState(state);
    if (!st.ok()) std::fprintf(stderr, "pg_test_cluster: %s\n", st.ToString().c_str());
    return st.ok() ? 0 : 1;
  }
  (void)PgCluster::StopFromState(state);  // a cluster a killed run left behind
  absl::StatusOr<std::unique_ptr<PgCluster>> cluster = PgCluster::Start();
  absl::Status st = cluster.ok() ? (*cluster)->Detach(state) : cluster.status();
  if (!st.ok()) {
    std::fprintf(stderr, "pg_test_cluster: %s\n", st.ToString().c_str());
    return 1;
  }
  std::printf("PostgreSQL test cluster on 127.0.0.1:%d (%s)\n", (*cluster)->port(), state.c_str());
  return 0;
}
