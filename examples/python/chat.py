#!/usr/bin/env python3
"""A chat REPL over one agentd session: each stdin line is a turn, the reply streams back.

    AGENTD_ADDR=127.0.0.1:7700 AGENTD_API_KEY=... python3 examples/python/chat.py [--model echo]

Type /quit (or end the input) to leave. --session SESSION_ID continues an existing session.
"""

import argparse
import os
import sys

from example_support import agentd, describe, run


def turn(session: "agentd.Session", text: str) -> None:
    print("agent> ", end="", flush=True)
    streamed = []
    stream = session.stream(text)
    for ev in stream:
        if ev.WhichOneof("kind") != "delta":
            continue
        if ev.delta.reset:  # the model call is being retried: what streamed so far is void
            print(" [retrying] ", end="", flush=True)
            streamed.clear()
        else:
            streamed.append(ev.delta.text)
            print(ev.delta.text, end="", flush=True)
    result = stream.result
    if not streamed and result.output_text:
        print(result.output_text, end="")
    print()
    if result.status != agentd.TurnStatus.COMPLETED:
        print(f"[turn {result.status}: {result.error or 'see session events'}]")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("AGENTD_MODEL", "echo"))
    parser.add_argument("--instructions", default="You are a helpful assistant. Be brief.")
    parser.add_argument("--session", help="continue this session instead of starting one")
    args = parser.parse_args()

    client = agentd.Client()  # AGENTD_ADDR / AGENTD_API_KEY
    if args.session:
        session = client.get_session(args.session)
    else:
        agent = client.create_agent(name="chat-example", model=args.model,
                                    instructions=args.instructions)
        session = client.create_session(agent)
    print(f"session {session.session_id}; type /quit to leave", flush=True)

    prompt = sys.stdin.isatty()
    while True:
        if prompt:
            print("you> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        text = line.strip()
        if text in ("/quit", "/exit"):
            break
        if not text:
            continue
        try:
            turn(session, text)
        except (agentd.Unavailable, agentd.Unauthenticated):
            raise  # the server is gone or the key is wrong: leave
        except agentd.AgentdError as err:  # e.g. the session is busy: say so, keep chatting
            print(describe(err), file=sys.stderr)

    usage = session.get().proto.usage
    print(f"bye: session {session.session_id}, {usage.model_calls} model calls, "
          f"{usage.input_tokens + usage.output_tokens} tokens")
    return 0


if __name__ == "__main__":
    run(main)
