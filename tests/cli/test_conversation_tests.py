"""`avatarsync test` end to end: the real CLI against a real emulator over loopback.

Passing and failing suites (exit codes, the text report, --json per turn,
JUnit parsed back with an XML parser), the protocol faults the emulator can
inject (an error frame mid-stream, a dropped socket before and after the
first chunk, a slow first chunk, a timeout, a stream_end that disagrees with
its chunks), both WebSocket auth modes, and interruption: after every run the
emulator shows zero open conversations.
"""

from __future__ import annotations

import json
import signal
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.agents import (
    PASSING,
    PROFILE,
    WRONG_CONTAINS,
    open_conversations,
    set_faults,
    write_agents,
)
from support.e2e import E2EProject, wait_for


@pytest.fixture
def agents(make_project: Callable[..., E2EProject]) -> Callable[..., E2EProject]:
    def make(*documents: str, ws_auth: str | None = None, **faults: object) -> E2EProject:
        project = make_project(**faults)
        write_agents(project, *(documents or (PASSING,)), ws_auth=ws_auth)
        return project

    return make


def run_json(project: E2EProject, *args: str) -> tuple[int, dict[str, Any]]:
    result = project.cli("test", "--env", "test", "--json", *args)
    assert result.out, result.err
    return result.code, json.loads(result.out)


def turns_of(report: dict[str, Any], name: str) -> list[dict[str, Any]]:
    (test,) = [t for t in report["tests"] if t["name"] == name]
    return list(test["turns"])


def test_a_passing_suite_exits_0_with_a_report_and_junit(
    agents: Callable[..., E2EProject], tmp_path: Path
) -> None:
    project = agents()
    junit = tmp_path / "report.xml"
    result = project.cli("test", "--env", "test", "--junit", str(junit))
    assert result.code == 0, result.text
    assert "✓ aria-greets (profile aria-support)" in result.out
    assert "✓ aria-says-bye (profile aria-support)" in result.out
    assert "2 tests passed, 0 failed" in result.out
    # Progress on stderr as each test finishes; the report is the payload on stdout.
    assert "✓ aria-greets" in result.err
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "0")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    assert set(cases) == {"aria-greets", "aria-says-bye"}
    assert cases["aria-greets"].find("failure") is None
    assert cases["aria-greets"].get("file") == "agents/agents.yaml"
    out = cases["aria-greets"].findtext("system-out") or ""
    assert "Hello! I'm Aria. How can I help you today?" in out
    assert open_conversations(project) == 0


def test_a_failing_suite_exits_1_and_says_what_was_expected_and_got(
    agents: Callable[..., E2EProject], tmp_path: Path
) -> None:
    slow = """\
kind: ConversationTest
name: slow-first-chunk
spec:
  profile: aria-support
  turns:
    - say: "Hello!"
      expect: {contains: "Aria", maxFirstChunkSeconds: 0.3}
"""
    project = agents(PASSING, WRONG_CONTAINS, slow, ws_first_chunk_delay_ms=800)
    junit = tmp_path / "report.xml"
    result = project.cli("test", "--env", "test", "--junit", str(junit))
    assert result.code == 1, result.text
    assert "✗ wrong-contains (profile aria-support)" in result.out
    assert "expected the reply to contain 'Tommy'" in result.out
    assert 'got:      "Hello! I\'m Aria. How can I help you today?"' in result.out
    assert "first chunk after 0.8" in result.out
    assert "expected within 0.3 s" in result.out
    assert "2 tests passed, 2 failed" in result.out  # PASSING allows a slow first chunk
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("4", "2")
    cases = {case.get("name"): case for case in suite.iter("testcase")}
    failure = cases["wrong-contains"].find("failure")
    assert failure is not None
    assert failure.get("message") == "turn 1: expected the reply to contain 'Tommy'"

    code, report = run_json(project, "wrong-contains", "slow-first-chunk")
    assert code == 1
    assert report["version"] == 1 and report["ok"] is False
    (turn,) = turns_of(report, "wrong-contains")
    assert turn["expected"] == {"contains": ["Tommy"]}
    assert turn["got"] == "Hello! I'm Aria. How can I help you today?"
    assert turn["status"] == "failed"
    (slow_turn,) = turns_of(report, "slow-first-chunk")
    assert slow_turn["firstChunkSeconds"] >= 0.8
    assert slow_turn["failures"] == [
        f"first chunk after {slow_turn['firstChunkSeconds']:.2f} s, expected within 0.3 s"
    ]
    assert open_conversations(project) == 0


def test_an_error_frame_mid_stream_fails_the_turn_clearly(
    agents: Callable[..., E2EProject],
) -> None:
    project = agents(ws_error_after_chunks=2, ws_error_replies=1)
    code, report = run_json(project, "aria-says-bye")
    assert code == 1
    (turn,) = turns_of(report, "aria-says-bye")
    assert turn["chunks"] == 2
    assert turn["failures"] == [
        "the server sent an error frame after 2 chunk(s): ai_provider_error: the AI provider "
        "failed mid-reply (injected by the emulator)"
    ]
    assert open_conversations(project) == 0


def test_a_socket_dropped_before_the_first_chunk_is_reopened_once(
    agents: Callable[..., E2EProject],
) -> None:
    project = agents(ws_drop_after_chunks=0, ws_drop_replies=1)
    code, report = run_json(project, "aria-says-bye")
    assert code == 0, report
    (turn,) = turns_of(report, "aria-says-bye")
    assert turn["reconnected"] is True
    assert turn["got"] == "Goodbye from Aria! Thanks for the conversation."
    assert open_conversations(project) == 0


def test_a_socket_dropped_twice_before_a_chunk_is_a_failure(
    agents: Callable[..., E2EProject],
) -> None:
    project = agents(ws_drop_after_chunks=0, ws_drop_replies=2)
    code, report = run_json(project, "aria-says-bye")
    assert code == 1
    (turn,) = turns_of(report, "aria-says-bye")
    assert turn["reconnected"] is True
    assert "dropped before the first chunk, again after reconnecting" in turn["failures"][0]
    assert open_conversations(project) == 0


def test_a_reply_cut_after_a_chunk_is_reported_and_never_resent(
    agents: Callable[..., E2EProject],
) -> None:
    project = agents(ws_drop_after_chunks=2, ws_drop_replies=1)
    code, report = run_json(project, "aria-says-bye")
    assert code == 1
    (test,) = report["tests"]
    (turn,) = test["turns"]
    assert turn["chunks"] == 2 and turn["reconnected"] is False
    assert turn["got"] == "Goodbye from "
    assert "the WebSocket dropped after 2 chunk(s)" in turn["failures"][0]
    assert "the turn was not sent again" in turn["failures"][0]
    with project.http() as http:
        conversation = http.get(
            f"/v1/conversations/{test['conversationId']}",
            headers={"authorization": f"Bearer {project.key}"},
        ).json()["data"]
    said = [m["content"] for m in conversation["messages"] if m["role"] == "user"]
    assert said == ["bye"]  # sent once
    assert conversation["status"] == "ended"
    assert open_conversations(project) == 0


def test_a_reply_that_does_not_come_in_time_is_a_timeout(
    agents: Callable[..., E2EProject],
) -> None:
    impatient = """\
kind: ConversationTest
name: impatient
spec:
  profile: aria-support
  timeoutSeconds: 0.5
  turns:
    - say: "Hello!"
      expect: {contains: "Aria"}
    - say: "bye"
      expect: {contains: "Goodbye"}
"""
    project = agents(impatient, ws_first_chunk_delay_ms=10_000, ws_delay_replies=1)
    started = time.monotonic()
    code, report = run_json(project)
    assert time.monotonic() - started < 8  # gave up at 0.5 s, never waited for the reply
    assert code == 1
    first, second = turns_of(report, "impatient")
    assert first["failures"][0].startswith("no complete reply within 0.5 s (0 chunk(s) received")
    assert second["status"] == "passed"  # the conversation lives on: a fresh socket
    assert open_conversations(project) == 0


def test_a_stream_end_that_differs_from_its_chunks_is_reported(
    agents: Callable[..., E2EProject],
) -> None:
    project = agents(ws_end_mismatch=True)
    code, report = run_json(project, "aria-says-bye")
    assert code == 1
    (turn,) = turns_of(report, "aria-says-bye")
    assert turn["failures"][0].startswith("stream_end content differs from the joined chunks")
    assert open_conversations(project) == 0


def test_assistant_message_frames_after_stream_end_do_not_confuse_the_next_turn(
    agents: Callable[..., E2EProject],
) -> None:
    project = agents(ws_message_after_end=True)
    code, report = run_json(project, "aria-greets")
    assert code == 0, report
    _, second = turns_of(report, "aria-greets")
    assert second["got"].startswith("Aria here. Happy to help with return policy")


def test_a_bare_ws_url_works_when_the_server_accepts_it(
    agents: Callable[..., E2EProject],
) -> None:
    project = agents(ws_auth="none")
    set_faults(project, wsAuth="open")
    code, report = run_json(project)
    assert code == 0, report
    assert open_conversations(project) == 0


def test_a_bare_ws_url_refused_by_the_server_names_the_request(
    agents: Callable[..., E2EProject],
) -> None:
    project = agents(ws_auth="none")
    code, report = run_json(project, "aria-says-bye")
    assert code == 1
    (test,) = report["tests"]
    assert "GET /v1/conversations/" in test["error"]
    assert "-> 401 (request req_" in test["error"]
    assert "missing_api_key" in test["error"]
    assert open_conversations(project) == 0


def test_rest_errors_carry_the_request_id(agents: Callable[..., E2EProject]) -> None:
    project = agents()
    (project.root / "agents" / "agents.yaml").write_text(
        (PROFILE + "---\n" + PASSING).replace("aria-001", "nobody-404")
    )
    code, report = run_json(project, "aria-says-bye")
    assert code == 1
    error = report["tests"][0]["error"]
    assert "POST /v1/conversations -> 404 (request req_" in error
    assert "avatar_not_found" in error


def _stats(project: E2EProject) -> dict[str, Any]:
    with project.http() as http:
        return dict(http.get("/_emulator/stats").json())


def _interrupt_run_when(
    project: E2EProject, ready: Callable[[], bool], sig: signal.Signals, waiting_for: str
) -> tuple[int, str]:
    """Start `avatarsync test`, send `sig` once `ready()` holds (the run still
    going), and return its exit code and stderr."""
    proc = project.popen("test", "--env", "test")
    try:
        deadline = time.monotonic() + 30
        while not ready():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, waiting_for
            time.sleep(0.02)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_ends_every_conversation(
    agents: Callable[..., E2EProject], sig: signal.Signals
) -> None:
    project = agents(ws_first_chunk_delay_ms=20_000)
    code, err = _interrupt_run_when(
        project, lambda: open_conversations(project) >= 2, sig, "the tests never started"
    )
    assert code == 130, err
    assert f"interrupted ({sig.name}); every conversation it started was ended" in err
    assert err.strip().splitlines()[-1] == "Interrupted."
    assert open_conversations(project) == 0
    state = project.state_file
    assert (
        not state.exists()
        or "lastTests" not in state.read_text()
        or (json.loads(state.read_text()).get("lastTests") is None)
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_a_conversation_is_being_created_still_ends_it(
    agents: Callable[..., E2EProject], sig: signal.Signals
) -> None:
    """The creates' POSTs are at the platform, not answered yet: they will
    make conversations whatever the client does next, so the run must wait
    for their answers and end them (the emulator sleeps its latency first,
    then creates: they are counted once handled)."""
    project = agents()
    set_faults(project, latencyMs=1500)

    def both_creates_unanswered() -> bool:
        stats = _stats(project)
        return stats["inFlight"] >= 2 and not stats["requests"]  # counted once answered

    code, err = _interrupt_run_when(project, both_creates_unanswered, sig, "no create was sent")
    assert code == 130, err
    # The emulator finishes what it was handling (and counts it).
    wait_for(lambda: _stats(project)["inFlight"] == 0, seconds=60, every=0.05)
    requests = _stats(project)["requests"]
    created = requests["POST /v1/conversations"]
    assert created >= 1
    assert requests.get("POST /v1/conversations/{conversation_id}/end", 0) == created
    assert open_conversations(project) == 0


def test_unknown_test_names_are_an_error_with_a_hint(agents: Callable[..., E2EProject]) -> None:
    project = agents()
    result = project.cli("test", "--env", "test", "aria-greet")
    assert result.code == 1
    assert "no ConversationTest 'aria-greet' (did you mean 'aria-greets'?)" in result.err


def test_an_environment_without_avatarium_says_how_to_add_it(
    agents: Callable[..., E2EProject],
) -> None:
    project = agents()
    text = (project.root / "avatarsync.yaml").read_text()
    (project.root / "avatarsync.yaml").write_text(
        "\n".join(line for line in text.splitlines() if "avatarium:" not in line) + "\n"
    )
    result = project.cli("test", "--env", "test")
    assert result.code == 1
    assert "environment 'test' has no Avatarium endpoint: add `avatarium:" in result.err


def test_tests_run_concurrently_but_never_more_than_parallelism(
    agents: Callable[..., E2EProject],
) -> None:
    more = "---\n".join(
        f"""\
kind: ConversationTest
name: extra-{n}
spec:
  profile: aria-support
  turns: [{{say: "Hello!", expect: {{contains: Aria}}}}]
"""
        for n in range(3)
    )
    project = agents(PASSING, more, ws_first_chunk_delay_ms=700)
    proc = project.popen("test", "--env", "test", "--parallelism", "2")
    seen: set[int] = set()
    while proc.poll() is None:
        seen.add(open_conversations(project))
        time.sleep(0.02)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert max(seen) == 2  # two at once, never three
    assert open_conversations(project) == 0


def test_github_mode_annotates_each_failed_test_at_its_line(
    agents: Callable[..., E2EProject],
) -> None:
    project = agents(PASSING, WRONG_CONTAINS)
    result = project.cli("--github", "test", "--env", "test")
    assert result.code == 1
    assert (
        "::error file=agents/agents.yaml,line=28::ConversationTest 'wrong-contains': turn 1: "
        "expected the reply to contain 'Tommy'" in result.err
    )
