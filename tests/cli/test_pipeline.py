"""The whole CI story played locally, as two runners would play it.

Two separate git clones of one project (two runners: nothing but the
repository is shared between them, `.avatarsync/` is ignored), two emulator
organisations (staging and prod, each its own server), and state in a real
PostgreSQL server. The commands are the ones the pipeline examples run. After
every step the live objects are counted: exactly the manifests, no orphan and
no duplicate.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support.e2e import KINDS, SENTINEL_KEY, emulator_http

from avatarsync.emulator import EmulatorConfig, EmulatorServer

STAGING, PROD = "acme-staging", "acme-prod"
EXPECTED = Counter({"Face": 1, "Voice": 1, "Brain": 2, "KnowledgeBase": 1, "Character": 2})

PROJECT = """\
name: acme-avatars
manifests: ["characters/*.yaml"]
environments:
  staging:
    url: {staging}
    apiKeyEnv: EQUOS_API_KEY_STAGING
    client: acme-staging
    state: {{backend: postgres, urlEnv: AVATARSYNC_STATE_PG}}
  prod:
    url: {prod}
    apiKeyEnv: EQUOS_API_KEY_PROD
    client: acme-prod
    protect: true
    state: {{backend: postgres, urlEnv: AVATARSYNC_STATE_PG}}
"""

SHARED = """\
kind: Brain
name: support
spec:
  instructions: {instructions}
  greetingMessage: Hi, I'm from Acme.
---
kind: Voice
name: warm
spec: {{identity: Puck, instructions: Warm and calm.}}
---
kind: Face
name: tommy-face
spec: {{identity: tommy}}
---
kind: KnowledgeBase
name: faq
spec:
  displayName: Acme FAQ
  description: Answers to common questions.
  documents:
    - path: ../docs/returns.md
"""

CHARACTERS = """\
kind: Character
name: tommy
spec:
  displayName: Tommy
  livekitIdentity: tommy
  face: tommy-face
  voice: warm
  brain: support
  knowledgeBase: faq
---
kind: Character
name: sally
spec:
  displayName: Sally
  livekitIdentity: sally
  voice: warm
  brain:
    instructions: You sell Acme plans.
    greetingMessage: Hello!
"""


@dataclass
class Run:
    code: int
    out: str
    err: str


class Organisation:
    """One emulator server: an organisation of its own."""

    def __init__(self, client: str, **faults: object) -> None:
        self.client = client
        config = EmulatorConfig(api_keys=(SENTINEL_KEY,), **faults)  # type: ignore[arg-type]
        self.server = EmulatorServer(config).start()

    def http(self) -> httpx.Client:
        return emulator_http(self.server.url)

    def objects(self) -> dict[str, list[dict]]:
        """Every live object of the organisation, by kind (whatever its client)."""
        out: dict[str, list[dict]] = {}
        with self.http() as http:
            for kind, path in KINDS.items():
                page = http.get(f"/v3/{path}", params={"take": 50}).json()
                assert page["total"] <= 50
                out[kind] = page["items" if kind == "KnowledgeBase" else path]
        return out

    def counts(self) -> Counter[str]:
        objects = self.objects()
        assert all(o.get("client") == self.client for v in objects.values() for o in v)
        return Counter({k: len(v) for k, v in objects.items()})

    def brain(self) -> dict:
        [brain] = [b for b in self.objects()["Brain"] if b["greetingMessage"].startswith("Hi")]
        return brain


class Clone:
    """One runner's checkout: a git clone, the CLI run as a separate process."""

    def __init__(self, origin: Path, root: Path, env: dict[str, str]) -> None:
        git("clone", "-q", str(origin), str(root), cwd=origin.parent)
        self.root = root
        self.env = env

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "avatarsync", *args],
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self.env,
        )

    def run(self, *args: str) -> Run:
        proc = self.start(*args)
        out, err = proc.communicate(timeout=180)
        return Run(proc.returncode, out, err)

    def edit_brain(self, instructions: str) -> None:
        write_shared(self.root, instructions)
        git("commit", "-qam", "Edit the support brain", cwd=self.root)
        git("push", "-q", "origin", "HEAD:main", cwd=self.root)

    def pull(self) -> None:
        git("pull", "-q", "origin", "main", cwd=self.root)


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=CI", "-c", "user.email=ci@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def write_shared(root: Path, instructions: str) -> None:
    (root / "characters" / "shared.yaml").write_text(SHARED.format(instructions=instructions))


@pytest.fixture
def pipeline(tmp_path: Path, postgres_url: str) -> Iterator[tuple[Clone, Clone, dict]]:
    staging, prod = Organisation(STAGING), Organisation(PROD)
    origin = tmp_path / "origin"
    (origin / "characters").mkdir(parents=True)
    (origin / "docs").mkdir()
    (origin / "docs" / "returns.md").write_text("# Returns\nThirty days, no questions.\n")
    (origin / "avatarsync.yaml").write_text(
        textwrap.dedent(PROJECT.format(staging=staging.server.url, prod=prod.server.url))
    )
    write_shared(origin, "You answer questions about Acme.")
    (origin / "characters" / "people.yaml").write_text(CHARACTERS)
    (origin / ".gitignore").write_text(".avatarsync/\n")
    git("init", "-q", "-b", "main", cwd=origin)
    git("add", ".", cwd=origin)
    git("commit", "-qm", "Acme's characters", cwd=origin)
    git("config", "receive.denyCurrentBranch", "updateInstead", cwd=origin)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EQUOS_", "AVATARSYNC_"))}
    env |= {
        "EQUOS_API_KEY_STAGING": SENTINEL_KEY,
        "EQUOS_API_KEY_PROD": SENTINEL_KEY,
        "AVATARSYNC_STATE_PG": postgres_url,
        "NO_COLOR": "1",
    }
    a = Clone(origin, tmp_path / "runner-a", env)
    b = Clone(origin, tmp_path / "runner-b", env)
    try:
        yield a, b, {"staging": staging, "prod": prod}
    finally:
        staging.server.stop()
        prod.server.stop()


def test_two_runners_plan_apply_promote_and_detect_drift(
    pipeline: tuple[Clone, Clone, dict],
) -> None:
    a, b, orgs = pipeline
    staging, prod = orgs["staging"], orgs["prod"]

    # A pull request: validate and plan (read-only, nothing written anywhere).
    assert b.run("validate").code == 0
    pr = b.run("plan", "--env", "staging", "--markdown")
    assert pr.code == 0, pr.err
    assert pr.out.startswith("<!-- avatarsync plan: staging -->")
    assert "Character/tommy" in pr.out
    assert sum(staging.counts().values()) == 0

    # Merged: runner A applies to staging.
    applied = a.run("apply", "--env", "staging", "--yes")
    assert applied.code == 0, applied.err
    assert staging.counts() == EXPECTED

    # Runner B, a different machine, edits the shared brain: its plan knows
    # everything A made (the state is shared), and shows exactly the edit.
    b.edit_brain("You answer questions about Acme, briefly.")
    edit = b.run("plan", "--env", "staging", "--detailed-exitcode")
    assert edit.code == 2, edit.err
    changed = [
        line.split()[:2]
        for line in edit.out.splitlines()
        if line.lstrip().startswith(("+ ", "- ", "~ ", "-/+ "))
    ]
    assert changed == [["~", "Brain/support"]], edit.out
    assert "Plan: 0 to create, 1 to update, 0 to replace, 0 to delete." in edit.out
    assert b.run("apply", "--env", "staging", "--yes").code == 0
    assert staging.counts() == EXPECTED
    assert staging.brain()["instructions"] == "You answer questions about Acme, briefly."
    assert b.run("plan", "--env", "staging", "--detailed-exitcode").code == 0

    # Promote what staging runs to prod (B's checkout is what was applied).
    promoted = b.run("promote", "staging", "prod", "--yes")
    assert promoted.code == 0, promoted.err
    assert prod.counts() == EXPECTED
    assert staging.counts() == EXPECTED
    assert b.run("diff", "staging", "prod").code == 0

    # Someone edits prod in the studio: the nightly drift job (runner A) fails.
    brain = prod.brain()
    with prod.http() as http:
        body = {
            "instructions": "Edited in the studio.",
            "greetingMessage": brain["greetingMessage"],
        }
        assert http.patch(f"/v3/brains/{brain['id']}", json=body).status_code == 200
    a.pull()
    drifted = a.run("drift", "--env", "prod")
    assert drifted.code == 2, drifted.err
    assert "Brain/support" in drifted.out
    assert prod.counts() == EXPECTED

    # An apply from runner A restores git's version; drift is clean again.
    restored = a.run("apply", "--env", "prod", "--yes")
    assert restored.code == 0, restored.err
    assert prod.brain()["instructions"] == "You answer questions about Acme, briefly."
    assert a.run("drift", "--env", "prod").code == 0
    assert prod.counts() == EXPECTED
    assert staging.counts() == EXPECTED


def test_two_runners_applying_at_once_wait_for_the_lock_and_duplicate_nothing(
    pipeline: tuple[Clone, Clone, dict],
) -> None:
    a, b, orgs = pipeline
    staging = orgs["staging"]
    # Slow enough that the second runner arrives while the first holds the lock.
    with staging.http() as http:
        assert http.post("/_emulator/faults", json={"latencyMs": 150}).status_code == 200
    first = a.start("apply", "--env", "staging", "--yes", "--lock-timeout", "120")
    time.sleep(0.5)
    second = b.start("apply", "--env", "staging", "--yes", "--lock-timeout", "120")
    out_a, err_a = first.communicate(timeout=180)
    out_b, err_b = second.communicate(timeout=180)
    assert (first.returncode, second.returncode) == (0, 0), err_a + err_b
    # One of them waited, said so, and then found nothing left to do.
    waited, other = (err_b, out_b) if "waiting for the lock" in err_b else (err_a, out_a)
    assert "waiting for the lock of 'staging'" in waited, err_a + err_b
    assert "No changes" in other
    assert staging.counts() == EXPECTED
