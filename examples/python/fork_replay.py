#!/usr/bin/env python3
"""Forks and replays: branch a conversation at an earlier point, and re-run a session's inputs
against another model in a new session (model evaluation on real conversations).

    AGENTD_ADDR=... AGENTD_API_KEY=... python3 examples/python/fork_replay.py [--replay-model echo]
"""

import argparse
import os

from example_support import agentd, run

MESSAGE = agentd.common_pb2.EVENT_TYPE_MESSAGE
TURN_COMPLETED = agentd.common_pb2.EVENT_TYPE_TURN_COMPLETED
ROLE = {agentd.common_pb2.ROLE_USER: "user", agentd.common_pb2.ROLE_ASSISTANT: "agent"}


def transcript(session: "agentd.Session") -> str:
    return " | ".join(f"{ROLE.get(e.message.role, '?')}: {e.message.text}"
                      for e in session.events() if e.type == MESSAGE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("AGENTD_MODEL", "echo"))
    parser.add_argument("--replay-model", default="echo")
    args = parser.parse_args()

    client = agentd.Client()
    agent = client.create_agent(name="fork-example", model=args.model)
    session = client.create_session(agent)
    first = session.run("I would like tea.")
    session.run("Make it green tea.")
    print(f"original {session.session_id}: {transcript(session)}")

    # Branch after the first turn: the fork shares history up to that event, then diverges.
    at_seq = max(e.seq for e in first.events if e.type == TURN_COMPLETED)
    fork = session.fork(at_seq=at_seq)
    fork.run("Actually, coffee please.")
    print(f"fork at seq {at_seq} {fork.session_id}: {transcript(fork)}")
    print(f"original unchanged: {transcript(session)}")

    # Replay the original's inputs against another model, in a new session.
    replayed, result = session.replay(model=args.replay_model)
    outputs = [t.output_text for t in result.turns]
    print(f"replay on {args.replay_model} {replayed.session_id}: {outputs}")
    return 0


if __name__ == "__main__":
    run(main)
