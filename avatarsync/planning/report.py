"""What apply did: one outcome per planned change, plus warnings.

Apply fills it in as it goes (it is also what progress lines are made from);
`output` renders it. Data only.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from avatarsync.planning.plan import Action
from avatarsync.resources import Address

__all__ = ["ApplyReport", "Outcome", "Status"]


class Status(StrEnum):
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # not started: an earlier error stopped apply, or a dependency failed


@dataclass(frozen=True)
class Outcome:
    address: Address
    action: Action
    status: Status
    message: str = ""
    remote_id: str | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": str(self.address),
            "action": self.action.value,
            "status": self.status.value,
            "message": self.message,
            "remoteId": self.remote_id,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class ApplyReport:
    plan_id: str
    environment: str
    outcomes: list[Outcome] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # e.g. a field the server dropped
    error: str | None = None  # the hard error that stopped apply
    requests: int = 0  # API requests made during apply
    seconds: float = 0.0
    interrupted: str | None = None  # the signal that stopped apply (SIGINT, SIGTERM)

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.interrupted is None
            and all(o.status is Status.DONE for o in self.outcomes)
        )

    def counts(self) -> dict[str, int]:
        done = Counter(o.action for o in self.outcomes if o.status is Status.DONE)
        return {
            "created": done[Action.CREATE],
            "updated": done[Action.UPDATE],
            "adopted": done[Action.NOOP],  # only adoptions report a no-op outcome
            "replaced": done[Action.REPLACE],
            "deleted": done[Action.DELETE],
            "failed": sum(1 for o in self.outcomes if o.status is Status.FAILED),
            "skipped": sum(1 for o in self.outcomes if o.status is Status.SKIPPED),
        }

    def summary_line(self) -> str:
        c = self.counts()
        line = (
            f"Apply {self._outcome_word()}: {c['created']} created, "
            f"{c['updated']} updated, {c['replaced']} replaced, {c['deleted']} deleted"
        )
        if c["adopted"]:
            line += f", {c['adopted']} adopted"
        if c["failed"] or c["skipped"]:
            line += f", {c['failed']} failed, {c['skipped']} not done"
        return line + "."

    def _outcome_word(self) -> str:
        if self.ok:
            return "complete"
        return f"interrupted ({self.interrupted})" if self.interrupted else "stopped"

    def to_dict(self) -> dict[str, Any]:
        return {
            "formatVersion": 1,
            "planId": self.plan_id,
            "environment": self.environment,
            "ok": self.ok,
            "counts": self.counts(),
            "error": self.error,
            "warnings": list(self.warnings),
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "outcomes": [o.to_dict() for o in self.outcomes],
        }
