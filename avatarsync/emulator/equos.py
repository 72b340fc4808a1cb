"""Equos v3, emulated: faces, voices, brains, knowledge bases (with documents and
a presigned-style upload URL), characters, conversations, tokens, health and
usage, persisted in the shared SQLite connection (tables `eq_*`) through
`equos_store.EquosStore`, whose indexed in-memory mirror keeps every request's
cost independent of the organisation's size.

Wire format follows the official SDK's generated models (equos 3.1.5) where
they and the prose docs disagree. The emulator is deliberately *stricter*
than the real API may be, because it exists to catch client bugs early:

- unknown body properties are rejected (NestJS `forbidNonWhitelisted`), so
  PUT with `livekitIdentity`/`client` on a character is a 400;
- PATCH on voices and brains takes the same body as create (the SDK's update
  calls send the create models), so required fields stay required;
- deleting a face, voice, brain or knowledge base that a character still
  links is a 400 naming the character: it catches apply-ordering bugs
  (delete before relink) that a lenient server would hide.

Every handler runs without yielding to the event loop (its body is read
before it starts), so each request's reads and writes are atomic with respect
to every other request: no lost updates, no write to a row deleted meanwhile.
(The upload URL is the exception: it streams its body, then looks again.)

Switches that change answers for client tests (`missingAs`, `stopEndedAs`)
are read from `faults.Faults`, like the HTTP faults the middleware applies.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from avatarsync._version import __version__
from avatarsync.catalog import FACE_IDENTITIES, VOICE_IDENTITIES
from avatarsync.emulator.envelopes import dumps, equos_error
from avatarsync.emulator.equos_store import (
    ConversationLedger,
    EquosStore,
    LinkIndex,
    Obj,
    Transaction,
)
from avatarsync.emulator.faults import Faults, FaultSettings
from avatarsync.emulator.jsonbody import BodyError, parse_json
from avatarsync.emulator.store import Clock, iso_ms, parse_iso_ms

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "FACE_IDENTITIES",
    "MAX_UPLOAD_BYTES",
    "ORGANIZATION_ID",
    "VOICE_IDENTITIES",
    "EquosEmulator",
    "EquosProblem",
]

ORGANIZATION_ID = "org_emulator"
DEFAULT_TAKE = 20
MAX_TAKE = 50
# The API documents no bound on skip; a bound keeps every page request cheap and
# every number representable (9223372036854775807 used to overflow SQLite).
MAX_SKIP = 1_000_000_000
DEFAULT_MAX_SECONDS = 600  # the docs give none; any positive value will do
# One day. The docs give no maximum either; without one, 1e308 was stored and every
# later list, stats and usage call overflowed computing the end time.
MAX_MAX_SECONDS = 86_400
UPLOAD_TTL_MS = 3600 * 1000
# Largest document upload. The body is read in chunks and refused as soon as it is
# known to be larger (a declared Content-Length first), never buffered whole.
MAX_UPLOAD_BYTES = 32 * 2**20
_FACE_ASSETS = "https://assets.emulator.invalid/faces"  # .invalid: never resolves


class EquosProblem(Exception):
    """An error answer: status and NestJS `message`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Missing(EquosProblem):
    """The id in the path names nothing: a 404, or a `null` answer (`missingAs`)."""


# ---------------------------------------------------------------- validation

FieldType = Literal["string", "boolean", "number", "object", "string_map"]


@dataclass(frozen=True)
class Field:
    """One body property, checked the way class-validator would."""

    name: str
    type: FieldType
    required: bool = False
    nullable: bool = False
    choices: tuple[str, ...] = ()
    fields: tuple[Field, ...] = ()  # for type "object"
    maximum: float | None = None  # for type "number" (which must be positive)


_TYPE_MESSAGES: dict[str, str] = {
    "string": "must be a string",
    "boolean": "must be a boolean value",
    "number": "must be a number conforming to the specified constraints",
    "object": "must be an object",
    "string_map": "must be an object",
}


def validate(body: object, fields: Iterable[Field], prefix: str = "") -> dict[str, Any]:
    """Return the known properties of `body`, or raise 400 with every problem."""
    fields = tuple(fields)
    if not isinstance(body, dict):
        raise EquosProblem(400, f"{prefix.rstrip('.') or 'body'} must be an object")
    errors: list[str] = []
    known = {f.name for f in fields}
    errors.extend(f"property {prefix}{key} should not exist" for key in body if key not in known)
    out: dict[str, Any] = {}
    for f in fields:
        name = prefix + f.name
        if f.name not in body:
            if f.required:
                errors.append(f"{name} should not be empty")
            continue
        value = body[f.name]
        if value is None:
            if f.nullable:
                out[f.name] = None
            else:
                errors.append(f"{name} {_TYPE_MESSAGES[f.type]}")
            continue
        problem = _type_problem(f, value, name)
        if problem:
            errors.extend(problem)
        else:
            out[f.name] = value
    if errors:
        raise EquosProblem(400, "; ".join(errors))
    return out


def _type_problem(f: Field, value: object, name: str) -> list[str]:
    match f.type:
        case "string":
            if not isinstance(value, str):
                return [f"{name} must be a string"]
            if f.choices and value not in f.choices:
                return [f"{name} must be one of the following values: {', '.join(f.choices)}"]
        case "boolean":
            if not isinstance(value, bool):
                return [f"{name} must be a boolean value"]
        case "number":
            if isinstance(value, bool) or not isinstance(value, int | float):
                return [f"{name} {_TYPE_MESSAGES['number']}"]
            # math.isfinite(10**400) overflows: only floats can be infinite.
            if (isinstance(value, float) and not math.isfinite(value)) or value <= 0:
                return [f"{name} must be a positive number"]
            if f.maximum is not None and value > f.maximum:
                return [f"{name} must not be greater than {f.maximum:g}"]
        case "object":
            try:
                validate(value, f.fields, prefix=f"{name}.")
            except EquosProblem as exc:
                return [exc.message]
        case "string_map":
            if not isinstance(value, dict):
                return [f"{name} must be an object"]
            return [
                f"{name}.{k} must be a string" for k, v in value.items() if not isinstance(v, str)
            ]
    return []


def _client_field(*, nullable: bool = True) -> Field:
    return Field("client", "string", nullable=nullable)


def _link(name: str) -> Field:
    return Field(name, "string", nullable=True)


FACE_CREATE = (Field("identity", "string", required=True, choices=FACE_IDENTITIES), _client_field())
VOICE_CREATE = (
    Field("identity", "string", required=True, choices=VOICE_IDENTITIES),
    Field("instructions", "string", nullable=True),
    _client_field(),
)
BRAIN_CREATE = (
    Field("instructions", "string", required=True),
    Field("greetingMessage", "string", required=True),
    _client_field(),
)
KB_CREATE = (
    Field("name", "string", required=True),
    Field("description", "string", required=True),
    _client_field(nullable=False),  # the SDK types it `str`, not nullable
)
DOCUMENT_CREATE = (
    Field("name", "string", required=True),
    Field("description", "string", required=True),
    Field("mimeType", "string", required=True),
)
_CHARACTER_LINKS = ("faceId", "voiceId", "brainId", "knowledgeBaseId")
CHARACTER_CREATE = (
    Field("name", "string", required=True),
    Field("livekitIdentity", "string", required=True),
    _client_field(),
    *(_link(n) for n in _CHARACTER_LINKS),
    Field("search", "boolean"),
    Field("elevenlabsAgentId", "string", nullable=True),
)
CHARACTER_UPDATE = (
    Field("name", "string"),
    *(_link(n) for n in _CHARACTER_LINKS),
    Field("search", "boolean"),
    Field("elevenlabsAgentId", "string", nullable=True),
)
_PARTICIPANT = (Field("identity", "string", required=True), Field("name", "string", required=True))
CONVERSATION_CREATE = (
    Field("name", "string", required=True),
    Field("characterId", "string", required=True),
    _client_field(),
    Field(
        "host",
        "object",
        nullable=True,
        fields=(
            Field("serverUrl", "string", required=True),
            Field("accessToken", "string", required=True),
        ),
    ),
    Field("remoteAgent", "object", nullable=True, fields=_PARTICIPANT),
    Field("consumer", "object", nullable=True, fields=_PARTICIPANT),
    Field("maxSeconds", "number", nullable=True, maximum=MAX_MAX_SECONDS),
    Field("promptCtx", "string", nullable=True),
    Field("promptTemplateVars", "string_map", nullable=True),
)
TOKEN_CREATE = (
    Field("user", "string", required=True),
    _client_field(),
    Field("character", "string", nullable=True),
)


# ---------------------------------------------------------------- resources


@dataclass(frozen=True)
class _SimpleKind:
    """A leaf resource with plain CRUD (face, voice, brain, knowledge base)."""

    kind: str  # storage kind and error label
    label: str
    path: str  # /v3/<path>
    list_key: str
    id_prefix: str
    create: tuple[Field, ...]
    updatable: bool
    link_field: str  # the character property that links it


_FACE = _SimpleKind("face", "Face", "faces", "faces", "face", FACE_CREATE, False, "faceId")
_VOICE = _SimpleKind("voice", "Voice", "voices", "voices", "voice", VOICE_CREATE, True, "voiceId")
_BRAIN = _SimpleKind("brain", "Brain", "brains", "brains", "brain", BRAIN_CREATE, True, "brainId")
# The knowledge-base list envelope really is `items` on the live API.
_KB = _SimpleKind(
    "knowledge_base", "KnowledgeBase", "knowledge-bases", "items", "kb", KB_CREATE, False,
    "knowledgeBaseId",
)  # fmt: skip
_LINK_KINDS = {"faceId": _FACE, "voiceId": _VOICE, "brainId": _BRAIN, "knowledgeBaseId": _KB}

Handler = Callable[[Request], Awaitable[tuple[int, Any]]]
_MISSING: Any = object()
_DEFAULT_SETTINGS = FaultSettings()
# A refused delete names the characters still linking the object, at most this many.
_LINKERS_NAMED = 10


def _new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class EquosEmulator:
    """The Equos v3 routes over one SQLite connection."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        is_valid_key: Callable[[str], bool],
        clock: Clock | None = None,
        faults: Faults | None = None,
    ) -> None:
        self._conn = conn
        self._is_valid_key = is_valid_key
        self._clock = clock or Clock()
        self._faults = faults
        # Derived indexes, kept current by the store on every committed write.
        self._links = LinkIndex(_CHARACTER_LINKS)  # characters by linked id
        self._kb_documents = LinkIndex(("knowledgeBaseId",))
        self._ledger = ConversationLedger()
        # (kind, id) -> (version, encoded view): see `_fragment`.
        self._fragments: dict[tuple[str, str], tuple[tuple[str | None, ...], bytes]] = {}
        self._store = EquosStore(
            conn,
            observers={
                "character": self._links.observe,
                "document": self._kb_documents.observe,
                "conversation": self._ledger.observe,
            },
        )
        # After a restart, keep timestamps moving forward even if the wall
        # clock did not (updatedAt must never repeat).
        if self._store.max_updated_at:
            self._clock.advance_past(parse_iso_ms(self._store.max_updated_at))

    # ------------------------------------------------------------ routing

    def routes(self) -> list[BaseRoute]:
        w = self._wrap
        # `null=`: the status of a `null` answer for an unknown id when missingAs is
        # "null" -- the routes whose answer the SDK (3.1.5) declares nullable (stop
        # declares 201), plus PUT /characters/{id}.
        r: list[BaseRoute] = [Route("/v3/health", w(self._health, auth=False), methods=["GET"])]
        for kind in (_FACE, _VOICE, _BRAIN, _KB):
            base = f"/v3/{kind.path}"
            r += [
                Route(base, w(self._creator(kind)), methods=["POST"]),
                Route(base, w(self._lister(kind)), methods=["GET"]),
                Route(base + "/{id}", w(self._getter(kind), null=200), methods=["GET"]),
                Route(base + "/{id}", w(self._deleter(kind), null=200), methods=["DELETE"]),
            ]
            if kind.updatable:
                r.append(Route(base + "/{id}", w(self._updater(kind), null=200), methods=["PATCH"]))
        docs = "/v3/knowledge-bases/{id}/documents"
        character = "/v3/characters/{id}"
        r += [
            Route(docs, w(self._add_document), methods=["POST"]),
            Route(docs + "/{doc}/index", w(self._index_document), methods=["PATCH"]),
            Route(docs + "/{doc}", w(self._delete_document), methods=["DELETE"]),
            Route("/v3/characters", w(self._create_character), methods=["POST"]),
            Route("/v3/characters", w(self._list_characters), methods=["GET"]),
            Route(character, w(self._get_character, null=200), methods=["GET"]),
            Route(character, w(self._update_character, null=200), methods=["PUT"]),
            Route(character, w(self._delete_character, null=200), methods=["DELETE"]),
            Route("/v3/conversations", w(self._start_conversation), methods=["POST"]),
            Route("/v3/conversations", w(self._list_conversations), methods=["GET"]),
            Route("/v3/conversations/{id}", w(self._get_conversation, null=200), methods=["GET"]),
            Route(
                "/v3/conversations/{id}/stop",
                w(self._stop_conversation, null=201),
                methods=["POST"],
            ),
            Route("/v3/tokens", w(self._create_token), methods=["POST"]),
            Route("/v3/organizations/freemium-usage", w(self._freemium_usage), methods=["GET"]),
            Route("/v3/organizations/user-usage", w(self._user_usage), methods=["GET"]),
            # The presigned-style upload URL handed out by "add document":
            # like S3, it needs no API key, only the unguessable token.
            Route("/_uploads/{token}", self._upload, methods=["PUT"]),
        ]
        return r

    @property
    def _settings(self) -> FaultSettings:
        return self._faults.settings if self._faults is not None else _DEFAULT_SETTINGS

    def _wrap(
        self, handler: Handler, *, auth: bool = True, null: int | None = None
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                if auth and not self._is_valid_key(request.headers.get("x-api-key", "")):
                    raise EquosProblem(401, "Invalid or missing API key (header x-api-key)")
                # Read the body before the handler runs: Starlette caches it, so
                # the handler's own read does not suspend, and nothing else runs
                # on the loop between its first read and its last write.
                await request.body()
                status, payload = await handler(request)
            except _Missing as exc:
                if null is not None and self._settings.missing_as == "null":
                    return Response(b"null", null, media_type="application/json")
                return Response(
                    equos_error(exc.status, exc.message), exc.status, media_type="application/json"
                )
            except EquosProblem as exc:
                return Response(
                    equos_error(exc.status, exc.message), exc.status, media_type="application/json"
                )
            body = payload if isinstance(payload, _Encoded) else dumps(payload)
            return Response(body, status, media_type="application/json")

        return endpoint

    def open_conversations(self) -> int:
        """Conversations still running (not stopped, not past maxSeconds)."""
        return self._ledger.open_count(self._now_ms())

    def _now_ms(self) -> int:
        return int(self._clock.now() * 1000)

    def set_document_status(self, doc_id: str, status: str) -> Obj | None:
        """Admin: give a document any `status` (the live API's statuses are free-form
        and their case varies); moves its and its knowledge base's updatedAt. None if
        there is no such document."""
        doc = self._get("document", doc_id)
        if doc is None:
            return None
        kb = self._get("knowledge_base", doc["knowledgeBaseId"])
        with self._store.transaction() as tx:
            now = self._clock.tick()
            doc.update(status=status, updatedAt=now)
            tx.save("document", doc)
            if kb is not None:
                self._touch_kb(tx, kb, now)
        return doc

    # ------------------------------------------------------------ storage

    def _get(self, kind: str, id_: str) -> Obj | None:
        return self._store.get(kind, id_)

    def _require(self, kind: _SimpleKind | str, id_: str) -> Obj:
        key, label = (
            (kind.kind, kind.label) if isinstance(kind, _SimpleKind) else (kind, kind.title())
        )
        obj = self._get(key, id_)
        if obj is None:
            raise _Missing(404, f"{label} {id_} not found")
        return obj

    def _page(self, kind: str, request: Request) -> tuple[dict[str, Any], list[Obj]]:
        skip, take = _paging(request.query_params)
        client = request.query_params.get("client")
        envelope: dict[str, Any] = {
            "skip": skip,
            "take": take,
            "total": self._store.count(kind, client),
        }
        return envelope, self._store.page(kind, client, skip, take)

    def _documents(self, kb_id: str) -> list[Obj]:
        peek = self._store.peek
        return [
            doc
            for id_ in self._kb_documents.ids("knowledgeBaseId", kb_id)
            if (doc := peek("document", id_)) is not None
        ]

    # ------------------------------------------------------------ views

    def _view(self, kind: str, obj: Obj) -> Obj:
        match kind:
            case "knowledge_base":
                view = dict(obj)
                view["documents"] = self._documents(obj["id"])
                # KnowledgeBase.client is a non-nullable optional string in the
                # SDK: absent, never null.
                if view.get("client") is None:
                    view.pop("client", None)
                return view
            case "character":
                return self._character_view(obj)
            case _:
                return obj

    def _fragment(
        self, kind: str, obj: Obj, memo: dict[tuple[str, str], Obj | None] | None
    ) -> bytes:
        """The encoded view of one listed object, re-encoded only when it changed.

        Encoding was most of a list page's cost (a page of 50 characters with their
        links expanded is ~75 KB of JSON). A view is a function of the object and,
        for a character, of its four linked objects (a knowledge base's of its
        documents, whose every change moves the knowledge base's updatedAt); since
        every write moves the written object's updatedAt, those updatedAt values
        are the version of the encoded view.
        """
        if kind == "character":
            peek = self._store.peek
            version: tuple[str | None, ...] = (
                obj["updatedAt"],
                *(
                    linked["updatedAt"] if (linked := peek(k.kind, obj.get(f))) else None
                    for f, k in _LINK_KINDS.items()
                ),
            )
        else:
            version = (obj["updatedAt"],)
        cached = self._fragments.get((kind, obj["id"]))
        if cached is not None and cached[0] == version:
            return cached[1]
        view = self._character_view(obj, memo) if kind == "character" else self._view(kind, obj)
        encoded = dumps(view)
        self._fragments[(kind, obj["id"])] = (version, encoded)
        return encoded

    def _encoded(self, kind: str, obj: Obj) -> _Encoded:
        """A single object's answer: the same encoded view as in lists (and cached)."""
        return _Encoded(self._fragment(kind, obj, None))

    def _character_view(
        self, obj: Obj, memo: dict[tuple[str, str], Obj | None] | None = None
    ) -> Obj:
        """The character with its links expanded; `memo` shares the linked views of
        one answer (a page of 50 characters often links the same few faces)."""
        view = dict(obj)
        for field, kind in _LINK_KINDS.items():
            target = obj.get(field)
            if not target:
                view[field.removesuffix("Id")] = None
                continue
            cached = memo.get((field, target), _MISSING) if memo is not None else _MISSING
            if cached is _MISSING:
                linked = self._store.peek(kind.kind, target)
                cached = self._view(kind.kind, linked) if linked else None
                if memo is not None:
                    memo[(field, target)] = cached
            view[field.removesuffix("Id")] = cached
        return view

    # ------------------------------------------------------------ leaves

    def _build(self, kind: _SimpleKind, values: Mapping[str, Any], now: str) -> dict[str, Any]:
        common = {"id": _new_id(kind.id_prefix), "organizationId": ORGANIZATION_ID}
        stamps = {"createdAt": now, "updatedAt": now}
        client = values.get("client")
        match kind.kind:
            case "face":
                identity = values["identity"]
                return {
                    **common,
                    "identity": identity,
                    **stamps,
                    "client": client,
                    "description": f"Gallery face '{identity}'",
                    "thumbnailUrl": f"{_FACE_ASSETS}/{identity}/thumbnail.png",
                    "referenceImgUrl": f"{_FACE_ASSETS}/{identity}/reference.png",
                }
            case "voice":
                return {
                    **common,
                    "identity": values["identity"],
                    **stamps,
                    "client": client,
                    "instructions": values.get("instructions"),
                }
            case "brain":
                return {
                    **common,
                    "instructions": values["instructions"],
                    "greetingMessage": values["greetingMessage"],
                    **stamps,
                    "client": client,
                }
            case _:
                return {
                    **common,
                    "name": values["name"],
                    "description": values["description"],
                    **stamps,
                    "client": client,
                }

    def _creator(self, kind: _SimpleKind) -> Handler:
        async def create(request: Request) -> tuple[int, Any]:
            values = validate(await _json(request), kind.create)
            with self._store.transaction() as tx:
                obj = self._build(kind, values, self._clock.tick())
                tx.insert(kind.kind, obj)
            return 201, self._encoded(kind.kind, obj)

        return create

    def _lister(self, kind: _SimpleKind) -> Handler:
        async def list_(request: Request) -> tuple[int, Any]:
            envelope, items = self._page(kind.kind, request)
            return 200, _encode_page(
                envelope, kind.list_key, [self._fragment(kind.kind, o, None) for o in items]
            )

        return list_

    def _getter(self, kind: _SimpleKind) -> Handler:
        async def get(request: Request) -> tuple[int, Any]:
            return 200, self._encoded(kind.kind, self._require(kind, request.path_params["id"]))

        return get

    def _updater(self, kind: _SimpleKind) -> Handler:
        async def update(request: Request) -> tuple[int, Any]:
            obj = self._require(kind, request.path_params["id"])
            values = validate(await _json(request), kind.create)
            with self._store.transaction() as tx:
                obj.update(values)
                obj["updatedAt"] = self._clock.tick()
                tx.save(kind.kind, obj)
            return 200, self._encoded(kind.kind, obj)

        return update

    def _deleter(self, kind: _SimpleKind) -> Handler:
        async def delete(request: Request) -> tuple[int, Any]:
            obj = self._require(kind, request.path_params["id"])
            self._refuse_if_linked(kind, obj["id"])
            view = self._view(kind.kind, obj)
            with self._store.transaction() as tx:
                if kind is _KB:
                    for doc in view["documents"]:
                        self._remove_document(tx, doc["id"])
                tx.remove(kind.kind, obj["id"])
            self._fragments.pop((kind.kind, obj["id"]), None)
            return 200, view

        return delete

    def _refuse_if_linked(self, kind: _SimpleKind, id_: str) -> None:
        count = self._links.count(kind.link_field, id_)
        if not count:
            return
        named = []
        for char_id in self._links.ids(kind.link_field, id_, limit=_LINKERS_NAMED):
            character = self._store.peek("character", char_id)
            named.append(f"{char_id} ({character['name'] if character else '?'})")
        more = f" and {count - len(named)} more" if count > len(named) else ""
        raise EquosProblem(
            400,
            f"{kind.label} {id_} is still linked by character(s) {', '.join(named)}{more}; "
            "unlink or delete them first",
        )

    # ------------------------------------------------------------ documents

    def _require_document(self, request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
        kb = self._require(_KB, request.path_params["id"])
        doc = self._get("document", request.path_params["doc"])
        if doc is None or doc["knowledgeBaseId"] != kb["id"]:
            raise EquosProblem(404, f"Document {request.path_params['doc']} not found")
        return kb, doc

    @staticmethod
    def _touch_kb(tx: Transaction, kb: Obj, now: str) -> None:
        # A document change is a change of the knowledge base's `documents[]`.
        kb["updatedAt"] = now
        tx.save("knowledge_base", kb)

    @staticmethod
    def _remove_document(tx: Transaction, doc_id: str) -> None:
        tx.execute("DELETE FROM eq_uploads WHERE document_id = ?", (doc_id,))
        tx.execute("DELETE FROM eq_blobs WHERE document_id = ?", (doc_id,))
        tx.remove("document", doc_id)

    async def _add_document(self, request: Request) -> tuple[int, Any]:
        kb = self._require(_KB, request.path_params["id"])
        values = validate(await _json(request), DOCUMENT_CREATE)
        token = secrets.token_urlsafe(24)
        with self._store.transaction() as tx:
            now_ms = self._clock.tick_ms()
            now = iso_ms(now_ms)
            doc = {
                "id": _new_id("doc"),
                "knowledgeBaseId": kb["id"],
                "name": values["name"],
                "description": values["description"],
                "size": 0,
                "status": "pending",  # -> "uploaded" -> "indexed"
                "createdAt": now,
                "updatedAt": now,
            }
            tx.insert("document", doc, parent=kb["id"])
            tx.execute(
                "INSERT INTO eq_uploads (token, document_id, mime_type, expire_at_ms) VALUES (?, ?, ?, ?)",
                (token, doc["id"], values["mimeType"], now_ms + UPLOAD_TTL_MS),
            )
            self._touch_kb(tx, kb, now)
        return 201, {
            "document": doc,
            "uploadUrl": str(request.base_url).rstrip("/") + f"/_uploads/{token}",
            "expireAt": iso_ms(now_ms + UPLOAD_TTL_MS),
        }

    def _upload_target(self, token: str) -> tuple[dict[str, Any], dict[str, Any]] | Response:
        """The document and knowledge base an upload URL writes to, or the refusal."""
        row = self._conn.execute(
            "SELECT document_id, expire_at_ms FROM eq_uploads WHERE token = ?", (token,)
        ).fetchone()
        if row is None:
            return _error_response(404, "Unknown upload URL")
        document_id, expire_at_ms = row
        if self._clock.now() * 1000 > expire_at_ms:
            return _error_response(403, "Upload URL expired")
        doc = self._get("document", document_id)
        kb = self._get("knowledge_base", doc["knowledgeBaseId"]) if doc else None
        if doc is None or kb is None:
            return _error_response(404, "Document not found")
        return doc, kb

    async def _upload(self, request: Request) -> Response:
        token = request.path_params["token"]
        # Refuse what can be refused before reading a byte of the body.
        target = self._upload_target(token)
        if isinstance(target, Response):
            return target
        declared = request.headers.get("content-length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
            return _too_large()
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_UPLOAD_BYTES:  # a chunked body, or one longer than declared
                return _too_large()
            chunks.append(chunk)
        content = b"".join(chunks)
        # Reading the body yielded to other requests: look again, the document or
        # its knowledge base may have been deleted meanwhile.
        target = self._upload_target(token)
        if isinstance(target, Response):
            return target
        doc, kb = target
        digest = hashlib.sha256(content).hexdigest()
        with self._store.transaction() as tx:
            now = self._clock.tick()
            tx.execute(
                "INSERT OR REPLACE INTO eq_blobs (document_id, sha256, content) VALUES (?, ?, ?)",
                (doc["id"], digest, content),
            )
            doc.update(size=len(content), status="uploaded", updatedAt=now)
            tx.save("document", doc)
            self._touch_kb(tx, kb, now)
        return Response(b"", 200, headers={"etag": f'"{hashlib.md5(content).hexdigest()}"'})

    async def _index_document(self, request: Request) -> tuple[int, Any]:
        kb, doc = self._require_document(request)
        # Content, not status, says whether there is something to index: the
        # admin endpoint can set any status.
        uploaded = self._conn.execute(
            "SELECT 1 FROM eq_blobs WHERE document_id = ?", (doc["id"],)
        ).fetchone()
        if uploaded is None:
            raise EquosProblem(400, f"Document {doc['id']} has no uploaded content to index")
        with self._store.transaction() as tx:
            now = self._clock.tick()
            doc.update(status="indexed", updatedAt=now)
            tx.save("document", doc)
            self._touch_kb(tx, kb, now)
        return 200, doc

    async def _delete_document(self, request: Request) -> tuple[int, Any]:
        kb, doc = self._require_document(request)
        with self._store.transaction() as tx:
            self._remove_document(tx, doc["id"])
            self._touch_kb(tx, kb, self._clock.tick())
        return 200, doc

    # ------------------------------------------------------------ characters

    def _check_links(self, values: Mapping[str, Any]) -> None:
        errors = [
            f"{field} references {kind.label} {values[field]}, which does not exist"
            for field, kind in _LINK_KINDS.items()
            if values.get(field) is not None and self._store.peek(kind.kind, values[field]) is None
        ]
        if errors:
            raise EquosProblem(400, "; ".join(errors))

    async def _create_character(self, request: Request) -> tuple[int, Any]:
        values = validate(await _json(request), CHARACTER_CREATE)
        self._check_links(values)
        with self._store.transaction() as tx:
            now = self._clock.tick()
            obj = {
                "id": _new_id("char"),
                "organizationId": ORGANIZATION_ID,
                "name": values["name"],
                "livekitIdentity": values["livekitIdentity"],
                "search": values.get("search", False),
                "createdAt": now,
                "updatedAt": now,
                "client": values.get("client"),
                "elevenlabsAgentId": values.get("elevenlabsAgentId"),
                **{field: values.get(field) for field in _CHARACTER_LINKS},
            }
            tx.insert("character", obj)
        return 201, self._encoded("character", obj)

    async def _list_characters(self, request: Request) -> tuple[int, Any]:
        envelope, items = self._page("character", request)
        memo: dict[tuple[str, str], Obj | None] = {}
        return 200, _encode_page(
            envelope, "characters", [self._fragment("character", o, memo) for o in items]
        )

    async def _get_character(self, request: Request) -> tuple[int, Any]:
        return 200, self._encoded(
            "character", self._require("character", request.path_params["id"])
        )

    async def _update_character(self, request: Request) -> tuple[int, Any]:
        obj = self._require("character", request.path_params["id"])
        values = validate(await _json(request), CHARACTER_UPDATE)
        self._check_links(values)
        with self._store.transaction() as tx:
            obj.update(values)
            obj["updatedAt"] = self._clock.tick()
            tx.save("character", obj)
        return 200, self._encoded("character", obj)

    async def _delete_character(self, request: Request) -> tuple[int, Any]:
        obj = self._require("character", request.path_params["id"])
        view = self._character_view(obj)
        with self._store.transaction() as tx:
            tx.remove("character", obj["id"])
        self._fragments.pop(("character", obj["id"]), None)
        return 200, view

    # ------------------------------------------------------------ conversations

    def _conversation_view(self, obj: dict[str, Any]) -> dict[str, Any]:
        """What a read sees: a running conversation past maxSeconds has ended."""
        if obj["status"] == "running" and _expired(obj, int(self._clock.now() * 1000)):
            ended = iso_ms(parse_iso_ms(obj["startedAt"]) + round(obj["maxSeconds"] * 1000))
            obj = {
                **obj,
                "status": "ended",
                "endedAt": ended,
                "updatedAt": max(ended, obj["updatedAt"]),
            }
        return obj

    async def _start_conversation(self, request: Request) -> tuple[int, Any]:
        values = validate(await _json(request), CONVERSATION_CREATE)
        character = self._store.peek("character", values["characterId"])
        if character is None:
            raise EquosProblem(
                400,
                f"characterId references Character {values['characterId']}, which does not exist",
            )
        host = values.get("host")
        remote_agent = values.get("remoteAgent")
        consumer = values.get("consumer")
        with self._store.transaction() as tx:
            now = self._clock.tick()
            conv_id = _new_id("conv")
            obj = {
                "id": conv_id,
                "name": values["name"],
                "status": "running",
                "charge": False,  # the emulator bills nobody
                "chargeBySecond": 0,
                "maxSeconds": values.get("maxSeconds") or DEFAULT_MAX_SECONDS,
                "startedAt": now,
                "createdAt": now,
                "updatedAt": now,
                "characterId": character["id"],
                "organizationId": ORGANIZATION_ID,
                "client": values.get("client"),
                "room": f"room_{conv_id}",
                "serverUrl": host["serverUrl"] if host else "wss://livekit.emulator.invalid",
                "remoteAgentName": remote_agent["name"] if remote_agent else None,
                "remoteAgentIdentity": remote_agent["identity"] if remote_agent else None,
                "consumerName": consumer["name"] if consumer else None,
                "consumerIdentity": consumer["identity"] if consumer else None,
                "promptCtx": values.get("promptCtx"),
                "promptTemplateVars": values.get("promptTemplateVars"),
                "transcript": [],
                "timeline": [{"type": "started", "recordedAt": now}],
                "joinedAt": None,
                "endedAt": None,
            }
            tx.insert("conversation", obj)
        return 201, {
            "conversation": {**obj, "character": self._character_view(character)},
            "remoteAgentAccessToken": _access_token() if remote_agent else None,
            "consumerAccessToken": _access_token() if consumer else None,
        }

    async def _list_conversations(self, request: Request) -> tuple[int, Any]:
        envelope, items = self._page("conversation", request)
        envelope["conversations"] = [self._conversation_view(o) for o in items]
        return 200, envelope

    async def _get_conversation(self, request: Request) -> tuple[int, Any]:
        return 200, self._conversation_view(
            self._require("conversation", request.path_params["id"])
        )

    async def _stop_conversation(self, request: Request) -> tuple[int, Any]:
        obj = self._conversation_view(self._require("conversation", request.path_params["id"]))
        if obj["status"] != "running":
            # Stopping twice is harmless by default: whoever starts a conversation
            # must stop it on every path, so the second stop must not fail. A
            # stricter live API might refuse it (stopEndedAs: 400).
            if self._settings.stop_ended_as == 400:
                raise EquosProblem(400, f"Conversation {obj['id']} has already ended")
            return 201, obj
        with self._store.transaction() as tx:
            now = self._clock.tick()
            obj["timeline"] = [*(obj.get("timeline") or []), {"type": "ended", "recordedAt": now}]
            obj.update(status="ended", endedAt=now, updatedAt=now)
            tx.save("conversation", obj)
        return 201, obj

    # ------------------------------------------------------------ the rest

    async def _health(self, request: Request) -> tuple[int, Any]:
        return 200, {"status": "ok", "version": f"emulator-{__version__}"}

    async def _create_token(self, request: Request) -> tuple[int, Any]:
        values = validate(await _json(request), TOKEN_CREATE)
        if values.get("character") and self._store.peek("character", values["character"]) is None:
            raise EquosProblem(
                400, f"character references Character {values['character']}, which does not exist"
            )
        return 201, {"token": _access_token()}

    async def _freemium_usage(self, request: Request) -> tuple[int, Any]:
        # The SDK parses a bare number: seconds of conversation used.
        return 200, round(sum(self._ledger.used_ms(self._now_ms()).values()) / 1000, 3)

    async def _user_usage(self, request: Request) -> tuple[int, Any]:
        # Undocumented shape (the SDK ignores the body): seconds per client.
        per_client: dict[str, int] = {}
        for client, ms in self._ledger.used_ms(self._now_ms()).items():
            per_client[client or ""] = per_client.get(client or "", 0) + ms
        seconds = {client: round(ms / 1000, 3) for client, ms in sorted(per_client.items())}
        return 200, {"organizationId": ORGANIZATION_ID, "secondsByClient": seconds}


# ---------------------------------------------------------------- helpers


async def _json(request: Request) -> object:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return parse_json(raw)
    except BodyError as exc:
        raise EquosProblem(400, f"Body is not valid JSON: {exc}") from None


def _paging(query: Mapping[str, str]) -> tuple[int, int]:
    """skip/take as the API reads them; the SDK sends floats such as `20.0`."""
    errors: list[str] = []
    skip = _integer(query, "skip", 0, MAX_SKIP, errors)
    take = _integer(query, "take", DEFAULT_TAKE, MAX_TAKE, errors)
    if errors:
        raise EquosProblem(400, "; ".join(errors))
    return skip, take


def _integer(
    query: Mapping[str, str], name: str, default: int, maximum: int, errors: list[str]
) -> int:
    """An integer query parameter in 0..maximum; a problem goes to `errors`."""
    text = query.get(name)
    if text is None:
        return default
    try:
        value = float(text)  # never int(): "1" * 5000 would raise, 1e3 is fine
    except ValueError:
        errors.append(f"{name} must be a number conforming to the specified constraints")
        return default
    if math.isnan(value):
        errors.append(f"{name} must be an integer number")
    elif value < 0:
        errors.append(f"{name} must not be less than 0")
    elif value > maximum:
        errors.append(f"{name} must not be greater than {maximum}")
    elif value != int(value):
        errors.append(f"{name} must be an integer number")
    else:
        return int(value)
    return default


class _Encoded(bytes):
    """An answer body already encoded as JSON (a list page assembled from fragments)."""


def _encode_page(envelope: dict[str, Any], key: str, fragments: list[bytes]) -> _Encoded:
    """`{"skip":..,"take":..,"total":..,"<key>":[...]}`, byte for byte what dumps() gives."""
    head = dumps(envelope)[:-1]  # without the closing brace
    return _Encoded(head + b',"' + key.encode() + b'":[' + b",".join(fragments) + b"]}")


def _error_response(status: int, message: str) -> Response:
    return Response(equos_error(status, message), status, media_type="application/json")


def _too_large() -> Response:
    # The rest of the body is never read, so the connection cannot be reused.
    response = _error_response(413, f"Upload larger than {MAX_UPLOAD_BYTES} bytes")
    response.headers["connection"] = "close"
    return response


def _expired(conv: Mapping[str, Any], now_ms: int) -> bool:
    end_ms: int = parse_iso_ms(conv["startedAt"]) + round(conv["maxSeconds"] * 1000)
    return now_ms >= end_ms


def _access_token() -> str:
    # Opaque, JWT-looking, signed by nobody: the emulator runs no LiveKit.
    return "eyJhbGciOiJub25lIn0." + secrets.token_urlsafe(24) + "."
