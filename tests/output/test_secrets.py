"""Defence in depth: a registered secret never leaves any renderer."""

from __future__ import annotations

import json

import pytest
from support.output_samples import OLD_INSTRUCTIONS, make_plan

from avatarsync.output import (
    format_progress,
    render_apply_json,
    render_apply_text,
    render_plan_json,
    render_plan_markdown,
    render_plan_text,
)
from avatarsync.planning.plan import Action, Change, DocumentChange, FieldChange
from avatarsync.planning.report import ApplyReport, Outcome, Status
from avatarsync.resources import Address
from avatarsync.secret import register

# A quote and a backslash: JSON-encoding would escape them past a naive scrub.
SENTINEL = 'sk-SENTINEL"9\\f3'


@pytest.fixture
def leaky_plan():  # type: ignore[no-untyped-def]
    register(SENTINEL)
    return make_plan(
        (
            Change(
                Address("Brain", "b"),
                Action.UPDATE,
                f"key {SENTINEL} was rotated",
                remote_id="br_1",
                fields=(
                    # Not marked sensitive: only scrub stands between it and the output.
                    FieldChange("greetingMessage", f"old {SENTINEL}", f"new {SENTINEL}"),
                    FieldChange("instructions", OLD_INSTRUCTIONS, OLD_INSTRUCTIONS + SENTINEL),
                    FieldChange("extra", {"key": SENTINEL}, [SENTINEL]),
                ),
                documents=(DocumentChange(Action.CREATE, "doc.md", f"uploaded with {SENTINEL}"),),
            ),
            Change(
                Address("Brain", "c"),
                Action.CREATE,
                "not yet created",
                fields=(FieldChange("instructions", None, f"use {SENTINEL}\nplease\n"),),
            ),
        ),
        warnings=(f"the server echoed {SENTINEL}",),
    )


def _forms() -> list[str]:
    return [SENTINEL, json.dumps(SENTINEL)[1:-1], "SENTINEL"]


def test_plan_renderers_never_output_a_registered_secret(leaky_plan) -> None:  # type: ignore[no-untyped-def]
    outputs = [
        render_plan_text(leaky_plan, color=False, show_noop=True),
        render_plan_text(leaky_plan, color=True),
        render_plan_json(leaky_plan),
        render_plan_markdown(leaky_plan),
        render_plan_markdown(leaky_plan, max_chars=500),
    ]
    for out in outputs:
        for form in _forms():
            assert form not in out
        assert "***" in out or r"\*\*\*" in out  # Markdown escapes the mask in prose


def test_apply_renderers_never_output_a_registered_secret() -> None:
    register(SENTINEL)
    outcome = Outcome(
        Address("Brain", "b"), Action.UPDATE, Status.FAILED, f"401: bad key {SENTINEL}"
    )
    report = ApplyReport(
        "pl_1",
        "staging",
        outcomes=[outcome],
        warnings=[f"dropped {SENTINEL}"],
        error=f"Brain/b: 401: bad key {SENTINEL}",
    )
    outputs = [
        format_progress(outcome, color=False),
        format_progress(outcome, color=True),
        render_apply_text(report, color=False),
        render_apply_json(report),
    ]
    for out in outputs:
        for form in _forms():
            assert form not in out
    assert outputs[0] == "Brain/b: FAILED: 401: bad key ***"
