"""Shared bits of the agentd Python examples: find the SDK in a source checkout, and turn
connection and key problems into one clear line and exit code 1 (no traceback)."""

import os
import sys

try:
    import agentd
except ImportError:
    # Not installed: use the SDK of this checkout (its stubs come from the CMake build).
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "sdk", "python"))
    try:
        import agentd
    except ImportError as e:
        print(f"error: cannot import the agentd SDK: {e}", file=sys.stderr)
        sys.exit(1)


def describe(err: "agentd.AgentdError") -> str:
    """One line that says what went wrong and what to do about it."""
    address = os.environ.get("AGENTD_ADDR") or "127.0.0.1:7700"
    if isinstance(err, agentd.Unavailable):
        return (f"error: cannot reach agentd at {address} (UNAVAILABLE: {err.message}); "
                "is it running? set AGENTD_ADDR=HOST:PORT")
    if isinstance(err, agentd.Unauthenticated):
        return (f"error: agentd refused the API key (UNAUTHENTICATED: {err.message}); "
                "set AGENTD_API_KEY")
    return f"error: {err}"


def run(main) -> None:
    """Runs main() and exits with its code; AgentdError -> one line on stderr and exit 1."""
    try:
        code = main()
    except agentd.AgentdError as err:
        print(describe(err), file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code or 0)
