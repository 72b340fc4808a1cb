"""The outermost ASGI layer: request ids, counters and injected faults.

It sits *outside* Starlette's own middleware (see `app.EmulatorApp`) for two
reasons: faults must strike before any routing or handler runs (an injected
5xx or 429 commits nothing), and dropping a connection after a committed
write needs the server's own `send`, whose `__self__` is uvicorn's request
cycle holding the socket transport. Starlette's error middleware would hand
us a wrapper instead.

In order: latency, rate limit, errorRate, failNext, drop after commit. Faults
apply to the emulated APIs only (`/v3/*`, `/v1/*`, `/health`); the
admin endpoints (`/_emulator/*`) and upload URLs (`/_uploads/*`) are never
delayed, failed, limited or dropped, so a test can always look and upload.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from avatarsync.emulator.envelopes import Platform, avatarium_error, equos_error, platform_of
from avatarsync.emulator.faults import Faults
from avatarsync.emulator.stats import Stats

__all__ = ["EmulatorMiddleware"]

_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_JSON = (b"content-type", b"application/json")
_FAULT_MESSAGES = {
    429: "ThrottlerException: Too Many Requests",
    500: "Internal server error (injected by the emulator)",
    502: "Bad gateway (injected by the emulator)",
    503: "Service unavailable (injected by the emulator)",
}


class EmulatorMiddleware:
    """Raw ASGI (no BaseHTTPMiddleware): it must stay cheap, it sees every request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        stats: Stats,
        faults: Faults,
        routes: Callable[[], Sequence[BaseRoute]],
    ) -> None:
        self.app = app
        self.stats = stats
        self.faults = faults
        self._routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
            return
        if kind == "websocket":
            _set_request_id(scope)
            # wsDropMode "abort" closes the socket with no close frame: that needs
            # the server's transport, reachable only through its own `send`.
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None:
                scope["state"]["transport"] = transport
            try:
                await self.app(scope, receive, send)
            finally:
                self.stats.count(f"WEBSOCKET {self._template(scope)}")
            return
        await self.app(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _set_request_id(scope)
        headers = [(b"x-request-id", request_id.encode())]
        path: str = scope["path"]
        if path.startswith("/_emulator/"):
            await self.app(scope, receive, _adding_headers(send, headers))
            return
        platform = platform_of(path)
        if platform is None:
            try:
                await self.app(scope, receive, _adding_headers(send, headers))
            finally:
                self._count(scope)
            return
        self.stats.enter()
        try:
            await self._faulty(scope, receive, send, platform, request_id, headers)
        finally:
            self.stats.leave()

    async def _faulty(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        platform: Platform,
        request_id: str,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        faults = self.faults
        if faults.settings.latency_ms:
            # A sleep, not a block: concurrent requests overlap as on a real API.
            await asyncio.sleep(faults.settings.latency_ms / 1000)
        # Avatarium advertises its limit on every answer; Equos only says
        # anything once a limit is switched on.
        if platform == "avatarium" or faults.settings.rate_limit is not None:
            decision = faults.take_token()
            headers += decision.headers()
            if not decision.allowed:
                self.stats.rate_limited += 1
                self._count(scope)
                await _send_error(send, 429, platform, request_id, headers)
                return
        status = faults.draw_error()
        # failNext: deterministic, route by route; drawn after errorRate so that
        # switching it on leaves the seeded draws of every request the same.
        if status is None and faults.settings.fail_next:
            route = f"{scope['method']} {self._template(scope)}"
            if faults.take_fail_next(route):
                status = 503
        if status is not None:
            self.stats.errors += 1
            self._count(scope)
            await _send_error(send, status, platform, request_id, headers)
            return
        if scope["method"] in _WRITE_METHODS and faults.draw_drop():
            try:
                await self._run_then_drop(scope, receive, send)
            finally:
                self._count(scope)
            self.stats.dropped += 1
            return
        try:
            await self.app(scope, receive, _adding_headers(send, headers))
        finally:
            self._count(scope)

    async def _run_then_drop(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Let the handler run and commit, then close the socket unanswered."""

        async def swallow(message: Message) -> None:
            return None

        await self.app(scope, receive, swallow)
        transport = getattr(getattr(send, "__self__", None), "transport", None)
        if transport is None:  # not uvicorn's cycle: cannot drop faithfully
            raise RuntimeError("drop-after-commit needs uvicorn's own send (outermost middleware)")
        transport.close()
        # Let the loop deliver connection_lost now, so uvicorn marks the cycle
        # disconnected and does not log an app that "forgot" to answer.
        for _ in range(3):
            await asyncio.sleep(0)

    def _count(self, scope: Scope) -> None:
        self.stats.count(f"{scope['method']} {self._template(scope)}")

    def _template(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is not None:
            return _route_template(scope, route)
        # Refused before routing (fault) or not found: match ourselves, only
        # on this rare path so the common one pays nothing.
        return _match(self._routes(), scope) or "(unmatched)"


def _match(routes: Sequence[BaseRoute], scope: Scope) -> str | None:
    partial = None
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        if isinstance(route, Mount):
            inner = _match(route.routes, {**scope, **child})
            if inner is not None:
                return inner
            continue
        template = _route_template(scope, route)
        if match is Match.FULL:
            return template
        partial = partial or template
    return partial


def _route_template(scope: Scope, route: object) -> str:
    root: str = scope.get("root_path", "")
    path: str = getattr(route, "path", "")
    return root + path


def _set_request_id(scope: Scope) -> str:
    request_id = "req_" + secrets.token_hex(12)
    # uvicorn gives each request its own copy of `state`; Starlette's
    # `request.state` reads this dict, so handlers can echo the id.
    state: dict[str, Any] | None = scope.get("state")
    if state is None:
        scope["state"] = state = {}
    state["request_id"] = request_id
    return request_id


def _adding_headers(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *headers]
        await send(message)

    return wrapped


async def _send_error(
    send: Send,
    status: int,
    platform: Platform,
    request_id: str,
    headers: list[tuple[bytes, bytes]],
) -> None:
    message = _FAULT_MESSAGES[status]
    if platform == "equos":
        body = equos_error(status, message)
    else:
        body = avatarium_error(status, message.removeprefix("ThrottlerException: "), request_id)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [_JSON, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})
