"""Live state: what the platform has now, in the manifests' shape.

`fetch_live` makes one paged list call per kind (concurrently, filtered on the
environment's `client`), never one GET per resource. The provider turns each
API object into a `LiveResource` with the canonical spec of
`avatarsync.resources` (ids, timestamps and expanded objects dropped, links
kept as remote ids), so an unchanged resource diffs as no-op.

Optional strings compare with `""` and `None` as equal (`comparable`):
several of them are required on the wire (a brain's greetingMessage, a KB's
description), so the platform stores `""` where a manifest simply leaves the
field out.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from avatarsync.resources import API_KINDS, Kind, LiveResource, comparable

__all__ = [
    "LiveState",
    "ResourceLister",
    "comparable",
    "fetch_live",
    "natural_key",
]


class ResourceLister(Protocol):
    async def list_resources(self, kind: Kind, *, client: str) -> list[LiveResource]: ...


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
    def of(cls, resources: Iterable[LiveResource]) -> LiveState:
        return cls({(r.kind.value, r.id): r for r in resources})


async def fetch_live(lister: ResourceLister, client: str) -> LiveState:
    """One paged list per kind, all kinds at once. A failed list raises: a
    failed read must never look like an empty organisation."""
    results = await asyncio.gather(*(lister.list_resources(k, client=client) for k in API_KINDS))
    return LiveState.of(
        resource
        for resources in results
        for resource in resources
        if resource.client == client  # belt and braces: never consider others' resources
    )


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
