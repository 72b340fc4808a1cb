"""diff, promote and drift end to end: the CLI against a real emulator, two
organisations (the `test` and `prod` clients of the e2e project)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path

from support.e2e import CLIENT, E2EProject

from avatarsync import api
from avatarsync.state import open_store

PROD = f"{CLIENT}-prod"
FULL = {"Face": 1, "Voice": 1, "Brain": 2, "KnowledgeBase": 1, "Character": 2}


def _prod_company(project: E2EProject, company: str) -> None:
    """Give prod its own `vars.company`: an expected difference between the two."""
    path = project.root / "avatarsync.yaml"
    text = path.read_text()
    head, sep, tail = text.partition("  prod:")
    path.write_text(head + sep + tail.replace("{company: Acme}", "{company: " + company + "}"))


def _brain(project: E2EProject, client: str = CLIENT) -> dict:
    [brain] = [b for b in project.remote(client)["Brain"] if "questions" in b["instructions"]]
    return brain


def _edit_brain_live(project: E2EProject, text: str, client: str = CLIENT) -> None:
    brain = _brain(project, client)
    with project.http() as http:
        body = {"instructions": text, "greetingMessage": brain["greetingMessage"]}
        r = http.patch(f"/v3/brains/{brain['id']}", json=body)
        assert r.status_code == 200, r.text


# --- promote --------------------------------------------------------------------


def test_promote_refuses_a_source_that_was_never_applied(project: E2EProject) -> None:
    result = project.cli("promote", "test", "prod", "--yes")
    assert result.code == 1
    assert "'test' has no recorded apply" in result.err
    assert sum(project.counts(PROD).values()) == 0


def test_promote_applies_what_the_source_runs(project: E2EProject) -> None:
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    result = project.cli("promote", "test", "prod", "--yes")
    assert result.code == 0, result.text
    assert "promoting to 'prod'" in result.err
    assert "+ Character/tommy" in result.out  # the plan is payload, on stdout
    assert project.counts(PROD) == FULL
    # prod's own apply is recorded too: prod could be promoted further
    state = json.loads((project.root / ".avatarsync/state/prod.json").read_text())
    assert state["lastApply"]["manifests"].startswith("sha256:")


def test_promote_refuses_manifests_that_were_not_applied_to_the_source(
    project: E2EProject,
) -> None:
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    project.write(brain_text="Edited after the staging apply.")
    result = project.cli("promote", "test", "prod", "--yes")
    assert result.code == 1
    assert "'test' was last applied from other manifests" in result.err
    assert sum(project.counts(PROD).values()) == 0


def test_promote_refuses_a_source_with_drift(project: E2EProject) -> None:
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    _edit_brain_live(project, "Changed in the studio.")
    result = project.cli("promote", "test", "prod", "--yes")
    assert result.code == 1
    assert "'test' does not match the manifests" in result.err and "1 drifted" in result.err
    assert sum(project.counts(PROD).values()) == 0


def test_promote_keeps_the_targets_protect_rules(project: E2EProject) -> None:
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    assert project.cli("promote", "test", "prod", "--yes").code == 0
    project.write(livekit="tommy-2")  # livekitIdentity is create-only: a replace
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    refused = project.cli("promote", "test", "prod", "--yes")
    assert refused.code == 1 and "--allow-destroy" in refused.err
    allowed = project.cli("promote", "test", "prod", "--yes", "--allow-destroy")
    assert allowed.code == 0, allowed.text
    assert project.counts(PROD) == FULL


def test_promote_out_saves_the_targets_plan_for_review(project: E2EProject, tmp_path: Path) -> None:
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    out = tmp_path / "prod.plan.json"
    saved = project.cli("promote", "test", "prod", "--out", str(out))
    assert saved.code == 0, saved.text
    assert sum(project.counts(PROD).values()) == 0  # nothing applied yet
    applied = project.cli("apply", str(out))
    assert applied.code == 0, applied.text
    assert project.counts(PROD) == FULL


# --- diff -----------------------------------------------------------------------


def test_diff_reports_what_promote_would_change_and_nothing_after(project: E2EProject) -> None:
    _prod_company(project, "Acme Production")
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    before = project.cli("diff", "test", "prod")
    assert before.code == 2
    assert "- Character/tommy: not live in 'prod'" in before.out

    assert project.cli("promote", "test", "prod", "--yes").code == 0
    after = project.cli("diff", "test", "prod")
    # The brains' texts differ (each says its own company), as the vars say.
    assert after.code == 0, after.text
    assert "No differences" in after.out


def test_diff_reports_a_live_edit_in_one_environment(project: E2EProject) -> None:
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    assert project.cli("promote", "test", "prod", "--yes").code == 0
    _edit_brain_live(project, "Changed by hand in prod.", client=PROD)
    result = project.cli("diff", "test", "prod", "--json")
    assert result.code == 2
    report = json.loads(result.out)
    assert report["equal"] is False
    assert [(d["address"], d["field"], d["target"]) for d in report["differences"]] == [
        ("Brain/support", "instructions", "Changed by hand in prod.")
    ]


def test_diff_of_an_unknown_environment_is_an_error(project: E2EProject) -> None:
    result = project.cli("diff", "test", "staging")
    assert result.code == 1 and "unknown environment 'staging'" in result.err


# --- drift ----------------------------------------------------------------------


def test_drift_reports_only_changes_made_outside_git(project: E2EProject) -> None:
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    clean = project.cli("drift", "--env", "test")
    assert clean.code == 0, clean.text
    assert "No drift" in clean.out

    project.write(kb_name="Acme FAQ v2")  # a change in git: not drift
    _edit_brain_live(project, "Changed in the studio.")
    drifted = project.cli("drift", "--env", "test", "--json")
    assert drifted.code == 2
    changes = json.loads(drifted.out)["changes"]
    assert [(c["address"], c["drift"]) for c in changes] == [("Brain/support", True)]

    markdown = project.cli("drift", "--env", "test", "--markdown")
    assert markdown.code == 2
    assert markdown.out.startswith("<!-- avatarsync drift: test -->\n")

    assert project.cli("apply", "--env", "test", "--yes").code == 0
    assert project.cli("drift", "--env", "test").code == 0


def test_drift_counts_a_resource_deleted_by_hand(project: E2EProject) -> None:
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    [sally] = [c for c in project.remote()["Character"] if c["name"] == "Sally"]
    with project.http() as http:
        assert http.delete(f"/v3/characters/{sally['id']}").status_code == 200
    result = project.cli("drift", "--env", "test")
    assert result.code == 2
    assert "+ Character/sally" in result.out and "deleted outside avatarsync" in result.out


# --- pipelines: GitHub mode, progress, locks ------------------------------------------


def test_github_mode_annotates_and_writes_the_step_summary(
    project: E2EProject, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.md"
    project.extra_env.update({"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert project.cli("apply", "--env", "test", "--yes").code == 0
    _edit_brain_live(project, "Changed in the studio.")
    plan = project.cli("plan", "--env", "test", "--json")
    assert plan.code == 0
    json.loads(plan.out)  # stdout is the payload alone: annotations go to stderr
    [warning] = [line for line in plan.err.splitlines() if line.startswith("::warning")]
    assert "characters/shared.yaml,line=1,col=1::" in warning
    assert "Brain/support drifted" in warning
    text = summary.read_text()
    assert "### avatarsync apply to `test`: applied" in text
    assert "<!-- avatarsync plan: test -->" in text


def test_github_annotation_escapes_the_file_name(project: E2EProject) -> None:
    (project.root / "characters" / "a,b:c.yaml").write_text("kind: Voice\nname: v\nspec: {}\n")
    result = project.cli("plan", "--env", "test", "--github")  # the flag after the command
    assert result.code == 1
    errors = [line for line in result.err.splitlines() if line.startswith("::error")]
    assert errors and all("characters/a%2Cb%3Ac.yaml,line=3,col=7::" in e for e in errors)


def test_github_mode_reports_other_errors_as_annotations(project: E2EProject) -> None:
    result = project.cli("plan", "--env", "nope", "--github")
    assert result.code == 1
    assert result.err.startswith("::error::unknown environment 'nope'")


def test_retries_are_visible_as_they_happen(project: E2EProject) -> None:
    project.server.set_faults(fail_next={"GET /v3/brains": 2})
    result = project.cli("plan", "--env", "test")
    assert result.code == 0, result.text
    retries = [line for line in result.err.splitlines() if "retrying in" in line]
    assert len(retries) == 2
    # "HH:MM:SS 503 on GET /v3/brains, retrying in 0.5 s (attempt 2/5)"
    stamp, rest = retries[0].split(" ", 1)
    assert len(stamp) == 8 and stamp[2] == ":"
    assert rest.startswith("503 on GET /v3/brains, retrying in ")
    assert rest.endswith("(attempt 2/5)")


@contextlib.contextmanager
def _lock_held(project: E2EProject, release_after: float | None = None) -> Iterator[None]:
    """Another runner holds the lock of `test` (a thread of this process:
    file locks are per open file, so this process's CLI waits for it too)."""
    held, release = threading.Event(), threading.Event()
    loaded = api.load_project(project.root)
    store = open_store(loaded, loaded.environment("test"))

    def hold() -> None:
        with store.locked():
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(30)
    timer = threading.Timer(release_after, release.set) if release_after else None
    if timer is not None:
        timer.start()
    try:
        yield
    finally:
        release.set()
        holder.join()
        if timer is not None:
            timer.cancel()


def test_a_lock_wait_is_reported_and_ends_when_the_lock_is_released(
    project: E2EProject,
) -> None:
    with _lock_held(project, release_after=2.0):
        result = project.cli("apply", "--env", "test", "--yes", "--lock-timeout", "60")
    assert result.code == 0, result.text
    waits = [line for line in result.err.splitlines() if "waiting for the lock of 'test'" in line]
    # Said as the wait begins (a short wait too), not after the first poll.
    assert waits and "(0 of 60 s)" in waits[0], result.err
    assert project.counts() == FULL


def test_a_lock_timeout_names_how_long_it_waited(project: E2EProject) -> None:
    with _lock_held(project):
        result = project.cli("apply", "--env", "test", "--yes", "--lock-timeout", "1")
    assert result.code == 1
    assert "gave up after waiting 1 s" in result.err
    assert sum(project.counts().values()) == 0


def test_plan_out_takes_the_lock_and_a_plain_plan_does_not(
    project: E2EProject, tmp_path: Path
) -> None:
    with _lock_held(project):
        plain = project.cli("plan", "--env", "test")
        saved = project.cli("plan", "--env", "test", "--out", str(tmp_path / "p.json"))
    assert plain.code == 0, plain.text
    assert saved.code == 1 and "locked" in saved.err
    assert not (tmp_path / "p.json").exists()
