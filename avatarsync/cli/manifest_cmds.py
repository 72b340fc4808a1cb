"""Commands on manifests: validate, render, init, schema.

Each parses its options, calls `avatarsync.api` and prints. Diagnostics are
reported by the CLI's one error handler (`app.run`): `file:line:col:
message` on stderr with paths relative to the working directory, or GitHub
workflow commands (on stderr too) with `--format github`; rendered YAML goes
to stdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from avatarsync.cli.app import (
    CliContext,
    diagnostic_summary,
    main,
    open_project,
    report_diagnostics,
    shown_path,
)

__all__ = ["init", "render", "schema", "validate"]


@main.command()
@click.option("--env", "env_name", metavar="ENV", help="Validate one environment (default: all).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "github"]),
    help="github: ::error/::warning annotations for GitHub Actions "
    "(the default under GITHUB_ACTIONS=true or --github).",
)
@click.option(
    "--online",
    is_flag=True,
    help="Also ask each environment's Avatarium whether every profile's avatarId exists.",
)
@click.pass_obj
def validate(
    obj: CliContext, env_name: str | None, output_format: str | None, online: bool
) -> None:
    """Check manifests offline: schema, references, substitutions, templates.

    Exits 1 when there are errors (all of them are listed); warnings alone
    exit 0. With --online, AgentProfiles' avatars are looked up too.
    """
    from avatarsync import api

    if output_format is not None:
        obj.diagnostic_format = "github" if output_format == "github" else "text"
    project = open_project(obj)
    warnings = api.validate(project, env_name, online=online)
    report_diagnostics(warnings, project.root, obj.diagnostic_format)
    names = env_name or ", ".join(project.environments)
    click.echo(f"ok: {names}: {diagnostic_summary(0, len(warnings))}", err=True)


@main.command()
@click.option("--env", "env_name", required=True, metavar="ENV", help="Environment to resolve.")
@click.argument("address", required=False, metavar="[KIND/NAME]")
@click.option(
    "--set",
    "--var",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="A caller input for preset templates (repeatable; dotted keys nest).",
)
@click.option(
    "--values",
    "values_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A YAML file of caller values (--set wins).",
)
@click.pass_obj
def render(
    obj: CliContext,
    env_name: str,
    address: str | None,
    assignments: tuple[str, ...],
    values_file: Path | None,
) -> None:
    """Print the resolved desired state of ENV as YAML, with rendered presets.

    Fields holding secrets are masked.
    """
    from avatarsync import api

    project = open_project(obj)
    values = api.load_values(values_file) if values_file else {}
    values = _merge(values, api.parse_assignments(assignments))
    click.echo(api.render(project, env_name, address, values), nl=False)


@main.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="Project name (default: the folder name).")
@click.pass_obj
def init(obj: CliContext, directory: Path | None, name: str | None) -> None:
    """Create a small project that validates (never overwrites files)."""
    from avatarsync import api

    target = directory or obj.directory or Path.cwd()
    if directory is not None and obj.directory is not None and not directory.is_absolute():
        target = obj.directory / directory
    written = api.init_project(target, name)
    for path in written:
        click.echo(f"created {shown_path(path)}", err=True)
    click.echo(
        "next: avatarsync validate, then avatarsync plan --env local "
        "(the embedded emulator needs no key)",
        err=True,
    )


@main.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the schemas (default: ./schemas).",
)
@click.option("--check", is_flag=True, help="Exit 1 if the files there are out of date.")
@click.pass_obj
def schema(obj: CliContext, out_dir: Path | None, check: bool) -> None:
    """Write the JSON Schemas of every kind and of the project file."""
    from avatarsync import api

    base = obj.directory or Path.cwd()
    target = (
        out_dir
        if out_dir is not None and out_dir.is_absolute()
        else base / (out_dir or Path("schemas"))
    )
    if check:
        stale = api.check_schemas(target)
        for name in stale:
            click.echo(f"out of date: {shown_path(target / name)}", err=True)
        if stale:
            click.echo("run `avatarsync schema` to regenerate them", err=True)
            click.get_current_context().exit(1)
        return
    for path in api.write_schemas(target):
        click.echo(f"wrote {shown_path(path)}", err=True)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
