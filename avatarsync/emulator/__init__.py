"""The local Equos v3 + Avatarium v1 emulator: one port, real HTTP, SQLite.

It is the embedded default for environments with `emulator: true` (no key
needed) and the server every end-to-end test talks to. Public API:

    EmulatorConfig   frozen settings (db, keys, host/port, fault switches)
    EmulatorServer   runs it on a background thread; .url, .stats(),
                     .reset_stats(), .set_faults(...); a context manager
    create_app       the bare ASGI app, for callers running their own server
    DEFAULT_API_KEY  the key accepted when none is configured (not a secret)

Names resolve lazily so that importing the package (the CLI does, for its
help text) does not pull in Starlette and uvicorn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from avatarsync.emulator.config import DEFAULT_API_KEY, DEFAULT_DB_PATH, EmulatorConfig

if TYPE_CHECKING:
    from avatarsync.emulator.app import create_app
    from avatarsync.emulator.server import EmulatorServer

__all__ = ["DEFAULT_API_KEY", "DEFAULT_DB_PATH", "EmulatorConfig", "EmulatorServer", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "EmulatorServer":
        from avatarsync.emulator.server import EmulatorServer

        return EmulatorServer
    if name == "create_app":
        from avatarsync.emulator.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
