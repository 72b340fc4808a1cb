"""Conversation tests gate promotion, and presets are smoke-tested on Equos.

`promote SOURCE TARGET` refuses unless SOURCE's recorded test run passed on
the same manifests (state `lastTests`); `--skip-tests` promotes anyway and
says so loudly. A ConversationTest of a preset starts, checks and stops an
Equos conversation: none is left running.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from support.agents import PASSING, WRONG_CONTAINS, write_agents
from support.e2e import CLIENT, E2EProject

PROD = f"{CLIENT}-prod"

PRESET = """\
kind: ConversationPreset
name: tommy-support
spec:
  character: tommy
  maxSeconds: 300
  inputs:
    customer: {required: true}
  promptTemplateVars:
    customer_name: "{{ customer }}"
---
kind: ConversationTest
name: tommy-smoke
spec:
  preset: tommy-support
  vars: {customer: Dana}
"""


@pytest.fixture
def gated(make_project: Callable[..., E2EProject]) -> Callable[..., E2EProject]:
    def make(*documents: str) -> E2EProject:
        project = make_project()
        write_agents(project, *documents)
        assert project.cli("apply", "--env", "test", "--yes").code == 0
        return project

    return make


def running_equos_conversations(project: E2EProject) -> int:
    with project.http() as http:
        return int(http.get("/_emulator/stats").json()["openConversations"]["equos"])


def test_promote_is_refused_until_the_tests_ran(gated: Callable[..., E2EProject]) -> None:
    project = gated(PASSING)
    result = project.cli("promote", "test", "prod", "--yes")
    assert result.code == 1
    assert "no conversation tests were recorded on 'test'" in result.err
    assert "run `avatarsync test --env test`" in result.err
    assert sum(project.counts(PROD).values()) == 0


def test_promote_is_refused_when_tests_failed_and_allowed_once_they_pass(
    gated: Callable[..., E2EProject],
) -> None:
    project = gated(PASSING, WRONG_CONTAINS)
    assert project.cli("test", "--env", "test").code == 1
    state = json.loads(project.state_file.read_text())
    assert state["lastTests"]["failed"] == 1
    assert state["lastTests"]["failedNames"] == ["wrong-contains"]
    refused = project.cli("promote", "test", "prod", "--yes")
    assert refused.code == 1
    assert "conversation tests failed on 'test' (1 of 3 failed" in refused.err
    assert "wrong-contains" in refused.err
    assert sum(project.counts(PROD).values()) == 0

    # Fixing the test changes the manifests: apply them, test again, promote.
    project.edit("agents/agents.yaml", 'contains: ["Tommy"]', 'contains: ["Aria"]')
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    assert project.cli("test", "--env", "test").code == 0
    allowed = project.cli("promote", "test", "prod", "--yes")
    assert allowed.code == 0, allowed.text
    assert "note: conversation tests passed on 'test' against these manifests" in allowed.err
    assert sum(project.counts(PROD).values()) > 0


def test_tests_that_passed_on_other_manifests_do_not_count(
    gated: Callable[..., E2EProject],
) -> None:
    project = gated(PASSING)
    assert project.cli("test", "--env", "test").code == 0
    project.edit("agents/agents.yaml", "Topics: billing", "Topics: shipping, billing")
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    result = project.cli("promote", "test", "prod", "--yes")
    assert result.code == 1
    assert "ran against other manifests than this checkout's" in result.err


def test_a_partial_run_does_not_count(gated: Callable[..., E2EProject]) -> None:
    project = gated(PASSING)
    assert project.cli("test", "--env", "test", "aria-greets").code == 0
    result = project.cli("promote", "test", "prod", "--yes")
    assert result.code == 1
    assert "only some conversation tests ran on 'test'" in result.err
    assert "(not run: aria-says-bye)" in result.err


def test_skip_tests_promotes_and_says_so_loudly(gated: Callable[..., E2EProject]) -> None:
    project = gated(PASSING, WRONG_CONTAINS)
    assert project.cli("test", "--env", "test").code == 1
    result = project.cli("promote", "test", "prod", "--yes", "--skip-tests")
    assert result.code == 0, result.text
    assert "WARNING: --skip-tests: promoting without checking" in result.err
    assert "note: conversation tests NOT checked on 'test' (--skip-tests)" in result.err
    assert sum(project.counts(PROD).values()) > 0


def test_a_project_without_tests_has_nothing_to_gate(project: E2EProject) -> None:
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    result = project.cli("promote", "test", "prod", "--yes")
    assert result.code == 0, result.text
    assert "note: no ConversationTest in the manifests" in result.err
    tested = project.cli("test", "--env", "test")
    assert tested.code == 0
    assert "nothing to test" in tested.out


def test_a_preset_test_starts_checks_and_stops_a_conversation(
    gated: Callable[..., E2EProject],
) -> None:
    project = gated(PRESET)
    result = project.cli("test", "--env", "test", "--json", "tommy-smoke")
    assert result.code == 0, result.text
    (test,) = json.loads(result.out)["tests"]
    assert test["target"] == "preset tommy-support" and test["status"] == "passed"
    with project.http() as http:
        conversation = http.get(f"/v3/conversations/{test['conversationId']}").json()
    assert conversation["status"] == "ended"
    assert conversation["promptTemplateVars"] == {"customer_name": "Dana"}
    assert running_equos_conversations(project) == 0


def test_a_preset_test_before_apply_names_the_missing_character(
    make_project: Callable[..., E2EProject],
) -> None:
    project = make_project()
    write_agents(project, PRESET)
    result = project.cli("test", "--env", "test")
    assert result.code == 1
    assert "ConversationPreset 'tommy-support'" in result.out
    assert "is not applied in environment 'test' yet" in result.out
    assert running_equos_conversations(project) == 0
