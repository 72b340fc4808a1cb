"""Per-environment state: which remote id each `Kind/key` is, and what was applied.

    model     State, ResourceState, StateOp: the data, validated on load
    file      FileStateStore: a JSON file + journal + fcntl lock (the default)
    postgres  PostgresStateStore: a row per resource + an advisory lock (psycopg)
    s3        S3StateStore: an object + per-call journal objects + a lock
              object made by a conditional write (boto3)
    manage    state rm / mv / migrate on stores, and the locations a command
              line names

The shared backends import their driver only when an environment uses them.

Every store has the same shape (`StateStore`): `load`, `record` (one small
change per API call, O(1)), `save`/`compact` (the whole state), `locked`,
`force_unlock` (break a stale lock by its id, where a lock can be stale),
`close` and `describe`.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from avatarsync.errors import ProjectError
from avatarsync.secret import Secret
from avatarsync.state.file import FileStateStore
from avatarsync.state.model import STATE_VERSION, DocumentState, ResourceState, State, StateOp

if TYPE_CHECKING:
    from avatarsync.manifests.project import Environment, Project, StateSettings

__all__ = [
    "STATE_VERSION",
    "DocumentState",
    "FileStateStore",
    "ResourceState",
    "State",
    "StateOp",
    "StateStore",
    "open_settings",
    "open_store",
]


class StateStore(Protocol):
    """What plan, apply, import and export need of a state backend."""

    environment: str

    def describe(self) -> str: ...
    def load(self) -> State: ...
    def record(self, state: State, op: StateOp) -> None: ...
    def save(self, state: State) -> None: ...
    def compact(self, state: State) -> None: ...
    def close(self) -> None: ...
    def locked(self, timeout: float = 0.0) -> AbstractContextManager[None]: ...
    def force_unlock(self, lock_id: str) -> str: ...


def open_store(project: Project, env: Environment) -> StateStore:
    """The state store an environment's `state:` names (the file by default)."""
    return open_settings(project, env, env.state)


def open_settings(project: Project, env: Environment, settings: StateSettings) -> StateStore:
    """The store `settings` describe for `env` (state migrate opens two)."""
    if settings.backend == "postgres":
        from avatarsync.state.postgres import PostgresStateStore

        assert settings.url_env is not None
        url = project.lookup_env(settings.url_env, env)
        if not url:
            looked = ", ".join(str(p) for p in project.dotenv_files(env))
            raise ProjectError(
                f"environment {env.name!r} keeps its state in PostgreSQL: set {settings.url_env} "
                "to a libpq URI (postgresql://user:password@host:5432/database); it is not set "
                f"in the process environment, nor in {looked}"
            )
        return PostgresStateStore(
            Secret(url),
            url_env=settings.url_env,
            project=project.name,
            environment=env.name,
            client=env.client,
            schema=settings.schema,
        )
    if settings.backend == "s3":
        from avatarsync.state.s3 import S3StateStore

        assert settings.bucket is not None and settings.key is not None
        return S3StateStore(
            bucket=settings.bucket,
            key=settings.key,
            region=settings.region,
            endpoint_url=settings.endpoint_url,
            environment=env.name,
            client=env.client,
            credentials={
                name: value
                for name in _AWS_VARIABLES
                if (value := project.lookup_env(name, env)) is not None
            },
        )
    path = settings.path or env.state_path
    return FileStateStore(path, environment=env.name, client=env.client)


# Read through the project's .env files too (like API keys); boto3 itself only
# reads the process environment and ~/.aws.
_AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")
