"""A ConversationTest of an Equos ConversationPreset: start, check, stop.

Equos conversations are audio/video, so there is nothing to say to them
from a pipeline; the smoke proves the preset starts a conversation with its
character and rendered prompt vars, that the platform reports it running,
and that it stops. It is **always** stopped, whatever happened in between:
a running conversation costs money.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from avatarsync.errors import ApiError
from avatarsync.providers.avatarium import finish_cleanup
from avatarsync.providers.equos import EquosClient
from avatarsync.resources import Preset

__all__ = ["SmokeOutcome", "smoke_preset"]

_SMOKE_MAX_SECONDS = 60  # a smoke is seconds long; cap what a stuck one could cost


@dataclass(frozen=True)
class SmokeOutcome:
    conversation_id: str | None
    failures: tuple[str, ...]


async def smoke_preset(
    equos: EquosClient,
    preset: Preset,
    character_id: str,
    template_vars: Mapping[str, str],
    *,
    client_tag: str,
    name: str,
) -> SmokeOutcome:
    body: dict[str, Any] = {
        "name": name,
        "characterId": character_id,
        "client": client_tag,
        "maxSeconds": min(preset.max_seconds or _SMOKE_MAX_SECONDS, _SMOKE_MAX_SECONDS),
        "promptTemplateVars": dict(template_vars),
    }
    if preset.prompt_ctx is not None:
        body["promptCtx"] = preset.prompt_ctx
    started = await equos.start_conversation(body)
    conversation = started.get("conversation")
    conversation_id = conversation.get("id") if isinstance(conversation, dict) else None
    if not isinstance(conversation_id, str):
        return SmokeOutcome(None, ("the start answer carries no conversation id",))
    failures: list[str] = []
    try:
        live = await equos.get_conversation(conversation_id)
        status = live.get("status")
        if status != "running":
            failures.append(f"the conversation is {status!r} right after start, not 'running'")
        if live.get("characterId") not in (None, character_id):
            failures.append("the conversation runs another character than the preset's")
    except ApiError as exc:
        failures.append(f"checking the conversation failed: {exc}")
    finally:
        await finish_cleanup(equos.stop_conversation(conversation_id))
    return SmokeOutcome(conversation_id, tuple(failures))
