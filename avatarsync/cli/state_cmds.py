"""`avatarsync state …`: look at and change an environment's state by hand.

`list` and `show` read; `rm`, `mv` and `migrate` change state under the
environment's lock (nothing remote is ever called); `unlock` breaks a
stale lock. Listings are the payload (stdout); what was done is said on
stderr, like the other commands' summaries.
"""

from __future__ import annotations

import json

import click

from avatarsync.cli.app import CliContext, main, open_project, progress
from avatarsync.cli.plan_cmds import _lock_timeout

__all__ = ["state"]

_ENV = click.option("-e", "--env", "env_name", required=True, help="Environment whose state.")
_LOCATIONS = (
    "file, file:PATH, postgres:VARIABLE[:SCHEMA] or s3://BUCKET/KEY[?region=R&endpointUrl=URL]"
)


@main.group()
def state() -> None:
    """Inspect and change an environment's state (which remote id each Kind/key is).

    Backends and locks: docs/state.md.
    """


@state.command("list")
@_ENV
@click.pass_obj
def list_(obj: CliContext, env_name: str) -> int:
    """Every address in state with its remote id, one per line."""
    from avatarsync.api import list_state

    current = list_state(open_project(obj), env_name)
    for address, entry in sorted(current.resources.items()):
        click.echo(f"{address}\t{entry.id}")
    click.echo(f"{len(current.resources)} resources in the state of {env_name!r}.", err=True)
    return 0


@state.command("show")
@click.argument("address")
@_ENV
@click.pass_obj
def show(obj: CliContext, address: str, env_name: str) -> int:
    """What state records for ADDRESS (Kind/key): id, fingerprints, documents, source."""
    from avatarsync.api import show_state

    found, entry = show_state(open_project(obj), env_name, address)
    click.echo(json.dumps({"address": str(found), **entry.to_dict()}, indent=2, sort_keys=True))
    return 0


@state.command("rm")
@click.argument("addresses", metavar="ADDRESS...", nargs=-1, required=True)
@_ENV
@_lock_timeout
@click.pass_obj
def rm(obj: CliContext, addresses: tuple[str, ...], env_name: str, lock_timeout: float) -> int:
    """Forget ADDRESS... in state. Nothing remote is deleted: the objects stay, unmanaged."""
    from avatarsync.api import remove_state

    project = open_project(obj)
    with progress(obj) as display:
        removed = remove_state(
            project, env_name, addresses, lock_timeout=lock_timeout, on_event=display
        )
    for address in removed:
        click.echo(f"Removed {address} from the state of {env_name!r} (still live, unmanaged).")
    return 0


@state.command("mv")
@click.argument("source")
@click.argument("destination")
@_ENV
@_lock_timeout
@click.pass_obj
def mv(obj: CliContext, source: str, destination: str, env_name: str, lock_timeout: float) -> int:
    """Rename SOURCE to DESTINATION in state (same kind): the remote object keeps
    its id, so renaming a key in the manifests needs no destroy and create."""
    from avatarsync.api import move_state

    project = open_project(obj)
    with progress(obj) as display:
        old, new = move_state(
            project, env_name, source, destination, lock_timeout=lock_timeout, on_event=display
        )
    click.echo(f"Moved {old} to {new} in the state of {env_name!r}.")
    return 0


@state.command("migrate")
@_ENV
@click.option(
    "--from",
    "source",
    metavar="LOCATION",
    help=f"Copy from this backend into the environment's `state:` ({_LOCATIONS}).",
)
@click.option(
    "--to",
    "target",
    metavar="LOCATION",
    help="Copy the environment's `state:` into this backend (then point `state:` at it).",
)
@_lock_timeout
@click.pass_obj
def migrate(
    obj: CliContext, env_name: str, source: str | None, target: str | None, lock_timeout: float
) -> int:
    """Copy the environment's state between backends (both locked meanwhile).

    Like `terraform init -migrate-state`: edit the environment's `state:` to
    the new backend, then `state migrate --env E --from file` (the old one).
    Or `--to LOCATION` first and edit `state:` after. The source is left as
    it was; credentials come from variables, never from the command line.
    """
    from avatarsync.api import migrate_state, state_location

    if (source is None) == (target is None):
        raise click.UsageError("give one of --from LOCATION and --to LOCATION")
    project = open_project(obj)
    src = state_location(project, env_name, source) if source else None
    dst = state_location(project, env_name, target) if target else None
    with progress(obj) as display:
        done = migrate_state(
            project, env_name, source=src, target=dst, lock_timeout=lock_timeout, on_event=display
        )
    click.echo(
        f"Copied the state of {env_name!r} ({done.resources} resources, lineage "
        f"{done.lineage}) from {done.source} to {done.target}."
    )
    if target:
        click.echo(
            f"Now point environment {env_name!r}'s `state:` in {project.file.name} at it; "
            "the old state was left as it was.",
            err=True,
        )
    else:
        click.echo("The old state was left as it was; remove it once this works.", err=True)
    return 0


@state.command("unlock")
@click.argument("lock_id")
@_ENV
@click.pass_obj
def unlock(obj: CliContext, lock_id: str, env_name: str) -> int:
    """Break a stale lock whose id is LOCK_ID (the lock error names it), like
    `terraform force-unlock`. Only when no run is going on."""
    from avatarsync.api import unlock_state

    click.echo(unlock_state(open_project(obj), env_name, lock_id))
    return 0
