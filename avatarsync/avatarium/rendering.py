"""How `render` shows an AgentProfile: what a conversation would be created with,
with `${...}` substituted. The BYOK key is only ever named (its variable), and
fields whose value came from a secret variable are masked."""

from __future__ import annotations

from typing import Any

from avatarsync.resources import AgentProfile, Kind
from avatarsync.secret import MASK

__all__ = ["profile_document"]


def profile_document(profile: AgentProfile) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "avatarId": profile.avatar_id,
        "provider": profile.provider,
        "systemPrompt": MASK
        if "systemPrompt" in profile.sensitive_fields
        else profile.system_prompt,
    }
    if profile.byok is not None:
        spec["byok"] = {
            "provider": profile.byok.provider,
            "model": profile.byok.model,
            "baseUrl": MASK if "byok" in profile.sensitive_fields else profile.byok.base_url,
            "apiKeyEnv": profile.byok.api_key_env,
        }
    return {"kind": Kind.AGENT_PROFILE.value, "name": profile.key, "spec": spec}
