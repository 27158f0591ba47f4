"""Session: turns (with the client-tool loop), events, forks, cancellation and tool state.

Every call made through a Session sends ``x-agentd-session: <session_id>`` so a consistent-hash
proxy keeps the session on one replica.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

from agentd import errors
from agentd.results import RunResult
from agentd.tools import AsyncToolError, Tool, ToolArgumentError, as_tool
from agentd.v1 import agent_pb2, common_pb2, session_pb2

if TYPE_CHECKING:  # pragma: no cover
    from agentd.client import Client

DEFAULT_MAX_TOOL_ROUNDS = 8

_ROLES = {
    "user": common_pb2.ROLE_USER,
    "system": common_pb2.ROLE_SYSTEM,
    "assistant": common_pb2.ROLE_ASSISTANT,
}

_BUSY = {
    None: session_pb2.BUSY_POLICY_UNSPECIFIED,
    "reject": session_pb2.BUSY_POLICY_REJECT,
    "enqueue": session_pb2.BUSY_POLICY_ENQUEUE,
}

InputLike = Union[str, session_pb2.InputMessage, Sequence[Union[str, session_pb2.InputMessage]]]


@dataclasses.dataclass
class StateEntry:
    """One per-session state value (`value` is the decoded JSON)."""

    key: str
    value: Any
    version: int

    @classmethod
    def from_proto(cls, entry: session_pb2.StateEntry) -> "StateEntry":
        return cls(entry.key, json.loads(entry.value_json) if entry.value_json else None,
                   entry.version)


def new_idempotency_key() -> str:
    """A fresh idempotency key (fits agentd's [A-Za-z0-9._-]{1,128})."""
    return "py-" + uuid.uuid4().hex


def _input_messages(input: Optional[InputLike], role: str) -> List[session_pb2.InputMessage]:
    if input is None:
        return []
    if isinstance(input, (str, session_pb2.InputMessage)):
        input = [input]
    if role not in _ROLES:
        raise ValueError(f"role must be one of {sorted(_ROLES)}, got {role!r}")
    out = []
    for item in input:
        if isinstance(item, session_pb2.InputMessage):
            out.append(item)
        elif isinstance(item, str):
            out.append(session_pb2.InputMessage(role=_ROLES[role], text=item))
        else:
            raise TypeError(f"input must be text or InputMessage, got {type(item).__name__}")
    return out


def _tool_results(results: Optional[Iterable[Any]]) -> List[common_pb2.ToolResult]:
    out = []
    for r in results or ():
        if isinstance(r, common_pb2.ToolResult):
            out.append(r)
        elif isinstance(r, dict):
            out.append(common_pb2.ToolResult(**r))
        else:
            raise TypeError("tool_results items must be ToolResult or dict")
    return out


def _approvals(approvals: Optional[Iterable[Any]]) -> List[common_pb2.ToolApproval]:
    """ToolApproval protos from protos, dicts, or bare call ids (approved)."""
    out = []
    for a in approvals or ():
        if isinstance(a, common_pb2.ToolApproval):
            out.append(a)
        elif isinstance(a, dict):
            out.append(common_pb2.ToolApproval(**a))
        elif isinstance(a, str):
            out.append(common_pb2.ToolApproval(tool_call_id=a, approved=True))
        else:
            raise TypeError("approvals items must be ToolApproval, dict or a call id")
    return out


def run_tool_calls(calls: Sequence[common_pb2.ToolCall],
                   tools: Dict[str, Tool]) -> Optional[List[common_pb2.ToolResult]]:
    """Runs each call's tool; None (nothing run) if any call names a tool not in `tools` or
    waits for approval (answer those with ``approvals=``).

    A tool that raises, or whose arguments do not fit, yields an is_error result carrying the
    message, so the model sees what went wrong and the loop goes on.
    """
    if any(c.requires_approval or c.name not in tools for c in calls):
        return None
    results = []
    for call in calls:
        try:
            output, is_error = tools[call.name].invoke(call.arguments_json), False
        except ToolArgumentError as e:
            output, is_error = f"invalid arguments for {call.name}: {e}", True
        except AsyncToolError:
            raise  # the program's mistake, not the tool's answer
        except Exception as e:  # the tool's own failure goes back to the model
            output, is_error = f"{type(e).__name__}: {e}", True
        # A str the tool made up from bytes (lone surrogates) cannot go into a proto string.
        output = output.encode("utf-8", "replace").decode("utf-8")
        results.append(common_pb2.ToolResult(tool_call_id=call.id, output=output,
                                             is_error=is_error))
    return results


class _TurnLoop:
    """The request sequence of one run()/stream(): the first turn, then one turn per tool round,
    each with its own idempotency key (`<key>`, `<key>.1`, `<key>.2`, ...)."""

    def __init__(self, session: "Session", input, tool_results, tools, max_tool_rounds,
                 idempotency_key, on_busy, model_override, expected_last_seq, role,
                 approvals=None):
        if on_busy not in _BUSY:
            raise ValueError(f"on_busy must be 'reject' or 'enqueue', got {on_busy!r}")
        if max_tool_rounds < 0:
            raise ValueError("max_tool_rounds must be >= 0")
        self.session = session
        # ToolSpecs (agentd.builtin_tool, or a spec without a function) are the agent's business:
        # the same list can go to create_agent and to run(); only functions run here.
        self.tools = {t.name: t for t in (as_tool(x) for x in (tools or ())
                                          if not isinstance(x, agent_pb2.ToolSpec))}
        self.max_tool_rounds = max_tool_rounds
        self.base_key = idempotency_key or new_idempotency_key()
        self.on_busy = _BUSY[on_busy]
        self.model_override = model_override or ""
        self.round = 0
        self.result = RunResult()
        self.request = session_pb2.RunTurnRequest(
            session_id=session.session_id,
            input=_input_messages(input, role),
            tool_results=_tool_results(tool_results),
            approvals=_approvals(approvals),
            idempotency_key=self.base_key,
            expected_last_seq=expected_last_seq,
            on_busy=self.on_busy,
            model_override=self.model_override,
        )

    def advance(self, turn: session_pb2.TurnResult) -> bool:
        """Records a finished turn; True (and self.request set) when another round follows."""
        self.result.turns.append(turn)
        if turn.status != common_pb2.TURN_STATUS_REQUIRES_ACTION:
            return False
        if self.round >= self.max_tool_rounds:
            return False
        results = run_tool_calls(turn.required_tool_calls, self.tools)
        if results is None:
            return False
        self.round += 1
        self.request = session_pb2.RunTurnRequest(
            session_id=self.session.session_id,
            tool_results=results,
            idempotency_key=f"{self.base_key}.{self.round}",
            on_busy=self.on_busy,
            model_override=self.model_override,
        )
        return True


class TurnStream:
    """Iterator over the TurnEvent protos of a streamed run, across its tool rounds.

    Each round's events arrive in order (``event`` once durable, ``delta`` as text streams,
    ``result`` last in the round). After iteration, `result` holds the RunResult. Closing the
    iterator early cancels the call in flight.
    """

    def __init__(self, loop: _TurnLoop):
        self._loop = loop
        self._gen = self._run()

    @property
    def result(self) -> RunResult:
        return self._loop.result

    def __iter__(self) -> "TurnStream":
        return self

    def __next__(self) -> session_pb2.TurnEvent:
        return next(self._gen)

    def close(self) -> None:
        self._gen.close()

    def _run(self) -> Iterator[session_pb2.TurnEvent]:
        loop = self._loop
        session = loop.session
        while True:
            final = None
            last_seq = 0
            request = loop.request
            for te in session._transport.server_stream(
                    session._stub.StreamTurn, lambda: request, session_id=session.session_id,
                    retry=True, retry_aborted=True):
                kind = te.WhichOneof("kind")
                if kind == "event":
                    if te.event.seq <= last_seq:
                        continue  # already delivered before a retried stream
                    last_seq = te.event.seq
                elif kind == "result":
                    final = te.result
                yield te
            if final is None:
                raise errors.Unknown("StreamTurn ended without a TurnResult")
            if not loop.advance(final):
                return


class Session:
    """A handle on one agentd session. Cheap to create; methods make the RPCs."""

    def __init__(self, client: "Client", proto: session_pb2.Session):
        self._client = client
        self._transport = client._transport
        self._stub = client._sessions
        self.proto = proto

    @property
    def session_id(self) -> str:
        return self.proto.session_id

    id = session_id

    @property
    def agent_id(self) -> str:
        return self.proto.agent_id

    def __repr__(self) -> str:
        return f"<agentd.Session {self.session_id}>"

    def _call(self, name: str, request, **kw):
        return self._transport.unary(getattr(self._stub, name), request,
                                     session_id=self.session_id, **kw)

    # ---- turns -------------------------------------------------------------------------------

    def run(self, input: Optional[InputLike] = None, *, tools: Optional[Iterable] = None,
            tool_results: Optional[Iterable] = None,
            max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
            idempotency_key: Optional[str] = None, on_busy: Optional[str] = None,
            model_override: str = "", expected_last_seq: int = 0,
            role: str = "user", approvals: Optional[Iterable] = None) -> RunResult:
        """Runs a turn and, while it requires action, the client tools it asks for.

        For each required tool call the function of that name in `tools` is called with the
        call's JSON arguments as keyword arguments; its return value goes back as the tool result
        (a str as is, anything else as JSON; an exception as an is_error result). The loop stops
        when a turn ends, when a call names no tool in `tools` (status REQUIRES_ACTION, see
        `required_tool_calls`), or after `max_tool_rounds` rounds.

        Each turn carries an idempotency key (`idempotency_key`, or one the SDK generates) and
        is retried after UNAVAILABLE with the same key, so it runs at most once on the server.
        `tool_results` answers a turn that stopped with REQUIRES_ACTION earlier. A call of a
        server tool marked requires_approval also stops the loop (its `requires_approval` is
        set); answer it with `approvals` (call ids to approve, or ToolApproval / dicts with
        ``approved=False`` and a ``reason`` to reject).
        """
        loop = _TurnLoop(self, input, tool_results, tools, max_tool_rounds, idempotency_key,
                         on_busy, model_override, expected_last_seq, role, approvals)
        while True:
            turn = self._call("RunTurn", loop.request, retry=True, retry_aborted=True)
            if not loop.advance(turn):
                return loop.result

    def stream(self, input: Optional[InputLike] = None, *, tools: Optional[Iterable] = None,
               tool_results: Optional[Iterable] = None,
               max_tool_rounds: int = DEFAULT_MAX_TOOL_ROUNDS,
               idempotency_key: Optional[str] = None, on_busy: Optional[str] = None,
               model_override: str = "", expected_last_seq: int = 0,
               role: str = "user", approvals: Optional[Iterable] = None) -> TurnStream:
        """Like run(), streamed: iterate the returned TurnStream for TurnEvent protos of every
        round; its `result` is the RunResult once iteration is over."""
        return TurnStream(_TurnLoop(self, input, tool_results, tools, max_tool_rounds,
                                    idempotency_key, on_busy, model_override, expected_last_seq,
                                    role, approvals))

    def cancel(self) -> RunResult:
        """Cancels the running turn and returns its final result; on a session waiting for
        tool results, cancels those calls instead. FailedPrecondition if nothing runs or waits."""
        return RunResult(turns=[self._call("CancelTurn",
                                           session_pb2.CancelTurnRequest(session_id=self.session_id))])

    # ---- the session itself ------------------------------------------------------------------

    def get(self) -> "Session":
        """Re-reads the session (status, last_seq, usage, pending tool calls); returns self."""
        self.proto = self._call("GetSession",
                                session_pb2.GetSessionRequest(session_id=self.session_id),
                                retry=True)
        return self

    refresh = get

    def delete(self) -> None:
        self._call("DeleteSession", session_pb2.DeleteSessionRequest(session_id=self.session_id),
                   retry=True, not_found_ok_on_retry=True)

    def fork(self, at_seq: int = 0, new_session_id: str = "") -> "Session":
        """A new session with this one's events up to `at_seq` (0 = all)."""
        proto = self._call("ForkSession", session_pb2.ForkSessionRequest(
            session_id=self.session_id, at_seq=at_seq, new_session_id=new_session_id))
        return Session(self._client, proto)

    def replay(self, model: str, new_session_id: str = "",
               timeout: Any = "default") -> "tuple[Session, RunResult]":
        """Re-runs this session's user inputs against `model` in a new session (forked before
        the first event; recorded client tool results answer the tool calls). Returns the new
        session and a RunResult over its turns. One call runs every turn: pass a `timeout`
        (seconds, None = none) larger than the client's for long sessions. Not retried (a
        repeat would replay again)."""
        resp = self._call("ReplaySession", session_pb2.ReplaySessionRequest(
            session_id=self.session_id, model=model, new_session_id=new_session_id),
            timeout=timeout)
        return Session(self._client, resp.session), RunResult(turns=list(resp.results))

    # ---- events ------------------------------------------------------------------------------

    def events(self, after_seq: int = 0, limit: Optional[int] = None) -> List[common_pb2.Event]:
        """The session's events after `after_seq` (all of them, or the first `limit`)."""
        out: List[common_pb2.Event] = []
        cursor = after_seq
        while limit is None or len(out) < limit:
            page = 1000 if limit is None else min(1000, limit - len(out))
            resp = self._call("ListEvents", session_pb2.ListEventsRequest(
                session_id=self.session_id, after_seq=cursor, limit=page), retry=True)
            out.extend(resp.events)
            if not resp.events:
                break
            cursor = resp.next_after_seq
        return out

    def watch(self, after_seq: int = 0) -> Iterator[common_pb2.Event]:
        """History after `after_seq`, then live events, until the iterator is closed. After
        UNAVAILABLE the watch resumes from the last event it delivered."""
        cursor = [after_seq]

        def request():
            return session_pb2.WatchEventsRequest(session_id=self.session_id, after_seq=cursor[0])

        for event in self._transport.server_stream(self._stub.WatchEvents, request,
                                                   session_id=self.session_id, retry=True,
                                                   timeout=None):
            if event.seq <= cursor[0]:
                continue
            cursor[0] = event.seq
            yield event

    # ---- per-session state -------------------------------------------------------------------

    def get_state(self, key: str) -> StateEntry:
        return StateEntry.from_proto(self._call(
            "GetState", session_pb2.GetStateRequest(session_id=self.session_id, key=key),
            retry=True))

    def put_state(self, key: str, value: Any, expected_version: int = 0) -> StateEntry:
        """Stores `value` (JSON-encoded). `expected_version` > 0: Aborted unless the entry is
        at that version (0 = unconditional)."""
        return StateEntry.from_proto(self._call("PutState", session_pb2.PutStateRequest(
            session_id=self.session_id, key=key, value_json=json.dumps(value),
            expected_version=expected_version)))

    def list_state(self) -> List[StateEntry]:
        resp = self._call("ListState", session_pb2.ListStateRequest(session_id=self.session_id),
                          retry=True)
        return [StateEntry.from_proto(e) for e in resp.entries]
