"""Colour: whether to use it (the caller asks) and how to paint text.

The CLI decides colour once per stream with `should_color` and passes a bool
to every renderer; renderers never look at the terminal themselves, so the
same plan renders to the same bytes in a test as on a CI runner. Plain ANSI
SGR codes rather than rich markup: values from the API may contain `[`…`]`,
which rich would read as markup, and a renderer must never reinterpret data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import IO, Any

from avatarsync.planning.plan import Action

__all__ = ["ACTION_STYLE", "Painter", "should_color"]

_SGR = {
    "bold": "1",
    "dim": "2",
    "red": "31",
    "green": "32",
    "yellow": "33",
    "magenta": "35",
    "cyan": "36",
}

ACTION_STYLE: Mapping[Action, str] = {
    Action.CREATE: "green",
    Action.UPDATE: "yellow",
    Action.REPLACE: "magenta",
    Action.DELETE: "red",
    Action.NOOP: "dim",
}


def should_color(
    stream: IO[Any], no_color_flag: bool, *, environ: Mapping[str, str] | None = None
) -> bool:
    """False with `--no-color`; False when NO_COLOR is set and not empty
    (no-color.org); True when FORCE_COLOR is set and not empty or "0" (CI logs,
    GitHub's included, render ANSI); else whether `stream` is a terminal.
    `environ` is a seam for tests."""
    if no_color_flag:
        return False
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR", "") not in ("", "0"):
        return True
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class Painter:
    """`paint(text, "red", "bold")`; the identity when colour is off, so the
    plain output is the coloured one minus escape codes, byte for byte."""

    __slots__ = ("enabled",)

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *styles: str) -> str:
        if not self.enabled or not text or not styles:
            return text
        codes = ";".join(_SGR[s] for s in styles)
        return f"\x1b[{codes}m{text}\x1b[0m"
