"""Commands between environments and over time: diff, promote, drift.

`diff` compares two environments' live states; `promote` applies to TARGET
what was applied and tested in SOURCE (and refuses anything else); `drift`
shows only what changed outside git since the last apply. Exit codes follow
`plan --detailed-exitcode`: 0 nothing to report, 2 something to report, 1 error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from avatarsync.cli.app import CliContext, main, open_project, progress, write_step_summary
from avatarsync.cli.plan_cmds import (
    ApplyRequest,
    PlanSelection,
    _apply_options,
    _color,
    _plan_selection,
    annotate_plan,
    apply_environment,
    print_plan,
)
from avatarsync.output import (
    render_environment_diff_json,
    render_environment_diff_text,
    render_plan_markdown,
)

__all__ = ["diff", "drift", "promote"]


@main.command()
@click.argument("source")
@click.argument("target")
@click.option("--json", "as_json", is_flag=True, help="Print the differences as JSON.")
@click.pass_obj
def diff(obj: CliContext, source: str, target: str, as_json: bool) -> int:
    """Compare the live resources of two environments (e.g. `diff staging prod`).

    Resources are matched by manifest key (ids differ per organisation) and
    links by key; values that differ because each environment's vars say so
    are not reported. Exit 0 when equal, 2 when different, 1 on error.
    """
    from avatarsync.api import diff_environments

    project = open_project(obj)
    with progress(obj) as display:
        result = diff_environments(project, source, target, on_event=display)
    if as_json:
        click.echo(render_environment_diff_json(result), nl=False)
    else:
        click.echo(render_environment_diff_text(result, color=_color(obj, sys.stdout)), nl=False)
    return 0 if result.equal else 2


@main.command()
@click.argument("source")
@click.argument("target_env", metavar="TARGET")
@_plan_selection
@_apply_options
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save TARGET's plan instead of applying it (apply it later with `apply FILE`).",
)
@click.option(
    "--skip-tests",
    is_flag=True,
    help="Promote even if SOURCE's conversation tests did not pass on these manifests.",
)
@click.pass_obj
def promote(
    obj: CliContext,
    source: str,
    target_env: str,
    selection: PlanSelection,
    request: ApplyRequest,
    out: Path | None,
    skip_tests: bool,
) -> int:
    """Apply to TARGET exactly what SOURCE runs (e.g. `promote staging prod`).

    Refuses unless SOURCE's last successful apply was made from the manifests
    of this checkout, its conversation tests (`avatarsync test --env SOURCE`)
    passed on those manifests, and SOURCE has no pending changes or drift:
    what is promoted must be what was tested. Then it is `apply --env TARGET`
    (confirmation, --yes, protect rules, --out to save the plan for review).
    """
    from avatarsync.api import Workspace, check_promotion, save_plan_file

    if source == target_env:
        raise click.UsageError("SOURCE and TARGET must be different environments")
    project = open_project(obj)
    options = selection.options()
    if skip_tests:
        click.echo(
            f"WARNING: --skip-tests: promoting without checking that {source!r}'s conversation "
            "tests passed on these manifests",
            err=True,
        )
    with progress(obj) as display:
        checked = check_promotion(
            project,
            source,
            parallelism=request.parallelism,
            on_event=display,
            skip_tests=skip_tests,
        )
    for note in checked.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(
        f"{source!r} runs these manifests with nothing pending: promoting to {target_env!r}.",
        err=True,
    )
    if out is not None:
        with (
            progress(obj) as display,
            Workspace(project, target_env, parallelism=request.parallelism, on_event=display) as ws,
            ws.locked(request.lock_timeout),
        ):
            run = ws.plan(options)
            save_plan_file(run.plan, out)
            annotate_plan(obj, ws, run.plan)
        print_plan(obj, run.plan, as_json=request.as_json)
        write_step_summary(obj, lambda: render_plan_markdown(run.plan))
        click.echo(f"Saved the plan to {out}; apply it with: avatarsync apply {out}", err=True)
        return 0
    return apply_environment(obj, project, target_env, options, request)


@main.command()
@click.option("-e", "--env", "env_name", required=True, help="Environment to check.")
@click.option("--json", "as_json", is_flag=True, help="Print the drift as a JSON plan.")
@click.option("--markdown", is_flag=True, help="Print the drift as Markdown.")
@click.pass_obj
def drift(obj: CliContext, env_name: str, as_json: bool, markdown: bool) -> int:
    """Show what was changed outside git since the last apply (edited or deleted live).

    Exit 2 when something drifted, 0 when nothing did, 1 on error. `apply`
    puts drifted resources back as the manifests say.
    """
    if as_json and markdown:
        raise click.UsageError("--json and --markdown are exclusive")
    from avatarsync.api import Workspace

    project = open_project(obj)
    with progress(obj) as display, Workspace(project, env_name, on_event=display) as ws:
        run = ws.drift()
        annotate_plan(obj, ws, run.plan)
    drifted = run.plan.has_changes
    if as_json or markdown or drifted:
        print_plan(obj, run.plan, as_json=as_json, markdown=markdown, title="drift")
    else:
        click.echo(f"No drift: environment {env_name!r} is as its last apply left it.")
    write_step_summary(obj, lambda: render_plan_markdown(run.plan, title="drift"))
    return 2 if drifted else 0
