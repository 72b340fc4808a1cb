"""Commands: plan, apply, import, export. Parse options, call `avatarsync.api`, render.

Payload (the plan, the apply report) goes to stdout; progress and
diagnostics go to stderr, so `plan --json > plan.json` stays clean. The
facade is imported inside each command, so `avatarsync --help` and
`--version` do not pay for pydantic, httpx and jinja2.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from avatarsync.cli.app import (
    CliContext,
    annotation,
    main,
    one_line_safe,
    open_project,
    option_group,
    progress,
    shown_path,
    write_step_summary,
)
from avatarsync.errors import AvatarsyncError
from avatarsync.output import (
    render_apply_json,
    render_apply_markdown,
    render_apply_text,
    render_plan_json,
    render_plan_markdown,
    render_plan_text,
    should_color,
)
from avatarsync.planning.plan import Plan, PlanOptions
from avatarsync.planning.report import ApplyReport, Status
from avatarsync.resources import Address

if TYPE_CHECKING:
    from avatarsync.api import Workspace
    from avatarsync.manifests.project import Project

__all__ = ["ApplyRequest", "PlanSelection", "annotate_plan", "apply_environment", "print_plan"]


def _addresses(values: tuple[str, ...], option: str) -> tuple[Address, ...]:
    out = []
    for value in values:
        try:
            out.append(Address.parse_kind_any_case(value))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=option) from None
    return tuple(out)


@dataclass(frozen=True)
class PlanSelection:
    """What a plan covers, as --prune, --target, --exclude and --allow-delete-all say."""

    prune: bool
    target: tuple[str, ...]
    exclude: tuple[str, ...]
    allow_delete_all: bool

    def given(self) -> bool:
        return bool(self.prune or self.target or self.exclude or self.allow_delete_all)

    def options(self) -> PlanOptions:
        return PlanOptions(
            prune=self.prune,
            targets=_addresses(self.target, "--target"),
            excludes=_addresses(self.exclude, "--exclude"),
            allow_delete_all=self.allow_delete_all,
        )


_plan_selection = option_group(
    PlanSelection,
    "selection",
    click.option(
        "--prune",
        is_flag=True,
        help="Delete resources that are in state but no longer in the manifests.",
    ),
    click.option(
        "--target",
        multiple=True,
        metavar="KIND/KEY",
        help="Plan only this resource and what it depends on. Repeatable.",
    ),
    click.option(
        "--exclude",
        multiple=True,
        metavar="KIND/KEY",
        help="Leave this resource (and what depends on it) out. Repeatable.",
    ),
    click.option(
        "--allow-delete-all",
        is_flag=True,
        help="Allow a plan that deletes every managed resource of the environment.",
    ),
)


def _color(obj: CliContext, stream: object) -> bool:
    return should_color(stream, obj.color is False)  # type: ignore[arg-type]


def _lock_timeout(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--lock-timeout",
        type=click.FloatRange(0),
        default=0,
        show_default=True,
        help="Seconds to wait for another run to release the environment's lock.",
    )(f)


@dataclass(frozen=True)
class ApplyRequest:
    """How to apply, as the options of apply and promote say."""

    yes: bool
    allow_destroy: bool
    parallelism: int
    lock_timeout: float
    as_json: bool


# What every command that writes takes: confirmation, protection, pace, output.
_apply_options = option_group(
    ApplyRequest,
    "request",
    click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation (for CI)."),
    click.option(
        "--allow-destroy",
        is_flag=True,
        help="Allow deletes and replaces in a protected environment.",
    ),
    click.option(
        "--parallelism",
        type=click.IntRange(1, 64),
        default=10,
        show_default=True,
        help="Concurrent API calls at most.",
    ),
    _lock_timeout,
    click.option("--json", "as_json", is_flag=True, help="Print the apply report as JSON."),
)


def print_plan(
    obj: CliContext,
    plan: Plan,
    *,
    as_json: bool = False,
    markdown: bool = False,
    show_noop: bool = False,
    title: str = "plan",
) -> None:
    """The plan on stdout: JSON, Markdown (`title` names it) or text."""
    if as_json:
        click.echo(render_plan_json(plan), nl=False)
    elif markdown:
        click.echo(render_plan_markdown(plan, title=title), nl=False)
    else:
        click.echo(
            render_plan_text(plan, color=_color(obj, sys.stdout), show_noop=show_noop), nl=False
        )


def annotate_plan(obj: CliContext, ws: Workspace, plan: Plan) -> None:
    """GitHub mode: a warning annotation at each drifted resource's manifest."""
    if not obj.github:
        return
    for change in plan.changes:
        if change.drift:
            at = ws.source_of(change.address)
            message = f"{change.address} drifted: {change.reason}"
            if at is None:
                click.echo(annotation("warning", one_line_safe(message)), err=True)
            else:
                file = shown_path(ws.project.root / at.file)
                click.echo(
                    annotation("warning", one_line_safe(message), file, at.line, at.col), err=True
                )


@main.command()
@click.option("-e", "--env", "env_name", required=True, help="Environment to plan for.")
@_plan_selection
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save the plan (under the environment's lock, so no apply races it).",
)
@_lock_timeout
@click.option("--json", "as_json", is_flag=True, help="Print the plan as versioned JSON.")
@click.option("--markdown", is_flag=True, help="Print the plan as Markdown (PR comment).")
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when nothing changes, 2 when there are changes, 1 on error.",
)
@click.option("--show-unchanged", is_flag=True, help="List resources that do not change.")
@click.pass_obj
def plan(
    obj: CliContext,
    env_name: str,
    selection: PlanSelection,
    out: Path | None,
    lock_timeout: float,
    as_json: bool,
    markdown: bool,
    detailed_exitcode: bool,
    show_unchanged: bool,
) -> int:
    """Show what apply would change in an environment. Never writes anything remote."""
    if as_json and markdown:
        raise click.UsageError("--json and --markdown are exclusive")
    from avatarsync.api import Workspace, save_plan_file

    options = selection.options()
    project = open_project(obj)
    with progress(obj) as display, Workspace(project, env_name, on_event=display) as ws:
        # Only a saved plan takes the lock: it must not be made while an
        # apply changes what it describes. A plain plan reads.
        with ws.locked(lock_timeout) if out is not None else contextlib.nullcontext():
            run = ws.plan(options)
            if out is not None:
                save_plan_file(run.plan, out)
        annotate_plan(obj, ws, run.plan)
    print_plan(obj, run.plan, as_json=as_json, markdown=markdown, show_noop=show_unchanged)
    write_step_summary(obj, lambda: render_plan_markdown(run.plan))
    click.echo(f"({run.requests} API requests, all reads)", err=True)
    if out is not None:
        click.echo(f"Saved the plan to {out}; apply it with: avatarsync apply {out}", err=True)
    return 2 if detailed_exitcode and run.plan.has_changes else 0


def apply_environment(
    obj: CliContext,
    project: Project,
    env_name: str,
    options: PlanOptions,
    request: ApplyRequest,
    saved: Plan | None = None,
) -> int:
    """Plan (or take the saved plan), show it, confirm, apply, report: the flow
    of `apply` and `promote`. The plan is payload (stdout) unless --json, which
    keeps stdout for the report alone."""
    from avatarsync.api import Workspace

    def confirm(plan: Plan) -> bool:
        if saved is not None or request.yes:
            return True  # a saved plan was reviewed when it was made
        if not sys.stdin.isatty():
            raise AvatarsyncError(
                "refusing to apply without confirmation: no terminal to ask on. "
                "Review the plan above and pass --yes (or apply a saved plan file)."
            )
        with display.suspended():
            click.confirm(f"Apply these changes to {plan.environment!r}?", abort=True, err=True)
        return True

    with (
        progress(obj) as display,
        Workspace(project, env_name, parallelism=request.parallelism, on_event=display) as ws,
        ws.locked(request.lock_timeout),
    ):
        if saved is None:
            the_plan = ws.plan(options).plan
            annotate_plan(obj, ws, the_plan)
            with display.suspended():
                if request.as_json:
                    click.echo(
                        render_plan_text(the_plan, color=_color(obj, sys.stderr)),
                        err=True,
                        nl=False,
                    )
                else:
                    print_plan(obj, the_plan)
        else:
            the_plan = saved
        if not the_plan.has_changes:
            ws.record_in_sync(the_plan)
            if request.as_json:
                empty = ApplyReport(the_plan.plan_id, the_plan.environment)
                click.echo(render_apply_json(empty), nl=False)
            return 0
        display.start_apply(sum(1 for c in the_plan.changes if c.is_change or c.adopt))
        report = ws.apply(
            the_plan,
            saved=saved is not None,
            allow_destroy=request.allow_destroy,
            confirm=confirm,
            on_outcome=display,
        )
        _annotate_failures(obj, ws, report)
    if request.as_json:
        click.echo(render_apply_json(report), nl=False)
    else:
        click.echo(render_apply_text(report, color=_color(obj, sys.stdout)), nl=False)
    write_step_summary(obj, lambda: render_apply_markdown(report))
    if report.interrupted:
        return 130  # the shell's convention for a run stopped by a signal
    return 0 if report.ok else 1


def _annotate_failures(obj: CliContext, ws: Workspace, report: ApplyReport) -> None:
    if not obj.github:
        return
    for outcome in report.outcomes:
        if outcome.status is Status.FAILED:
            message = one_line_safe(f"{outcome.address}: {outcome.message}")
            at = ws.source_of(outcome.address)
            if at is None:
                click.echo(annotation("error", message), err=True)
            else:
                file = shown_path(ws.project.root / at.file)
                click.echo(annotation("error", message, file, at.line, at.col), err=True)


@main.command()
@click.argument("plan_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("-e", "--env", "env_name", help="Environment (taken from PLAN_FILE if given).")
@_plan_selection
@_apply_options
@click.pass_obj
def apply(
    obj: CliContext,
    plan_file: Path | None,
    env_name: str | None,
    selection: PlanSelection,
    request: ApplyRequest,
) -> int:
    """Make an environment match the manifests (or apply exactly a saved PLAN_FILE)."""
    from avatarsync.api import load_plan_file

    saved: Plan | None = None
    if plan_file is not None:
        if selection.given():
            raise click.UsageError(
                "--prune/--target/--exclude are chosen when the plan is made, not with PLAN_FILE"
            )
        saved = load_plan_file(plan_file)
        if env_name is not None and env_name != saved.environment:
            raise click.UsageError(
                f"--env {env_name} does not match the saved plan's environment "
                f"{saved.environment!r}"
            )
        env_name = saved.environment
    if env_name is None:
        raise click.UsageError("give --env ENV, or a saved PLAN_FILE")
    options = selection.options()
    return apply_environment(obj, open_project(obj), env_name, options, request, saved)


@main.command("import")
@click.option("-e", "--env", "env_name", required=True, help="Environment to import from.")
@click.option("--lock-timeout", type=click.FloatRange(0), default=0, show_default=True)
@click.pass_obj
def import_(obj: CliContext, env_name: str, lock_timeout: float) -> int:
    """Adopt live resources into state by natural key. Writes nothing remote."""
    from avatarsync.api import Workspace

    project = open_project(obj)
    with Workspace(project, env_name) as ws, ws.locked(lock_timeout):
        report = ws.import_state()
    for address, remote_id in report.adopted:
        click.echo(f"adopted  {address} = {remote_id}")
    for address in report.already:
        click.echo(f"in state {address}")
    for address in report.unmatched_desired:
        click.echo(f"no match {address} (plan will create it)")
    for kind, remote_id in report.unmatched_live:
        click.echo(f"unclaimed live {kind} {remote_id} (matches no manifest)")
    click.echo(
        f"Import: {len(report.adopted)} adopted, {len(report.already)} already in state, "
        f"{len(report.unmatched_desired)} without a live match, "
        f"{len(report.unmatched_live)} live resources unclaimed.",
        err=True,
    )
    return 0


@main.command("export")
@click.option("-e", "--env", "env_name", required=True, help="Environment to export from.")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write the manifests, project file and state into.",
)
@click.pass_obj
def export_(obj: CliContext, env_name: str, out_dir: Path) -> int:
    """Write manifests and state for everything live with the environment's client."""
    from avatarsync.api import Workspace, write_schemas

    project = open_project(obj)
    with Workspace(project, env_name, resolve_first=False) as ws:
        result = ws.export(out_dir)
    write_schemas(out_dir / "schemas")
    for path in sorted(result.files):
        click.echo(f"wrote {out_dir / path}")
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(
        f"Exported {len(result.ids)} resources from {env_name!r}; state saved under "
        f"{out_dir / '.avatarsync' / 'state'}. Next: avatarsync -C {out_dir} plan --env {env_name}",
        err=True,
    )
    return 0
