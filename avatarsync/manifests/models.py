"""The manifest kinds and the project file as pydantic models.

Second stage of the manifest flow (loader → models → templating → resolve):
a loaded YAML document is checked against the model of its `kind`
(`messages.validate_model` maps pydantic's errors back to file:line:col),
and the same models generate the JSON Schemas (`schema`), so the editor and
avatarsync agree.

Models are strict: YAML already types its values, so a string field given
`no` or `1.10` is an error that says to quote it, never a silent conversion.
Fields use snake_case in Python and camelCase in YAML (the API's spelling).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, WithJsonSchema
from pydantic.alias_generators import to_camel

from avatarsync.catalog import AVATARIUM_PROVIDERS, FACE_IDENTITIES, VOICE_IDENTITIES
from avatarsync.resources import KEY_PATTERN, Kind

__all__ = [
    "DOCUMENT_MODELS",
    "ENV_NAME_PATTERN",
    "MAX_SESSION_SECONDS",
    "PROMPT_CTX_MAX_CHARS",
    "SPEC_MODELS",
    "AgentProfileSpec",
    "AvatariumEndpointModel",
    "BrainSpec",
    "ByokSpec",
    "CharacterSpec",
    "ConversationPresetSpec",
    "ConversationTestSpec",
    "DocumentEntry",
    "EnvPolicyModel",
    "EnvironmentModel",
    "ExpectSpec",
    "FaceSpec",
    "KnowledgeBaseSpec",
    "PresetInputSpec",
    "ProjectModel",
    "TurnSpec",
    "VoiceSpec",
]

ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"  # a process environment variable name
_KEY_REGEX = KEY_PATTERN.pattern

# Any text: the gallery changes between platform releases, so an identity
# avatarsync does not know is a warning (lint), and the server decides. The
# schema still offers the known ones to editors.
VoiceIdentity = Annotated[
    str,
    WithJsonSchema(
        {"anyOf": [{"enum": list(VOICE_IDENTITIES)}, {"type": "string", "minLength": 1}]}
    ),
]
FaceIdentity = Annotated[
    str,
    WithJsonSchema(
        {"anyOf": [{"enum": list(FACE_IDENTITIES)}, {"type": "string", "minLength": 1}]}
    ),
]
Key = Annotated[str, Field(pattern=_KEY_REGEX, description="A key: unique per kind, stable.")]
EnvVarName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=False,
        # Schema titles in the YAML spelling ("greetingMessage"), for editors.
        field_title_generator=lambda name, info: to_camel(name),
    )


# --- kinds -------------------------------------------------------------------


class FaceSpec(_Model):
    """A face from the Equos gallery. Faces cannot be updated: a change replaces it."""

    identity: FaceIdentity = Field(min_length=1, description="Gallery face identity.")


class VoiceSpec(_Model):
    """A voice: one of the 30 Equos voice identities, with optional instructions."""

    identity: VoiceIdentity = Field(min_length=1, description="One of the 30 Equos voices.")
    instructions: str | None = Field(None, description="Tone, rhythm, accent…")


class BrainSpec(_Model):
    """The prompt. `{{ name }}` placeholders are kept for the platform to fill."""

    instructions: str = Field(description="The system prompt; may use {{ placeholders }}.")
    greeting_message: str = Field(description="What the character says first.")


class DocumentEntry(_Model):
    """A knowledge-base document: a file in the repository."""

    path: str = Field(description="File path, relative to the manifest file naming it.")
    name: str | None = Field(None, description="Document name (default: the file name).")
    description: str | None = None
    mime_type: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*(\s*;\s*[\w.+-]+=[\w.+-]+)*$",
        description="Guessed from the extension when absent (e.g. text/markdown).",
    )


class KnowledgeBaseSpec(_Model):
    """A knowledge base and its documents. Cannot be updated: a change replaces it."""

    display_name: str = Field(description="The API's `name`.")
    description: str
    documents: list[DocumentEntry] | None = Field(
        default=None,
        description="Files in the repository to upload. Left out: the knowledge base's "
        "documents are not managed by avatarsync (an empty list deletes them all).",
    )


def _ref_or_inline(value: Any) -> str | None:
    if isinstance(value, str):
        return "ref"
    if isinstance(value, dict | BaseModel):  # a model when serialising
        return "inline"
    return None


def _reference(spec: type[_Model], kind: str) -> Any:
    """A character link: the key of a top-level resource, or the spec inline."""
    return Annotated[
        Annotated[str, Tag("ref")] | Annotated[spec, Tag("inline")],
        Discriminator(
            _ref_or_inline,
            custom_error_type="ref_or_inline",
            custom_error_message=f"expected the key of a {kind} or an inline {kind} spec",
        ),
    ]


class CharacterSpec(_Model):
    """A character: links a face, voice, brain and knowledge base by key (or inline)."""

    display_name: str = Field(description="The API's `name`.")
    livekit_identity: str = Field(description="Cannot be changed: a change replaces the character.")
    face: _reference(FaceSpec, "Face") | None = Field(  # type: ignore[valid-type]
        None, description="Key of a Face, or a Face spec inline."
    )
    voice: _reference(VoiceSpec, "Voice") | None = Field(  # type: ignore[valid-type]
        None, description="Key of a Voice, or a Voice spec inline."
    )
    brain: _reference(BrainSpec, "Brain") | None = Field(  # type: ignore[valid-type]
        None, description="Key of a Brain, or a Brain spec inline."
    )
    knowledge_base: str | None = Field(None, description="Key of a KnowledgeBase.")
    search: bool = False
    elevenlabs_agent_id: str | None = None


# The platform refuses longer conversations (and the emulator with it).
MAX_SESSION_SECONDS = 86_400
# avatarsync's own bound: promptCtx travels with every conversation start.
PROMPT_CTX_MAX_CHARS = 16_000


class PresetInputSpec(_Model):
    """A value the caller of a session supplies (`--var`, an app backend)."""

    required: bool = Field(False, description="The caller must pass it (no default).")
    default: str | None = Field(None, description="Used when the caller does not pass it.")
    description: str | None = Field(None, description="What the caller should pass.")


InputName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class ConversationPresetSpec(_Model):
    """A session recipe (not an API resource): which character, and its prompt vars."""

    character: str = Field(description="Key of a Character.")
    max_seconds: int | None = Field(None, gt=0, le=MAX_SESSION_SECONDS)
    prompt_ctx: str | None = Field(None, max_length=PROMPT_CTX_MAX_CHARS)
    inputs: dict[InputName, PresetInputSpec] | None = Field(
        None,
        description="What the caller supplies; templates use these names directly. "
        "Declared, the caller may pass nothing else.",
    )
    prompt_template_vars: dict[str, str] = Field(
        default_factory=dict,
        description="jinja2 templates; context: vars, env, character and the inputs.",
    )


# --- Avatarium: agent profiles and the conversation tests run against them ----

AiProvider = Literal["groq", "openai", "gemini", "anthropic"]
assert set(get_args(AiProvider)) == set(AVATARIUM_PROVIDERS)


class ByokSpec(_Model):
    """Bring your own AI key: the key is read from `apiKeyEnv` when a conversation
    starts, never written in a manifest, state or any output."""

    provider: AiProvider
    api_key_env: EnvVarName = Field(description="Variable holding the provider key.")
    model: str | None = None
    base_url: str | None = Field(None, pattern=r"^https?://", description="http(s) URL.")


class AgentProfileSpec(_Model):
    """An Avatarium agent: an avatar preset, an AI provider and a system prompt."""

    avatar_id: str = Field(min_length=1, description="Avatar preset id, e.g. aria-001.")
    provider: AiProvider | None = Field(None, description="AI provider (platform default).")
    system_prompt: str = Field("", description="May use ${vars.x} and ${env.X}.")
    byok: ByokSpec | None = None


OneOrMore = str | list[str]


class ExpectSpec(_Model):
    """What a reply must satisfy; every check given is applied."""

    contains: OneOrMore | None = Field(None, description="Text(s) the reply must contain.")
    not_contains: OneOrMore | None = Field(None, description="Text(s) it must not contain.")
    matches: str | None = Field(None, description="A regular expression searched in the reply.")
    max_first_chunk_seconds: float | None = Field(None, gt=0)
    max_seconds: float | None = Field(None, gt=0, description="The whole reply, at most.")


class TurnSpec(_Model):
    """One message sent, and the expectations on its reply."""

    say: str = Field(min_length=1, max_length=5000)
    expect: ExpectSpec | None = None


class ConversationTestSpec(_Model):
    """A conversation test: `profile` (turns over the Avatarium WebSocket) or
    `preset` (an Equos start/check/stop smoke)."""

    profile: str | None = Field(None, description="Key of an AgentProfile.")
    preset: str | None = Field(None, description="Key of a ConversationPreset (smoke).")
    vars: dict[str, Any] = Field(
        default_factory=dict, description="A preset test's values of the preset's inputs."
    )
    timeout_seconds: float = Field(30, gt=0, description="Per turn, without maxSeconds.")
    turns: list[TurnSpec] = Field(default_factory=list)


SPEC_MODELS: dict[Kind, type[_Model]] = {
    Kind.FACE: FaceSpec,
    Kind.VOICE: VoiceSpec,
    Kind.BRAIN: BrainSpec,
    Kind.KNOWLEDGE_BASE: KnowledgeBaseSpec,
    Kind.CHARACTER: CharacterSpec,
    Kind.CONVERSATION_PRESET: ConversationPresetSpec,
    Kind.AGENT_PROFILE: AgentProfileSpec,
    Kind.CONVERSATION_TEST: ConversationTestSpec,
}


def _document_model(kind: Kind, spec: type[_Model]) -> type[_Model]:
    # One model per kind keeps `kind` a constant in each JSON Schema, so the
    # combined schema can tell the kinds apart.
    model = type(
        f"{kind.value}Document",
        (_Model,),
        {
            "__annotations__": {
                "kind": Literal[kind.value],
                "name": Key,
                "spec": spec,
            },
            "__doc__": f"A `{kind.value}` manifest document.",
            "__module__": __name__,
        },
    )
    return model


# Adding a kind (the Avatarium ones, later) = a spec model + an entry here
# + its resolution in refs.py.
DOCUMENT_MODELS: dict[Kind, type[_Model]] = {
    kind: _document_model(kind, spec) for kind, spec in SPEC_MODELS.items()
}


# --- project file --------------------------------------------------------------


class EnvPolicyModel(_Model):
    """Which process environment variables `${env.X}` may read."""

    allow: list[EnvVarName] = Field(default_factory=list)
    allow_prefixes: list[Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]] = Field(
        default_factory=list
    )
    secret: list[EnvVarName] = Field(
        default_factory=list,
        description="Allowed too; fields using them are masked in every output.",
    )


class FileStateModel(_Model):
    """State in a JSON file inside the project (the default)."""

    backend: Literal["file"]
    path: str | None = Field(None, description="Default .avatarsync/state/<env>.json.")


class PostgresStateModel(_Model):
    """State in PostgreSQL: one row per resource, an advisory lock per environment."""

    backend: Literal["postgres"]
    url_env: EnvVarName = Field(description="Variable holding a libpq URI (postgresql://…).")
    schema_name: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,62}$")] = Field(
        "avatarsync", alias="schema", description="Schema holding avatarsync's tables."
    )


class S3StateModel(_Model):
    """State in an S3 (or S3-compatible) object, locked with a conditional write."""

    backend: Literal["s3"]
    bucket: str = Field(min_length=3)
    key: str = Field(min_length=1, description="Object key of the state, e.g. state/prod.json.")
    region: str | None = None
    endpoint_url: str | None = Field(None, description="For S3-compatible stores (MinIO, moto).")


StateModel = Annotated[
    FileStateModel | PostgresStateModel | S3StateModel, Field(discriminator="backend")
]


class AvatariumEndpointModel(_Model):
    """Where an environment's Avatarium conversations run: a URL and key, or the
    embedded emulator."""

    url: str | None = Field(None, description="Default https://api.avatarium.ai/v1.")
    api_key_env: EnvVarName | None = Field(None, description="Variable holding the key.")
    emulator: bool = Field(False, description="Use the embedded emulator.")
    ws_auth: Literal["header", "none"] = Field(
        "header",
        description="header: the WebSocket upgrade carries the key; none: the bare wsUrl.",
    )


class EnvironmentModel(_Model):
    """One environment: where to apply, with which key, client tag and vars."""

    provider: Literal["equos"] = "equos"
    url: str | None = Field(None, description="API base URL (default https://api.equos.ai).")
    api_key_env: EnvVarName | None = Field(None, description="Variable holding the API key.")
    client: str | None = Field(None, description="Ownership tag (default <project>-<env>).")
    vars: dict[str, Any] = Field(default_factory=dict)
    protect: bool = Field(False, description="Deletes and replaces need --allow-destroy.")
    emulator: bool = Field(False, description="Use the embedded emulator.")
    avatarium: AvatariumEndpointModel | None = Field(
        None,
        description="Avatarium endpoint for agent profiles and conversation tests "
        "(an emulator: true environment uses the embedded emulator by default).",
    )
    state: str | StateModel | None = Field(
        None,
        description="A state file path (default .avatarsync/state/<env>.json), or "
        "{backend: file|postgres|s3, …} for state shared between machines.",
    )


class ProjectModel(_Model):
    """`avatarsync.yaml`: where the manifests are and which environments exist."""

    name: Key | None = Field(None, description="Project name (default: the folder name).")
    manifests: list[str] = Field(min_length=1, description="Globs, relative to this file.")
    env: EnvPolicyModel = Field(default_factory=EnvPolicyModel)
    environments: dict[Key, EnvironmentModel] = Field(min_length=1)
