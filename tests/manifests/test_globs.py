"""Manifest globs never silently become an empty set, and never leave the project."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from avatarsync import api
from avatarsync.errors import ManifestError

PROJECT = 'manifests: ["chars/*.yaml"]\nenvironments:\n  local: {emulator: true}\n'
BRAIN = "kind: Brain\nname: b\nspec: {instructions: x, greetingMessage: y}\n"


def project(root: Path) -> Path:
    (root / "chars").mkdir(parents=True)
    (root / "avatarsync.yaml").write_text(PROJECT)
    (root / "chars" / "b.yaml").write_text(BRAIN)
    return root


def messages(root: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        api.validate(api.load_project(root))
    return [str(d) for d in caught.value.diagnostics]


def _as_unprivileged() -> list[str]:
    """A command prefix under which file permissions apply (root ignores them)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: permissions cannot be tested")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", "--"]


def test_an_unreadable_manifest_folder_is_an_error_not_an_empty_set(tmp_path):
    root = project(tmp_path / "p")
    (root / "chars").chmod(0)
    try:
        run = subprocess.run(
            [*_as_unprivileged(), sys.executable, "-m", "avatarsync", "-C", str(root), "validate"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "NO_COLOR": "1"},
        )
    finally:
        (root / "chars").chmod(0o755)
    assert run.returncode == 1, run.stderr
    assert run.stderr.splitlines() == [
        f"{root}/avatarsync.yaml:1:13: manifest glob 'chars/*.yaml': cannot read folder "
        "'chars' (permission denied)",
        "1 error, 0 warnings",
    ]


def test_a_symlink_out_of_the_project_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.yaml").write_text(BRAIN.replace("name: b", "name: x"))
    root = project(tmp_path / "p")
    (root / "chars" / "x.yaml").symlink_to(outside / "x.yaml")
    assert messages(root) == [
        "avatarsync.yaml:1:13: manifest glob 'chars/*.yaml': 'chars/x.yaml' is a symlink to "
        f"{outside.resolve() / 'x.yaml'}, outside the project folder (globs cannot leave it)"
    ]
    # A folder link the glob walks through is refused the same way.
    (root / "chars" / "x.yaml").unlink()
    (root / "avatarsync.yaml").write_text(PROJECT.replace("chars/*.yaml", "*/*.yaml"))
    (root / "linked").symlink_to(outside, target_is_directory=True)
    assert any("'linked/x.yaml' is a symlink to" in m for m in messages(root))


def test_a_broken_symlink_and_a_symlink_loop_are_errors_not_crashes(tmp_path):
    root = project(tmp_path / "p")
    (root / "chars" / "gone.yaml").symlink_to(root / "nowhere.yaml")
    assert messages(root) == [
        "avatarsync.yaml:1:13: manifest glob 'chars/*.yaml': 'chars/gone.yaml' is a broken symlink"
    ]
    (root / "chars" / "gone.yaml").unlink()
    (root / "loop").symlink_to(root / "loop")
    (root / "chars" / "kb.yaml").write_text(
        "kind: KnowledgeBase\nname: kb\nspec:\n  displayName: K\n  description: d\n"
        "  documents:\n    - path: ../loop\n"
    )
    assert messages(root) == ["chars/kb.yaml:7:13: document path '../loop' is a symlink loop"]
