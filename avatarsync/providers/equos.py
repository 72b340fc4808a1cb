"""The Equos v3 client: every call the planner, apply and sessions make.

Knows URLs, verbs, wire names and the API's quirks (the knowledge-base list
key is `items`; faces and knowledge bases cannot be updated; characters are
updated with PUT, voices and brains with PATCH). Two layers:

- the wire calls (`list_all`, `create`, `get`, ...) take and return the raw
  camelCase dicts, for tests and for checking a wire detail;
- the resource calls (`list_resources`, `create_resource`, ...) speak the
  canonical specs of `avatarsync.resources` (`displayName`, links by id) and
  return `LiveResource`s: this is what the planner and apply use, so the
  mapping to `name`, `faceId`, ... lives here and nowhere else.

Retries, limits and errors come from `RestClient`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from avatarsync.catalog import EQUOS_DEFAULT_URL
from avatarsync.errors import NotFoundError, ServerError
from avatarsync.progress import EventSink, PageRead
from avatarsync.providers.http import PlatformClient
from avatarsync.resources import (
    REFERENCE_FIELDS,
    DocumentUpload,
    Kind,
    LiveDocument,
    LiveResource,
)

__all__ = [
    "DEFAULT_URL",
    "PAGE_SIZE",
    "EquosClient",
    "to_body",
    "to_live",
    "to_spec",
]

DEFAULT_URL: Final = EQUOS_DEFAULT_URL
PAGE_SIZE: Final = 50  # the API's maximum `take`

T = TypeVar("T")


@dataclass(frozen=True)
class _Endpoint:
    path: str  # collection path
    list_key: str  # where a list answer keeps its items
    update_method: str | None  # None: the API cannot update this kind


_ENDPOINTS: Final[Mapping[Kind, _Endpoint]] = {
    Kind.FACE: _Endpoint("/v3/faces", "faces", None),
    Kind.VOICE: _Endpoint("/v3/voices", "voices", "PATCH"),
    Kind.BRAIN: _Endpoint("/v3/brains", "brains", "PATCH"),
    Kind.KNOWLEDGE_BASE: _Endpoint("/v3/knowledge-bases", "items", None),
    Kind.CHARACTER: _Endpoint("/v3/characters", "characters", "PUT"),
}
_CONVERSATIONS: Final = _Endpoint("/v3/conversations", "conversations", None)


def _endpoint(kind: Kind) -> _Endpoint:
    try:
        return _ENDPOINTS[Kind(kind)]
    except (KeyError, ValueError):
        raise ValueError(f"{kind} is not an Equos API resource") from None


class EquosClient(PlatformClient):
    """Async client for the Equos v3 REST API (header `x-api-key`).

    Use as `async with EquosClient(url, Secret(key)) as client:`. Safe to
    share between concurrent tasks; at most `max_concurrency` requests are in
    flight at once, whatever the number of callers.
    """

    AUTH_HEADER = "x-api-key"

    # -- resources -----------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        return await self._object("GET", "/v3/health")

    async def list_all(self, kind: Kind, *, client: str | None = None) -> list[dict[str, Any]]:
        """Every resource of `kind` (optionally only those with this `client`)."""
        return await self._list_all(_endpoint(kind), client)

    async def get(self, kind: Kind, id: str) -> dict[str, Any]:
        path = _endpoint(kind).path
        return await self._object("GET", path + "/{id}", path_params={"id": id})

    async def create(self, kind: Kind, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST: not idempotent. An unknown outcome raises `AmbiguousWriteError`."""
        return await self._object("POST", _endpoint(kind).path, json_body=dict(body))

    async def update(self, kind: Kind, id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        endpoint = _endpoint(kind)
        if endpoint.update_method is None:
            raise ValueError(
                f"the Equos API cannot update a {kind}: replace it "
                "(create the new one, relink, delete the old one)"
            )
        return await self._object(
            endpoint.update_method,
            endpoint.path + "/{id}",
            path_params={"id": id},
            json_body=dict(body),
        )

    async def delete(self, kind: Kind, id: str) -> dict[str, Any]:
        """DELETE (idempotent on the wire; a second call answers 404)."""
        path = _endpoint(kind).path
        return await self._object("DELETE", path + "/{id}", path_params={"id": id})

    # -- knowledge-base documents -------------------------------------------

    async def add_document(
        self, kb_id: str, *, name: str, description: str | None, mime_type: str
    ) -> dict[str, Any]:
        """Register a document; answers `{document, uploadUrl, expireAt}`. Not idempotent."""
        # The API (and the SDK) require `description` as a string.
        body = {"name": name, "description": description or "", "mimeType": mime_type}
        return await self._object(
            "POST",
            "/v3/knowledge-bases/{id}/documents",
            path_params={"id": kb_id},
            json_body=body,
        )

    async def upload_document(self, upload_url: str, content: bytes, mime_type: str) -> None:
        """PUT the bytes to the upload URL. The URL is its own credential, so the
        API key is not sent there (it may be another host, e.g. object storage)."""
        await self._http.request(
            "PUT",
            "{uploadUrl}",
            url=upload_url,
            content=content,
            headers={"content-type": mime_type},
            authenticate=False,
        )

    async def index_document(self, kb_id: str, doc_id: str) -> dict[str, Any]:
        return await self._object(
            "PATCH",
            "/v3/knowledge-bases/{id}/documents/{doc}/index",
            path_params={"id": kb_id, "doc": doc_id},
        )

    async def delete_document(self, kb_id: str, doc_id: str) -> dict[str, Any]:
        return await self._object(
            "DELETE",
            "/v3/knowledge-bases/{id}/documents/{doc}",
            path_params={"id": kb_id, "doc": doc_id},
        )

    # -- conversations and tokens -------------------------------------------

    async def start_conversation(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Start a (billed) conversation. Not idempotent: whoever calls this
        must stop the conversation, on success and failure alike."""
        return await self._object("POST", _CONVERSATIONS.path, json_body=dict(body))

    async def get_conversation(self, id: str) -> dict[str, Any]:
        return await self._object("GET", "/v3/conversations/{id}", path_params={"id": id})

    async def list_conversations(self, *, client: str | None = None) -> list[dict[str, Any]]:
        return await self._list_all(_CONVERSATIONS, client)

    async def stop_conversation(self, id: str) -> dict[str, Any]:
        """Stop a conversation. A POST, but stopping twice is harmless: retried."""
        return await self._object(
            "POST", "/v3/conversations/{id}/stop", path_params={"id": id}, idempotent=True
        )

    async def create_token(self, body: Mapping[str, Any]) -> dict[str, Any]:
        # Minting a second short-lived token is harmless, so this may be retried.
        return await self._object("POST", "/v3/tokens", json_body=dict(body), idempotent=True)

    # -- resources in the canonical shape ------------------------------------

    async def list_resources(self, kind: Kind, *, client: str) -> list[LiveResource]:
        """Every resource of `kind` tagged with `client`, canonical."""
        return [to_live(kind, raw) for raw in await self.list_all(kind, client=client)]

    async def get_resource(self, kind: Kind, id: str) -> LiveResource | None:
        """The resource, or None when it is gone (404, or the SDK's null body)."""
        try:
            raw = await self._http.request_json(
                "GET", _endpoint(kind).path + "/{id}", path_params={"id": id}
            )
        except NotFoundError:
            return None
        return None if raw is None else to_live(kind, _object_or_error(raw, "GET", kind))

    async def create_resource(
        self,
        kind: Kind,
        spec: Mapping[str, Any],
        *,
        link_ids: Mapping[str, str | None] | None = None,
        client: str,
    ) -> LiveResource:
        """POST a canonical spec. An unknown outcome raises `AmbiguousWriteError`."""
        raw = await self.create(kind, to_body(kind, spec, link_ids=link_ids, client=client))
        return to_live(kind, raw)

    async def update_resource(
        self,
        kind: Kind,
        id: str,
        spec: Mapping[str, Any],
        *,
        link_ids: Mapping[str, str | None] | None = None,
    ) -> LiveResource:
        body = to_body(kind, spec, link_ids=link_ids, for_update=True)
        endpoint = _endpoint(kind)
        if endpoint.update_method is None:
            raise ValueError(f"the Equos API cannot update a {kind}: replace it")
        raw = await self._http.request_json(
            endpoint.update_method,
            endpoint.path + "/{id}",
            path_params={"id": id},
            json_body=body,
        )
        if raw is None:  # the SDK's answer for an unknown id: 200 with a null body
            raise NotFoundError(
                f"{kind} {id} no longer exists (deleted outside avatarsync?); plan again",
                method=endpoint.update_method,
                path=endpoint.path + "/{id}",
                status=200,
            )
        return to_live(kind, _object_or_error(raw, endpoint.update_method, kind))

    async def delete_resource(self, kind: Kind, id: str) -> None:
        """Delete; an object already gone (404, or a null body) is not an error."""
        path = _endpoint(kind).path
        try:
            await self._http.request_json("DELETE", path + "/{id}", path_params={"id": id})
        except NotFoundError:
            return

    async def register_document(
        self, kb_id: str, *, name: str, description: str | None, mime_type: str
    ) -> DocumentUpload:
        """Register a document; returns its id and the URL to PUT its bytes to."""
        answer = await self.add_document(
            kb_id, name=name, description=description, mime_type=mime_type
        )
        document = answer.get("document")
        upload_url = answer.get("uploadUrl")
        if not isinstance(document, dict) or not isinstance(upload_url, str):
            raise ServerError(
                "a document answer without 'document' or 'uploadUrl'",
                method="POST",
                path="/v3/knowledge-bases/{id}/documents",
            )
        return DocumentUpload(_id_of(document, "POST", Kind.KNOWLEDGE_BASE), upload_url)

    async def remove_document(self, kb_id: str, doc_id: str) -> None:
        """Delete a document; one already gone is not an error."""
        try:
            await self._http.request_json(
                "DELETE",
                "/v3/knowledge-bases/{id}/documents/{doc}",
                path_params={"id": kb_id, "doc": doc_id},
            )
        except NotFoundError:
            return

    # -- helpers -------------------------------------------------------------

    async def _object(self, method: str, template: str, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = await self._http.request_json(
            method, template, expect=dict, **kwargs
        )
        return data

    async def _page(self, endpoint: _Endpoint, skip: int, client: str | None) -> dict[str, Any]:
        params: dict[str, str | int] = {"take": PAGE_SIZE, "skip": skip}
        if client is not None:
            params["client"] = client
        page = await self._object("GET", endpoint.path, params=params)
        items = page.get(endpoint.list_key)
        total = page.get("total")
        if (
            not isinstance(items, list)
            or not all(isinstance(item, dict) for item in items)
            or not isinstance(total, int)
        ):
            raise ServerError(
                f"not a list answer (expected 'total' and an {endpoint.list_key!r} array of objects)",
                method="GET",
                path=endpoint.path,
            )
        return page

    async def _list_all(self, endpoint: _Endpoint, client: str | None) -> list[dict[str, Any]]:
        """Page through a collection: the first page tells `total`, then every
        other page is fetched at once (the semaphore bounds them). Offset paging
        is not a snapshot: an item moving between pages can appear twice
        (deduplicated by id, first wins) and a growing total is chased with
        further pages; a deletion during the walk can still hide one item."""
        first = await self._page(endpoint, 0, client)
        pages = [first]
        fetched = PAGE_SIZE
        total = _total(first)
        read = _PagesRead(self.on_event, endpoint.path, total)
        while fetched < total:
            offsets = range(fetched, total, PAGE_SIZE)
            read.expect(total)
            more = await _gather(
                [read.counted(self._page(endpoint, skip, client)) for skip in offsets]
            )
            pages.extend(more)
            fetched = offsets[-1] + PAGE_SIZE
            total = max(total, *(_total(page) for page in more))
        seen: set[object] = set()
        items: list[dict[str, Any]] = []
        for page in pages:
            for item in page[endpoint.list_key]:
                key = item.get("id")
                if key is not None and key in seen:
                    continue
                seen.add(key)
                items.append(item)
        return items


class _PagesRead:
    """Reports pages of one collection as they arrive (PageRead events)."""

    def __init__(self, sink: EventSink | None, path: str, total: int) -> None:
        self.sink, self.path = sink, path
        self.pages = 1
        self.total = _pages(total)
        self._report()

    def expect(self, total: int) -> None:
        self.total = max(self.total, _pages(total))

    async def counted(self, page: Coroutine[Any, Any, T]) -> T:
        result = await page
        self.pages += 1
        self._report()
        return result

    def _report(self) -> None:
        if self.sink is not None:
            self.sink(PageRead(self.path, self.pages, self.total))


def _pages(total: int) -> int:
    return max(1, -(-total // PAGE_SIZE))


def _total(page: Mapping[str, Any]) -> int:
    return int(page["total"])  # checked by `_page`


async def _gather(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run concurrently; on the first failure cancel the rest and raise that
    failure itself (callers expect an ApiError, not an ExceptionGroup)."""
    failure: BaseException | None = None
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coro) for coro in coros]
    except BaseExceptionGroup as errors:
        failure = errors.exceptions[0]
        while isinstance(failure, BaseExceptionGroup):
            failure = failure.exceptions[0]
    if failure is not None:
        # Raised outside the `except`, so it keeps its own __cause__ and gains
        # no __context__ pointing back at the group.
        raise failure
    return [task.result() for task in tasks]


# --- the wire mapping: canonical spec <-> Equos JSON --------------------------------

# Character spec field -> the API's id field.
_ID_FIELDS: Final[Mapping[str, str]] = {
    "face": "faceId",
    "voice": "voiceId",
    "brain": "brainId",
    "knowledgeBase": "knowledgeBaseId",
}
assert set(_ID_FIELDS) == set(REFERENCE_FIELDS)


def _opt(value: Any) -> Any:
    return None if value == "" else value


def to_spec(kind: Kind | str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical spec of an API object (a character's links as remote ids)."""
    match Kind(kind):
        case Kind.FACE:
            return {"identity": raw.get("identity")}
        case Kind.VOICE:
            return {"identity": raw.get("identity"), "instructions": _opt(raw.get("instructions"))}
        case Kind.BRAIN:
            return {
                "instructions": raw.get("instructions"),
                "greetingMessage": _opt(raw.get("greetingMessage")),
            }
        case Kind.KNOWLEDGE_BASE:
            return {"displayName": raw.get("name"), "description": _opt(raw.get("description"))}
        case Kind.CHARACTER:
            spec = {
                "displayName": raw.get("name"),
                "livekitIdentity": raw.get("livekitIdentity"),
                "search": bool(raw.get("search") or False),
                "elevenlabsAgentId": _opt(raw.get("elevenlabsAgentId")),
            }
            for field, id_field in _ID_FIELDS.items():
                spec[field] = raw.get(id_field)
            return spec
    raise ValueError(f"{kind} is not an API kind")


def to_live(kind: Kind, raw: Mapping[str, Any]) -> LiveResource:
    """An API object as a `LiveResource` (its documents too, for a knowledge base)."""
    documents: tuple[LiveDocument, ...] = ()
    if kind is Kind.KNOWLEDGE_BASE:
        documents = tuple(
            LiveDocument(
                id=_id_of(d, "GET", kind),
                name=str(d.get("name") or ""),
                description=_opt(d.get("description")),
                size=_size(d.get("size")),
                status=d.get("status") if isinstance(d.get("status"), str) else None,
            )
            for d in raw.get("documents") or ()
            if isinstance(d, dict)
        )
    client = raw.get("client")
    return LiveResource(
        kind=kind,
        id=_id_of(raw, "GET", kind),
        spec=to_spec(kind, raw),
        created_at=str(raw.get("createdAt", "")),
        updated_at=str(raw.get("updatedAt", "")),
        client=client if isinstance(client, str) else None,
        documents=documents,
    )


def to_body(
    kind: Kind | str,
    spec: Mapping[str, Any],
    *,
    link_ids: Mapping[str, str | None] | None = None,
    client: str | None = None,
    for_update: bool = False,
) -> dict[str, Any]:
    """The request body for a create (with `client`) or an update.

    `link_ids` maps a character's reference fields to remote ids; required
    strings the platform insists on are sent as "" when the manifest leaves
    them unset.
    """
    body: dict[str, Any]
    match Kind(kind):
        case Kind.FACE:
            body = {"identity": spec["identity"]}
        case Kind.VOICE:
            body = {"identity": spec["identity"], "instructions": spec.get("instructions") or ""}
        case Kind.BRAIN:
            body = {
                "instructions": spec["instructions"] or "",
                "greetingMessage": spec.get("greetingMessage") or "",
            }
        case Kind.KNOWLEDGE_BASE:
            body = {"name": spec["displayName"], "description": spec.get("description") or ""}
        case Kind.CHARACTER:
            ids = link_ids or {}
            body = {
                "name": spec["displayName"],
                "search": bool(spec.get("search")),
                "elevenlabsAgentId": spec.get("elevenlabsAgentId"),
            }
            for field, id_field in _ID_FIELDS.items():
                body[id_field] = ids.get(field)
            if not for_update:
                body["livekitIdentity"] = spec["livekitIdentity"]
        case _:
            raise ValueError(f"{kind} is not an API kind")
    if client is not None and not for_update:
        body["client"] = client
    return body


def _id_of(raw: Mapping[str, Any], method: str, kind: Kind) -> str:
    value = raw.get("id")
    if not isinstance(value, str) or not value:
        raise ServerError(
            f"a {kind} object without an id", method=method, path=_endpoint(kind).path
        )
    return value


def _size(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _object_or_error(raw: Any, method: str, kind: Kind) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ServerError(
            f"expected an object, got {type(raw).__name__}",
            method=method,
            path=_endpoint(kind).path,
        )
    return raw
