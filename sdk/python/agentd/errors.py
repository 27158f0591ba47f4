"""Exceptions raised by the agentd SDK: one AgentdError subclass per gRPC status code."""

from __future__ import annotations

from typing import Optional

import grpc

REQUEST_ID_HEADER = "x-agentd-request-id"


class AgentdError(Exception):
    """An RPC to agentd failed.

    Attributes:
        code: the grpc.StatusCode.
        message: the server's explanation (the status details).
        request_id: the call's ``x-agentd-request-id`` (matches the server's log lines), or None
            when the call never reached the server.
    """

    #: The status code instances of this class carry (set on each subclass).
    status_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        code: Optional[grpc.StatusCode] = None,
        request_id: Optional[str] = None,
    ):
        self.code = code if code is not None else self.status_code
        self.message = message
        self.request_id = request_id
        super().__init__(message)

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.request_id:
            text += f" (request id {self.request_id})"
        return text


class Cancelled(AgentdError):
    status_code = grpc.StatusCode.CANCELLED


class Unknown(AgentdError):
    status_code = grpc.StatusCode.UNKNOWN


class InvalidArgument(AgentdError):
    status_code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(AgentdError):
    status_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(AgentdError):
    status_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(AgentdError):
    status_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(AgentdError):
    status_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(AgentdError):
    status_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(AgentdError):
    status_code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(AgentdError):
    status_code = grpc.StatusCode.ABORTED


class OutOfRange(AgentdError):
    status_code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(AgentdError):
    status_code = grpc.StatusCode.UNIMPLEMENTED


class Internal(AgentdError):
    status_code = grpc.StatusCode.INTERNAL


class Unavailable(AgentdError):
    status_code = grpc.StatusCode.UNAVAILABLE


class DataLoss(AgentdError):
    status_code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(AgentdError):
    status_code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE = {
    cls.status_code: cls
    for cls in (
        Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists,
        PermissionDenied, ResourceExhausted, FailedPrecondition, Aborted, OutOfRange,
        Unimplemented, Internal, Unavailable, DataLoss, Unauthenticated,
    )
}


def _metadata_value(call, getter: str, key: str) -> Optional[str]:
    fn = getattr(call, getter, None)
    if fn is None:
        return None
    try:
        md = fn()
    except Exception:  # a call that never started has no metadata
        return None
    for k, v in md or ():
        if k == key:
            return v.decode() if isinstance(v, bytes) else v
    return None


def request_id_of(call) -> Optional[str]:
    """The ``x-agentd-request-id`` of a finished call (trailing or initial metadata)."""
    return _metadata_value(call, "trailing_metadata", REQUEST_ID_HEADER) or _metadata_value(
        call, "initial_metadata", REQUEST_ID_HEADER
    )


def from_rpc_error(err: grpc.RpcError) -> AgentdError:
    """The AgentdError subclass for a failed grpc call (code, details and request id kept)."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else None
    cls = _BY_CODE.get(code, AgentdError)
    return cls(details or code.name.lower().replace("_", " "), code=code,
               request_id=request_id_of(err))
