"""Configuration of one emulator instance: where it stores data, which keys it
accepts and how badly it behaves at start-up.

Kept apart from the server so the CLI, the engine's embedded mode and the tests
all build the same frozen value; the fault switches here are only the initial
values, `/_emulator/faults` changes them at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from avatarsync.emulator.faults import FaultSettings

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
    latency_ms: int = 0
    error_rate: float = 0.0
    rate_limit: int | None = None
    drop_after_commit_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        # Fail at construction, not on the first request, so the CLI can say
        # which option is wrong.
        if not self.api_keys or any(not k for k in self.api_keys):
            raise ValueError("api_keys must hold at least one non-empty key")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        self.fault_settings()  # validates every switch, with the ranges of faults.py

    def fault_settings(self) -> FaultSettings:
        """The initial fault switches: EmulatorConfig's fields of the same names."""
        return FaultSettings(**{f.name: getattr(self, f.name) for f in fields(FaultSettings)})
