"""plan, apply and import through the real CLI against the real emulator.

In-process (`project.cli`) unless the process boundary is the point
(`project.process`): the lock held by another process, a missing terminal,
exit codes, kill -9, the key-leak sweep. The planner's scenarios themselves
(edit, replace, prune, faults) are proven in tests/planning/test_apply.py;
here is what the CLI adds to them: output formats, flags, saved plans.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import Counter

import pytest
from support.e2e import CLIENT, SENTINEL_KEY, E2EProject, Result

from avatarsync.state import FileStateStore

FULL = Counter({"Face": 1, "Voice": 1, "Brain": 2, "KnowledgeBase": 1, "Character": 2})


def plan_json(project: E2EProject, *args: str) -> dict:
    result = project.cli("plan", "--env", "test", "--json", *args)
    assert result.code == 0, result.text
    return json.loads(result.out)


def changed(plan: dict) -> dict[str, str]:
    return {c["address"]: c["action"] for c in plan["changes"] if c["action"] != "no-op"}


def test_apply_into_empty_org_then_plan_is_empty(project):
    first = project.cli("plan", "--env", "test", "--detailed-exitcode")
    assert first.code == 2, first.text
    assert "Plan: 7 to create, 0 to update, 0 to replace, 0 to delete." in first.out
    applied = project.cli("apply", "--env", "test", "--yes")
    assert applied.code == 0, applied.text
    assert project.counts() == FULL
    again = project.cli("plan", "--env", "test", "--detailed-exitcode")
    assert again.code == 0, again.text
    nothing = project.cli("apply", "--env", "test", "--yes", "--json")
    assert nothing.code == 0 and json.loads(nothing.out)["counts"]["created"] == 0
    assert "No changes" in again.out
    assert "(5 API requests, all reads)" in again.err


def test_edit_and_prune_as_the_cli_shows_them(project):
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    project.write(brain_text="You help {{ customer_name }} with returns only.")
    plan = plan_json(project)
    assert changed(plan) == {"Brain/support": "update"}
    (brain,) = [c for c in plan["changes"] if c["address"] == "Brain/support"]
    assert [f["field"] for f in brain["fields"]] == ["instructions"]
    text = project.cli("plan", "--env", "test").out
    assert "returns only" in text and "Plan: 0 to create, 1 to update" in text
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    assert changed(plan_json(project)) == {}

    project.write(sally=False, brain_text="You help {{ customer_name }} with returns only.")
    text = project.cli("plan", "--env", "test").out
    assert "Character/sally" in text and "--prune" in text
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    assert project.counts()["Character"] == 2  # nothing deleted without --prune
    plan = plan_json(project, "--prune")
    assert changed(plan) == {"Character/sally": "delete", "Brain/sally.brain": "delete"}
    assert project.cli("apply", "--env", "test", "--yes", "--prune").code == 0
    assert project.counts() == FULL - Counter({"Character": 1, "Brain": 1})


def test_protected_environment_refuses_destroy_without_flag(project):
    assert project.cli("apply", "--env", "prod", "--yes").code == 0
    project.write(livekit="tommy-v2")
    # The plan is still shown (and says what apply needs); apply refuses.
    planned = project.cli("plan", "--env", "prod", "--json")
    assert planned.code == 0, planned.text
    (tommy,) = [c for c in json.loads(planned.out)["changes"] if c["action"] == "replace"]
    assert tommy["address"] == "Character/tommy"
    assert "livekitIdentity cannot be updated in place" in tommy["reason"]
    text = project.cli("plan", "--env", "prod").out
    assert "is protected" in text and "Pass --allow-destroy" in text
    refused = project.cli("apply", "--env", "prod", "--yes")
    assert refused.code == 1 and "--allow-destroy" in refused.err
    assert project.counts(f"{CLIENT}-prod") == FULL
    ok = project.cli("apply", "--env", "prod", "--yes", "--allow-destroy")
    assert ok.code == 0, ok.text


def test_stale_saved_plan_is_refused(project, tmp_path):
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    project.write(brain_text="Edited in git.")
    out = tmp_path / "plan.json"
    assert project.cli("plan", "--env", "test", "--out", str(out)).code == 0
    # someone edits the voice in the studio meanwhile
    voice = project.remote()["Voice"][0]
    with project.http() as http:
        r = http.patch(f"/v3/voices/{voice['id']}", json={"identity": "Kore", "instructions": "x"})
        assert r.status_code == 200
    stale = project.cli("apply", str(out))
    assert stale.code == 1 and "changed since this plan was saved" in stale.err
    brains = {b["instructions"] for b in project.remote()["Brain"]}
    assert "Edited in git." not in brains  # nothing applied


def test_saved_plan_applies_exactly_once(project, tmp_path):
    out = tmp_path / "plan.json"
    assert project.cli("plan", "--env", "test", "--out", str(out)).code == 0
    first = project.cli("apply", str(out))
    assert first.code == 0, first.text
    assert project.counts() == FULL
    second = project.cli("apply", str(out))
    assert second.code == 1 and "already been applied" in second.err
    assert project.counts() == FULL


def test_saved_plan_refused_when_manifests_changed(project, tmp_path):
    out = tmp_path / "plan.json"
    assert project.cli("plan", "--env", "test", "--out", str(out)).code == 0
    project.write(brain_text="Changed after planning.")
    result = project.cli("apply", str(out))
    assert result.code == 1 and "manifests changed" in result.err
    assert sum(project.counts().values()) == 0


def test_second_apply_fails_fast_on_the_lock_or_waits_with_timeout(project):
    store = FileStateStore(project.state_file, environment="test", client=CLIENT)
    with store.locked():
        t0 = time.monotonic()
        blocked = project.process("apply", "--env", "test", "--yes")
        assert blocked.code == 1 and "locked by another avatarsync apply" in blocked.err
        assert time.monotonic() - t0 < 30
    assert sum(project.counts().values()) == 0

    acquired = threading.Event()

    def hold_for_a_while() -> None:
        with FileStateStore(project.state_file, environment="test", client=CLIENT).locked():
            acquired.set()
            time.sleep(0.8)

    holder = threading.Thread(target=hold_for_a_while)
    holder.start()
    acquired.wait(10)
    waited = project.process("apply", "--env", "test", "--yes", "--lock-timeout", "30")
    holder.join()
    assert waited.code == 0, waited.text
    assert project.counts() == FULL


def test_usage_error_never_exits_2_even_with_detailed_exitcode(project):
    result = project.process("plan", "--env", "test", "--detailed-exitcode", "--bogus")
    assert result.code == 1 and "No such option" in result.err


def test_apply_without_terminal_needs_yes(project):
    result = project.process("apply", "--env", "test")
    assert result.code == 1 and "--yes" in result.err
    assert sum(project.counts().values()) == 0


def test_losing_state_loses_nothing_import_rebuilds_it(project):
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    before = json.loads(project.state_file.read_text())["resources"]
    project.state_file.unlink()
    imported = project.cli("import", "--env", "test")
    assert imported.code == 0, imported.text
    after = json.loads(project.state_file.read_text())["resources"]
    assert {a: r["id"] for a, r in after.items()} == {a: r["id"] for a, r in before.items()}
    assert changed(plan_json(project)) == {}


@pytest.mark.slow
@pytest.mark.parametrize("after_posts", [3, 12])
def test_kill_9_mid_apply_then_rerun_converges_without_duplicates(make_project, after_posts):
    project = make_project(latency_ms=40)
    many = "\n".join(
        f"---\nkind: Brain\nname: extra{i}\nspec:\n  instructions: Extra brain {i}.\n  greetingMessage: Hi\n"
        for i in range(30)
    )
    (project.root / "characters" / "extra.yaml").write_text(many)
    proc = project.popen("apply", "--env", "test", "--yes", "--parallelism", "4")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if project.posts() >= after_posts:
            break
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    rerun = project.cli("apply", "--env", "test", "--yes")
    assert rerun.code == 0, rerun.text
    assert project.counts() == FULL + Counter({"Brain": 30})
    assert changed(plan_json(project)) == {}


def test_api_key_never_appears_in_any_output_plan_or_state(project, tmp_path):
    # Real processes, for what only a process shows: top-level tracebacks
    # (--debug), logging, interpreter shutdown. Every format and every
    # command is swept in-process by tests/cli/test_secret_sweep.py.
    out = tmp_path / "plan.json"
    plans = [
        project.popen("plan", "--env", "test", "--markdown"),
        project.popen("--debug", "plan", "--env", "test", "--out", str(out)),
    ]
    outputs = [p.communicate(timeout=120) for p in plans]
    results = [Result(p.returncode, out, err) for p, (out, err) in zip(plans, outputs, strict=True)]
    results += [
        project.process("--debug", "apply", "--env", "test", "--yes", "--json"),
        project.process("import", "--env", "test"),
    ]
    assert all(r.code == 0 for r in results), [r.text for r in results if r.code]
    # an error path: a wrong URL, with --debug tracebacks on
    (project.root / "avatarsync.yaml").write_text(
        (project.root / "avatarsync.yaml")
        .read_text()
        .replace(project.server.url, "http://127.0.0.1:9")
    )
    failed = project.process("--debug", "plan", "--env", "test")
    assert failed.code == 1
    assert "Traceback" in failed.err  # --debug really showed one, and it is clean
    results.append(failed)
    for r in results:
        assert SENTINEL_KEY not in r.text
    assert SENTINEL_KEY not in out.read_text()
    for path in (project.root / ".avatarsync").rglob("*"):
        if path.is_file():
            assert SENTINEL_KEY.encode() not in path.read_bytes(), path


def test_a_failed_read_fails_the_plan_instead_of_planning_deletes(project):
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    project.server.set_faults(error_rate=1.0)  # every list call answers 5xx
    result = project.cli("plan", "--env", "test", "--prune", "--detailed-exitcode")
    assert result.code == 1, result.text
    assert "delete" not in result.out and "Plan:" not in result.out
    assert "GET /v3/" in result.err  # the error names the call that failed
    project.server.set_faults(error_rate=0.0)
    assert project.counts() == FULL


@pytest.mark.parametrize("corrupt", ["null", "[]", '{"version": 2, "resources": []}'])
def test_corrupt_state_is_refused_before_any_remote_call(project, corrupt):
    project.state_file.parent.mkdir(parents=True, exist_ok=True)
    project.state_file.write_text(corrupt)
    project.server.reset_stats()
    for command in (("plan", "--env", "test"), ("apply", "--env", "test", "--yes")):
        result = project.cli(*command)
        assert result.code == 1, result.text
        assert str(project.state_file) in result.err
        assert "avatarsync import --env test" in result.err
        assert "internal error" not in result.err and "Traceback" not in result.err
    assert project.server.stats()["totalRequests"] == 0


def test_a_glob_that_stops_matching_is_an_error_not_a_prune_of_everything(project):
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    (project.root / "characters").rename(project.root / "moved-away")
    (project.root / "shared").mkdir()
    (project.root / "moved-away" / "shared.yaml").rename(project.root / "shared" / "shared.yaml")
    (project.root / "avatarsync.yaml").write_text(
        (project.root / "avatarsync.yaml")
        .read_text()
        .replace(
            'manifests: ["characters/*.yaml"]', 'manifests: ["shared/*.yaml", "characters/*.yaml"]'
        )
    )
    result = project.cli("apply", "--env", "test", "--yes", "--prune")
    assert result.code == 1, result.text
    assert "manifest glob 'characters/*.yaml' matches no file, but the state of 'test' has" in (
        result.err
    )
    assert "Character/tommy" in result.err
    assert project.counts() == FULL  # nothing deleted


@pytest.mark.parametrize(
    ("corrupt", "problem"),
    [
        (lambda d: d.update(retained=[5]), "retained[0]: 5 is not of type 'string'"),
        (
            lambda d: d["changes"][0].update(address=None),
            "changes[0].address: None is not of type 'string'",
        ),
        (lambda d: d.update(changes="all"), "changes: 'all' is not of type 'array'"),
        (lambda d: d.pop("planId"), "the plan: 'planId' is a required property"),
    ],
)
def test_a_corrupt_saved_plan_is_refused_with_the_field_named(project, tmp_path, corrupt, problem):
    out = tmp_path / "plan.json"
    assert project.cli("plan", "--env", "test", "--out", str(out)).code == 0
    data = json.loads(out.read_text())
    corrupt(data)
    out.write_text(json.dumps(data))
    project.server.reset_stats()
    result = project.cli("apply", str(out))
    assert result.code == 1, result.text
    assert f"is not a valid saved plan: {problem}" in result.err
    assert "internal error" not in result.err
    assert project.server.stats()["totalRequests"] == 0


def test_lost_state_then_an_edited_shared_brain_plans_an_update_not_a_create(tmp_path, cli):
    # The measurement from the CI issue: apply examples/, delete the state (a
    # fresh CI runner), edit the shared brain's instructions, plan.
    import shutil

    from support.cli import REPO

    root = tmp_path / "examples"
    shutil.copytree(REPO / "examples", root, ignore=shutil.ignore_patterns(".avatarsync"))
    assert cli("apply", "--env", "local", "--yes", cwd=root).code == 0
    (root / ".avatarsync" / "state" / "local.json").unlink()
    brain = root / "shared" / "brain.yaml"
    text = brain.read_text()
    assert "instructions:" in text
    brain.write_text(text.replace("instructions: |", "instructions: |\n    Always be brief.", 1))
    result = cli("plan", "--env", "local", "--json", cwd=root)
    assert result.code == 0, result.err
    plan = json.loads(result.out)
    assert changed(plan) == {"Brain/acme-assistant": "update"}
    assert all(c["adopt"] for c in plan["changes"])  # everything else: found, not created


def test_target_takes_the_kind_in_any_case_like_render(project):
    result = project.cli("plan", "--env", "test", "--target", "character/sally", "--json")
    assert result.code == 0, result.text
    planned = {c["address"] for c in json.loads(result.out)["changes"]}
    assert planned == {"Character/sally", "Brain/sally.brain", "Voice/warm"}
    unknown = project.cli("plan", "--env", "test", "--target", "robot/x")
    assert unknown.code == 1
    assert "unknown kind 'robot' in 'robot/x'; expected one of: Face, Voice" in unknown.err


def test_a_connection_error_names_the_environment_and_url(project):
    config = project.root / "avatarsync.yaml"
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens
    config.write_text(config.read_text().replace(project.server.url, dead))
    result = project.cli("plan", "--env", "test")
    assert result.code == 1
    assert f"cannot reach environment 'test' at {dead}: check its `url` in avatarsync.yaml" in (
        result.err
    )
    assert "retrying in" in result.err  # each retry was visible as it happened


def test_a_missing_key_names_the_variable_and_every_file_looked_in(project):
    project.key = ""
    result = project.cli("plan", "--env", "test")
    assert result.code == 1
    root = project.root.resolve()
    assert (
        "environment 'test' needs an API key in E2E_EQUOS_KEY: it is not set in the process "
        f"environment, nor in {root / '.env.test'}, {root / '.env'}"
    ) in result.err
