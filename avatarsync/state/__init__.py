"""Per-environment state: which remote id each `Kind/key` is, and what was applied.

    model   State, ResourceState, StateOp: the data, validated on load
    file    FileStateStore: a JSON file + journal + fcntl lock (the default)

Every store has the same shape (`StateStore`): `load`, `record` (one small
change per API call, O(1)), `save`/`compact` (the whole state), `locked`,
`close` and `describe`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from avatarsync.state.file import FileStateStore
from avatarsync.state.model import STATE_VERSION, DocumentState, ResourceState, State, StateOp

__all__ = [
    "STATE_VERSION",
    "DocumentState",
    "FileStateStore",
    "ResourceState",
    "State",
    "StateOp",
    "StateStore",
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
