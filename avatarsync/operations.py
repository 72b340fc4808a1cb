"""Plan, apply and import for one environment: the wiring of the plan side.

    DesiredState (engine.resolve) ─┐
    live (fetch_live over the API) ├─ diff.build_plan ─▶ Plan ─ apply.apply_plan ─▶ state
    State (StateStore)             ┘

An `Environment` with `emulator: true` and no `url` gets the embedded
emulator, started in this process for as long as the `Workspace` is open and
persisted next to the state (`.avatarsync/emulator/<env>.sqlite`), so plan
and apply in separate processes see the same organisation.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from avatarsync.errors import PlanError, ProjectError, StalePlanError, UnsafePlanError
from avatarsync.manifests.loader import dump_yaml
from avatarsync.manifests.project import Environment, Project
from avatarsync.planning.apply import apply_plan
from avatarsync.planning.builder import (
    PlanOptions,
    build_plan,
    desired_fingerprint,
    resource_fingerprint,
)
from avatarsync.planning.export import ExportResult, export_manifests
from avatarsync.planning.live import LiveState, fetch_live
from avatarsync.planning.plan import Action, Plan
from avatarsync.planning.report import ApplyReport, Outcome
from avatarsync.providers.equos import EquosClient
from avatarsync.resources import Address, DesiredState
from avatarsync.secret import Secret
from avatarsync.state import DocumentState, ResourceState, State, StateStore

__all__ = [
    "ImportReport",
    "PlanRun",
    "Workspace",
    "check_destroy_allowed",
    "load_plan_file",
    "save_plan_file",
]


@dataclass(frozen=True)
class PlanRun:
    plan: Plan
    requests: int  # API requests the plan made (all reads)


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
    """One environment, opened: API endpoint, state store, optional emulator."""

    def __init__(
        self,
        project: Project,
        env: Environment,
        *,
        parallelism: int = 10,
        client_factory: Callable[[str, Secret, int], EquosClient] | None = None,
    ) -> None:
        self.project = project
        self.env = env
        self.parallelism = parallelism
        self.store = StateStore(env.state_path, environment=env.name, client=env.client)
        self._client_factory = client_factory or (
            lambda url, key, n: EquosClient(url, key, max_concurrency=n)
        )
        self._stack = ExitStack()
        self.base_url: str | None = None
        self._key: Secret | None = None

    def __enter__(self) -> Workspace:
        env = self.env
        if env.emulator and not env.url:
            from avatarsync.emulator import DEFAULT_API_KEY, EmulatorConfig, EmulatorServer

            db = self.project.root / ".avatarsync" / "emulator" / f"{env.name}.sqlite"
            db.parent.mkdir(parents=True, exist_ok=True)
            server = EmulatorServer(EmulatorConfig(db=str(db))).start()
            self._stack.callback(server.stop)
            self.base_url, self._key = server.url, Secret(DEFAULT_API_KEY)
        else:
            key = self.project.api_key(env)
            if key is None:
                raise ProjectError(
                    f"environment {env.name!r} needs an API key: set the environment variable "
                    f"{env.api_key_env or '(apiKeyEnv is not set in the project file)'} "
                    "or put it in .env"
                )
            self.base_url, self._key = env.url or "https://api.equos.ai", key
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _client(self) -> EquosClient:
        assert self.base_url is not None and self._key is not None, "use 'with Workspace(...)'"
        return self._client_factory(self.base_url, self._key, self.parallelism)

    @contextmanager
    def locked(self, timeout: float = 0.0) -> Iterator[None]:
        with self.store.locked(timeout):
            yield

    def _read_live(self) -> tuple[LiveState, int]:
        """Everything live with this environment's client, and the requests it took."""

        async def run() -> tuple[LiveState, int]:
            async with self._client() as client:
                return await fetch_live(client, self.env.client), client.total_requests

        return asyncio.run(run())

    # -- plan --------------------------------------------------------------

    def plan(self, desired: DesiredState, options: PlanOptions | None = None) -> PlanRun:
        state = self.store.load()
        self._check_client(state)
        live, requests = self._read_live()
        plan = build_plan(
            desired,
            live,
            state,
            options=options or PlanOptions(),
            plan_id=uuid.uuid4().hex,
            created_at=_now(),
        )
        return PlanRun(plan, requests)

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
        desired: DesiredState,
        *,
        saved: bool = False,
        on_outcome: Callable[[Outcome], None] = lambda _: None,
    ) -> ApplyReport:
        """Apply `plan`. Call under `locked()`. A `saved` plan (from a file) is
        first checked against the state, manifests and live state it was made from."""
        state = self.store.load()

        async def run() -> ApplyReport:
            async with self._client() as client:
                if saved:
                    await self._check_fresh(plan, desired, state, client)
                before = client.total_requests
                report = await apply_plan(
                    plan,
                    desired,
                    client,
                    self.store,
                    state,
                    parallelism=self.parallelism,
                    on_outcome=on_outcome,
                )
                report.requests = client.total_requests - before
                return report

        report = asyncio.run(run())
        if report.ok:
            state.applied_plans.append(plan.plan_id)
            self.store.save(state)
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

    # -- export ------------------------------------------------------------

    def export(self, out_dir: Path) -> ExportResult:
        """Write manifests, a project file and state for everything live with
        this environment's client into `out_dir`; refuses to overwrite files."""
        live, _ = self._read_live()
        result = export_manifests(live)
        files = dict(result.files)
        if not (out_dir / "avatarsync.yaml").exists():
            files["avatarsync.yaml"] = _project_file(self.env)
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
                remote_id, None, current.updated_at if current else None
            )
        store = StateStore(
            out_dir / ".avatarsync" / "state" / f"{self.env.name}.json",
            environment=self.env.name,
            client=self.env.client,
        )
        store.save(state)
        return result

    # -- import ------------------------------------------------------------

    def import_state(self, desired: DesiredState) -> ImportReport:
        """Adopt live resources into state by natural key; write nothing remote."""
        state = self.store.load()
        self._check_client(state)
        live, _ = self._read_live()
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


def check_destroy_allowed(plan: Plan, env: Environment, *, allow_destroy: bool) -> None:
    """A protected environment refuses deletes and replaces without the flag."""
    if not env.protect or allow_destroy:
        return
    destructive = [
        str(c.address) for c in plan.changes if c.action in (Action.DELETE, Action.REPLACE)
    ]
    if destructive:
        raise UnsafePlanError(
            f"environment {env.name!r} is protected and this plan deletes or replaces "
            f"{len(destructive)} resource(s): {', '.join(destructive[:10])}"
            f"{' …' if len(destructive) > 10 else ''}. Pass --allow-destroy to proceed."
        )


def _project_file(env: Environment) -> str:
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
    return dump_yaml(
        {
            "manifests": ["characters/*.yaml", "shared/*.yaml"],
            "environments": {env.name: settings},
        }
    )


def save_plan_file(plan: Plan, path: Path) -> None:
    path.write_text(json.dumps(plan.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_plan_file(path: Path) -> Plan:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(f"cannot read plan file {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise PlanError(f"{path} is not a saved plan (invalid JSON: {exc})") from exc
    if not isinstance(data, dict):
        raise PlanError(f"{path} is not a saved plan")
    return Plan.from_dict(data)
