"""Conversation-test results as JUnit XML, which GitHub and GitLab display.

One <testsuite> per environment, one <testcase> per ConversationTest (its
turns in the failure text and in <system-out>). Built with the standard
library's ElementTree, so the text is always escaped; scrubbed like every
other output.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from avatarsync.avatarium.results import Status, SuiteResult, TestResult
from avatarsync.secret import scrub

__all__ = ["render_tests_junit"]


def render_tests_junit(suite: SuiteResult) -> str:
    root = ET.Element(
        "testsuites",
        name="avatarsync conversation tests",
        tests=str(len(suite.tests)),
        failures=str(suite.failed),
        time=f"{suite.seconds:.3f}",
    )
    element = ET.SubElement(
        root,
        "testsuite",
        name=f"avatarsync test --env {suite.environment}",
        tests=str(len(suite.tests)),
        failures=str(suite.failed),
        errors="0",
        skipped="0",
        time=f"{suite.seconds:.3f}",
    )
    for result in suite.tests:
        _case(element, suite.environment, result)
    ET.indent(root)
    text = ET.tostring(root, encoding="unicode", xml_declaration=False)
    return scrub('<?xml version="1.0" encoding="UTF-8"?>\n' + text + "\n")


def _case(parent: ET.Element, environment: str, result: TestResult) -> None:
    attributes = {
        "classname": f"avatarsync.{environment}.{result.target.replace(' ', '.')}",
        "name": result.name,
        "time": f"{result.seconds:.3f}",
    }
    if result.file:
        attributes["file"] = result.file
    if result.line is not None:
        attributes["line"] = str(result.line)
    case = ET.SubElement(parent, "testcase", attributes)
    if result.status is Status.FAILED:
        failures = result.failures
        failure = ET.SubElement(
            case, "failure", message=_clean(failures[0] if failures else "failed"), type="failed"
        )
        failure.text = _clean("\n".join(failures))
    transcript = []
    for index, turn in enumerate(result.turns, 1):
        transcript.append(f"turn {index}: say {turn.say!r}")
        transcript.append(f"  expected: {turn.expected}")
        transcript.append(f"  got: {turn.got!r}")
        if turn.first_chunk_seconds is not None:
            transcript.append(f"  first chunk: {turn.first_chunk_seconds:.3f} s")
        if turn.seconds is not None:
            transcript.append(f"  total: {turn.seconds:.3f} s")
    if result.conversation_id:
        transcript.append(f"conversation: {result.conversation_id}")
    if transcript:
        ET.SubElement(case, "system-out").text = _clean("\n".join(transcript))


def _clean(text: str) -> str:
    """Characters XML 1.0 cannot carry (control characters) as visible escapes."""
    return "".join(
        ch
        if ch in "\t\n\r" or (ord(ch) >= 0x20 and ch not in "\ufffe\uffff")
        else f"\\x{ord(ch):02x}"
        for ch in text
    )
