"""End-to-end harness: the real `avatarsync` CLI against a real emulator over
loopback, on a small project written into tmp_path.

`cli()` runs the CLI in this process through its real entry point (`run`),
with its own environment variables, streams and secret registry: the same
code path as the console script, minus the interpreter start-up. `process()`
and `popen()` run it as a separate process, for the tests where the process
boundary is the point (kill -9, a lock held by another process, a missing
terminal, exit codes, the key-leak sweep).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from avatarsync import secret
from avatarsync.cli import CliContext, run
from avatarsync.emulator import EmulatorConfig, EmulatorServer

SENTINEL_KEY = "sk-SENTINEL-e2e-4f1c9a7b"
CLIENT = "acme-e2e"
KINDS = {
    "Face": "faces",
    "Voice": "voices",
    "Brain": "brains",
    "KnowledgeBase": "knowledge-bases",
    "Character": "characters",
}

PROJECT_YAML = """\
manifests: ["characters/*.yaml"]
environments:
  test:
    provider: equos
    url: {url}
    apiKeyEnv: E2E_EQUOS_KEY
    client: {client}
    vars: {{company: Acme}}
  prod:
    provider: equos
    url: {url}
    apiKeyEnv: E2E_EQUOS_KEY
    client: {client}-prod
    protect: true
    vars: {{company: Acme}}
"""

SHARED = """\
kind: Brain
name: support
spec:
  instructions: |
    You help {{{{ customer_name }}}} with questions about ${{vars.company}}.
  greetingMessage: "Hi, I'm from ${{vars.company}}."
---
kind: Voice
name: warm
spec:
  identity: Puck
  instructions: Warm and calm.
---
kind: Face
name: tommy-face
spec:
  identity: tommy
---
kind: KnowledgeBase
name: faq
spec:
  displayName: {kb_name}
  description: Answers to common questions.
  documents:
    - path: ../docs/returns.md
    - path: ../docs/shipping.md
"""

TOMMY = """\
kind: Character
name: tommy
spec:
  displayName: Tommy
  livekitIdentity: {livekit}
  face: tommy-face
  voice: warm
  brain: support
  knowledgeBase: faq
  search: true
"""

SALLY = """\
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


def wait_for(condition: Callable[[], object], seconds: float = 60, every: float = 0.02) -> None:
    """Poll `condition` every `every` s until it holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def emulator_http(url: str, key: str = SENTINEL_KEY) -> httpx.Client:
    """A client of the emulator's Equos API with `key` (no proxy from the environment)."""
    return httpx.Client(base_url=url, headers={"x-api-key": key}, timeout=10, trust_env=False)


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@dataclass
class E2EProject:
    root: Path
    server: EmulatorServer
    key: str = SENTINEL_KEY
    extra_env: dict[str, str] = field(default_factory=dict)  # more process variables

    def write(
        self,
        kb_name: str = "Acme FAQ",
        livekit: str = "tommy",
        sally: bool = True,
        brain_text: str | None = None,
    ) -> None:
        chars = self.root / "characters"
        chars.mkdir(exist_ok=True)
        shared = SHARED.format(kb_name=kb_name)
        if brain_text is not None:
            shared = shared.replace(
                "You help {{ customer_name }} with questions about ${vars.company}.", brain_text
            )
        (chars / "shared.yaml").write_text(shared)
        (chars / "tommy.yaml").write_text(TOMMY.format(livekit=livekit))
        sally_file = chars / "sally.yaml"
        if sally:
            sally_file.write_text(SALLY)
        elif sally_file.exists():
            sally_file.unlink()

    def edit(self, path: str, old: str, new: str, count: int = -1) -> None:
        """Replace `old` (which must be there) by `new` in the project's file at `path`."""
        file = self.root / path
        text = file.read_text()
        assert old in text, f"{old!r} is not in {path}"
        file.write_text(text.replace(old, new, count))

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("E2E_")}
        env["E2E_EQUOS_KEY"] = self.key
        env["NO_COLOR"] = "1"
        env.update(self.extra_env)
        return env

    def cli(self, *args: str, stdin: str = "") -> Result:
        """The CLI in this process: exit code, stdout and stderr."""
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with (
            _environment(self.env()),
            secret.scope(),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
            _stdin(stdin),
        ):
            try:
                run(["-C", str(self.root), *args], CliContext())
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        return Result(code, out.getvalue(), err.getvalue())

    def command(self, *args: str) -> list[str]:
        """The console script's command line for this project (`python -m avatarsync`)."""
        return [sys.executable, "-m", "avatarsync", "-C", str(self.root), *args]

    def process(self, *args: str, timeout: float = 120, stdin: str | None = "") -> Result:
        """The console script in a separate process."""
        proc = subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(),
            input=stdin,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=self.env(),
        )

    def http(self) -> httpx.Client:
        return emulator_http(self.server.url, self.key)

    def posts(self) -> int:
        """How many POST requests the emulator has answered (creates, uploads, starts)."""
        requests = self.server.stats()["requests"]
        return sum(n for k, n in requests.items() if k.startswith("POST"))

    def remote(self, client: str = CLIENT) -> dict[str, list[dict]]:
        """Every live object with our client tag, by kind (all pages)."""
        out: dict[str, list[dict]] = {}
        with self.http() as http:
            for kind, path in KINDS.items():
                items: list[dict] = []
                while True:
                    page = http.get(
                        f"/v3/{path}", params={"take": 50, "skip": len(items), "client": client}
                    ).json()
                    batch = page["items" if kind == "KnowledgeBase" else path]
                    items.extend(batch)
                    if not batch or len(items) >= page["total"]:
                        break
                out[kind] = items
        return out

    def counts(self, client: str = CLIENT) -> Counter:
        return Counter({k: len(v) for k, v in self.remote(client).items()})

    @property
    def state_file(self) -> Path:
        return self.root / ".avatarsync" / "state" / "test.json"


@pytest.fixture
def make_project(tmp_path: Path) -> Iterator[Callable[..., E2EProject]]:
    servers: list[EmulatorServer] = []

    def make(**faults: object) -> E2EProject:
        server = EmulatorServer(EmulatorConfig(api_keys=(SENTINEL_KEY,), **faults)).start()  # type: ignore[arg-type]
        servers.append(server)
        root = tmp_path / f"project{len(servers)}"
        (root / "docs").mkdir(parents=True)
        (root / "docs" / "returns.md").write_text("# Returns\nThirty days, no questions.\n")
        (root / "docs" / "shipping.md").write_text("# Shipping\nFree over $50.\n")
        (root / "avatarsync.yaml").write_text(
            textwrap.dedent(PROJECT_YAML.format(url=server.url, client=CLIENT))
        )
        project = E2EProject(root, server)
        project.write()
        return project

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def project(make_project: Callable[..., E2EProject]) -> E2EProject:
    return make_project()


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@contextlib.contextmanager
def _stdin(text: str) -> Iterator[None]:
    saved = sys.stdin
    sys.stdin = io.StringIO(text)
    try:
        yield
    finally:
        sys.stdin = saved
