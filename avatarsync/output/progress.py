"""Progress on stderr: a live display on a terminal, timestamped lines in a CI log.

Both displays are `EventSink`s (see `avatarsync.progress`) and take apply's
outcomes too. What must never be missed — a retry, a rate-limit hold, a lock
wait, a failed change — is printed as a line in both; counts (pages read,
changes done, requests in flight) are a live status on a terminal and a line
every few seconds in a log, so a step that is only waiting still shows it is
alive. All text is scrubbed and has its control characters escaped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import IO, Any, Self

from avatarsync.output._format import escape_controls
from avatarsync.output.apply_report import format_progress
from avatarsync.planning.report import Outcome, Status
from avatarsync.progress import Event, InFlight, LockWaiting, Paced, PageRead, Retrying
from avatarsync.secret import scrub

__all__ = ["LiveProgress", "ProgressLines", "describe_wait", "open_progress"]

_HEARTBEAT = 5.0  # seconds between status lines in a log


def describe_wait(event: Retrying | Paced | LockWaiting) -> str:
    """The one line a wait is reported with, in both displays."""
    match event:
        case Retrying():
            return (
                f"{event.reason} on {event.method} {event.path}, retrying in "
                f"{event.delay:.1f} s (attempt {event.attempt}/{event.attempts})"
            )
        case Paced():
            return (
                f"rate limit: holding {event.method} {event.path} for {event.delay:.1f} s "
                "to stay under the server's limit"
            )
        case LockWaiting():
            limit = f" of {event.timeout:g}" if event.timeout else ""
            return (
                f"waiting for the lock of {event.environment!r} "
                f"({event.waited:.0f}{limit} s): {event.holder}"
            )


class _Counts:
    """What both displays count: pages read per collection, changes done, in flight."""

    def __init__(self) -> None:
        self.pages: dict[str, tuple[int, int]] = {}
        self.total_changes: int | None = None
        self.done = 0
        self.failed = 0
        self.in_flight = 0
        self.retries = 0

    def observe(self, event: Event) -> None:
        match event:
            case PageRead():
                self.pages[event.path] = (event.pages, event.total)
            case InFlight():
                self.in_flight = event.count
            case Retrying():
                self.retries += 1
            case Outcome():
                self.done += 1
                if event.status is Status.FAILED:
                    self.failed += 1

    def reading(self) -> str | None:
        if not self.pages:
            return None
        done = sum(p for p, _ in self.pages.values())
        total = sum(t for _, t in self.pages.values())
        return f"reading live state: {done}/{total} pages"

    def applying(self) -> str | None:
        if self.total_changes is None:
            return None
        text = f"applying: {self.done}/{self.total_changes} done, {self.in_flight} in flight"
        if self.retries:
            text += f", {self.retries} retr{'y' if self.retries == 1 else 'ies'}"
        if self.failed:
            text += f", {self.failed} failed"
        return text


class _Display:
    """What both displays do with an event: count it; a wait is a line; an
    outcome is a line (each display formats its own); a count that moved is
    the display's status to refresh."""

    def __init__(self) -> None:
        self._counts = _Counts()

    def start_apply(self, total: int) -> None:
        self._counts.total_changes = total

    def __call__(self, event: Event) -> None:
        self._counts.observe(event)
        match event:
            case Retrying() | Paced() | LockWaiting():
                self._wait(describe_wait(event))
            case Outcome():
                self._outcome(event)
            case PageRead() | InFlight():
                self._counted()

    def _wait(self, text: str) -> None:
        raise NotImplementedError

    def _outcome(self, outcome: Outcome) -> None:
        raise NotImplementedError

    def _counted(self) -> None:
        """Nothing by default: the live display redraws from the counts itself."""


class ProgressLines(_Display):
    """For a log (no terminal): every event worth a line, each with a UTC time.

    Status lines (pages read, changes done) at most every few seconds, and
    only while something moves, so a 10,000-character plan logs a handful of
    lines, not a line per page.
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        color: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._stream = stream
        self._color = color
        self._clock = clock
        self._last_status = clock()
        self._shown_status: str | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._status(force=True)

    @contextmanager
    def suspended(self) -> Iterator[None]:
        """Lines need no pause for a prompt or a payload in between."""
        yield

    def _wait(self, text: str) -> None:
        self._line(text)

    def _outcome(self, outcome: Outcome) -> None:
        self._line(self._numbered(format_progress(outcome, color=self._color)))

    def _counted(self) -> None:
        self._status()

    def _numbered(self, line: str) -> str:
        total = self._counts.total_changes
        return f"[{self._counts.done}/{total}] {line}" if total else line

    def _status(self, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last_status < _HEARTBEAT:
            return
        self._last_status = now
        text = self._counts.applying() if self._counts.total_changes else self._counts.reading()
        if text is not None and text != self._shown_status:
            self._shown_status = text
            self._line(text)

    def _line(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S", time.gmtime(self._clock()))
        self._stream.write(f"{stamp} {escape_controls(scrub(text))}\n")
        self._stream.flush()


class LiveProgress(_Display):
    """For a terminal: a status line redrawn in place (rich), lines above it.

    Only plain `Text` reaches rich, never markup: a path or message from the
    API may contain `[`…`]`.
    """

    def __init__(self, stream: IO[str], *, color: bool = True) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = Console(
            file=stream,
            force_terminal=True,
            no_color=not color,
            highlight=False,
            markup=False,
            emoji=False,
        )
        super().__init__()
        self._color = color
        self._live = Live(
            console=self._console,
            refresh_per_second=8,
            transient=True,
            get_renderable=self._renderable,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def __enter__(self) -> Self:
        self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.stop()

    @contextmanager
    def suspended(self) -> Iterator[None]:
        """Take the status line away while something else writes to the
        terminal (the plan, a confirmation prompt), then draw it again."""
        self._live.stop()
        try:
            yield
        finally:
            self._live.start()

    def _wait(self, text: str) -> None:
        self._print(text)

    def _outcome(self, outcome: Outcome) -> None:
        self._print(format_progress(outcome, color=False), outcome=outcome)

    def _print(self, text: str, outcome: Outcome | None = None) -> None:
        from rich.text import Text

        line = Text(escape_controls(scrub(text)))
        if outcome is not None and self._color:
            line.stylize(_OUTCOME_STYLE[outcome.status])
        self._console.print(line)

    def _renderable(self) -> Any:
        from rich.text import Text

        text = self._counts.applying() or self._counts.reading() or "starting"
        return Text(escape_controls(text), style="dim")


_OUTCOME_STYLE = {Status.DONE: "green", Status.FAILED: "bold red", Status.SKIPPED: "yellow"}


def open_progress(stream: IO[str], *, live: bool, color: bool) -> ProgressLines | LiveProgress:
    """The live display on a terminal (`live`), lines otherwise."""
    return LiveProgress(stream, color=color) if live else ProgressLines(stream, color=color)
