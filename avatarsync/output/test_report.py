"""Conversation-test results as text (people, CI logs) and as JSON (machines).

Text: one line per test (✓/✗, name, target, time), and for a failed test each
turn with what was said, expected and got, its timings and every failure.
JSON: the versioned envelope documented in docs/testing.md. Both are
scrubbed: a key can never appear, even if a reply echoed one.
"""

from __future__ import annotations

import json
from typing import Any

from avatarsync.avatarium.results import Status, SuiteResult, TestResult, TurnResult
from avatarsync.output._format import escape_controls, plural, scrub_deep
from avatarsync.secret import scrub

__all__ = ["TEST_REPORT_VERSION", "format_test_line", "render_tests_json", "render_tests_text"]

TEST_REPORT_VERSION = 1
_MARK = {Status.PASSED: "✓", Status.FAILED: "✗"}


def format_test_line(result: TestResult) -> str:
    """`✓ aria-greets (profile aria-support) 0.41 s`: one test, one line."""
    return scrub(
        f"{_MARK[result.status]} {escape_controls(result.name)} ({result.target}) "
        f"{result.seconds:.2f} s"
    )


def render_tests_text(suite: SuiteResult) -> str:
    lines: list[str] = [f"Conversation tests in {escape_controls(suite.environment)}:"]
    lines += [f"  note: {note}" for note in suite.notes]
    for result in suite.tests:
        lines.append("  " + format_test_line(result))
        if result.status is Status.PASSED:
            continue
        if result.error:
            lines.append(f"      error: {_one(result.error)}")
        for index, turn in enumerate(result.turns, 1):
            lines += _turn_lines(index, turn)
    lines.append(
        f"{plural(suite.passed, 'test')} passed, {suite.failed} failed ({suite.seconds:.2f} s)"
    )
    return scrub("\n".join(lines) + "\n")


def _turn_lines(index: int, turn: TurnResult) -> list[str]:
    timing = []
    if turn.first_chunk_seconds is not None:
        timing.append(f"first chunk {turn.first_chunk_seconds:.2f} s")
    if turn.seconds is not None:
        timing.append(f"total {turn.seconds:.2f} s")
    timing.append(plural(turn.chunks, "chunk"))
    if turn.reconnected:
        timing.append("reconnected once")
    lines = [
        f"    {_MARK[turn.status]} turn {index}: say {_one(repr(turn.say))} ({', '.join(timing)})",
        f"        expected: {_one(json.dumps(turn.expected, ensure_ascii=False)) or '{}'}",
        f"        got:      {_one(repr(turn.got)) if turn.got is not None else '(no reply)'}",
    ]
    lines += [f"        - {_one(failure)}" for failure in turn.failures]
    return lines


def render_tests_json(suite: SuiteResult) -> str:
    payload: dict[str, Any] = {
        "version": TEST_REPORT_VERSION,
        "environment": suite.environment,
        "ok": suite.ok,
        "passed": suite.passed,
        "failed": suite.failed,
        "seconds": round(suite.seconds, 3),
        "selected": list(suite.selected),
        "notes": list(suite.notes),
        "tests": [result.to_json() for result in suite.tests],
    }
    text = json.dumps(scrub_deep(payload), indent=2, sort_keys=True, ensure_ascii=False)
    return scrub(text) + "\n"


def _one(text: str) -> str:
    return escape_controls(text).replace("\n", "\\n")
