"""Shared state end to end: the real CLI, the emulator, a real PostgreSQL and moto's S3.

What CI needs of a shared backend: a fresh checkout (no .avatarsync/) plans
"No changes"; a second runner waits for the lock or fails naming who holds
it; a killed runner leaves no stale lock (PostgreSQL) or one that `state
unlock` breaks (S3); a database restart in the middle of an apply leaves
no duplicate; state moves between backends without losing a key; and the
database password never shows.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from support.e2e import E2EProject, _environment, wait_for
from support.servers import MotoServer, PostgresServer

from avatarsync.manifests.project import load_project_file
from avatarsync.state import open_store

FULL = Counter({"Face": 1, "Voice": 1, "Brain": 2, "KnowledgeBase": 1, "Character": 2})
PASSWORD = "pg-pw-SENTINEL-7d1e"


def use_postgres(project: E2EProject, url: str) -> None:
    # Trust auth ignores the password, so a URI can carry one for the leak sweep.
    project.extra_env["E2E_STATE_PG"] = url.replace("postgres@", f"postgres:{PASSWORD}@")
    _set_state(project, "{backend: postgres, urlEnv: E2E_STATE_PG}")


def use_s3(project: E2EProject, moto: MotoServer, bucket: str) -> None:
    _set_state(
        project,
        f"{{backend: s3, bucket: {bucket}, key: state/test.json, region: us-east-1, "
        f"endpointUrl: '{moto.url}'}}",
    )


def _set_state(project: E2EProject, state: str) -> None:
    path = project.root / "avatarsync.yaml"
    lines = [
        line for line in path.read_text().splitlines() if not line.startswith("    state:") or False
    ]
    at = lines.index("  test:") + 1
    path.write_text("\n".join([*lines[:at], f"    state: {state}", *lines[at:]]) + "\n")


@pytest.fixture(params=["postgres", "s3"])
def shared(request, make_project) -> E2EProject:
    """A project whose environment `test` keeps its state in a shared backend."""
    project = make_project()
    if request.param == "postgres":
        use_postgres(project, request.getfixturevalue("postgres_url"))
    else:
        use_s3(
            project, request.getfixturevalue("moto_server"), request.getfixturevalue("s3_bucket")
        )
    return project


def clone(project: E2EProject, tmp_path: Path, name: str) -> E2EProject:
    """A second checkout of the project (a fresh CI runner): no .avatarsync/."""
    root = tmp_path / name
    shutil.copytree(project.root, root, ignore=shutil.ignore_patterns(".avatarsync"))
    return E2EProject(root, project.server, extra_env=dict(project.extra_env))


def test_a_fresh_checkout_plans_no_changes_from_the_shared_state(shared, tmp_path) -> None:
    applied = shared.cli("apply", "--env", "test", "--yes")
    assert applied.code == 0, applied.text
    assert not shared.state_file.exists()  # nothing went to the local file
    runner = clone(shared, tmp_path, "runner2")
    shutil.rmtree(shared.root / ".avatarsync", ignore_errors=True)
    plan = runner.cli("plan", "--env", "test", "--detailed-exitcode")
    assert plan.code == 0, plan.text
    assert "No changes" in plan.out
    assert runner.counts() == FULL
    # The edit another runner makes is planned as exactly that edit.
    runner.write(kb_name="Acme FAQ", livekit="tommy", brain_text="You help everyone.")
    edited = runner.cli("plan", "--env", "test")
    assert "~ Brain/support" in edited.out and "+ " not in edited.out, edited.out


def _slow(project: E2EProject, brains: int = 20) -> Counter:
    """More resources, applied slowly (the emulator's latency): a long apply."""
    project.server.set_faults(latency_ms=60)
    extra = "\n".join(
        f"---\nkind: Brain\nname: extra{i}\nspec:\n  instructions: Extra {i}.\n"
        "  greetingMessage: Hi\n"
        for i in range(brains)
    )
    (project.root / "characters" / "extra.yaml").write_text(extra)
    return FULL + Counter({"Brain": brains})


def test_a_second_runner_is_refused_naming_the_holder(shared, tmp_path) -> None:
    expected = _slow(shared, brains=60)  # long enough to be caught holding it
    other = clone(shared, tmp_path, "runner2")
    first = shared.popen("apply", "--env", "test", "--yes", "--parallelism", "2")
    try:
        wait_for(lambda: shared.posts() >= 2)
        refused = other.cli("apply", "--env", "test", "--yes")
    finally:
        _, err = first.communicate(timeout=120)
    assert refused.code == 1
    assert "'test' is locked" in refused.err
    assert f"pid {first.pid}" in refused.err  # who: the holder's host and pid
    assert "--lock-timeout" in refused.err
    assert first.returncode == 0, err
    assert shared.counts() == expected


def test_racing_runners_wait_for_the_lock_and_nothing_is_duplicated(shared, tmp_path) -> None:
    other = clone(shared, tmp_path, "runner2")
    with _environment(shared.env()):
        project = load_project_file(shared.root / "avatarsync.yaml")
        store = open_store(project, project.environment("test"))
        try:
            with store.locked():  # a third run holds it until both report waiting
                racers = [
                    _Watched(p.popen("apply", "--env", "test", "--yes", "--lock-timeout", "90"))
                    for p in (shared, other)
                ]
                wait_for(lambda: all(r.saw("waiting for the lock of 'test'") for r in racers))
        finally:
            store.close()
    results = [r.finish() for r in racers]
    for code, _, err in results:
        assert code == 0, err
        assert "waiting for the lock of 'test' (0 of 90 s)" in err, err
    created = [out for _, out, _ in results if "Apply complete: 7 created" in out]
    assert len(created) == 1, results  # the other found everything done
    assert shared.counts() == FULL


class _Watched:
    """A running CLI whose stderr is read as it comes (to act on a line)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def saw(self, text: str) -> bool:
        return any(text in line for line in list(self.err))

    def finish(self) -> tuple[int, str, str]:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self.proc.wait(120)
        self._reader.join(10)
        self.proc.stdout.close()
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        return self.proc.returncode, out, "".join(self.err)


def test_a_killed_runner_leaves_no_lock_on_postgres(make_project, postgres_url) -> None:
    project = make_project()
    use_postgres(project, postgres_url)
    expected = _slow(project)
    proc = project.popen("apply", "--env", "test", "--yes", "--parallelism", "2")
    wait_for(lambda: project.posts() >= 4)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    project.server.set_faults(latency_ms=0)
    rerun = project.cli("apply", "--env", "test", "--yes")
    assert rerun.code == 0, rerun.text  # the server released the dead session's lock
    assert project.counts() == expected


def test_a_killed_runner_leaves_an_s3_lock_that_state_unlock_breaks(
    make_project, moto_server, s3_bucket
) -> None:
    project = make_project()
    use_s3(project, moto_server, s3_bucket)
    expected = _slow(project)
    proc = project.popen("apply", "--env", "test", "--yes", "--parallelism", "2")
    wait_for(lambda: project.posts() >= 4)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    project.server.set_faults(latency_ms=0)
    blocked = project.cli("apply", "--env", "test", "--yes")
    assert blocked.code == 1 and f"pid {proc.pid}" in blocked.err, blocked.text
    lock_id = blocked.err.split("lock id ")[1].split(")")[0]
    assert f"avatarsync state unlock --env test {lock_id}" in blocked.err
    unlocked = project.cli("state", "unlock", "--env", "test", lock_id)
    assert unlocked.code == 0 and f"deleted 'test''s lock {lock_id}" in unlocked.out
    rerun = project.cli("apply", "--env", "test", "--yes")
    assert rerun.code == 0, rerun.text
    assert project.counts() == expected  # the journal of the killed run was replayed


def test_a_database_restart_mid_apply_leaves_no_duplicate(
    make_project, postgres_server: PostgresServer, postgres_url
) -> None:
    project = make_project()
    use_postgres(project, postgres_url)
    expected = _slow(project, brains=30)
    proc = project.popen("apply", "--env", "test", "--yes", "--parallelism", "2")
    wait_for(lambda: project.posts() >= 6)
    postgres_server.restart()
    _, err = proc.communicate(timeout=180)
    # The run reconnected, took its lock again and finished.
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    project.server.set_faults(latency_ms=0)
    rerun = project.cli("apply", "--env", "test", "--yes")
    assert rerun.code == 0 and "No changes" in rerun.out, rerun.text
    assert project.counts() == expected
    plan = project.cli("plan", "--env", "test", "--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out, plan.text
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT count(*) FROM avatarsync.resources").fetchone()
    assert rows is not None and rows[0] == sum(expected.values())


def test_state_mv_and_rm_change_keys_without_touching_anything_live(
    make_project, postgres_url
) -> None:
    project = make_project()
    use_postgres(project, postgres_url)
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    before = project.remote()
    listed = project.cli("state", "list", "--env", "test")
    assert listed.code == 0 and "Brain/support\t" in listed.out
    # Rename the shared brain in the manifests and in state: an update-free plan.
    for path in (project.root / "characters").glob("*.yaml"):
        text = path.read_text().replace("name: support", "name: helpdesk")
        path.write_text(text.replace("brain: support", "brain: helpdesk"))
    moved = project.cli("state", "mv", "Brain/support", "brain/helpdesk", "--env", "test")
    assert moved.code == 0, moved.text
    plan = project.cli("plan", "--env", "test", "--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out, plan.out
    shown = project.cli("state", "show", "Brain/helpdesk", "--env", "test")
    assert '"address": "Brain/helpdesk"' in shown.out
    # rm forgets; nothing remote is deleted, and the next plan adopts it again.
    removed = project.cli("state", "rm", "Voice/warm", "--env", "test")
    assert removed.code == 0 and "still live" in removed.out
    assert "Voice/warm" not in project.cli("state", "list", "--env", "test").out
    assert project.remote() == before
    bad = project.cli("state", "mv", "Voice/nope", "Voice/x", "--env", "test")
    assert bad.code == 1 and "Voice/nope is not in the state of 'test'" in bad.err


def test_migrate_round_trips_file_postgres_s3_file_with_the_same_listing(
    make_project, postgres_url, moto_server, s3_bucket
) -> None:
    project = make_project()
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    listing = project.cli("state", "list", "--env", "test").out
    assert listing.count("\n") == sum(FULL.values())

    # Edit state: to the new backend, then migrate from the old one.
    use_postgres(project, postgres_url)
    moved = project.cli("state", "migrate", "--env", "test", "--from", "file")
    assert moved.code == 0, moved.text
    assert project.cli("state", "list", "--env", "test").out == listing

    use_s3(project, moto_server, s3_bucket)
    moved = project.cli("state", "migrate", "--env", "test", "--from", "postgres:E2E_STATE_PG")
    assert moved.code == 0, moved.text
    assert project.cli("state", "list", "--env", "test").out == listing

    # Or migrate --to first, then point state: at it (back to a file).
    moved = project.cli(
        "state", "migrate", "--env", "test", "--to", "file:.avatarsync/state/back.json"
    )
    assert moved.code == 0, moved.text
    _set_state(project, ".avatarsync/state/back.json")
    assert project.cli("state", "list", "--env", "test").out == listing
    plan = project.cli("plan", "--env", "test", "--detailed-exitcode")
    assert plan.code == 0 and "No changes" in plan.out, plan.text

    # A target holding another state is refused, not overwritten.
    refused = project.cli("state", "migrate", "--env", "test", "--to", "file:other.json")
    assert refused.code == 0
    other = project.root / "other.json"
    other.write_text(other.read_text().replace('"lineage":"', '"lineage":"x'))
    again = project.cli("state", "migrate", "--env", "test", "--to", "file:other.json")
    assert again.code == 1 and "already holds state" in again.err


def test_the_database_password_never_shows(make_project, postgres_server, postgres_url) -> None:
    project = make_project()
    use_postgres(project, postgres_url)
    outputs = [
        project.cli("apply", "--env", "test", "--yes"),
        project.cli("plan", "--env", "test"),
        project.cli("state", "list", "--env", "test"),
        project.cli("state", "show", "Brain/support", "--env", "test"),
        project.cli("state", "unlock", "--env", "test", "1"),
        project.cli("--debug", "state", "rm", "Brain/nope", "--env", "test"),
        project.cli("render", "--env", "test"),
    ]
    # An unreachable database: the message names the variable and the host.
    project.extra_env["E2E_STATE_PG"] = project.extra_env["E2E_STATE_PG"].replace(
        f":{postgres_server.port}/", ":1/"
    )
    unreachable = project.cli("--debug", "plan", "--env", "test")
    assert unreachable.code == 1 and "E2E_STATE_PG" in unreachable.err, unreachable.text
    assert "127.0.0.1:1/" in unreachable.err
    outputs.append(unreachable)
    outputs.append(project.process("plan", "--env", "test"))
    for result in outputs:
        assert PASSWORD not in result.text
    with psycopg.connect(postgres_url) as conn:
        dump = conn.execute(
            "SELECT string_agg(t::text, ' ') FROM avatarsync.resources t"
        ).fetchone()
    assert dump is not None and PASSWORD not in str(dump[0])
