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
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from avatarsync.catalog import AVATARIUM_PROVIDERS
from avatarsync.errors import ApiError, ServerError, TransportError
from avatarsync.interrupts import undone_if_cancelled
from avatarsync.providers.http import ErrorInfo, PlatformClient, error_for_status
from avatarsync.secret import Secret, scrub

__all__ = [
    "DEFAULT_URL",
    "PROVIDERS",
    "AvatariumClient",
    "AvatariumConversation",
    "AvatariumSocket",
    "FrameError",
    "SocketClosed",
    "StreamedReply",
    "finish_cleanup",
]

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
    async def conversation(
        self,
        avatar_id: str,
        provider: str | None = None,
        system_prompt: str | None = None,
        byok: Mapping[str, Any] | None = None,
        *,
        ws_auth: str = "header",
    ) -> AsyncIterator[AvatariumConversation]:
        """Create a conversation and **always** end it when the block exits, on
        success, error and cancellation alike (a second cancellation does not
        abort the end: conversations left open cost money). A cancellation
        while the create's answer is on its way waits for it and ends what it
        created: the platform makes the conversation whether or not we listen."""

        async def end(created: dict[str, Any]) -> None:
            await finish_cleanup(AvatariumConversation(self, created, ws_auth=ws_auth).end())

        data = await undone_if_cancelled(
            self.create_conversation(avatar_id, provider, system_prompt, byok), end
        )
        conversation = AvatariumConversation(self, data, ws_auth=ws_auth)
        try:
            yield conversation
        finally:
            await finish_cleanup(conversation.end())

    async def connect_socket(
        self, ws_url: str, *, authenticate: bool = True, open_timeout: float = 10.0
    ) -> AvatariumSocket:
        """Open a conversation's WebSocket; the caller closes it. With
        `authenticate=False` the bare `wsUrl` is used, as the reference's example
        does; otherwise the upgrade carries `Authorization: Bearer`."""
        path = urlsplit(ws_url).path
        self._http.count("GET {wsUrl}")
        problem: ApiError | None = None
        connection: ClientConnection | None = None
        headers = {"authorization": f"Bearer {self._key.reveal()}"} if authenticate else {}
        try:
            connection = await connect(
                ws_url,
                additional_headers=headers,
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
        return AvatariumSocket(connection, path)

    @asynccontextmanager
    async def open_socket(
        self, ws_url: str, *, authenticate: bool = True, open_timeout: float = 10.0
    ) -> AsyncIterator[AvatariumSocket]:
        """Connect to a conversation's WebSocket (the `wsUrl` from create).

        `async with client.open_socket(url) as ws: frames = await ws.ask("hi")`.
        Handshake failures become `ApiError`s like any other call.
        """
        socket = await self.connect_socket(
            ws_url, authenticate=authenticate, open_timeout=open_timeout
        )
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
            raise SocketClosed(f"socket closed: {exc}", method="WS", path=self._path) from None
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
            raise SocketClosed(problem, method="WS", path=self._path)


class SocketClosed(TransportError):
    """The WebSocket closed or dropped (as opposed to a frame not arriving in time)."""


@dataclass(frozen=True)
class FrameError:
    """An `error` frame: the platform's code and message."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass
class StreamedReply:
    """One assistant reply as it came over the WebSocket, with its timings
    (seconds since the turn was sent) and whatever went wrong."""

    chunks: list[str] = field(default_factory=list)
    final: str | None = None  # stream_end's content (or a non-streamed assistant message's)
    message_id: str | None = None
    first_chunk_seconds: float | None = None
    seconds: float = 0.0
    error: FrameError | None = None  # an `error` frame ended the reply
    problem: str | None = None  # the socket dropped or the reply did not come in time
    reconnected: bool = False  # the socket dropped before the first chunk and was reopened

    @property
    def content(self) -> str:
        """What was said: the joined chunks (or the final text when nothing streamed)."""
        return "".join(self.chunks) if self.chunks else (self.final or "")

    @property
    def mismatch(self) -> bool:
        """stream_end's content differs from the joined chunks."""
        return bool(self.chunks) and self.final is not None and self.final != self.content

    @property
    def complete(self) -> bool:
        return self.final is not None and self.error is None and self.problem is None


ChunkSink = Callable[[str], None]


class AvatariumConversation:
    """A created conversation: turns over its WebSocket, then `end`.

    The socket opens on the first turn. If it drops before the first chunk of a
    reply, it is reopened and the turn sent again, once; a turn whose reply has
    started is never sent again (the reply is reported as cut short). A socket
    left in an unknown state (timeout, cancelled reply) is closed, and the next
    turn opens a fresh one: the conversation lives on the server.
    """

    def __init__(
        self, client: AvatariumClient, data: Mapping[str, Any], *, ws_auth: str = "header"
    ) -> None:
        self._client = client
        self.id = str(data.get("id") or "")
        self.ws_url = str(data.get("wsUrl") or "")
        if not self.id or not self.ws_url:
            raise ServerError(
                "the created conversation has no id or wsUrl", method="POST", path="/conversations"
            )
        self._authenticate = ws_auth != "none"
        self._socket: AvatariumSocket | None = None
        self._seen: set[str] = set()  # assistant message ids already reported
        self.ended = False

    def __repr__(self) -> str:
        return f"<AvatariumConversation {self.id}>"

    async def say(
        self, content: str, *, timeout: float = 60.0, on_chunk: ChunkSink | None = None
    ) -> StreamedReply:
        """Send one user message and collect the streamed reply (at most `timeout` s)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + timeout
        reconnected = False
        while True:
            socket = await self._open()
            reply = StreamedReply(reconnected=reconnected)
            try:
                await socket.send_message(content)
                await self._collect(socket, reply, started, deadline, timeout, on_chunk)
            except SocketClosed as exc:
                await self._discard()
                if not reply.chunks and not reconnected:
                    reconnected = True
                    logger.info("conversation %s: socket dropped before a reply; reopened", self.id)
                    continue
                if reply.chunks:
                    reply.problem = (
                        f"the WebSocket dropped after {len(reply.chunks)} chunk(s) "
                        f"({exc.detail}); the turn was not sent again"
                    )
                else:
                    reply.problem = (
                        f"the WebSocket dropped before the first chunk, again after "
                        f"reconnecting ({exc.detail}); the turn was not sent a third time"
                    )
            except BaseException:
                await self._discard()  # cancelled mid-reply: the rest of it is not ours
                raise
            reply.seconds = loop.time() - started
            if reply.problem is not None:
                await self._discard()
            return reply

    async def end(self) -> None:
        """Close the socket and end the conversation (harmless twice)."""
        await self._discard()
        if not self.ended:
            await self._client.end_conversation(self.id)
            self.ended = True

    async def _open(self) -> AvatariumSocket:
        if self._socket is None:
            self._socket = await self._client.connect_socket(
                self.ws_url, authenticate=self._authenticate
            )
        return self._socket

    async def _discard(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None:
            with contextlib.suppress(Exception):
                await socket.close()

    async def _collect(
        self,
        socket: AvatariumSocket,
        reply: StreamedReply,
        started: float,
        deadline: float,
        timeout: float,
        on_chunk: ChunkSink | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        streaming = False
        while True:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise TimeoutError
                frame = await socket.receive(remaining)
            except SocketClosed:
                raise
            except (TransportError, TimeoutError):
                reply.problem = (
                    f"no complete reply within {timeout:g} s ({len(reply.chunks)} chunk(s) "
                    f"received, conversation {self.id})"
                )
                return
            kind = frame.get("type")
            data = frame.get("data")
            if kind == "stream_start":
                streaming = True
                if isinstance(data, dict) and isinstance(data.get("id"), str):
                    reply.message_id = data["id"]
            elif kind == "stream_chunk":
                text = _chunk_text(data)
                if reply.first_chunk_seconds is None:
                    reply.first_chunk_seconds = loop.time() - started
                reply.chunks.append(text)
                if on_chunk is not None:
                    on_chunk(text)
            elif kind == "stream_end":
                final = data.get("content") if isinstance(data, dict) else data
                reply.final = final if isinstance(final, str) else reply.content
                if isinstance(data, dict) and isinstance(data.get("id"), str):
                    reply.message_id = data["id"]
                if reply.message_id:
                    self._seen.add(reply.message_id)
                return
            elif kind == "message" and isinstance(data, dict) and data.get("role") == "assistant":
                message_id = data.get("id")
                if isinstance(message_id, str) and message_id in self._seen:
                    continue  # an announcement of a reply already streamed
                if not streaming and isinstance(data.get("content"), str):
                    # A server that answers with a plain message instead of a stream.
                    reply.final = data["content"]
                    if isinstance(message_id, str):
                        reply.message_id = message_id
                        self._seen.add(message_id)
                    if reply.first_chunk_seconds is None:
                        reply.first_chunk_seconds = loop.time() - started
                    if on_chunk is not None:
                        on_chunk(data["content"])
                    return
            elif kind == "error":
                info = data if isinstance(data, dict) else {}
                reply.error = FrameError(
                    str(info.get("code") or "error"),
                    scrub(str(info.get("message") or "the server sent an error frame")),
                )
                return
            # pong, user messages, unknown types: nothing to do


def _chunk_text(data: Any) -> str:
    """A chunk's text: the document shows a bare string; accept {content|text|delta} too."""
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        for name in ("content", "text", "delta"):
            if isinstance(data.get(name), str):
                return str(data[name])
    return ""


async def finish_cleanup(work: Coroutine[Any, Any, Any], timeout: float = 15.0) -> None:
    """Run cleanup to the end even if the caller is cancelled meanwhile; re-raise
    that cancellation afterwards."""
    task = asyncio.ensure_future(asyncio.wait_for(work, timeout))
    cancelled = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.done():
                break
            cancelled = True
        except Exception:
            break
    if not task.cancelled() and task.exception() is not None:
        logger.warning("ending a conversation failed: %s", scrub(str(task.exception())))
    if cancelled:
        raise asyncio.CancelledError


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
