"""build_plan: desired + live + state -> Plan. Pure: no I/O, no clock.

How a resource is matched to a live one, in order (docs/plan-apply.md):
1. the id recorded in state, if that object is live;
2. for an inline face/voice/brain, whatever its character links to live;
3. for a shared face/voice/brain/knowledge base, the one live object every
   matched character that references it links (state lost: an edited brain
   is still found, and its edit plans as an update, not a create);
4. an unclaimed live resource with our `client` and the same natural key
   (`live.natural_key`): one a crashed or interrupted apply created but never
   recorded. It is adopted, never created twice.
Only then is it created (flagged as drift when state had an id for it).

Field differences come from deepdiff over the canonical specs. A difference
on a field the API cannot update (faces, knowledge bases, a character's
livekitIdentity) makes a replace. When git did not change a resource since
the last apply (same fingerprint) but live differs, the change is drift.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from avatarsync.errors import PlanError
from avatarsync.planning.live import LiveState, comparable, natural_key
from avatarsync.planning.plan import (
    KNOWN_AFTER_APPLY,
    Action,
    Change,
    DocumentChange,
    FieldChange,
    Plan,
    PlanOptions,
)
from avatarsync.resources import (
    API_KINDS,
    REFERENCE_FIELDS,
    Address,
    DesiredResource,
    DesiredState,
    Kind,
    LiveResource,
)
from avatarsync.state import ResourceState, State

__all__ = [
    "DONE_DOCUMENT_STATUSES",
    "FAILED_DOCUMENT_STATUSES",
    "PENDING_DOCUMENT_STATUSES",
    "PlanOptions",
    "build_plan",
    "desired_fingerprint",
    "resource_fingerprint",
]

# Fields the API cannot change in place: a difference forces a replace.
_REPLACE_FIELDS: Mapping[str, frozenset[str]] = {
    Kind.FACE: frozenset({"identity"}),
    Kind.KNOWLEDGE_BASE: frozenset({"displayName", "description"}),
    Kind.CHARACTER: frozenset({"livekitIdentity"}),
}

# Document statuses, compared case-insensitively: the SDK types `status` as
# free text, so only these words decide; any other is warned about and left
# alone (never re-uploaded on every run).
DONE_DOCUMENT_STATUSES = frozenset(
    {"uploaded", "indexing", "indexed", "ready", "processed", "processing", "complete",
     "completed", "done", "success", "succeeded", "available", "active"}
)  # fmt: skip
FAILED_DOCUMENT_STATUSES = frozenset({"failed", "failure", "error", "errored", "rejected"})
PENDING_DOCUMENT_STATUSES = frozenset({"", "pending", "created", "new", "waiting", "uploading"})

_KIND_RANK = {k.value: i for i, k in enumerate(API_KINDS)}


def resource_fingerprint(resource: DesiredResource) -> str:
    """What was applied: the spec, the links by key and the documents' content."""
    return resource.fingerprint


def desired_fingerprint(desired: DesiredState) -> str:
    parts = sorted((str(a), resource_fingerprint(r)) for a, r in desired.resources.items())
    blob = json.dumps([desired.environment, desired.client, parts])
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class _Matching:
    """Which live resource each address is, and which live ids are taken."""

    ids: dict[Address, str] = field(default_factory=dict)
    adopted: set[Address] = field(default_factory=set)
    claimed: set[tuple[str, str]] = field(default_factory=set)
    # (kind, remote id) -> key, built once the matching is complete: how a
    # character's live links read as keys.
    keys_by_id: dict[tuple[str, str], str] = field(default_factory=dict)


def build_plan(
    desired: DesiredState,
    live: LiveState,
    state: State,
    *,
    options: PlanOptions | None = None,
    plan_id: str,
    created_at: str,
    protected: bool = False,
) -> Plan:
    """Compute every change, sorted in apply order. Never refuses: an unsafe
    plan is still a plan (see `Plan.check_safety`)."""
    options = options or PlanOptions()
    scope = _scope(desired, state, options)
    match = _match(desired, live, state)
    linkers = _Linkers(live, state)

    changes: dict[Address, Change] = {}
    warnings: list[str] = []
    for address in sorted(desired.resources, key=_apply_order):
        if address not in scope:
            continue
        changes[address] = _plan_resource(
            desired.resources[address], live, state, match, changes, warnings
        )

    retained: list[Address] = []
    deletes: list[Change] = []
    for address, entry in sorted(state.resources.items()):
        if address in desired.resources or address not in scope:
            continue
        if not options.prune:
            retained.append(address)
            continue
        deletes.append(_plan_delete(address, entry, live, linkers))

    for leftover, remote_id in sorted(state.pending_deletes.items()):
        if live.get(leftover.kind, remote_id) is not None:
            deletes.append(
                Change(
                    address=leftover,
                    action=Action.DELETE,
                    reason="left over from an interrupted replace",
                    remote_id=remote_id,
                    depends_on=linkers.of(leftover.kind, remote_id),
                    leftover=True,
                )
            )

    all_changes = sorted(list(changes.values()) + deletes, key=_change_order)
    return Plan(
        plan_id=plan_id,
        environment=desired.environment,
        client=desired.client,
        changes=tuple(all_changes),
        state_serial=state.serial,
        state_lineage=state.lineage,
        live_fingerprint=live.fingerprint(),
        desired_fingerprint=desired_fingerprint(desired),
        created_at=created_at,
        retained=tuple(retained),
        warnings=tuple(warnings),
        options={
            "prune": options.prune,
            "targets": [str(a) for a in options.targets],
            "excludes": [str(a) for a in options.excludes],
            "allowDeleteAll": options.allow_delete_all,
        },
        managed=len(state.resources),
        protected=protected,
    )


def _apply_order(address: Address) -> tuple[int, Address]:
    return (_KIND_RANK.get(address.kind, 99), address)


def _change_order(change: Change) -> tuple[int, int, Address, bool, str]:
    rank = _KIND_RANK.get(change.address.kind, 99)
    if change.action is Action.DELETE:
        # Deletes last, dependents (characters) before what they link.
        return (2, len(API_KINDS) - rank, change.address, change.leftover, change.remote_id or "")
    return (1, rank, change.address, False, "")


def _scope(desired: DesiredState, state: State, options: PlanOptions) -> set[Address]:
    everything = set(desired.resources) | set(state.resources)
    for address in (*options.targets, *options.excludes):
        if address not in everything:
            raise PlanError(f"--target/--exclude {address}: no such resource in manifests or state")
    selected = set(everything)
    if options.targets:
        selected = set()
        pending = list(options.targets)
        while pending:  # pull in what the targets depend on
            address = pending.pop()
            if address in selected:
                continue
            selected.add(address)
            resource = desired.resources.get(address)
            if resource is not None:
                pending.extend(resource.refs.values())
    for excluded in options.excludes:
        # An excluded resource takes what depends on it along.
        selected.discard(excluded)
        for address, resource in desired.resources.items():
            if excluded in resource.refs.values():
                selected.discard(address)
    return selected


def _match(desired: DesiredState, live: LiveState, state: State) -> _Matching:
    m = _Matching()
    for address, entry in state.resources.items():
        if live.get(address.kind, entry.id) is not None:
            m.ids[address] = entry.id
            m.claimed.add((address.kind, entry.id))
    # The old object of an interrupted replace is on its way out: never a match.
    m.claimed.update((a.kind, i) for a, i in state.pending_deletes.items())

    # Unclaimed candidates by natural key, oldest first: one pass over live.
    by_key: dict[tuple[str, tuple[Any, ...]], list[LiveResource]] = {}
    for kind in API_KINDS:
        for candidate in live.of_kind(kind):
            if (kind.value, candidate.id) not in m.claimed:
                key = (kind.value, natural_key(kind, candidate.spec))
                by_key.setdefault(key, []).append(candidate)

    # Which desired characters link each shared resource, through which field.
    referrers: dict[Address, list[tuple[Address, str]]] = {}
    for resource in desired.resources.values():
        for field_name, target in resource.refs.items():
            if (
                desired.resources.get(target) is not None
                and target.key != f"{resource.key}.{field_name}"
            ):
                referrers.setdefault(target, []).append((resource.address, field_name))

    # Characters first: an inline resource is whatever its character links to.
    ordered = sorted(desired.resources.values(), key=lambda r: -_KIND_RANK[r.kind])
    for resource in ordered:
        address = resource.address
        if address in m.ids:
            continue
        # No entry in state, or one whose object is gone (deleted by hand,
        # state from another organisation): match the way a lost state would.
        found: LiveResource | None = None
        owner = resource.inline_owner
        if owner is not None and owner in m.ids:
            owner_live = live.get(owner.kind, m.ids[owner])
            field_name = address.key.rsplit(".", 1)[-1]
            linked = owner_live.spec.get(field_name) if owner_live else None
            linked_live = live.get(address.kind, linked)
            if linked_live is not None and (address.kind, linked_live.id) not in m.claimed:
                found = linked_live
        if found is None and address in referrers:
            found = _linked_by_all(address, referrers[address], live, m)
        if found is None:
            candidates = by_key.get((resource.kind, natural_key(resource.kind, resource.spec)), [])
            while candidates and (resource.kind, candidates[0].id) in m.claimed:
                candidates.pop(0)  # taken as an inline resource's link meanwhile
            if candidates:
                found = candidates.pop(0)
        if found is not None:
            m.ids[address] = found.id
            m.adopted.add(address)
            m.claimed.add((resource.kind, found.id))
    m.keys_by_id = {(a.kind, i): a.key for a, i in m.ids.items()}
    return m


def _linked_by_all(
    address: Address,
    referrers: list[tuple[Address, str]],
    live: LiveState,
    m: _Matching,
) -> LiveResource | None:
    """A shared resource is the live object every matched character that links it
    links: with state lost, an edited brain is still the one its characters use
    (found by identity, not by its content), so the edit plans as an update."""
    linked: set[str] = set()
    for character, field_name in referrers:
        remote_id = m.ids.get(character)
        character_live = live.get(character.kind, remote_id)
        if character_live is None:
            continue  # not matched (yet to be created): no evidence either way
        target = character_live.spec.get(field_name)
        if not target:
            return None  # a matched character links nothing there: not conclusive
        linked.add(target)
    if len(linked) != 1:
        return None
    (remote_id,) = linked
    candidate = live.get(address.kind, remote_id)
    if candidate is None or (address.kind, candidate.id) in m.claimed:
        return None
    return candidate


def _plan_resource(
    resource: DesiredResource,
    live: LiveState,
    state: State,
    match: _Matching,
    planned: Mapping[Address, Change],
    warnings: list[str],
) -> Change:
    address = resource.address
    depends = resource.depends_on
    remote_id = match.ids.get(address)
    current = live.get(address.kind, remote_id)
    entry = state.resources.get(address)

    if current is None:
        if entry is not None:
            reason = f"id {entry.id} no longer exists live (deleted outside avatarsync)"
            drift = True
        else:
            reason = "not yet created"
            drift = False
        return Change(
            address=address,
            action=Action.CREATE,
            reason=reason,
            fields=_creation_fields(resource, planned, _sensitive(resource, entry)),
            documents=tuple(
                DocumentChange(Action.CREATE, d.name, "new document", sha256=d.sha256)
                for d in resource.documents
            ),
            drift=drift,
            depends_on=depends,
            inline_owner=resource.inline_owner,
        )

    adopt = address in match.adopted
    fields = _field_changes(resource, current, match, planned, _sensitive(resource, entry))
    forcing = [f.field for f in fields if f.forces_replace]
    git_unchanged = entry is not None and entry.fingerprint == resource_fingerprint(resource)

    if forcing:
        reason = f"{', '.join(forcing)} cannot be updated in place"
        if not resource.documents_managed and current.documents:
            reason += (
                f"; its {len(current.documents)} live document(s) are not managed "
                "(no `documents:`) and will not be carried over"
            )
        return Change(
            address=address,
            action=Action.REPLACE,
            reason=reason,
            remote_id=current.id,
            fields=fields,
            documents=tuple(
                DocumentChange(Action.CREATE, d.name, "new knowledge base", sha256=d.sha256)
                for d in resource.documents
            ),
            drift=git_unchanged,
            adopt=adopt,
            depends_on=depends,
            inline_owner=resource.inline_owner,
        )

    documents = _document_changes(resource, current, entry, warnings)
    if fields or documents:
        # A link to something this plan (re)creates changes because of the
        # plan, not because anyone edited the live object: not drift.
        relinked = {
            f.field
            for f in fields
            if f.field in resource.refs and _new_target(resource.refs[f.field], planned)
        }
        edited = documents or any(f.field not in relinked for f in fields)
        drifted = git_unchanged and bool(edited)
        if drifted:
            reason = "edited outside avatarsync since the last apply; will be restored"
        elif git_unchanged:
            reason = "relinked: a resource it links is created or replaced"
        elif fields:
            reason = "changed in the manifests"
        else:
            reason = "documents changed"
        return Change(
            address=address,
            action=Action.UPDATE,
            reason=reason,
            remote_id=current.id,
            fields=fields,
            documents=documents,
            drift=drifted,
            adopt=adopt,
            depends_on=depends,
            inline_owner=resource.inline_owner,
        )
    if adopt and entry is not None and entry.id != current.id:
        noop_reason = f"state's id {entry.id} is gone live; adopt the unmanaged match"
    else:
        noop_reason = "adopt unmanaged match into state" if adopt else "up to date"
    return Change(
        address=address,
        action=Action.NOOP,
        reason=noop_reason,
        remote_id=current.id,
        adopt=adopt,
        depends_on=depends,
        inline_owner=resource.inline_owner,
        refresh=entry is not None and not git_unchanged,
    )


def _new_target(target: Address, planned: Mapping[Address, Change]) -> bool:
    change = planned.get(target)
    return change is not None and change.action in (Action.CREATE, Action.REPLACE)


def _link_display(target: Address, planned: Mapping[Address, Change]) -> str:
    """A link as people read it: the target's key, marked when its id is not known yet."""
    return f"{target.key} {KNOWN_AFTER_APPLY}" if _new_target(target, planned) else target.key


def _sensitive(resource: DesiredResource, entry: ResourceState | None) -> frozenset[str]:
    """Fields masked in this plan: secret now, or secret when last applied (a
    secret removed from the manifests must not show as the `before` value)."""
    return resource.sensitive_fields | (entry.sensitive if entry is not None else frozenset())


def _creation_fields(
    resource: DesiredResource, planned: Mapping[Address, Change], sensitive: frozenset[str]
) -> tuple[FieldChange, ...]:
    out = []
    for name, value in resource.spec.items():
        if name in REFERENCE_FIELDS and value is not None:
            target = resource.refs.get(name)
            if target is not None:
                value = _link_display(target, planned)
        if value is None:
            continue
        out.append(FieldChange(name, None, value, sensitive=name in sensitive))
    return tuple(out)


def _field_changes(
    resource: DesiredResource,
    current: LiveResource,
    match: _Matching,
    planned: Mapping[Address, Change],
    sensitive: frozenset[str],
) -> tuple[FieldChange, ...]:
    want = comparable(resource.spec)
    have = comparable(current.spec)
    # Links compare by remote id; a target that is about to be (re)created
    # has no id yet, so the link necessarily changes.
    character = resource.kind == Kind.CHARACTER
    if character:
        for name in REFERENCE_FIELDS:
            target = resource.refs.get(name)
            if target is None:
                want[name] = None
            else:
                new = _new_target(target, planned)
                want[name] = KNOWN_AFTER_APPLY if new else match.ids.get(target)
    if have == want:
        return ()  # the common case: no DeepDiff set-up for an unchanged resource
    # How the links read for people (keys, not ids): only for what differs.
    display_want: dict[str, Any] = {}
    display_have: dict[str, Any] = {}
    if character:
        keys_by_id = match.keys_by_id
        for name, kind in REFERENCE_FIELDS.items():
            target = resource.refs.get(name)
            live_id = have.get(name)
            display_have[name] = (
                keys_by_id.get((kind.value, live_id), f"unmanaged id {live_id}")
                if live_id
                else None
            )
            display_want[name] = None if target is None else _link_display(target, planned)
    from deepdiff import DeepDiff  # only for a resource that changed (0.1 s to import)

    diff = DeepDiff(have, want, ignore_order=True, verbose_level=2)
    changed: set[str] = set()
    for bucket in (
        "values_changed",
        "type_changes",
        "dictionary_item_added",
        "dictionary_item_removed",
        "iterable_item_added",
        "iterable_item_removed",
    ):
        for path in diff.get(bucket, {}):
            changed.add(_top_field(path))
    replace_fields = _REPLACE_FIELDS.get(resource.kind, frozenset())
    if resource.kind == Kind.FACE:
        replace_fields = frozenset(want)  # a face cannot be updated at all
    out = []
    for name in sorted(changed, key=list(resource.spec).index):
        before = display_have.get(name, have.get(name))
        after = display_want.get(name, resource.spec.get(name))
        out.append(
            FieldChange(
                name,
                before,
                after,
                forces_replace=name in replace_fields,
                sensitive=name in sensitive,
            )
        )
    return tuple(out)


def _top_field(path: str) -> str:
    # deepdiff paths look like "root['displayName']" or "root['x'][0]"
    return path.split("['", 1)[1].split("']", 1)[0]


def _document_changes(
    resource: DesiredResource,
    current: LiveResource,
    entry: ResourceState | None,
    warnings: list[str],
) -> tuple[DocumentChange, ...]:
    if resource.kind != Kind.KNOWLEDGE_BASE or not resource.documents_managed:
        return ()
    recorded = entry.documents if entry else {}
    live_docs = {d.name: d for d in current.documents}
    out: list[DocumentChange] = []
    for doc in sorted(resource.documents, key=lambda d: d.name):
        have = live_docs.get(doc.name)
        if have is None:
            out.append(DocumentChange(Action.CREATE, doc.name, "new document", sha256=doc.sha256))
            continue
        known = recorded.get(doc.name)
        status = (have.status or "").strip().lower()
        if status in FAILED_DOCUMENT_STATUSES:
            reason = f"the live document failed (status {have.status!r}); upload again"
        elif status in PENDING_DOCUMENT_STATUSES:
            reason = f"the live document's upload never completed (status {have.status!r})"
        elif status not in DONE_DOCUMENT_STATUSES:
            warnings.append(
                f"{resource.address}: document {doc.name!r} has status {have.status!r}, which "
                "avatarsync does not know; it is treated as uploaded"
            )
            if known is None or known.sha256 == doc.sha256:
                continue
            reason = "content changed"
        elif known is not None and known.id == have.id:
            if known.sha256 == doc.sha256:
                continue
            reason = "content changed"
        elif have.size == doc.size and (have.description or None) == (doc.description or None):
            continue  # not uploaded by us, but same name and size: adopt as is
        else:
            reason = "content differs from the live document"
        out.append(
            DocumentChange(Action.REPLACE, doc.name, reason, remote_id=have.id, sha256=doc.sha256)
        )
    wanted = {d.name for d in resource.documents}
    for name, have in sorted(live_docs.items()):
        if name not in wanted:
            out.append(
                DocumentChange(Action.DELETE, name, "not in the manifests", remote_id=have.id)
            )
    return tuple(out)


def _plan_delete(
    address: Address, entry: ResourceState, live: LiveState, linkers: _Linkers
) -> Change:
    current = live.get(address.kind, entry.id)
    if current is None:
        reason = "removed from the manifests (already gone live: state entry only)"
    else:
        reason = "removed from the manifests"
    linked_by = linkers.of(address.kind, entry.id)
    return Change(
        address=address,
        action=Action.DELETE,
        reason=reason,
        remote_id=entry.id,
        depends_on=linked_by,
    )


class _Linkers:
    """Which managed characters link each live object: indexed once per plan."""

    def __init__(self, live: LiveState, state: State) -> None:
        by_id = state.addresses_by_id()
        self._index: dict[tuple[str, str], list[Address]] = {}
        for character in live.of_kind(Kind.CHARACTER):
            owner = by_id.get((Kind.CHARACTER.value, character.id))
            if owner is None:
                continue
            for field_name, kind in REFERENCE_FIELDS.items():
                linked = character.spec.get(field_name)
                if linked:
                    self._index.setdefault((kind.value, linked), []).append(owner)

    def of(self, kind: str, remote_id: str) -> tuple[Address, ...]:
        if kind == Kind.CHARACTER:
            return ()
        return tuple(sorted(self._index.get((kind, remote_id), ())))
