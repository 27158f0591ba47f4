"""Fixtures: a real agentd (build/bin/agentd, or $AGENTD_BIN) on a free loopback port with a
temporary data dir, plus a gated fake OpenAI-compatible model ("slow") whose replies the test
releases, so a turn can be held RUNNING deterministically."""

from __future__ import annotations

import http.server
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
import uuid

import grpc
import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
SDK_DIR = REPO / "sdk" / "python"
if str(SDK_DIR) not in sys.path:  # also runnable without PYTHONPATH
    sys.path.insert(0, str(SDK_DIR))

import agentd  # noqa: E402

ADMIN_KEY = "sdk-test-admin-key-0123456789abcdef"
HEALTH_SERVING = b"\x08\x01"  # HealthCheckResponse{status: SERVING}, hand-serialized


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health_serving(address: str, credentials=None, options=(), timeout: float = 0.2) -> bool:
    """One grpc.health.v1 Check over a fresh channel (a channel that saw "connection refused"
    backs off for seconds). HealthCheckRequest{} serializes to empty bytes."""
    channel = (grpc.secure_channel(address, credentials, options=options) if credentials
               else grpc.insecure_channel(address))
    try:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        return check(b"", timeout=timeout) == HEALTH_SERVING
    except grpc.RpcError:
        return False
    finally:
        channel.close()


class GatedModel:
    """A fake /v1/chat/completions that holds each request until release() is called."""

    def __init__(self):
        self.started = threading.Event()
        self._release = threading.Event()
        gate = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                self.rfile.read(length)
                gate.started.set()
                gate._release.wait(30)
                body = json.dumps({
                    "id": "chatcmpl-gate", "object": "chat.completion", "model": "gate",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "released"}}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                }).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # agentd cancelled the call (the test cancelled the turn)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def arm(self):
        """Holds the next requests until release()."""
        self.started.clear()
        self._release.clear()

    def release(self):
        self._release.set()

    def close(self):
        self.release()
        self.server.shutdown()
        self.server.server_close()


class AgentdProcess:
    """agentd as a child process; healthy once constructed. `credentials`/`options`: how the
    health check connects (a TLS server needs them)."""

    def __init__(self, binary: str, workdir: pathlib.Path, model_port: int, extra_args=(),
                 credentials=None, options=()):
        self.address = f"127.0.0.1:{free_port()}"
        self.key = ADMIN_KEY
        self.data_dir = workdir / "data"
        self.log_path = workdir / "agentd.log"
        config = workdir / "agentd.yaml"
        config.write_text(
            "backends:\n"
            "  - name: gate\n"
            "    type: openai\n"
            f"    base_url: http://127.0.0.1:{model_port}/v1\n"
            "    timeout_ms: 30000\n"
            # Nothing listens on port 1: every call of model "down" fails to connect.
            "  - name: nowhere\n"
            "    type: openai\n"
            "    base_url: http://127.0.0.1:1/v1\n"
            "    timeout_ms: 2000\n"
            "models:\n"
            "  - name: slow\n"
            "    deployments:\n"
            "      - { backend: gate, model: gate-model, weight: 1 }\n"
            "  - name: down\n"
            "    deployments:\n"
            "      - { backend: nowhere, model: m, weight: 1 }\n")
        env = dict(os.environ, AGENTD_BOOTSTRAP_KEY=self.key)
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "--config", str(config), "--listen", self.address, "--data-dir",
             str(self.data_dir), "--log-level", "warn", *extra_args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while not health_serving(self.address, credentials, options):
            if self.proc.poll() is not None:
                raise RuntimeError(f"agentd exited with {self.proc.returncode}: {self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"agentd did not become healthy in 30 s: {self.log()}")
            time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="session")
def agentd_binary() -> str:
    binary = os.environ.get("AGENTD_BIN") or str(REPO / "build" / "bin" / "agentd")
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"agentd binary not found at {binary}: build it first or set AGENTD_BIN")
    return binary


@pytest.fixture(scope="session")
def gated_model():
    model = GatedModel()
    yield model
    model.close()


@pytest.fixture(scope="session")
def server(agentd_binary, gated_model, tmp_path_factory):
    proc = AgentdProcess(agentd_binary, tmp_path_factory.mktemp("agentd"), gated_model.port)
    yield proc
    proc.stop()


@pytest.fixture
def client(server):
    with agentd.Client(server.address, api_key=server.key, timeout=30) as c:
        yield c


@pytest.fixture
def unique():
    """A short unique suffix for names and namespaces."""
    return uuid.uuid4().hex[:10]
