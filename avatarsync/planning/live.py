"""Live state: what the platform has now, in the manifests' shape.

`fetch_live` makes one paged list call per kind (concurrently, filtered on the
environment's `client`), never one GET per resource. `normalise` turns an API
object into the canonical spec of `avatarsync.resources` (ids, timestamps and
expanded objects dropped, links kept as remote ids) so an unchanged resource
diffs as no-op; `api_body` is the way back, used by apply.

Optional strings compare with `""` and `None` as equal: several of them are
required on the wire (a brain's greetingMessage, a KB's description), so the
platform stores `""` where a manifest simply leaves the field out.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from avatarsync.resources import API_KINDS, REFERENCE_FIELDS, Kind

__all__ = [
    "ID_FIELDS",
    "LiveDocument",
    "LiveResource",
    "LiveState",
    "ResourceLister",
    "api_body",
    "comparable",
    "fetch_live",
    "natural_key",
    "normalise",
]

# Character spec field -> the API's id field.
ID_FIELDS: Mapping[str, str] = {
    "face": "faceId",
    "voice": "voiceId",
    "brain": "brainId",
    "knowledgeBase": "knowledgeBaseId",
}

# Optional strings where "" and None mean the same thing.
_OPTIONAL_STRINGS = {
    "instructions",
    "greetingMessage",
    "description",
    "elevenlabsAgentId",
}


class ResourceLister(Protocol):
    async def list_all(self, kind: Kind, *, client: str | None = None) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class LiveDocument:
    id: str
    name: str
    description: str | None
    size: int | None
    status: str | None


@dataclass(frozen=True)
class LiveResource:
    kind: Kind
    id: str
    spec: Mapping[str, Any]  # canonical; a character's links are remote ids
    created_at: str
    updated_at: str
    documents: tuple[LiveDocument, ...] = ()


@dataclass(frozen=True)
class LiveState:
    resources: Mapping[tuple[str, str], LiveResource]  # (kind, id)

    def get(self, kind: str, remote_id: str | None) -> LiveResource | None:
        if remote_id is None:
            return None
        return self.resources.get((kind, remote_id))

    def of_kind(self, kind: str) -> list[LiveResource]:
        """Oldest first, so every choice among equals is deterministic."""
        found = [r for (k, _), r in self.resources.items() if k == kind]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    def fingerprint(self) -> str:
        """Changes whenever any live resource appears, goes or is written."""
        items = sorted((k, i, r.updated_at) for (k, i), r in self.resources.items())
        return "sha256:" + hashlib.sha256(json.dumps(items).encode()).hexdigest()

    @classmethod
    def from_api(cls, objects: Iterable[tuple[Kind, Mapping[str, Any]]]) -> LiveState:
        resources = {}
        for kind, raw in objects:
            res = to_live_resource(kind, raw)
            resources[(kind.value, res.id)] = res
        return cls(resources)


async def fetch_live(lister: ResourceLister, client: str) -> LiveState:
    """One paged list per kind, all kinds at once. A failed list raises: a
    failed read must never look like an empty organisation."""
    results = await asyncio.gather(*(lister.list_all(k, client=client) for k in API_KINDS))
    return LiveState.from_api(
        (kind, raw)
        for kind, objects in zip(API_KINDS, results, strict=True)
        for raw in objects
        if raw.get("client") == client  # belt and braces: never consider others' resources
    )


def _opt(value: Any) -> Any:
    return None if value == "" else value


def normalise(kind: Kind | str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical spec of an API object (links as remote ids)."""
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
            for field, id_field in ID_FIELDS.items():
                spec[field] = raw.get(id_field)
            return spec
    raise ValueError(f"{kind} is not an API kind")


def to_live_resource(kind: Kind, raw: Mapping[str, Any]) -> LiveResource:
    documents: tuple[LiveDocument, ...] = ()
    if kind is Kind.KNOWLEDGE_BASE:
        documents = tuple(
            LiveDocument(
                id=d["id"],
                name=d.get("name", ""),
                description=_opt(d.get("description")),
                size=int(d["size"]) if d.get("size") is not None else None,
                status=d.get("status"),
            )
            for d in raw.get("documents") or ()
        )
    return LiveResource(
        kind=kind,
        id=raw["id"],
        spec=normalise(kind, raw),
        created_at=str(raw.get("createdAt", "")),
        updated_at=str(raw.get("updatedAt", "")),
        documents=documents,
    )


def comparable(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A spec with "" folded into None for optional strings, for comparison."""
    return {k: (_opt(v) if k in _OPTIONAL_STRINGS else v) for k, v in spec.items()}


def natural_key(kind: Kind | str, spec: Mapping[str, Any]) -> tuple[Any, ...]:
    """What identifies a resource when state does not (import, lost responses).

    Characters and knowledge bases by name; voices by identity+instructions;
    brains by content; faces by identity.
    """
    s = comparable(spec)
    match Kind(kind):
        case Kind.FACE:
            return (s["identity"],)
        case Kind.VOICE:
            return (s["identity"], s["instructions"])
        case Kind.BRAIN:
            return (s["instructions"], s["greetingMessage"])
        case Kind.KNOWLEDGE_BASE:
            return (s["displayName"],)
        case Kind.CHARACTER:
            return (s["displayName"],)
    raise ValueError(f"{kind} is not an API kind")


def api_body(
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
            for field, id_field in ID_FIELDS.items():
                body[id_field] = ids.get(field)
            if not for_update:
                body["livekitIdentity"] = spec["livekitIdentity"]
        case _:
            raise ValueError(f"{kind} is not an API kind")
    if client is not None and not for_update:
        body["client"] = client
    return body


assert set(ID_FIELDS) == set(REFERENCE_FIELDS)
