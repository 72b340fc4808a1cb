"""`avatarsync diff SOURCE TARGET`: two environments' live states, as text or JSON.

Values of sensitive fields show the mask; everything is scrubbed and has its
control characters escaped, like a plan.
"""

from __future__ import annotations

import json
from typing import Any

from avatarsync.output._format import escape_controls, literal, one_line, plural, scrub_deep
from avatarsync.output.color import Painter
from avatarsync.planning.compare import EnvironmentDiff, FieldDifference
from avatarsync.secret import MASK, scrub

__all__ = ["render_environment_diff_json", "render_environment_diff_text"]

DIFF_FORMAT_VERSION = 1


def _shown(difference: FieldDifference, value: Any) -> Any:
    return MASK if difference.sensitive and value is not None else value


def render_environment_diff_text(diff: EnvironmentDiff, *, color: bool) -> str:
    paint = Painter(color)
    source, target = escape_controls(diff.source), escape_controls(diff.target)
    if diff.equal:
        return scrub(
            paint(
                f"No differences: the {plural(diff.compared, 'resource')} of '{source}' and "
                f"'{target}' match (expected differences from vars aside).",
                "bold",
            )
            + "\n"
        )
    lines = [f"Live differences between '{source}' (-) and '{target}' (+):", ""]
    for address in diff.missing_in_target:
        lines.append(f"{paint('-', 'red')} {escape_controls(str(address))}: not live in '{target}'")
    for address in diff.missing_in_source:
        lines.append(
            f"{paint('+', 'green')} {escape_controls(str(address))}: not live in '{source}'"
        )
    current = None
    for difference in diff.differences:
        if difference.address != current:
            current = difference.address
            lines.append(f"{paint('~', 'yellow')} {escape_controls(str(current))}")
        before, after = (
            MASK if difference.sensitive and value is not None else one_line(literal(value))
            for value in (difference.source, difference.target)
        )
        lines.append(f"    {escape_controls(difference.field)}: {before} -> {after}")
    changed = len({d.address for d in diff.differences})
    lines += [
        "",
        paint(
            f"{changed} differ, {len(diff.missing_in_target)} only in '{source}', "
            f"{len(diff.missing_in_source)} only in '{target}' "
            f"(of {plural(diff.compared, 'resource')}).",
            "bold",
        ),
    ]
    return scrub("\n".join(lines) + "\n")


def render_environment_diff_json(diff: EnvironmentDiff) -> str:
    """`{"formatVersion": 1, "source", "target", "equal", "compared", "missingInSource",
    "missingInTarget", "differences": [{"address", "field", "source", "target",
    "sensitive"}]}`"""
    document = {
        "formatVersion": DIFF_FORMAT_VERSION,
        "source": diff.source,
        "target": diff.target,
        "equal": diff.equal,
        "compared": diff.compared,
        "missingInSource": [str(a) for a in diff.missing_in_source],
        "missingInTarget": [str(a) for a in diff.missing_in_target],
        "differences": [
            {
                "address": str(d.address),
                "field": d.field,
                "source": _shown(d, d.source),
                "target": _shown(d, d.target),
                "sensitive": d.sensitive,
            }
            for d in diff.differences
        ],
    }
    text = json.dumps(scrub_deep(document), indent=2, sort_keys=True, ensure_ascii=False)
    return scrub(text) + "\n"
