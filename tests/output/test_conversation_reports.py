"""Expectations and the renderers of conversation-test results: pure functions."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from avatarsync.avatarium.expectations import check_reply
from avatarsync.avatarium.results import Status, SuiteResult, TestResult, TurnResult
from avatarsync.output.junit import render_tests_junit
from avatarsync.output.test_report import render_tests_json, render_tests_text
from avatarsync.providers.avatarium import FrameError, StreamedReply
from avatarsync.resources import TestTurn as Turn  # (not a pytest class)
from avatarsync.secret import Secret, scope


def reply(text: str, final: str | None = None) -> StreamedReply:
    words = text.split(" ")
    chunks = [w + " " for w in words[:-1]] + words[-1:]
    final = text if final is None else final
    return StreamedReply(chunks=chunks, final=final, first_chunk_seconds=0.1, seconds=0.2)


def test_every_expectation_is_checked_and_each_failure_named() -> None:
    turn = Turn(
        say="hi",
        contains=("Aria", "Kai"),
        not_contains=("Hello",),
        matches=r"^Bye",
        max_first_chunk_seconds=0.05,
        max_seconds=0.1,
    )
    assert check_reply(turn, reply("Hello! I'm Aria.")) == [
        "expected the reply to contain 'Kai'",
        "expected the reply not to contain 'Hello'",
        "expected the reply to match /^Bye/",
        "first chunk after 0.10 s, expected within 0.05 s",
        "reply took 0.20 s, expected within 0.1 s",
    ]
    assert check_reply(Turn(say="hi", contains=("Aria",)), reply("Hello! I'm Aria.")) == []


def test_protocol_problems_fail_the_turn_and_skip_text_checks() -> None:
    turn = Turn(say="hi", contains=("nowhere",))
    cut = StreamedReply(chunks=["Hello! "], error=FrameError("ai_provider_error", "boom"))
    assert check_reply(turn, cut) == [
        "the server sent an error frame after 1 chunk(s): ai_provider_error: boom"
    ]
    mismatch = reply("Hello there", final="Hello there!")
    assert check_reply(Turn(say="hi"), mismatch) == [
        "stream_end content differs from the joined chunks: chunks 'Hello there', "
        "stream_end 'Hello there!'"
    ]


def _suite(got: str) -> SuiteResult:
    turn = TurnResult(
        say="Hello!",
        expected={"contains": ["Kai"]},
        got=got,
        status=Status.FAILED,
        failures=("expected the reply to contain 'Kai'",),
        first_chunk_seconds=0.01,
        seconds=0.02,
        chunks=3,
    )
    failed = TestResult(
        "kai", "profile p", Status.FAILED, (turn,), seconds=0.1, file="a.yaml", line=3
    )
    passed = TestResult("ok", "profile p", Status.PASSED, seconds=0.05)
    return SuiteResult("staging", (failed, passed), 0.2)


def test_text_json_and_junit_say_the_same_thing() -> None:
    suite = _suite("Hello! I'm Aria.")
    text = render_tests_text(suite)
    assert "✗ kai (profile p) 0.10 s" in text and "✓ ok (profile p) 0.05 s" in text
    assert "- expected the reply to contain 'Kai'" in text
    assert text.endswith("1 test passed, 1 failed (0.20 s)\n")
    payload = json.loads(render_tests_json(suite))
    assert (payload["version"], payload["ok"], payload["failed"]) == (1, False, 1)
    assert payload["tests"][0]["turns"][0]["got"] == "Hello! I'm Aria."
    root = ET.fromstring(render_tests_junit(suite))
    case = root.find("testsuite/testcase[@name='kai']")
    assert case is not None and case.get("file") == "a.yaml" and case.get("line") == "3"
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message") == "turn 1: expected the reply to contain 'Kai'"


def test_reports_escape_what_a_reply_holds_and_scrub_secrets() -> None:
    with scope():
        Secret("sk-leaked-9999")
        suite = _suite("line\x1b[31m red \x00 sk-leaked-9999 <tag>&")
        text = render_tests_text(suite)
        junit = render_tests_junit(suite)
        data = render_tests_json(suite)
    for output in (text, junit, data):
        assert "sk-leaked-9999" not in output
        assert "\x1b" not in output and "\x00" not in output
    ET.fromstring(junit)  # still well-formed XML
