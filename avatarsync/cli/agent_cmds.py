"""Commands on Avatarium agents: `test` (conversation tests) and `chat`.

`test` prints a line per test on stderr as each finishes, then the report on
stdout (text, or `--json`), optionally JUnit XML to a file; exit 1 when a
test failed. `chat` is a REPL on the terminal (a pipe works too: lines in,
replies out). Both only parse, call `avatarsync.api` and print.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from avatarsync.avatarium.results import TestResult
from avatarsync.cli.app import CliContext, annotation, main, open_project
from avatarsync.errors import Interrupted
from avatarsync.output._format import escape_controls
from avatarsync.output.junit import render_tests_junit
from avatarsync.output.test_report import format_test_line, render_tests_json, render_tests_text
from avatarsync.secret import scrub

__all__ = ["chat", "test"]


@main.command()
@click.option("-e", "--env", "env_name", required=True, help="Environment to test.")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option(
    "--junit",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the results as JUnit XML (GitHub/GitLab test reports).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Tests run at once.",
)
@click.pass_obj
def test(
    obj: CliContext,
    env_name: str,
    names: tuple[str, ...],
    junit: Path | None,
    as_json: bool,
    parallelism: int,
) -> int:
    """Run the ConversationTests (all, or the NAMEs) against an environment.

    Each test talks to its AgentProfile over the Avatarium WebSocket (or
    smokes its ConversationPreset on Equos) and checks every reply; every
    conversation is ended, also on failure and Ctrl-C. The outcome is recorded
    in the environment's state: `promote` requires passing tests on the same
    manifests. Exit 0 when all pass, 1 when one fails.
    """
    from avatarsync import api

    project = open_project(obj)

    def on_result(result: TestResult) -> None:
        click.echo(format_test_line(result), err=True)

    try:
        suite = api.run_conversation_tests(
            project, env_name, names, parallelism=parallelism, on_result=on_result
        )
    except Interrupted as exc:
        click.echo(str(exc), err=True)  # what was cleaned up; app.run says "Interrupted."
        raise
    if junit is not None:
        try:
            junit.write_text(render_tests_junit(suite), encoding="utf-8")
        except OSError as exc:
            raise click.FileError(str(junit), exc.strerror) from None
    if obj.github:
        for result in suite.tests:
            if result.failures:
                click.echo(
                    annotation(
                        "error",
                        scrub(f"ConversationTest '{result.name}': {'; '.join(result.failures)}"),
                        result.file,
                        result.line,
                    ),
                    err=True,
                )
    click.echo(render_tests_json(suite) if as_json else render_tests_text(suite), nl=False)
    return 0 if suite.ok else 1


@main.command()
@click.argument("profile")
@click.option("-e", "--env", "env_name", required=True, help="Environment to talk to.")
@click.pass_obj
def chat(obj: CliContext, profile: str, env_name: str) -> None:
    """Talk to an AgentProfile: each line you type is sent, the reply streams back.

    /quit or Ctrl-D ends the conversation; Ctrl-C stops the reply being
    streamed (at the prompt, it ends the chat). Without a terminal it reads
    lines from stdin and writes each reply as one line to stdout.
    """
    from avatarsync import api

    project = open_project(obj)
    terminal = _Terminal(interactive=_isatty(sys.stdin) and _isatty(sys.stdout))
    api.chat(project, env_name, profile, terminal)


class _Terminal:
    """The chat's terminal: replies on stdout as they arrive, notes on stderr."""

    def __init__(self, *, interactive: bool) -> None:
        self.interactive = interactive

    def read_line(self) -> str | None:
        line = sys.stdin.readline()
        return line.rstrip("\r\n") if line else None

    def prompt(self) -> None:
        if self.interactive:
            self._out("you> ")

    def reply_begins(self, speaker: str) -> None:
        if self.interactive:
            self._out(f"{speaker}> ")

    def chunk(self, text: str) -> None:
        shown = escape_controls(text)  # a reply must not drive the terminal
        self._out(shown if self.interactive else shown.replace("\n", " "))

    def reply_ends(self) -> None:
        self._out("\n")

    def note(self, text: str) -> None:
        click.echo(scrub(escape_controls(text)), err=True)

    def _out(self, text: str) -> None:
        sys.stdout.write(scrub(text))
        sys.stdout.flush()


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):
        return False
