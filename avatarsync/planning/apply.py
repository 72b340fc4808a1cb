"""apply_plan: run a Plan against the API in dependency order, saving state as it goes.

The plan's changes become steps in a DAG: a character waits for the faces,
voices, brains and knowledge bases it links; a replace creates the new object,
lets every character relink, then deletes the old one; deletes run last,
characters before what they linked. Independent steps run concurrently, at
most `parallelism` at once (the API client is bounded by the same number).

Every successful write is followed by a state save. On the first hard error
no new step starts, the ones in flight finish, and the report says what was
done and what was not; the next run converges from the saved state.

A create whose outcome is unknown (AmbiguousWriteError: the POST may have
been committed) is never re-sent blindly: the live list is searched for an
unclaimed resource with the same natural key, which is adopted if found.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from avatarsync.errors import AmbiguousWriteError, ApiError, NotFoundError, PlanError
from avatarsync.planning.builder import resource_fingerprint
from avatarsync.planning.live import api_body, comparable, natural_key, normalise
from avatarsync.planning.plan import Action, Change, DocumentChange, Plan
from avatarsync.planning.report import ApplyReport, Outcome, Status
from avatarsync.resources import Address, DesiredResource, DesiredState, DocumentSpec, Kind
from avatarsync.state import DocumentState, ResourceState, State, StateStore

__all__ = ["ApiWriter", "apply_plan"]

_CREATE_ATTEMPTS = 5  # each retry follows a lookup proving the last POST made nothing


class ApiWriter(Protocol):
    """The part of EquosClient apply uses."""

    async def list_all(self, kind: Kind, *, client: str | None = None) -> list[dict[str, Any]]: ...
    async def get(self, kind: Kind, id: str) -> dict[str, Any]: ...
    async def create(self, kind: Kind, body: dict[str, Any]) -> dict[str, Any]: ...
    async def update(self, kind: Kind, id: str, body: dict[str, Any]) -> dict[str, Any]: ...
    async def delete(self, kind: Kind, id: str) -> dict[str, Any]: ...
    async def add_document(
        self, kb_id: str, *, name: str, description: str | None, mime_type: str
    ) -> dict[str, Any]: ...
    async def upload_document(self, upload_url: str, content: bytes, mime_type: str) -> None: ...
    async def index_document(self, kb_id: str, doc_id: str) -> dict[str, Any]: ...
    async def delete_document(self, kb_id: str, doc_id: str) -> dict[str, Any]: ...


@dataclass
class _Step:
    name: str
    change: Change
    run: Callable[[], Awaitable[str | None]]  # returns the remote id it leaves behind
    deps: set[str] = field(default_factory=set)
    quiet: bool = False  # no outcome line (the first half of a replace, a state note)
    removes: bool = False  # deletes a remote object (a delete, or a replace's old object)


async def apply_plan(
    plan: Plan,
    desired: DesiredState,
    api: ApiWriter,
    store: StateStore,
    state: State,
    *,
    parallelism: int = 10,
    on_outcome: Callable[[Outcome], None] = lambda _: None,
    read_file: Callable[[DocumentSpec], bytes] = lambda d: d.path.read_bytes(),
) -> ApplyReport:
    """Apply `plan`; `state` is updated in place and saved after every write."""
    runner = _Runner(plan, desired, api, store, state, on_outcome, read_file)
    return await runner.run(max(1, parallelism))


class _Runner:
    def __init__(
        self,
        plan: Plan,
        desired: DesiredState,
        api: ApiWriter,
        store: StateStore,
        state: State,
        on_outcome: Callable[[Outcome], None],
        read_file: Callable[[DocumentSpec], bytes],
    ) -> None:
        self.plan = plan
        self.desired = desired
        self.api = api
        self.store = store
        self.state = state
        self.on_outcome = on_outcome
        self.read_file = read_file
        self.report = ApplyReport(plan_id=plan.plan_id, environment=plan.environment)
        self.claimed: set[tuple[str, str]] = {
            (a.kind, r.id) for a, r in state.resources.items()
        } | {(a.kind, i) for a, i in state.pending_deletes.items()}
        self.create_locks: defaultdict[tuple[Any, ...], asyncio.Lock] = defaultdict(asyncio.Lock)

    # -- the DAG ---------------------------------------------------------

    def _steps(self) -> dict[str, _Step]:
        steps: dict[str, _Step] = {}
        main_step: dict[Address, str] = {}
        for change in self.plan.changes:
            a = change.address
            match change.action:
                case Action.NOOP:
                    if change.adopt or self._needs_fingerprint(change):
                        steps[f"record {a}"] = _Step(
                            f"record {a}",
                            change,
                            partial(self._record, change),
                            quiet=not change.adopt,
                        )
                        main_step[a] = f"record {a}"  # linkers need the id in state
                case Action.CREATE:
                    steps[f"create {a}"] = _Step(
                        f"create {a}", change, partial(self._create, change)
                    )
                    main_step[a] = f"create {a}"
                case Action.UPDATE:
                    steps[f"update {a}"] = _Step(
                        f"update {a}", change, partial(self._update, change)
                    )
                    main_step[a] = f"update {a}"
                case Action.REPLACE:
                    steps[f"create {a}"] = _Step(
                        f"create {a}",
                        change,
                        partial(self._replace_create, change),
                        quiet=True,
                    )
                    steps[f"destroy {a}"] = _Step(
                        f"destroy {a}",
                        change,
                        partial(self._replace_destroy, change),
                        removes=True,
                    )
                    main_step[a] = f"create {a}"
                case Action.DELETE:
                    steps[f"delete {a}"] = _Step(
                        f"delete {a}", change, partial(self._delete, change), removes=True
                    )
        # Removals last: after every write (so every character is relinked and
        # a replace's new object exists), and what characters link only after
        # the characters being removed are gone.
        writes = {n for n, s in steps.items() if not s.removes}
        character_removals = {
            n for n, s in steps.items() if s.removes and s.change.address.kind == Kind.CHARACTER
        }
        for step in steps.values():
            if step.removes:
                step.deps |= writes
                if step.change.address.kind != Kind.CHARACTER:
                    step.deps |= character_removals
            else:
                step.deps |= {main_step[d] for d in step.change.depends_on if d in main_step}
        return steps

    async def run(self, parallelism: int) -> ApplyReport:
        started = time.monotonic()
        steps = self._steps()
        done: set[str] = set()
        failed: set[str] = set()
        running: dict[asyncio.Task[str | None], _Step] = {}
        stopping = False
        pending = dict(steps)

        while pending or running:
            if not stopping:
                for name, step in sorted(pending.items()):
                    if len(running) >= parallelism:
                        break
                    if step.deps & failed:
                        continue
                    if step.deps <= done:
                        del pending[name]
                        task = asyncio.ensure_future(self._timed(step))
                        running[task] = step
            if not running:
                break
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                step = running.pop(task)
                exc = task.exception()
                if exc is None:
                    done.add(step.name)
                    continue
                failed.add(step.name)
                stopping = True
                message = str(exc) if isinstance(exc, ApiError | PlanError) else repr(exc)
                if self.report.error is None:
                    self.report.error = f"{step.change.address}: {message}"
                self._emit(step, Status.FAILED, message, None, 0.0)

        for _name, step in sorted(pending.items()):
            why = "a dependency failed" if step.deps & failed else "apply stopped after an error"
            self._emit(step, Status.SKIPPED, f"not done: {why}", None, 0.0)
        self.report.seconds = time.monotonic() - started
        return self.report

    async def _timed(self, step: _Step) -> str | None:
        t0 = time.monotonic()
        remote_id = await step.run()
        if step.quiet:
            return remote_id
        verb = step.name.split(" ", 1)[0]
        message = {
            "record": "adopted into state",
            "create": "created",
            "update": "updated",
            "destroy": "replaced (new object linked, old one deleted)",
            "delete": "deleted",
        }[verb]
        self._emit(step, Status.DONE, message, remote_id, time.monotonic() - t0)
        return remote_id

    def _emit(
        self, step: _Step, status: Status, message: str, remote_id: str | None, seconds: float
    ) -> None:
        outcome = Outcome(
            address=step.change.address,
            action=step.change.action,
            status=status,
            message=message,
            remote_id=remote_id,
            seconds=seconds,
        )
        self.report.outcomes.append(outcome)
        self.on_outcome(outcome)

    # -- steps -----------------------------------------------------------

    def _resource(self, change: Change) -> DesiredResource:
        try:
            return self.desired.resources[change.address]
        except KeyError:
            raise PlanError(f"{change.address} is in the plan but not in the manifests") from None

    def _needs_fingerprint(self, change: Change) -> bool:
        entry = self.state.resources.get(change.address)
        resource = self.desired.resources.get(change.address)
        return (
            entry is not None
            and resource is not None
            and entry.fingerprint != resource_fingerprint(resource)
        )

    async def _record(self, change: Change) -> str | None:
        """No API call: adopt an unmanaged match, or note that live matches git."""
        resource = self._resource(change)
        assert change.remote_id is not None
        entry = self.state.resources.setdefault(change.address, ResourceState(change.remote_id))
        entry.id = change.remote_id
        entry.fingerprint = resource_fingerprint(resource)
        if resource.documents:
            entry.documents = await self._adopt_documents(change.remote_id, resource)
        self._save()
        return change.remote_id

    async def _create(self, change: Change) -> str:
        resource = self._resource(change)
        obj = await self._create_object(resource)
        entry = ResourceState(obj["id"], None, obj.get("updatedAt"))
        self.state.resources[change.address] = entry
        self._save()
        if resource.documents:
            for doc in resource.documents:
                await self._upload(obj["id"], doc, entry)
        entry.fingerprint = resource_fingerprint(resource)
        self._save()
        return obj["id"]

    async def _update(self, change: Change) -> str:
        resource = self._resource(change)
        assert change.remote_id is not None
        entry = self.state.resources.setdefault(change.address, ResourceState(change.remote_id))
        entry.id = change.remote_id
        self.claimed.add((change.address.kind, change.remote_id))
        if change.fields:
            body = api_body(
                resource.kind, resource.spec, link_ids=self._link_ids(resource), for_update=True
            )
            obj = await self.api.update(Kind(resource.kind), change.remote_id, body)
            self._verify(resource, obj)
            entry.updated_at = obj.get("updatedAt")
            if not change.documents:
                entry.fingerprint = resource_fingerprint(resource)
            self._save()
        if change.documents:
            by_name = {d.name: d for d in resource.documents}
            for doc_change in change.documents:
                await self._document(change.remote_id, doc_change, by_name, entry)
            entry.fingerprint = resource_fingerprint(resource)
            self._save()
        return change.remote_id

    async def _replace_create(self, change: Change) -> str:
        assert change.remote_id is not None
        # Remember the old object before it leaves state: a crash between here
        # and its delete must not orphan it.
        self.state.pending_deletes[change.address] = change.remote_id
        self.claimed.add((change.address.kind, change.remote_id))
        self._save()
        return await self._create(change)

    async def _replace_destroy(self, change: Change) -> str | None:
        assert change.remote_id is not None
        await self._delete_remote(change.address.kind, change.remote_id)
        self.state.pending_deletes.pop(change.address, None)
        self._save()
        return change.remote_id

    async def _delete(self, change: Change) -> str | None:
        assert change.remote_id is not None
        await self._delete_remote(change.address.kind, change.remote_id)
        if "~" in change.address.key:  # a leftover of an interrupted replace
            owner = Address(change.address.kind, change.address.key.split("~", 1)[0])
            if self.state.pending_deletes.get(owner) == change.remote_id:
                del self.state.pending_deletes[owner]
        else:
            self.state.resources.pop(change.address, None)
        self._save()
        return change.remote_id

    async def _delete_remote(self, kind: str, remote_id: str) -> None:
        # Already gone (e.g. a retried DELETE) means the goal is reached.
        with contextlib.suppress(NotFoundError):
            await self.api.delete(Kind(kind), remote_id)

    # -- helpers ---------------------------------------------------------

    def _link_ids(self, resource: DesiredResource) -> dict[str, str | None]:
        ids: dict[str, str | None] = {}
        for field_name, target in resource.refs.items():
            remote_id = self.state.id_of(target)
            if remote_id is None:
                raise PlanError(f"{resource.address} links {target}, which has no remote id yet")
            ids[field_name] = remote_id
        return ids

    async def _create_object(self, resource: DesiredResource) -> dict[str, Any]:
        kind = Kind(resource.kind)
        body = api_body(
            kind, resource.spec, link_ids=self._link_ids(resource), client=self.plan.client
        )
        key = (kind, natural_key(kind, resource.spec))
        # One create per natural key at a time, so a lookup after an ambiguous
        # POST cannot take an object a concurrent twin just created.
        async with self.create_locks[key]:
            last: AmbiguousWriteError | None = None
            for _ in range(_CREATE_ATTEMPTS):
                try:
                    obj = await self.api.create(kind, body)
                except AmbiguousWriteError as exc:
                    last = exc
                    found = await self._find_unclaimed(kind, resource)
                    if found is not None:
                        obj = found
                        self.report.warnings.append(
                            f"{resource.address}: the create's answer was lost; adopted the "
                            f"object it made ({found['id']}) instead of creating another"
                        )
                    else:
                        continue
                self.claimed.add((kind.value, obj["id"]))
                self._verify(resource, obj)
                return obj
            assert last is not None
            raise last

    async def _find_unclaimed(self, kind: Kind, resource: DesiredResource) -> dict[str, Any] | None:
        want = natural_key(kind, resource.spec)
        candidates = await self.api.list_all(kind, client=self.plan.client)
        for raw in sorted(candidates, key=lambda r: (str(r.get("createdAt")), r["id"])):
            if (kind.value, raw["id"]) in self.claimed:
                continue
            if natural_key(kind, normalise(kind, raw)) == want:
                return raw
        return None

    def _verify(self, resource: DesiredResource, obj: Mapping[str, Any]) -> None:
        """Report a field the server dropped or changed: it would diff forever."""
        got = comparable(normalise(resource.kind, obj))
        want = comparable(resource.spec)
        if resource.kind == Kind.CHARACTER:
            want.update(self._link_ids(resource))
        for name, value in want.items():
            if name in got and got[name] != value:
                shown = "(sensitive)" if name in resource.sensitive_fields else repr(got[name])
                self.report.warnings.append(
                    f"{resource.address}: the server stored {name} as {shown}, not what was "
                    "sent; the next plan will show it as a change"
                )

    async def _document(
        self,
        kb_id: str,
        change: DocumentChange,
        wanted: Mapping[str, DocumentSpec],
        entry: ResourceState,
    ) -> None:
        if change.action in (Action.REPLACE, Action.DELETE) and change.remote_id:
            with contextlib.suppress(NotFoundError):
                await self.api.delete_document(kb_id, change.remote_id)
            entry.documents.pop(change.name, None)
            self._save()
        if change.action in (Action.CREATE, Action.REPLACE):
            await self._upload(kb_id, wanted[change.name], entry)

    async def _upload(self, kb_id: str, doc: DocumentSpec, entry: ResourceState) -> None:
        content = self.read_file(doc)
        try:
            added = await self.api.add_document(
                kb_id, name=doc.name, description=doc.description, mime_type=doc.mime_type
            )
        except AmbiguousWriteError:
            # The upload URL died with the answer: remove whatever was made, add again.
            kb = await self.api.get(Kind.KNOWLEDGE_BASE, kb_id)
            known = {d.id for d in entry.documents.values()}
            for live_doc in kb.get("documents") or ():
                if live_doc.get("name") == doc.name and live_doc["id"] not in known:
                    with contextlib.suppress(NotFoundError):
                        await self.api.delete_document(kb_id, live_doc["id"])
            added = await self.api.add_document(
                kb_id, name=doc.name, description=doc.description, mime_type=doc.mime_type
            )
        doc_id = added["document"]["id"]
        await self.api.upload_document(added["uploadUrl"], content, doc.mime_type)
        await self.api.index_document(kb_id, doc_id)
        entry.documents[doc.name] = DocumentState(doc_id, doc.sha256)
        self._save()

    async def _adopt_documents(
        self, kb_id: str, resource: DesiredResource
    ) -> dict[str, DocumentState]:
        kb = await self.api.get(Kind.KNOWLEDGE_BASE, kb_id)
        by_name = {d.get("name"): d for d in kb.get("documents") or ()}
        return {
            doc.name: DocumentState(by_name[doc.name]["id"], doc.sha256)
            for doc in resource.documents
            if doc.name in by_name
        }

    def _save(self) -> None:
        self.store.save(self.state)
