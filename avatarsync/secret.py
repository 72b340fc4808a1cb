"""Secret values (API keys, BYOK keys) and their scrubbing.

A `Secret` never shows its value in str/repr/format, so it cannot leak through
a log line, an f-string or a traceback's locals. Every secret that is read is
also registered, and `scrub()` replaces registered values in any text the CLI
prints: defence in depth for strings built before anyone knew they were secret.
"""

from __future__ import annotations

import threading

__all__ = ["MASK", "Secret", "register", "scrub"]

MASK = "***"
_MIN_SCRUB_LEN = 4  # shorter values would mangle ordinary text
_registered: set[str] = set()
_lock = threading.Lock()


class Secret:
    """A string that only `reveal()` gives back."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register(value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a Secret cannot be pickled")


def register(value: str) -> None:
    """Remember a secret value so `scrub` removes it from any text."""
    if value and len(value) >= _MIN_SCRUB_LEN:
        with _lock:
            _registered.add(value)


def scrub(text: str) -> str:
    """Replace every registered secret value in `text` with the mask."""
    with _lock:
        values = sorted(_registered, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text
