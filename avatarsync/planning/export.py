"""export: a live organisation -> manifests and state, to adopt the tool in one step.

A team that clicked its characters together in the web studio runs
`avatarsync export`, commits the files, and from then on plans against them:
the state written beside them maps every generated key to the object it came
from, so the first plan shows no changes.

Keys are made from what people recognise: a character's name; a brain, voice
or face used by exactly one character is named after it (`tommy-brain`), a
shared one after what it is (`puck-voice`, `brain-2`). Knowledge-base document
contents cannot be downloaded through the API, so exported knowledge bases
list their live documents in a comment and leave `documents` out, which
means "not managed by avatarsync" until files are added.

A field that held a secret when it was applied (the environment's state says
which) is never written out: it is exported as `${env.AVATARSYNC_SECRET_…}`,
listed under `env.secret` in the exported project file, and a note says which
variable to set.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from avatarsync.manifests.loader import dump_yaml
from avatarsync.planning.live import LiveState
from avatarsync.resources import REFERENCE_FIELDS, Address, Kind, LiveResource

__all__ = ["ExportResult", "export_manifests"]

_SCHEMA_LINE = "# yaml-language-server: $schema={schemas}/manifest.schema.json\n"

_FILES = {
    Kind.FACE: "shared/faces.yaml",
    Kind.VOICE: "shared/voices.yaml",
    Kind.BRAIN: "shared/brains.yaml",
    Kind.KNOWLEDGE_BASE: "shared/knowledge-bases.yaml",
}

_SUFFIX = {Kind.FACE: "face", Kind.VOICE: "voice", Kind.BRAIN: "brain"}


@dataclass
class ExportResult:
    files: dict[str, str] = field(default_factory=dict)  # relative path -> YAML text
    ids: dict[Address, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # Variables the exported manifests read for fields that held a secret.
    secret_variables: list[str] = field(default_factory=list)
    # Address -> the fields exported as a secret variable (state keeps masking them).
    sensitive: dict[Address, frozenset[str]] = field(default_factory=dict)


def _slug(text: str | None, fallback: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")[:50]
    if not slug or not slug[0].isalnum():
        slug = fallback
    return slug


class _Keys:
    def __init__(self) -> None:
        self.used: dict[str, set[str]] = defaultdict(set)

    def take(self, kind: Kind, wanted: str) -> str:
        key, n = wanted, 2
        while key in self.used[kind]:
            key, n = f"{wanted}-{n}", n + 1
        self.used[kind].add(key)
        return key


def export_manifests(
    live: LiveState,
    *,
    schemas: str = "../schemas",
    secret_fields: Mapping[tuple[str, str], frozenset[str]] | None = None,
) -> ExportResult:
    """Turn live resources (already filtered on the environment's client) into files.

    `secret_fields` maps (kind, remote id) to the fields that held a secret
    when they were applied; their values are never written.
    """
    result = ExportResult()
    secrets = secret_fields or {}
    keys = _Keys()
    characters = live.of_kind(Kind.CHARACTER)
    char_keys = {
        c.id: keys.take(Kind.CHARACTER, _slug(c.spec["displayName"], "character"))
        for c in characters
    }

    linked_by: dict[tuple[str, str], list[str]] = defaultdict(list)
    for c in characters:
        for field_name in REFERENCE_FIELDS:
            if c.spec.get(field_name):
                linked_by[(field_name, c.spec[field_name])].append(char_keys[c.id])

    key_of: dict[tuple[str, str], str] = {}
    docs_by_kind: dict[Kind, list[dict[str, Any]]] = defaultdict(list)
    for field_name, kind in REFERENCE_FIELDS.items():
        for res in live.of_kind(kind):
            owners = linked_by.get((field_name, res.id), [])
            key = keys.take(kind, _leaf_key(kind, res, owners))
            key_of[(kind.value, res.id)] = key
            result.ids[Address(kind.value, key)] = res.id
            document = _document(kind, key, res)
            _hide_secrets(
                result,
                Address(kind.value, key),
                document["spec"],
                secrets.get((kind.value, res.id)),
            )
            docs_by_kind[kind].append(document)
            if kind is Kind.KNOWLEDGE_BASE and res.documents:
                names = ", ".join(sorted(d.name for d in res.documents))
                result.notes.append(
                    f"KnowledgeBase/{key}: documents ({names}) cannot be downloaded through the "
                    "API; add their files under `documents:` to manage them"
                )

    header = _SCHEMA_LINE.format(schemas=schemas)
    for kind, path in _FILES.items():
        if docs_by_kind[kind]:
            result.files[path] = (
                header
                + _comments(kind, live, key_of)
                + dump_yaml(docs_by_kind[kind], documents=True)
            )

    for c in characters:
        key = char_keys[c.id]
        result.ids[Address(Kind.CHARACTER.value, key)] = c.id
        spec: dict[str, Any] = {
            "displayName": c.spec["displayName"],
            "livekitIdentity": c.spec["livekitIdentity"],
        }
        for field_name, kind in REFERENCE_FIELDS.items():
            linked = c.spec.get(field_name)
            if linked is None:
                continue
            target = key_of.get((kind.value, linked))
            if target is None:
                result.notes.append(
                    f"Character/{key}: its {field_name} {linked} is not tagged with this "
                    "environment's client, so it cannot be managed; the link is left out"
                )
                continue
            spec[field_name] = target
        spec["search"] = bool(c.spec.get("search"))
        if c.spec.get("elevenlabsAgentId"):
            spec["elevenlabsAgentId"] = c.spec["elevenlabsAgentId"]
        _hide_secrets(
            result,
            Address(Kind.CHARACTER.value, key),
            spec,
            secrets.get((Kind.CHARACTER.value, c.id)),
        )
        doc = {"kind": "Character", "name": key, "spec": spec}
        result.files[f"characters/{key}.yaml"] = header + dump_yaml(doc)
    return result


def _hide_secrets(
    result: ExportResult, address: Address, spec: dict[str, Any], fields: frozenset[str] | None
) -> None:
    hidden = frozenset(name for name in fields or () if spec.get(name) is not None)
    for name in sorted(hidden):
        variable = re.sub(r"[^A-Z0-9]+", "_", f"AVATARSYNC_SECRET_{address.key}_{name}".upper())
        spec[name] = f"${{env.{variable}}}"
        result.secret_variables.append(variable)
        result.notes.append(
            f"{address}: {name} held a secret when it was applied, so its value is not "
            f"exported; set {variable} (in the environment or .env) before planning"
        )
    if hidden:
        result.sensitive[address] = hidden


def _leaf_key(kind: Kind, res: LiveResource, owners: list[str]) -> str:
    if kind is Kind.KNOWLEDGE_BASE:
        return _slug(res.spec.get("displayName"), "knowledge-base")
    if len(owners) == 1:
        return f"{owners[0]}-{_SUFFIX[kind]}"
    if kind is Kind.VOICE:
        return f"{_slug(res.spec.get('identity'), 'voice')}-voice"
    if kind is Kind.FACE:
        return f"{_slug(res.spec.get('identity'), 'face')}-face"
    return _SUFFIX[kind]


def _document(kind: Kind, key: str, res: LiveResource) -> dict[str, Any]:
    spec = {k: v for k, v in res.spec.items() if v is not None}
    if kind is Kind.BRAIN:
        spec.setdefault("greetingMessage", "")
    return {"kind": kind.value, "name": key, "spec": spec}


def _comments(kind: Kind, live: LiveState, key_of: Mapping[tuple[str, str], str]) -> str:
    if kind is not Kind.KNOWLEDGE_BASE:
        return ""
    lines = []
    for res in live.of_kind(kind):
        for d in sorted(res.documents, key=lambda d: d.name):
            lines.append(
                f"# {key_of[(kind.value, res.id)]}: live document {d.name} ({d.size} bytes)\n"
            )
    return "".join(lines)
