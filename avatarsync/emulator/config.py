"""Configuration of one emulator instance: where it stores data, which keys it
accepts and how badly it behaves at start-up.

Kept apart from the server so the CLI, the engine's embedded mode and the tests
all build the same frozen value; the fault switches here are only the initial
values, `/_emulator/faults` changes them at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from avatarsync.emulator.faults import FaultSettings, MissingAs, WsAuth, WsDropMode

__all__ = ["DEFAULT_API_KEY", "DEFAULT_DB_PATH", "EmulatorConfig"]

# Documented and printed on purpose: it guards nothing but a loopback test double.
DEFAULT_API_KEY = "local-emulator-key"
DEFAULT_DB_PATH = ".avatarsync/emulator.sqlite"


@dataclass(frozen=True)
class EmulatorConfig:
    """Everything needed to start an emulator; `db=":memory:"` is throwaway."""

    db: str = ":memory:"
    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    host: str = "127.0.0.1"
    port: int = 0
    # The initial fault switches: the fields of FaultSettings, same names, same
    # defaults, validated there (faults.py documents each one and its range).
    latency_ms: int = 0
    error_rate: float = 0.0
    rate_limit: int | None = None
    drop_after_commit_rate: float = 0.0
    seed: int = 0
    fail_next: Mapping[str, int] = field(default_factory=dict)
    missing_as: MissingAs = "404"
    stop_ended_as: int = 201
    ws_auth: WsAuth = "required"
    ws_error_after_chunks: int | None = None
    ws_error_replies: int | None = None
    ws_drop_after_chunks: int | None = None
    ws_drop_mode: WsDropMode = "abort"
    ws_drop_replies: int | None = None
    ws_first_chunk_delay_ms: int = 0
    ws_chunk_delay_ms: int = 0
    ws_delay_replies: int | None = None
    ws_end_mismatch: bool = False
    ws_end_mismatch_replies: int | None = None
    ws_message_after_end: bool = False
    ws_message_after_end_replies: int | None = None

    def __post_init__(self) -> None:
        # Fail at construction, not on the first request, so the CLI can say
        # which option is wrong.
        if not self.api_keys or any(not k for k in self.api_keys):
            raise ValueError("api_keys must hold at least one non-empty key")
        if isinstance(self.port, bool) or not isinstance(self.port, int):
            raise ValueError(f"port must be an integer, got {self.port!r}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        self.fault_settings()  # validates every switch, with the ranges of faults.py

    def fault_settings(self) -> FaultSettings:
        """The initial fault switches: EmulatorConfig's fields of the same names."""
        return FaultSettings(**{f.name: getattr(self, f.name) for f in fields(FaultSettings)})
