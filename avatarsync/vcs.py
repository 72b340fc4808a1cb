"""Which commit a project's files are at: recorded with every apply, checked by promote.

Only git, only read: `git rev-parse HEAD` and whether the project's folder has
uncommitted changes. No git (or not a repository) is not an error; the
record then says so, and promotion relies on the manifests' fingerprint alone.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Checkout", "checkout"]


@dataclass(frozen=True)
class Checkout:
    commit: str | None  # None: not a git checkout (or git is missing)
    dirty: bool | None  # uncommitted changes under the project folder


def checkout(root: Path) -> Checkout:
    commit = _git(root, "rev-parse", "HEAD")
    if commit is None:
        return Checkout(None, None)
    status = _git(root, "status", "--porcelain", "--untracked-files=normal", "--", ".")
    return Checkout(commit, bool(status))


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
