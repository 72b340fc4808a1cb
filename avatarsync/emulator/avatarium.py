"""Avatarium v1 emulation: avatars, conversations, messages (JSON and SSE) and the WebSocket.

Place in the flow: the emulator core (`avatarsync.emulator`) mounts `AvatariumEmulator.routes()`
beside the Equos v3 routes on one port, behind its fault/rate-limit/request-id middleware. The
Avatarium provider, `validate` (does the avatar exist?) and the conversation tests
(`avatarsync test`) talk to it over real HTTP and WebSocket, so what is written here is the
contract those features are tested against. The routes use absolute paths (`/health`,
`/v1/...`): mount them at the root of the app.

Why it looks like this:

- Envelopes and error codes follow the public reference (`/work/shared/api/avatarium-v1.md`):
  `{"data", "meta": {"requestId"}}` and `{"error": {"code", "message", "details"}, "meta"}`.
- The BYOK `apiKey` is a secret. It is validated, then dropped: the database keeps only that
  BYOK is enabled plus its provider and model (not even `baseUrl`, which may carry
  credentials), and no response, error message or log line ever contains it.
- The assistant is deterministic so conversation tests can assert on replies: its answer is a
  pure function of (system prompt, avatar name, user message) -- never of time, randomness,
  history, provider or BYOK settings. The rules, in order (first that applies wins):

  1. Persona name: the first capitalised word after "You are", "You're", "named" or "called"
     (the trigger is case-insensitive; the name must start with a capital letter, so
     "You are a helpful assistant named Aria." gives "Aria"; articles such as "A"/"The" are
     skipped, a trailing "'s" is dropped). Without one: the avatar preset's name.
  2. Topic: the system prompt's `Topics: a, b, c` lines (case-insensitive, one per line,
     items split on "," or ";", in order). The first topic one of whose words (letters and
     digits, case-insensitive, ignoring stop words like "and"/"the") is a word of the
     message gives "<Name> here. Happy to help with <topic>: what would you like to know?"
  3. Greeting: the message's first word is hi/hello/hey/hiya/howdy/greetings/hola/yo, or it
     starts with "good morning/afternoon/evening/day" ->
     "Hello! I'm <Name>. How can I help you today?"
  4. Farewell: first word bye/goodbye/farewell, or it starts with "see you"/"good night" ->
     "Goodbye from <Name>! Thanks for the conversation."
  5. Otherwise: "<Name> here. You said: <message>" (message whitespace collapsed to single
     spaces, ends trimmed).

  Streaming (SSE `message` deltas, WebSocket `stream_chunk` frames) splits that same reply
  into word chunks (`re.findall(r"\\S+\\s*", reply)`): each chunk is a word plus the spaces
  after it, so the chunks concatenate to the final content exactly.
- `seed` drives the ids (conversation uuids, `msg_` ids): a fresh database with the same seed
  yields the same ids; ids already present in a reopened file database are skipped.
- The WebSocket switches of `faults.FaultSettings` (`wsAuth`, and the mid-stream faults: an
  error frame or a dropped socket after n chunks, delays, a stream_end that disagrees with its
  chunks, a message frame after it) bend what `_stream_reply` sends; the turn is stored
  before, so GET shows the whole exchange whatever they do.

The full behaviour, including WebSocket frames and close codes, is in
`docs/emulator-avatarium.md`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import re
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from avatarsync.catalog import AVATARIUM_PROVIDERS
from avatarsync.emulator.faults import Faults, WsReplyPlan
from avatarsync.emulator.jsonbody import BodyError, parse_json

__all__ = [
    "AVATARS",
    "MAX_CONTENT_CHARS",
    "PROVIDERS",
    "AvatarPreset",
    "AvatariumEmulator",
    "assistant_reply",
    "persona_name",
    "split_chunks",
    "system_topics",
    "token_count",
]

MAX_CONTENT_CHARS = 5000
PROVIDERS = tuple(sorted(AVATARIUM_PROVIDERS))
DEFAULT_AVATAR_ID = "aria-001"  # the reference marks avatarId optional; its example uses this one
# `.invalid` (RFC 6761) can never resolve: the emulator serves no media, and a URL that looks
# fetchable would hide that from a client under test.
CDN = "https://cdn.avatarium.invalid"
WS_CLOSE_ENDED = 1000  # normal closure: the conversation ended, nothing went wrong
WS_ENDED_REASON = "conversation ended"
WS_CLOSE_FAULT = 1011  # wsDropMode "1011": internal error
WS_FAULT_REASON = "internal error (injected by the emulator)"
# wsEndMismatch: what stream_end's content carries beyond the joined chunks.
MISMATCH_SUFFIX = " [stream_end differs from the chunks: injected by the emulator]"


@dataclass(frozen=True, slots=True)
class AvatarPreset:
    """A built-in, read-only avatar (Avatarium has no writable avatar resource)."""

    id: str
    name: str
    description: str
    style: str
    gender: str
    default_voice: str
    model_format: str
    model_size_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "style": self.style,
            "gender": self.gender,
            "defaultVoice": self.default_voice,
            "thumbnailUrl": f"{CDN}/avatars/{self.id}/thumbnail.png",
        }

    def model_json(self) -> dict[str, Any]:
        return {
            "avatarId": self.id,
            "url": f"{CDN}/avatars/{self.id}/model.{self.model_format}",
            "format": self.model_format,
            "version": "1.0.0",
            "sizeBytes": self.model_size_bytes,
            "blendshapes": "arkit",
            "animations": ["idle", "talk", "listen", "wave", "nod"],
        }


AVATARS: dict[str, AvatarPreset] = {
    a.id: a
    for a in (
        AvatarPreset(
            id="aria-001",
            name="Aria",
            description="Friendly, professional assistant with a warm, clear voice.",
            style="realistic",
            gender="female",
            default_voice="en-US-Neural2-F",
            model_format="glb",
            model_size_bytes=4_718_592,
        ),
        AvatarPreset(
            id="kai-002",
            name="Kai",
            description="Upbeat stylised guide for onboarding and product tours.",
            style="cartoon",
            gender="male",
            default_voice="en-US-Neural2-D",
            model_format="glb",
            model_size_bytes=2_621_440,
        ),
        AvatarPreset(
            id="nova-003",
            name="Nova",
            description="Expressive anime-style companion for games and storytelling.",
            style="anime",
            gender="female",
            default_voice="en-GB-Neural2-A",
            model_format="vrm",
            model_size_bytes=9_437_184,
        ),
    )
}


# --- the deterministic assistant: pure functions, unit-testable without a server -------------

# Scoped (?i:...) so only the trigger is case-insensitive: the name must be capitalised, which is
# what skips "You are a helpful assistant" and lands on "named Aria".
_NAME_RE = re.compile(r"\b(?i:you are|you're|named|called)\s+([A-Z][A-Za-z0-9'-]*)")
_NOT_NAMES = frozenset({"A", "An", "The", "Your", "Our", "My", "This", "That", "Not", "I"})
_TOPICS_RE = re.compile(r"^[ \t]*topics?[ \t]*:[ \t]*(.*?)[ \t]*$", re.IGNORECASE | re.MULTILINE)
_WORD_RE = re.compile(r"[a-z0-9]+")
_STOP_WORDS = frozenset(
    {"a", "an", "and", "the", "of", "to", "for", "in", "on", "with", "or", "is", "are", "be"}
    | {"my", "your", "our", "about", "at", "by", "from"}
)
_GREETINGS = frozenset({"hi", "hello", "hey", "hiya", "howdy", "greetings", "hola", "yo"})
_GREETING_PHRASES = ("good morning", "good afternoon", "good evening", "good day")
_FAREWELLS = frozenset({"bye", "goodbye", "farewell"})
_FAREWELL_PHRASES = ("see you", "good night")
_CHUNK_RE = re.compile(r"\S+\s*")


def persona_name(system_prompt: str, avatar_name: str) -> str:
    """The name the assistant speaks as (rule 1 of the module docstring)."""
    for match in _NAME_RE.finditer(system_prompt):
        name = match.group(1).rstrip("'-")
        name = name.removesuffix("'s")
        if name and name not in _NOT_NAMES:
            return name
    return avatar_name


def system_topics(system_prompt: str) -> list[str]:
    """Topics from every `Topics: a, b, c` line, in order, as written (minus a final '.')."""
    topics: list[str] = []
    for line in _TOPICS_RE.findall(system_prompt):
        for item in re.split(r"[,;]", line):
            topic = item.strip().rstrip(".").strip()
            if topic:
                topics.append(topic)
    return topics


def assistant_reply(system_prompt: str, avatar_name: str, message: str) -> str:
    """The emulated assistant's answer: a pure function of its three inputs."""
    name = persona_name(system_prompt, avatar_name)
    text = " ".join(message.split())
    lowered = text.lower()
    words = _WORD_RE.findall(lowered)
    word_set = set(words)
    for topic in system_topics(system_prompt):
        topic_words = set(_WORD_RE.findall(topic.lower())) - _STOP_WORDS
        if topic_words & word_set:
            return f"{name} here. Happy to help with {topic}: what would you like to know?"
    first = words[0] if words else ""
    if first in _GREETINGS or lowered.startswith(_GREETING_PHRASES):
        return f"Hello! I'm {name}. How can I help you today?"
    if first in _FAREWELLS or lowered.startswith(_FAREWELL_PHRASES):
        return f"Goodbye from {name}! Thanks for the conversation."
    return f"{name} here. You said: {text}"


def split_chunks(text: str) -> list[str]:
    """Word chunks whose concatenation is `text` exactly (leading space kept on the first)."""
    chunks = _CHUNK_RE.findall(text)
    if not chunks:
        return [text] if text else []
    lead = text[: len(text) - len(text.lstrip())]
    chunks[0] = lead + chunks[0]
    return chunks


def token_count(text: str) -> int:
    """A rough, deterministic token estimate: one token per 4 characters, rounded up."""
    return math.ceil(len(text) / 4)


# --- HTTP helpers -----------------------------------------------------------------------------


_Handler = Callable[[Request], Awaitable[Response]]


class _ApiError(Exception):
    """Raised inside handlers; the route wrappers answer it with the error envelope."""

    def __init__(
        self, status: int, code: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def _request_id(conn: Request | WebSocket) -> str:
    # The core middleware sets it (and the x-request-id header); fall back so the routes also
    # work mounted on a bare app.
    rid = getattr(conn.state, "request_id", None)
    if not isinstance(rid, str) or not rid:
        rid = f"req_{uuid.uuid4().hex[:16]}"
        conn.state.request_id = rid
    return rid


def _ok(request: Request, data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"data": data, "meta": {"requestId": _request_id(request)}}, status)


def _error_body(conn: Request | WebSocket, err: _ApiError) -> dict[str, Any]:
    error: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.details:
        error["details"] = err.details
    return {"error": error, "meta": {"requestId": _request_id(conn)}}


def _missing(field: str) -> _ApiError:
    return _ApiError(
        400, "missing_parameter", f"{field} is required", {"field": field, "reason": "missing"}
    )


def _invalid(field: str, message: str, reason: str = "invalid") -> _ApiError:
    # Messages name the field and the rule, never the value: the value may be a secret.
    return _ApiError(400, "invalid_parameter", message, {"field": field, "reason": reason})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bearer(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""  # present but not a Bearer credential: invalid, not missing
    return token.strip() or None


async def _json_object(request: Request, *, empty_ok: bool) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        if empty_ok:
            return {}
        raise _ApiError(400, "invalid_request", "request body must be a JSON object")
    try:
        payload = parse_json(body)
    except BodyError as exc:
        # The reason never quotes the body, which may hold a BYOK key.
        raise _ApiError(400, "invalid_request", f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise _ApiError(400, "invalid_request", "request body must be a JSON object")
    return payload


def _content(value: Any, field: str = "content") -> str:
    """Validate a user message (REST body or WebSocket frame); return it unchanged."""
    if value is None:
        raise _missing(field)
    if not isinstance(value, str):
        raise _invalid(field, f"{field} must be a string")
    if not value.strip():
        raise _invalid(field, f"{field} must not be empty", "empty")
    if len(value) > MAX_CONTENT_CHARS:
        raise _invalid(field, f"{field} must be at most {MAX_CONTENT_CHARS} characters", "too_long")
    return value


@dataclass(frozen=True, slots=True)
class _Conversation:
    id: str
    avatar_id: str
    system_prompt: str
    status: str
    created_at: str

    @property
    def ended(self) -> bool:
        return self.status == "ended"


@dataclass(frozen=True, slots=True)
class _Turn:
    """One exchange as stored: the user message and the assistant's reply."""

    user: dict[str, Any]
    assistant: dict[str, Any]
    usage: dict[str, int]
    audio_url: str


# --- the emulator -----------------------------------------------------------------------------


class AvatariumEmulator:
    """Avatarium v1 on a shared SQLite connection; see the module docstring for the rules.

    Every method runs on the server's event-loop thread (the connection is shared with the
    Equos emulation), and every write is committed at once so a crash loses nothing answered.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        is_valid_key: Callable[[str], bool],
        seed: int = 0,
        faults: Faults | None = None,
    ) -> None:
        self._conn = conn
        self._is_valid_key = is_valid_key
        self._faults = faults  # wsAuth and the mid-stream WebSocket faults
        self._rng = random.Random(seed)
        # Open sockets per conversation, so /end can close them. Memory only: a restart drops
        # every connection anyway.
        self._sockets: dict[str, set[WebSocket]] = {}
        self._create_tables()
        # Kept current by create and end, so the stats never count rows.
        (self._open,) = conn.execute(
            "SELECT COUNT(*) FROM av_conversations WHERE status = 'active'"
        ).fetchone()

    # -- public interface used by the core --

    def routes(self) -> list[BaseRoute]:
        public, private = self._public, self._private
        return [
            Route("/health", public(self._health), methods=["GET"]),
            Route("/v1/health", public(self._health), methods=["GET"]),
            Route("/v1/avatars", public(self._list_avatars), methods=["GET"]),
            Route("/v1/avatars/{avatar_id}", public(self._get_avatar), methods=["GET"]),
            Route("/v1/avatars/{avatar_id}/model", public(self._get_model), methods=["GET"]),
            Route("/v1/conversations", private(self._create_conversation), methods=["POST"]),
            Route(
                "/v1/conversations/{conversation_id}",
                private(self._get_conversation),
                methods=["GET"],
            ),
            Route(
                "/v1/conversations/{conversation_id}/messages",
                private(self._post_message),
                methods=["POST"],
            ),
            Route("/v1/conversations/{conversation_id}/end", private(self._end), methods=["POST"]),
            WebSocketRoute("/v1/conversations/{conversation_id}/ws", self._websocket),
        ]

    def open_conversations(self) -> int:
        """Conversations created and not ended (a test that forgets to end one shows here)."""
        return int(self._open)

    # -- storage --

    def _create_tables(self) -> None:
        # No BYOK key column, by design: the key is never written anywhere.
        self._conn.execute(
            """CREATE TABLE IF NOT EXISTS av_conversations (
                id TEXT PRIMARY KEY,
                avatar_id TEXT NOT NULL,
                provider TEXT,
                system_prompt TEXT NOT NULL,
                byok_enabled INTEGER NOT NULL,
                byok_provider TEXT,
                byok_model TEXT,
                status TEXT NOT NULL,
                created_at TEXT NOT NULL,
                ended_at TEXT
            )"""
        )
        self._conn.execute(
            """CREATE TABLE IF NOT EXISTS av_messages (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                conversation_id TEXT NOT NULL REFERENCES av_conversations(id),
                role TEXT NOT NULL,
                content TEXT NOT NULL,
                audio_url TEXT,
                created_at TEXT NOT NULL
            )"""
        )
        self._conn.execute(
            "CREATE INDEX IF NOT EXISTS av_messages_by_conversation"
            " ON av_messages(conversation_id, seq)"
        )
        self._conn.commit()

    def _new_id(self, table: str, make: Callable[[], str]) -> str:
        # Seeded ids are reproducible on a fresh DB; on a reopened file DB the same sequence
        # replays, so skip the ones already taken instead of failing on the primary key.
        while True:
            candidate = make()
            taken = self._conn.execute(
                f"SELECT 1 FROM {table} WHERE id = ?", (candidate,)
            ).fetchone()
            if taken is None:
                return candidate

    def _conversation_uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _message_id(self) -> str:
        return f"msg_{self._rng.getrandbits(96):024x}"

    def _load(self, conversation_id: str) -> _Conversation:
        row = self._conn.execute(
            "SELECT id, avatar_id, system_prompt, status, created_at"
            " FROM av_conversations WHERE id = ?",
            (conversation_id,),
        ).fetchone()
        if row is None:
            raise _ApiError(
                404,
                "conversation_not_found",
                f"conversation {conversation_id} does not exist",
                {"field": "id", "reason": "not_found"},
            )
        return _Conversation(*row)

    def _store_turn(self, conv: _Conversation, content: str) -> _Turn:
        """Store the user message and the deterministic reply, committed before any answer."""
        avatar_name = AVATARS[conv.avatar_id].name if conv.avatar_id in AVATARS else "Assistant"
        reply = assistant_reply(conv.system_prompt, avatar_name, content)
        user_id = self._new_id("av_messages", self._message_id)
        user_at = _now()
        self._conn.execute(
            "INSERT INTO av_messages (id, conversation_id, role, content, created_at)"
            " VALUES (?, ?, 'user', ?, ?)",
            (user_id, conv.id, content, user_at),
        )
        reply_id = self._new_id("av_messages", self._message_id)
        reply_at = _now()
        audio_url = f"{CDN}/audio/{reply_id}.mp3"
        self._conn.execute(
            "INSERT INTO av_messages (id, conversation_id, role, content, audio_url, created_at)"
            " VALUES (?, ?, 'assistant', ?, ?, ?)",
            (reply_id, conv.id, reply, audio_url, reply_at),
        )
        self._conn.commit()
        prompt = token_count(conv.system_prompt) + token_count(content)
        completion = token_count(reply)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            # The messages reference page shows these two instead; give both shapes.
            "ai_tokens": prompt + completion,
            "tts_characters": len(reply),
        }
        user = {"id": user_id, "role": "user", "content": content, "createdAt": user_at}
        assistant = {"id": reply_id, "role": "assistant", "content": reply, "createdAt": reply_at}
        return _Turn(user=user, assistant=assistant, usage=usage, audio_url=audio_url)

    # -- auth --

    def _check_key(self, token: str | None) -> None:
        if token is None:
            raise _ApiError(
                401,
                "missing_api_key",
                "no API key provided: send Authorization: Bearer <key>",
            )
        if not token or not self._is_valid_key(token):
            raise _ApiError(401, "invalid_api_key", "the API key is invalid or has been revoked")

    def _private(self, handler: _Handler) -> _Handler:
        """Wrap a handler: API key first, then the handler; `_ApiError` becomes the envelope."""

        async def endpoint(request: Request) -> Response:
            try:
                self._check_key(_bearer(request.headers.get("authorization")))
                return await handler(request)
            except _ApiError as err:
                return JSONResponse(_error_body(request, err), err.status)

        return endpoint

    @staticmethod
    def _public(handler: _Handler) -> _Handler:
        """Wrap a handler that needs no key (health, avatars)."""

        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except _ApiError as err:
                return JSONResponse(_error_body(request, err), err.status)

        return endpoint

    # -- REST handlers (raise `_ApiError`; the wrappers above answer it) --

    async def _health(self, request: Request) -> Response:
        return _ok(request, {"status": "ok", "service": "avatarium", "version": "v1"})

    async def _list_avatars(self, request: Request) -> Response:
        return _ok(request, [a.to_json() for a in AVATARS.values()])

    async def _get_avatar(self, request: Request) -> Response:
        return _ok(request, _avatar(request.path_params["avatar_id"]).to_json())

    async def _get_model(self, request: Request) -> Response:
        return _ok(request, _avatar(request.path_params["avatar_id"]).model_json())

    async def _create_conversation(self, request: Request) -> Response:
        body = await _json_object(request, empty_ok=True)
        avatar_id = body.get("avatarId")
        if avatar_id is None:
            avatar_id = DEFAULT_AVATAR_ID
        if not isinstance(avatar_id, str):
            raise _invalid("avatarId", "avatarId must be a string")
        provider = body.get("provider")
        if provider is not None and provider not in PROVIDERS:
            raise _invalid("provider", f"provider must be one of {', '.join(PROVIDERS)}")
        system_prompt = body.get("systemPrompt")
        if system_prompt is None:
            system_prompt = ""
        if not isinstance(system_prompt, str):
            raise _invalid("systemPrompt", "systemPrompt must be a string")
        byok = _byok_settings(body.get("byokAI"))
        _avatar(avatar_id)  # 404 after the 400s: a malformed body is reported first

        conv_id = self._new_id("av_conversations", self._conversation_uuid)
        created_at = _now()
        self._conn.execute(
            "INSERT INTO av_conversations (id, avatar_id, provider, system_prompt,"
            " byok_enabled, byok_provider, byok_model, status, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 'active', ?)",
            (
                conv_id,
                avatar_id,
                provider,
                system_prompt,
                int(byok is not None),
                byok[0] if byok else None,
                byok[1] if byok else None,
                created_at,
            ),
        )
        self._conn.commit()
        self._open += 1
        ws_scheme = "wss" if request.url.scheme == "https" else "ws"
        data = {
            "id": conv_id,
            "avatarId": avatar_id,
            "wsUrl": f"{ws_scheme}://{request.url.netloc}/v1/conversations/{conv_id}/ws",
            "createdAt": created_at,
            "byokEnabled": byok is not None,
        }
        return _ok(request, data, 201)

    async def _get_conversation(self, request: Request) -> Response:
        conv = self._load(request.path_params["conversation_id"])
        rows = self._conn.execute(
            "SELECT id, role, content, created_at FROM av_messages"
            " WHERE conversation_id = ? ORDER BY seq",
            (conv.id,),
        ).fetchall()
        data = {
            "id": conv.id,
            "avatarId": conv.avatar_id,
            "status": conv.status,
            "createdAt": conv.created_at,
            "messages": [
                {"id": mid, "role": role, "content": content, "createdAt": at}
                for mid, role, content, at in rows
            ],
        }
        return _ok(request, data)

    async def _post_message(self, request: Request) -> Response:
        conv = self._load(request.path_params["conversation_id"])
        body = await _json_object(request, empty_ok=False)
        content = _content(body.get("content"))
        stream = body.get("stream")
        if stream is None:
            stream = False
        if not isinstance(stream, bool):
            raise _invalid("stream", "stream must be a boolean")
        if conv.ended:
            raise _ended(conv.id)
        turn = self._store_turn(conv, content)
        if stream:
            return StreamingResponse(
                _sse_events(turn),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        data = {
            "id": turn.assistant["id"],
            "role": "assistant",
            "content": turn.assistant["content"],
            "audio_url": turn.audio_url,
            "created_at": turn.assistant["createdAt"],
            "usage": turn.usage,
        }
        return _ok(request, data)

    async def _end(self, request: Request) -> Response:
        conv = self._load(request.path_params["conversation_id"])
        if not conv.ended:  # ending twice is harmless and keeps the first end time
            self._conn.execute(
                "UPDATE av_conversations SET status = 'ended', ended_at = ? WHERE id = ?",
                (_now(), conv.id),
            )
            self._conn.commit()
            self._open -= 1
        for ws in list(self._sockets.pop(conv.id, ())):
            await _close(ws)
        return _ok(request, {"success": True})

    # -- WebSocket --

    async def _websocket(self, websocket: WebSocket) -> None:
        # Auth and unknown ids are refused at the handshake, with the REST status and error
        # envelope (WebSocket denial response), so a client learns why before any frame.
        try:
            header = websocket.headers.get("authorization")
            token = _bearer(header) if header is not None else websocket.query_params.get("token")
            # wsAuth "open": the bare wsUrl works, as in the reference's example; a
            # credential that is sent is still checked.
            open_ = self._faults is not None and self._faults.settings.ws_auth == "open"
            if not (open_ and header is None and token is None):
                self._check_key(token)
            conv = self._load(websocket.path_params["conversation_id"])
        except _ApiError as err:
            await _deny(websocket, err)
            return

        await websocket.accept()
        if conv.ended:
            await _send(websocket, _error_frame(_ended(conv.id)))
            await _close(websocket)
            return
        sockets = self._sockets.setdefault(conv.id, set())
        sockets.add(websocket)
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                if not await self._on_frame(websocket, conv.id, message.get("text")):
                    break
        except WebSocketDisconnect:
            pass  # the client left mid-answer; the turn is already stored
        finally:
            sockets.discard(websocket)
            if not sockets and self._sockets.get(conv.id) is sockets:
                del self._sockets[conv.id]

    async def _on_frame(self, websocket: WebSocket, conversation_id: str, text: str | None) -> bool:
        """Answer one client frame; False when the socket must stop (conversation ended)."""
        try:
            if text is None:
                raise _ApiError(400, "invalid_request", "frames must be JSON text, not binary")
            try:
                frame = parse_json(text)
            except BodyError as exc:
                raise _ApiError(400, "invalid_request", f"frame is not valid JSON: {exc}") from None
            if not isinstance(frame, dict):
                raise _ApiError(400, "invalid_request", "frame must be a JSON object")
            kind = frame.get("type")
            if kind == "ping":
                return await _send(websocket, {"type": "pong"})
            if kind != "message":
                raise _invalid("type", "type must be 'message' or 'ping'")
            content = _content(frame.get("content"))
            conv = self._load(conversation_id)
            if conv.ended:
                await _send(websocket, _error_frame(_ended(conv.id)))
                await _close(websocket)
                return False
            turn = self._store_turn(conv, content)
        except _ApiError as err:
            return await _send(websocket, _error_frame(err))

        plan = self._faults.ws_reply_plan() if self._faults is not None else WsReplyPlan()
        return await _stream_reply(websocket, turn, plan)


async def _stream_reply(websocket: WebSocket, turn: _Turn, plan: WsReplyPlan) -> bool:
    """Send one reply's frames, as `plan` (the ws* fault switches) bends them.

    False when the socket is gone (closed by /end or the client, or dropped here).
    """
    if not await _send(websocket, {"type": "message", "data": turn.user}):
        return False
    start = {"type": "stream_start", "data": {"id": turn.assistant["id"], "role": "assistant"}}
    if not await _send(websocket, start):
        return False
    chunks = split_chunks(turn.assistant["content"])
    # A fault "after n chunks" with n past the last chunk strikes before stream_end.
    drop_at = _clamp(plan.drop_after_chunks, len(chunks))
    error_at = _clamp(plan.error_after_chunks, len(chunks))
    for position in range(len(chunks) + 1):
        if position == drop_at:
            await _drop(websocket, plan.drop_mode)
            return False
        if position == error_at:
            # The reply ends here, without stream_end; the socket stays usable.
            return await _send(websocket, _error_frame(_AI_PROVIDER_FAILED))
        if position == len(chunks):
            break
        delay = plan.first_chunk_delay_ms if position == 0 else plan.chunk_delay_ms
        if delay and not await _pause(websocket, delay):
            return False
        if not await _send(websocket, {"type": "stream_chunk", "data": chunks[position]}):
            return False
    end = turn.assistant
    if plan.end_mismatch:
        end = {**end, "content": end["content"] + MISMATCH_SUFFIX}
    if not await _send(websocket, {"type": "stream_end", "data": end}):
        return False
    if plan.message_after_end:
        return await _send(websocket, {"type": "message", "data": turn.assistant})
    return True


def _clamp(after: int | None, chunks: int) -> int | None:
    return None if after is None else min(after, chunks)


class _Transport(Protocol):
    def close(self) -> None: ...
    def is_closing(self) -> bool: ...


def _transport(websocket: WebSocket) -> _Transport | None:
    # Put there by the core middleware: uvicorn's socket transport (uvloop's is no
    # asyncio.BaseTransport subclass, hence the duck typing); absent on other servers.
    transport = getattr(websocket.state, "transport", None)
    if callable(getattr(transport, "close", None)) and callable(
        getattr(transport, "is_closing", None)
    ):
        return cast(_Transport, transport)
    return None


async def _pause(websocket: WebSocket, ms: int) -> bool:
    """Sleep `ms` (wsFirstChunkDelayMs, wsChunkDelayMs), in steps, so that a socket
    closed meanwhile (by /end or the client) ends the wait; False if it was."""
    loop = asyncio.get_running_loop()
    until = loop.time() + ms / 1000
    transport = _transport(websocket)
    while (left := until - loop.time()) > 0:
        await asyncio.sleep(min(left, 0.05))
        if websocket.application_state is not WebSocketState.CONNECTED or (
            transport is not None and transport.is_closing()
        ):
            return False
    return True


async def _drop(websocket: WebSocket, mode: str) -> None:
    """wsDropMode "abort": close the TCP connection with no close frame (the client
    sees 1006); "1011": a close frame with code 1011 (internal error)."""
    transport = _transport(websocket)
    if mode == "abort" and transport is not None:
        transport.close()  # what was sent is still delivered, then FIN, no close frame
        return
    if websocket.application_state is WebSocketState.CONNECTED:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await websocket.close(code=WS_CLOSE_FAULT, reason=WS_FAULT_REASON)


def _avatar(avatar_id: str) -> AvatarPreset:
    try:
        return AVATARS[avatar_id]
    except KeyError:
        raise _ApiError(
            404,
            "avatar_not_found",
            f"avatar {avatar_id} does not exist",
            {"field": "avatarId", "reason": "not_found"},
        ) from None


def _byok_settings(value: Any) -> tuple[str, str | None] | None:
    """Validate `byokAI`; return only (provider, model). The key goes no further than here."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _invalid("byokAI", "byokAI must be an object")
    provider = value.get("provider")
    if provider is None:
        raise _missing("byokAI.provider")
    if provider not in PROVIDERS:
        raise _invalid("byokAI.provider", f"byokAI.provider must be one of {', '.join(PROVIDERS)}")
    api_key = value.get("apiKey")
    if api_key is None or api_key == "":
        raise _missing("byokAI.apiKey")
    if not isinstance(api_key, str):
        raise _invalid("byokAI.apiKey", "byokAI.apiKey must be a string")
    model = value.get("model")
    if model is not None and not isinstance(model, str):
        raise _invalid("byokAI.model", "byokAI.model must be a string")
    base_url = value.get("baseUrl")
    if base_url is not None and (
        not isinstance(base_url, str) or not base_url.startswith(("http://", "https://"))
    ):
        raise _invalid("byokAI.baseUrl", "byokAI.baseUrl must be an http(s) URL")
    return provider, model


# wsErrorAfterChunks: the `error` frame that cuts a reply short.
_AI_PROVIDER_FAILED = _ApiError(
    503, "ai_provider_error", "the AI provider failed mid-reply (injected by the emulator)"
)


def _ended(conversation_id: str) -> _ApiError:
    return _ApiError(
        400,
        "invalid_request",
        f"conversation {conversation_id} has ended",
        {"field": "id", "reason": "ended"},
    )


def _error_frame(err: _ApiError) -> dict[str, Any]:
    data: dict[str, Any] = {"code": err.code, "message": err.message}
    if err.details:
        data["details"] = err.details
    return {"type": "error", "data": data}


async def _sse_events(turn: _Turn) -> AsyncIterator[str]:
    # Stored before the first byte: a client that drops mid-stream still finds the turn.
    for chunk in split_chunks(turn.assistant["content"]):
        yield _sse("message", {"delta": chunk})
    yield _sse("audio", {"url": turn.audio_url})
    yield _sse("done", {"id": turn.assistant["id"], "usage": turn.usage})


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n"


async def _deny(websocket: WebSocket, err: _ApiError) -> None:
    try:
        body = _error_body(websocket, err)
        # The core middleware adds x-request-id to HTTP answers only; a denial is ours to label.
        headers = {"x-request-id": body["meta"]["requestId"]}
        await websocket.send_denial_response(JSONResponse(body, err.status, headers))
    except RuntimeError:
        # Server without the denial-response extension: closing before accept is a plain 403.
        await websocket.close(code=1008, reason=err.code)


async def _send(websocket: WebSocket, frame: dict[str, Any]) -> bool:
    """Send one frame; False if the socket is already closed (by /end or by the client)."""
    if websocket.application_state is not WebSocketState.CONNECTED:
        return False
    try:
        await websocket.send_text(json.dumps(frame))
    except (WebSocketDisconnect, RuntimeError):
        return False
    return True


async def _close(websocket: WebSocket) -> None:
    if websocket.application_state is WebSocketState.CONNECTED:
        # The client may have gone first; then there is nothing left to close.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await websocket.close(code=WS_CLOSE_ENDED, reason=WS_ENDED_REASON)
