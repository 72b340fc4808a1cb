"""The facade as a user's script drives it: docs/python-api.md's example, run for real."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import avatarsync
from avatarsync import Workspace
from avatarsync.errors import LockError, UnsafePlanError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    target = tmp_path / "examples"
    shutil.copytree(REPO / "examples", target, ignore=shutil.ignore_patterns(".avatarsync"))
    return target


def test_the_documented_example_runs(examples: Path, monkeypatch, capsys) -> None:
    text = (REPO / "docs" / "python-api.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", text, flags=re.S)[:1]
    monkeypatch.chdir(examples.parent)
    exec(compile(code, "python-api.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Plan: 10 to create")
    assert out[1].startswith("Apply complete: 10 created")


def test_workspace_async_twins_and_a_refused_unsafe_plan_writes_nothing(examples: Path) -> None:
    project_file = examples / "avatarsync.yaml"
    project = avatarsync.load_project(examples)
    with Workspace(project, "local") as ws, ws.locked():

        async def first_apply() -> None:
            run = await ws.plan_async()
            report = await ws.apply_async(run.plan)
            assert report.ok and report.counts()["created"] == 10

        asyncio.run(first_apply())
    # Protect the environment and change what forces a replace: the plan is
    # still built (and says what it needs), apply refuses before any call.
    project_file.write_text(
        project_file.read_text().replace("emulator: true", "emulator: true\n    protect: true")
    )
    sales = examples / "characters" / "sales.yaml"
    sales.write_text(
        sales.read_text().replace("livekitIdentity: acme-riley-sales", "livekitIdentity: riley-2")
    )
    project = avatarsync.load_project(examples)
    with Workspace(project, "local") as ws, ws.locked():
        plan = ws.plan().plan
        replaced = [str(c.address) for c in plan.changes if c.action.value == "replace"]
        assert replaced == ["Character/riley-sales"]
        assert plan.protected and any("--allow-destroy" in p for p in plan.safety_problems())
        serial = ws.store.load().serial
        with pytest.raises(UnsafePlanError, match="protected"):
            ws.apply(plan)
        assert ws.store.load().serial == serial  # nothing recorded, nothing sent
        assert ws.apply(plan, allow_destroy=True).ok


def test_the_documented_session_examples_run(examples: Path, monkeypatch, capsys) -> None:
    from avatarsync.emulator import DEFAULT_API_KEY, EmulatorConfig, EmulatorServer

    text = (REPO / "docs" / "python-api.md").read_text()
    apply, in_project, in_backend = re.findall(r"```python\n(.*?)```", text, flags=re.S)[:3]
    monkeypatch.chdir(examples.parent)
    exec(compile(apply, "python-api.md", "exec"), {})
    exec(compile(in_project, "python-api.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[-2].startswith("conv_") and out[-2].endswith(" running")
    assert out[-1] == "ended"
    exported = avatarsync.load_presets_file(examples.parent / "presets.json")
    assert set(exported.presets) == {"onboarding-welcome", "sales-advice", "support-default"}
    # The backend has the export and a key: here, the same emulator organisation.
    db = examples / ".avatarsync" / "emulator" / "local.sqlite"
    server = EmulatorServer(EmulatorConfig(db=str(db))).start()
    try:
        monkeypatch.setenv("EQUOS_API_URL", server.url)
        monkeypatch.setenv("EQUOS_API_KEY", DEFAULT_API_KEY)
        exec(compile(in_backend, "python-api.md", "exec"), {})
        assert capsys.readouterr().out.startswith("room_conv_")
        assert server.stats()["openConversations"]["equos"] == 0
    finally:
        server.stop()


class _SlowHeldStore:
    """A store whose lock is held by another run and takes `delay` s to say so
    (an S3 or PostgreSQL store on a loaded runner)."""

    environment = "test"

    def __init__(self, delay: float, free_after: int) -> None:
        self.delay, self.free_after, self.tries = delay, free_after, 0

    @contextlib.contextmanager
    def locked(self, timeout: float = 0.0) -> Iterator[None]:
        self.tries += 1
        time.sleep(self.delay)
        if self.tries <= self.free_after:
            raise LockError("locked by another run")
        yield


def test_a_lock_wait_is_reported_from_zero_however_slow_the_store_answers() -> None:
    from avatarsync.api import _hold_lock

    store = _SlowHeldStore(delay=0.6, free_after=1)
    events: list[object] = []
    with _hold_lock(store, "test", 30, events.append):  # type: ignore[arg-type]
        pass
    assert store.tries == 2
    assert [type(e).__name__ for e in events] == ["LockWaiting"]
    assert events[0].waited < 0.1  # type: ignore[attr-defined]


def test_no_lock_timeout_fails_on_the_first_try_without_reporting_a_wait() -> None:
    from avatarsync.api import _hold_lock

    store = _SlowHeldStore(delay=0.0, free_after=5)
    events: list[object] = []
    with (
        pytest.raises(LockError, match=r"^locked by another run$"),
        _hold_lock(store, "test", 0, events.append),  # type: ignore[arg-type]
    ):
        pass
    assert store.tries == 1 and events == []
