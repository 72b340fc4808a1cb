"""Commands on manifests: validate, render, init, schema.

Each parses its options, calls `avatarsync.engine` and prints. Diagnostics go
to stderr as `file:line:col: message` with paths relative to the working
directory (so terminals and editors can open them), or to stdout as GitHub
workflow commands with `--format github`; rendered YAML goes to stdout.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import click

from avatarsync import engine
from avatarsync.cli.app import CliContext, main
from avatarsync.errors import Diagnostic, ManifestError
from avatarsync.manifests.project import ProjectFileError

__all__ = ["init", "render", "schema", "validate"]


@main.command()
@click.option("--env", "env_name", metavar="ENV", help="Validate one environment (default: all).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "github"]),
    default="text",
    show_default=True,
    help="github: ::error/::warning annotations for GitHub Actions.",
)
@click.pass_obj
def validate(obj: CliContext, env_name: str | None, output_format: str) -> None:
    """Check manifests offline: schema, references, substitutions, templates.

    Exits 1 when there are errors (all of them are listed); warnings alone
    exit 0.
    """
    root: Path | None = None
    try:
        project = engine.load_project(obj.directory, obj.project_file)
        root = project.root
        warnings = engine.validate(project, env_name)
    except (ManifestError, ProjectFileError) as exc:
        root = root or getattr(exc, "root", None)
        _report(exc.diagnostics, root, output_format)
        errors = sum(1 for d in exc.diagnostics if d.severity == "error")
        click.echo(_summary(errors, len(exc.diagnostics) - errors), err=True)
        click.get_current_context().exit(1)
        return
    _report(warnings, root, output_format)
    names = env_name or ", ".join(project.environments)
    click.echo(f"ok: {names}: {_summary(0, len(warnings))}", err=True)


@main.command()
@click.option("--env", "env_name", required=True, metavar="ENV", help="Environment to resolve.")
@click.argument("address", required=False, metavar="[KIND/NAME]")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="KEY=VALUE",
    help="A caller value for preset templates (repeatable; dotted keys nest).",
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
    project = engine.load_project(obj.directory, obj.project_file)
    values = engine.load_values(values_file) if values_file else {}
    values = _merge(values, engine.parse_assignments(assignments))
    click.echo(engine.render(project, env_name, address, values), nl=False)


@main.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="Project name (default: the folder name).")
@click.pass_obj
def init(obj: CliContext, directory: Path | None, name: str | None) -> None:
    """Create a small project that validates (never overwrites files)."""
    target = directory or obj.directory or Path.cwd()
    if directory is not None and obj.directory is not None and not directory.is_absolute():
        target = obj.directory / directory
    written = engine.init_project(target, name)
    for path in written:
        click.echo(f"created {_shown(path)}", err=True)
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
    base = obj.directory or Path.cwd()
    target = (
        out_dir
        if out_dir is not None and out_dir.is_absolute()
        else base / (out_dir or Path("schemas"))
    )
    if check:
        stale = engine.check_schemas(target)
        for name in stale:
            click.echo(f"out of date: {_shown(target / name)}", err=True)
        if stale:
            click.echo("run `avatarsync schema` to regenerate them", err=True)
            click.get_current_context().exit(1)
        return
    for path in engine.write_schemas(target):
        click.echo(f"wrote {_shown(path)}", err=True)


def _report(diagnostics: Iterable[Diagnostic], root: Path | None, output_format: str) -> None:
    for d in diagnostics:
        file = _shown(root / d.file) if root is not None else d.file
        if output_format == "github":
            # Workflow commands are read from stdout; the message is escaped
            # as GitHub documents (%, CR, LF).
            message = d.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
            click.echo(f"::{d.severity} file={file},line={d.line},col={d.col}::{message}")
        else:
            click.echo(str(Diagnostic(file, d.line, d.col, d.message, d.severity)), err=True)


def _summary(errors: int, warnings: int) -> str:
    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    return f"{count(errors, 'error')}, {count(warnings, 'warning')}"


def _shown(path: Path) -> str:
    """A path as the user can open it: relative to the working directory when inside it."""
    try:
        relative = os.path.relpath(path, Path.cwd())
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if relative.startswith("..") else relative


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
