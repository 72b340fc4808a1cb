"""Apply output: progress lines and the closing report."""

from __future__ import annotations

import json
from collections.abc import Callable

from avatarsync.output import format_progress, render_apply_json, render_apply_text
from avatarsync.planning.plan import Action
from avatarsync.planning.report import ApplyReport, Outcome, Status
from avatarsync.resources import Address

Golden = Callable[[str, str], None]


def test_progress_lines() -> None:
    brain = Address("Brain", "support")
    tommy = Address("Character", "tommy")
    lines = [
        format_progress(
            Outcome(brain, Action.CREATE, Status.DONE, "created", "br_123", 0.214), color=False
        ),
        format_progress(Outcome(brain, Action.UPDATE, Status.DONE, "", None, 1.0), color=False),
        format_progress(
            Outcome(
                tommy, Action.UPDATE, Status.FAILED, "422 Unprocessable Entity:\n  name too long"
            ),
            color=False,
        ),
        format_progress(
            Outcome(tommy, Action.DELETE, Status.SKIPPED, "not done: a dependency failed"),
            color=False,
        ),
    ]
    assert lines == [
        "Brain/support: created (id br_123) [0.21s]",
        "Brain/support: updated [1.00s]",
        "Character/tommy: FAILED: 422 Unprocessable Entity: name too long",
        "Character/tommy: not done: a dependency failed",
    ]


def test_progress_line_in_colour() -> None:
    outcome = Outcome(Address("Voice", "old"), Action.DELETE, Status.DONE, "deleted", "vo_2", 0.5)
    assert format_progress(outcome, color=True) == (
        "Voice/old: \x1b[31mdeleted\x1b[0m (id vo_2)\x1b[2m [0.50s]\x1b[0m"
    )
    failed = Outcome(Address("Voice", "old"), Action.DELETE, Status.FAILED, "boom")
    assert format_progress(failed, color=True) == "Voice/old: \x1b[31;1mFAILED\x1b[0m: boom"


def test_apply_text_matches_golden(sample_report: ApplyReport, golden: Golden) -> None:
    golden("apply.txt", render_apply_text(sample_report, color=False))
    golden("apply.color.txt", render_apply_text(sample_report, color=True))


def test_successful_apply_is_one_line() -> None:
    report = ApplyReport(
        "pl_1",
        "staging",
        outcomes=[
            Outcome(Address("Brain", "b"), Action.CREATE, Status.DONE, "created", "br_1", 0.1)
        ],
    )
    assert render_apply_text(report, color=False) == (
        "Apply complete: 1 created, 0 updated, 0 replaced, 0 deleted.\n"
    )


def test_apply_json_matches_golden(sample_report: ApplyReport, golden: Golden) -> None:
    text = render_apply_json(sample_report)
    assert json.loads(text) == sample_report.to_dict()
    golden("apply.json", text)
