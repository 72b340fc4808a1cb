"""Commands on sessions: `session start|stop|get|list|smoke` and `presets export`.

Each parses its options, calls `avatarsync.api` and prints. Conversation
tokens are secrets: printed only with `--show-tokens`. The payload (the
conversation, the list, the smoke report, the export) goes to stdout,
everything else to stderr.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from avatarsync.cli.app import CliContext, main, open_project, option_group, progress, shown_path
from avatarsync.errors import Interrupted, SessionError
from avatarsync.output.sessions import (
    render_conversation_json,
    render_conversation_text,
    render_conversations_json,
    render_conversations_text,
    render_presets_export,
    render_smoke_json,
    render_smoke_text,
    render_started_json,
    render_started_text,
)

if TYPE_CHECKING:
    from avatarsync.api import Workspace

__all__ = ["presets", "session"]

T = TypeVar("T")


@main.group()
def session() -> None:
    """Equos conversations from ConversationPresets: start, stop, get, list, smoke."""


_ENV = click.option("--env", "env_name", required=True, metavar="ENV", help="Environment.")


@dataclass(frozen=True)
class _PresetInputs:
    """What every command that starts a conversation takes besides --env, as
    given: parsed by the command once the project is open (so errors come
    in the same order)."""

    assignments: tuple[str, ...]
    values_file: Path | None
    name: str | None
    max_seconds: int | None
    consumer: str | None
    remote_agent: str | None
    host_url: str | None
    host_token_env: str | None

    def values(self) -> dict[str, Any]:
        from avatarsync import api
        from avatarsync.cli.manifest_cmds import _merge

        for item in self.assignments:
            if "=" not in item or not item.partition("=")[0].strip():
                raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--var")
        values = api.load_values(self.values_file) if self.values_file else {}
        return _merge(values, api.parse_assignments(self.assignments))

    def options(self) -> Any:
        from avatarsync import HostRoom, Participant, SessionOptions, secret

        host = None
        host_url, host_token_env = self.host_url, self.host_token_env
        if host_url or host_token_env:
            if not (host_url and host_token_env):
                raise click.UsageError("--host-url and --host-token-env go together")
            token = os.environ.get(host_token_env)
            if not token:
                raise SessionError(f"--host-token-env: {host_token_env} is not set")
            host = HostRoom(host_url, secret.Secret(token))
        return SessionOptions(
            name=self.name,
            max_seconds=self.max_seconds,
            host=host,
            remote_agent=Participant.parse(self.remote_agent) if self.remote_agent else None,
            consumer=Participant.parse(self.consumer) if self.consumer else None,
        )


_preset_options = option_group(
    _PresetInputs,
    "inputs",
    click.option(
        "--var",
        "assignments",
        multiple=True,
        metavar="KEY=VALUE",
        help="A caller input of the preset (repeatable; dotted keys nest).",
    ),
    click.option(
        "--values",
        "values_file",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        help="A YAML or JSON file of caller inputs (--var wins).",
    ),
    click.option("--name", help="Conversation name (default: PRESET-<UTC time>)."),
    click.option(
        "--max-seconds",
        type=int,
        help="Longest the conversation may run (default: the preset's maxSeconds).",
    ),
    click.option(
        "--consumer",
        metavar="IDENTITY[:NAME]",
        help="A consumer participant: its room token comes back.",
    ),
    click.option(
        "--remote-agent",
        metavar="IDENTITY[:NAME]",
        help="A remote agent participant: its room token comes back.",
    ),
    click.option("--host-url", metavar="URL", help="Your own LiveKit server URL."),
    click.option(
        "--host-token-env",
        metavar="VAR",
        help="The variable holding the access token of --host-url.",
    ),
)


def _read(obj: CliContext, env_name: str, read: Callable[[Workspace], T]) -> T:
    """Open ENV for a conversation read or stop: no resolve first (only the
    state's ids and the client are needed)."""
    from avatarsync import Workspace

    project = open_project(obj)
    with Workspace(project, env_name, resolve_first=False) as ws:
        return read(ws)


@session.command()
@click.argument("preset")
@_ENV
@_preset_options
@click.option("--json", "as_json", is_flag=True, help="Print the conversation as JSON.")
@click.option("--show-tokens", is_flag=True, help="Print the room access tokens (secrets).")
@click.pass_obj
def start(
    obj: CliContext,
    preset: str,
    env_name: str,
    inputs: _PresetInputs,
    as_json: bool,
    show_tokens: bool,
) -> None:
    """Start a conversation from PRESET in ENV (it runs until stopped or maxSeconds).

    The preset's promptTemplateVars are rendered with the caller's inputs
    (--var, --values) and its character's id comes from ENV's state: every
    input is checked before any request.
    """
    from avatarsync import Workspace

    project = open_project(obj)
    values, options = inputs.values(), inputs.options()
    # resolve_first=False: the session resolves (and checks every input) itself.
    with (
        progress(obj) as display,
        Workspace(project, env_name, on_event=display, resolve_first=False) as ws,
    ):
        started = ws.start_session(preset, values, options)
    render = render_started_json if as_json else render_started_text
    click.echo(render(started, env_name, preset, show_tokens=show_tokens), nl=False)


@session.command()
@click.argument("conversation_id", metavar="ID")
@_ENV
@click.option("--json", "as_json", is_flag=True, help="Print the conversation as JSON.")
@click.pass_obj
def stop(obj: CliContext, conversation_id: str, env_name: str, as_json: bool) -> None:
    """Stop conversation ID of ENV (its `client`); one already ended is not an error."""
    conversation = _read(obj, env_name, lambda ws: ws.stop_session(conversation_id))
    if as_json:
        click.echo(render_conversation_json(conversation, env_name), nl=False)
    else:
        click.echo(f"Conversation {conversation.id}: {conversation.status}")


@session.command()
@click.argument("conversation_id", metavar="ID")
@_ENV
@click.option("--json", "as_json", is_flag=True, help="Print the conversation as JSON.")
@click.pass_obj
def get(obj: CliContext, conversation_id: str, env_name: str, as_json: bool) -> None:
    """Show conversation ID: status, transcript and timeline (when the platform has them)."""
    conversation = _read(obj, env_name, lambda ws: ws.get_session(conversation_id))
    if as_json:
        click.echo(render_conversation_json(conversation, env_name), nl=False)
    else:
        click.echo(render_conversation_text(conversation), nl=False)


@session.command("list")
@_ENV
@click.option(
    "--status",
    type=click.Choice(["running", "ended", "error", "blocked"]),
    help="Only conversations with this status.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the conversations as JSON.")
@click.pass_obj
def list_(obj: CliContext, env_name: str, status: str | None, as_json: bool) -> None:
    """List the conversations of ENV (those with its `client`), newest first."""
    conversations = _read(obj, env_name, lambda ws: ws.list_sessions(status))
    if as_json:
        click.echo(render_conversations_json(conversations, env_name), nl=False)
    else:
        click.echo(render_conversations_text(conversations, env_name), nl=False)


@session.command()
@click.argument("preset")
@_ENV
@_preset_options
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds the start and the check may take (the stop always runs).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def smoke(
    obj: CliContext,
    preset: str,
    env_name: str,
    inputs: _PresetInputs,
    timeout: float,
    as_json: bool,
) -> int:
    """Start PRESET, check it runs with the expected character, stop it. Exit 0 or 1.

    For a post-deploy check in CI. What it started is stopped on every exit
    path: a failed check, a timeout, an API error, Ctrl-C or SIGTERM.
    """
    from avatarsync import Workspace

    project = open_project(obj)
    values, options = inputs.values(), inputs.options()

    def on_signal(signal_name: str) -> None:
        click.echo(f"{signal_name}: stopping the conversation before exiting…", err=True)

    with (
        progress(obj) as display,
        Workspace(project, env_name, on_event=display, resolve_first=False) as ws,
    ):
        try:
            report = ws.smoke(preset, values, options, timeout=timeout, on_signal=on_signal)
        except Interrupted as exc:
            click.echo(str(exc), err=True)
            raise
    click.echo((render_smoke_json if as_json else render_smoke_text)(report), nl=False)
    return 0 if report.ok else 1


@main.group()
def presets() -> None:
    """ConversationPresets for app backends."""


@presets.command("export")
@_ENV
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the file here (default: stdout).",
)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["json", "yaml"]),
    help="Default: from --out's extension, else json.",
)
@click.pass_obj
def export_presets(
    obj: CliContext, env_name: str, out: Path | None, output_format: str | None
) -> None:
    """Export ENV's presets for an app backend: character ids, fixed values,
    input templates and a content hash (schemas/presets-export.schema.json).

    Reads manifests and state only: no request. Nothing secret is written.
    """
    from avatarsync import api

    project = open_project(obj)
    document = api.export_presets(project, env_name)
    if output_format is None:
        suffix = out.suffix.lower() if out is not None else ""
        output_format = "yaml" if suffix in (".yaml", ".yml") else "json"
    text = render_presets_export(document, output_format)
    if out is None:
        click.echo(text, nl=False)
        return
    target = out
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(target.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(target)
    count = len(document["presets"])
    click.echo(
        f"wrote {shown_path(target)}: {count} preset{'' if count == 1 else 's'} of "
        f"'{env_name}' ({document['contentHash']})",
        err=True,
    )
