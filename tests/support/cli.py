"""Run the real CLI in a test: in-process through the entry point, or as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from avatarsync.cli import run

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
CORPUS = REPO / "tests" / "corpus"
SCHEMAS = REPO / "schemas"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def diagnostic_lines(self) -> list[str]:
        """Lines shaped `file:line:col: message` (the summary line excluded)."""
        lines = [line for line in self.err.splitlines() if _is_diagnostic(line)]
        return lines


def _is_diagnostic(line: str) -> bool:
    head = line.split(": ", 1)[0]
    parts = head.rsplit(":", 2)
    return len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    """Run `avatarsync ARGS` in-process through the real entry point (`run`),
    from `cwd`, and return its exit code and output."""

    def invoke(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Result:
        if cwd is not None:
            monkeypatch.chdir(cwd)
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            run(list(args))
        captured = capsys.readouterr()
        code = exited.value.code
        return Result(code if isinstance(code, int) else 1, captured.out, captured.err)

    return invoke


@pytest.fixture
def process():
    """Run the installed console script in a real process: what a user runs."""
    return run_process


def run_process(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Result:
    script = Path(sys.executable).with_name("avatarsync")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "avatarsync"]
    completed = subprocess.run(
        [*command, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        check=False,
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)
