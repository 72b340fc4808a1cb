"""The console script: the one frame a Ctrl-C during start-up can land in."""

from __future__ import annotations

import signal
import sys


def main() -> None:
    """`avatarsync`: import the CLI, then run it. An interrupt while importing
    exits 130 with one line, like one later on, not with a traceback. CI
    cancels a job with SIGTERM: it is treated like Ctrl-C (apply stops
    gracefully; everything else says 'Interrupted.' and exits 130)."""
    signal.signal(signal.SIGTERM, _interrupt)
    # httpx's package imports its own command-line client, which pulls in
    # rich and pygments (0.15 s) when they are installed; this process never
    # runs it. (Only here, in our own process: a library user's httpx is theirs.)
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    try:
        from avatarsync.cli import run
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
    run()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
