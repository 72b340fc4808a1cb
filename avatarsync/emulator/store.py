"""The SQLite connection both platforms share, and the emulator's clock.

One connection for the whole emulator (check_same_thread=False, but every use
happens on the server's event-loop thread, between awaits, so no two handlers
ever interleave inside a transaction). Each platform creates its own tables
(`eq_` for Equos, `av_` for Avatarium) with CREATE TABLE IF NOT EXISTS, so a
file database survives restarts and upgrades that only add tables.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["Clock", "iso_ms", "open_database", "parse_iso_ms"]


def open_database(db: str) -> sqlite3.Connection:
    """Open (creating parents for) the emulator's database; ':memory:' is throwaway."""
    if db != ":memory:":
        path = Path(db).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        db = str(path)
    conn = sqlite3.connect(db, check_same_thread=False)
    if db != ":memory:":
        # WAL + NORMAL: a commit is durable against a crash of the process
        # (what the restart tests need) without an fsync per request.
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class Clock:
    """Wall-clock timestamps that strictly increase, one millisecond apart at least.

    The API's `updatedAt` must change on every write even when two writes land
    in the same millisecond, because clients use it to detect drift.
    """

    def __init__(self, now: Callable[[], float] = time.time, floor_ms: int = 0) -> None:
        self._now = now
        self._last_ms = floor_ms

    def now(self) -> float:
        """Current time in seconds (not unique; for expiry checks)."""
        return self._now()

    def tick_ms(self) -> int:
        """A fresh, strictly increasing timestamp in milliseconds."""
        ms = max(int(self._now() * 1000), self._last_ms + 1)
        self._last_ms = ms
        return ms

    def tick(self) -> str:
        return iso_ms(self.tick_ms())

    def advance_past(self, ms: int) -> None:
        """Never hand out a timestamp at or before `ms` (e.g. after a restart)."""
        self._last_ms = max(self._last_ms, ms)


def iso_ms(ms: int) -> str:
    """`2023-11-07T05:31:56.123Z`: ISO-8601 UTC with milliseconds, as the API sends."""
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}Z"


def parse_iso_ms(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)
