"""Ctrl-C and SIGTERM (how CI cancels a job): a clean stop, a report, exit 130, a clean re-run.

These need a real process: the signal goes to it, not to the test.
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest
from support.e2e import wait_for

FULL = Counter({"Face": 1, "Voice": 1, "Brain": 2, "KnowledgeBase": 1, "Character": 2})


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_apply_stops_cleanly_reports_and_the_rerun_converges(make_project, sig):
    project = make_project(latency_ms=60)
    extra = "\n".join(
        f"---\nkind: Brain\nname: extra{i}\nspec:\n  instructions: Extra {i}.\n  greetingMessage: Hi\n"
        for i in range(30)
    )
    (project.root / "characters" / "extra.yaml").write_text(extra)
    proc = project.popen("apply", "--env", "test", "--yes", "--parallelism", "2")
    wait_for(lambda: project.posts() >= 4, every=0.01)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Task exception" not in err and "never retrieved" not in err
    assert f"Apply interrupted ({sig.name})" in out
    assert "not done: apply was interrupted" in out
    assert project.state_file.exists()  # what was done is recorded
    rerun = project.cli("apply", "--env", "test", "--yes")
    assert rerun.code == 0, rerun.text
    assert project.counts() == FULL + Counter({"Brain": 30})  # no duplicate, no orphan


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_plan_is_one_line_and_exit_130(make_project, sig):
    project = make_project(latency_ms=2000)
    proc = project.popen("plan", "--env", "test")
    wait_for(lambda: project.server.stats()["inFlight"] > 0, every=0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "Interrupted."
    assert "Traceback" not in err and "Task exception" not in err
