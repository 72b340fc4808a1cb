"""diff's renderers: every difference shown by key, sensitive values masked."""

from __future__ import annotations

import json

from avatarsync.output import (
    render_apply_markdown,
    render_environment_diff_json,
    render_environment_diff_text,
)
from avatarsync.planning.compare import EnvironmentDiff, FieldDifference
from avatarsync.planning.plan import Action
from avatarsync.planning.report import ApplyReport, Outcome, Status
from avatarsync.resources import Address

TOMMY = Address("Character", "tommy")
DIFF = EnvironmentDiff(
    "staging",
    "prod",
    differences=(
        FieldDifference(TOMMY, "displayName", "Tommy", "Tom"),
        FieldDifference(TOMMY, "elevenlabsAgentId", "agent-a", "agent-b", sensitive=True),
    ),
    missing_in_source=(),
    missing_in_target=(Address("Brain", "new"),),
    compared=3,
)


def test_text_lists_each_difference_under_its_resource() -> None:
    assert render_environment_diff_text(DIFF, color=False).splitlines() == [
        "Live differences between 'staging' (-) and 'prod' (+):",
        "",
        "- Brain/new: not live in 'prod'",
        "~ Character/tommy",
        '    displayName: "Tommy" -> "Tom"',
        "    elevenlabsAgentId: *** -> ***",
        "",
        "1 differ, 1 only in 'staging', 0 only in 'prod' (of 3 resources).",
    ]


def test_json_masks_sensitive_values() -> None:
    document = json.loads(render_environment_diff_json(DIFF))
    assert document["formatVersion"] == 1 and document["equal"] is False
    assert document["missingInTarget"] == ["Brain/new"]
    assert document["differences"][1] == {
        "address": "Character/tommy",
        "field": "elevenlabsAgentId",
        "source": "***",
        "target": "***",
        "sensitive": True,
    }


def test_equal_environments_say_so() -> None:
    equal = EnvironmentDiff("staging", "prod", (), (), (), 5)
    assert render_environment_diff_text(equal, color=False).startswith(
        "No differences: the 5 resources of 'staging' and 'prod' match"
    )


def test_apply_markdown_lists_what_was_not_done() -> None:
    report = ApplyReport("p1", "prod")
    report.outcomes += [
        Outcome(Address("Brain", "b"), Action.CREATE, Status.DONE, "created"),
        Outcome(TOMMY, Action.UPDATE, Status.FAILED, "400 | bad `name`"),
    ]
    report.error = "Character/tommy: 400 | bad `name`"
    text = render_apply_markdown(report)
    assert text.startswith("### avatarsync apply to `prod`: FAILED\n")
    assert "| Character/tommy | failed | 400 \\| bad 'name' |" in text
