"""`session smoke`: start a conversation, check it, stop it — on every exit path.

A post-deploy check in CI: the preset starts, the conversation is `running`
and links the expected character with the rendered prompt vars, then it is
stopped. Conversations are billed while they run, so the stop happens
whatever happened before it: a failed check, a timeout, an API error, Ctrl-C
or SIGTERM (`avatarsync.interrupts` turns both into a cancellation of the check,
never of the stop). A start whose answer was still on its way when the
signal came is awaited, so its conversation is stopped too. A stop that
fails is retried; one that still fails is reported, with the id to stop by
hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from avatarsync.conversations.sessions import (
    Conversation,
    SessionSpec,
    StartedSession,
    get_conversation,
    start_conversation,
    stop_conversation,
)
from avatarsync.errors import ApiError, SessionError
from avatarsync.providers.equos import EquosClient

__all__ = ["SmokeCheck", "SmokeReport", "run_smoke"]

STOP_ATTEMPTS = 3  # each one already retries 5xx inside the client
STOP_TIMEOUT = 30.0  # seconds the stop may take, whatever stopped the check
START_GRACE = 30.0  # seconds to wait for a start answer already on its way


@dataclass(frozen=True)
class SmokeCheck:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class SmokeReport:
    """What the smoke did: the checks, and whether what it started was stopped."""

    preset: str
    environment: str
    conversation_id: str | None = None
    checks: list[SmokeCheck] = field(default_factory=list)
    stopped: bool = False
    stop_attempts: int = 0
    final_status: str | None = None
    error: str | None = None
    interrupted: str | None = None
    requests: int = 0

    @property
    def ok(self) -> bool:
        started = self.conversation_id is not None
        return (
            started
            and self.stopped
            and self.error is None
            and self.interrupted is None
            and all(c.ok for c in self.checks)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "preset": self.preset,
            "environment": self.environment,
            "ok": self.ok,
            "conversationId": self.conversation_id,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "stopped": self.stopped,
            "stopAttempts": self.stop_attempts,
            "finalStatus": self.final_status,
            "error": self.error,
            "interrupted": self.interrupted,
            "requests": self.requests,
        }


async def run_smoke(
    client: EquosClient,
    spec: SessionSpec,
    *,
    environment: str,
    character: str,
    timeout: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    report: SmokeReport | None = None,
) -> SmokeReport:
    """Start, check, stop. Never raises for a failed check or API error (the
    report says what failed); a cancellation (a signal) is re-raised after
    the stop, so pass `report` to read what happened then."""
    report = report if report is not None else SmokeReport(spec.preset, environment)
    before = client.total_requests
    start = asyncio.ensure_future(start_conversation(client, spec))
    started: StartedSession | None = None
    try:
        async with asyncio.timeout(timeout):
            started = await asyncio.shield(start)
            report.conversation_id = started.conversation.id
            read = await get_conversation(client, started.conversation.id)
            report.checks += _checks(read, spec, character)
    except TimeoutError:
        report.error = f"timed out after {timeout:g} s"
    except (ApiError, SessionError) as exc:
        report.error = str(exc)
    except asyncio.CancelledError:
        report.interrupted = "cancelled"
        raise
    finally:
        if started is None:
            started = await _late_start(start)
            if started is not None:
                report.conversation_id = started.conversation.id
        if started is not None:
            await _stop(client, started.conversation.id, report, sleep)
        report.requests = client.total_requests - before
    return report


def _checks(read: Conversation, spec: SessionSpec, character: str) -> list[SmokeCheck]:
    sent = dict(spec.prompt_template_vars)
    got = dict(read.prompt_template_vars or {})
    return [
        SmokeCheck("running", read.running, f"status is {read.status}"),
        SmokeCheck(
            "character",
            read.character_id == spec.character_id,
            f"links {read.character_id} (Character '{character}' is {spec.character_id})",
        ),
        SmokeCheck(
            "promptTemplateVars",
            got == sent,
            "as rendered"
            if got == sent
            else f"differ: {', '.join(sorted(k for k in sent.keys() | got.keys() if sent.get(k) != got.get(k)))}",
        ),
    ]


async def _late_start(start: asyncio.Future[StartedSession]) -> StartedSession | None:
    """The answer of a start interrupted on its way: its conversation must be stopped."""
    if not start.done():
        try:
            await asyncio.wait_for(asyncio.shield(start), START_GRACE)
        except (TimeoutError, asyncio.CancelledError):
            start.cancel()
            return None
        except Exception:
            return None
    if start.cancelled() or start.exception() is not None:
        return None
    return start.result()


async def _stop(
    client: EquosClient,
    conversation_id: str,
    report: SmokeReport,
    sleep: Callable[[float], Awaitable[None]],
) -> None:
    last = ""
    for attempt in range(1, STOP_ATTEMPTS + 1):
        report.stop_attempts = attempt
        try:
            stopped = await asyncio.wait_for(
                stop_conversation(client, conversation_id), STOP_TIMEOUT
            )
        except (ApiError, SessionError, TimeoutError) as exc:
            last = str(exc) or type(exc).__name__
            await sleep(0.5 * attempt)
            continue
        report.final_status = stopped.status
        report.stopped = not stopped.running
        if report.stopped:
            return
        last = f"still {stopped.status} after the stop"
    report.error = (report.error + "; " if report.error else "") + (
        f"could not stop conversation {conversation_id} ({last}): "
        f"stop it with `avatarsync session stop {conversation_id} --env {report.environment}`"
    )
