"""Assembles one emulator: database, both platforms, admin routes, middleware.

`create_app` is the only place that knows every part; the server module only
runs what it returns. The Avatarium half (`avatarium.py`) is mounted beside
Equos on the same port and the same SQLite connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from avatarsync.emulator.admin import admin_routes
from avatarsync.emulator.config import EmulatorConfig
from avatarsync.emulator.envelopes import avatarium_error, dumps, equos_error, platform_of
from avatarsync.emulator.equos import EquosEmulator
from avatarsync.emulator.faults import Faults
from avatarsync.emulator.middleware import EmulatorMiddleware
from avatarsync.emulator.stats import Stats
from avatarsync.emulator.store import open_database

__all__ = ["EmulatorApp", "Runtime", "api_route_keys", "create_app"]


class _Platform(Protocol):
    def routes(self) -> list[BaseRoute]: ...
    def open_conversations(self) -> int: ...


@dataclass
class Runtime:
    """The live parts of one emulator, reachable as `app.state.runtime`."""

    config: EmulatorConfig
    conn: sqlite3.Connection
    stats: Stats
    faults: Faults
    equos: EquosEmulator
    avatarium: _Platform | None = None
    _closed: bool = field(default=False, repr=False)

    def open_conversations(self) -> dict[str, int]:
        return {
            "equos": self.equos.open_conversations(),
            "avatarium": self.avatarium.open_conversations() if self.avatarium else 0,
        }

    def stats_snapshot(self) -> dict[str, Any]:
        return self.stats.snapshot(self.open_conversations())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.conn.close()


class EmulatorApp(Starlette):
    """Starlette with `EmulatorMiddleware` outside even its error middleware."""

    def __init__(self, runtime: Runtime, routes: list[BaseRoute]) -> None:
        self.runtime = runtime
        super().__init__(
            routes=routes,
            exception_handlers={HTTPException: _http_error, Exception: _server_error},
        )
        # Starlette answers `/v3/brains/` with a 307 to `/v3/brains`; neither API
        # redirects, so an unknown path is a 404 like any other.
        self.router.redirect_slashes = False
        self.state.runtime = runtime

    def build_middleware_stack(self) -> ASGIApp:
        return EmulatorMiddleware(
            super().build_middleware_stack(),
            stats=self.runtime.stats,
            faults=self.runtime.faults,
            routes=lambda: self.router.routes,
        )


def create_app(config: EmulatorConfig) -> Starlette:
    """A ready ASGI app for `config`; the caller closes `app.state.runtime`."""
    conn = open_database(config.db)
    try:
        keys = frozenset(config.api_keys)
        is_valid_key: Callable[[str], bool] = keys.__contains__
        faults = Faults(config.fault_settings())
        runtime = Runtime(
            config=config,
            conn=conn,
            stats=Stats(),
            faults=faults,
            equos=EquosEmulator(conn, is_valid_key=is_valid_key, faults=faults),
        )
        runtime.avatarium = _avatarium(conn, is_valid_key, config.seed, faults)
        routes = [*runtime.equos.routes(), *admin_routes(runtime)]
        if runtime.avatarium is not None:
            routes += runtime.avatarium.routes()
        # failNext may name any HTTP route of the emulated APIs, and only those.
        faults.routes = api_route_keys(routes)
        faults.update()  # checks the initial failNext against them
    except BaseException:
        conn.close()
        raise
    return EmulatorApp(runtime, routes)


def api_route_keys(routes: list[BaseRoute]) -> frozenset[str]:
    """`"<METHOD> <template>"` of every HTTP route of /v3, /v1 and /health."""
    keys: set[str] = set()
    for route in routes:
        path = getattr(route, "path", "")
        methods = getattr(route, "methods", None) or ()
        if platform_of(path) is not None:
            keys.update(f"{m} {path}" for m in methods if m != "HEAD")
    return frozenset(keys)


def _avatarium(
    conn: sqlite3.Connection, is_valid_key: Callable[[str], bool], seed: int, faults: Faults
) -> _Platform | None:
    # Written by another part of the team; until it exists the emulator serves
    # Equos alone. Only the module's absence is tolerated, not its bugs.
    try:
        from avatarsync.emulator.avatarium import AvatariumEmulator
    except ModuleNotFoundError as exc:
        if exc.name != "avatarsync.emulator.avatarium":
            raise
        return None
    return AvatariumEmulator(conn, is_valid_key=is_valid_key, seed=seed, faults=faults)


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", "")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path = request.url.path
    status = exc.status_code
    match platform_of(path):
        case "equos":
            if status in (404, 405):
                # NestJS answers an unknown route or method with 404 "Cannot X /path".
                status, body = 404, equos_error(404, f"Cannot {request.method} {path}")
            else:
                body = equos_error(status, str(exc.detail))
        case "avatarium":
            body = avatarium_error(status, str(exc.detail), _request_id(request))
        case _:
            body = dumps({"statusCode": status, "message": str(exc.detail)})
    return Response(body, status, media_type="application/json")


async def _server_error(request: Request, exc: Exception) -> Response:
    if platform_of(request.url.path) == "avatarium":
        body = avatarium_error(500, "Internal server error", _request_id(request))
    else:
        body = equos_error(500, "Internal server error")
    return Response(body, 500, media_type="application/json")
