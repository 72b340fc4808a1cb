"""On a terminal, progress is a live display (rich) on stderr; stdout keeps the plan."""

from __future__ import annotations

import os
import pty
import subprocess

from support.e2e import E2EProject


def test_a_terminal_gets_the_live_display_and_a_pipe_gets_the_plan(project: E2EProject) -> None:
    project.server.set_faults(fail_next={"GET /v3/faces": 1})
    leader, follower = pty.openpty()
    env = project.env()
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        project.command("plan", "--env", "test"),
        stdout=subprocess.PIPE,
        stderr=follower,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out, _ = proc.communicate(timeout=60)
    os.close(leader)
    assert proc.returncode == 0
    terminal = seen.decode(errors="replace")
    assert "\x1b[" in terminal  # drawn (cursor moves, colour), not plain lines
    assert "reading live state" in terminal
    assert "503 on GET /v3/faces, retrying in" in terminal
    assert b"+ Character/tommy" in out and b"\x1b[" not in out  # stdout is a pipe: plain
