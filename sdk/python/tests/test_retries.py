"""Retries after UNAVAILABLE (turns repeat with the same idempotency key and run once), which
calls are retried, and the metadata every call carries."""

import pytest

import agentd
from agentd.v1 import common_pb2
from grpc_helpers import Recorder
from test_turns import get_weather

FAST_RETRY = agentd.RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05)


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
def rclient(server, recorder):
    with agentd.Client(server.address, api_key=server.key, retry=FAST_RETRY, timeout=30,
                       interceptors=[recorder]) as c:
        yield c


def _turn_starts(session):
    return [e for e in session.events() if e.type == common_pb2.EVENT_TYPE_TURN_STARTED]


def test_turn_retried_with_same_idempotency_key_runs_once(rclient, recorder, unique):
    session = rclient.create_session(rclient.create_agent(name=f"r-{unique}", model="echo"))
    recorder.fail["RunTurn"] = [True]  # the server runs the turn, the client never sees the reply
    result = session.run("only once")
    assert result.status == "completed" and result.output_text == "only once"
    attempts = recorder.methods("RunTurn")
    assert len(attempts) == 2
    keys = [req.idempotency_key for _, req in attempts]
    assert keys[0] and keys[0] == keys[1]
    assert attempts[0][1] == attempts[1][1]  # the very same request body
    assert len(_turn_starts(session)) == 1
    assert session.get().proto.usage.model_calls == 1


def test_a_turn_the_server_recorded_as_failed_is_not_retried(rclient, recorder, unique):
    # Model "down" refuses every connection: the server retries and gives up (UNAVAILABLE) and
    # records the failed turn; another attempt would only record another one.
    session = rclient.create_session(rclient.create_agent(name=f"d-{unique}", model="down"))
    with pytest.raises(agentd.Unavailable):
        session.run("anyone there?")
    assert len(recorder.methods("RunTurn")) == 1
    with pytest.raises(agentd.Unavailable):
        for _ in session.stream("still nobody?"):
            pass
    assert len(recorder.methods("StreamTurn")) == 1
    assert len(_turn_starts(session)) == 2
    failed = [e for e in session.events() if e.type == common_pb2.EVENT_TYPE_TURN_FAILED]
    assert len(failed) == 2


def test_every_tool_round_survives_a_lost_reply(rclient, recorder, unique):
    session = rclient.create_session(
        rclient.create_agent(name=f"rt-{unique}", model="echo", tools=[get_weather]))
    recorder.fail["RunTurn"] = [True]
    first = session.run('/tool get_weather {"city": "Bern"}', tools=[get_weather])
    assert first.output_text == "sunny in Bern for 1 day(s)"
    keys = [req.idempotency_key for _, req in recorder.methods("RunTurn")]
    # Attempt 1 and its retry share a key; the tool-result round has a key of its own.
    assert len(keys) == 3 and keys[0] == keys[1] and keys[2] == keys[0] + ".1"
    assert len(_turn_starts(session)) == 2  # one per round, none repeated

    recorder.calls.clear()
    recorder.fail["RunTurn"] = [False, True]  # now the tool-result round loses its reply
    second = session.run('/tool get_weather {"city": "Chur"}', tools=[get_weather])
    assert second.output_text == "sunny in Chur for 1 day(s)"
    keys = [req.idempotency_key for _, req in recorder.methods("RunTurn")]
    assert len(keys) == 3 and keys[1] == keys[2] == keys[0] + ".1"
    assert len(_turn_starts(session)) == 4


def test_cut_stream_is_retried_with_same_key_without_duplicates(rclient, recorder, unique):
    session = rclient.create_session(rclient.create_agent(name=f"rs-{unique}", model="echo"))
    recorder.fail["StreamTurn"] = [True]  # the turn finishes; its final message is lost
    stream = session.stream("streamed once")
    items = list(stream)
    kinds = [te.WhichOneof("kind") for te in items]
    assert kinds.count("result") == 1 and kinds[-1] == "result"
    seqs = [te.event.seq for te in items if te.WhichOneof("kind") == "event"]
    assert len(seqs) == len(set(seqs)) and seqs  # delivered once each
    assert stream.result.output_text == "streamed once"
    keys = [req.idempotency_key for _, req in recorder.methods("StreamTurn")]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert len(_turn_starts(session)) == 1


def test_reads_and_deletes_retry_creates_do_not(rclient, recorder, unique):
    agent = rclient.create_agent(name=f"rr-{unique}", model="echo")
    session = rclient.create_session(agent)

    recorder.after = False  # fail before the call reaches the server
    recorder.fail["GetSession"] = [True, True]
    assert session.get().session_id == session.session_id
    assert len(recorder.methods("GetSession")) == 3

    recorder.fail["CreateAgent"] = [True]
    with pytest.raises(agentd.Unavailable):
        rclient.create_agent(name=f"rr2-{unique}", model="echo")
    assert len(recorder.methods("CreateAgent")) == 2  # the first one above, and this one once

    recorder.fail["CreateSession"] = [True]
    with pytest.raises(agentd.Unavailable):
        rclient.create_session(agent)

    recorder.fail["GetAgent"] = [True] * 5  # more failures than attempts
    with pytest.raises(agentd.Unavailable) as err:
        rclient.get_agent(agent)
    assert "injected" in err.value.message
    assert len(recorder.methods("GetAgent")) == FAST_RETRY.max_attempts

    # A delete whose reply was lost: the retry finds nothing, which means it was done.
    recorder.after = True
    recorder.fail["DeleteSession"] = [True]
    session.delete()
    assert len(recorder.methods("DeleteSession")) == 2
    with pytest.raises(agentd.NotFound):
        session.get()


def test_session_header_and_key_on_every_call(rclient, recorder, server, unique):
    agent = rclient.create_agent(name=f"md-{unique}", model="echo", tools=[get_weather])
    sid = f"md-{unique}"
    session = rclient.create_session(agent, session_id=sid)
    session.run('/tool get_weather {"city": "Graz"}', tools=[get_weather])
    list(session.stream("streamed"))
    session.get()
    session.events()
    watch = session.watch()
    next(watch)
    watch.close()
    session.put_state("k", 1)
    session.get_state("k")
    session.list_state()
    with pytest.raises(agentd.FailedPrecondition):
        session.cancel()
    fork = session.fork()
    fork.delete()  # a session's forks go first
    session.delete()

    methods = {m.rsplit("/", 1)[-1] for m, _, _ in recorder.calls}
    assert {"CreateSession", "RunTurn", "StreamTurn", "GetSession", "ListEvents", "WatchEvents",
            "PutState", "GetState", "ListState", "CancelTurn", "ForkSession",
            "DeleteSession"} <= methods
    for method, md, req in recorder.calls:
        assert md.get("authorization") == "Bearer " + server.key, method
        if "/agentd.v1.SessionService/" in method:
            # Every session-scoped request names its session; the header must match it.
            assert req.session_id in (sid, fork.session_id), method
            assert md.get("x-agentd-session") == req.session_id, method
    assert [req.session_id for _, req in recorder.methods("DeleteSession")] == [
        fork.session_id, sid]


def test_backoff_grows_with_jitter_and_is_capped():
    policy = agentd.RetryPolicy(initial_backoff=0.1, max_backoff=1.0, multiplier=2.0)
    for i, cap in enumerate([0.1, 0.2, 0.4, 0.8, 1.0, 1.0]):
        waits = {policy.backoff(i) for _ in range(50)}
        assert all(cap / 2 <= w <= cap for w in waits)
        assert len(waits) > 1  # jittered
