"""The Plan: a frozen, serialisable list of typed changes for one environment.

`builder.build_plan` makes it (pure, from desired + live + state); `steps`
turns it into the calls apply makes; `output` renders it. Nothing here does
I/O and nothing here knows about display. A plan is always built, whatever
it would destroy: `check_safety` is what refuses it, once, right before
apply (octoDNS's `raise_if_unsafe`), so an unsafe plan can still be shown,
reviewed and saved. A saved plan (`plan --out`) is `Plan.to_dict()` as JSON: it carries
the fingerprints it was computed against so a stale plan can be refused, and
no values of sensitive fields (apply re-resolves the manifests and checks the
desired fingerprint instead of trusting values from a file).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from avatarsync.errors import PlanError, UnsafePlanError
from avatarsync.resources import Address
from avatarsync.secret import MASK

__all__ = [
    "FORMAT_VERSION",
    "KNOWN_AFTER_APPLY",
    "Action",
    "Change",
    "DocumentChange",
    "FieldChange",
    "Plan",
    "PlanOptions",
]

FORMAT_VERSION = 1

# The value a reference field takes when its target is created or replaced in
# the same plan: the new id only exists once apply has run.
KNOWN_AFTER_APPLY = "(known after apply)"


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"
    NOOP = "no-op"

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]


_SYMBOLS = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.REPLACE: "-/+",
    Action.DELETE: "-",
    Action.NOOP: " ",
}


@dataclass(frozen=True)
class PlanOptions:
    """What a plan covers: `--prune`, `--target`, `--exclude`, `--allow-delete-all`."""

    prune: bool = False
    targets: tuple[Address, ...] = ()
    excludes: tuple[Address, ...] = ()
    allow_delete_all: bool = False


@dataclass(frozen=True)
class FieldChange:
    """One field's before (live) and after (desired) value."""

    field: str
    before: Any
    after: Any
    forces_replace: bool = False
    sensitive: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "before": MASK if self.sensitive and self.before is not None else self.before,
            "after": MASK if self.sensitive and self.after is not None else self.after,
            "forcesReplace": self.forces_replace,
            "sensitive": self.sensitive,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FieldChange:
        return cls(d["field"], d["before"], d["after"], d["forcesReplace"], d["sensitive"])


@dataclass(frozen=True)
class DocumentChange:
    """A knowledge-base document to upload (create), re-upload (replace) or remove."""

    action: Action
    name: str
    reason: str
    remote_id: str | None = None  # the live document, for replace/delete
    sha256: str | None = None  # the new content, for create/replace

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "name": self.name,
            "reason": self.reason,
            "remoteId": self.remote_id,
            "sha256": self.sha256,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DocumentChange:
        return cls(Action(d["action"]), d["name"], d["reason"], d["remoteId"], d["sha256"])


@dataclass(frozen=True)
class Change:
    """What happens to one resource, and why."""

    address: Address
    action: Action
    reason: str
    remote_id: str | None = None  # the live resource (update, replace, delete, no-op)
    fields: tuple[FieldChange, ...] = ()
    documents: tuple[DocumentChange, ...] = ()
    drift: bool = False  # live was edited outside git since the last apply
    adopt: bool = False  # remote_id is an unmanaged match, to be recorded in state
    depends_on: tuple[Address, ...] = ()
    inline_owner: Address | None = None
    # The old object of a replace an earlier, interrupted apply left behind:
    # `remote_id` is deleted; `address` is the resource it was replaced for.
    leftover: bool = False
    # No API call, but state's record of what was applied is out of date.
    refresh: bool = False

    @property
    def is_change(self) -> bool:
        """True when apply has to call the API (adoption alone only writes state)."""
        return self.action is not Action.NOOP

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": str(self.address),
            "kind": self.address.kind,
            "key": self.address.key,
            "action": self.action.value,
            "reason": self.reason,
            "remoteId": self.remote_id,
            "drift": self.drift,
            "adopt": self.adopt,
            "dependsOn": [str(a) for a in self.depends_on],
            "inlineOwner": str(self.inline_owner) if self.inline_owner else None,
            "leftover": self.leftover,
            "refresh": self.refresh,
            "fields": [f.to_dict() for f in self.fields],
            "documents": [d.to_dict() for d in self.documents],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Change:
        return cls(
            address=Address.parse(d["address"]),
            action=Action(d["action"]),
            reason=d["reason"],
            remote_id=d["remoteId"],
            fields=tuple(FieldChange.from_dict(f) for f in d["fields"]),
            documents=tuple(DocumentChange.from_dict(x) for x in d["documents"]),
            drift=d["drift"],
            adopt=d["adopt"],
            depends_on=tuple(Address.parse(a) for a in d["dependsOn"]),
            inline_owner=Address.parse(d["inlineOwner"]) if d["inlineOwner"] else None,
            leftover=bool(d.get("leftover", False)),
            refresh=bool(d.get("refresh", False)),
        )


@dataclass(frozen=True)
class Plan:
    """Every change for one environment, sorted in apply order.

    `live_fingerprint` hashes the ids and `updatedAt` of every live resource the
    plan looked at; `desired_fingerprint` hashes the resolved manifests. Apply
    of a saved plan recomputes both and refuses when either moved.
    """

    plan_id: str
    environment: str
    client: str
    changes: tuple[Change, ...]
    state_serial: int
    state_lineage: str
    live_fingerprint: str
    desired_fingerprint: str
    created_at: str
    warnings: tuple[str, ...] = ()
    # Resources in state but gone from the manifests, kept because --prune was not given.
    retained: tuple[Address, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    # How many resources the state managed when the plan was made, and whether
    # the environment is protected: what `check_safety` judges by.
    managed: int = 0
    protected: bool = False

    @property
    def summary(self) -> dict[str, int]:
        counts = Counter(c.action for c in self.changes)
        return {
            "create": counts[Action.CREATE],
            "update": counts[Action.UPDATE],
            "replace": counts[Action.REPLACE],
            "delete": counts[Action.DELETE],
            "adopt": sum(1 for c in self.changes if c.adopt),
            "drift": sum(1 for c in self.changes if c.drift),
            "noop": counts[Action.NOOP],
        }

    @property
    def has_changes(self) -> bool:
        """Anything apply would do, API calls or state adoptions."""
        return any(c.is_change or c.adopt for c in self.changes)

    def summary_line(self) -> str:
        s = self.summary
        return (
            f"Plan: {s['create']} to create, {s['update']} to update, "
            f"{s['replace']} to replace, {s['delete']} to delete."
        )

    # -- safety -------------------------------------------------------------

    def destructive_changes(self) -> list[Change]:
        """Deletes and replaces: what a protected environment refuses without --allow-destroy."""
        return [c for c in self.changes if c.action in (Action.DELETE, Action.REPLACE)]

    @property
    def deletes_everything(self) -> bool:
        """True when the plan deletes every resource the state manages."""
        deleted = sum(1 for c in self.changes if c.action is Action.DELETE and not c.leftover)
        return self.managed > 0 and deleted >= self.managed and not self.options.get("targets")

    def safety_problems(
        self,
        *,
        protect: bool | None = None,
        allow_destroy: bool = False,
        allow_delete_all: bool | None = None,
    ) -> list[str]:
        """Why apply would refuse this plan (empty: it is safe to apply).

        `protect` defaults to the environment's setting recorded in the plan,
        `allow_delete_all` to what was given when the plan was made.
        """
        protect = self.protected if protect is None else protect
        if allow_delete_all is None:
            allow_delete_all = bool(self.options.get("allowDeleteAll"))
        problems: list[str] = []
        if self.deletes_everything and not allow_delete_all:
            kept = any(c.action is not Action.DELETE for c in self.changes)
            why = "none of them is kept" if kept else "the manifests define none"
            problems.append(
                f"this plan would delete all {self.managed} managed resources of "
                f"environment {self.environment!r} ({why}: a wrong glob, directory or "
                "environment?). If that is really intended, pass --allow-delete-all."
            )
        destructive = [str(c.address) for c in self.destructive_changes()]
        if protect and destructive and not allow_destroy:
            problems.append(
                f"environment {self.environment!r} is protected and this plan deletes or "
                f"replaces {len(destructive)} resource(s): {', '.join(destructive[:10])}"
                f"{' …' if len(destructive) > 10 else ''}. Pass --allow-destroy to proceed."
            )
        return problems

    def check_safety(
        self,
        *,
        protect: bool | None = None,
        allow_destroy: bool = False,
        allow_delete_all: bool | None = None,
    ) -> None:
        """Raise UnsafePlanError when apply must refuse this plan."""
        problems = self.safety_problems(
            protect=protect, allow_destroy=allow_destroy, allow_delete_all=allow_delete_all
        )
        if problems:
            raise UnsafePlanError(" ".join(problems))

    def change(self, address: Address) -> Change | None:
        for c in self.changes:
            if c.address == address:
                return c
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "formatVersion": FORMAT_VERSION,
            "planId": self.plan_id,
            "environment": self.environment,
            "client": self.client,
            "createdAt": self.created_at,
            "stateSerial": self.state_serial,
            "stateLineage": self.state_lineage,
            "liveFingerprint": self.live_fingerprint,
            "desiredFingerprint": self.desired_fingerprint,
            "summary": self.summary,
            "hasChanges": self.has_changes,
            "warnings": list(self.warnings),
            "retained": [str(a) for a in self.retained],
            "options": dict(self.options),
            "managed": self.managed,
            "protected": self.protected,
            "changes": [c.to_dict() for c in self.changes],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Plan:
        version = d.get("formatVersion")
        if version != FORMAT_VERSION:
            raise PlanError(
                f"saved plan has format version {version!r}; this avatarsync reads {FORMAT_VERSION}"
            )
        try:
            return cls(
                plan_id=d["planId"],
                environment=d["environment"],
                client=d["client"],
                changes=tuple(Change.from_dict(c) for c in d["changes"]),
                state_serial=d["stateSerial"],
                state_lineage=d["stateLineage"],
                live_fingerprint=d["liveFingerprint"],
                desired_fingerprint=d["desiredFingerprint"],
                created_at=d["createdAt"],
                warnings=tuple(d.get("warnings", ())),
                retained=tuple(Address.parse(a) for a in d.get("retained", ())),
                options=dict(d.get("options", {})),
                managed=int(d.get("managed", 0)),
                protected=bool(d.get("protected", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"saved plan is malformed: {exc}") from exc
