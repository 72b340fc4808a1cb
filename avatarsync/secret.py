"""Secret values (API keys, BYOK keys) and their scrubbing.

A `Secret` never shows its value in str/repr/format, so it cannot leak through
a log line, an f-string or a traceback's locals. Every secret that is read is
also registered, and `scrub()` replaces registered values in any text the CLI
prints: defence in depth for strings built before anyone knew they were secret.

The registry in use is a context variable: the process has one by default,
and `scope()` opens a fresh one (a test, or a server handling requests for
several projects), seen by everything that runs in that context, asyncio
tasks included.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

__all__ = ["MASK", "Secret", "SecretRegistry", "register", "scope", "scrub"]

MASK = "***"
_MIN_SCRUB_LEN = 4  # shorter values would mangle ordinary text


class SecretRegistry:
    """Secret values to scrub from text; safe to share between threads."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        if value and len(value) >= _MIN_SCRUB_LEN:
            with self._lock:
                self._values.add(value)

    def scrub(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        return text


_PROCESS_REGISTRY = SecretRegistry()
_current: ContextVar[SecretRegistry] = ContextVar("avatarsync_secrets", default=_PROCESS_REGISTRY)


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
    _current.get().register(value)


def scrub(text: str) -> str:
    """Replace every registered secret value in `text` with the mask."""
    return _current.get().scrub(text)


@contextmanager
def scope() -> Iterator[SecretRegistry]:
    """A fresh registry for the code run inside (secrets registered there stay there)."""
    token = _current.set(SecretRegistry())
    try:
        yield _current.get()
    finally:
        _current.reset(token)
