"""The Python API: everything the CLI does, as plain calls. The CLI only parses and prints.

Two parts, like the flow:

- project functions: `load_project`, `validate`, `resolve`, `render`,
  `render_preset`, `init_project`, `write_schemas`/`check_schemas`, and the
  saved-plan files (`save_plan_file`, `load_plan_file`);
- `Workspace`: one environment, opened (its API endpoint, its state store,
  the embedded emulator when the environment asks for one), with `plan`,
  `apply`, `import_state` and `export`. Each has an `_async` twin for
  callers already inside an event loop; the plain ones run their own loop.

    project = load_project(Path("."))
    with Workspace(project, "staging") as ws, ws.locked():
        run = ws.plan(PlanOptions(prune=True))
        report = ws.apply(run.plan)

Errors are `AvatarsyncError`s (a `ManifestError` carries every diagnostic at
once); nothing here prints.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fnmatch
import gc
import hashlib
import json
import signal
import time
import uuid
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, partial
from importlib import resources as package_files
from pathlib import Path
from typing import Any, TypeVar

from avatarsync.avatarium.chat import ChatSummary, ChatTerminal
from avatarsync.avatarium.rendering import profile_document
from avatarsync.avatarium.results import SuiteResult, TestResult
from avatarsync.catalog import EQUOS_DEFAULT_URL
from avatarsync.conversations import presets as _presets
from avatarsync.conversations.presets import ExportedPresets, load_presets_file
from avatarsync.conversations.sessions import (
    Conversation,
    SessionOptions,
    SessionSpec,
    StartedSession,
    get_conversation,
    list_conversations,
    start_conversation_or_undo,
    stop_conversation,
)
from avatarsync.conversations.smoke import SmokeReport, run_smoke
from avatarsync.errors import (
    AvatarsyncError,
    Diagnostic,
    Interrupted,
    LockError,
    ManifestError,
    PlanError,
    ProjectError,
    PromotionError,
    ScaffoldError,
    SessionError,
    StalePlanError,
    TransportError,
    UnknownAddressError,
)
from avatarsync.interrupts import SIGNALS, cancel_on_signals, install_handlers
from avatarsync.manifests.lint import lint
from avatarsync.manifests.loader import dump_yaml, load_file
from avatarsync.manifests.manifest_set import ManifestSet, load_manifests
from avatarsync.manifests.project import Environment, Project, StateSettings, find_project
from avatarsync.manifests.resolve import FileDigest, Resolution, resolve_environment
from avatarsync.manifests.schema import generate_schemas
from avatarsync.planning.apply import apply_plan
from avatarsync.planning.builder import (
    PlanOptions,
    build_plan,
    desired_fingerprint,
    resource_fingerprint,
)
from avatarsync.planning.compare import EnvironmentDiff, FieldDifference, compare_environments
from avatarsync.planning.export import ExportResult, export_manifests
from avatarsync.planning.live import fetch_live
from avatarsync.planning.plan import Action, Plan
from avatarsync.planning.report import ApplyReport, Outcome
from avatarsync.planning.saved import (
    PLAN_SCHEMA_NAME,
    load_plan_file,
    plan_schema_text,
    save_plan_file,
)
from avatarsync.planning.scheduler import DagScheduler
from avatarsync.progress import EventSink, LockWaiting
from avatarsync.providers.equos import EquosClient
from avatarsync.resources import (
    Address,
    DesiredResource,
    DesiredState,
    Kind,
    Position,
)
from avatarsync.secret import MASK, Secret
from avatarsync.state import (
    DocumentState,
    FileStateStore,
    ResourceState,
    State,
    StateOp,
    StateStore,
    open_settings,
    open_store,
)
from avatarsync.state.manage import copy_state, parse_location
from avatarsync.state.manage import move as move_address
from avatarsync.state.manage import remove as remove_addresses
from avatarsync.state.manage import resolve_address as resolve_state_address
from avatarsync.vcs import checkout

__all__ = [
    "ChatSummary",
    "Conversation",
    "EnvironmentDiff",
    "ExportedPresets",
    "FieldDifference",
    "ImportReport",
    "PlanOptions",
    "PlanRun",
    "SessionOptions",
    "SessionSpec",
    "SmokeReport",
    "StartedSession",
    "StateMigration",
    "SuiteResult",
    "TestResult",
    "Workspace",
    "chat",
    "check_promotion",
    "check_schemas",
    "diff_environments",
    "export_presets",
    "init_project",
    "list_state",
    "load_plan_file",
    "load_presets_file",
    "load_project",
    "load_values",
    "migrate_state",
    "move_state",
    "parse_assignments",
    "remove_state",
    "render",
    "render_preset",
    "resolve",
    "run_conversation_tests",
    "save_plan_file",
    "schema_files",
    "show_state",
    "state_location",
    "unlock_state",
    "validate",
    "write_schemas",
]


# --- manifests: load, validate, resolve, render ------------------------------------


def load_project(directory: Path | None = None, project_file: Path | None = None) -> Project:
    """The project for a directory (searching upwards) or an explicit project file."""
    return find_project(directory, project_file)


def _load_manifest_set(project: Project) -> ManifestSet:
    """Every manifest document of the project; its diagnostics include the globs'."""
    files, problems = project.manifest_files()
    return load_manifests(files, problems)


def validate(
    project: Project, env_name: str | None = None, *, online: bool = False
) -> list[Diagnostic]:
    """Check everything offline for one environment (or all of them).

    Returns the warnings; raises ManifestError with every error (and the
    warnings) at once. An unset `${env.X}` is only a warning here, so CI can
    validate without every environment's secrets. `online` also asks each
    environment's Avatarium whether every AgentProfile's avatar exists.
    """
    names = [project.environment(env_name).name] if env_name else list(project.environments)
    manifests = _load_manifest_set(project)
    found = list(manifests.diagnostics)
    digests: dict[Path, FileDigest] = {}
    for name in names:
        resolution, problems = _resolve(project, name, manifests, offline=True, digests=digests)
        found += problems
        if resolution is not None:
            found += lint(project, resolution)
            if online and resolution.complete:
                from avatarsync.avatarium.online import check_avatars

                profiles = list(resolution.state.profiles.values())
                found += check_avatars(project, resolution.environment, profiles)
    diagnostics = sorted(set(found))
    if any(d.severity == "error" for d in diagnostics):
        raise ManifestError(diagnostics)
    return diagnostics


def resolve(project: Project, env_name: str) -> DesiredState:
    """The desired state of one environment; ManifestError lists every problem."""
    with _bulk():
        return _resolution(project, env_name).state


@contextmanager
def _bulk() -> Iterator[None]:
    """Build many long-lived, acyclic objects without the cyclic GC scanning
    them again and again: at 10,000 characters it more than doubled the time
    of loading and resolving. What was built is then frozen (left out of
    later scans); reference counting still frees it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def _resolution(project: Project, env_name: str) -> Resolution:
    """Like `resolve`, keeping what renders and checks need (sources, labels).

    Prompt templates are checked too: a broken preset fails here, not when a
    session starts.
    """
    manifests = _load_manifest_set(project)
    resolution, problems = _resolve(project, env_name, manifests, offline=False, digests={})
    problems = list(manifests.diagnostics) + problems
    if resolution is not None:
        problems += lint(project, resolution)
    errors = sorted({d for d in problems if d.severity == "error"})
    if errors or resolution is None:
        raise ManifestError(errors)
    return resolution


def render_preset(
    project: Project, env_name: str, preset_key: str, values: Mapping[str, Any]
) -> dict[str, str]:
    """The final `promptTemplateVars` of a preset in one environment.

    `values` are the caller's (command line, session start); they cannot
    replace vars, env or character.
    """
    resolution = _resolution(project, env_name)
    return _render_preset(project, resolution, preset_key, values)


def render(
    project: Project,
    env_name: str,
    address: str | None = None,
    values: Mapping[str, Any] | None = None,
) -> str:
    """YAML of the resolved desired state (secrets masked) and rendered presets.

    `address` (`Kind/name`, kind case-insensitive) limits the output to one
    resource or preset.
    """
    resolution = _resolution(project, env_name)
    state = resolution.state
    wanted = _parse_address(address, state) if address else None
    documents: list[dict[str, Any]] = []
    for resource_address, resource in state.resources.items():
        if wanted is None or wanted == resource_address:
            documents.append(_resource_document(project, resource))
    for key, preset in state.presets.items():
        if wanted is None or wanted == Address(Kind.CONVERSATION_PRESET.value, key):
            rendered = _presets.render_project_preset(
                project, resolution, key, values or {}, partial=True
            )
            spec: dict[str, Any] = {
                "character": preset.character,
                "maxSeconds": preset.max_seconds,
                "promptCtx": preset.prompt_ctx,
            }
            if preset.inputs is not None:
                spec["inputs"] = _presets.inputs_document(preset.inputs)
            spec["promptTemplateVars"] = rendered
            documents.append({"kind": Kind.CONVERSATION_PRESET.value, "name": key, "spec": spec})
    for key, profile in state.profiles.items():
        if wanted is None or wanted == Address(Kind.AGENT_PROFILE.value, key):
            documents.append(profile_document(profile))
    env = resolution.environment
    header = f"# avatarsync render: environment '{env.name}', client '{env.client}'\n"
    if not documents:
        return header
    return header + dump_yaml(documents, documents=True)


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """`key=value` pairs (from --set) as a mapping; dotted keys nest:
    `customer.name=Ann` gives {"customer": {"name": "Ann"}}. Values are text."""
    result: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SessionError(f"--set expects key=value, got '{item}'")
        parts = key.strip().split(".")
        target = result
        for part in parts[:-1]:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise SessionError(f"--set {key}: '{part}' is already set to a value")
            target = nested
        target[parts[-1]] = value
    return result


def load_values(path: Path) -> dict[str, Any]:
    """A YAML mapping of caller values (--values FILE)."""
    loaded = load_file(path, str(path))
    if loaded.diagnostics:
        raise ManifestError(loaded.diagnostics)
    if not loaded.documents:
        return {}
    data = loaded.documents[0].data
    if len(loaded.documents) > 1 or not isinstance(data, dict):
        raise SessionError(f"{path}: a values file holds one mapping of name: value")
    return data


def _resolve(
    project: Project,
    env_name: str,
    manifests: ManifestSet,
    *,
    offline: bool,
    digests: dict[Path, FileDigest],
) -> tuple[Resolution | None, list[Diagnostic]]:
    env = project.environment(env_name)
    # A file (or folder) that could not be read hides its resources: saying
    # that links to them dangle would only bury the real error.
    partial = any(d.severity == "error" for d in manifests.diagnostics)
    return resolve_environment(
        project, env, manifests, offline=offline, digests=digests, partial=partial
    )


def _render_preset(
    project: Project, resolution: Resolution, preset_key: str, values: Mapping[str, Any]
) -> dict[str, str]:
    return _presets.render_project_preset(project, resolution, preset_key, values)


def export_presets(project: Project, env_name: str) -> dict[str, Any]:
    """The presets file of one environment (`presets export`): per preset the
    character id from state, fixed values, input templates; nothing secret.
    Reads only local files (manifests, state): no request."""
    resolution = _resolution(project, env_name)
    ids = _state_ids(open_store(project, resolution.environment).load())
    return _presets.export_presets(project, resolution, ids)


def _state_ids(state: State) -> dict[Address, str]:
    return {address: entry.id for address, entry in state.resources.items()}


def _parse_address(text: str, state: DesiredState) -> Address:
    try:
        address = Address.parse_kind_any_case(text)
    except ValueError as exc:
        raise UnknownAddressError(f"{exc} (e.g. Character/tommy)") from None
    kind = address.kind
    known = (
        set(state.resources)
        | {Address(Kind.CONVERSATION_PRESET.value, key) for key in state.presets}
        | {Address(Kind.AGENT_PROFILE.value, key) for key in state.profiles}
    )
    if address not in known:
        same_kind = sorted(a.key for a in known if a.kind == kind)
        listing = ", ".join(same_kind) or "none"
        raise UnknownAddressError(
            f"{address} is not defined in environment '{state.environment}' "
            f"({kind} keys: {listing})"
        )
    return address


def _resource_document(project: Project, resource: DesiredResource) -> dict[str, Any]:
    spec = {
        name: (MASK if name in resource.sensitive_fields and value is not None else value)
        for name, value in resource.spec.items()
    }
    if resource.documents:
        spec["documents"] = [
            {
                "name": document.name,
                "description": MASK
                if document.sensitive_description and document.description
                else document.description,
                "mimeType": document.mime_type,
                "path": project.display(document.path),
                "size": document.size,
                "sha256": document.sha256,
            }
            for document in resource.documents
        ]
    doc: dict[str, Any] = {"kind": resource.kind, "name": resource.key}
    if resource.inline_owner is not None:
        doc["inlineOf"] = str(resource.inline_owner)
    doc["spec"] = spec
    return doc


# --- scaffolding and schemas ------------------------------------------------------

_SCAFFOLD_FILES = ("avatarsync.yaml", "characters/assistant.yaml")
_GITIGNORE = ".avatarsync/\n.env\n.env.*\n"


def init_project(directory: Path, name: str | None = None) -> list[Path]:
    """Write a small project that validates into `directory`; never overwrite.

    Returns the files written. The schemas go to `schemas/` so editors
    validate the files at once.
    """
    directory = directory.resolve()
    project_name = name or _default_name(directory)
    planned: dict[Path, str] = {}
    scaffold = package_files.files("avatarsync") / "scaffold"
    for relative in _SCAFFOLD_FILES:
        text = (scaffold / relative).read_text(encoding="utf-8")
        planned[directory / relative] = text.replace("__PROJECT_NAME__", project_name)
    for schema_name, text in schema_files().items():
        planned[directory / "schemas" / schema_name] = text
    existing = sorted(str(path) for path in planned if path.exists())
    if existing:
        raise ScaffoldError(
            "init does not overwrite files; already present: " + ", ".join(existing)
        )
    gitignore = directory / ".gitignore"
    if not gitignore.exists():
        planned[gitignore] = _GITIGNORE
    written: list[Path] = []
    for path, text in planned.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def schema_files() -> dict[str, str]:
    """File name → text of every JSON Schema: the kinds, the project file, saved
    plans, presets exports."""
    return {
        **generate_schemas(),
        PLAN_SCHEMA_NAME: plan_schema_text(),
        _presets.EXPORT_SCHEMA_NAME: _presets.export_schema_text(),
    }


def write_schemas(out_dir: Path) -> list[Path]:
    """Write every JSON Schema into `out_dir`; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in schema_files().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check_schemas(out_dir: Path) -> list[str]:
    """Names of schema files in `out_dir` that are missing or out of date."""
    stale = []
    for name, text in schema_files().items():
        path = out_dir / name
        try:
            current = path.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            stale.append(name)
    return stale


def _emulator_db(root: Path, env_name: str) -> Path:
    """Where an `emulator: true` environment's embedded organisation is kept."""
    return root / ".avatarsync" / "emulator" / f"{env_name}.sqlite"


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database (the emulator may be writing)."""
    import sqlite3

    target.parent.mkdir(parents=True, exist_ok=True)
    with (
        contextlib.closing(sqlite3.connect(source)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def _default_name(directory: Path) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in directory.name)
    return cleaned.strip("-_") or "avatars"


# --- one environment: plan, apply, import, export --------------------------------


@dataclass(frozen=True)
class PlanRun:
    plan: Plan
    requests: int  # API requests the plan made (all reads)
    notes: tuple[str, ...] = ()  # one-line remarks for the user (e.g. what a gate checked)


@dataclass
class ImportReport:
    environment: str
    adopted: list[tuple[Address, str]] = field(default_factory=list)
    already: list[Address] = field(default_factory=list)
    unmatched_desired: list[Address] = field(default_factory=list)
    unmatched_live: list[tuple[str, str]] = field(default_factory=list)  # (kind, id)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Workspace:
    """One environment, opened: API endpoint, state store, optional emulator.

    `env` is an environment name (or an `Environment` of `project`). The
    desired state is resolved once: for the embedded emulator when the
    workspace opens (bad input fails before a server starts), otherwise while
    the first plan reads live state (the read waits on the network; it
    changes nothing, so bad input still fails before any write);
    `resolve_first=False` never resolves before it is used (export). An environment with
    `emulator: true` and no `url` gets the embedded emulator, started for as
    long as the workspace is open and persisted next to the state
    (`.avatarsync/emulator/<env>.sqlite`), so plan and apply in separate
    processes see the same organisation.
    """

    def __init__(
        self,
        project: Project,
        env: str | Environment,
        *,
        parallelism: int = 10,
        client_factory: Callable[[str, Secret, int], EquosClient] | None = None,
        resolve_first: bool = True,
        on_event: EventSink | None = None,
    ) -> None:
        self.project = project
        self.on_event = on_event  # retries, pacing, pages read, lock waits (see progress)
        self._resolve_first = resolve_first
        self.env = project.environment(env) if isinstance(env, str) else env
        self.parallelism = parallelism
        self.store: StateStore = open_store(project, self.env)
        self._client_factory = client_factory or (
            lambda url, key, n: EquosClient(url, key, max_concurrency=n)
        )
        self._stack = ExitStack()
        self._stack.callback(self.store.close)  # a database connection, a client
        self.base_url: str | None = None
        self._key: Secret | None = None

    def __enter__(self) -> Workspace:
        env = self.env
        if self._resolve_first and env.emulator and not env.url:
            _ = self.desired  # bad input fails here, before a server starts
        if env.emulator and not env.url:
            from avatarsync.emulator import DEFAULT_API_KEY, EmulatorConfig, EmulatorServer

            db = _emulator_db(self.project.root, env.name)
            db.parent.mkdir(parents=True, exist_ok=True)
            server = EmulatorServer(EmulatorConfig(db=str(db))).start()
            self._stack.callback(server.stop)
            self.base_url, self._key = server.url, Secret(DEFAULT_API_KEY)
        else:
            key = self.project.api_key(env)
            if key is None:
                if env.api_key_env is None:
                    raise ProjectError(
                        f"environment {env.name!r} needs an API key: set `apiKeyEnv` (the name "
                        f"of the variable holding it) in {self.project.file.name}"
                    )
                looked = ", ".join(str(p) for p in self.project.dotenv_files(env))
                raise ProjectError(
                    f"environment {env.name!r} needs an API key in {env.api_key_env}: it is not "
                    f"set in the process environment, nor in {looked}"
                )
            self.base_url, self._key = env.url or EQUOS_DEFAULT_URL, key
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    @cached_property
    def desired(self) -> DesiredState:
        """The manifests resolved for this environment (ManifestError lists every problem)."""
        return resolve(self.project, self.env.name)

    async def _desired_async(self) -> DesiredState:
        if "desired" in self.__dict__:
            return self.desired
        return await asyncio.to_thread(lambda: self.desired)

    def client(self) -> EquosClient:
        """A new API client for this environment (use as `async with`)."""
        if self.base_url is None or self._key is None:
            raise AvatarsyncError("open the workspace first: `with Workspace(...) as ws:`")
        client = self._client_factory(self.base_url, self._key, self.parallelism)
        client.on_event = self.on_event
        return client

    @asynccontextmanager
    async def _connected(self) -> AsyncIterator[EquosClient]:
        """A client whose connection failures name the environment and its URL."""
        async with self.client() as client:
            try:
                yield client
            except TransportError as exc:
                raise TransportError(
                    f"{exc.detail}; cannot reach environment {self.env.name!r} at "
                    f"{self.base_url}: check its `url` in {self.project.file.name} and that "
                    "the service is up",
                    method=exc.method,
                    path=exc.path,
                ) from None

    def source_of(self, address: Address) -> Position | None:
        """Where the manifests define `address` (for annotations), if they do."""
        resource = self.desired.resources.get(address)
        return resource.position if resource is not None else None

    @contextmanager
    def locked(self, timeout: float = 0.0) -> Iterator[None]:
        """Hold the environment's state lock (LockError after `timeout` seconds).

        The wait is made of short tries so that a LockWaiting event reports
        it every few seconds: a CI step waiting for a lock must not look hung.
        """
        with _hold_lock(self.store, self.env.name, timeout, self.on_event):
            yield

    # -- plan --------------------------------------------------------------

    def plan(self, options: PlanOptions | None = None) -> PlanRun:
        """What apply would change. Reads only; never refuses (see `Plan.check_safety`)."""
        return asyncio.run(_interruptible(self.plan_async(options)))

    async def plan_async(self, options: PlanOptions | None = None) -> PlanRun:
        state = self.store.load()
        self._check_client(state)
        self._check_sources(state)
        async with self._connected() as client:
            # The read is mostly waiting for the network: resolve the
            # manifests meanwhile (reads change nothing, so bad input still
            # fails before any write).
            with _bulk():  # a bounded read: tens of thousands of objects, no cycles to find
                reading = asyncio.ensure_future(fetch_live(client, self.env.client))
                try:
                    desired = await self._desired_async()
                except BaseException:
                    reading.cancel()
                    with contextlib.suppress(BaseException):
                        await reading
                    raise
                live = await reading
            requests = client.total_requests
        with _bulk():
            plan = build_plan(
                desired,
                live,
                state,
                options=options or PlanOptions(),
                plan_id=uuid.uuid4().hex,
                created_at=_now(),
                protected=self.env.protect,
            )
        return PlanRun(plan, requests)

    def _check_sources(self, state: State) -> None:
        """A glob that matches nothing while state has resources from it is an
        error, never an empty set: a moved folder must not plan deletes."""
        empty = self.project.empty_globs()
        if not empty or not state.resources:
            return
        problems = []
        for index, pattern in enumerate(self.project.manifests):
            if pattern not in empty:
                continue
            lost = sorted(
                str(a)
                for a, e in state.resources.items()
                if e.source is not None and fnmatch.fnmatchcase(e.source, pattern)
            )
            if lost:
                at = self.project.manifest_positions[index]
                shown = ", ".join(lost[:5]) + (" …" if len(lost) > 5 else "")
                problems.append(
                    Diagnostic(
                        at.file,
                        at.line,
                        at.col,
                        f"manifest glob '{pattern}' matches no file, but the state of "
                        f"{self.env.name!r} has {len(lost)} resource(s) applied from it "
                        f"({shown}): restore the files or fix the glob",
                    )
                )
        if problems:
            raise ManifestError(problems)

    def _check_client(self, state: State) -> None:
        if state.resources and state.client != self.env.client:
            raise ProjectError(
                f"state for {self.env.name!r} was written for client {state.client!r} but the "
                f"project now says {self.env.client!r}; changing an environment's client would "
                "orphan everything it manages"
            )

    # -- apply -------------------------------------------------------------

    def apply(
        self,
        plan: Plan,
        *,
        saved: bool = False,
        allow_destroy: bool = False,
        allow_delete_all: bool | None = None,
        confirm: Callable[[Plan], bool] | None = None,
        on_outcome: Callable[[Outcome], None] = lambda _: None,
    ) -> ApplyReport:
        """Apply `plan`; call under `locked()`.

        The plan's safety is checked first (UnsafePlanError: a protected
        environment's deletes and replaces need `allow_destroy`, emptying the
        environment needs `allow_delete_all`); a `saved` plan (from a file) is
        also checked against the state, manifests and live state it was made
        from. Then `confirm(plan)`, when given, may still say no
        (AvatarsyncError "Aborted"); nothing was written by then.
        """
        return asyncio.run(
            self.apply_async(
                plan,
                saved=saved,
                allow_destroy=allow_destroy,
                allow_delete_all=allow_delete_all,
                confirm=confirm,
                on_outcome=on_outcome,
            )
        )

    async def apply_async(
        self,
        plan: Plan,
        *,
        saved: bool = False,
        allow_destroy: bool = False,
        allow_delete_all: bool | None = None,
        confirm: Callable[[Plan], bool] | None = None,
        on_outcome: Callable[[Outcome], None] = lambda _: None,
    ) -> ApplyReport:
        desired = self.desired
        plan.check_safety(
            protect=self.env.protect,
            allow_destroy=allow_destroy,
            allow_delete_all=allow_delete_all,
        )
        state = self.store.load()
        async with self._connected() as client:
            if saved:
                await self._check_fresh(plan, desired, state, client)
            if confirm is not None and not confirm(plan):
                raise AvatarsyncError("Aborted: nothing was applied.")
            before = client.total_requests
            stop = asyncio.Event()
            try:
                with _graceful_interrupts(stop) as caught:
                    report = await apply_plan(
                        plan,
                        desired,
                        client,
                        self.store,
                        state,
                        on_outcome=on_outcome,
                        scheduler=DagScheduler(self.parallelism, stop=stop),
                    )
                report.interrupted = caught.name
                if report.ok:
                    self.store.record(state, StateOp("applied-plan", value=plan.plan_id))
                    self.store.record(state, self._last_apply(plan))
            finally:
                # Fold this run's records into the state, whatever happened.
                self.store.compact(state)
            report.requests = client.total_requests - before
        return report

    async def _check_fresh(
        self, plan: Plan, desired: DesiredState, state: State, client: EquosClient
    ) -> None:
        if plan.environment != self.env.name:
            raise PlanError(
                f"the saved plan is for environment {plan.environment!r}, not {self.env.name!r}"
            )
        if plan.plan_id in state.applied_plans:
            raise StalePlanError("this saved plan has already been applied; make a new plan")
        # An empty state has no lineage yet (it is made on first save).
        moved = plan.state_serial != state.serial or (
            state.serial > 0 and plan.state_lineage != state.lineage
        )
        if moved:
            raise StalePlanError(
                "the state changed since this plan was saved (another apply ran); make a new plan"
            )
        if desired_fingerprint(desired) != plan.desired_fingerprint:
            raise StalePlanError("the manifests changed since this plan was saved; make a new plan")
        live = await fetch_live(client, self.env.client)
        if live.fingerprint() != plan.live_fingerprint:
            raise StalePlanError(
                "live resources changed since this plan was saved (edited outside this plan); "
                "make a new plan"
            )

    def record_in_sync(self, plan: Plan) -> None:
        """After a plan with nothing to change, record lastApply as an apply
        would: the environment runs these manifests (e.g. only an AgentProfile
        or a ConversationTest changed), which is what promote checks. Hold the lock."""
        if plan.has_changes:
            raise PlanError("the plan has changes: apply it")
        state = self.store.load()
        self.store.record(state, self._last_apply(plan))
        self.store.compact(state)

    def _last_apply(self, plan: Plan) -> StateOp:
        """What promote checks later: which commit and manifests this apply came from."""
        at = checkout(self.project.root)
        record = {
            "planId": plan.plan_id,
            "at": _now(),
            "commit": at.commit,
            "dirty": at.dirty,
            "manifests": self.sources_fingerprint,
            "desired": desired_fingerprint(self.desired),
        }
        return StateOp("last-apply", value=json.dumps(record, sort_keys=True))

    @cached_property
    def sources_fingerprint(self) -> str:
        """A hash of every file the manifests come from (the project file, the
        manifests, the documents): the same in every environment, so it says
        whether two environments were applied from the same checkout."""
        digest = hashlib.sha256()
        files = [(self.project.display(self.project.file), self.project.file)]
        manifest_files, _ = self.project.manifest_files()
        files += [(display, path) for path, display in manifest_files]
        documents = {
            self.project.display(d.path): d.path
            for r in self.desired.resources.values()
            for d in r.documents
        }
        files += sorted(documents.items())
        for display, path in files:
            try:
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                content = "unreadable"
            digest.update(f"{display}\0{content}\n".encode())
        return "sha256:" + digest.hexdigest()

    # -- sessions: Equos conversations from presets --------------------------

    @cached_property
    def resolution(self) -> Resolution:
        """The manifests resolved with what renders need (sources, for file:line)."""
        return _resolution(self.project, self.env.name)

    def session_spec(
        self,
        preset: str,
        values: Mapping[str, Any] | None = None,
        options: SessionOptions | None = None,
    ) -> SessionSpec:
        """What starting `preset` would send: rendered, its character id from
        state. Every input error is raised here, before any request."""
        ids = _state_ids(self.store.load())
        return _presets.project_spec(
            self.project, self.resolution, ids, preset, values or {}, options or SessionOptions()
        )

    def start_session(
        self,
        preset: str,
        values: Mapping[str, Any] | None = None,
        options: SessionOptions | None = None,
    ) -> StartedSession:
        """Start a conversation from a preset (it runs, and bills, until stopped)."""
        return asyncio.run(_interruptible(self.start_session_async(preset, values, options)))

    async def start_session_async(
        self,
        preset: str,
        values: Mapping[str, Any] | None = None,
        options: SessionOptions | None = None,
    ) -> StartedSession:
        spec = self.session_spec(preset, values, options)
        async with self._connected() as client:
            return await start_conversation_or_undo(client, spec)

    def stop_session(self, conversation_id: str) -> Conversation:
        """Stop a conversation of this environment (its `client`: nothing else
        in the organisation is touched); one already ended is read back."""
        return asyncio.run(_interruptible(self.stop_session_async(conversation_id)))

    async def stop_session_async(self, conversation_id: str) -> Conversation:
        async with self._connected() as client:
            current = await get_conversation(client, conversation_id)
            if current.client != self.env.client:
                raise SessionError(
                    f"conversation {conversation_id} is not environment {self.env.name!r}'s "
                    f"(its client is {current.client!r}, not {self.env.client!r}): not stopped"
                )
            if not current.running:
                return current
            return await stop_conversation(client, conversation_id)

    def get_session(self, conversation_id: str) -> Conversation:
        """A conversation with its status, transcript and timeline."""
        return asyncio.run(_interruptible(self.get_session_async(conversation_id)))

    async def get_session_async(self, conversation_id: str) -> Conversation:
        async with self._connected() as client:
            return await get_conversation(client, conversation_id)

    def list_sessions(self, status: str | None = None) -> list[Conversation]:
        """The conversations with this environment's client (newest first)."""
        return asyncio.run(_interruptible(self.list_sessions_async(status)))

    async def list_sessions_async(self, status: str | None = None) -> list[Conversation]:
        async with self._connected() as client:
            return await list_conversations(client, self.env.client, status)

    def smoke(
        self,
        preset: str,
        values: Mapping[str, Any] | None = None,
        options: SessionOptions | None = None,
        *,
        timeout: float = 30.0,
        on_signal: Callable[[str], None] | None = None,
    ) -> SmokeReport:
        """Start a conversation, check it runs with the expected character and
        prompt vars, stop it: on every exit path, SIGINT and SIGTERM included
        (then Interrupted, once the stop is done)."""
        report = SmokeReport(preset, self.env.name)
        try:
            return asyncio.run(
                cancel_on_signals(
                    self.smoke_async(preset, values, options, timeout=timeout, report=report),
                    on_signal=on_signal,
                )
            )
        except Interrupted as exc:
            raise Interrupted(f"{exc}; {_smoke_outcome(report)}") from None

    async def smoke_async(
        self,
        preset: str,
        values: Mapping[str, Any] | None = None,
        options: SessionOptions | None = None,
        *,
        timeout: float = 30.0,
        report: SmokeReport | None = None,
    ) -> SmokeReport:
        spec = self.session_spec(preset, values, options)
        character = self.resolution.state.presets[preset].character
        async with self._connected() as client:
            return await run_smoke(
                client,
                spec,
                environment=self.env.name,
                character=character,
                timeout=timeout,
                report=report,
            )

    # -- drift ---------------------------------------------------------------

    def drift(self) -> PlanRun:
        """Only what changed outside git since the last apply: a plan of the
        changes flagged as drift (live edited or deleted by hand)."""
        run = self.plan()
        drifted = tuple(c for c in run.plan.changes if c.drift)
        return PlanRun(dataclasses.replace(run.plan, changes=drifted, retained=()), run.requests)

    # -- export ------------------------------------------------------------

    def export(self, out_dir: Path) -> ExportResult:
        """Write manifests, a project file and state for everything live with
        this environment's client into `out_dir`; refuses to overwrite files."""
        return asyncio.run(_interruptible(self.export_async(out_dir)))

    async def export_async(self, out_dir: Path) -> ExportResult:
        async with self._connected() as client:
            live = await fetch_live(client, self.env.client)
        known = self.store.load()  # which fields held a secret: never written out
        result = export_manifests(
            live,
            secret_fields={
                (a.kind, r.id): r.sensitive for a, r in known.resources.items() if r.sensitive
            },
        )
        files = dict(result.files)
        if not (out_dir / "avatarsync.yaml").exists():
            files["avatarsync.yaml"] = _project_file(self.env, result.secret_variables)
        clashes = [p for p in files if (out_dir / p).exists()]
        if clashes:
            raise ProjectError(
                f"export would overwrite {', '.join(sorted(clashes))} in {out_dir}; "
                "export into an empty directory"
            )
        for rel, text in files.items():
            path = out_dir / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        state = State(environment=self.env.name, client=self.env.client)
        for address, remote_id in result.ids.items():
            current = live.get(address.kind, remote_id)
            state.resources[address] = ResourceState(
                remote_id,
                None,
                current.updated_at if current else None,
                sensitive=result.sensitive.get(address, frozenset()),
            )
        store = FileStateStore(
            out_dir / ".avatarsync" / "state" / f"{self.env.name}.json",
            environment=self.env.name,
            client=self.env.client,
        )
        store.save(state)
        if self.env.emulator and not self.env.url:
            # The embedded emulator's organisation lives in this project's
            # folder: the exported project gets a copy, or its first plan
            # would start a new, empty emulator and plan to create everything.
            _copy_sqlite(
                _emulator_db(self.project.root, self.env.name),
                _emulator_db(out_dir, self.env.name),
            )
            result.notes.append(
                f"copied the embedded emulator's organisation of {self.env.name!r} into "
                f"{_emulator_db(out_dir, self.env.name)}"
            )
        gitignore = out_dir / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text(_GITIGNORE, encoding="utf-8")
            result.files[".gitignore"] = _GITIGNORE
        return result

    # -- import ------------------------------------------------------------

    def import_state(self) -> ImportReport:
        """Adopt live resources into state by natural key; write nothing remote."""
        return asyncio.run(_interruptible(self.import_state_async()))

    async def import_state_async(self) -> ImportReport:
        desired = self.desired
        state = self.store.load()
        self._check_client(state)
        async with self._connected() as client:
            live = await fetch_live(client, self.env.client)
        plan = build_plan(desired, live, state, plan_id="import", created_at=_now())
        report = ImportReport(self.env.name)
        for change in plan.changes:
            address = change.address
            if change.adopt and change.remote_id:
                current = live.get(address.kind, change.remote_id)
                entry = ResourceState(
                    change.remote_id, None, current.updated_at if current else None
                )
                resource = desired.resources[address]
                if change.action is Action.NOOP:
                    entry.fingerprint = resource_fingerprint(resource)
                if current is not None:
                    live_docs = {d.name: d for d in current.documents}
                    for doc in resource.documents:
                        match = live_docs.get(doc.name)
                        if match is not None and match.size == doc.size:
                            entry.documents[doc.name] = DocumentState(match.id, doc.sha256)
                state.resources[address] = entry
                report.adopted.append((address, change.remote_id))
            elif address in state.resources:
                report.already.append(address)
            elif change.action is Action.CREATE:
                report.unmatched_desired.append(address)
        claimed = {(a.kind, r.id) for a, r in state.resources.items()}
        report.unmatched_live = sorted(k for k in live.resources if k not in claimed)
        if report.adopted:
            self.store.save(state)
        return report


# --- between environments: promote, diff ------------------------------------------


def check_promotion(
    project: Project,
    source: str,
    *,
    parallelism: int = 10,
    on_event: EventSink | None = None,
    skip_tests: bool = False,
) -> PlanRun:
    """Refuse (PromotionError) unless `source`'s last apply was from the manifests
    of this checkout, its conversation tests passed on them (unless `skip_tests`)
    and it has no pending changes or drift; returns its plan, with a note on the
    tests."""
    from avatarsync.avatarium.gate import check_tests_passed

    with Workspace(project, source, parallelism=parallelism, on_event=on_event) as ws:
        recorded = ws.store.load()
        last = recorded.last_apply
        if not last:
            raise PromotionError(
                f"{source!r} has no recorded apply: apply --env {source} first, test it, "
                "then promote"
            )
        if last.get("manifests") != ws.sources_fingerprint:
            commit = last.get("commit") or "no git commit"
            dirty = " with uncommitted changes" if last.get("dirty") else ""
            raise PromotionError(
                f"{source!r} was last applied from other manifests ({commit}{dirty}, "
                f"{last.get('at')}) than this checkout's: apply --env {source} first, test "
                "it, then promote"
            )
        if skip_tests:
            note = f"conversation tests NOT checked on {source!r} (--skip-tests)"
        else:
            note = check_tests_passed(recorded, ws.desired, ws.sources_fingerprint, source)
        run = dataclasses.replace(ws.plan(), notes=(note,))
    if run.plan.has_changes:
        summary = run.plan.summary
        raise PromotionError(
            f"{source!r} does not match the manifests ({summary['create']} to create, "
            f"{summary['update']} to update, {summary['replace']} to replace, "
            f"{summary['delete']} to delete, {summary['drift']} drifted, {summary['adopt']} "
            f"to adopt): what is promoted must be what was tested; plan --env {source}"
        )
    return run


def run_conversation_tests(
    project: Project,
    env_name: str,
    names: Sequence[str] = (),
    *,
    parallelism: int = 4,
    on_event: EventSink | None = None,
    on_result: Callable[[TestResult], None] | None = None,
) -> SuiteResult:
    """Run the ConversationTests (all, or those named) in one environment, end
    every conversation they start, and record the outcome in its state for
    `promote`. Failing tests are results, not errors; Interrupted on SIGINT/SIGTERM."""
    from avatarsync.avatarium.suite import run_suite, select_tests

    ws = Workspace(project, env_name, parallelism=parallelism, on_event=on_event)
    # Equos is only needed for preset smokes, or to run the embedded emulator.
    selected = select_tests(ws.desired.tests, names)
    needs_workspace = (ws.env.emulator and not ws.env.url) or any(t.preset for t in selected)
    with ws if needs_workspace else contextlib.nullcontext(ws):
        return run_suite(
            ws,
            names,
            parallelism=parallelism,
            on_result=on_result,
        )


def chat(
    project: Project,
    env_name: str,
    profile_key: str,
    terminal: ChatTerminal,
) -> ChatSummary:
    """An interactive conversation with an AgentProfile over `terminal` (lines
    in, streamed text out); the conversation is always ended."""
    from avatarsync.avatarium.chat import run_chat

    ws = Workspace(project, env_name)
    embedded = ws.env.emulator and not ws.env.url
    with ws if embedded else contextlib.nullcontext(ws):
        return run_chat(project, ws.env, ws.desired, profile_key, terminal, ws.base_url)


def diff_environments(
    project: Project,
    source: str,
    target: str,
    *,
    parallelism: int = 10,
    on_event: EventSink | None = None,
) -> EnvironmentDiff:
    """Compare the live resources of two environments key by key (ids differ per
    organisation). A field whose values differ only because each environment's
    manifests (vars) say so is not a difference; links compare by key."""
    sides: list[tuple[Plan, DesiredState]] = []
    for name in (source, target):
        with Workspace(project, name, parallelism=parallelism, on_event=on_event) as ws:
            sides.append((ws.plan().plan, ws.desired))
    return compare_environments(sides[0], sides[1])


# --- state by hand: list, show, rm, mv, migrate, unlock --------------------------


@dataclass(frozen=True)
class StateMigration:
    """What `migrate_state` copied, and from where to where."""

    environment: str
    source: str  # the stores' descriptions (no credentials)
    target: str
    resources: int
    lineage: str


def list_state(project: Project, env_name: str) -> State:
    """The environment's state as its store holds it (read only, no lock)."""
    env = project.environment(env_name)
    with contextlib.closing(open_store(project, env)) as store:
        return store.load()


def show_state(project: Project, env_name: str, address: str) -> tuple[Address, ResourceState]:
    """One address of the state (kind in any case) and what state records for it."""
    state = list_state(project, env_name)
    found = resolve_state_address(state, address)
    return found, state.resources[found]


def remove_state(
    project: Project,
    env_name: str,
    addresses: Iterable[str],
    *,
    lock_timeout: float = 0.0,
    on_event: EventSink | None = None,
) -> list[Address]:
    """Forget addresses, under the lock. Nothing remote is deleted: the objects
    become unmanaged (a later plan adopts them again if the manifests match)."""
    env = project.environment(env_name)
    with (
        contextlib.closing(open_store(project, env)) as store,
        _hold_lock(store, env.name, lock_timeout, on_event),
    ):
        state = store.load()
        found = list(dict.fromkeys(resolve_state_address(state, a) for a in addresses))
        remove_addresses(store, state, found)
    return found


def move_state(
    project: Project,
    env_name: str,
    source: str,
    target: str,
    *,
    lock_timeout: float = 0.0,
    on_event: EventSink | None = None,
) -> tuple[Address, Address]:
    """Rename a key in state, under the lock (the remote object keeps its id:
    no destroy and create). Rename it in the manifests too."""
    env = project.environment(env_name)
    with (
        contextlib.closing(open_store(project, env)) as store,
        _hold_lock(store, env.name, lock_timeout, on_event),
    ):
        state = store.load()
        found = resolve_state_address(state, source, "source")
        return found, move_address(store, state, found, target)


def state_location(project: Project, env_name: str, text: str) -> StateSettings:
    """The backend a command line names: `file`, `file:PATH`, `postgres:VAR[:SCHEMA]`
    or `s3://BUCKET/KEY[?region=R&endpointUrl=URL]` (credentials only in variables)."""
    return parse_location(text, project.root, project.environment(env_name).name)


def migrate_state(
    project: Project,
    env_name: str,
    *,
    source: StateSettings | None = None,
    target: StateSettings | None = None,
    lock_timeout: float = 0.0,
    on_event: EventSink | None = None,
) -> StateMigration:
    """Copy an environment's state between backends, both locked meanwhile.

    Give one side; the other is the environment's `state:` in the project
    file. The usual way, like `terraform init -migrate-state`: edit `state:`
    to the new backend, then migrate `source=` the old one. Or migrate
    `target=` a new one first and edit `state:` after. The source is left
    as it was.
    """
    if (source is None) == (target is None):
        raise ProjectError(
            "state migrate takes one of --from and --to (the other side is `state:`)"
        )
    env = project.environment(env_name)
    src_settings, dst_settings = source or env.state, target or env.state
    if _same_location(src_settings, dst_settings, env):
        raise ProjectError(
            f"environment {env.name!r} already keeps its state there: nothing to migrate "
            f"(edit its `state:` in {project.file.name} to the new backend first, or use --to)"
        )
    with ExitStack() as stack:
        src = stack.enter_context(contextlib.closing(open_settings(project, env, src_settings)))
        dst = stack.enter_context(contextlib.closing(open_settings(project, env, dst_settings)))
        stack.enter_context(_hold_lock(src, env.name, lock_timeout, on_event))
        stack.enter_context(_hold_lock(dst, env.name, lock_timeout, on_event))
        copy = copy_state(src, dst)
        return StateMigration(
            env.name, src.describe(), dst.describe(), len(copy.resources), copy.lineage
        )


def _same_location(a: StateSettings, b: StateSettings, env: Environment) -> bool:
    if a.backend == b.backend == "file":
        return (a.path or env.state_path).resolve() == (b.path or env.state_path).resolve()
    return a == b


def unlock_state(project: Project, env_name: str, lock_id: str) -> str:
    """Break a stale lock if `lock_id` names it (like `terraform force-unlock`);
    what was done, as a sentence. Each backend says what a stale lock is there."""
    env = project.environment(env_name)
    with contextlib.closing(open_store(project, env)) as store:
        return store.force_unlock(lock_id)


_LOCK_POLL = 5.0  # seconds between lock tries (and LockWaiting events)


@contextmanager
def _hold_lock(
    store: StateStore, env_name: str, timeout: float, on_event: EventSink | None
) -> Iterator[None]:
    """Hold `store`'s lock, waiting up to `timeout` s in short tries, each
    reported as a LockWaiting event (a CI step waiting must not look hung)."""
    started: float | None = None  # when the first try found the lock held
    with ExitStack() as stack:
        while True:
            # The first try does not wait, so that a wait is reported as it
            # begins (at 0 s, however slow the store is to answer), then
            # every few seconds.
            remaining = 0.0 if started is None else timeout - (time.monotonic() - started)
            poll = min(max(remaining, 0.0), _LOCK_POLL)
            try:
                stack.enter_context(store.locked(poll))
                break
            except LockError as exc:
                if started is None:
                    started = time.monotonic()
                waited = time.monotonic() - started
                if waited >= timeout:
                    if timeout > 0:
                        raise LockError(f"{exc} (gave up after waiting {waited:.0f} s)") from None
                    raise
                if on_event is not None:
                    on_event(LockWaiting(env_name, waited, timeout, str(exc)))
        yield


T = TypeVar("T")


async def _interruptible(work: Coroutine[Any, Any, T]) -> T:
    """Run `work`, cancelled cleanly by SIGINT or SIGTERM (asyncio's own
    cancellation, so every request in flight is closed): Interrupted. A read
    has nothing to finish, so a later signal cancels it again."""
    return await cancel_on_signals(work, "nothing was written", cancel_again=True)


@dataclass
class _Interrupt:
    name: str | None = None


@contextmanager
def _graceful_interrupts(stop: asyncio.Event) -> Iterator[_Interrupt]:
    """SIGINT or SIGTERM during apply: start nothing new, let calls in flight
    finish, save state (the caller compacts) and report. A second signal
    falls back to the default: stop now."""
    caught = _Interrupt()
    loop = asyncio.get_running_loop()

    def interrupted(sig: signal.Signals) -> None:
        caught.name = sig.name
        stop.set()
        for s in installed:
            loop.remove_signal_handler(s)
        installed.clear()

    installed = install_handlers(loop, {sig: partial(interrupted, sig) for sig in SIGNALS})
    try:
        yield caught
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _smoke_outcome(report: SmokeReport) -> str:
    if report.conversation_id is None:
        return "no conversation was started"
    if report.stopped:
        return f"conversation {report.conversation_id} was stopped"
    return f"conversation {report.conversation_id} could not be stopped: {report.error}"


def _project_file(env: Environment, secret_variables: list[str]) -> str:
    settings: dict[str, Any] = {"provider": env.provider}
    if env.url:
        settings["url"] = env.url
    if env.api_key_env:
        settings["apiKeyEnv"] = env.api_key_env
    if env.emulator:
        settings["emulator"] = True
    settings["client"] = env.client
    if env.protect:
        settings["protect"] = True
    project: dict[str, Any] = {"manifests": ["characters/*.yaml", "shared/*.yaml"]}
    if secret_variables:
        project["env"] = {"secret": sorted(set(secret_variables))}
    project["environments"] = {env.name: settings}
    return dump_yaml(project)
