"""Turns against a real agentd with the echo model: the client-tool loop, errors inside tools,
missing tools, and streaming across tool rounds."""

import json

import agentd
from agentd import tool
from agentd.v1 import common_pb2


@tool
def get_weather(city: str, days: int = 1) -> str:
    """Weather for a city.

    Args:
        city: The city.
        days: Days ahead.
    """
    return f"sunny in {city} for {days} day(s)"


@tool
def broken_lookup(city: str) -> str:
    """Always fails."""
    raise ValueError(f"no station near {city}")


def _agent(client, unique, tools):
    return client.create_agent(name=f"turns-{unique}", model="echo",
                               instructions="Answer briefly.", tools=tools)


def test_plain_turn(client, unique):
    agent = _agent(client, unique, [])
    session = client.create_session(agent)
    result = session.run("hello there")
    assert result.status == agentd.TurnStatus.COMPLETED
    assert result.status == "completed"
    assert result.output_text == "hello there"
    assert len(result.turns) == 1
    assert result.usage.model_calls == 1
    assert result.usage.output_tokens > 0
    types = [e.type for e in result.events]
    assert types[0] == common_pb2.EVENT_TYPE_TURN_STARTED
    assert types[-1] == common_pb2.EVENT_TYPE_TURN_COMPLETED
    assert result.last_seq == session.get().proto.last_seq


def test_tool_loop(client, unique):
    agent = _agent(client, unique, [get_weather])
    assert json.loads(agent.tools[0].parameters_json_schema)["required"] == ["city"]
    session = client.create_session(agent.agent_id)  # an agent_id works as well as an Agent
    result = session.run('/tool get_weather {"city": "Paris", "days": 2}', tools=[get_weather])
    assert result.status == "completed", result.error
    assert result.output_text == "sunny in Paris for 2 day(s)"
    assert len(result.turns) == 2
    assert result.turns[0].status == common_pb2.TURN_STATUS_REQUIRES_ACTION
    assert result.usage.model_calls == 2  # summed over both turns
    assert result.usage.input_tokens == sum(t.usage.input_tokens for t in result.turns)
    results = [e.tool_result for e in result.events
               if e.type == common_pb2.EVENT_TYPE_TOOL_RESULT]
    assert [(r.output, r.is_error) for r in results] == [("sunny in Paris for 2 day(s)", False)]
    assert session.get().proto.status == agentd.session_pb2.SESSION_STATUS_IDLE


def test_tool_exception_becomes_is_error_result(client, unique):
    agent = _agent(client, unique, [broken_lookup])
    session = client.create_session(agent)
    result = session.run('/tool broken_lookup {"city": "Atlantis"}', tools=[broken_lookup])
    assert result.status == "completed"
    assert result.output_text == "ValueError: no station near Atlantis"
    results = [e.tool_result for e in result.events
               if e.type == common_pb2.EVENT_TYPE_TOOL_RESULT]
    assert len(results) == 1 and results[0].is_error


def test_tool_output_that_is_not_utf8_is_sent_with_replacements(client, unique):
    @tool
    def raw_bytes() -> str:
        """Returns text decoded with surrogateescape."""
        return b"bad\x80end".decode("utf-8", "surrogateescape")

    agent = _agent(client, unique, [raw_bytes])
    session = client.create_session(agent)
    result = session.run("/tool raw_bytes {}", tools=[raw_bytes])
    assert result.status == "completed", result.error
    assert result.output_text == "bad?end"
    assert session.get().proto.status == agentd.session_pb2.SESSION_STATUS_IDLE


def test_async_tool_runs_in_the_loop(client, unique):
    @tool
    async def async_weather(city: str) -> str:
        """Weather, asynchronously."""
        return f"cloudy in {city}"

    agent = _agent(client, unique, [async_weather])
    session = client.create_session(agent)
    result = session.run('/tool async_weather {"city": "Oslo"}', tools=[async_weather])
    assert result.status == "completed", result.error
    assert result.output_text == "cloudy in Oslo"


def test_one_tools_list_serves_create_agent_and_run(client, unique):
    tools = [get_weather, agentd.builtin_tool("state_get")]
    agent = _agent(client, unique, tools)
    session = client.create_session(agent)
    result = session.run('/tool get_weather {"city": "Rome"}', tools=tools)
    assert result.status == "completed", result.error
    assert result.output_text == "sunny in Rome for 1 day(s)"


def test_missing_tool_stops_with_requires_action(client, unique):
    agent = _agent(client, unique, [get_weather])
    session = client.create_session(agent)
    result = session.run('/tool get_weather {"city": "Lima"}', tools=[broken_lookup])
    assert result.status == agentd.TurnStatus.REQUIRES_ACTION
    assert len(result.turns) == 1
    [call] = result.required_tool_calls
    assert call.name == "get_weather"
    assert json.loads(call.arguments_json) == {"city": "Lima"}
    assert session.get().proto.status == agentd.session_pb2.SESSION_STATUS_REQUIRES_ACTION

    # The caller answers it by hand; the loop then finishes.
    done = session.run(tool_results=[{"tool_call_id": call.id, "output": "rainy"}])
    assert done.status == "completed"
    assert done.output_text == "rainy"


def test_max_tool_rounds_zero_runs_no_tool(client, unique):
    calls = []

    @tool
    def counted(city: str) -> str:
        calls.append(city)
        return "x"

    agent = _agent(client, unique, [counted])
    session = client.create_session(agent)
    result = session.run('/tool counted {"city": "A"}', tools=[counted], max_tool_rounds=0)
    assert result.status == "requires_action"
    assert calls == []


def test_stream_across_a_tool_round(client, unique):
    agent = _agent(client, unique, [get_weather])
    session = client.create_session(agent)
    stream = session.stream('/tool get_weather {"city": "Kyoto"}', tools=[get_weather])
    items = list(stream)
    kinds = [te.WhichOneof("kind") for te in items]
    results = [te.result for te in items if te.WhichOneof("kind") == "result"]
    assert [r.status for r in results] == [common_pb2.TURN_STATUS_REQUIRES_ACTION,
                                           common_pb2.TURN_STATUS_COMPLETED]
    assert kinds[-1] == "result"
    deltas = "".join(te.delta.text for te in items if te.WhichOneof("kind") == "delta")
    assert deltas == "sunny in Kyoto for 1 day(s)"
    seqs = [te.event.seq for te in items if te.WhichOneof("kind") == "event"]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)) and seqs[0] == 1
    event_types = {te.event.type for te in items if te.WhichOneof("kind") == "event"}
    assert common_pb2.EVENT_TYPE_TOOL_CALL in event_types
    assert common_pb2.EVENT_TYPE_TOOL_RESULT in event_types
    assert stream.result.status == "completed"
    assert stream.result.output_text == "sunny in Kyoto for 1 day(s)"
    assert len(stream.result.turns) == 2
    assert seqs[-1] == session.get().proto.last_seq


def test_stream_plain_text(client, unique):
    session = client.create_session(_agent(client, unique, []))
    stream = session.stream("good morning")
    deltas = [te.delta.text for te in stream if te.WhichOneof("kind") == "delta"]
    assert "".join(deltas) == "good morning"
    assert stream.result.output_text == "good morning"
    assert stream.result.status == "completed"


def test_approval_of_a_server_tool(client, unique):
    # state_put runs inside agentd, but only once approved.
    agent = _agent(client, unique, [agentd.builtin_tool("state_put", requires_approval=True)])
    session = client.create_session(agent)
    first = session.run('/tool state_put {"key": "plan", "value": "ship it"}')
    assert first.status == agentd.TurnStatus.REQUIRES_ACTION
    call = first.required_tool_calls[0]
    assert call.requires_approval and call.name == "state_put"
    assert session.list_state() == []  # nothing ran

    rejected = session.run(approvals=[{"tool_call_id": call.id, "approved": False,
                                       "reason": "not now"}])
    assert rejected.status == "completed", rejected.error
    assert "rejected by the approver: not now" in rejected.output_text

    again = session.run('/tool state_put {"key": "plan", "value": "ship it"}')
    assert again.status == agentd.TurnStatus.REQUIRES_ACTION
    done = session.run(approvals=[again.required_tool_calls[0].id])
    assert done.status == "completed", done.error
    results = [e.tool_result for e in done.events
               if e.type == common_pb2.EVENT_TYPE_TOOL_RESULT]
    assert len(results) == 1 and not results[0].is_error, results
    assert [e.key for e in session.list_state()] == ["plan"]


def test_a_tool_result_for_an_approval_call_is_refused(client, unique):
    agent = _agent(client, unique, [agentd.builtin_tool("state_put", requires_approval=True)])
    session = client.create_session(agent)
    first = session.run('/tool state_put {"key": "k", "value": "v"}')
    call = first.required_tool_calls[0]
    try:
        session.run(tool_results=[{"tool_call_id": call.id, "output": "faked"}])
    except agentd.FailedPrecondition as e:
        assert "requires approval" in e.message
    else:
        raise AssertionError("a tool result must not answer a call waiting for approval")
