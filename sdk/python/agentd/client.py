"""Client: the connection to agentd (address, API key, TLS, deadlines, retries) and the agent,
session, memory and usage calls that are not scoped to one session."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

import grpc

from agentd._transport import RetryPolicy, Transport
from agentd.session import Session
from agentd.tools import as_tool
from agentd.v1 import (agent_pb2, agent_pb2_grpc, memory_pb2, memory_pb2_grpc, project_pb2,
                       project_pb2_grpc, session_pb2, session_pb2_grpc)

DEFAULT_ADDRESS = "127.0.0.1:7700"
DEFAULT_TIMEOUT = 60.0

_SESSION_STATUS = {
    None: session_pb2.SESSION_STATUS_UNSPECIFIED,
    "idle": session_pb2.SESSION_STATUS_IDLE,
    "running": session_pb2.SESSION_STATUS_RUNNING,
    "requires_action": session_pb2.SESSION_STATUS_REQUIRES_ACTION,
    "failed": session_pb2.SESSION_STATUS_FAILED,
}

_GROUP_BY = {
    "agent": project_pb2.USAGE_GROUP_BY_AGENT,
    "session": project_pb2.USAGE_GROUP_BY_SESSION,
    "model": project_pb2.USAGE_GROUP_BY_MODEL,
    "day": project_pb2.USAGE_GROUP_BY_DAY,
}

AgentRef = Union[str, agent_pb2.Agent]


def _read_pem(value: Union[None, str, bytes, os.PathLike]) -> Optional[bytes]:
    """PEM bytes from bytes, PEM text, or a file path."""
    if value is None or isinstance(value, bytes):
        return value
    text = os.fspath(value)
    if "-----BEGIN" in text:
        return text.encode()
    with open(text, "rb") as f:
        return f.read()


def _agent_id(agent: AgentRef) -> str:
    if isinstance(agent, agent_pb2.Agent):
        return agent.agent_id
    if isinstance(agent, str) and agent:
        return agent
    raise TypeError("expected an Agent or a non-empty agent_id")


def _tool_spec(t: Any) -> agent_pb2.ToolSpec:
    if isinstance(t, agent_pb2.ToolSpec):
        return t
    return as_tool(t).to_proto()


class Memory:
    """Long-term memory of the caller's project (`client.memory`)."""

    def __init__(self, client: "Client"):
        self._t = client._transport
        self._stub = client._memory

    def put(self, namespace: str, text: str, key: str = "",
            metadata: Optional[Dict[str, str]] = None) -> memory_pb2.MemoryRecord:
        """Creates or replaces a record (empty key: the server assigns one). Retried after
        UNAVAILABLE only when `key` is given (then a repeat writes the same record)."""
        return self._t.unary(self._stub.PutMemory, memory_pb2.PutMemoryRequest(
            namespace=namespace, key=key, text=text, metadata=metadata or {}), retry=bool(key))

    def get(self, namespace: str, key: str) -> memory_pb2.MemoryRecord:
        return self._t.unary(self._stub.GetMemory,
                             memory_pb2.GetMemoryRequest(namespace=namespace, key=key), retry=True)

    def search(self, query: str, namespace_prefix: str = "",
               top_k: int = 0) -> List[memory_pb2.ScoredMemory]:
        return list(self._t.unary(self._stub.SearchMemory, memory_pb2.SearchMemoryRequest(
            namespace_prefix=namespace_prefix, query=query, top_k=top_k), retry=True).results)

    def list(self, namespace_prefix: str = "") -> List[memory_pb2.MemoryRecord]:
        out: List[memory_pb2.MemoryRecord] = []
        token = ""
        while True:
            resp = self._t.unary(self._stub.ListMemories, memory_pb2.ListMemoriesRequest(
                namespace_prefix=namespace_prefix, page_token=token), retry=True)
            out.extend(resp.memories)
            token = resp.next_page_token
            if not token:
                return out

    def delete(self, namespace: str, key: str) -> None:
        self._t.unary(self._stub.DeleteMemory,
                      memory_pb2.DeleteMemoryRequest(namespace=namespace, key=key), retry=True,
                      not_found_ok_on_retry=True)


class Client:
    """A connection to agentd.

    Args:
        address: HOST:PORT; default $AGENTD_ADDR, else 127.0.0.1:7700.
        api_key: sent as ``authorization: Bearer <key>`` on every call; default $AGENTD_API_KEY.
        timeout: deadline of each call in seconds (None = none); watch() has none.
        retry: RetryPolicy for calls that are safe to repeat (see docs/sdk-python.md).
        root_certificates: PEM CA bundle (bytes, PEM text or a file path) to verify the server;
            default $AGENTD_TLS_CA. Any TLS setting (or tls=True) makes the connection TLS.
        certificate_chain, private_key: client certificate and key for mTLS; default
            $AGENTD_TLS_CERT / $AGENTD_TLS_KEY.
        tls: True for TLS with the system's roots; default: TLS iff a TLS file is given.
        tls_server_name: the name to verify in the server certificate instead of the host.
        interceptors: grpc client interceptors wrapped around the channel.
        channel: use this grpc.Channel instead of opening one (address and TLS are ignored).
        options: extra grpc channel options.
    """

    def __init__(self, address: Optional[str] = None, api_key: Optional[str] = None, *,
                 timeout: Optional[float] = DEFAULT_TIMEOUT, retry: Optional[RetryPolicy] = None,
                 root_certificates=None, certificate_chain=None, private_key=None,
                 tls: Optional[bool] = None, tls_server_name: Optional[str] = None,
                 interceptors: Sequence[Any] = (), channel: Optional[grpc.Channel] = None,
                 options: Sequence = ()):
        self.address = address or os.environ.get("AGENTD_ADDR") or DEFAULT_ADDRESS
        key = api_key if api_key is not None else os.environ.get("AGENTD_API_KEY")
        if channel is None:
            channel = self._open_channel(root_certificates, certificate_chain, private_key, tls,
                                         tls_server_name, list(options))
        self._channel = channel
        if interceptors:
            channel = grpc.intercept_channel(channel, *interceptors)
        self._transport = Transport(channel, key or None, timeout, retry or RetryPolicy())
        self._agents = agent_pb2_grpc.AgentServiceStub(channel)
        self._sessions = session_pb2_grpc.SessionServiceStub(channel)
        self._memory = memory_pb2_grpc.MemoryServiceStub(channel)
        self._projects = project_pb2_grpc.ProjectServiceStub(channel)
        self.memory = Memory(self)

    def _open_channel(self, root, cert, key, tls, server_name, options) -> grpc.Channel:
        root = _read_pem(root if root is not None else os.environ.get("AGENTD_TLS_CA") or None)
        cert = _read_pem(cert if cert is not None else os.environ.get("AGENTD_TLS_CERT") or None)
        key = _read_pem(key if key is not None else os.environ.get("AGENTD_TLS_KEY") or None)
        if (cert is None) != (key is None):
            raise ValueError("certificate_chain and private_key must be given together")
        if tls is None:
            tls = any(x is not None for x in (root, cert, key))
        if not tls:
            return grpc.insecure_channel(self.address, options=options)
        if server_name:
            options.append(("grpc.ssl_target_name_override", server_name))
        creds = grpc.ssl_channel_credentials(root_certificates=root, private_key=key,
                                             certificate_chain=cert)
        return grpc.secure_channel(self.address, creds, options=options)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- agents ------------------------------------------------------------------------------

    def create_agent(self, name: str, model: str = "echo", instructions: str = "",
                     tools: Iterable[Any] = (), *, agent_id: str = "",
                     max_steps_per_turn: int = 0,
                     metadata: Optional[Dict[str, str]] = None,
                     context_policy: Optional[agent_pb2.ContextPolicy] = None,
                     output_schema_json: str = "") -> agent_pb2.Agent:
        """Creates an agent. `tools`: @tool functions (CLIENT tools), plain functions, or
        ToolSpec protos (e.g. builtin_tool("memory_search")). `agent_id`: optional, chosen by
        the caller (AlreadyExists if taken). Not retried (a repeat would create another)."""
        agent = agent_pb2.Agent(agent_id=agent_id, name=name, model=model, instructions=instructions,
                                tools=[_tool_spec(t) for t in tools],
                                max_steps_per_turn=max_steps_per_turn, metadata=metadata or {},
                                output_schema_json=output_schema_json)
        if context_policy is not None:
            agent.context_policy.CopyFrom(context_policy)
        return self._transport.unary(self._agents.CreateAgent,
                                     agent_pb2.CreateAgentRequest(agent=agent))

    def get_agent(self, agent: AgentRef, version: int = 0) -> agent_pb2.Agent:
        return self._transport.unary(self._agents.GetAgent, agent_pb2.GetAgentRequest(
            agent_id=_agent_id(agent), version=version), retry=True)

    def list_agents(self) -> List[agent_pb2.Agent]:
        out: List[agent_pb2.Agent] = []
        token = ""
        while True:
            resp = self._transport.unary(self._agents.ListAgents,
                                         agent_pb2.ListAgentsRequest(page_token=token), retry=True)
            out.extend(resp.agents)
            token = resp.next_page_token
            if not token:
                return out

    def update_agent(self, agent: AgentRef, **fields: Any) -> agent_pb2.Agent:
        """Creates a new version of the agent. With an Agent proto and no `fields`, that proto
        is sent as is; otherwise the latest version is read and `fields` (name, model,
        instructions, tools, max_steps_per_turn, metadata, output_schema_json) replace its own."""
        if isinstance(agent, agent_pb2.Agent) and not fields:
            proto = agent
        else:
            proto = self.get_agent(agent)
            for field, value in fields.items():
                if field == "tools":
                    del proto.tools[:]
                    proto.tools.extend(_tool_spec(t) for t in value)
                elif field == "metadata":
                    proto.metadata.clear()
                    proto.metadata.update(value)
                elif field == "context_policy":
                    proto.context_policy.CopyFrom(value)
                elif field in ("agent_id", "version", "create_time", "update_time"):
                    raise ValueError(f"{field} cannot be updated")
                elif field in agent_pb2.Agent.DESCRIPTOR.fields_by_name:
                    setattr(proto, field, value)
                else:
                    raise ValueError(f"Agent has no field {field!r}")
        return self._transport.unary(self._agents.UpdateAgent,
                                     agent_pb2.UpdateAgentRequest(agent=proto))

    def delete_agent(self, agent: AgentRef) -> None:
        self._transport.unary(self._agents.DeleteAgent,
                              agent_pb2.DeleteAgentRequest(agent_id=_agent_id(agent)), retry=True,
                              not_found_ok_on_retry=True)

    # ---- sessions ----------------------------------------------------------------------------

    def create_session(self, agent: AgentRef, *, agent_version: int = 0, session_id: str = "",
                       metadata: Optional[Dict[str, str]] = None,
                       ttl_seconds: int = 0) -> Session:
        """Creates a session of `agent` (an Agent or an agent_id), pinned to `agent_version`
        (0 = latest). A client-chosen `session_id` is also sent as x-agentd-session."""
        proto = self._transport.unary(self._sessions.CreateSession, session_pb2.CreateSessionRequest(
            agent_id=_agent_id(agent), agent_version=agent_version, session_id=session_id,
            metadata=metadata or {}, ttl_seconds=ttl_seconds), session_id=session_id or None)
        return Session(self, proto)

    def session(self, session_id: str) -> Session:
        """A handle on an existing session, without a call (see get_session)."""
        if not session_id:
            raise ValueError("session_id is required")
        return Session(self, session_pb2.Session(session_id=session_id))

    def get_session(self, session_id: str) -> Session:
        return self.session(session_id).get()

    def list_sessions(self, agent: Optional[AgentRef] = None,
                      status: Optional[str] = None) -> List[Session]:
        """Sessions of the project, optionally of one agent and/or in one status ("idle",
        "running", "requires_action", "failed")."""
        if status not in _SESSION_STATUS:
            raise ValueError(f"status must be one of {sorted(k for k in _SESSION_STATUS if k)}")
        out: List[Session] = []
        token = ""
        while True:
            resp = self._transport.unary(self._sessions.ListSessions, session_pb2.ListSessionsRequest(
                agent_id=_agent_id(agent) if agent is not None else "",
                status=_SESSION_STATUS[status], page_token=token), retry=True)
            out.extend(Session(self, s) for s in resp.sessions)
            token = resp.next_page_token
            if not token:
                return out

    # ---- usage -------------------------------------------------------------------------------

    def get_usage(self, group_by: Union[str, int] = "day", *, project_id: str = "",
                  start_time=None, end_time=None) -> project_pb2.GetUsageResponse:
        """Usage rows grouped by "agent", "session", "model" or "day", and their total.
        `start_time`/`end_time`: datetime (UTC if naive) or None for unbounded."""
        if isinstance(group_by, str):
            if group_by not in _GROUP_BY:
                raise ValueError(f"group_by must be one of {sorted(_GROUP_BY)}")
            group_by = _GROUP_BY[group_by]
        req = project_pb2.GetUsageRequest(project_id=project_id, group_by=group_by)
        if start_time is not None:
            req.start_time.FromDatetime(start_time)
        if end_time is not None:
            req.end_time.FromDatetime(end_time)
        return self._transport.unary(self._projects.GetUsage, req, retry=True)

