"""Result objects of Session.run() / Session.stream(): readable status, summed usage."""

from __future__ import annotations

import dataclasses
import enum
from typing import List, Optional

from agentd.v1 import common_pb2, session_pb2


class TurnStatus(str, enum.Enum):
    """A turn's outcome as a readable string enum (compares equal to its value)."""

    UNSPECIFIED = "unspecified"
    COMPLETED = "completed"
    REQUIRES_ACTION = "requires_action"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @classmethod
    def from_proto(cls, value: int) -> "TurnStatus":
        return _FROM_PROTO.get(value, cls.UNSPECIFIED)

    def __str__(self) -> str:
        return self.value


_FROM_PROTO = {
    common_pb2.TURN_STATUS_COMPLETED: TurnStatus.COMPLETED,
    common_pb2.TURN_STATUS_REQUIRES_ACTION: TurnStatus.REQUIRES_ACTION,
    common_pb2.TURN_STATUS_FAILED: TurnStatus.FAILED,
    common_pb2.TURN_STATUS_CANCELLED: TurnStatus.CANCELLED,
}


@dataclasses.dataclass
class Usage:
    """Tokens, model calls and cost (US dollars)."""

    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0
    cost_usd: float = 0.0

    @classmethod
    def from_proto(cls, usage: common_pb2.Usage) -> "Usage":
        return cls(usage.input_tokens, usage.output_tokens, usage.model_calls, usage.cost_usd)

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(self.input_tokens + other.input_tokens,
                     self.output_tokens + other.output_tokens,
                     self.model_calls + other.model_calls,
                     self.cost_usd + other.cost_usd)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclasses.dataclass
class RunResult:
    """The outcome of Session.run() or Session.stream() over all of its tool rounds.

    Attributes:
        turns: every TurnResult (proto) of the loop, in order; the last one decides the rest.
        status: the last turn's TurnStatus. REQUIRES_ACTION means the loop stopped on a tool
            call it had no function for (see required_tool_calls) or hit max_tool_rounds.
        output_text: the last turn's output text.
        required_tool_calls: the ToolCall protos still waiting for results (REQUIRES_ACTION).
        usage: Usage summed over all turns.
        events: every Event (proto) the turns appended, in order.
        error: why the last turn failed or was cancelled ("" otherwise).
    """

    turns: List[session_pb2.TurnResult] = dataclasses.field(default_factory=list)

    @property
    def last(self) -> Optional[session_pb2.TurnResult]:
        return self.turns[-1] if self.turns else None

    @property
    def status(self) -> TurnStatus:
        return TurnStatus.from_proto(self.last.status) if self.last else TurnStatus.UNSPECIFIED

    @property
    def output_text(self) -> str:
        return self.last.output_text if self.last else ""

    @property
    def required_tool_calls(self) -> List[common_pb2.ToolCall]:
        return list(self.last.required_tool_calls) if self.last else []

    @property
    def usage(self) -> Usage:
        total = Usage()
        for t in self.turns:
            total = total + Usage.from_proto(t.usage)
        return total

    @property
    def events(self) -> List[common_pb2.Event]:
        return [e for t in self.turns for e in t.events]

    @property
    def error(self) -> str:
        return self.last.error if self.last else ""

    @property
    def last_seq(self) -> int:
        return self.last.last_seq if self.last else 0

    def __repr__(self) -> str:
        return (f"RunResult(status={self.status.value!r}, output_text={self.output_text!r}, "
                f"turns={len(self.turns)}, usage={self.usage})")
