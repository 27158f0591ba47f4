#!/usr/bin/python3
"""Asks a gRPC server's grpc.health.v1.Health/Check until it answers SERVING, like a Kubernetes
native gRPC probe (plaintext, no API key).

    grpc_health_check.py HOST:PORT [--wait SECONDS] [--pid PID] [--service NAME]

Exit 0 and "health: SERVING" once the server answers SERVING; exit 1 with the last answer or
error when --wait runs out (or the process --pid names has exited, which ends the wait early);
exit 2 on a usage error. The message classes come from the repo's copy of health.proto,
compiled with Debian's /usr/bin/protoc into a temp dir (Debian packages no health stubs).
"""

import argparse
import importlib.util
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import grpc

REPO = pathlib.Path(__file__).resolve().parents[2]
HEALTH_PROTO = "grpc/health/v1/health.proto"


def load_health_pb2(tmp: str):
    """Compiles health.proto and imports the module by path (a generated top-level `grpc`
    package on sys.path would shadow the real grpc package)."""
    subprocess.run(
        ["/usr/bin/protoc", f"-I{REPO / 'proto'}", f"--python_out={tmp}", HEALTH_PROTO],
        check=True)
    path = pathlib.Path(tmp) / "grpc/health/v1/health_pb2.py"
    spec = importlib.util.spec_from_file_location("agentd_health_pb2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("addr", help="HOST:PORT of the server")
    parser.add_argument("--wait", type=float, default=10.0,
                        help="seconds to keep asking until SERVING (default 10)")
    parser.add_argument("--pid", type=int, default=0,
                        help="stop waiting as soon as this process has exited")
    parser.add_argument("--service", default="", help="service name ('' = the whole server)")
    args = parser.parse_args()
    if args.wait <= 0:
        parser.error("--wait must be > 0")

    with tempfile.TemporaryDirectory(prefix="agentd-health-") as tmp:
        health_pb2 = load_health_pb2(tmp)
    request = health_pb2.HealthCheckRequest(service=args.service)
    serving = health_pb2.HealthCheckResponse.SERVING
    deadline = time.monotonic() + args.wait
    last = "no answer"
    with grpc.insecure_channel(args.addr) as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString)
        while True:
            try:
                response = check(request, timeout=1.0)
                last = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
                if response.status == serving:
                    print(f"health: {last}")
                    return 0
            except grpc.RpcError as err:  # not listening yet: UNAVAILABLE
                last = f"{err.code().name}: {err.details()}"
            if args.pid and not process_alive(args.pid):
                print(f"health: process {args.pid} exited; last answer: {last}", file=sys.stderr)
                return 1
            if time.monotonic() >= deadline:
                print(f"health: not SERVING after {args.wait:g}s; last answer: {last}",
                      file=sys.stderr)
                return 1
            time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
