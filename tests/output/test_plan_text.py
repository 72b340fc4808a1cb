"""render_plan_text: golden renderings plus the rules a golden file cannot show."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from support.output_samples import LIVE_AGENT_ID, REAL_AGENT_ID, make_plan

from avatarsync.output import render_plan_json, render_plan_text
from avatarsync.planning.plan import Action, Change, FieldChange, Plan
from avatarsync.resources import Address

Golden = Callable[[str, str], None]


def test_plain_text_matches_golden(sample_plan: Plan, golden: Golden) -> None:
    golden("plan.txt", render_plan_text(sample_plan, color=False))


def test_colour_text_matches_golden(sample_plan: Plan, golden: Golden) -> None:
    golden("plan.color.txt", render_plan_text(sample_plan, color=True))


def test_show_noop_lists_unchanged_resources(sample_plan: Plan, golden: Golden) -> None:
    golden("plan.noop.txt", render_plan_text(sample_plan, color=False, show_noop=True))


def test_colour_is_the_plain_text_plus_escape_codes_only(sample_plan: Plan) -> None:
    import re

    coloured = render_plan_text(sample_plan, color=True)
    assert "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == render_plan_text(sample_plan, color=False)


def test_plain_text_has_no_escape_codes_even_from_hostile_values() -> None:
    plan = make_plan(
        (
            Change(
                Address("Brain", "evil"),
                Action.UPDATE,
                "edited\x1b]0;pwned\x07 outside",
                remote_id="br_1",
                fields=(
                    FieldChange("greetingMessage", "hi", "\x1b[2Jhi\x9b31m"),
                    FieldChange("instructions", "a\nb\n", "a\n\x1b[31mb\u202e\n"),
                ),
            ),
        )
    )
    text = render_plan_text(plan, color=False)
    assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text
    assert text.splitlines()[2:8] == [
        "  ~ Brain/evil  (update: edited\\u001b]0;pwned\\u0007 outside)",
        '      greetingMessage: "hi" → "\\u001b[2Jhi\\u009b31m"',
        "      instructions:",
        "          @@ -1,2 +1,2 @@",
        "           a",
        "          -b",
    ]
    assert text.splitlines()[8] == "          +\\u001b[31mb\\u202e"


def test_no_changes_says_so_after_the_warnings(empty_plan: Plan) -> None:
    assert render_plan_text(empty_plan, color=False) == (
        "Warning: Voice/old is no longer in the manifests; run with --prune to delete it\n"
        "\n"
        "No changes. Environment 'staging' matches the manifests.\n"
    )
    assert render_plan_text(empty_plan, color=False, show_noop=True) == (
        "    Brain/support  (no-op: up to date)\n"
        "\n"
        "Warning: Voice/old is no longer in the manifests; run with --prune to delete it\n"
        "\n"
        "No changes. Environment 'staging' matches the manifests.\n"
    )


def test_sensitive_values_are_masked_even_when_the_plan_holds_them(sample_plan: Plan) -> None:
    text = render_plan_text(sample_plan, color=False, show_noop=True)
    assert LIVE_AGENT_ID not in text and REAL_AGENT_ID not in text
    assert "      elevenlabsAgentId: *** → ***\n" in text
    assert "      elevenlabsAgentId: ***\n" in text


def test_sensitive_long_text_is_masked_not_diffed() -> None:
    secret_text = "line one of the secret\nline two of the secret\n"
    plan = make_plan(
        (
            Change(
                Address("Brain", "b"),
                Action.UPDATE,
                "changed in the manifests",
                fields=(
                    FieldChange("instructions", secret_text, secret_text + "x\n", sensitive=True),
                ),
            ),
        )
    )
    text = render_plan_text(plan, color=False)
    assert "secret" not in text
    assert "      instructions: *** → ***\n" in text


def test_text_differing_only_in_a_trailing_newline_falls_back_to_literals() -> None:
    before = "line one\nline two"
    plan = make_plan(
        (
            Change(
                Address("Brain", "b"),
                Action.UPDATE,
                "changed in the manifests",
                fields=(FieldChange("instructions", before, before + "\n"),),
            ),
        )
    )
    assert '      instructions: "line one\\nline two" → "line one\\nline two\\n"\n' in (
        render_plan_text(plan, color=False)
    )


def test_structured_values_render_as_sorted_json_literals() -> None:
    plan = make_plan(
        (
            Change(
                Address("Character", "c"),
                Action.UPDATE,
                "changed in the manifests",
                fields=(FieldChange("extra", {"b": [1, None], "a": "é"}, None),),
            ),
        )
    )
    assert '      extra: {"a": "é", "b": [1, null]} → null\n' in render_plan_text(plan, color=False)


def test_a_saved_plan_renders_like_the_original(sample_plan: Plan) -> None:
    # plan --out then apply FILE shows the plan again from the JSON.
    reloaded = Plan.from_dict(json.loads(render_plan_json(sample_plan)))
    assert render_plan_text(reloaded, color=False) == render_plan_text(sample_plan, color=False)


def test_rendering_is_byte_stable_across_processes_and_hash_seeds() -> None:
    # One process would prove nothing (a pure function of the same object):
    # set and dict iteration order only changes with the hash seed.
    code = (
        "import sys; from support.output_samples import sample_plan; "
        "from avatarsync.output import render_plan_text, render_plan_json, render_plan_markdown; "
        "p = sample_plan(); "
        "sys.stdout.write(render_plan_text(p, color=True, show_noop=True) + render_plan_json(p) "
        "+ render_plan_markdown(p))"
    )
    outputs = set()
    for seed in ("1", "2", "3"):
        run = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        outputs.add(run.stdout)
    assert len(outputs) == 1 and "Plan:" in outputs.pop()


def test_adoption_only_plan_is_a_change_with_zero_counts() -> None:
    plan = make_plan(
        (
            Change(
                Address("Brain", "support"),
                Action.NOOP,
                "adopt unmanaged match into state",
                remote_id="br_1",
                adopt=True,
            ),
        )
    )
    assert render_plan_text(plan, color=False) == (
        "avatarsync will perform the following actions in environment 'staging':\n"
        "\n"
        "    Brain/support  (adopt unmanaged id br_1)\n"
        "\n"
        "1 unmanaged resource will be adopted into state.\n"
        "Plan: 0 to create, 0 to update, 0 to replace, 0 to delete.\n"
    )


def test_added_long_text_and_deleted_fields() -> None:
    plan = make_plan(
        (
            Change(
                Address("Brain", "b"),
                Action.UPDATE,
                "changed in the manifests",
                remote_id="br_1",
                fields=(FieldChange("instructions", None, "first\nsecond\n"),),
            ),
            Change(
                Address("Voice", "v"),
                Action.DELETE,
                "removed from the manifests",
                remote_id="vo_1",
                fields=(
                    FieldChange("identity", "puck", None),
                    FieldChange("instructions", "a\nb", None),
                ),
            ),
        )
    )
    assert render_plan_text(plan, color=False).splitlines()[2:14] == [
        "  ~ Brain/b  (update: changed in the manifests)",
        "      instructions:",
        "          @@ -0,0 +1,2 @@",
        "          +first",
        "          +second",
        "",
        "  - Voice/v  (delete: removed from the manifests)",
        '      identity: "puck"',
        "      instructions: |",
        "          a",
        "          b",
        "",
    ]
