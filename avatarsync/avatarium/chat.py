"""`avatarsync chat`: one conversation with an AgentProfile, line by line.

The terminal (`ChatTerminal`, the CLI's) reads lines and shows text; this
module owns the conversation: the reply streams to the terminal chunk by
chunk as it arrives; `/quit`, end of input (Ctrl-D) or SIGTERM end the
conversation cleanly; SIGINT (Ctrl-C) during a reply cancels that reply only
(its socket is closed; the next line opens a fresh one on the same
conversation), and at the prompt it ends the chat. The conversation is ended
on the server in every case.

Lines are read on a daemon thread, one when the chat asks for it (so after
/quit nothing is left reading): a blocked read must never keep the process
alive once the conversation is over.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Protocol

from avatarsync.avatarium.endpoint import AvatariumEndpoint, byok_settings, open_endpoint
from avatarsync.errors import ProjectError
from avatarsync.interrupts import install_handlers
from avatarsync.manifests.messages import did_you_mean
from avatarsync.manifests.project import Environment, Project
from avatarsync.resources import AgentProfile, DesiredState

__all__ = ["QUIT_COMMANDS", "ChatSummary", "ChatTerminal", "run_chat"]

QUIT_COMMANDS = frozenset({"/quit", "/exit"})
REPLY_TIMEOUT = 120.0


class ChatTerminal(Protocol):
    """Where the chat reads and writes; the CLI decides how it looks."""

    def read_line(self) -> str | None:
        """The next line typed (without its newline), None at end of input. Blocking."""
        ...

    def prompt(self) -> None:
        """Invite the next line (nothing when not interactive)."""
        ...

    def reply_begins(self, speaker: str) -> None: ...

    def chunk(self, text: str) -> None:
        """Part of the reply, shown at once."""
        ...

    def reply_ends(self) -> None: ...

    def note(self, text: str) -> None:
        """A remark that is not the agent speaking (stderr)."""
        ...


@dataclass(frozen=True)
class ChatSummary:
    conversation_id: str
    turns: int
    cancelled_replies: int


def run_chat(
    project: Project,
    env: Environment,
    desired: DesiredState,
    profile_key: str,
    terminal: ChatTerminal,
    embedded_url: str | None,
) -> ChatSummary:
    profile = desired.profiles.get(profile_key)
    if profile is None:
        hint = did_you_mean(profile_key, desired.profiles)
        known = ", ".join(desired.profiles) or "none"
        raise ProjectError(f"no AgentProfile '{profile_key}'{hint}; the manifests define: {known}")
    byok = byok_settings(project, env, profile)
    with ExitStack() as stack:
        embedded = embedded_url if env.emulator and not env.url else None
        endpoint = open_endpoint(project, env, embedded, stack)
        return asyncio.run(_chat(endpoint, profile, byok, terminal))


async def _chat(
    endpoint: AvatariumEndpoint,
    profile: AgentProfile,
    byok: Mapping[str, Any] | None,
    terminal: ChatTerminal,
) -> ChatSummary:
    loop = asyncio.get_running_loop()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    reply: list[asyncio.Future[Any]] = []  # the reply streaming now, if any
    cancelled_by_user: list[bool] = [False]

    wanted = threading.Semaphore(0)  # a line is read only when the chat asks for one

    def read_lines() -> None:
        while True:
            wanted.acquire()
            try:
                line = terminal.read_line()
            except (OSError, ValueError):
                line = None
            loop.call_soon_threadsafe(lines.put_nowait, line)
            if line is None:
                return

    def on_interrupt() -> None:
        if reply and not reply[0].done():
            cancelled_by_user[0] = True
            reply[0].cancel()
        else:
            lines.put_nowait(None)

    def on_terminate() -> None:
        if reply and not reply[0].done():
            reply[0].cancel()
        lines.put_nowait(None)

    installed = install_handlers(loop, {signal.SIGINT: on_interrupt, signal.SIGTERM: on_terminate})
    threading.Thread(target=read_lines, name="avatarsync-chat-input", daemon=True).start()
    turns = cancelled = 0
    try:
        async with (
            endpoint.client() as client,
            client.conversation(
                profile.avatar_id,
                profile.provider,
                profile.system_prompt,
                byok,
                ws_auth=endpoint.ws_auth,
            ) as conversation,
        ):
            terminal.note(
                f"conversation {conversation.id} with {profile.key} ({profile.avatar_id}); "
                "/quit or Ctrl-D ends it, Ctrl-C stops a reply"
            )
            while True:
                terminal.prompt()
                if lines.empty():
                    wanted.release()
                line = await lines.get()
                if line is None or line.strip() in QUIT_COMMANDS:
                    break
                text = line.strip()
                if not text:
                    continue
                terminal.reply_begins(profile.key)
                task = asyncio.ensure_future(
                    conversation.say(text, timeout=REPLY_TIMEOUT, on_chunk=terminal.chunk)
                )
                reply[:] = [task]
                try:
                    streamed = await task
                except asyncio.CancelledError:
                    if not task.cancelled():
                        raise
                    terminal.reply_ends()
                    if not cancelled_by_user[0]:
                        break  # SIGTERM: end the conversation
                    cancelled_by_user[0] = False
                    cancelled += 1
                    terminal.note("(reply cancelled)")
                    continue
                finally:
                    reply.clear()
                terminal.reply_ends()
                turns += 1
                if streamed.error is not None:
                    terminal.note(f"the server sent an error frame: {streamed.error}")
                if streamed.problem is not None:
                    terminal.note(streamed.problem)
                if streamed.mismatch:
                    terminal.note("stream_end content differs from the streamed chunks")
            conversation_id = conversation.id
        terminal.note(f"conversation {conversation_id} ended")
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    return ChatSummary(conversation_id, turns, cancelled)
