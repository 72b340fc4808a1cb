"""Equos conversations (sessions): start, stop, read, list.

The last stage of the preset flow: a rendered preset (`SessionSpec`: which
character id, which prompt vars) becomes `POST /v3/conversations`, and the
answer becomes a `StartedSession` whose access tokens are `Secret`s, so
they never reach a log line, an error or `--json` by accident. Conversations
are billed while they run: whoever starts one must stop it, and `stop`
treats "already ended" as done, so that a stop on every exit path is safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from avatarsync.errors import BadRequestError, NotFoundError, SessionError
from avatarsync.interrupts import undone_if_cancelled
from avatarsync.providers.equos import EquosClient
from avatarsync.secret import MASK, Secret

__all__ = [
    "CONVERSATION_STATUSES",
    "Conversation",
    "HostRoom",
    "Participant",
    "SessionOptions",
    "SessionSpec",
    "StartedSession",
    "get_conversation",
    "list_conversations",
    "start_conversation",
    "start_conversation_or_undo",
    "stop_conversation",
]

CONVERSATION_STATUSES = ("running", "ended", "error", "blocked")


@dataclass(frozen=True)
class Participant:
    """Someone joining the conversation's room: the platform returns an access token for them."""

    identity: str
    name: str

    @classmethod
    def parse(cls, text: str) -> Participant:
        """`IDENTITY` or `IDENTITY:NAME` (the name defaults to the identity)."""
        identity, _, name = text.partition(":")
        if not identity.strip():
            raise SessionError(f"a participant is IDENTITY or IDENTITY:NAME, got {text!r}")
        return cls(identity.strip(), name.strip() or identity.strip())

    def to_wire(self) -> dict[str, str]:
        return {"identity": self.identity, "name": self.name}


@dataclass(frozen=True)
class HostRoom:
    """Your own LiveKit server for the conversation (the token is a secret)."""

    server_url: str
    access_token: Secret

    def to_wire(self) -> dict[str, str]:
        return {"serverUrl": self.server_url, "accessToken": self.access_token.reveal()}


@dataclass(frozen=True)
class SessionOptions:
    """What the caller of a session chooses besides the preset's inputs."""

    name: str | None = None  # default: "<preset>-<UTC time>"
    max_seconds: int | None = None  # default: the preset's maxSeconds
    host: HostRoom | None = None
    remote_agent: Participant | None = None
    consumer: Participant | None = None


@dataclass(frozen=True)
class SessionSpec:
    """Everything `POST /v3/conversations` gets: a preset rendered for one environment."""

    preset: str
    name: str
    character_id: str
    client: str | None
    max_seconds: int | None
    prompt_ctx: str | None
    prompt_template_vars: Mapping[str, str]
    host: HostRoom | None = None
    remote_agent: Participant | None = None
    consumer: Participant | None = None

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "characterId": self.character_id}
        if self.client is not None:
            body["client"] = self.client
        if self.max_seconds is not None:
            body["maxSeconds"] = self.max_seconds
        if self.prompt_ctx is not None:
            body["promptCtx"] = self.prompt_ctx
        body["promptTemplateVars"] = dict(self.prompt_template_vars)
        if self.host is not None:
            body["host"] = self.host.to_wire()
        if self.remote_agent is not None:
            body["remoteAgent"] = self.remote_agent.to_wire()
        if self.consumer is not None:
            body["consumer"] = self.consumer.to_wire()
        return body


@dataclass(frozen=True)
class Conversation:
    """A conversation as the platform reports it (the stable `--json` shape)."""

    id: str
    name: str | None
    status: str
    character_id: str | None
    client: str | None
    room: str | None
    server_url: str | None
    max_seconds: float | None
    prompt_ctx: str | None
    prompt_template_vars: Mapping[str, str] | None
    started_at: str | None
    ended_at: str | None
    transcript: tuple[Mapping[str, Any], ...] = ()
    timeline: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_wire(cls, raw: Mapping[str, Any]) -> Conversation:
        character = raw.get("character")
        character_id = raw.get("characterId")
        if character_id is None and isinstance(character, Mapping):
            character_id = character.get("id")
        conv_id = raw.get("id")
        if not isinstance(conv_id, str):
            raise SessionError("the platform answered a conversation without an id")
        return cls(
            id=conv_id,
            name=raw.get("name"),
            status=str(raw.get("status") or "unknown"),
            character_id=character_id,
            client=raw.get("client"),
            room=raw.get("room"),
            server_url=raw.get("serverUrl"),
            max_seconds=raw.get("maxSeconds"),
            prompt_ctx=raw.get("promptCtx"),
            prompt_template_vars=raw.get("promptTemplateVars"),
            started_at=raw.get("startedAt"),
            ended_at=raw.get("endedAt"),
            transcript=tuple(raw.get("transcript") or ()),
            timeline=tuple(raw.get("timeline") or ()),
        )

    @property
    def running(self) -> bool:
        return self.status == "running"

    def to_dict(self) -> dict[str, Any]:
        """The documented keys of `session … --json` (docs/sessions.md)."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "characterId": self.character_id,
            "client": self.client,
            "room": self.room,
            "serverUrl": self.server_url,
            "maxSeconds": self.max_seconds,
            "promptCtx": self.prompt_ctx,
            "promptTemplateVars": dict(self.prompt_template_vars or {}),
            "startedAt": self.started_at,
            "endedAt": self.ended_at,
            "transcript": [dict(t) for t in self.transcript],
            "timeline": [dict(t) for t in self.timeline],
        }


@dataclass(frozen=True)
class StartedSession:
    """A started conversation and the room access tokens that came back with it."""

    conversation: Conversation
    remote_agent_token: Secret | None = field(default=None, repr=False)
    consumer_token: Secret | None = field(default=None, repr=False)

    @property
    def tokens(self) -> dict[str, Secret | None]:
        return {"remoteAgent": self.remote_agent_token, "consumer": self.consumer_token}

    def to_dict(self, *, show_tokens: bool = False) -> dict[str, Any]:
        """`{"conversation": …, "tokens": {"remoteAgent", "consumer"}}`: a token
        is null when none came back and "***" unless `show_tokens`."""
        return {
            "conversation": self.conversation.to_dict(),
            "tokens": {
                role: None if token is None else token.reveal() if show_tokens else MASK
                for role, token in self.tokens.items()
            },
        }


async def start_conversation(client: EquosClient, spec: SessionSpec) -> StartedSession:
    """`POST /v3/conversations` (billed until stopped; never retried blindly)."""
    answer = await client.start_conversation(spec.to_body())
    raw = answer.get("conversation")
    if not isinstance(raw, Mapping):
        raise SessionError("the platform's answer to starting a conversation has no conversation")
    return StartedSession(
        Conversation.from_wire(raw),
        _secret(answer.get("remoteAgentAccessToken")),
        _secret(answer.get("consumerAccessToken")),
    )


async def start_conversation_or_undo(
    client: EquosClient, spec: SessionSpec, grace: float = 30.0
) -> StartedSession:
    """`start_conversation`, for callers that may be cancelled (Ctrl-C, a
    client that hung up): a cancellation while the answer is on its way
    waits for it (up to `grace` seconds) and stops the conversation it
    started before going on, so no cancelled start leaves one running."""

    async def stop(started: StartedSession) -> None:
        await stop_conversation(client, started.conversation.id)

    return await undone_if_cancelled(start_conversation(client, spec), stop, grace)


async def stop_conversation(client: EquosClient, conversation_id: str) -> Conversation:
    """Stop a conversation; one that has already ended is simply read back.

    The platform may refuse to stop an ended conversation (a 4xx): that is
    the outcome the caller wanted, so it is not an error. An unknown id is.
    """
    try:
        raw = await client.stop_conversation(conversation_id)
    except BadRequestError:
        conversation = await get_conversation(client, conversation_id)
        if conversation.running:
            raise
        return conversation
    except NotFoundError:
        raise SessionError(f"no conversation {conversation_id!r} in this organisation") from None
    if not raw:  # the SDK declares a 200 whose body may be null for an unknown id
        raise SessionError(f"no conversation {conversation_id!r} in this organisation")
    return Conversation.from_wire(raw)


async def get_conversation(client: EquosClient, conversation_id: str) -> Conversation:
    try:
        raw = await client.get_conversation(conversation_id)
    except NotFoundError:
        raw = {}
    if not raw:
        raise SessionError(f"no conversation {conversation_id!r} in this organisation")
    return Conversation.from_wire(raw)


async def list_conversations(
    client: EquosClient, client_tag: str, status: str | None = None
) -> list[Conversation]:
    """The conversations carrying this environment's `client`, newest first."""
    items = [
        Conversation.from_wire(raw) for raw in await client.list_conversations(client=client_tag)
    ]
    items = [
        c for c in items if c.client == client_tag
    ]  # the filter is the server's; trust, verify
    if status is not None:
        items = [c for c in items if c.status == status]
    return sorted(items, key=lambda c: (c.started_at or "", c.id), reverse=True)


def _secret(value: Any) -> Secret | None:
    return Secret(value) if isinstance(value, str) and value else None
