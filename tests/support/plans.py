"""Small builders for desired, live and state objects in plan tests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from avatarsync.planning.live import LiveState
from avatarsync.providers.equos import to_live
from avatarsync.resources import (
    REFERENCE_FIELDS,
    Address,
    DesiredResource,
    DesiredState,
    DocumentSpec,
    Kind,
    Position,
)
from avatarsync.state import State

CLIENT = "acme-test"
POS = Position("m.yaml", 1, 1)

DEFAULTS: dict[str, dict[str, Any]] = {
    "Face": {"identity": "tommy"},
    "Voice": {"identity": "Puck", "instructions": None},
    "Brain": {"instructions": "Be kind.", "greetingMessage": None},
    "KnowledgeBase": {"displayName": "FAQ", "description": None},
    "Character": {
        "displayName": "Tommy",
        "livekitIdentity": "tommy",
        "face": None,
        "voice": None,
        "brain": None,
        "knowledgeBase": None,
        "search": False,
        "elevenlabsAgentId": None,
    },
}


def res(
    kind: str,
    key: str,
    *,
    docs: tuple[DocumentSpec, ...] = (),
    owner: str | None = None,
    sensitive: frozenset[str] = frozenset(),
    **spec: Any,
) -> DesiredResource:
    full = {**DEFAULTS[kind], **spec}
    refs = {}
    if kind == "Character":
        for name, target_kind in REFERENCE_FIELDS.items():
            if full[name] is not None:
                refs[name] = Address(target_kind.value, full[name])
    return DesiredResource(
        address=Address(kind, key),
        spec=full,
        position=POS,
        refs=refs,
        documents=docs,
        inline_owner=Address("Character", owner) if owner else None,
        sensitive_fields=sensitive,
    )


def doc(name: str, content: bytes, tmp: Path | None = None) -> DocumentSpec:
    path = (tmp or Path("/nonexistent")) / name
    if tmp is not None:
        path.write_bytes(content)
    return DocumentSpec(
        name=name,
        description=None,
        mime_type="text/markdown",
        path=path,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
    )


def desired(*resources: DesiredResource, env: str = "test") -> DesiredState:
    return DesiredState(env, CLIENT, {r.address: r for r in resources})


_counter = iter(range(10**6))


def raw(kind: str, id: str, *, updated: str = "2026-01-01T00:00:00.000Z", **fields: Any) -> dict:
    """An API object as the Equos list endpoints return it."""
    n = next(_counter)
    base: dict[str, Any] = {
        "id": id,
        "organizationId": "org",
        "client": CLIENT,
        "createdAt": f"2026-01-01T00:00:{n % 60:02d}.{n:06d}Z",
        "updatedAt": updated,
    }
    match kind:
        case "Face":
            base |= {"identity": "tommy"}
        case "Voice":
            base |= {"identity": "Puck", "instructions": ""}
        case "Brain":
            base |= {"instructions": "Be kind.", "greetingMessage": ""}
        case "KnowledgeBase":
            base |= {"name": "FAQ", "description": "", "documents": []}
        case "Character":
            base |= {
                "name": "Tommy",
                "livekitIdentity": "tommy",
                "search": False,
                "faceId": None,
                "voiceId": None,
                "brainId": None,
                "knowledgeBaseId": None,
                "elevenlabsAgentId": None,
            }
    return base | fields


def live(*objects: tuple[str, dict]) -> LiveState:
    return LiveState.of(to_live(Kind(k), o) for k, o in objects)


def state(**ids: str) -> State:
    """state(Brain__support="b1") -> a State mapping Brain/support to b1."""
    from avatarsync.state import ResourceState

    s = State(environment="test", client=CLIENT)
    for name, remote_id in ids.items():
        kind, key = name.split("__", 1)
        s.resources[Address(kind, key.replace("_", "-"))] = ResourceState(remote_id)
    return s
