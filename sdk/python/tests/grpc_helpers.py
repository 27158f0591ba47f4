"""Client interceptors for the tests: record every call's method and metadata, and inject
UNAVAILABLE failures (before or after the call really reached the server)."""

from __future__ import annotations

import threading
from typing import Dict, List, Optional, Tuple

import grpc


class FakeRpcError(grpc.RpcError, grpc.Call):
    """What a failed call raises, with a chosen status code."""

    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__()
        self._code = code
        self._details = details

    def code(self):
        return self._code

    def details(self):
        return self._details

    def initial_metadata(self):
        return ()

    def trailing_metadata(self):
        return ()

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def cancel(self):
        return False

    def add_callback(self, callback):
        return False


class Recorder(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Records (method, metadata dict, request) of every call. `fail` maps a method's short
    name to a plan for its next calls, one bool each (True: that call fails with UNAVAILABLE);
    `after` says whether a failing call is forwarded first (the server did the work, the reply
    was "lost") or not at all."""

    def __init__(self):
        self.calls: List[Tuple[str, Dict[str, str], object]] = []
        self.fail: Dict[str, List[bool]] = {}
        self.after = True
        self._mu = threading.Lock()

    def _record(self, details, request) -> Optional[str]:
        method = details.method
        md = {k: v for k, v in (details.metadata or ())}
        short = method.rsplit("/", 1)[-1]
        with self._mu:
            self.calls.append((method, md, request))
            plan = self.fail.get(short)
            if plan and plan.pop(0):
                return short
        return None

    def intercept_unary_unary(self, continuation, details, request):
        failing = self._record(details, request)
        if failing is None:
            return continuation(details, request)
        if self.after:
            outcome = continuation(details, request)
            outcome.result()  # the server finished the call; its reply is then "lost"
        raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, f"injected: {failing} reply lost")

    def intercept_unary_stream(self, continuation, details, request):
        failing = self._record(details, request)
        call = continuation(details, request)
        return call if failing is None else CutStream(call)

    def methods(self, short_name: str) -> List[Tuple[Dict[str, str], object]]:
        return [(md, req) for m, md, req in self.calls if m.endswith("/" + short_name)]


class CutStream:
    """A server stream whose connection "breaks" just before its last message: every message
    but the last is delivered, the call itself runs to its end on the server, then the
    iterator raises UNAVAILABLE."""

    def __init__(self, call):
        self._call = call
        self._items = None

    def __iter__(self):
        return self

    def __next__(self):
        if self._items is None:
            self._items = list(self._call)[:-1]
        if self._items:
            return self._items.pop(0)
        raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "injected: stream cut")

    def cancel(self):
        return self._call.cancel()
