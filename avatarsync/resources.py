"""The shared vocabulary: resource kinds, addresses and the desired state.

This is where the two halves of the flow meet. The manifest side
(loader → manifest → templating → refs) produces a `DesiredState` for one
environment; the plan side (providers → diff → plan → apply) consumes it.
Nothing here does I/O.

Canonical `spec` fields per kind (every field present, defaults applied,
`None` meaning "not set"; references hold the *key* of the target):

    Face           identity
    Voice          identity, instructions
    Brain          instructions, greetingMessage
    KnowledgeBase  displayName, description          (+ `documents`)
    Character      displayName, livekitIdentity, face, voice, brain,
                   knowledgeBase, search, elevenlabsAgentId

Live resources (`LiveResource`) carry the same canonical spec, made from the
API's objects by the provider (a character's links are then remote ids), so
nothing past `providers/` ever sees a wire field name.

Inline faces/voices/brains (written inside one character) get the key
`<character>.<field>` (e.g. `tommy.brain`); user keys cannot contain a dot,
so the two never collide.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "API_KINDS",
    "KEY_PATTERN",
    "OPTIONAL_STRINGS",
    "REFERENCE_FIELDS",
    "Address",
    "AgentProfile",
    "ByokSettings",
    "ConversationTest",
    "DesiredResource",
    "DesiredState",
    "DocumentSpec",
    "DocumentUpload",
    "Kind",
    "LiveDocument",
    "LiveResource",
    "Position",
    "Preset",
    "PresetInput",
    "TestTurn",
    "comparable",
]


class Kind(StrEnum):
    FACE = "Face"
    VOICE = "Voice"
    BRAIN = "Brain"
    KNOWLEDGE_BASE = "KnowledgeBase"
    CHARACTER = "Character"
    CONVERSATION_PRESET = "ConversationPreset"
    AGENT_PROFILE = "AgentProfile"  # Avatarium: not an API resource either
    CONVERSATION_TEST = "ConversationTest"


# Kinds that exist as resources on the Equos API, leaves first.
API_KINDS: tuple[Kind, ...] = (
    Kind.FACE,
    Kind.VOICE,
    Kind.BRAIN,
    Kind.KNOWLEDGE_BASE,
    Kind.CHARACTER,
)

# Character spec field -> kind it references.
REFERENCE_FIELDS: Mapping[str, Kind] = {
    "face": Kind.FACE,
    "voice": Kind.VOICE,
    "brain": Kind.BRAIN,
    "knowledgeBase": Kind.KNOWLEDGE_BASE,
}

# A user-written key: lowercase-friendly, no dots (dots mark inline keys).
KEY_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


class Address(NamedTuple):
    """`Kind/key`: how a resource is named in plans, state and --target.
    (A named tuple: it keys every index of a plan, so its hash and equality
    run in C.)"""

    kind: str
    key: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.key}"

    @classmethod
    def parse(cls, text: str) -> Address:
        kind, sep, key = text.partition("/")
        if not sep or not kind or not key:
            raise ValueError(f"expected Kind/key, got {text!r}")
        return cls(kind, key)

    @classmethod
    def parse_kind_any_case(cls, text: str) -> Address:
        """`Kind/key` as people type it on a command line: the kind in any case
        (`character/tommy`), the key exactly. ValueError names the kinds."""
        address = cls.parse(text)
        kinds = {kind.value.lower(): kind.value for kind in Kind}
        kind = kinds.get(address.kind.lower())
        if kind is None:
            raise ValueError(
                f"unknown kind '{address.kind}' in '{text}'; expected one of: "
                + ", ".join(k.value for k in Kind)
            )
        return cls(kind, address.key)


class Position(NamedTuple):
    """Where a value was written: 1-based line and column. (A named tuple: the
    loader makes one per value, tens of thousands per plan.)"""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class DocumentSpec:
    """A knowledge-base document: a file in the repo, identified by `name`."""

    name: str
    description: str | None
    mime_type: str
    path: Path  # absolute
    sha256: str  # of the file's bytes: a new hash means re-upload
    size: int
    position: Position | None = None
    sensitive_description: bool = False  # came from a secret: masked wherever shown


# Optional strings where "" and None mean the same thing: several are required
# on the wire (a brain's greetingMessage, a KB's description), so the platform
# stores "" where a manifest simply leaves the field out.
OPTIONAL_STRINGS = frozenset(
    {"instructions", "greetingMessage", "description", "elevenlabsAgentId"}
)


def comparable(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A spec with "" folded into None for optional strings, for comparison."""
    return {k: (None if v == "" and k in OPTIONAL_STRINGS else v) for k, v in spec.items()}


@dataclass(frozen=True)
class DesiredResource:
    """One API resource as the manifests want it in one environment."""

    address: Address
    spec: Mapping[str, Any]
    position: Position
    field_positions: Mapping[str, Position] = field(default_factory=dict)
    refs: Mapping[str, Address] = field(default_factory=dict)
    documents: tuple[DocumentSpec, ...] = ()
    # False when a knowledge base leaves `documents` out: its live documents
    # are then neither uploaded nor deleted (e.g. after `export`).
    documents_managed: bool = True
    inline_owner: Address | None = None
    # Fields whose value came from a secret source: masked in every output.
    sensitive_fields: frozenset[str] = frozenset()

    @property
    def kind(self) -> str:
        return self.address.kind

    @cached_property
    def depends_on(self) -> tuple[Address, ...]:
        """What it links, sorted: applied before it."""
        return tuple(sorted(set(self.refs.values())))

    @cached_property
    def fingerprint(self) -> str:
        """What is applied, as a hash: the spec, the links by key and the documents'
        content. State keeps it; computed once per resource."""
        payload = {
            "spec": comparable(self.spec),
            "documentsManaged": self.documents_managed,
            "documents": sorted(
                (d.name, d.description or "", d.mime_type, d.sha256) for d in self.documents
            ),
        }
        blob = json.dumps(payload, sort_keys=True, default=str)
        return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()

    @property
    def key(self) -> str:
        return self.address.key


@dataclass(frozen=True)
class PresetInput:
    """A value a preset's caller supplies: required, or with a default."""

    name: str
    required: bool = False
    default: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class Preset:
    """A ConversationPreset: a session recipe, not an API resource."""

    key: str
    character: str
    max_seconds: int | None
    prompt_ctx: str | None
    prompt_template_vars: Mapping[str, str]  # raw jinja2 templates
    position: Position
    field_positions: Mapping[str, Position] = field(default_factory=dict)
    # None: the preset declares no inputs (caller values are not checked).
    inputs: Mapping[str, PresetInput] | None = None


@dataclass(frozen=True)
class ByokSettings:
    """Bring-your-own-key settings of a profile. Only the *name* of the variable
    holding the key: the key itself is read when a conversation starts."""

    provider: str
    api_key_env: str
    model: str | None = None
    base_url: str | None = None


@dataclass(frozen=True)
class AgentProfile:
    """An Avatarium agent: avatar preset, AI provider, system prompt (substituted)."""

    key: str
    avatar_id: str
    provider: str | None
    system_prompt: str
    byok: ByokSettings | None
    position: Position
    field_positions: Mapping[str, Position] = field(default_factory=dict)
    # Fields whose value came from a secret variable: masked wherever shown.
    sensitive_fields: frozenset[str] = frozenset()


@dataclass(frozen=True)
class TestTurn:
    """One `say:` of a conversation test and what its reply must satisfy."""

    say: str
    contains: tuple[str, ...] = ()
    not_contains: tuple[str, ...] = ()
    matches: str | None = None  # a regular expression, searched in the reply
    max_first_chunk_seconds: float | None = None
    max_seconds: float | None = None
    position: Position | None = None


@dataclass(frozen=True)
class ConversationTest:
    """A conversation test: turns against an AgentProfile, or a start/check/stop
    smoke of an Equos ConversationPreset (`preset`)."""

    key: str
    profile: str | None
    preset: str | None
    turns: tuple[TestTurn, ...]
    vars: Mapping[str, Any]
    timeout_seconds: float
    position: Position


@dataclass(frozen=True)
class DesiredState:
    """Everything the manifests want in one environment, fully resolved."""

    environment: str
    client: str
    resources: Mapping[Address, DesiredResource]
    presets: Mapping[str, Preset] = field(default_factory=dict)
    profiles: Mapping[str, AgentProfile] = field(default_factory=dict)
    tests: Mapping[str, ConversationTest] = field(default_factory=dict)


@dataclass(frozen=True)
class LiveDocument:
    """A knowledge-base document as the platform has it."""

    id: str
    name: str
    description: str | None
    size: int | None
    status: str | None


@dataclass(frozen=True)
class LiveResource:
    """One live API object in the canonical shape (a character's links are remote ids)."""

    kind: Kind
    id: str
    spec: Mapping[str, Any]
    created_at: str
    updated_at: str
    client: str | None = None
    documents: tuple[LiveDocument, ...] = ()


@dataclass(frozen=True)
class DocumentUpload:
    """A registered knowledge-base document and the URL its bytes go to."""

    id: str
    upload_url: str
