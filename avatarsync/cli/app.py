"""The click root: global options and the one place errors become messages and exit codes.

Command modules register themselves on `main`; they only parse options, call
`avatarsync.api` and hand results to a renderer. Exit codes: 0 success, 1 any
error (usage errors included, so that `plan --detailed-exitcode` can reserve
2 for "changes present"), 2 only where a command says so.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from avatarsync._version import __version__
from avatarsync.errors import (
    AvatarsyncError,
    Diagnostic,
    Interrupted,
    ManifestError,
    ProjectFileError,
)
from avatarsync.output import (
    LiveProgress,
    ProgressLines,
    escape_controls,
    open_progress,
    should_color,
)
from avatarsync.secret import scrub

if TYPE_CHECKING:
    from avatarsync.manifests.project import Project

__all__ = [
    "CliContext",
    "annotation",
    "hoist_global_flags",
    "main",
    "open_project",
    "option_group",
    "progress",
    "report_diagnostics",
    "report_error",
    "run",
    "shown_path",
    "write_step_summary",
]


@dataclass
class CliContext:
    """What every command gets on `ctx.obj`; tests may pass their own."""

    directory: Path | None = None
    project_file: Path | None = None
    debug: bool = False
    color: bool | None = None  # None: decide from TTY and NO_COLOR
    # How diagnostics (file:line:col) are reported on stderr: text, or GitHub
    # workflow commands (annotations).
    diagnostic_format: Literal["text", "github"] = "text"
    project_root: Path | None = None  # diagnostics name files relative to it
    # GitHub Actions (GITHUB_ACTIONS=true or --github): errors become
    # annotations and plan/apply/drift write the job's step summary.
    github: bool = False


def option_group(
    into: type[Any], parameter: str, *options: Callable[[Any], Any]
) -> Callable[[Any], Any]:
    """Click `options` that a command takes as one value: `into`, a dataclass
    whose fields are the options' parameter names, built from what was given
    and passed as `parameter`. They show in --help in the order written."""
    names = [f.name for f in dataclasses.fields(into)]

    def decorate(command: Any) -> Any:
        @functools.wraps(command)
        def grouped(*args: Any, **kwargs: Any) -> Any:
            value = into(**{name: kwargs.pop(name) for name in names})
            return command(*args, **{parameter: value}, **kwargs)

        for option in reversed(options):
            grouped = option(grouped)
        return grouped

    return decorate


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
@click.option(
    "--no-color", is_flag=True, help="Never colour output (NO_COLOR and FORCE_COLOR are honoured)."
)
@click.option(
    "--github",
    is_flag=True,
    help="GitHub Actions mode: errors as annotations, a step summary "
    "(on by itself when GITHUB_ACTIONS=true).",
)
@click.version_option(__version__, prog_name="avatarsync")
@click.pass_context
def main(
    ctx: click.Context,
    directory: Path | None,
    project_file: Path | None,
    debug: bool,
    no_color: bool,
    github: bool,
) -> None:
    """Keep AI avatar characters in git: validate, plan, apply, promote.

    --no-color, --debug and --github may also follow the command.
    """
    obj = ctx.ensure_object(CliContext)
    obj.directory = directory or obj.directory
    obj.project_file = project_file or obj.project_file
    obj.debug = debug or obj.debug
    if no_color:
        obj.color = False
    if github or obj.github or os.environ.get("GITHUB_ACTIONS") == "true":
        obj.github = True
        obj.diagnostic_format = "github"


# Flags of the root group that read naturally after the command too
# (`avatarsync plan --env prod --no-color`): moved in front of it before click parses.
_GLOBAL_FLAGS = frozenset({"--no-color", "--debug", "--github"})


def hoist_global_flags(argv: list[str]) -> list[str]:
    """`argv` with the root group's flags moved first (never past a `--`)."""
    try:
        end = argv.index("--")
    except ValueError:
        end = len(argv)
    flags = [a for a in argv[:end] if a in _GLOBAL_FLAGS]
    rest = [a for a in argv[:end] if a not in _GLOBAL_FLAGS]
    return flags + rest + argv[end:]


def run(argv: list[str] | None = None, obj: CliContext | None = None) -> None:
    """Console entry point: run `main`, map every failure to a message and exit 1."""
    argv = hoist_global_flags(list(argv if argv is not None else sys.argv[1:]))
    debug = "--debug" in argv
    obj = obj if obj is not None else CliContext()
    try:
        code = main.main(args=argv, prog_name="avatarsync", standalone_mode=False, obj=obj)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        # Usage errors exit 1, never 2: 2 means "changes present" for plan.
        click.echo(scrub(_format_click_error(exc)), err=True)
        sys.exit(1)
    except (ManifestError, ProjectFileError) as exc:
        if debug:
            click.echo(scrub(traceback.format_exc()), err=True)
        root = exc.root if isinstance(exc, ProjectFileError) else obj.project_root
        report_diagnostics(exc.diagnostics, root, obj.diagnostic_format)
        errors = sum(1 for d in exc.diagnostics if d.severity == "error")
        click.echo(diagnostic_summary(errors, len(exc.diagnostics) - errors), err=True)
        sys.exit(exc.exit_code)
    except Interrupted:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except AvatarsyncError as exc:
        if debug:
            click.echo(scrub(traceback.format_exc()), err=True)
        report_error(obj, str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: say so, without leaking secrets
        if debug:
            click.echo(scrub(traceback.format_exc()), err=True)
        report_error(
            obj, f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)"
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def progress(obj: CliContext) -> ProgressLines | LiveProgress:
    """The progress display on stderr: live on a terminal, timestamped lines in
    a log (and always lines in GitHub mode: a job log is not a terminal)."""
    stream = sys.stderr
    color = should_color(stream, obj.color is False)
    try:
        live = stream.isatty() and not obj.github
    except (AttributeError, ValueError):
        live = False
    return open_progress(stream, live=live, color=color)


def write_step_summary(obj: CliContext, markdown: Callable[[], str]) -> None:
    """Append to the GitHub job summary ($GITHUB_STEP_SUMMARY), in GitHub mode
    (`markdown` renders it: only then, a plan of 20,000 resources is not free)."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not obj.github or not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as summary:
            summary.write(markdown().rstrip("\n") + "\n\n")
    except OSError as exc:
        click.echo(f"warning: cannot write the step summary {path}: {exc.strerror}", err=True)


def open_project(obj: CliContext) -> Project:
    """The project of this invocation; diagnostics then name files from the working directory."""
    from avatarsync import api

    project = api.load_project(obj.directory, obj.project_file)
    obj.project_root = project.root
    return project


def report_diagnostics(
    diagnostics: Iterable[Diagnostic], root: Path | None, output_format: str
) -> None:
    """Print diagnostics on stderr: `file:line:col: message` (paths as the
    user can open them), or GitHub workflow commands (annotations)."""
    for d in diagnostics:
        file = shown_path(root / d.file) if root is not None else d.file
        # Manifest text reaches these messages: it must not drive the terminal
        # (escape sequences) or forge lines of its own (newlines).
        message = one_line_safe(scrub(d.message))
        if output_format == "github":
            click.echo(annotation(d.severity, message, file, d.line, d.col), err=True)
        else:
            click.echo(
                str(Diagnostic(one_line_safe(file), d.line, d.col, message, d.severity)), err=True
            )


def report_error(obj: CliContext, message: str) -> None:
    """The one line an error ends a command with: `error: …`, or an annotation."""
    text = escape_controls(scrub(message))
    if obj.github:
        click.echo(annotation("error", text), err=True)  # newlines escaped as %0A
    else:
        click.echo(text if text.startswith("internal error") else f"error: {text}", err=True)


def annotation(
    severity: str,
    message: str,
    file: str | None = None,
    line: int | None = None,
    col: int | None = None,
) -> str:
    """A GitHub workflow command (`::error file=…,line=…::message`). The runner
    reads them from stderr as well as stdout, so stdout stays the payload
    (`plan --json > plan.json` in a workflow). Properties and message are
    escaped as GitHub documents: `%`, CR and LF everywhere, `:` and `,` in
    properties (a file named `a,b.yaml` would otherwise end the property)."""
    properties = []
    if file is not None:
        properties.append(f"file={_gh_property(one_line_safe(file))}")
        if line is not None:
            properties.append(f"line={line}")
        if col is not None:
            properties.append(f"col={col}")
    head = f"::{severity} {','.join(properties)}" if properties else f"::{severity}"
    return f"{head}::{_gh_message(message)}"


def one_line_safe(text: str) -> str:
    """Control characters (newlines included) shown as escapes, never acted on."""
    return escape_controls(text).replace("\n", "\\n").replace("\t", "\\t")


def _gh_message(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_message(text).replace(":", "%3A").replace(",", "%2C")


def diagnostic_summary(errors: int, warnings: int) -> str:
    def count(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    return f"{count(errors, 'error')}, {count(warnings, 'warning')}"


def shown_path(path: Path) -> str:
    """A path as the user can open it: relative to the working directory when inside it."""
    try:
        relative = os.path.relpath(path, Path.cwd())
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if relative.startswith("..") else relative


def _format_click_error(exc: click.ClickException) -> str:
    if isinstance(exc, click.UsageError) and exc.ctx is not None:
        return f"{exc.ctx.get_usage()}\nTry '{exc.ctx.command_path} -h' for help.\n\nerror: {exc.format_message()}"
    return f"error: {exc.format_message()}"
