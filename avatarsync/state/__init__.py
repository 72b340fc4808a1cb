"""Per-environment state: which remote id each `Kind/key` is, and what was applied."""

from avatarsync.state.file import STATE_VERSION, DocumentState, ResourceState, State, StateStore

__all__ = ["STATE_VERSION", "DocumentState", "ResourceState", "State", "StateStore"]
