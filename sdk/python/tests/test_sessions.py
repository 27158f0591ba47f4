"""Session, agent, memory and usage calls against a real agentd."""

import threading

import pytest

import agentd
from agentd.v1 import common_pb2, session_pb2


def _session(client, unique, model="echo"):
    agent = client.create_agent(name=f"s-{unique}", model=model)
    return agent, client.create_session(agent)


def test_session_get_events_fork_delete(client, unique):
    agent, session = _session(client, unique)
    assert session.agent_id == agent.agent_id
    session.run("one")
    session.run("two")
    proto = session.get().proto
    assert proto.status == session_pb2.SESSION_STATUS_IDLE
    assert proto.usage.model_calls == 2

    events = session.events()
    assert [e.seq for e in events] == list(range(1, proto.last_seq + 1))
    texts = [e.message.text for e in events if e.type == common_pb2.EVENT_TYPE_MESSAGE]
    assert texts == ["one", "one", "two", "two"]  # user, echo reply, user, echo reply
    assert [e.seq for e in session.events(after_seq=2, limit=3)] == [3, 4, 5]

    # Fork after the first turn: the fork has its events, not the second turn's.
    first_turn_end = max(e.seq for e in events if e.type == common_pb2.EVENT_TYPE_TURN_COMPLETED
                         and e.turn_id == events[0].turn_id)
    fork = session.fork(at_seq=first_turn_end)
    assert fork.session_id != session.session_id
    assert fork.proto.parent_session_id == session.session_id
    assert fork.run("three").output_text == "three"
    fork_texts = [e.message.text for e in fork.events()
                  if e.type == common_pb2.EVENT_TYPE_MESSAGE]
    assert fork_texts == ["one", "one", "three", "three"]

    assert {s.session_id for s in client.list_sessions(agent)} == {
        session.session_id, fork.session_id}
    assert session.session_id in {s.session_id for s in client.list_sessions(status="idle")}

    fork.delete()
    with pytest.raises(agentd.NotFound):
        fork.get()
    with pytest.raises(agentd.NotFound):
        client.get_session(fork.session_id)


def test_client_chosen_session_id(client, unique):
    agent = client.create_agent(name=f"id-{unique}", model="echo")
    session = client.create_session(agent, session_id=f"chosen-{unique}",
                                    metadata={"user": "alice"})
    assert session.session_id == f"chosen-{unique}"
    assert client.get_session(f"chosen-{unique}").proto.metadata["user"] == "alice"
    with pytest.raises(agentd.AgentdError):
        client.create_session(agent, session_id=f"chosen-{unique}")


def test_state(client, unique):
    _, session = _session(client, unique)
    first = session.put_state("cart", {"items": [1, 2]})
    assert first.value == {"items": [1, 2]} and first.version == 1
    second = session.put_state("cart", {"items": [1, 2, 3]}, expected_version=1)
    assert second.version == 2
    with pytest.raises(agentd.Aborted):
        session.put_state("cart", {}, expected_version=1)
    assert session.get_state("cart").value == {"items": [1, 2, 3]}
    session.put_state("flag", True)
    assert {e.key: e.value for e in session.list_state()} == {"cart": {"items": [1, 2, 3]},
                                                              "flag": True}
    with pytest.raises(agentd.NotFound):
        session.get_state("nope")


def test_watch_history_then_live(client, unique):
    _, session = _session(client, unique)
    session.run("before")
    last = session.get().proto.last_seq
    watch = session.watch(after_seq=0)
    history = [next(watch) for _ in range(last)]
    assert [e.seq for e in history] == list(range(1, last + 1))
    session.run("after")  # its events reach the open watch
    live = []
    while not live or live[-1].type != common_pb2.EVENT_TYPE_TURN_COMPLETED:
        live.append(next(watch))
    watch.close()
    assert live[0].seq == last + 1
    assert "after" in [e.message.text for e in live if e.type == common_pb2.EVENT_TYPE_MESSAGE]


def test_busy_session_and_cancel(client, unique, gated_model):
    _, session = _session(client, unique, model="slow")
    gated_model.arm()
    outcome = {}

    def first_turn():
        try:
            outcome["result"] = session.run("hold on")
        except Exception as e:  # reported by the main thread
            outcome["error"] = e

    worker = threading.Thread(target=first_turn)
    worker.start()
    try:
        assert gated_model.started.wait(15), "the model call never reached the fake backend"
        with pytest.raises(agentd.FailedPrecondition) as busy:
            session.run("me too")
        assert busy.value.code.name == "FAILED_PRECONDITION"
        assert "already running" in busy.value.message
        cancelled = session.cancel()
        assert cancelled.status == agentd.TurnStatus.CANCELLED
    finally:
        gated_model.release()
        worker.join(30)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].status == "cancelled"
    with pytest.raises(agentd.FailedPrecondition):
        session.cancel()  # nothing runs any more
    assert session.get().proto.status != session_pb2.SESSION_STATUS_RUNNING


def test_agents_crud(client, unique):
    agent = client.create_agent(name=f"crud-{unique}", model="echo", instructions="v1",
                                metadata={"team": "sdk"})
    assert agent.version == 1
    assert client.get_agent(agent).instructions == "v1"
    updated = client.update_agent(agent.agent_id, instructions="v2")
    assert updated.version == 2 and updated.instructions == "v2" and updated.name == agent.name
    assert client.get_agent(agent.agent_id, version=1).instructions == "v1"
    assert agent.agent_id in {a.agent_id for a in client.list_agents()}
    with pytest.raises(ValueError):
        client.update_agent(agent, bogus=1)
    client.delete_agent(agent)
    with pytest.raises(agentd.NotFound):
        client.get_agent(agent)


def test_memory_across_sessions(client, unique):
    ns = f"users/{unique}/prefs"
    record = client.memory.put(ns, "prefers window seats on trains", key="seat")
    assert (record.namespace, record.key) == (ns, "seat")
    auto = client.memory.put(ns, "vegetarian, no mushrooms")
    assert auto.key
    assert client.memory.get(ns, "seat").text == "prefers window seats on trains"
    hits = client.memory.search("window seat", namespace_prefix=f"users/{unique}/", top_k=1)
    assert [h.record.key for h in hits] == ["seat"]
    assert hits[0].score > 0
    assert {r.key for r in client.memory.list(f"users/{unique}/")} == {"seat", auto.key}
    client.memory.delete(ns, "seat")
    with pytest.raises(agentd.NotFound):
        client.memory.get(ns, "seat")


def test_usage(client, unique):
    agent, session = _session(client, unique)
    session.run("count me")
    usage = client.get_usage("agent")
    rows = {r.group: r.usage for r in usage.rows}
    assert rows[agent.agent_id].model_calls == 1
    assert usage.total.model_calls >= 1
    with pytest.raises(ValueError):
        client.get_usage("week")
