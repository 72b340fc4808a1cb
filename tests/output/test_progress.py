"""Progress displays: what a CI log and a terminal show while a run waits."""

from __future__ import annotations

import io

from avatarsync.output.progress import LiveProgress, ProgressLines, describe_wait
from avatarsync.planning.plan import Action
from avatarsync.planning.report import Outcome, Status
from avatarsync.progress import InFlight, LockWaiting, Paced, PageRead, Retrying
from avatarsync.resources import Address
from avatarsync.secret import Secret, scope


class Clock:
    def __init__(self) -> None:
        self.now = 3600.0 * 12  # 12:00:00 UTC

    def __call__(self) -> float:
        return self.now


def test_waits_read_as_the_issue_spells_them() -> None:
    assert describe_wait(Retrying("GET", "/v3/brains", "429", 2.0, 2, 5)) == (
        "429 on GET /v3/brains, retrying in 2.0 s (attempt 2/5)"
    )
    assert describe_wait(Paced("POST", "/v3/brains", 1.25)).startswith(
        "rate limit: holding POST /v3/brains for 1.2 s"
    )
    assert describe_wait(LockWaiting("prod", 10.4, 60, "locked by run 7")) == (
        "waiting for the lock of 'prod' (10 of 60 s): locked by run 7"
    )


def test_lines_are_timestamped_and_status_lines_are_throttled() -> None:
    out, clock = io.StringIO(), Clock()
    with ProgressLines(out, clock=clock) as lines:
        for page in range(1, 40):  # many pages within one heartbeat: no line each
            lines(PageRead("/v3/brains", page, 100))
        clock.now += 6
        lines(PageRead("/v3/brains", 40, 100))
        lines(Retrying("GET", "/v3/brains", "503", 0.5, 2, 5))  # always shown
        lines(InFlight(3))
    assert out.getvalue().splitlines() == [
        "12:00:06 reading live state: 40/100 pages",
        "12:00:06 503 on GET /v3/brains, retrying in 0.5 s (attempt 2/5)",
    ]


def test_apply_lines_are_numbered_and_end_with_a_status() -> None:
    out, clock = io.StringIO(), Clock()
    with ProgressLines(out, clock=clock) as lines:
        lines.start_apply(2)
        lines(Outcome(Address("Brain", "b"), Action.CREATE, Status.DONE, "created", "br_1", 0.2))
        lines(Outcome(Address("Character", "c"), Action.CREATE, Status.FAILED, "400 nope"))
    text = out.getvalue().splitlines()
    assert text[0] == "12:00:00 [1/2] Brain/b: created (id br_1) [0.20s]"
    assert text[1] == "12:00:00 [2/2] Character/c: FAILED: 400 nope"
    assert text[2] == "12:00:00 applying: 2/2 done, 0 in flight, 1 failed"


def test_lines_scrub_secrets_and_escape_controls() -> None:
    out = io.StringIO()
    with scope():
        Secret("sk-live-SENTINEL-1234")
        lines = ProgressLines(out, clock=Clock())
        lines(LockWaiting("prod", 1, 5, "held by sk-live-SENTINEL-1234\x1b[31m"))
    assert "SENTINEL" not in out.getvalue()
    assert "\x1b" not in out.getvalue()


def test_the_live_display_prints_waits_above_its_status_line() -> None:
    out = io.StringIO()
    with LiveProgress(out, color=False) as live:
        live(PageRead("/v3/[brains]", 1, 2))  # brackets are data, not markup
        live(Retrying("GET", "/v3/[brains]", "429", 1.0, 2, 5))
        live.start_apply(1)
        with live.suspended():
            out.write("PLAN\n")
        live(Outcome(Address("Brain", "b"), Action.UPDATE, Status.DONE, "updated", None, 0.1))
    text = out.getvalue()
    assert "429 on GET /v3/[brains], retrying in 1.0 s (attempt 2/5)" in text
    assert "PLAN\n" in text
    assert "Brain/b: updated" in text
