#!/usr/bin/env python3
"""Client tools: a Python function decorated with @agentd.tool runs on this machine whenever
the model asks for it; Session.run() loops until the turn is answered.

    AGENTD_ADDR=... AGENTD_API_KEY=... python3 examples/python/tools.py [--model echo]

With the built-in `echo` model the prompt `/tool NAME {json args}` makes the model call a tool,
so the whole loop runs without a real model; with a real one, ask in plain words (--prompt).
"""

import argparse
import json
import os
from typing import Literal

from example_support import agentd, run

TEMPERATURES_C = {"paris": 21, "oslo": 9, "lima": 18}


@agentd.tool
def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> dict:
    """Current weather for a city.

    Args:
        city: City name, e.g. "Paris".
        unit: Temperature unit.
    """
    print(f"  [tool] get_weather(city={city!r}, unit={unit!r})")
    if city.lower() not in TEMPERATURES_C:
        raise ValueError(f"no weather station in {city}")  # sent to the model as an error
    t = TEMPERATURES_C[city.lower()]
    if unit == "fahrenheit":
        t = round(t * 9 / 5 + 32)
    return {"city": city, "temperature": t, "unit": unit, "sky": "sunny"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("AGENTD_MODEL", "echo"))
    parser.add_argument("--city", default="Paris")
    parser.add_argument("--prompt", help="what to ask (default: a /tool command for echo)")
    args = parser.parse_args()

    client = agentd.Client()
    agent = client.create_agent(name="weather-example", model=args.model,
                                instructions="Use get_weather to answer weather questions.",
                                tools=[get_weather])
    print("tool schema:", agent.tools[0].parameters_json_schema)
    session = client.create_session(agent)
    prompt = args.prompt or ("/tool get_weather " + json.dumps({"city": args.city})
                             if args.model == "echo" else f"What is the weather in {args.city}?")
    print(f"you: {prompt}")
    result = session.run(prompt, tools=[get_weather])
    print(f"answer: {result.output_text}")
    print(f"status: {result.status}, turns: {len(result.turns)}, "
          f"model calls: {result.usage.model_calls}, tokens: {result.usage.total_tokens}")
    return 0 if result.status == agentd.TurnStatus.COMPLETED else 1


if __name__ == "__main__":
    run(main)
