// loadgen's floor probe: the least a step can cost on this machine, measured in the same run just
// before the measured loop, so a step's latency can be split into what gRPC and the disk take
// anyway and what agentd adds.
//   gRPC floor:  a closed loop of the cheapest unary call agentd serves
//                (/grpc.health.v1.Health/Check, empty request) over the steps' own channels, with
//                the callback API the steps use;
//   fsync floor: 2 KB appends each followed by fdatasync, in a temp file next to agentd's data
//                dir (its parent: the same filesystem, never inside agentd's files).
#pragma once

#include <grpcpp/channel.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "loadgen_stats.h"

namespace agentd::bench::loadgen {

struct FloorOptions {
  int64_t rpc_calls = 1000;  // Health/Check calls in all
  int rpc_in_flight = 1;     // chains; each issues its next call from the completion callback
  std::chrono::milliseconds rpc_timeout{30000};  // deadline per call
  int server_pid = 0;                            // > 0: agentd's CPU per call from /proc
  std::string data_dir;                          // agentd's data dir; empty: no fsync floor
};

struct RpcFloor {
  int64_t calls = 0;  // answered OK (SERVING)
  int in_flight = 0;
  LatencySummary latency;  // ms per call
  double per_s = 0;
  double loadgen_cpu_ms = 0;            // this process's CPU per call
  std::optional<double> server_cpu_ms;  // agentd's CPU per call (with server_pid)
};

struct FsyncFloor {
  LatencySummary latency;  // ms per 2 KB append + fdatasync
};

struct Floor {
  RpcFloor rpc;
  std::optional<FsyncFloor> fsync;  // unset without a data dir, or if it could not be measured
};

/// Runs the gRPC floor, then the fsync floor. False if a Health/Check call failed or did not say
/// SERVING (`error` says how many and the first failure); a fsync floor that cannot be measured
/// is only reported on stderr and left unset.
bool MeasureFloor(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                  const FloorOptions& options, Floor* floor, std::string* error);

/// One human line: "floor: gRPC Health/Check p50 ... ms p99 ... ms (...), fdatasync 2 KB ...".
std::string DescribeFloor(const Floor& floor);

}  // namespace agentd::bench::loadgen
