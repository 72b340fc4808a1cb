"""A reply against a turn's expectations: a pure function, every failure listed.

Protocol problems count as failures of the turn too (an `error` frame, a
dropped socket, no reply in time, a `stream_end` whose content is not the
joined chunks), so one report shows everything that went wrong.
"""

from __future__ import annotations

import re
from typing import Any

from avatarsync.providers.avatarium import StreamedReply
from avatarsync.resources import TestTurn

__all__ = ["check_reply", "expected_of"]


def expected_of(turn: TestTurn) -> dict[str, Any]:
    """The expectations as written (camelCase), for reports."""
    expected: dict[str, Any] = {}
    if turn.contains:
        expected["contains"] = list(turn.contains)
    if turn.not_contains:
        expected["notContains"] = list(turn.not_contains)
    if turn.matches is not None:
        expected["matches"] = turn.matches
    if turn.max_first_chunk_seconds is not None:
        expected["maxFirstChunkSeconds"] = turn.max_first_chunk_seconds
    if turn.max_seconds is not None:
        expected["maxSeconds"] = turn.max_seconds
    return expected


def check_reply(turn: TestTurn, reply: StreamedReply) -> list[str]:
    """Every way `reply` fails `turn` (empty: it passes)."""
    failures: list[str] = []
    if reply.error is not None:
        failures.append(
            f"the server sent an error frame after {len(reply.chunks)} chunk(s): {reply.error}"
        )
    if reply.problem is not None:
        failures.append(reply.problem)
    if reply.mismatch:
        failures.append(
            f"stream_end content differs from the joined chunks: chunks {reply.content!r}, "
            f"stream_end {reply.final!r}"
        )
    if reply.error is not None or reply.problem is not None:
        return failures  # a partial reply: its text checks would only add noise
    text = reply.content
    for needle in turn.contains:
        if needle not in text:
            failures.append(f"expected the reply to contain {needle!r}")
    for needle in turn.not_contains:
        if needle in text:
            failures.append(f"expected the reply not to contain {needle!r}")
    if turn.matches is not None and re.search(turn.matches, text) is None:
        failures.append(f"expected the reply to match /{turn.matches}/")
    first = reply.first_chunk_seconds
    if turn.max_first_chunk_seconds is not None and (
        first is None or first > turn.max_first_chunk_seconds
    ):
        shown = "never" if first is None else f"after {first:.2f} s"
        failures.append(f"first chunk {shown}, expected within {turn.max_first_chunk_seconds:g} s")
    if turn.max_seconds is not None and reply.seconds > turn.max_seconds:
        failures.append(f"reply took {reply.seconds:.2f} s, expected within {turn.max_seconds:g} s")
    return failures
