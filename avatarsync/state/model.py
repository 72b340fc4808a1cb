"""What state holds, how it reads and writes as JSON, and the changes apply makes to it.

The API has nowhere to keep our keys (a brain has no name), so state is the
only link between a manifest key and a remote id. It also records, per
resource, the fingerprint of the spec last applied and the live `updatedAt`
seen right after (how a plan tells "changed in git" from "edited outside
git"), the fields that ever held a secret (they stay masked in every plan,
even after the secret is gone from the manifests), and the manifest file the
resource came from (a glob that stops matching it is an error, not a delete).

State read from a file, a database or an object store is untrusted input:
`State.from_dict` checks every field and says which one is wrong, before
anything remote is called. Apply never rewrites the whole state per call:
it records small `StateOp`s, which every store can persist in O(1) (a journal
line, an upsert) and replay.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from avatarsync.errors import StateError
from avatarsync.resources import Address, Kind

__all__ = [
    "STATE_VERSION",
    "DocumentState",
    "ResourceState",
    "State",
    "StateOp",
    "corrupt_state",
    "decode_state",
]

STATE_VERSION = 2
_READABLE_VERSIONS = (1, 2)  # version 1 lacks `sensitive`, `source` and `pendingCreates`
_KINDS = frozenset(k.value for k in Kind)
_APPLIED_PLANS_KEPT = 50


@dataclass
class DocumentState:
    id: str
    sha256: str


@dataclass
class ResourceState:
    id: str
    fingerprint: str | None = None  # of the desired spec last applied; None: adopted, never applied
    updated_at: str | None = None  # live updatedAt right after our last write
    documents: dict[str, DocumentState] = field(default_factory=dict)  # KB: by document name
    # Fields that ever held a secret: masked in plans even once the secret is gone.
    sensitive: frozenset[str] = frozenset()
    source: str | None = None  # the manifest file (project-relative) it was applied from

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "updatedAt": self.updated_at,
        }
        if self.documents:
            d["documents"] = {
                name: {"id": doc.id, "sha256": doc.sha256}
                for name, doc in sorted(self.documents.items())
            }
        if self.sensitive:
            d["sensitive"] = sorted(self.sensitive)
        if self.source is not None:
            d["source"] = self.source
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "resource") -> ResourceState:
        r = _Reader(d, where)
        documents: dict[str, DocumentState] = {}
        for name, doc in r.mapping("documents", optional=True).items():
            dr = _Reader(doc, f"{where}.documents.{name}")
            documents[name] = DocumentState(dr.text("id"), dr.text("sha256"))
        return cls(
            id=r.text("id"),
            fingerprint=r.text("fingerprint", optional=True),
            updated_at=r.text("updatedAt", optional=True),
            documents=documents,
            sensitive=frozenset(r.texts("sensitive")),
            source=r.text("source", optional=True),
        )


@dataclass
class State:
    environment: str
    client: str
    lineage: str = field(default_factory=lambda: uuid.uuid4().hex)
    serial: int = 0
    resources: dict[Address, ResourceState] = field(default_factory=dict)
    applied_plans: list[str] = field(default_factory=list)
    # Old objects of a replace whose delete has not happened yet: address -> id.
    # Recorded before the new object is created, so a crash cannot orphan them.
    pending_deletes: dict[Address, str] = field(default_factory=dict)
    # Creates that were sent but not yet recorded (address -> the kind's natural
    # key, as text): the next run looks for what such a POST made before it
    # creates again, so an answer lost with its look-up cannot leave an orphan.
    pending_creates: dict[Address, str] = field(default_factory=dict)
    # The last apply that completed: which commit and manifests it came from
    # (what `promote` checks), and any results recorded against it (tests).
    last_apply: dict[str, Any] | None = None
    # The last conversation-test run: which manifests it ran against and how it
    # went (what `promote` checks besides lastApply). Never a reply or a key.
    last_tests: dict[str, Any] | None = None

    def id_of(self, address: Address) -> str | None:
        entry = self.resources.get(address)
        return entry.id if entry else None

    def addresses_by_id(self) -> dict[tuple[str, str], Address]:
        """(kind, remote id) -> address, to turn live links back into keys."""
        return {(a.kind, r.id): a for a, r in self.resources.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "environment": self.environment,
            "client": self.client,
            "lineage": self.lineage,
            "serial": self.serial,
            "resources": {str(a): r.to_dict() for a, r in sorted(self.resources.items())},
            "appliedPlans": self.applied_plans[-_APPLIED_PLANS_KEPT:],
            "pendingDeletes": {str(a): i for a, i in sorted(self.pending_deletes.items())},
            "pendingCreates": {str(a): k for a, k in sorted(self.pending_creates.items())},
            "lastApply": self.last_apply,
            "lastTests": self.last_tests,
        }

    @classmethod
    def from_dict(cls, d: Any) -> State:
        """A validated State; StateError names the first field that is wrong."""
        r = _Reader(d, "state")
        version = r.value("version")
        if version not in _READABLE_VERSIONS:
            raise StateError(
                f"state version {version!r} is not one this avatarsync reads "
                f"({', '.join(map(str, _READABLE_VERSIONS))})"
            )
        resources = {
            _address(key, "resources"): ResourceState.from_dict(value, f"resources.{key}")
            for key, value in r.mapping("resources").items()
        }
        return cls(
            environment=r.text("environment"),
            client=r.text("client"),
            lineage=r.text("lineage"),
            serial=r.integer("serial"),
            resources=resources,
            applied_plans=r.texts("appliedPlans"),
            pending_deletes={
                _address(k, "pendingDeletes"): _text(v, f"pendingDeletes.{k}")
                for k, v in r.mapping("pendingDeletes", optional=True).items()
            },
            last_apply=_last_apply(r.value("lastApply", optional=True)),
            last_tests=_record(r.value("lastTests", optional=True), "lastTests"),
            pending_creates={
                _address(k, "pendingCreates"): _text(v, f"pendingCreates.{k}")
                for k, v in r.mapping("pendingCreates", optional=True).items()
            },
        )


@dataclass(frozen=True)
class StateOp:
    """One change apply makes to state after one API call; small, and replayable.

    `kind` is one of: put (record `entry` for `address`), drop (forget
    `address`), pending-delete / clear-pending-delete (`value` is the old id),
    pending-create / clear-pending-create (`value` is the natural key),
    applied-plan (`value` is the plan id), last-apply (`value` is the JSON of
    `State.last_apply`), last-tests (`value` is the JSON of `State.last_tests`).
    """

    kind: str
    address: Address | None = None
    entry: ResourceState | None = None
    value: str | None = None

    def apply(self, state: State) -> None:
        match self.kind:
            case "put":
                assert self.address is not None and self.entry is not None
                state.resources[self.address] = self.entry
            case "drop":
                assert self.address is not None
                state.resources.pop(self.address, None)
            case "pending-delete":
                assert self.address is not None and self.value is not None
                state.pending_deletes[self.address] = self.value
            case "clear-pending-delete":
                assert self.address is not None
                if self.value is None or state.pending_deletes.get(self.address) == self.value:
                    state.pending_deletes.pop(self.address, None)
            case "pending-create":
                assert self.address is not None and self.value is not None
                state.pending_creates[self.address] = self.value
            case "clear-pending-create":
                assert self.address is not None
                state.pending_creates.pop(self.address, None)
            case "applied-plan":
                assert self.value is not None
                state.applied_plans.append(self.value)
                del state.applied_plans[:-_APPLIED_PLANS_KEPT]
            case "last-apply":
                assert self.value is not None
                try:
                    state.last_apply = _last_apply(json.loads(self.value))
                except ValueError as exc:
                    raise StateError(f"last-apply is not JSON: {exc}") from None
            case "last-tests":
                assert self.value is not None
                try:
                    state.last_tests = _record(json.loads(self.value), "lastTests")
                except ValueError as exc:
                    raise StateError(f"last-tests is not JSON: {exc}") from None
            case _:
                raise StateError(f"unknown state change {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"op": self.kind}
        if self.address is not None:
            d["address"] = str(self.address)
        if self.entry is not None:
            d["entry"] = self.entry.to_dict()
        if self.value is not None:
            d["value"] = self.value
        return d

    @classmethod
    def from_dict(cls, d: Any, where: str = "change") -> StateOp:
        r = _Reader(d, where)
        kind = r.text("op")
        address = r.text("address", optional=True)
        entry = r.value("entry", optional=True)
        op = cls(
            kind=kind,
            address=_address(address, where) if address is not None else None,
            entry=ResourceState.from_dict(entry, f"{where}.entry") if entry is not None else None,
            value=r.text("value", optional=True),
        )
        op.apply(State("check", "check"))  # refuses an unknown or incomplete change
        return op


def corrupt_state(where: str, environment: str, problem: str) -> StateError:
    """State that cannot be used: what is wrong with it, and how to rebuild it
    (`where` is the store's description, e.g. "state file PATH")."""
    return StateError(
        f"{where} {problem}. Nothing was changed. Move it aside and run "
        f"'avatarsync import --env {environment}' to rebuild it from the live resources."
    )


def decode_state(body: str | bytes, environment: str, where: str) -> State:
    """A stored state document, checked before any use: JSON, the format, and
    that it is `environment`'s (a copied file must not steer another one)."""
    try:
        data = json.loads(body)
    except ValueError as exc:  # UnicodeDecodeError included
        raise corrupt_state(where, environment, f"is not JSON ({exc})") from None
    try:
        state = State.from_dict(data)
    except StateError as exc:
        raise corrupt_state(where, environment, str(exc)) from None
    if state.environment != environment:
        raise StateError(
            f"{where} belongs to environment {state.environment!r}, not {environment!r}"
        )
    return state


class _Reader:
    """Typed access to an untrusted mapping, with messages that name the field."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise StateError(f"{where} must be an object, not {_type(data)}")
        self.data = data
        self.where = where

    def value(self, name: str, *, optional: bool = False) -> Any:
        if name not in self.data:
            if optional:
                return None
            raise StateError(f"{self.where}.{name} is missing")
        return self.data[name]

    def text(self, name: str, *, optional: bool = False) -> Any:
        value = self.value(name, optional=optional)
        if value is None and optional:
            return None
        return _text(value, f"{self.where}.{name}")

    def integer(self, name: str) -> int:
        value = self.value(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise StateError(f"{self.where}.{name} must be a whole number ≥ 0, not {value!r}")
        return value

    def mapping(self, name: str, *, optional: bool = False) -> Mapping[str, Any]:
        value = self.value(name, optional=optional)
        if value is None and optional:
            return {}
        if not isinstance(value, Mapping):
            raise StateError(f"{self.where}.{name} must be an object, not {_type(value)}")
        return value

    def texts(self, name: str) -> list[str]:
        value = self.value(name, optional=True)
        if value is None:
            return []
        if not isinstance(value, list):
            raise StateError(f"{self.where}.{name} must be a list, not {_type(value)}")
        return [_text(item, f"{self.where}.{name}[{i}]") for i, item in enumerate(value)]


def _last_apply(value: Any) -> dict[str, Any] | None:
    return _record(value, "lastApply")


def _record(value: Any, name: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise StateError(f"state.{name} must be an object, not {_type(value)}")
    return dict(value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise StateError(f"{where} must be non-empty text, not {_type(value)}")
    return value


def _address(text: Any, where: str) -> Address:
    try:
        address = Address.parse(_text(text, where))
    except ValueError:
        raise StateError(f"{where}: {text!r} is not an address (Kind/key)") from None
    if address.kind not in _KINDS:
        raise StateError(f"{where}: {text!r} names no kind avatarsync knows")
    return address


def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return "empty text" if not value else f"the text {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__
