"""`avatarsync chat` in a real terminal (a pty that is the process's controlling
terminal, so Ctrl-C is the tty's SIGINT) and through pipes (scriptable)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import subprocess
import termios
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from support.agents import PASSING, open_conversations, write_agents
from support.e2e import E2EProject

STREAM_DELAY_MS = 150  # between chunks: the reply visibly arrives in pieces
CHAT = ("chat", "aria-support", "--env", "test")


class Terminal:
    """The leader side of a pty: what was shown, read as it arrives."""

    def __init__(self, leader: int) -> None:
        self.leader = leader
        self.reads: list[str] = []  # every read, in order: the pieces as they came

    @property
    def text(self) -> str:
        return "".join(self.reads)

    def type(self, data: bytes) -> None:
        os.write(self.leader, data)

    def wait_for(self, needle: str, *, after: int = 0, timeout: float = 20) -> int:
        """Read until `needle` shows after position `after`; its position."""
        deadline = time.monotonic() + timeout
        while (found := self.text.find(needle, after)) < 0:
            left = deadline - time.monotonic()
            assert left > 0, f"{needle!r} never appeared; the terminal shows:\n{self.text}"
            ready, _, _ = select.select([self.leader], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.leader, 4096)
                except OSError:
                    chunk = b""
                assert chunk, f"the terminal closed before {needle!r}:\n{self.text}"
                self.reads.append(chunk.decode(errors="replace"))
        return found


def _controlling_terminal() -> None:
    # In the child: a new session whose controlling terminal is the pty (stdin).
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@contextmanager
def _chat_in_a_terminal(
    project: E2EProject,
) -> Iterator[tuple[subprocess.Popen[bytes], Terminal]]:
    """`chat` in a pty that is its controlling terminal; killed if still running after."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        project.command(*CHAT),
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=project.env(),
        preexec_fn=_controlling_terminal,
    )
    os.close(follower)
    try:
        yield proc, Terminal(leader)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)


def test_chat_streams_in_a_terminal_cancels_a_reply_and_quits(
    make_project: Callable[..., E2EProject],
) -> None:
    project = make_project(ws_chunk_delay_ms=STREAM_DELAY_MS)
    write_agents(project, PASSING)
    with _chat_in_a_terminal(project) as (proc, term):
        term.wait_for("/quit or Ctrl-D ends it")
        prompt = term.wait_for("you> ")

        term.type(b"Hello!\r")
        first = term.wait_for("Hello! ", after=prompt + 5)
        shown_then = term.text
        end = term.wait_for("How can I help you today?", after=first)
        # The reply came in pieces: when its first word was on screen, the rest was not.
        assert "today?" not in shown_then[first:]
        pieces = [r for r in term.reads if any(w in r for w in ("I'm", "Aria.", "How", "help"))]
        assert len(pieces) >= 3, term.reads
        assert "aria-support> Hello! I'm Aria. How can I help you today?" in term.text
        prompt = term.wait_for("you> ", after=end)
        assert open_conversations(project) == 1

        # Ctrl-C while a reply streams stops that reply only.
        term.type(b"tell me everything about your products and plans\r")
        started = term.wait_for("Aria here. ", after=prompt + 5)
        term.type(b"\x03")
        cancelled = term.wait_for("(reply cancelled)", after=started)
        assert "tell me everything about your products and plans" not in term.text[started:]
        prompt = term.wait_for("you> ", after=cancelled)
        assert proc.poll() is None
        assert open_conversations(project) == 1  # the conversation goes on

        term.type(b"bye\r")
        term.wait_for("Goodbye from Aria! Thanks for the conversation.", after=prompt)
        term.type(b"/quit\r")
        term.wait_for(" ended", after=prompt)
        assert proc.wait(timeout=20) == 0
    assert open_conversations(project) == 0


def test_ctrl_d_ends_the_conversation(make_project: Callable[..., E2EProject]) -> None:
    project = make_project()
    write_agents(project, PASSING)
    with _chat_in_a_terminal(project) as (proc, term):
        term.wait_for("you> ")
        term.type(b"\x04")  # Ctrl-D at the start of a line: end of input
        term.wait_for(" ended")
        assert proc.wait(timeout=20) == 0
    assert open_conversations(project) == 0


def test_without_a_terminal_chat_reads_lines_and_writes_replies(
    make_project: Callable[..., E2EProject],
) -> None:
    project = make_project()
    write_agents(project, PASSING)
    result = project.process(
        "chat", "aria-support", "--env", "test", stdin="Hello!\n\nWhat is your policy on returns?\n"
    )
    assert result.code == 0, result.err
    assert result.out == (
        "Hello! I'm Aria. How can I help you today?\n"
        "Aria here. Happy to help with return policy: what would you like to know?\n"
    )
    assert "conversation " in result.err and " ended" in result.err
    assert open_conversations(project) == 0


def test_chat_names_an_unknown_profile(make_project: Callable[..., E2EProject]) -> None:
    project = make_project()
    write_agents(project, PASSING)
    result = project.cli("chat", "aria-suport", "--env", "test")
    assert result.code == 1
    assert "no AgentProfile 'aria-suport' (did you mean 'aria-support'?)" in result.err


def test_sigterm_mid_reply_ends_the_conversation(make_project: Callable[..., E2EProject]) -> None:
    project = make_project(ws_first_chunk_delay_ms=20_000)
    write_agents(project, PASSING)
    proc = subprocess.Popen(
        project.command(*CHAT),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=project.env(),
        text=True,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write("Hello!\n")
        proc.stdin.flush()
        deadline = time.monotonic() + 20
        while open_conversations(project) < 1:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.3)  # the reply is being waited for
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert " ended" in err
    assert open_conversations(project) == 0


def test_ctrl_c_at_the_prompt_ends_the_chat_cleanly(
    make_project: Callable[..., E2EProject],
) -> None:
    project = make_project()
    write_agents(project, PASSING)
    with _chat_in_a_terminal(project) as (proc, term):
        prompt = term.wait_for("you> ")
        term.type(b"Hello!\r")
        prompt = term.wait_for("you> ", after=prompt + 5)
        term.type(b"\x03")
        term.wait_for(" ended", after=prompt)
        assert proc.wait(timeout=20) == 0
    assert "Fatal Python error" not in term.text
    assert open_conversations(project) == 0
