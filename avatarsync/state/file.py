"""Per-environment state: which remote id each `Kind/key` is, and what was applied.

The API has nowhere to keep our keys (a brain has no name), so this file is
the only link between a manifest key and a remote id. It also records the
fingerprint of the spec last applied and the live `updatedAt` seen right
after, which is how a plan tells "changed in git" from "edited outside git".

The file is rewritten atomically (temp file, fsync, rename) after every
successful API write, so a crash loses at most the call that was in flight;
an fcntl-based lock (filelock) keeps two applies apart and is released by the
kernel if the holder is killed.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import filelock

from avatarsync.errors import LockError, StateError
from avatarsync.resources import Address

__all__ = ["STATE_VERSION", "DocumentState", "ResourceState", "State", "StateStore"]

STATE_VERSION = 1


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
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ResourceState:
        return cls(
            id=d["id"],
            fingerprint=d.get("fingerprint"),
            updated_at=d.get("updatedAt"),
            documents={
                name: DocumentState(doc["id"], doc["sha256"])
                for name, doc in d.get("documents", {}).items()
            },
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
            "appliedPlans": self.applied_plans[-50:],
            "pendingDeletes": {str(a): i for a, i in sorted(self.pending_deletes.items())},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> State:
        if d.get("version") != STATE_VERSION:
            raise StateError(f"state file version {d.get('version')!r} is not {STATE_VERSION}")
        return cls(
            environment=d["environment"],
            client=d["client"],
            lineage=d["lineage"],
            serial=d["serial"],
            resources={
                Address.parse(a): ResourceState.from_dict(r) for a, r in d["resources"].items()
            },
            applied_plans=list(d.get("appliedPlans", [])),
            pending_deletes={Address.parse(a): i for a, i in d.get("pendingDeletes", {}).items()},
        )


class StateStore:
    """The JSON file backend: `.avatarsync/state/<env>.json` by default."""

    def __init__(self, path: Path, *, environment: str, client: str) -> None:
        self.path = path
        self.environment = environment
        self.client = client
        self._lock = filelock.FileLock(str(path) + ".lock")

    def load(self) -> State:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return State(environment=self.environment, client=self.client)
        except OSError as exc:
            raise StateError(f"cannot read state file {self.path}: {exc.strerror}") from exc
        try:
            state = State.from_dict(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(
                f"state file {self.path} is corrupt ({exc}); move it aside and run "
                f"'avatarsync import --env {self.environment}' to rebuild it"
            ) from exc
        if state.environment != self.environment:
            raise StateError(
                f"state file {self.path} belongs to environment {state.environment!r}, "
                f"not {self.environment!r}"
            )
        return state

    def save(self, state: State) -> None:
        """Write atomically: a reader (or a crash) sees the old file or the new one."""
        state.serial += 1
        data = json.dumps(state.to_dict(), indent=2, sort_keys=True) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=self.path.name + ".", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StateError(f"cannot write state file {self.path}: {exc.strerror}") from exc

    @contextmanager
    def locked(self, timeout: float = 0.0) -> Iterator[None]:
        """Hold the environment's lock; fail fast (or after `timeout` s) if taken."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=timeout)
        except filelock.Timeout as exc:
            waited = f" after waiting {timeout:g}s" if timeout > 0 else ""
            raise LockError(
                f"environment {self.environment!r} is locked by another avatarsync apply{waited} "
                f"(lock file {self._lock.lock_file}); wait for it or pass --lock-timeout SECONDS"
            ) from exc
        try:
            yield
        finally:
            self._lock.release()
