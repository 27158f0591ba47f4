#include "loadgen_floor.h"

#include <grpcpp/client_context.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>
#include <grpcpp/support/slice.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string_view>

#include "absl/status/status.h"
#include "absl/synchronization/blocking_counter.h"
#include "bench_util.h"

namespace agentd::bench::loadgen {
namespace {

using Clock = std::chrono::steady_clock;

// The cheapest unary call agentd serves: no authentication, an empty request (zero bytes), a
// two-byte answer, no storage.
constexpr char kHealthCheck[] = "/grpc.health.v1.Health/Check";
// About one step's commit: a 2 KB WAL append made durable.
constexpr int kFsyncAppends = 500;
constexpr size_t kFsyncBytes = 2048;

double MsSince(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

template <typename... Args>
std::string Format(const char* format, Args... args) {
  char buf[256];
  std::snprintf(buf, sizeof buf, format, args...);
  return buf;
}

/// HealthCheckResponse{status: SERVING} is field 1 = varint 1; anything else means agentd is not
/// serving (or answered something that is not a health check).
bool IsServing(const grpc::ByteBuffer& response) {
  grpc::Slice slice;
  if (!response.Valid() || !response.DumpToSingleSlice(&slice).ok()) return false;
  const std::string_view got(reinterpret_cast<const char*>(slice.begin()), slice.size());
  return got == std::string_view("\x08\x01", 2);
}

/// CPU used so far by this process and by agentd.
struct CpuMark {
  double self_s = 0;
  std::optional<ProcReading> server;
  static CpuMark Take(int server_pid) {
    CpuMark m;
    m.self_s = CpuSeconds();
    if (server_pid > 0) m.server = ReadProc(server_pid);
    return m;
  }
};

/// What the chains share: the call budget, and the count of chains still running.
class RpcProbe {
 public:
  RpcProbe(int64_t calls, int chains) : remaining_(calls), running_(chains) {}

  /// Claims one call of the budget; false once it is spent (or the probe was stopped).
  bool Claim() { return remaining_.fetch_sub(1, std::memory_order_relaxed) > 0; }
  /// After a failed call: the run is invalid anyway, so no chain starts another one.
  void Stop() { remaining_.store(0, std::memory_order_relaxed); }
  void ChainDone() { running_.DecrementCount(); }
  void Wait() { running_.Wait(); }

 private:
  std::atomic<int64_t> remaining_;
  absl::BlockingCounter running_;
};

/// One chain of Health/Check calls on one channel, one at a time: the next call is issued from
/// the previous one's completion callback, as a closed-loop step is. Its results are read after
/// RpcProbe::Wait, which orders them after the chain's last callback.
class RpcChain {
 public:
  RpcChain(std::shared_ptr<grpc::Channel> channel, RpcProbe* probe,
           std::chrono::milliseconds timeout)
      : stub_(std::move(channel)), probe_(probe), timeout_(timeout) {
    // The empty HealthCheckRequest as a valid zero-length buffer: a default ByteBuffer holds no
    // buffer at all, and the send op would hand gRPC core a null message.
    grpc::Slice empty;
    request_ = grpc::ByteBuffer(&empty, 1);
  }

  /// Issues the next call, or tells the probe this chain is done once the budget is spent.
  void Next() {
    if (!probe_->Claim()) {
      probe_->ChainDone();  // the last touch of `this`: the owner may destroy it from here on
      return;
    }
    ctx_ = std::make_unique<grpc::ClientContext>();
    ctx_->set_deadline(std::chrono::system_clock::now() + timeout_);
    response_.Clear();
    start_ = Clock::now();
    stub_.UnaryCall(ctx_.get(), kHealthCheck, grpc::StubOptions(), &request_, &response_,
                    [this](grpc::Status status) { OnReply(status); });
  }

  const std::vector<double>& ms() const { return ms_; }
  int64_t failures() const { return failures_; }
  const std::string& first_failure() const { return first_failure_; }

 private:
  void OnReply(const grpc::Status& status) {
    const double ms = MsSince(start_);
    if (status.ok() && IsServing(response_)) {
      ms_.push_back(ms);
    } else {
      if (failures_++ == 0) first_failure_ = Describe(status);
      probe_->Stop();
    }
    Next();
  }

  static std::string Describe(const grpc::Status& status) {
    if (status.ok()) return "the answer is not SERVING";
    // grpc::StatusCode and absl::StatusCode share their numbers.
    return absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())) + ": " +
           status.error_message();
  }

  grpc::GenericStub stub_;
  RpcProbe* const probe_;
  const std::chrono::milliseconds timeout_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  grpc::ByteBuffer request_, response_;
  Clock::time_point start_;
  std::vector<double> ms_;
  int64_t failures_ = 0;
  std::string first_failure_;
};

/// Fills `out` from the finished chains and the CPU used meanwhile; false (and `error`) if any
/// call failed.
bool CollectRpcFloor(const std::vector<std::unique_ptr<RpcChain>>& chains, double wall_s,
                     const CpuMark& before, const CpuMark& after, RpcFloor* out,
                     std::string* error) {
  std::vector<double> ms;
  int64_t failures = 0;
  std::string first;
  for (const auto& c : chains) {
    ms.insert(ms.end(), c->ms().begin(), c->ms().end());
    failures += c->failures();
    if (first.empty()) first = c->first_failure();
  }
  if (failures > 0) {
    *error = std::to_string(failures) + " Health/Check call(s) failed (" +
             std::to_string(ms.size()) + " answered), the first: " + first;
    return false;
  }
  const double calls = static_cast<double>(ms.size());
  out->calls = static_cast<int64_t>(ms.size());
  out->in_flight = static_cast<int>(chains.size());
  out->latency = Summarize(std::move(ms));
  out->per_s = wall_s > 0 ? calls / wall_s : 0;
  out->loadgen_cpu_ms = calls > 0 ? (after.self_s - before.self_s) * 1000 / calls : 0;
  if (before.server && after.server && calls > 0) {
    out->server_cpu_ms = (after.server->cpu_s - before.server->cpu_s) * 1000 / calls;
  }
  return true;
}

bool MeasureRpcFloor(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                     const FloorOptions& o, RpcFloor* out, std::string* error) {
  if (channels.empty() || o.rpc_calls <= 0) {
    *error = "no channels or no calls for the gRPC floor";
    return false;
  }
  const auto n = static_cast<int>(std::clamp<int64_t>(o.rpc_in_flight, 1, o.rpc_calls));
  RpcProbe probe(o.rpc_calls, n);
  std::vector<std::unique_ptr<RpcChain>> chains;
  for (int i = 0; i < n; ++i) {
    // Round-robin over the channels, as the steps' sessions are.
    chains.push_back(
        std::make_unique<RpcChain>(channels[i % channels.size()], &probe, o.rpc_timeout));
  }
  const CpuMark before = CpuMark::Take(o.server_pid);
  const Clock::time_point t0 = Clock::now();
  for (auto& c : chains) c->Next();
  probe.Wait();
  const double wall_s = MsSince(t0) / 1000;
  const CpuMark after = CpuMark::Take(o.server_pid);
  return CollectRpcFloor(chains, wall_s, before, after, out, error);
}

/// The data dir's parent: the same filesystem as agentd's WAL, but none of agentd's files.
std::filesystem::path ParentOf(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::path p = std::filesystem::absolute(data_dir, ec).lexically_normal();
  if (!p.has_filename()) p = p.parent_path();  // "a/data/" names "a/data", not "a/data/."
  return p.parent_path();
}

/// kFsyncAppends appends of kFsyncBytes, each made durable with fdatasync before the next, in a
/// temp file that is removed afterwards. Nullopt (and `error`) if that cannot be done.
std::optional<FsyncFloor> MeasureFsyncFloor(const std::string& data_dir, std::string* error) {
  const std::filesystem::path dir = ParentOf(data_dir);
  std::string path = (dir / ".loadgen-floor-XXXXXX").string();
  const int fd = mkstemp(path.data());
  if (fd < 0) {
    *error = "cannot create a temp file in " + dir.string() + ": " + std::strerror(errno);
    return std::nullopt;
  }
  const std::string block(kFsyncBytes, 'f');
  std::vector<double> ms;
  ms.reserve(kFsyncAppends);
  for (int i = 0; i < kFsyncAppends; ++i) {
    const Clock::time_point t0 = Clock::now();
    if (!WriteAll(fd, block) || fdatasync(fd) != 0) {
      *error = "append + fdatasync on " + path + ": " + std::strerror(errno);
      break;
    }
    ms.push_back(MsSince(t0));
  }
  close(fd);
  unlink(path.c_str());
  if (ms.size() < static_cast<size_t>(kFsyncAppends)) return std::nullopt;
  return FsyncFloor{Summarize(std::move(ms))};
}

}  // namespace

bool MeasureFloor(const std::vector<std::shared_ptr<grpc::Channel>>& channels,
                  const FloorOptions& options, Floor* floor, std::string* error) {
  if (!MeasureRpcFloor(channels, options, &floor->rpc, error)) return false;
  floor->fsync.reset();
  if (options.data_dir.empty()) return true;
  std::string fsync_error;
  floor->fsync = MeasureFsyncFloor(options.data_dir, &fsync_error);
  if (!floor->fsync) {
    std::fprintf(stderr, "loadgen: no fsync floor: %s\n", fsync_error.c_str());
  }
  return true;
}

std::string DescribeFloor(const Floor& floor) {
  const RpcFloor& r = floor.rpc;
  std::string line = Format(
      "floor: gRPC Health/Check p50 %.3f ms p99 %.3f ms (%.0f calls/s, %d in flight, CPU/call "
      "loadgen %.3f ms",
      r.latency.p50, r.latency.p99, r.per_s, r.in_flight, r.loadgen_cpu_ms);
  if (r.server_cpu_ms) line += Format(", agentd %.3f ms", *r.server_cpu_ms);
  line += ")";
  if (floor.fsync) {
    line += Format(", fdatasync %zu KB p50 %.3f ms p99 %.3f ms", kFsyncBytes / 1024,
                   floor.fsync->latency.p50, floor.fsync->latency.p99);
  }
  return line;
}

}  // namespace agentd::bench::loadgen
