"""The human plan: Terraform-like text for a terminal or a CI log.

Takes a `Plan` and returns text; it decides nothing (what changes, and why,
was settled by `diff` when the plan was built) and it is not a contract —
scripts read `render_plan_json`. Changes appear in plan order, which is
apply order, so the text reads as what apply is about to do.
"""

from __future__ import annotations

from avatarsync.output._format import (
    ShownBlock,
    ShownDiff,
    ShownUpdate,
    ShownValue,
    change_label,
    escape_controls,
    field_shown,
    one_line,
    plan_warnings,
    plural,
    summary_notes,
)
from avatarsync.output.color import ACTION_STYLE, Painter
from avatarsync.planning.plan import Action, Change, DocumentChange, FieldChange, Plan
from avatarsync.secret import scrub

__all__ = ["render_plan_text"]

_FIELD_INDENT = " " * 6
_BLOCK_INDENT = " " * 10  # text blocks and diffs, under their field name
_DIFF_STYLE = {"+": "green", "-": "red", "@": "cyan"}


def render_plan_text(plan: Plan, *, color: bool, show_noop: bool = False) -> str:
    paint = Painter(color)
    unchanged = [c for c in plan.changes if not _does_something(c)]
    shown = [c for c in plan.changes if show_noop or _does_something(c)]
    warnings = plan_warnings(plan)

    blocks: list[list[str]] = []
    if plan.has_changes:
        env = escape_controls(plan.environment)
        blocks.append([f"avatarsync will perform the following actions in environment '{env}':"])
    blocks.extend(_change_lines(c, paint) for c in shown)
    if plan.has_changes and unchanged and not show_noop:
        count = plural(len(unchanged), "unchanged resource")
        blocks.append([f"{count} not shown (--show-unchanged lists them)."])
    if warnings:
        blocks.append([f"{paint('Warning:', 'yellow', 'bold')} {one_line(w)}" for w in warnings])
    blocks.append(_closing_lines(plan, paint))

    text = "\n\n".join("\n".join(block) for block in blocks) + "\n"
    return scrub(text)


def _does_something(change: Change) -> bool:
    # Adoption alone makes no API call but does write state: worth showing.
    return change.is_change or change.adopt


def _closing_lines(plan: Plan, paint: Painter) -> list[str]:
    if not plan.has_changes:
        env = escape_controls(plan.environment)
        return [paint(f"No changes. Environment '{env}' matches the manifests.", "bold")]
    lines = summary_notes(plan)
    lines.append(paint(plan.summary_line(), "bold"))
    return lines


def _change_lines(change: Change, paint: Painter) -> list[str]:
    action = change.action
    style = ACTION_STYLE[action]
    symbol = paint(action.symbol.rjust(3), style)
    address = paint(escape_controls(str(change.address)), "bold")
    label = paint(f"({change_label(change)})", "cyan" if change.drift else style)
    lines = [f"{symbol} {address}  {label}"]
    for fc in change.fields:
        lines.extend(_field_lines(action, fc, paint))
    lines.extend(_document_line(doc, paint) for doc in change.documents)
    return lines


def _field_lines(action: Action, fc: FieldChange, paint: Painter) -> list[str]:
    name = escape_controls(fc.field)
    forces = paint("  # forces replacement", "red") if fc.forces_replace else ""
    match field_shown(action, fc):
        case ShownDiff(lines):
            return [
                f"{_FIELD_INDENT}{name}:{forces}",
                *(_indent_block(_paint_diff_line(line, paint)) for line in lines),
            ]
        case ShownBlock(lines):
            return [f"{_FIELD_INDENT}{name}: |{forces}", *(_indent_block(line) for line in lines)]
        case ShownValue(text):
            return [f"{_FIELD_INDENT}{name}: {text}{forces}"]
        case ShownUpdate(before, after):
            return [f"{_FIELD_INDENT}{name}: {before} → {after}{forces}"]


def _paint_diff_line(line: str, paint: Painter) -> str:
    style = _DIFF_STYLE.get(line[:1])
    return paint(line, style) if style else line


def _indent_block(line: str) -> str:
    # Blank lines of a text block stay blank: no trailing whitespace in output.
    return _BLOCK_INDENT + line if line.strip() else ""


def _document_line(doc: DocumentChange, paint: Painter) -> str:
    symbol = paint(doc.action.symbol.rjust(3), ACTION_STYLE[doc.action])
    reason = one_line(doc.reason)
    suffix = f"  ({reason})" if reason else ""
    return f"    {symbol} document {escape_controls(doc.name)}{suffix}"
