"""The plan as a pull-request comment (GitHub-flavoured Markdown).

A heading, the summary line, a table of changes, then one `<details>` block
per change with a fenced `diff` of its fields. GitHub rejects comments over
65 536 characters, so the output is kept within `max_chars` by dropping whole
sections from the least to the most important: details from the end, then
table rows (replaced by "… and N more changes"), then warnings; the heading,
summary and a note saying how to get the full plan always stay. Sections are
dropped whole, never cut, so a fence or a `<details>` is never left open.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence

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
from avatarsync.planning.plan import Action, Change, DocumentChange, FieldChange, Plan
from avatarsync.secret import scrub

__all__ = ["render_plan_markdown"]

_TABLE_HEADER = ("| Action | Resource | Change |", "| :---: | --- | --- |")
# Document lines in a diff fence: `!` is what diff highlighting calls "changed".
_DOC_MARKER = {Action.CREATE: "+", Action.REPLACE: "!", Action.DELETE: "-", Action.NOOP: " "}
_MD_SPECIAL = re.compile(r"([\\`*_\[\]~|#])")


def render_plan_markdown(plan: Plan, *, max_chars: int = 60000, title: str = "plan") -> str:
    """`title` names what the plan shows ("plan", "drift"); the first line is a
    hidden marker (`<!-- avatarsync plan: ENV -->`) by which a workflow finds
    and updates its one sticky comment."""
    marker = f"<!-- avatarsync {title}: {plan.environment.replace('--', '- -')} -->\n"
    return marker + _render(plan, max_chars - len(marker), title)


def _render(plan: Plan, max_chars: int, title: str) -> str:
    env = plan.environment
    heading = f"### avatarsync {title} for {_code(env)}"
    warnings = [f"- :warning: {_md_text(w)}" for w in plan_warnings(plan)]

    if not plan.has_changes:
        summary = f"**No changes.** Environment {_code(env)} matches the manifests."
        return _fit(heading, summary, warnings, [], "", [], env, max_chars)

    summary = "\n\n".join([f"**{plan.summary_line()}**", *summary_notes(plan)])
    changes = [c for c in plan.changes if c.is_change or c.adopt]
    unchanged = len(plan.changes) - len(changes)
    rows = [_table_row(c) for c in changes]
    note = f"_{plural(unchanged, 'unchanged resource')} not shown._" if unchanged else ""
    details = [d for d in (_details(c) for c in changes) if d]
    return _fit(heading, summary, warnings, rows, note, details, env, max_chars)


# -- assembly and truncation -------------------------------------------------


def _join(sections: Sequence[str]) -> str:
    return "\n\n".join(s for s in sections if s) + "\n"


def _fit(
    heading: str,
    summary: str,
    warnings: list[str],
    rows: list[str],
    unchanged_note: str,
    details: list[str],
    env: str,
    max_chars: int,
) -> str:
    table = "\n".join([*_TABLE_HEADER, *rows]) if rows else ""
    full = _join([heading, summary, "\n".join(warnings), table, unchanged_note, *details])
    if len(full) <= max_chars:
        return scrub(full)  # scrub only ever shortens: a secret is longer than the mask

    # Reserve room for the note as if every count were at its largest; the
    # real counts have at most as many digits.
    worst_note = _truncation_note(len(rows), len(rows), len(details), len(details), env)
    budget = max_chars - len(_join([heading, summary, unchanged_note, worst_note]))

    warnings_section, _ = _fit_lines(
        warnings, (), lambda n: f"- … and {plural(n, 'more warning')}", budget - 2
    )
    budget -= len(warnings_section) + 2 if warnings_section else 0
    table_section, kept_rows = _fit_lines(
        rows, _TABLE_HEADER, lambda n: f"| | … and {plural(n, 'more change')} | |", budget - 2
    )
    budget -= len(table_section) + 2 if table_section else 0

    kept_details: list[str] = []
    for block in details:
        if len(block) + 2 > budget:
            break  # details go in plan order: stop at the first that does not fit
        kept_details.append(block)
        budget -= len(block) + 2

    note = _truncation_note(kept_rows, len(rows), len(kept_details), len(details), env)
    sections = [heading, summary, warnings_section, table_section, unchanged_note]
    return scrub(_join([*sections, *kept_details, note]))


def _fit_lines(
    items: list[str], header: Sequence[str], more: Callable[[int], str], budget: int
) -> tuple[str, int]:
    """As many of `items` (under `header`) as fit in `budget` characters, then
    a "… and N more" line for the rest. Returns the section and the count kept."""
    if not items:
        return "", 0
    whole = "\n".join([*header, *items])
    if len(whole) <= budget:
        return whole, len(items)
    used = len("\n".join([*header, more(len(items))]))
    kept = 0
    for item in items:
        if used + len(item) + 1 > budget:
            break
        used += len(item) + 1
        kept += 1
    return "\n".join([*header, *items[:kept], more(len(items) - kept)]), kept


def _truncation_note(rows: int, total_rows: int, details: int, total_details: int, env: str) -> str:
    command = _code(f"avatarsync plan --env {env} --json")
    return (
        "> [!NOTE]\n"
        f"> This plan was truncated to fit in a comment: {rows} of {total_rows} changes "
        f"listed, details for {details} of {total_details}. For the full plan run {command}."
    )


# -- table and details -------------------------------------------------------


def _table_row(change: Change) -> str:
    symbol = change.action.symbol.strip()
    symbol_cell = _code(symbol, in_table=True) if symbol else ""
    address = _code(str(change.address), in_table=True)
    return f"| {symbol_cell} | {address} | {_md_text(change_label(change))} |"


def _details(change: Change) -> str:
    action = change.action
    lines = [line for fc in change.fields for line in _field_lines(action, fc)]
    lines.extend(_document_line(doc) for doc in change.documents)
    if not lines:
        return ""
    body = "\n".join(lines)
    fence = "`" * max(3, _longest_backtick_run(body) + 1)
    title = html.escape(f"{action.symbol.strip()} {escape_controls(str(change.address))}".strip())
    label = html.escape(change_label(change), quote=False)
    return (
        f"<details><summary><code>{title}</code> {label}</summary>\n\n"
        f"{fence}diff\n{body}\n{fence}\n\n"
        "</details>"
    )


def _field_lines(action: Action, fc: FieldChange) -> list[str]:
    name = escape_controls(fc.field)
    forces = "  # forces replacement" if fc.forces_replace else ""
    marker = "+" if action is Action.CREATE else "-"  # what a create or delete shows
    match field_shown(action, fc):
        case ShownDiff(lines):
            return [f"  {name}:{forces}", *(_diff_line(line) for line in lines)]
        case ShownBlock(lines):
            return [
                f"{marker} {name}: |{forces}",
                *(_block_line(marker, line) for line in lines),
            ]
        case ShownValue(text):
            return [f"{marker} {name}: {text}{forces}"]
        case ShownUpdate(before, after):
            return [f"- {name}: {before}", f"+ {name}: {after}{forces}"]


def _diff_line(line: str) -> str:
    # A unified-diff line keeps its marker in column one, where diff
    # highlighting looks, and its text moves under the field name.
    if line.startswith("@@"):
        return line
    return _block_line(line[:1], line[1:])


def _block_line(marker: str, text: str) -> str:
    return f"{marker}     {text}" if text.strip() else marker.strip()


def _document_line(doc: DocumentChange) -> str:
    reason = one_line(doc.reason)
    suffix = f"  ({reason})" if reason else ""
    marker = _DOC_MARKER.get(doc.action, " ")
    return f"{marker} document {escape_controls(doc.name)}{suffix}"


# -- Markdown escaping -------------------------------------------------------


def _md_text(text: str) -> str:
    """Free text as inert Markdown: no HTML, no emphasis, no table breaks."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(one_line(text), quote=False))


def _code(text: str, *, in_table: bool = False) -> str:
    """A code span that survives backticks in `text`."""
    text = one_line(text)
    ticks = "`" * (_longest_backtick_run(text) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    span = f"{ticks}{pad}{text}{pad}{ticks}"
    # A `|` ends a table cell even inside a code span; GFM allows escaping it.
    return span.replace("|", "\\|") if in_table else span


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall(r"`+", text)), default=0)
