"""`avatarsync test` for one opened environment: select, preflight, run, record.

The workspace gives the desired state (profiles, tests, presets), the
embedded emulator if the environment has one, the Equos client and the state
store. Before any conversation starts, every BYOK variable the selected tests
need is read (a missing one is an error naming it, and nothing was started).
After the run, the outcome is recorded in the environment's state
(`lastTests`, a `last-tests` StateOp) against the manifests' fingerprint:
`promote` refuses a source whose tests did not pass on these manifests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack, ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from avatarsync.avatarium.endpoint import AvatariumEndpoint, byok_settings, open_endpoint
from avatarsync.avatarium.results import Status, SuiteResult, TestResult
from avatarsync.avatarium.runner import ProfileTarget, interruptible, run_tests
from avatarsync.errors import AvatarsyncError, ProjectError
from avatarsync.manifests.messages import did_you_mean
from avatarsync.resources import ConversationTest
from avatarsync.state import StateOp
from avatarsync.vcs import checkout

if TYPE_CHECKING:
    from avatarsync.api import Workspace

__all__ = ["NO_TESTS_NOTE", "run_suite", "select_tests"]

NO_TESTS_NOTE = "no ConversationTest in the manifests: nothing to test (and nothing gates promote)"

ResultSink = Callable[[TestResult], None]


def select_tests(
    tests: Mapping[str, ConversationTest], names: Sequence[str]
) -> list[ConversationTest]:
    """The tests named (all when none is); an unknown name is an error."""
    if not names:
        return [tests[key] for key in sorted(tests)]
    unknown = [name for name in names if name not in tests]
    if unknown:
        hint = did_you_mean(unknown[0], tests)
        known = ", ".join(sorted(tests)) or "none"
        raise ProjectError(
            f"no ConversationTest '{unknown[0]}'{hint}; the manifests define: {known}"
        )
    return [tests[name] for name in dict.fromkeys(names)]


def run_suite(
    ws: Workspace,
    names: Sequence[str] = (),
    *,
    parallelism: int = 4,
    on_result: ResultSink | None = None,
    record: bool = True,
    lock_timeout: float = 30.0,
) -> SuiteResult:
    desired = ws.desired
    tests = select_tests(desired.tests, names)
    started = time.monotonic()
    if not tests:
        return SuiteResult(ws.env.name, (), 0.0, tuple(names), (NO_TESTS_NOTE,))
    # Preflight: every key is read before anything starts (and stays a Secret).
    targets: dict[str, ProfileTarget] = {}
    for test in tests:
        if test.profile is not None and test.profile not in targets:
            profile = desired.profiles[test.profile]
            targets[test.profile] = ProfileTarget(
                profile, byok_settings(ws.project, ws.env, profile)
            )
    with ExitStack() as stack:
        endpoint = None
        if targets:
            embedded = ws.base_url if ws.env.emulator and not ws.env.url else None
            endpoint = open_endpoint(ws.project, ws.env, embedded, stack)
        results = interruptible(
            _run(ws, tests, endpoint, targets, parallelism, on_result),
            "every conversation it started was ended; no test result was recorded",
        )
    order = {test.key: index for index, test in enumerate(tests)}
    ordered = tuple(sorted(results, key=lambda r: (order[r.name], r.name)))
    located = tuple(_located(ws, result) for result in ordered)
    suite = SuiteResult(ws.env.name, located, time.monotonic() - started, tuple(names))
    if record:
        _record(ws, suite, lock_timeout)
    return suite


async def _run(
    ws: Workspace,
    tests: Sequence[ConversationTest],
    endpoint: AvatariumEndpoint | None,
    targets: Mapping[str, ProfileTarget],
    parallelism: int,
    on_result: ResultSink | None,
) -> list[TestResult]:
    async with AsyncExitStack() as stack:
        avatarium = None
        if endpoint is not None:
            avatarium = await stack.enter_async_context(
                endpoint.client(max_concurrency=parallelism * 2)
            )

        async def run_preset(test: ConversationTest) -> TestResult:
            # The sessions' smoke (start, check, stop on every exit path).
            assert test.preset is not None
            label = f"preset {test.preset}"
            try:
                report = await ws.smoke_async(test.preset, test.vars, timeout=test.timeout_seconds)
            except AvatarsyncError as exc:
                return TestResult(test.key, label, Status.FAILED, error=str(exc))
            failures = [
                f"{c.name}: {c.detail}" if c.detail else c.name for c in report.checks if not c.ok
            ]
            if report.error:
                failures.append(report.error)
            if report.conversation_id is not None and not report.stopped:
                failures.append(f"conversation {report.conversation_id} could not be stopped")
            return TestResult(
                test.key,
                label,
                Status.PASSED if report.ok else Status.FAILED,
                error="; ".join(failures) or (None if report.ok else "the smoke failed"),
                conversation_id=report.conversation_id,
            )

        return await run_tests(
            tests,
            avatarium=avatarium,
            ws_auth=endpoint.ws_auth if endpoint is not None else "header",
            targets=targets,
            run_preset=run_preset,
            parallelism=parallelism,
            on_result=on_result,
        )


def _located(ws: Workspace, result: TestResult) -> TestResult:
    test = ws.desired.tests[result.name]
    return replace(result, file=test.position.file, line=test.position.line)


def _record(ws: Workspace, suite: SuiteResult, lock_timeout: float) -> None:
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    value = suite.record(ws.sources_fingerprint, at, checkout(ws.project.root).commit)
    op = StateOp("last-tests", value=json.dumps(value, sort_keys=True))
    with ws.locked(lock_timeout):
        state = ws.store.load()
        ws.store.record(state, op)
        ws.store.compact(state)
