"""The project file `avatarsync.yaml`: where manifests are, which environments exist.

Read before anything else: it tells the loader which files to read and each
later stage which environment it works for (vars, client tag, key, state
file). Found by walking up from the working directory, like git does, or given
explicitly. API keys are read from the process environment first, then from
`.env.<environment>` and `.env` at the project root, which never override the
real environment; they come back as `Secret`s and are never printed.
"""

from __future__ import annotations

import io
import itertools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from avatarsync.catalog import AVATARIUM_DEFAULT_URL, EQUOS_DEFAULT_URL
from avatarsync.errors import Diagnostic, ProjectError, ProjectFileError
from avatarsync.manifests.loader import SourceMap, YamlPath, load_file, yaml11_surprise
from avatarsync.manifests.messages import did_you_mean, validate_model, yaml11_diagnostics
from avatarsync.manifests.models import ProjectModel
from avatarsync.resources import Position
from avatarsync.secret import Secret

__all__ = [
    "DEFAULT_API_URL",
    "PROJECT_FILE",
    "AvatariumSettings",
    "EnvPolicy",
    "Environment",
    "Project",
    "StateSettings",
    "find_project",
    "load_project_file",
    "parse_dotenv",
]

PROJECT_FILE = "avatarsync.yaml"
DEFAULT_API_URL = EQUOS_DEFAULT_URL
DEFAULT_STATE_DIR = ".avatarsync/state"


@dataclass(frozen=True)
class EnvPolicy:
    """Which process environment variables `${env.X}` (and templates) may read."""

    allow: frozenset[str] = frozenset()
    allow_prefixes: tuple[str, ...] = ()
    secret: frozenset[str] = frozenset()
    # Variables holding credentials (every environment's apiKeyEnv): never
    # readable, whatever allow, allowPrefixes or secret say.
    credentials: frozenset[str] = frozenset()

    def allows(self, name: str) -> bool:
        if name in self.credentials:
            return False
        return name in self.allow or name in self.secret or name.startswith(self.allow_prefixes)

    def is_credential(self, name: str) -> bool:
        return name in self.credentials

    def is_secret(self, name: str) -> bool:
        return name in self.secret


@dataclass(frozen=True)
class StateSettings:
    """Where an environment's state lives. Never a credential: `url_env` names
    the variable that holds the database URI; S3 uses the usual AWS variables."""

    backend: Literal["file", "postgres", "s3"] = "file"
    path: Path | None = None  # file: absolute
    url_env: str | None = None  # postgres
    schema: str = "avatarsync"  # postgres
    bucket: str | None = None  # s3
    key: str | None = None  # s3
    region: str | None = None  # s3
    endpoint_url: str | None = None  # s3


@dataclass(frozen=True)
class AvatariumSettings:
    """An environment's Avatarium endpoint: `url` + `api_key_env`, or the
    embedded emulator (`emulator`); `ws_auth` says whether the WebSocket
    upgrade carries the key ("header") or uses the bare wsUrl ("none")."""

    url: str | None = None
    api_key_env: str | None = None
    emulator: bool = False
    ws_auth: Literal["header", "none"] = "header"


@dataclass(frozen=True)
class Environment:
    name: str
    provider: str  # "equos" (room for "avatarium" later)
    url: str | None  # None with emulator=True -> embedded emulator
    api_key_env: str | None  # name of the env var holding the key
    client: str  # ownership tag set on every created resource
    vars: Mapping[str, Any]
    protect: bool  # deletes/replaces need --allow-destroy
    emulator: bool
    state_path: Path  # absolute: the file backend's file (also where local caches live)
    position: Position
    state: StateSettings = StateSettings()
    # None: no Avatarium endpoint (an emulator: true environment gets the embedded one).
    avatarium: AvatariumSettings | None = None


@dataclass(frozen=True)
class Project:
    root: Path
    file: Path
    name: str
    manifests: tuple[str, ...]  # globs relative to root
    environments: Mapping[str, Environment]
    env_policy: EnvPolicy = EnvPolicy()
    manifest_positions: tuple[Position, ...] = ()  # of each glob, for messages
    # .env files read once per process; a cache, not part of the value.
    _dotenv: dict[Path, dict[str, str]] = field(
        default_factory=dict, compare=False, repr=False, hash=False
    )

    def environment(self, name: str) -> Environment:
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(self.environments) or "none"
            hint = did_you_mean(name, self.environments)
            raise ProjectError(
                f"unknown environment '{name}'{hint}; {self.file.name} defines: {known}"
            ) from None

    def dotenv_files(self, env: Environment | None = None) -> list[Path]:
        """Where variables are looked up after the process environment, in order."""
        return ([self.root / f".env.{env.name}"] if env is not None else []) + [self.root / ".env"]

    def lookup_env(self, name: str, env: Environment | None = None) -> str | None:
        """A process variable, else from `.env.<env>`, else from `.env` (root)."""
        if name in os.environ:
            return os.environ[name]
        for path in self.dotenv_files(env):
            values = self._read_dotenv(path)
            if name in values:
                return values[name]
        return None

    def allowed_env(self, env: Environment | None = None) -> dict[str, str]:
        """Every variable the policy allows and that is set (secrets excluded):
        the `env` seen by prompt templates."""
        names: set[str] = set(os.environ)
        for path in self.dotenv_files(env):
            names.update(self._read_dotenv(path))
        result = {}
        for name in sorted(names):
            if self.env_policy.allows(name) and not self.env_policy.is_secret(name):
                value = self.lookup_env(name, env)
                if value is not None:
                    result[name] = value
        return result

    def display(self, path: Path) -> str:
        """How messages name a file: relative to the root, with / separators."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def manifest_files(self) -> tuple[list[tuple[Path, str]], list[Diagnostic]]:
        """(path, display name) of every manifest file, sorted, and the problems.

        A glob that matches nothing is a warning (usually a typo; `plan`
        turns it into an error when state still has resources from it). A
        folder that cannot be read, and a file or folder that resolves outside
        the project (a symlink), are errors: a glob must never silently
        become an empty set.
        """
        found: dict[str, Path] = {}
        problems: list[Diagnostic] = []
        root = self.root.resolve()
        skip = {self.file.resolve()}
        for index, pattern in enumerate(self.manifests):
            at = (
                self.manifest_positions[index]
                if index < len(self.manifest_positions)
                else Position(self.file.name, 1, 1)
            )

            def problem(message: str, severity: Literal["error", "warning"] = "error") -> None:
                problems.append(Diagnostic(at.file, at.line, at.col, message, severity))  # noqa: B023

            unreadable = _unreadable_folders(self.root, pattern)
            for folder in unreadable:
                problem(
                    f"manifest glob '{pattern}': cannot read folder "
                    f"'{self.display(folder)}' (permission denied)"
                )
            matched = bool(unreadable)  # said already: not also "matches no file"
            for path in sorted(self.root.glob(pattern)):
                display = self.display(path)
                if display.startswith(".avatarsync/"):
                    continue  # our own state, never a manifest
                try:
                    resolved = path.resolve(strict=True)
                except (OSError, RuntimeError):  # a dangling link or a symlink loop
                    problem(f"manifest glob '{pattern}': '{display}' is a broken symlink")
                    continue
                if not resolved.is_relative_to(root):
                    problem(
                        f"manifest glob '{pattern}': '{display}' is a symlink to "
                        f"{resolved}, outside the project folder (globs cannot leave it)"
                    )
                    continue
                if not resolved.is_file() or resolved in skip:
                    continue
                matched = True
                found.setdefault(display, path)
            if not matched:
                problem(f"manifest glob '{pattern}' matches no file", "warning")
        return [(found[name], name) for name in sorted(found)], problems

    def empty_globs(self) -> list[str]:
        """The manifest globs that match no file now."""
        files, problems = self.manifest_files()
        del files
        return [
            pattern
            for pattern in self.manifests
            if any(d.message == f"manifest glob '{pattern}' matches no file" for d in problems)
        ]

    def api_key(self, env: Environment) -> Secret | None:
        """The environment's API key, or None (emulator, or not set). Never printed."""
        if env.api_key_env is None:
            return None
        value = self.lookup_env(env.api_key_env, env)
        if not value:
            return None
        return Secret(value)

    def _read_dotenv(self, path: Path) -> dict[str, str]:
        if path not in self._dotenv:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                text = ""
            # Values are not registered as secrets here: keys become Secrets
            # when read (api_key), secret variables when substituted.
            self._dotenv[path] = parse_dotenv(text)
        return self._dotenv[path]


def _unreadable_folders(root: Path, pattern: str) -> list[Path]:
    """Folders a glob would have to read but cannot (Path.glob skips them silently)."""
    parts = Path(pattern).parts
    leading = list(itertools.takewhile(lambda part: not _magic(part), parts))
    if len(leading) == len(parts):
        leading = leading[:-1]  # a plain file path: only its folder is read
    base = root.joinpath(*leading)
    if not base.is_dir():
        return []
    if not os.access(base, os.R_OK | os.X_OK):
        return [base]
    # Folder levels the magic parts walk into (all of them for `**`).
    depth = None if "**" in parts else len(parts) - len(leading) - 1
    found: list[Path] = []
    for folder, subfolders, _ in os.walk(base):
        level = len(Path(folder).relative_to(base).parts)
        if depth is not None and level >= depth:
            subfolders.clear()
            continue
        for name in list(subfolders):
            path = Path(folder) / name
            if not path.is_symlink() and not os.access(path, os.R_OK | os.X_OK):
                found.append(path)
                subfolders.remove(name)
    return found


def _magic(part: str) -> bool:
    return any(ch in part for ch in "*?[")


def find_project(directory: Path | None = None, project_file: Path | None = None) -> Project:
    """The project for `directory` (default: the working directory).

    With `project_file`, that file (relative paths are taken from `directory`);
    otherwise the nearest `avatarsync.yaml` in `directory` or above it.
    """
    start = (directory or Path.cwd()).resolve()
    if directory is not None and not start.is_dir():
        raise ProjectError(f"{directory}: no such directory")
    if project_file is not None:
        path = project_file if project_file.is_absolute() else start / project_file
        if not path.is_file():
            raise ProjectError(f"{project_file}: no such project file")
        return load_project_file(path.resolve())
    for folder in (start, *start.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return load_project_file(candidate)
    raise ProjectError(
        f"no {PROJECT_FILE} in {start} or any folder above it "
        "(create one with `avatarsync init`, or use -C DIR / --project FILE)"
    )


def load_project_file(path: Path) -> Project:
    """Parse and check one project file; all problems at once in ProjectFileError."""
    root = path.parent
    display = path.name
    loaded = load_file(path, display)
    diagnostics = list(loaded.diagnostics)
    if not diagnostics and len(loaded.documents) != 1:
        count = len(loaded.documents)
        where = loaded.documents[1].position if count > 1 else Position(display, 1, 1)
        diagnostics.append(
            Diagnostic(
                where.file,
                where.line,
                where.col,
                f"the project file must hold exactly one YAML document, not {count}",
            )
        )
    if diagnostics:
        raise ProjectFileError(diagnostics, root)
    doc = loaded.documents[0]
    model, diagnostics = validate_model(ProjectModel, doc.data, doc.source, what="the project file")
    diagnostics += yaml11_diagnostics(doc.source, doc.data, diagnostics)
    # Checks the schema cannot express run on the raw data, so they are
    # reported together with schema errors rather than after them.
    diagnostics += _check_raw(doc.data, doc.source)
    if model is None or any(d.severity == "error" for d in diagnostics):
        raise ProjectFileError(diagnostics, root)
    name = model.name or root.name
    environments: dict[str, Environment] = {}
    for env_name, env_model in model.environments.items():
        settings = env_model.state
        state_file = f"{DEFAULT_STATE_DIR}/{env_name}.json"
        if isinstance(settings, str):
            state_file = settings
        elif settings is not None and settings.backend == "file" and settings.path:
            state_file = settings.path
        state_path = _inside(root, state_file, doc.source, ("environments", env_name, "state"))
        environments[env_name] = Environment(
            name=env_name,
            provider=env_model.provider,
            url=None if env_model.emulator else (env_model.url or DEFAULT_API_URL),
            api_key_env=env_model.api_key_env,
            client=env_model.client or f"{name}-{env_name}",
            vars=env_model.vars,
            protect=env_model.protect,
            emulator=env_model.emulator,
            state_path=state_path,
            position=doc.source.value(("environments", env_name)),
            state=_state_settings(settings, state_path),
            avatarium=_avatarium_settings(env_model),
        )
    policy = EnvPolicy(
        allow=frozenset(model.env.allow),
        allow_prefixes=tuple(model.env.allow_prefixes),
        secret=frozenset(model.env.secret),
        credentials=frozenset(
            name
            for e in model.environments.values()
            for name in (
                e.api_key_env,
                getattr(e.state, "url_env", None),  # a database URI holds a password
                e.avatarium.api_key_env if e.avatarium else None,
            )
            if name
        ),
    )
    return Project(
        root=root,
        file=path,
        name=name,
        manifests=tuple(model.manifests),
        environments=environments,
        env_policy=policy,
        manifest_positions=tuple(
            doc.source.value(("manifests", index)) for index in range(len(model.manifests))
        ),
    )


def _avatarium_settings(env_model: Any) -> AvatariumSettings | None:
    model = env_model.avatarium
    if model is None:
        return AvatariumSettings(emulator=True) if env_model.emulator else None
    if model.emulator:
        return AvatariumSettings(emulator=True, ws_auth=model.ws_auth)
    return AvatariumSettings(
        url=model.url or AVATARIUM_DEFAULT_URL,
        api_key_env=model.api_key_env,
        ws_auth=model.ws_auth,
    )


def _state_settings(settings: Any, path: Path) -> StateSettings:
    backend = getattr(settings, "backend", "file")
    if backend == "postgres":
        return StateSettings("postgres", url_env=settings.url_env, schema=settings.schema_name)
    if backend == "s3":
        return StateSettings(
            "s3",
            bucket=settings.bucket,
            key=settings.key,
            region=settings.region,
            endpoint_url=settings.endpoint_url,
        )
    return StateSettings("file", path=path)


def _check_raw(data: Any, source: SourceMap) -> list[Diagnostic]:
    found: list[Diagnostic] = []

    def error(path: tuple[str | int, ...], message: str) -> None:
        at = source.value(path)
        found.append(Diagnostic(at.file, at.line, at.col, message))

    if not isinstance(data, dict):
        return found
    globs = data.get("manifests")
    for index, pattern in enumerate(globs if isinstance(globs, list) else []):
        if isinstance(pattern, str) and (
            Path(pattern).is_absolute() or ".." in Path(pattern).parts
        ):
            error(
                ("manifests", index),
                f"manifest glob '{pattern}' must stay inside the project folder",
            )
    environments = data.get("environments")
    for env_name, env in (environments if isinstance(environments, dict) else {}).items():
        if not isinstance(env, dict):
            continue
        base = ("environments", env_name)
        url = env.get("url")
        if env.get("emulator") is True and url is not None:
            error(
                (*base, "url"),
                f"environment '{env_name}': url cannot be combined with emulator: true "
                "(the embedded emulator picks its own address)",
            )
        elif isinstance(url, str) and (problem := url_problem(url)) is not None:
            error((*base, "url"), f"environment '{env_name}': url {problem}")
        avatarium = env.get("avatarium")
        if isinstance(avatarium, dict) and avatarium.get("emulator") is True:
            for name in ("url", "apiKeyEnv"):
                if name in avatarium:
                    error(
                        (*base, "avatarium", name),
                        f"environment '{env_name}': avatarium.{name} cannot be combined with "
                        "avatarium.emulator: true",
                    )
        elif isinstance(avatarium, dict) and avatarium.get("apiKeyEnv") is None:
            error(
                (*base, "avatarium"),
                f"environment '{env_name}': avatarium needs apiKeyEnv (the variable holding "
                "the Avatarium key) or emulator: true",
            )
        state = env.get("state")
        if (
            isinstance(state, dict)
            and state.get("backend") in ("postgres", "s3")
            and not data.get("name")
            and not env.get("client")
        ):
            error(
                (*base, "state"),
                f"environment '{env_name}' shares its state between checkouts, but its "
                "client tag comes from the folder's name, which differs between checkouts: "
                "set `name:` in the project file (or the environment's `client:`)",
            )
        if isinstance(state, dict) and state.get("backend") == "file":
            state = state.get("path")
        if isinstance(state, str) and _leaves(Path(state)):
            error(
                (*base, "state"),
                f"environment '{env_name}': state '{state}' must stay inside the project "
                "folder (for state shared between machines use a shared backend)",
            )
        found.extend(_check_vars(env.get("vars"), source, (*base, "vars")))
    return found


def url_problem(url: str) -> str | None:
    """What is wrong with an API base URL, or None. Checked when the project
    loads, so a bad one fails `validate`, not a plan half way."""
    shown = repr(re.sub(r"//[^/@]*@", "//***@", url))  # never echo a password
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return f"{shown} contains spaces or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in 0..65535
    except ValueError as exc:
        return f"{shown} is not a valid URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"{shown} must start with http:// or https://"
    if not parts.hostname:
        return f"{shown} has no host"
    if parts.username is not None or parts.password is not None:
        return (
            f"{shown} must not carry a user or password (the API key comes from "
            "apiKeyEnv, never from the project file)"
        )
    if port == 0:
        return f"{shown} has port 0"
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return f"{shown} must be the API's base URL, scheme://host[:port], with no path or query"
    return None


def _inside(root: Path, relative: str, source: SourceMap, path: YamlPath) -> Path:
    """`relative` under `root`, refused when a symlink takes it outside."""
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root.resolve()):
        at = source.value(path)
        raise ProjectFileError(
            [
                Diagnostic(
                    at.file,
                    at.line,
                    at.col,
                    f"state '{relative}' resolves to {resolved}, outside the project folder "
                    "(a symlink?); for state shared between machines use a shared backend",
                )
            ],
            root,
        )
    return resolved


def _leaves(path: Path) -> bool:
    """Whether a project-relative path (or an absolute one) can leave the project."""
    return path.is_absolute() or ".." in path.parts


def _check_vars(values: Any, source: Any, path: tuple[str | int, ...]) -> list[Diagnostic]:
    """A number whose text YAML does not keep (`1.10` → 1.1) would reach
    prompts silently changed: ask for quotes instead."""
    found: list[Diagnostic] = []
    if isinstance(values, dict):
        for key, value in values.items():
            found += _check_vars(value, source, (*path, key))
    elif isinstance(values, list):
        for index, value in enumerate(values):
            found += _check_vars(value, source, (*path, index))
    elif isinstance(values, int | float) and not isinstance(values, bool):
        info = source.scalars.get(path)
        if info is not None and info.plain and yaml11_surprise(info, values) is None:
            canonical = str(values)
            if info.text != canonical:
                at = source.value(path)
                found.append(
                    Diagnostic(
                        at.file,
                        at.line,
                        at.col,
                        f"'{info.text}' is read as the number {canonical}; "
                        f'write "{info.text}" in quotes to keep it as written',
                    )
                )
    return found


def parse_dotenv(text: str) -> dict[str, str]:
    """`KEY=value` lines as python-dotenv reads them (the reader docker compose
    and most tools agree with): `export`, single and double quotes, a `#`
    comment after a quoted value, escapes in double quotes. No `${X}`
    expansion: a value is what the file says. A line without `=` is skipped."""
    import dotenv

    values = dotenv.dotenv_values(stream=io.StringIO(text), interpolate=False)
    return {key: value for key, value in values.items() if value is not None}
