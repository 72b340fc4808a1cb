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
from typing import TYPE_CHECKING, Any

from avatarsync.avatarium.endpoint import AvatariumEndpoint, byok_settings, open_endpoint
from avatarsync.avatarium.results import Status, SuiteResult, TestResult
from avatarsync.avatarium.runner import ProfileTarget, interruptible, run_tests
from avatarsync.avatarium.smoke import smoke_preset
from avatarsync.errors import ApiError, AvatarsyncError, ProjectError
from avatarsync.manifests.messages import did_you_mean
from avatarsync.resources import Address, ConversationTest, Kind
from avatarsync.state import StateOp
from avatarsync.vcs import checkout

if TYPE_CHECKING:
    from avatarsync.api import Workspace

__all__ = ["NO_TESTS_NOTE", "PresetRenderer", "run_suite", "select_tests"]

NO_TESTS_NOTE = "no ConversationTest in the manifests: nothing to test (and nothing gates promote)"

# (preset key, caller values) -> rendered promptTemplateVars
PresetRenderer = Callable[[str, Mapping[str, Any]], dict[str, str]]
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
    render_preset: PresetRenderer,
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
            _run(ws, tests, endpoint, targets, render_preset, parallelism, on_result),
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
    render_preset: PresetRenderer,
    parallelism: int,
    on_result: ResultSink | None,
) -> list[TestResult]:
    async with AsyncExitStack() as stack:
        avatarium = None
        if endpoint is not None:
            avatarium = await stack.enter_async_context(
                endpoint.client(max_concurrency=parallelism * 2)
            )
        equos = None
        if any(test.preset is not None for test in tests):
            equos = await stack.enter_async_context(ws.client())
        state = ws.store.load() if equos is not None else None

        async def run_preset(test: ConversationTest) -> TestResult:
            assert test.preset is not None and equos is not None and state is not None
            label = f"preset {test.preset}"
            preset = ws.desired.presets[test.preset]
            character_id = state.id_of(Address(Kind.CHARACTER.value, preset.character))
            if character_id is None:
                return TestResult(
                    test.key,
                    label,
                    Status.FAILED,
                    error=f"Character '{preset.character}' of ConversationPreset "
                    f"'{test.preset}' is not applied in environment {ws.env.name!r}: "
                    f"apply --env {ws.env.name} first",
                )
            try:
                template_vars = render_preset(test.preset, test.vars)
                outcome = await smoke_preset(
                    equos,
                    preset,
                    character_id,
                    template_vars,
                    client_tag=ws.env.client,
                    name=f"avatarsync test {test.key}",
                )
            except (ApiError, AvatarsyncError) as exc:
                return TestResult(test.key, label, Status.FAILED, error=str(exc))
            status = Status.FAILED if outcome.failures else Status.PASSED
            error = "; ".join(outcome.failures) or None
            return TestResult(
                test.key, label, status, error=error, conversation_id=outcome.conversation_id
            )

        return await run_tests(
            tests,
            avatarium=avatarium,
            ws_auth=endpoint.ws_auth if endpoint is not None else "header",
            targets=targets,
            run_preset=run_preset if equos is not None else None,
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
