"""Apply output: a progress line per outcome, and the closing report.

`apply` calls `format_progress` as each outcome arrives (the CLI prints it to
stderr: progress is a diagnostic, the report is the payload) and renders the
`ApplyReport` once at the end, as text or JSON. Renderers only: apply decides
what happened, this decides how it reads.
"""

from __future__ import annotations

import json
from typing import assert_never

from avatarsync.output._format import escape_controls, one_line, scrub_deep
from avatarsync.output.color import ACTION_STYLE, Painter
from avatarsync.planning.plan import Action
from avatarsync.planning.report import ApplyReport, Outcome, Status
from avatarsync.secret import scrub

__all__ = [
    "format_progress",
    "render_apply_json",
    "render_apply_markdown",
    "render_apply_text",
]

# Apply's DONE message already says what happened ("created", "adopted into
# state", "replaced (new object linked, old one deleted)"); these stand in
# only when it is empty.
_DONE_VERB = {
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.REPLACE: "replaced",
    Action.DELETE: "deleted",
    Action.NOOP: "done",
}


def format_progress(outcome: Outcome, *, color: bool) -> str:
    """One line, no newline: `Brain/support: created (id br_123) [0.21s]`,
    `Character/tommy: FAILED: …`, `Voice/old: not done: a dependency failed`."""
    paint = Painter(color)
    address = escape_controls(str(outcome.address))
    message = one_line(outcome.message)
    match outcome.status:
        case Status.DONE:
            text = message or _DONE_VERB[outcome.action]
            line = f"{address}: {paint(text, ACTION_STYLE[outcome.action])}"
            if outcome.remote_id:
                line += f" (id {escape_controls(outcome.remote_id)})"
            # Only work that ran has a duration worth showing.
            line += paint(f" [{outcome.seconds:.2f}s]", "dim")
        case Status.FAILED:
            line = f"{address}: {paint('FAILED', 'red', 'bold')}: {message or 'no message'}"
        case Status.SKIPPED:
            line = f"{address}: {paint(message or 'skipped', 'yellow')}"
        case _:
            assert_never(outcome.status)
    return scrub(line)


def render_apply_text(report: ApplyReport, *, color: bool) -> str:
    paint = Painter(color)
    blocks: list[list[str]] = []
    not_done = [o for o in report.outcomes if o.status is not Status.DONE]
    if not_done:
        blocks.append([format_progress(o, color=color) for o in not_done])
    if report.warnings:
        blocks.append(
            [f"{paint('Warning:', 'yellow', 'bold')} {one_line(w)}" for w in report.warnings]
        )
    if report.error:
        # The hard error may span lines (a server's validation message); keep them.
        first, *rest = scrub(report.error).splitlines() or [""]
        lines = [f"{paint('Error:', 'red', 'bold')} {escape_controls(first)}"]
        lines.extend(f"  {escape_controls(line)}" if line.strip() else "" for line in rest)
        blocks.append(lines)
    blocks.append([paint(report.summary_line(), "green" if report.ok else "red", "bold")])
    return scrub("\n\n".join("\n".join(block) for block in blocks) + "\n")


def render_apply_json(report: ApplyReport) -> str:
    text = json.dumps(scrub_deep(report.to_dict()), indent=2, sort_keys=True, ensure_ascii=False)
    return scrub(text) + "\n"


def render_apply_markdown(report: ApplyReport) -> str:
    """A short Markdown report for a CI job's summary: the outcome, then what
    did not get done (each change that failed or was skipped)."""
    env = escape_controls(report.environment).replace("`", "'")
    state = "applied" if report.ok else "FAILED"
    lines = [f"### avatarsync apply to `{env}`: {state}", "", f"**{report.summary_line()}**"]
    not_done = [o for o in report.outcomes if o.status is not Status.DONE]
    if not_done:
        lines += ["", "| Resource | Status | Message |", "| --- | --- | --- |"]
        for outcome in not_done:
            cells = (str(outcome.address), outcome.status.value, outcome.message)
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    if report.error:
        lines += ["", f"Error: {_cell(report.error)}"]
    return scrub("\n".join(lines) + "\n")


def _cell(text: str) -> str:
    return one_line(text).replace("|", "\\|").replace("`", "'")
