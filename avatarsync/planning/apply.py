"""apply_plan: run a Plan against the API in dependency order, saving state as it goes.

`steps.build_steps` turns the plan into typed steps with their dependencies
(a character waits for what it links; a replace creates, lets characters
relink, then deletes; removals last); a scheduler (`DagScheduler` unless one
is given) runs them, at most `parallelism` at once (the API client is
bounded by the same number). This module is what each step does.

Every successful write is followed by a state record (`StateOp`, O(1) in
every store). On the first hard error no new step starts, the ones in flight
finish, and the report says what was done and what was not; the next run
converges from the saved state.

A create whose outcome is unknown (AmbiguousWriteError: the POST may have
been committed) is never re-sent blindly: the live list is searched for an
unclaimed resource with the same natural key, which is adopted if found.
Before a create is sent, state records it as pending; a later run that finds
that record looks for what the earlier POST made before sending another, so
an answer lost together with its look-up cannot leave an orphan either.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from avatarsync.errors import AmbiguousWriteError, ApiError, PlanError
from avatarsync.planning.builder import resource_fingerprint
from avatarsync.planning.live import comparable, natural_key
from avatarsync.planning.plan import Action, Change, DocumentChange, Plan
from avatarsync.planning.report import ApplyReport, Outcome, Status
from avatarsync.planning.scheduler import DagScheduler, Scheduler
from avatarsync.planning.steps import Step, StepKind, build_steps
from avatarsync.resources import (
    Address,
    DesiredResource,
    DesiredState,
    DocumentSpec,
    DocumentUpload,
    Kind,
    LiveDocument,
    LiveResource,
)
from avatarsync.state import DocumentState, ResourceState, State, StateOp, StateStore

__all__ = ["ResourceApi", "apply_plan"]

_CREATE_ATTEMPTS = 5  # each retry follows a lookup proving the last POST made nothing

_DONE_MESSAGE = {
    StepKind.RECORD: "adopted into state",
    StepKind.CREATE: "created",
    StepKind.UPDATE: "updated",
    StepKind.REPLACE_DESTROY: "replaced (new object linked, old one deleted)",
    StepKind.DELETE: "deleted",
    StepKind.DELETE_LEFTOVER: "deleted",
}


class ResourceApi(Protocol):
    """The calls apply makes, in the canonical shape (`EquosClient` has them)."""

    async def list_resources(self, kind: Kind, *, client: str) -> list[LiveResource]: ...
    async def get_resource(self, kind: Kind, id: str) -> LiveResource | None: ...
    async def create_resource(
        self,
        kind: Kind,
        spec: Mapping[str, Any],
        *,
        link_ids: Mapping[str, str | None] | None = None,
        client: str,
    ) -> LiveResource: ...
    async def update_resource(
        self,
        kind: Kind,
        id: str,
        spec: Mapping[str, Any],
        *,
        link_ids: Mapping[str, str | None] | None = None,
    ) -> LiveResource: ...
    async def delete_resource(self, kind: Kind, id: str) -> None: ...
    async def register_document(
        self, kb_id: str, *, name: str, description: str | None, mime_type: str
    ) -> DocumentUpload: ...
    async def upload_document(self, upload_url: str, content: bytes, mime_type: str) -> None: ...
    async def index_document(self, kb_id: str, doc_id: str) -> Any: ...
    async def remove_document(self, kb_id: str, doc_id: str) -> None: ...


async def apply_plan(
    plan: Plan,
    desired: DesiredState,
    api: ResourceApi,
    store: StateStore,
    state: State,
    *,
    parallelism: int = 10,
    on_outcome: Callable[[Outcome], None] = lambda _: None,
    read_file: Callable[[DocumentSpec], bytes] = lambda d: d.path.read_bytes(),
    scheduler: Scheduler | None = None,
) -> ApplyReport:
    """Apply `plan`; `state` is updated in place and saved after every write."""
    executor = _Executor(plan, desired, api, store, state, on_outcome, read_file)
    return await executor.run(scheduler or DagScheduler(max(1, parallelism)))


class _Executor:
    def __init__(
        self,
        plan: Plan,
        desired: DesiredState,
        api: ResourceApi,
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

    async def run(self, scheduler: Scheduler) -> ApplyReport:
        started = time.monotonic()
        steps = build_steps(self.plan)
        schedule = await scheduler.run(steps, self._execute)
        for index, exc in sorted(schedule.failed.items()):
            step = steps[index]
            message = str(exc) if isinstance(exc, ApiError | PlanError) else repr(exc)
            if self.report.error is None:
                self.report.error = f"{step.address}: {message}"
            self._emit(step, Status.FAILED, message, None, 0.0)
        skipped_creates = set()
        for index in schedule.not_started:
            step = steps[index]
            if step.change is None:
                continue
            if step.kind is StepKind.REPLACE_CREATE:
                skipped_creates.add(id(step.change))
            elif step.kind is StepKind.REPLACE_DESTROY and id(step.change) in skipped_creates:
                continue  # one outcome per change: the replace as a whole was not done
            if index in schedule.blocked:
                why = "a dependency failed"
            elif schedule.stopped and not schedule.failed:
                why = "apply was interrupted"
            else:
                why = "apply stopped after an error"
            self._emit(step, Status.SKIPPED, f"not done: {why}", None, 0.0)
        self.report.seconds = time.monotonic() - started
        return self.report

    async def _execute(self, step: Step) -> None:
        change = step.change
        assert change is not None
        t0 = time.monotonic()
        remote_id: str | None
        match step.kind:
            case StepKind.RECORD:
                remote_id = await self._record(change)
            case StepKind.CREATE:
                remote_id = await self._create(change)
            case StepKind.UPDATE:
                remote_id = await self._update(change)
            case StepKind.REPLACE_CREATE:
                remote_id = await self._replace_create(change)
            case StepKind.REPLACE_DESTROY:
                remote_id = await self._replace_destroy(change)
            case StepKind.DELETE:
                remote_id = await self._delete(change)
            case StepKind.DELETE_LEFTOVER:
                remote_id = await self._delete_leftover(change)
            case StepKind.BARRIER:  # pragma: no cover - the scheduler completes barriers itself
                return
        if not step.quiet:
            self._emit(
                step, Status.DONE, _DONE_MESSAGE[step.kind], remote_id, time.monotonic() - t0
            )

    def _emit(
        self, step: Step, status: Status, message: str, remote_id: str | None, seconds: float
    ) -> None:
        change = step.change
        assert change is not None
        outcome = Outcome(
            address=change.address,
            action=change.action,
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

    async def _record(self, change: Change) -> str:
        """No API call: adopt an unmanaged match, or note that live matches git."""
        resource = self._resource(change)
        assert change.remote_id is not None
        entry = self._entry(change.address, change.remote_id, resource)
        entry.fingerprint = resource_fingerprint(resource)
        if resource.documents:
            entry.documents = await self._adopt_documents(change.remote_id, resource)
        self._put(change.address, entry)
        return change.remote_id

    async def _create(self, change: Change) -> str:
        resource = self._resource(change)
        created = await self._create_object(resource)
        entry = self._entry(change.address, created.id, resource, keep_documents=False)
        entry.fingerprint = None
        entry.updated_at = created.updated_at
        self._put(change.address, entry)
        self._note(StateOp("clear-pending-create", change.address))
        for doc in resource.documents:
            await self._upload(created.id, doc, change.address, entry)
        entry.fingerprint = resource_fingerprint(resource)
        self._put(change.address, entry)
        return created.id

    async def _update(self, change: Change) -> str:
        resource = self._resource(change)
        assert change.remote_id is not None
        entry = self._entry(change.address, change.remote_id, resource)
        self.claimed.add((change.address.kind, change.remote_id))
        if change.fields:
            updated = await self.api.update_resource(
                Kind(resource.kind),
                change.remote_id,
                resource.spec,
                link_ids=self._link_ids(resource),
            )
            self._verify(resource, updated)
            entry.updated_at = updated.updated_at
            if not change.documents:
                entry.fingerprint = resource_fingerprint(resource)
            self._put(change.address, entry)
        if change.documents:
            by_name = {d.name: d for d in resource.documents}
            for doc_change in change.documents:
                await self._document(change.remote_id, doc_change, by_name, change.address, entry)
            entry.fingerprint = resource_fingerprint(resource)
            self._put(change.address, entry)
        return change.remote_id

    async def _replace_create(self, change: Change) -> str:
        assert change.remote_id is not None
        # Remember the old object before it leaves state: a crash between here
        # and its delete must not orphan it.
        self._note(StateOp("pending-delete", change.address, value=change.remote_id))
        self.claimed.add((change.address.kind, change.remote_id))
        return await self._create(change)

    async def _replace_destroy(self, change: Change) -> str | None:
        assert change.remote_id is not None
        await self.api.delete_resource(Kind(change.address.kind), change.remote_id)
        self._note(StateOp("clear-pending-delete", change.address, value=change.remote_id))
        return self.state.id_of(change.address)  # the new object: what state now holds

    async def _delete(self, change: Change) -> str:
        assert change.remote_id is not None
        await self.api.delete_resource(Kind(change.address.kind), change.remote_id)
        self._note(StateOp("drop", change.address))
        return change.remote_id

    async def _delete_leftover(self, change: Change) -> str:
        assert change.remote_id is not None
        await self.api.delete_resource(Kind(change.address.kind), change.remote_id)
        self._note(StateOp("clear-pending-delete", change.address, value=change.remote_id))
        return change.remote_id

    # -- helpers ---------------------------------------------------------

    def _link_ids(self, resource: DesiredResource) -> dict[str, str | None]:
        ids: dict[str, str | None] = {}
        for field_name, target in resource.refs.items():
            remote_id = self.state.id_of(target)
            if remote_id is None:
                raise PlanError(f"{resource.address} links {target}, which has no remote id yet")
            ids[field_name] = remote_id
        return ids

    async def _create_object(self, resource: DesiredResource) -> LiveResource:
        kind = Kind(resource.kind)
        link_ids = self._link_ids(resource)
        key = (kind, natural_key(kind, resource.spec))
        # One create per natural key at a time, so a lookup after an ambiguous
        # POST cannot take an object a concurrent twin just created.
        async with self.create_locks[key]:
            if resource.address in self.state.pending_creates:
                # An earlier run sent this create and never learnt what it made.
                found = await self._find_unclaimed(kind, resource)
                if found is not None:
                    self.claimed.add((kind.value, found.id))
                    self.report.warnings.append(
                        f"{resource.address}: an earlier, interrupted apply had created "
                        f"{found.id}; adopted it instead of creating another"
                    )
                    return found
            self._note(StateOp("pending-create", resource.address, value=repr(key[1])))
            last: AmbiguousWriteError | None = None
            for _ in range(_CREATE_ATTEMPTS):
                try:
                    created = await self.api.create_resource(
                        kind, resource.spec, link_ids=link_ids, client=self.plan.client
                    )
                except AmbiguousWriteError as exc:
                    last = exc
                    found = await self._find_unclaimed(kind, resource)
                    if found is None:
                        continue
                    created = found
                    self.report.warnings.append(
                        f"{resource.address}: the create's answer was lost; adopted the "
                        f"object it made ({found.id}) instead of creating another"
                    )
                self.claimed.add((kind.value, created.id))
                self._verify(resource, created)
                return created
            assert last is not None
            raise last

    async def _find_unclaimed(self, kind: Kind, resource: DesiredResource) -> LiveResource | None:
        want = natural_key(kind, resource.spec)
        candidates = await self.api.list_resources(kind, client=self.plan.client)
        for candidate in sorted(candidates, key=lambda r: (r.created_at, r.id)):
            if (kind.value, candidate.id) in self.claimed:
                continue
            if natural_key(kind, candidate.spec) == want:
                return candidate
        return None

    def _verify(self, resource: DesiredResource, live: LiveResource) -> None:
        """Report a field the server dropped or changed: it would diff forever."""
        got = comparable(live.spec)
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
        address: Address,
        entry: ResourceState,
    ) -> None:
        if change.action in (Action.REPLACE, Action.DELETE) and change.remote_id:
            await self.api.remove_document(kb_id, change.remote_id)
            entry.documents.pop(change.name, None)
            self._put(address, entry)
        if change.action in (Action.CREATE, Action.REPLACE):
            await self._upload(kb_id, wanted[change.name], address, entry)

    async def _upload(
        self, kb_id: str, doc: DocumentSpec, address: Address, entry: ResourceState
    ) -> None:
        content = self.read_file(doc)
        try:
            upload = await self.api.register_document(
                kb_id, name=doc.name, description=doc.description, mime_type=doc.mime_type
            )
        except AmbiguousWriteError:
            # The upload URL died with the answer: remove whatever was made, add again.
            known = {d.id for d in entry.documents.values()}
            for live_doc in await self._live_documents(kb_id):
                if live_doc.name == doc.name and live_doc.id not in known:
                    await self.api.remove_document(kb_id, live_doc.id)
            upload = await self.api.register_document(
                kb_id, name=doc.name, description=doc.description, mime_type=doc.mime_type
            )
        await self.api.upload_document(upload.upload_url, content, doc.mime_type)
        await self.api.index_document(kb_id, upload.id)
        entry.documents[doc.name] = DocumentState(upload.id, doc.sha256)
        self._put(address, entry)

    async def _live_documents(self, kb_id: str) -> tuple[LiveDocument, ...]:
        kb = await self.api.get_resource(Kind.KNOWLEDGE_BASE, kb_id)
        return kb.documents if kb is not None else ()

    async def _adopt_documents(
        self, kb_id: str, resource: DesiredResource
    ) -> dict[str, DocumentState]:
        by_name = {d.name: d for d in await self._live_documents(kb_id)}
        return {
            doc.name: DocumentState(by_name[doc.name].id, doc.sha256)
            for doc in resource.documents
            if doc.name in by_name
        }

    def _entry(
        self,
        address: Address,
        remote_id: str,
        resource: DesiredResource,
        *,
        keep_documents: bool = True,
    ) -> ResourceState:
        """The state record to write for `address`: what it had, plus where it
        came from and every field that ever held a secret."""
        old = self.state.resources.get(address)
        return ResourceState(
            id=remote_id,
            fingerprint=old.fingerprint if old else None,
            updated_at=old.updated_at if old else None,
            documents=dict(old.documents) if old and keep_documents else {},
            sensitive=resource.sensitive_fields | (old.sensitive if old else frozenset()),
            source=resource.position.file,
        )

    def _put(self, address: Address, entry: ResourceState) -> None:
        self._note(StateOp("put", address, entry=entry))

    def _note(self, op: StateOp) -> None:
        self.store.record(self.state, op)
