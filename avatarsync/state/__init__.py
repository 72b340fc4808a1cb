"""Per-environment state: which remote id each `Kind/key` is, and what was applied.

    model   State, ResourceState, StateOp: the data, validated on load
    file    FileStateStore: a JSON file + journal + fcntl lock (the default)

Every store has the same shape (`StateStore`): `load`, `record` (one small
change per API call, O(1)), `save`/`compact` (the whole state), `locked`,
`close` and `describe`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from avatarsync.errors import ProjectError
from avatarsync.state.file import FileStateStore
from avatarsync.state.model import STATE_VERSION, DocumentState, ResourceState, State, StateOp

if TYPE_CHECKING:
    from avatarsync.manifests.project import Environment, Project

__all__ = [
    "STATE_VERSION",
    "DocumentState",
    "FileStateStore",
    "ResourceState",
    "State",
    "StateOp",
    "StateStore",
    "open_store",
]


class StateStore(Protocol):
    """What plan, apply, import and export need of a state backend."""

    environment: str

    def describe(self) -> str: ...
    def load(self) -> State: ...
    def record(self, state: State, op: StateOp) -> None: ...
    def save(self, state: State) -> None: ...
    def compact(self, state: State) -> None: ...
    def close(self) -> None: ...
    def locked(self, timeout: float = 0.0) -> AbstractContextManager[None]: ...


def open_store(project: Project, env: Environment) -> StateStore:
    """The state store an environment's `state:` names (the file by default)."""
    settings = env.state
    if settings.backend == "file":
        return FileStateStore(env.state_path, environment=env.name, client=env.client)
    raise ProjectError(
        f"environment {env.name!r}: the {settings.backend} state backend is not available yet"
    )
