"""The Avatarium v1 client: avatar presets, conversations and their WebSocket.

Avatarium has no writable character resources, so this client serves
validation (does the avatar exist?) and conversation tests (create a
conversation, talk over the WebSocket, end it). Answers come wrapped in
`{"data", "meta"}`; the client returns `data`. Errors (`{"error": {code,
message}}`) become the usual `ApiError`s with the code kept in the message
and as `error.code`. Two secrets pass through here — the Avatarium key and a
BYOK provider key — and both stay `Secret`s until the bytes leave.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from avatarsync.catalog import AVATARIUM_PROVIDERS
from avatarsync.errors import ApiError, ServerError, TransportError
from avatarsync.providers.http import ErrorInfo, PlatformClient, error_for_status
from avatarsync.secret import Secret, scrub

__all__ = ["DEFAULT_URL", "PROVIDERS", "AvatariumClient", "AvatariumSocket"]

DEFAULT_URL: Final = "https://api.avatarium.ai/v1"
PROVIDERS: Final = frozenset(AVATARIUM_PROVIDERS)

logger = logging.getLogger("avatarsync.providers.avatarium")


class AvatariumClient(PlatformClient):
    """Async client for the Avatarium v1 API (`Authorization: Bearer`)."""

    AUTH_HEADER = "authorization"
    AUTH_SCHEME = "Bearer"

    async def health(self) -> dict[str, Any]:
        # The one answer that may come without the envelope.
        data: dict[str, Any] = await self._http.request_json(
            "GET", "/health", authenticate=False, expect=dict
        )
        inner = data.get("data")
        return inner if isinstance(inner, dict) else data

    async def list_avatars(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = await self._data("GET", "/avatars", expect=list)
        if not all(isinstance(item, dict) for item in data):
            raise ServerError("expected a list of avatars", method="GET", path="/avatars")
        return data

    async def get_avatar(self, id: str) -> dict[str, Any]:
        return await self._object("GET", "/avatars/{id}", path_params={"id": id})

    async def create_conversation(
        self,
        avatar_id: str,
        provider: str | None = None,
        system_prompt: str | None = None,
        byok: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create a conversation → `{id, avatarId, wsUrl, createdAt, byokEnabled}`.

        `byok` is `{provider, apiKey, model?, baseUrl?}` with `apiKey` a
        `Secret` (a plain string is refused, so it cannot have been logged on
        the way here). Not idempotent; end what you create.
        """
        body: dict[str, Any] = {"avatarId": avatar_id}
        if provider is not None:
            body["provider"] = provider
        if system_prompt is not None:
            body["systemPrompt"] = system_prompt
        if byok is not None:
            if not isinstance(byok.get("apiKey"), Secret):
                raise TypeError("byok['apiKey'] must be an avatarsync.secret.Secret")
            body["byokAI"] = dict(byok)
        return await self._object("POST", "/conversations", json_body=body)

    async def get_conversation(self, id: str) -> dict[str, Any]:
        return await self._object("GET", "/conversations/{id}", path_params={"id": id})

    async def send_message(self, id: str, content: str) -> dict[str, Any]:
        """Post a user message and return the assistant's reply (not streamed)."""
        return await self._object(
            "POST",
            "/conversations/{id}/messages",
            path_params={"id": id},
            json_body={"content": content, "stream": False},
        )

    async def end_conversation(self, id: str) -> dict[str, Any]:
        """End a conversation; ending twice is harmless, so it is retried."""
        return await self._object(
            "POST", "/conversations/{id}/end", path_params={"id": id}, idempotent=True
        )

    @asynccontextmanager
    async def open_socket(
        self, ws_url: str, *, open_timeout: float = 10.0
    ) -> AsyncIterator[AvatariumSocket]:
        """Connect to a conversation's WebSocket (the `wsUrl` from create).

        `async with client.open_socket(url) as ws: frames = await ws.ask("hi")`.
        Handshake failures become `ApiError`s like any other call.
        """
        path = urlsplit(ws_url).path
        self._http.count("GET {wsUrl}")
        problem: ApiError | None = None
        connection: ClientConnection | None = None
        try:
            connection = await connect(
                ws_url,
                additional_headers={"authorization": f"Bearer {self._key.reveal()}"},
                open_timeout=open_timeout,
                proxy=None,
                # websockets logs every handshake header at DEBUG: scrub them.
                logger=_ScrubbingLogger(logging.getLogger("avatarsync.providers.websocket")),
            )
        except InvalidStatus as exc:
            response = exc.response
            info = _socket_error_info(response.body, response.headers.get("x-request-id"))
            problem = error_for_status(response.status_code, info, method="GET", path=path)
        except (OSError, TimeoutError, WebSocketException) as exc:
            problem = TransportError(
                f"WebSocket handshake failed: {type(exc).__name__}: {scrub(str(exc))}",
                method="GET",
                path=path,
            )
        if problem is not None:
            raise problem  # outside `except`: no context chain into the handshake frames
        assert connection is not None
        socket = AvatariumSocket(connection, path)
        try:
            yield socket
        finally:
            await socket.close()

    # -- helpers -------------------------------------------------------------

    async def _data(self, method: str, template: str, **kwargs: Any) -> Any:
        return await self._http.request_json(method, template, envelope="data", **kwargs)

    async def _object(self, method: str, template: str, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = await self._data(method, template, expect=dict, **kwargs)
        return data


class AvatariumSocket:
    """One conversation's WebSocket: JSON frames in, JSON frames out."""

    def __init__(self, connection: ClientConnection, path: str) -> None:
        self._connection = connection
        self._path = path

    def __repr__(self) -> str:
        return f"<AvatariumSocket {self._path}>"

    async def send_message(self, content: str) -> None:
        await self._send({"type": "message", "content": content})

    async def ping(self) -> None:
        await self._send({"type": "ping"})

    async def receive(self, timeout: float | None = 30.0) -> dict[str, Any]:
        """The next frame, decoded; raises `TransportError` on timeout or close."""
        problem: str | None = None
        raw: str | bytes = ""
        try:
            raw = await asyncio.wait_for(self._connection.recv(), timeout)
        except TimeoutError:
            problem = f"no frame within {timeout} s"
        except ConnectionClosed as exc:
            problem = f"socket closed: {exc}"
        if problem is not None:
            raise TransportError(problem, method="WS", path=self._path)
        try:
            frame = json.loads(raw)
        except ValueError:
            frame = None
        if not isinstance(frame, dict):
            raise ServerError("a frame is not a JSON object", method="WS", path=self._path)
        return frame

    async def collect_until_stream_end(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Frames up to and including `stream_end` or `error` (check the last
        one's `type`), within `timeout` seconds overall."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        frames: list[dict[str, Any]] = []
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TransportError(
                    f"no stream_end within {timeout} s ({len(frames)} frames)",
                    method="WS",
                    path=self._path,
                )
            frame = await self.receive(remaining)
            frames.append(frame)
            if frame.get("type") in ("stream_end", "error"):
                return frames

    async def ask(self, content: str, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Send a message and collect the frames of the reply."""
        await self.send_message(content)
        return await self.collect_until_stream_end(timeout)

    async def close(self) -> None:
        await self._connection.close()

    async def _send(self, frame: Mapping[str, Any]) -> None:
        problem: str | None = None
        try:
            await self._connection.send(json.dumps(frame))
        except ConnectionClosed as exc:
            problem = f"socket closed: {exc}"
        if problem is not None:
            raise TransportError(problem, method="WS", path=self._path)


class _ScrubbingLogger(logging.LoggerAdapter[logging.Logger]):
    """Formats each record itself and removes registered secrets from it."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            self.logger.log(level, "%s", _scrub_header(scrub(text)), **kwargs)


def _scrub_header(text: str) -> str:
    # Belt and braces: a Bearer value is masked even if it was never registered.
    head, sep, _ = text.partition("Bearer ")
    return f"{head}{sep}***" if sep else text


def _socket_error_info(body: bytes | bytearray | None, request_id: str | None) -> ErrorInfo:
    message, code = "", None
    try:
        decoded = json.loads(body or b"")
    except ValueError:
        decoded = None
    if isinstance(decoded, dict) and isinstance(decoded.get("error"), dict):
        error = decoded["error"]
        message = str(error.get("message") or "")
        code = error.get("code") if isinstance(error.get("code"), str) else None
    if not message:
        message = (body or b"").decode("utf-8", "replace").strip()[:500] or "handshake refused"
    return ErrorInfo(scrub(message), code, request_id)
