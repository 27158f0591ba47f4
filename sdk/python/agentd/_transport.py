"""Call plumbing shared by Client and Session: metadata on every call, deadlines, retries with
exponential backoff and jitter, and grpc errors turned into AgentdError."""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any, Callable, Iterator, List, Optional, Tuple

import grpc

from agentd import errors

SESSION_HEADER = "x-agentd-session"
RECORDED_TURN_HEADER = "x-agentd-turn-id"


def _recorded_turn(err: grpc.RpcError) -> bool:
    trailing = getattr(err, "trailing_metadata", None)
    try:
        return any(k == RECORDED_TURN_HEADER for k, _ in (trailing() or ()))
    except Exception:  # not a grpc.Call (e.g. a test double): no metadata to read
        return False


@dataclasses.dataclass
class RetryPolicy:
    """How calls are retried after UNAVAILABLE.

    Only calls that are safe to repeat are retried: reads, deletes, and turns (which carry an
    idempotency key the SDK generated, so a repeat returns the first call's result). Creates and
    updates are not. Waits grow from `initial_backoff` by `multiplier` up to `max_backoff`; each
    wait is drawn from [d/2, d] ("equal jitter") so that clients do not retry in lockstep.
    """

    max_attempts: int = 4
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0

    def backoff(self, retry_index: int) -> float:
        d = min(self.max_backoff, self.initial_backoff * (self.multiplier ** retry_index))
        return d / 2 + random.uniform(0, d / 2)


NO_RETRY = RetryPolicy(max_attempts=1)


class Transport:
    """Sends RPCs on one channel with the caller's key. Thread-safe (grpc channels are)."""

    def __init__(self, channel: grpc.Channel, api_key: Optional[str], timeout: Optional[float],
                 retry: RetryPolicy, sleep: Callable[[float], None] = time.sleep):
        self.channel = channel
        self.api_key = api_key
        self.timeout = timeout
        self.retry = retry
        self._sleep = sleep

    def metadata(self, session_id: Optional[str] = None) -> List[Tuple[str, str]]:
        md = []
        if self.api_key:
            md.append(("authorization", "Bearer " + self.api_key))
        if session_id:
            md.append((SESSION_HEADER, session_id))
        return md

    def _should_retry(self, err: grpc.RpcError, attempt: int, retry: bool,
                      retry_aborted: bool) -> bool:
        if not retry or attempt + 1 >= self.retry.max_attempts:
            return False
        code = err.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            # The outcome of a turn the server ran and recorded as failed (every deployment
            # down after its own retries): final; a retry would only record another failed turn.
            return not _recorded_turn(err)
        # A turn retried with its idempotency key while the first attempt still runs on the
        # server gets ABORTED ("still running; retry later"): wait and ask again.
        return retry_aborted and attempt > 0 and code == grpc.StatusCode.ABORTED

    def unary(self, method: Callable, request: Any, *, session_id: Optional[str] = None,
              retry: bool = False, retry_aborted: bool = False, not_found_ok_on_retry: bool = False,
              timeout: Any = "default") -> Any:
        """Calls a unary RPC; raises AgentdError. `retry`: the call is safe to repeat.
        `not_found_ok_on_retry`: a NOT_FOUND on a repeat means the first attempt did it (a
        delete whose reply was lost); None is returned then."""
        timeout = self.timeout if timeout == "default" else timeout
        md = self.metadata(session_id)
        attempt = 0
        while True:
            try:
                return method(request, timeout=timeout, metadata=md)
            except grpc.RpcError as err:
                if not_found_ok_on_retry and attempt > 0 and err.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                if not self._should_retry(err, attempt, retry, retry_aborted):
                    raise errors.from_rpc_error(err) from None
            self._sleep(self.retry.backoff(attempt))
            attempt += 1

    def server_stream(self, method: Callable, make_request: Callable[[], Any], *,
                      session_id: Optional[str] = None, retry: bool = False,
                      retry_aborted: bool = False, timeout: Any = "default") -> Iterator[Any]:
        """Iterates a server-streaming RPC; raises AgentdError. On a retryable failure the call
        is made again with a fresh `make_request()` (so a watcher resumes from its cursor).
        Closing the iterator cancels the call."""
        timeout = self.timeout if timeout == "default" else timeout
        md = self.metadata(session_id)
        attempt = 0
        while True:
            call = method(make_request(), timeout=timeout, metadata=md)
            try:
                for item in call:
                    yield item
                return
            except grpc.RpcError as err:
                if not self._should_retry(err, attempt, retry, retry_aborted):
                    raise errors.from_rpc_error(err) from None
            finally:
                call.cancel()  # no-op once the call finished; stops it if the consumer left
            self._sleep(self.retry.backoff(attempt))
            attempt += 1
