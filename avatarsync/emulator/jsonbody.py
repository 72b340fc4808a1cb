"""The one JSON parser for everything a client sends the emulator: Equos and
Avatarium bodies, WebSocket frames, the admin endpoints.

`json.loads` accepts more than JSON text that can be stored and answered:

- `"\\ud800"` decodes to a lone UTF-16 surrogate, a `str` that cannot be encoded
  as UTF-8. It used to be committed (SQLite takes it inside a JSON body) and
  then every answer containing it, every later list included, failed with a 500.
- nesting past the interpreter's recursion limit raises `RecursionError`, not
  `ValueError`, so it escaped the handlers' error handling;
- `NaN`, `Infinity` and `-Infinity` are not JSON at all.

`parse_json` turns all of these into `BodyError` (a `ValueError`), which each
caller answers as a 400 in its platform's shape before anything is written.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["BodyError", "parse_json"]


class BodyError(ValueError):
    """Not acceptable JSON; `str(exc)` says why without quoting the body."""


def _no_constant(name: str) -> Any:
    raise BodyError(f"{name} is not a JSON value")


def parse_json(raw: bytes | str) -> Any:
    """Parse JSON text; bytes must be UTF-8 (what both platforms send and expect)."""
    try:
        if isinstance(raw, bytes):
            text = raw.decode("utf-8")
        else:
            text = raw
            _check_text(text)  # a str may carry surrogates as characters, not escapes
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise BodyError("nested too deeply") from None
    except BodyError:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        # The decoder's message names a position, never the text itself.
        reason = str(exc) if isinstance(exc, json.JSONDecodeError) else "not valid UTF-8"
        raise BodyError(reason) from None
    # A lone surrogate can only come from a \u escape: skip the walk without one.
    if "\\u" in text:
        _refuse_surrogates(value)
    return value


def _refuse_surrogates(value: Any) -> None:
    # Iterative: the value may be nested as deeply as the parser allows.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key)
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)


def _check_text(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BodyError(
                "contains a lone UTF-16 surrogate (\\ud800-\\udfff), which is not Unicode text"
            ) from None
