"""Which Avatarium an environment talks to, and the keys conversations need.

`avatarium: {url, apiKeyEnv}` names a real endpoint; `avatarium: {emulator:
true}` (the default of an `emulator: true` environment) uses the embedded
emulator: the one the environment's workspace already runs, or one started
for the run. Keys are read from the named variables (process environment,
then `.env.<env>` and `.env`) only when they are needed, and come back as
`Secret`s; a missing one is an error naming the variable.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from avatarsync.errors import ProjectError, SessionError
from avatarsync.manifests.project import Environment, Project
from avatarsync.providers.avatarium import AvatariumClient
from avatarsync.resources import AgentProfile
from avatarsync.secret import Secret

__all__ = ["AvatariumEndpoint", "byok_settings", "open_endpoint"]


@dataclass(frozen=True)
class AvatariumEndpoint:
    """A base URL (ending in /v1), its key and how WebSocket upgrades authenticate."""

    url: str
    key: Secret
    ws_auth: str = "header"

    def client(self, max_concurrency: int = 10) -> AvatariumClient:
        return AvatariumClient(self.url, self.key, max_concurrency=max_concurrency)


def open_endpoint(
    project: Project, env: Environment, embedded_url: str | None, stack: ExitStack
) -> AvatariumEndpoint:
    """The environment's Avatarium. `embedded_url` is the workspace's embedded
    emulator, if it runs one; a server started here is stopped by `stack`."""
    settings = env.avatarium
    if settings is None:
        raise ProjectError(
            f"environment {env.name!r} has no Avatarium endpoint: add `avatarium: {{url: "
            "https://api.avatarium.ai/v1, apiKeyEnv: AVATARIUM_API_KEY}` (or `avatarium: "
            f"{{emulator: true}}`) to it in {project.file.name}"
        )
    if settings.emulator:
        from avatarsync.emulator import DEFAULT_API_KEY, EmulatorConfig, EmulatorServer

        if embedded_url is None:
            db = _emulator_db(project.root, env.name)
            db.parent.mkdir(parents=True, exist_ok=True)
            server = EmulatorServer(EmulatorConfig(db=str(db))).start()
            stack.callback(server.stop)
            embedded_url = server.url
        return AvatariumEndpoint(f"{embedded_url}/v1", Secret(DEFAULT_API_KEY), settings.ws_auth)
    assert settings.url is not None and settings.api_key_env is not None
    value = project.lookup_env(settings.api_key_env, env)
    if not value:
        looked = ", ".join(str(p) for p in project.dotenv_files(env))
        raise ProjectError(
            f"environment {env.name!r} needs an Avatarium API key in {settings.api_key_env}: "
            f"it is not set in the process environment, nor in {looked}"
        )
    return AvatariumEndpoint(settings.url.rstrip("/"), Secret(value), settings.ws_auth)


def byok_settings(
    project: Project, env: Environment, profile: AgentProfile
) -> dict[str, object] | None:
    """The `byokAI` body of a conversation, its key read now (a `Secret`)."""
    byok = profile.byok
    if byok is None:
        return None
    value = project.lookup_env(byok.api_key_env, env)
    if not value:
        at = profile.field_positions.get("byok", profile.position)
        raise SessionError(
            f"{at}: AgentProfile '{profile.key}' brings its own key in {byok.api_key_env}, "
            f"which is not set (process environment, {', '.join(map(str, project.dotenv_files(env)))})"
        )
    settings: dict[str, object] = {"provider": byok.provider, "apiKey": Secret(value)}
    if byok.model is not None:
        settings["model"] = byok.model
    if byok.base_url is not None:
        settings["baseUrl"] = byok.base_url
    return settings


def _emulator_db(root: Path, env_name: str) -> Path:
    """The embedded Avatarium of an environment whose Equos side is not embedded."""
    return root / ".avatarsync" / "emulator" / f"{env_name}-avatarium.sqlite"
