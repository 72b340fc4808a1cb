"""The click root: global options and the one place errors become exit codes.

Command modules register themselves on `main`; they only parse options, call
the engine and hand results to a renderer. Exit codes: 0 success, 1 any error
(usage errors included, so that `plan --detailed-exitcode` can reserve 2 for
"changes present"), 2 only where a command says so.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import click

from avatarsync import __version__
from avatarsync.errors import AvatarsyncError, ManifestError
from avatarsync.secret import scrub

__all__ = ["CliContext", "main", "run"]


@dataclass
class CliContext:
    """What every command gets on `ctx.obj`; tests may pass their own."""

    directory: Path | None = None
    project_file: Path | None = None
    debug: bool = False
    color: bool | None = None  # None: decide from TTY and NO_COLOR


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-C",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Run as if started in DIR (the project is found from there upwards).",
)
@click.option(
    "--project",
    "project_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Use this project file instead of searching for avatarsync.yaml.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("--no-color", is_flag=True, help="Never colour output (NO_COLOR is honoured too).")
@click.version_option(__version__, prog_name="avatarsync")
@click.pass_context
def main(
    ctx: click.Context,
    directory: Path | None,
    project_file: Path | None,
    debug: bool,
    no_color: bool,
) -> None:
    """Keep AI avatar characters in git: validate, plan, apply, promote."""
    obj = ctx.ensure_object(CliContext)
    obj.directory = directory or obj.directory
    obj.project_file = project_file or obj.project_file
    obj.debug = debug or obj.debug
    if no_color:
        obj.color = False


def run(argv: list[str] | None = None) -> None:
    """Console entry point: run `main`, map every failure to a message and exit 1."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = main.main(args=argv, prog_name="avatarsync", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        # Usage errors exit 1, never 2: 2 means "changes present" for plan.
        click.echo(scrub(_format_click_error(exc)), err=True)
        sys.exit(1)
    except AvatarsyncError as exc:
        if debug:
            click.echo(scrub(traceback.format_exc()), err=True)
        click.echo(scrub(_format_error(exc)), err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: say so, without leaking secrets
        if debug:
            click.echo(scrub(traceback.format_exc()), err=True)
        click.echo(
            scrub(f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)"),
            err=True,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _format_error(exc: AvatarsyncError) -> str:
    if isinstance(exc, ManifestError):
        return str(exc)
    return f"error: {exc}"


def _format_click_error(exc: click.ClickException) -> str:
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        return f"{exc.ctx.get_usage()}\nTry '{exc.ctx.command_path} -h' for help.\n\nerror: {exc.format_message()}"
    return f"error: {exc.format_message()}"
