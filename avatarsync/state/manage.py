"""State changed by hand: `state rm`, `state mv` and `state migrate`, on stores the caller holds locked.

`rm` and `mv` are StateOps like apply's (one record per address, then one
compaction), so they cost the same on every backend and a crash half-way
leaves a state the next load replays. `migrate` copies the whole state
(lineage and all) into another store; the source is left as it was, like
`terraform init -migrate-state`. `parse_location` reads the backend a
command line names (`file`, `file:PATH`, `postgres:VAR[:SCHEMA]`,
`s3://BUCKET/KEY?region=R&endpointUrl=URL`): the same settings as a
`state:` block, credentials still only through variables.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from avatarsync.errors import ProjectError, StateError, UnknownAddressError
from avatarsync.resources import Address
from avatarsync.state.model import State, StateOp

if TYPE_CHECKING:
    from avatarsync.manifests.project import StateSettings
    from avatarsync.state import StateStore

__all__ = ["copy_state", "move", "parse_location", "remove", "resolve_address"]

_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def resolve_address(state: State, text: str, what: str = "address") -> Address:
    """`text` (kind in any case) as an address the state holds; else a clear error."""
    address = _parse(text, what)
    if address not in state.resources:
        same_kind = sorted(a.key for a in state.resources if a.kind == address.kind)
        listing = ", ".join(same_kind[:20]) + (" …" if len(same_kind) > 20 else "")
        raise UnknownAddressError(
            f"{address} is not in the state of {state.environment!r} "
            f"({address.kind} keys there: {listing or 'none'}; see `avatarsync state list`)"
        )
    return address


def _parse(text: str, what: str) -> Address:
    try:
        return Address.parse_kind_any_case(text)
    except ValueError as exc:
        raise UnknownAddressError(f"{what}: {exc} (e.g. Character/tommy)") from None


def remove(store: StateStore, state: State, addresses: list[Address]) -> None:
    """Forget `addresses` (nothing remote is deleted: they become unmanaged)."""
    for address in addresses:
        _refuse_pending(state, address)
    for address in addresses:
        store.record(state, StateOp("drop", address))
    store.compact(state)


def move(store: StateStore, state: State, source: Address, target_text: str) -> Address:
    """Give `source`'s remote object the key `target` (a rename without destroy + create)."""
    target = _parse(target_text, "destination")
    if target.kind != source.kind:
        raise StateError(
            f"cannot move {source} to {target}: a {source.kind} stays a {source.kind} "
            f"(rename the key only, e.g. {source.kind}/{target.key})"
        )
    if target == source:
        raise StateError(f"{source} is already called that")
    if target in state.resources:
        raise StateError(
            f"{target} is already in the state of {state.environment!r} (id "
            f"{state.resources[target].id}); `state rm` it first if it should go"
        )
    _refuse_pending(state, source)
    entry = state.resources[source]
    store.record(state, StateOp("put", target, entry=entry))
    store.record(state, StateOp("drop", source))
    store.compact(state)
    return target


def _refuse_pending(state: State, address: Address) -> None:
    if address in state.pending_creates or address in state.pending_deletes:
        raise StateError(
            f"{address} has an unfinished create or replace from an interrupted apply: "
            f"run apply --env {state.environment} first, then change its state"
        )


def copy_state(source: StateStore, target: StateStore) -> State:
    """Copy the state in `source` into `target` (both held locked); the copy.

    Refuses when `target` already holds a different state: one of another
    lineage, or a newer one of the same (migrating back over a newer copy
    would lose what was applied since).
    """
    state = source.load()
    if not state.resources and state.last_apply is None and not state.pending_creates:
        raise StateError(
            f"{source.describe()} holds no state for {state.environment!r}: nothing to migrate"
        )
    existing = target.load()
    holds = existing.resources or existing.last_apply is not None or existing.pending_creates
    # A copy is written one serial up: a target above that moved on since.
    if holds and (existing.lineage != state.lineage or existing.serial > state.serial + 1):
        raise StateError(
            f"{target.describe()} already holds state for {state.environment!r} "
            f"({len(existing.resources)} resources, lineage {existing.lineage}, serial "
            f"{existing.serial}); nothing was copied. Move it aside (or `state rm` what it "
            "holds) if it should be replaced"
        )
    copy = State.from_dict(state.to_dict())
    target.save(copy)
    return copy


def parse_location(text: str, root: Path, environment: str) -> StateSettings:
    """The state backend a command line names (see the module docstring)."""
    from avatarsync.manifests.project import DEFAULT_STATE_DIR, StateSettings

    def bad(why: str) -> ProjectError:
        return ProjectError(
            f"state location {text!r}: {why}; expected file, file:PATH, postgres:VARIABLE"
            "[:SCHEMA] or s3://BUCKET/KEY[?region=REGION&endpointUrl=URL]"
        )

    if text == "file" or text.startswith("file:"):
        relative = text.removeprefix("file").removeprefix(":") or (
            f"{DEFAULT_STATE_DIR}/{environment}.json"
        )
        path = Path(relative)
        return StateSettings("file", path=path if path.is_absolute() else root / path)
    if text.startswith("postgres:"):
        if "@" in text or "//" in text:  # a URI with a password: never echoed
            raise ProjectError(
                "state location postgres:…: name the variable that holds the URI "
                "(postgres:VARIABLE[:SCHEMA]), never the URI itself"
            )
        variable, _, schema = text.removeprefix("postgres:").partition(":")
        if not _VARIABLE.match(variable):
            raise bad(f"{variable!r} is not a variable name (the URI itself never goes here)")
        if schema and not _SCHEMA.match(schema):
            raise bad(f"{schema!r} is not a schema name")
        return StateSettings("postgres", url_env=variable, schema=schema or "avatarsync")
    if text.startswith("s3://"):
        parts = urlsplit(text)
        key = parts.path.lstrip("/")
        if len(parts.netloc) < 3 or not key:
            raise bad("name a bucket and a key")
        options = dict(parse_qsl(parts.query))
        unknown = sorted(set(options) - {"region", "endpointUrl"})
        if unknown:
            raise bad(f"unknown option {unknown[0]!r}")
        return StateSettings(
            "s3",
            bucket=parts.netloc,
            key=key,
            region=options.get("region"),
            endpoint_url=options.get("endpointUrl"),
        )
    raise bad("unknown backend")
