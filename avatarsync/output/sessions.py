"""Sessions as text and JSON: started, read back, listed, smoke-tested.

Renderers decide nothing: the tokens are already masked or revealed by the
caller's choice (`show_tokens`), and the JSON shapes are the documented ones
of docs/sessions.md (`.conversation.id`, `.conversations[]`, the smoke report).
"""

from __future__ import annotations

import json
from typing import Any

from avatarsync.conversations.sessions import Conversation, StartedSession
from avatarsync.conversations.smoke import SmokeReport

__all__ = [
    "SESSION_JSON_VERSION",
    "render_conversation_json",
    "render_conversation_text",
    "render_conversations_json",
    "render_conversations_text",
    "render_presets_export",
    "render_smoke_json",
    "render_smoke_text",
    "render_started_json",
    "render_started_text",
]

SESSION_JSON_VERSION = 1


def _dumps(payload: Any) -> str:
    return json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n"


def render_started_json(
    started: StartedSession, environment: str, preset: str, *, show_tokens: bool
) -> str:
    return _dumps(
        {
            "version": SESSION_JSON_VERSION,
            "environment": environment,
            "preset": preset,
            **started.to_dict(show_tokens=show_tokens),
        }
    )


def render_started_text(
    started: StartedSession, environment: str, preset: str, *, show_tokens: bool
) -> str:
    conv = started.conversation
    lines = [
        f"Started conversation {conv.id} from ConversationPreset '{preset}' in '{environment}'.",
        f"  status:     {conv.status}",
        f"  character:  {conv.character_id}",
        f"  room:       {conv.room}",
        f"  server URL: {conv.server_url}",
        f"  max:        {_seconds(conv.max_seconds)}",
    ]
    tokens = started.to_dict(show_tokens=show_tokens)["tokens"]
    returned = [role for role, token in tokens.items() if token is not None]
    if not returned:
        lines.append("  tokens:     none (pass --consumer or --remote-agent to get one)")
    for role in returned:
        shown = tokens[role] if show_tokens else "*** (hidden: --show-tokens shows it)"
        lines.append(f"  {role} token: {shown}")
    lines.append(f"Stop it with: avatarsync session stop {conv.id} --env {environment}")
    return "\n".join(lines) + "\n"


def render_conversation_json(conversation: Conversation, environment: str) -> str:
    return _dumps(
        {
            "version": SESSION_JSON_VERSION,
            "environment": environment,
            "conversation": conversation.to_dict(),
        }
    )


def render_conversation_text(conversation: Conversation) -> str:
    c = conversation
    lines = [
        f"Conversation {c.id} ({c.name})",
        f"  status:     {c.status}",
        f"  character:  {c.character_id}",
        f"  client:     {c.client}",
        f"  room:       {c.room}",
        f"  server URL: {c.server_url}",
        f"  started:    {c.started_at}",
        f"  ended:      {c.ended_at or '-'}",
    ]
    if c.prompt_template_vars:
        lines.append("  promptTemplateVars:")
        lines += [f"    {k}: {json.dumps(v)}" for k, v in c.prompt_template_vars.items()]
    if c.transcript:
        lines.append("  transcript:")
        lines += [
            f"    [{t.get('recordedAt')}] {t.get('author')}: {t.get('content')}"
            for t in c.transcript
        ]
    if c.timeline:
        lines.append("  timeline:")
        lines += [
            f"    {t.get('recordedAt')} {t.get('type')}"
            + (f" {t.get('author')}: {t.get('content')}" if t.get("content") else "")
            for t in c.timeline
        ]
    return "\n".join(lines) + "\n"


def render_conversations_json(conversations: list[Conversation], environment: str) -> str:
    return _dumps(
        {
            "version": SESSION_JSON_VERSION,
            "environment": environment,
            "conversations": [c.to_dict() for c in conversations],
        }
    )


def render_conversations_text(conversations: list[Conversation], environment: str) -> str:
    if not conversations:
        return f"No conversations in '{environment}'.\n"
    rows = [(c.id, c.status, c.name or "", c.started_at or "") for c in conversations]
    width = [max(len(r[i]) for r in rows) for i in range(3)]
    return (
        "\n".join(
            f"{cid:<{width[0]}}  {status:<{width[1]}}  {name:<{width[2]}}  {started}".rstrip()
            for cid, status, name, started in rows
        )
        + "\n"
    )


def render_smoke_json(report: SmokeReport) -> str:
    return _dumps({"version": SESSION_JSON_VERSION, **report.to_dict()})


def render_smoke_text(report: SmokeReport) -> str:
    lines = [f"smoke ConversationPreset '{report.preset}' in '{report.environment}'"]
    if report.conversation_id:
        lines.append(f"  started   {report.conversation_id}")
    for check in report.checks:
        lines.append(f"  {'ok  ' if check.ok else 'FAIL'}      {check.name}: {check.detail}")
    if report.conversation_id:
        verb = "stopped" if report.stopped else "NOT STOPPED"
        tries = "" if report.stop_attempts <= 1 else f" (after {report.stop_attempts} attempts)"
        lines.append(f"  {verb}   {report.conversation_id}: {report.final_status}{tries}")
    if report.error:
        lines.append(f"  error     {report.error}")
    lines.append(f"{'ok' if report.ok else 'FAILED'} ({report.requests} requests)")
    return "\n".join(lines) + "\n"


def render_presets_export(document: dict[str, Any], output_format: str) -> str:
    if output_format == "yaml":
        from avatarsync.manifests.loader import dump_yaml

        return dump_yaml(document)
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:g} s"
