"""What a conversation-test run found: frozen data for the renderers (text,
JSON, JUnit) and for the record promote checks. Replies are what the agent
said; a BYOK key never reaches them (it is only ever a `Secret`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Status", "SuiteResult", "TestResult", "TurnResult"]


class Status(StrEnum):
    PASSED = "passed"
    FAILED = "failed"


@dataclass(frozen=True)
class TurnResult:
    """One turn: what was said, expected and got, how fast, and what failed."""

    say: str
    expected: dict[str, Any]  # the expectations as written (camelCase names)
    got: str | None  # the reply (joined chunks); None when nothing came back
    status: Status
    failures: tuple[str, ...] = ()
    first_chunk_seconds: float | None = None
    seconds: float | None = None
    chunks: int = 0
    reconnected: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "say": self.say,
            "expected": self.expected,
            "got": self.got,
            "status": self.status.value,
            "failures": list(self.failures),
            "firstChunkSeconds": _round(self.first_chunk_seconds),
            "seconds": _round(self.seconds),
            "chunks": self.chunks,
            "reconnected": self.reconnected,
        }


@dataclass(frozen=True)
class TestResult:
    """One ConversationTest. `error` says why it could not run (or stopped)."""

    __test__ = False  # not a pytest class

    name: str
    target: str  # "profile aria-support" or "preset tommy-support"
    status: Status
    turns: tuple[TurnResult, ...] = ()
    error: str | None = None
    seconds: float = 0.0
    conversation_id: str | None = None
    file: str | None = None  # where the test is defined (project-relative)
    line: int | None = None

    @property
    def failures(self) -> list[str]:
        found = [self.error] if self.error else []
        for index, turn in enumerate(self.turns):
            found += [f"turn {index + 1}: {failure}" for failure in turn.failures]
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "status": self.status.value,
            "error": self.error,
            "seconds": _round(self.seconds),
            "conversationId": self.conversation_id,
            "file": self.file,
            "line": self.line,
            "turns": [turn.to_json() for turn in self.turns],
        }


@dataclass(frozen=True)
class SuiteResult:
    """A whole run in one environment, tests sorted by name."""

    environment: str
    tests: tuple[TestResult, ...]
    seconds: float
    selected: tuple[str, ...] = ()  # NAME arguments; empty: every test ran
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> int:
        return sum(1 for t in self.tests if t.status is Status.PASSED)

    @property
    def failed(self) -> int:
        return sum(1 for t in self.tests if t.status is Status.FAILED)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def record(self, manifests: str, at: str, commit: str | None) -> dict[str, Any]:
        """What state keeps (`lastTests`): counts and names, no replies."""
        return {
            "manifests": manifests,
            "at": at,
            "commit": commit,
            "all": not self.selected,
            "passed": self.passed,
            "failed": self.failed,
            "names": sorted(t.name for t in self.tests),
            "failedNames": sorted(t.name for t in self.tests if t.status is Status.FAILED),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
