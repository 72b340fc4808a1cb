"""`validate --online`: does every AgentProfile's avatar exist on the environment's Avatarium?

Offline validation cannot know the platform's avatar presets; this asks
(`GET /avatars`, no key needed) and reports each unknown `avatarId` at its
line, with the ids that do exist. An environment without an Avatarium
endpoint cannot be asked: that is a warning, not an error.
"""

from __future__ import annotations

import asyncio
from contextlib import ExitStack

from avatarsync.avatarium.endpoint import AvatariumEndpoint, open_endpoint
from avatarsync.errors import ApiError, Diagnostic, ProjectError
from avatarsync.manifests.messages import did_you_mean
from avatarsync.manifests.project import Environment, Project
from avatarsync.resources import AgentProfile

__all__ = ["check_avatars"]


def check_avatars(
    project: Project, env: Environment, profiles: list[AgentProfile]
) -> list[Diagnostic]:
    if not profiles:
        return []
    if env.avatarium is None:
        at = profiles[0].field_positions.get("avatarId", profiles[0].position)
        return [
            Diagnostic(
                at.file,
                at.line,
                at.col,
                f"environment '{env.name}' has no Avatarium endpoint: avatar ids not checked "
                "online",
                "warning",
            )
        ]
    with ExitStack() as stack:
        try:
            endpoint = open_endpoint(project, env, None, stack)
        except ProjectError as exc:
            at = profiles[0].position
            return [Diagnostic(at.file, at.line, at.col, str(exc))]
        return asyncio.run(_check(endpoint, env, profiles))


async def _check(
    endpoint: AvatariumEndpoint, env: Environment, profiles: list[AgentProfile]
) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    async with endpoint.client() as client:
        try:
            avatars = {str(a.get("id")) for a in await client.list_avatars()}
        except ApiError as exc:
            at = profiles[0].position
            return [
                Diagnostic(
                    at.file,
                    at.line,
                    at.col,
                    f"cannot list the avatars of environment '{env.name}' at {endpoint.url}: {exc}",
                )
            ]
    for profile in profiles:
        if profile.avatar_id in avatars:
            continue
        at = profile.field_positions.get("avatarId", profile.position)
        hint = did_you_mean(profile.avatar_id, avatars)
        found.append(
            Diagnostic(
                at.file,
                at.line,
                at.col,
                f"AgentProfile '{profile.key}': avatar '{profile.avatar_id}' does not exist on "
                f"Avatarium in environment '{env.name}'{hint} (known: "
                f"{', '.join(sorted(avatars))})",
            )
        )
    return found
