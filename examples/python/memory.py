#!/usr/bin/env python3
"""Long-term memory across sessions: what one session saves, a later session finds.

    AGENTD_ADDR=... AGENTD_API_KEY=... python3 examples/python/memory.py [--user alice]

The agent gets agentd's BUILTIN tools memory_put and memory_search (they run inside agentd).
With the `echo` model, `/tool NAME {json args}` makes the model call them; a real model decides
on its own. The application can also read and write memory directly (client.memory).
"""

import argparse
import json
import os

from example_support import agentd, run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("AGENTD_MODEL", "echo"))
    parser.add_argument("--user", default="alice")
    args = parser.parse_args()
    namespace = f"users/{args.user}/preferences"

    client = agentd.Client()
    agent = client.create_agent(
        name="memory-example", model=args.model,
        instructions=f"Remember the user's preferences in {namespace} and look them up later.",
        tools=[agentd.builtin_tool("memory_put"), agentd.builtin_tool("memory_search")])

    # Session 1: the agent stores a preference (the fixed key makes a rerun replace it).
    first = client.create_session(agent)
    saved = first.run("/tool memory_put " + json.dumps(
        {"namespace": namespace, "key": "seat", "text": "prefers window seats on trains"}))
    print(f"session 1 ({first.session_id}) saved: {saved.output_text}")

    # The application adds one directly.
    client.memory.put(namespace, "vegetarian; no mushrooms", key="food")

    # Session 2: a new conversation with no shared history still finds both.
    second = client.create_session(agent)
    found = second.run("/tool memory_search " + json.dumps(
        {"query": "window seat", "namespace_prefix": f"users/{args.user}/"}))
    results = json.loads(found.output_text)["results"]
    print(f"session 2 ({second.session_id}) recalled: {results[0]['text']}")

    for hit in client.memory.search("mushrooms", namespace_prefix=f"users/{args.user}/", top_k=1):
        print(f"app search: {hit.record.key} -> {hit.record.text} (score {hit.score:.2f})")
    return 0


if __name__ == "__main__":
    run(main)
