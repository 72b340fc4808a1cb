"""Run conversation tests: bounded concurrency, every conversation ended.

Each test of a profile creates one Avatarium conversation, sends its turns
over the WebSocket and checks each reply (`expectations`); each test of a
preset is an Equos smoke (`conversations.smoke`). At most `parallelism` tests run at once.
A test that fails — an expectation, an API error, a dropped socket, a
timeout — is reported and the others go on; the conversation is ended in
every case, and also when the run is interrupted (SIGINT, SIGTERM: the tests
are cancelled, their conversations ended, then `Interrupted` is raised).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from avatarsync.avatarium.expectations import check_reply, expected_of
from avatarsync.avatarium.results import Status, TestResult, TurnResult
from avatarsync.errors import AvatarsyncError
from avatarsync.interrupts import cancel_on_signals
from avatarsync.providers.avatarium import AvatariumClient
from avatarsync.resources import AgentProfile, ConversationTest

__all__ = ["ProfileTarget", "interruptible", "run_tests"]

T = TypeVar("T")

# How a preset test runs (the caller wires the Equos client and the rendering).
PresetRunner = Callable[[ConversationTest], Awaitable[TestResult]]
ResultSink = Callable[[TestResult], None]


@dataclass(frozen=True)
class ProfileTarget:
    """What a profile test needs besides the test: the profile and its BYOK body."""

    profile: AgentProfile
    byok: Mapping[str, Any] | None


async def run_tests(
    tests: Sequence[ConversationTest],
    *,
    avatarium: AvatariumClient | None,
    ws_auth: str,
    targets: Mapping[str, ProfileTarget],
    run_preset: PresetRunner | None,
    parallelism: int = 4,
    on_result: ResultSink | None = None,
) -> list[TestResult]:
    """Every test's result, in the order of `tests`."""
    gate = asyncio.Semaphore(max(1, parallelism))

    async def one(test: ConversationTest) -> TestResult:
        async with gate:
            started = time.monotonic()
            if test.preset is not None:
                assert run_preset is not None
                result = await run_preset(test)
            else:
                assert avatarium is not None and test.profile is not None
                result = await _profile_test(test, targets[test.profile], avatarium, ws_auth)
            result = _timed(result, time.monotonic() - started)
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(test) for test in tests)))


async def _profile_test(
    test: ConversationTest, target: ProfileTarget, client: AvatariumClient, ws_auth: str
) -> TestResult:
    profile = target.profile
    label = f"profile {profile.key}"
    turns: list[TurnResult] = []
    conversation_id: str | None = None
    try:
        async with client.conversation(
            profile.avatar_id,
            profile.provider,
            profile.system_prompt,
            target.byok,
            ws_auth=ws_auth,
        ) as conversation:
            conversation_id = conversation.id
            for turn in test.turns:
                reply = await conversation.say(turn.say, timeout=test.timeout_seconds)
                failures = check_reply(turn, reply)
                got = reply.content if (reply.chunks or reply.final is not None) else None
                turns.append(
                    TurnResult(
                        say=turn.say,
                        expected=expected_of(turn),
                        got=got,
                        status=Status.FAILED if failures else Status.PASSED,
                        failures=tuple(failures),
                        first_chunk_seconds=reply.first_chunk_seconds,
                        seconds=reply.seconds,
                        chunks=len(reply.chunks),
                        reconnected=reply.reconnected,
                    )
                )
    except AvatarsyncError as exc:
        return TestResult(
            test.key,
            label,
            Status.FAILED,
            tuple(turns),
            error=str(exc),
            conversation_id=conversation_id,
        )
    failed = any(t.status is Status.FAILED for t in turns)
    return TestResult(
        test.key,
        label,
        Status.FAILED if failed else Status.PASSED,
        tuple(turns),
        conversation_id=conversation_id,
    )


def _timed(result: TestResult, seconds: float) -> TestResult:
    return replace(result, seconds=seconds)


def interruptible(work: Coroutine[Any, Any, T], what: str) -> T:
    """Run `work` in a new event loop; SIGINT or SIGTERM cancels it (once:
    further signals are ignored while conversations are being ended), then
    `Interrupted` is raised saying what was cleaned up."""
    return asyncio.run(cancel_on_signals(work, what))
