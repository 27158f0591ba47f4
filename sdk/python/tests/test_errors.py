"""Status codes become AgentdError subclasses carrying code, message and request id; the
client's defaults come from the environment."""

import grpc
import pytest

import agentd
from conftest import free_port

FAST_RETRY = agentd.RetryPolicy(max_attempts=2, initial_backoff=0.01, max_backoff=0.02)


def test_wrong_key_is_unauthenticated(server):
    with agentd.Client(server.address, api_key="agd_not_a_real_key_0000000000") as c:
        with pytest.raises(agentd.Unauthenticated) as err:
            c.list_agents()
    e = err.value
    assert isinstance(e, agentd.AgentdError)
    assert e.code == grpc.StatusCode.UNAUTHENTICATED
    assert e.message
    assert e.request_id and e.request_id.startswith("req_")
    assert str(e).startswith("UNAUTHENTICATED: ")
    assert e.request_id in str(e)


def test_missing_key_is_unauthenticated(server, monkeypatch):
    monkeypatch.delenv("AGENTD_API_KEY", raising=False)
    with agentd.Client(server.address) as c:
        with pytest.raises(agentd.Unauthenticated):
            c.list_agents()


def test_missing_session_is_not_found(client):
    with pytest.raises(agentd.NotFound) as err:
        client.get_session("sess_does_not_exist")
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    assert "sess_does_not_exist" in err.value.message
    assert err.value.request_id
    with pytest.raises(agentd.NotFound):
        client.session("sess_does_not_exist").run("hi")


def test_bad_input_is_invalid_argument(client, unique):
    with pytest.raises(agentd.InvalidArgument) as err:
        client.create_agent(name=f"bad-{unique}", model="no-such-model")
    assert "no-such-model" in err.value.message
    agent = client.create_agent(name=f"ok-{unique}", model="echo")
    with pytest.raises(agentd.InvalidArgument):
        client.create_session(agent, session_id="spaces are not allowed")
    session = client.create_session(agent)
    with pytest.raises(agentd.InvalidArgument):
        session.run(idempotency_key="bad key!", input="x")


def test_busy_is_failed_precondition_for_pending_tool_calls(client, unique):
    from test_turns import get_weather
    agent = client.create_agent(name=f"busy-{unique}", model="echo", tools=[get_weather])
    session = client.create_session(agent)
    assert session.run('/tool get_weather {"city": "Oslo"}').status == "requires_action"
    # The session waits for tool results: new input is refused until they arrive.
    with pytest.raises(agentd.FailedPrecondition) as err:
        session.run("something else")
    assert "waiting for tool results" in err.value.message


def test_idempotency_key_semantics(client, unique):
    session = client.create_session(client.create_agent(name=f"idem-{unique}", model="echo"))
    first = session.run("same", idempotency_key=f"k-{unique}")
    last_seq = session.get().proto.last_seq
    again = session.run("same", idempotency_key=f"k-{unique}")
    assert again.turns[0] == first.turns[0]  # the first call's result, nothing appended
    assert session.get().proto.last_seq == last_seq
    with pytest.raises(agentd.InvalidArgument) as err:
        session.run("different", idempotency_key=f"k-{unique}")
    assert "different request body" in err.value.message


def test_server_down_is_unavailable(server):
    address = f"127.0.0.1:{free_port()}"
    with agentd.Client(address, api_key=server.key, retry=FAST_RETRY, timeout=5) as c:
        with pytest.raises(agentd.Unavailable) as err:
            c.list_agents()
    assert err.value.request_id is None


def test_env_defaults(server, monkeypatch):
    monkeypatch.setenv("AGENTD_ADDR", server.address)
    monkeypatch.setenv("AGENTD_API_KEY", server.key)
    with agentd.Client() as c:
        assert c.address == server.address
        assert isinstance(c.list_agents(), list)
    # Arguments win over the environment.
    monkeypatch.setenv("AGENTD_API_KEY", "agd_wrong_key_from_the_environment")
    with agentd.Client(api_key=server.key) as c:
        c.list_agents()
    with agentd.Client() as c:
        with pytest.raises(agentd.Unauthenticated):
            c.list_agents()
    monkeypatch.delenv("AGENTD_ADDR")
    assert agentd.Client(api_key="k").address == "127.0.0.1:7700"


def test_client_side_argument_errors(client):
    with pytest.raises(TypeError):
        client.create_session(None)
    with pytest.raises(ValueError):
        client.session("")
    with pytest.raises(ValueError):
        client.list_sessions(status="sleeping")
    with pytest.raises(ValueError):
        client.session("s").run("x", on_busy="wait")
    with pytest.raises(ValueError):
        agentd.Client("127.0.0.1:1", certificate_chain=b"x")
