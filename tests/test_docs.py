"""Every shell block of the README and the docs runs, against a real emulator.

Each fenced `bash`/`sh` block runs as one bash script in a sandbox holding a
copy of `examples/` (at the top and as `examples/`), with `avatarsync` on
PATH as a shim that points every platform environment (Equos and Avatarium)
of the sandbox's project files at one emulator and gives every `apiKeyEnv` its key: the
commands are the docs' own, only the organisation is local. A command may
exit 0 or 2 (the documented "changes present / different / drifted"); 1 is
a failure. Segments that install, lint or run this suite (venv, pip, pytest,
ruff, mypy, .ci/run, pre-commit, benchmarks, git worktree) and servers that
run until stopped are left out: they are CI itself, or would never return.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import REPO

from avatarsync.emulator import DEFAULT_API_KEY, EmulatorServer

DOCUMENTS = [
    "README.md",
    "CONTRIBUTING.md",
    "examples/README.md",
    *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md")),
]
_FENCE = re.compile(r"^```(bash|sh|shell)\s*$")
_NOT_RUN = re.compile(
    r"^\s*(python3 -m venv|\. \.venv/bin/activate|pip install|pytest|ruff |mypy |bash \.ci/run"
    r"|pre-commit |git worktree |\.venv/bin/python benchmarks/|python benchmarks/)"
)
_SERVER = re.compile(r"^\s*avatarsync emulator(?!.*--check)")

SHIM = """\
#!{python}
# avatarsync, with the sandbox's projects pointed at the test emulator.
import os, pathlib, re, sys

url, key = os.environ["DOCTEST_EMULATOR_URL"], os.environ["DOCTEST_API_KEY"]
for path in pathlib.Path(os.environ["DOCTEST_SANDBOX"]).rglob("avatarsync.yaml"):
    lines, out, block = path.read_text().splitlines(), [], []

    def flush():
        if any(re.match(r"\\s+provider: equos", l) for l in block):
            body = [l for l in block if not re.match(r"    url:", l)]
            block[:] = body[:1] + ["    url: " + url] + body[1:]
        # Avatarium endpoints (`avatarium: {{url: ...}}` or a nested `url:`) too.
        block[:] = [
            re.sub(r"url: [^,}}\\s]+", "url: " + url + "/v1", l)
            if re.match(r"      url:|    avatarium: \\{{", l) else l
            for l in block
        ]
        out.extend(block)
        block.clear()

    for line in lines:
        if re.match(r"  [A-Za-z0-9_-]+:\\s*(#.*)?$", line) or not line.startswith("    "):
            flush()
        block.append(line)
        match = re.match(r"\\s+apiKeyEnv: ([A-Z0-9_]+)", line)
        if match:
            os.environ.setdefault(match.group(1), key)
    flush()
    path.write_text("\\n".join(out) + "\\n")
from avatarsync._entry import main
main()
"""


def _blocks() -> list[tuple[str, int, str]]:
    found = []
    for name in DOCUMENTS:
        lines = (REPO / name).read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            if _FENCE.match(lines[i]):
                start, body = i + 1, []
                i += 1
                while not lines[i].startswith("```"):
                    body.append(lines[i])
                    i += 1
                found.append((name, start + 1, "\n".join(body)))
            i += 1
    return found


def _script(block: str) -> tuple[str, list[str]]:
    """The block as a bash script that stops at the first command exiting 1."""
    lines, ran = ['cd "$DOCTEST_SANDBOX"'], []
    for raw in block.splitlines():
        line = raw.split("  #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not line:
            continue
        for segment in (s.strip() for s in line.split(" && ")):
            if _NOT_RUN.match(segment) or _SERVER.match(segment):
                continue
            ran.append(segment)
            quoted = segment.replace("'", "'\\''")
            lines.append(
                f"{segment}\nrc=$?\nif [ $rc -ne 0 ] && [ $rc -ne 2 ]; then "
                f"echo 'FAILED ('$rc'): {quoted}' >&2; exit 1; fi"
            )
    return "\n".join(lines) + "\n", ran


BLOCKS = _blocks()


def test_the_docs_have_shell_blocks() -> None:
    assert {name for name, _, _ in BLOCKS} >= {"README.md", "docs/plan-format.md"}


@pytest.mark.parametrize(
    ("document", "line", "block"), BLOCKS, ids=[f"{n}:{line}" for n, line, _ in BLOCKS]
)
def test_a_documented_block_runs(
    document: str, line: int, block: str, tmp_path: Path, emulator: EmulatorServer
) -> None:
    script, ran = _script(block)
    if not ran:
        pytest.skip("only installs, lints or runs this suite")
    sandbox = tmp_path / "sandbox"
    ignore = shutil.ignore_patterns(".avatarsync", "__pycache__")
    shutil.copytree(REPO / "examples", sandbox, ignore=ignore)
    shutil.copytree(REPO / "examples", sandbox / "examples", ignore=ignore)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "avatarsync"
    shim.write_text(SHIM.format(python=sys.executable))
    shim.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "DOCTEST_SANDBOX": str(sandbox),
        "DOCTEST_EMULATOR_URL": emulator.url,
        "DOCTEST_API_KEY": DEFAULT_API_KEY,
        "NO_COLOR": "1",
    }
    done = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, (
        f"{document}:{line}: {done.stderr[-3000:]}\n--- stdout\n{done.stdout[-2000:]}"
    )
