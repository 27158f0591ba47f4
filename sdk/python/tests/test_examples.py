"""The examples in examples/python, run as programs against the fixture's server: exit codes,
key output, and one clear error line (no traceback) when the server is down or the key wrong."""

import os
import subprocess
import sys

import pytest

from conftest import REPO, SDK_DIR, free_port

EXAMPLES = REPO / "examples" / "python"


def run_example(name, address, key, stdin="", args=()):
    env = dict(os.environ, AGENTD_ADDR=address, AGENTD_API_KEY=key, PYTHONPATH=str(SDK_DIR))
    env.pop("AGENTD_MODEL", None)
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], input=stdin,
                          capture_output=True, text=True, env=env, timeout=60)


def test_chat(server):
    out = run_example("chat.py", server.address, server.key, stdin="hello agent\n\nsecond line\n/quit\nnever sent\n")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("session sess_")
    assert "agent> hello agent" in lines
    assert "agent> second line" in lines
    assert "never sent" not in out.stdout
    assert lines[-1].startswith("bye: session sess_") and "2 model calls" in lines[-1]


def test_tools(server):
    out = run_example("tools.py", server.address, server.key)
    assert out.returncode == 0, out.stderr
    assert "[tool] get_weather(city='Paris', unit='celsius')" in out.stdout
    assert 'answer: {"city": "Paris", "temperature": 21, "unit": "celsius", "sky": "sunny"}' in out.stdout
    assert "status: completed, turns: 2, model calls: 2" in out.stdout

    failing = run_example("tools.py", server.address, server.key, args=["--city", "Atlantis"])
    assert failing.returncode == 0, failing.stderr
    assert "answer: ValueError: no weather station in Atlantis" in failing.stdout


def test_memory(server):
    out = run_example("memory.py", server.address, server.key, args=["--user", "example-bob"])
    assert out.returncode == 0, out.stderr
    assert 'saved: {"key":"seat","namespace":"users/example-bob/preferences"}' in out.stdout
    assert "recalled: prefers window seats on trains" in out.stdout
    assert "app search: food -> vegetarian; no mushrooms" in out.stdout


def test_fork_replay(server):
    out = run_example("fork_replay.py", server.address, server.key)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "user: I would like tea. | agent: I would like tea. | user: Actually, coffee please." in text
    assert "original unchanged: user: I would like tea. | agent: I would like tea. | user: Make it green tea." in text
    assert "replay on echo sess_" in text and "['I would like tea.', 'Make it green tea.']" in text


@pytest.mark.parametrize("name", ["chat.py", "tools.py", "memory.py", "fork_replay.py"])
def test_errors_are_one_line(server, name):
    down = run_example(name, f"127.0.0.1:{free_port()}", server.key)
    assert down.returncode == 1
    assert down.stderr.startswith("error: cannot reach agentd at 127.0.0.1:")
    assert len(down.stderr.strip().splitlines()) == 1 and "Traceback" not in down.stderr

    wrong = run_example(name, server.address, "agd_wrong_key_000000000000000")
    assert wrong.returncode == 1
    assert wrong.stderr.startswith("error: agentd refused the API key (UNAUTHENTICATED")
    assert len(wrong.stderr.strip().splitlines()) == 1 and "Traceback" not in wrong.stderr
