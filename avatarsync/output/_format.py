"""Presentation helpers shared by the text and Markdown renderers.

Everything that turns a plan value into characters lives here, so the two
human renderers agree on how a value, a label or a text diff looks. Pure
functions of their arguments: no I/O, no environment, no clock.

Values pass three gates before they are shown: sensitive fields become the
mask, registered secrets are scrubbed from raw strings (before JSON encoding,
which could otherwise escape a secret's quote or backslash past `scrub`), and
control characters are escaped so a value edited outside avatarsync cannot
drive the reader's terminal.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

from avatarsync.planning.plan import KNOWN_AFTER_APPLY, Action, Change, FieldChange, Plan
from avatarsync.secret import MASK, scrub

__all__ = [
    "LONG_TEXT_CHARS",
    "FieldShown",
    "ShownBlock",
    "ShownDiff",
    "ShownUpdate",
    "ShownValue",
    "change_label",
    "escape_controls",
    "field_shown",
    "field_value",
    "is_block_text",
    "literal",
    "one_line",
    "plan_warnings",
    "plural",
    "scrub_deep",
    "summary_notes",
    "text_diff",
]

# Past this length a string is "long text": an update shows a line diff
# instead of two literals, which would be two walls of text.
LONG_TEXT_CHARS = 80

# C0 controls except tab and newline, DEL, C1 controls (0x9b is a CSI on some
# terminals), and the bidi overrides that can make text read differently
# from what it is ("Trojan Source").
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")

# diff writes a reference to a target created in the same plan as
# "<key> (known after apply)".
_AFTER_APPLY_SUFFIX = f" {KNOWN_AFTER_APPLY}"


def escape_controls(text: str) -> str:
    """Make unsafe characters visible as `\\uXXXX` instead of letting them act."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def one_line(text: str) -> str:
    """Free text (reasons, messages) on one line, scrubbed and escaped."""
    return escape_controls(" ".join(scrub(text).split()))


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def scrub_deep(value: Any) -> Any:
    """`scrub` every string inside a JSON-like value (keys too). Needed before
    encoding: JSON escapes a secret's quote or backslash, and the escaped form
    no longer matches what `scrub` looks for in the encoded text."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub_deep(k): scrub_deep(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_deep(v) for v in value]
    return value


def literal(value: Any) -> str:
    """A JSON-ish literal for one value. The known-after-apply marker stays
    bare, also when diff appends it to the target's key (`"support" (known
    after apply)`): it is a note about the value, not part of it."""
    if value == KNOWN_AFTER_APPLY:
        return KNOWN_AFTER_APPLY
    if isinstance(value, str) and value.endswith(_AFTER_APPLY_SUFFIX):
        return f"{literal(value.removesuffix(_AFTER_APPLY_SUFFIX))} {KNOWN_AFTER_APPLY}"
    text = json.dumps(scrub_deep(value), ensure_ascii=False, sort_keys=True, default=str)
    return escape_controls(text)


def field_value(fc: FieldChange, value: Any) -> str:
    """How one side of a field is shown. A FieldChange built by diff holds the
    real values of sensitive fields (only `to_dict` masks), so mask here too."""
    if fc.sensitive and value is not None:
        return MASK
    return literal(value)


def _is_long(value: Any) -> bool:
    return (
        isinstance(value, str)
        and value != KNOWN_AFTER_APPLY
        and ("\n" in value or len(value) > LONG_TEXT_CHARS)
    )


def is_block_text(fc: FieldChange, value: Any) -> bool:
    """A multi-line string shown as an indented block rather than one literal."""
    return not fc.sensitive and isinstance(value, str) and "\n" in value


def text_diff(fc: FieldChange) -> list[str] | None:
    """Unified line diff (without the ---/+++ header) when the field is long
    text on either side of an update, else None. None also when the texts only
    differ in ways a line diff cannot show (a trailing newline, line endings):
    the caller then falls back to literals, which show every character."""
    sides = (fc.before, fc.after)
    if fc.sensitive or not all(s is None or isinstance(s, str) for s in sides):
        return None
    if any(s is not None and s.endswith(KNOWN_AFTER_APPLY) for s in sides):
        return None
    if not any(_is_long(s) for s in sides):
        return None
    before = scrub(fc.before or "").splitlines()
    after = scrub(fc.after or "").splitlines()
    lines = list(difflib.unified_diff(before, after, lineterm=""))[2:]
    return [escape_controls(line) for line in lines] or None


@dataclass(frozen=True)
class ShownDiff:
    """An update of long text: unified-diff lines (marker in column one)."""

    lines: list[str]


@dataclass(frozen=True)
class ShownBlock:
    """A created or deleted multi-line text: its lines, scrubbed and escaped."""

    lines: list[str]


@dataclass(frozen=True)
class ShownValue:
    """A created or deleted value, as one literal."""

    text: str


@dataclass(frozen=True)
class ShownUpdate:
    """An update, as the literals before and after."""

    before: str
    after: str


FieldShown = ShownDiff | ShownBlock | ShownValue | ShownUpdate


def field_shown(action: Action, fc: FieldChange) -> FieldShown:
    """How the human renderers show one field change: a created resource lists
    what it will have and a deleted one what goes away (a block for
    multi-line text); an update is a line diff of long text, else the two
    literals."""
    if action in (Action.CREATE, Action.DELETE):
        value = fc.after if action is Action.CREATE else fc.before
        if is_block_text(fc, value):
            return ShownBlock([escape_controls(line) for line in scrub(value).splitlines()])
        return ShownValue(field_value(fc, value))
    diff = text_diff(fc)
    if diff is not None:
        return ShownDiff(diff)
    return ShownUpdate(field_value(fc, fc.before), field_value(fc, fc.after))


def change_label(change: Change) -> str:
    """`update`, `replace: identity cannot be updated`, `drift: …`, `adopt unmanaged id …`."""
    action = change.action
    tags: list[str] = []
    if change.drift:
        # The symbol already says update; "drift" says why it is needed.
        tags.append("drift" if action is Action.UPDATE else f"{action.value}, drift")
    elif not (action is Action.NOOP and change.adopt):
        tags.append(action.value)
    if change.adopt:
        rid = one_line(change.remote_id) if change.remote_id else None
        tags.append(f"adopt unmanaged id {rid}" if rid else "adopt unmanaged resource")
    label = ", ".join(tags)
    reason = one_line(change.reason)
    # Skip a reason that only restates the label ("adopt unmanaged id vo_1:
    # adopt unmanaged match into state"): same leading word, no news.
    if not reason or reason.split()[0].lower() == label.split()[0].rstrip(",").lower():
        return label
    return f"{label}: {reason}"


def plan_warnings(plan: Plan) -> list[str]:
    """What apply would refuse without a flag, the plan's warnings, then one
    per retained resource that no warning already names in the same words."""
    out = list(dict.fromkeys([*plan.safety_problems(), *plan.warnings]))
    for address in plan.retained:
        text = f"{address} is no longer in the manifests; run with --prune to delete it"
        if text not in out:
            out.append(text)
    return out


def summary_notes(plan: Plan) -> list[str]:
    """What the summary line does not count: adoptions (state only) and drift."""
    notes = []
    adopt, drift = plan.summary["adopt"], plan.summary["drift"]
    if adopt:
        noun = "unmanaged resource" if adopt == 1 else "unmanaged resources"
        notes.append(f"{adopt} {noun} will be adopted into state.")
    if drift:
        verb = "was" if drift == 1 else "were"
        notes.append(
            f"{plural(drift, 'resource')} {verb} edited outside avatarsync and will be restored."
        )
    return notes
