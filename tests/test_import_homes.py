"""Each third-party library has one home module (docs/architecture in CONTRIBUTING.md).

Ruff's banned-api rules flag a stray import in the editor; this test names the
exact homes, including imports inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "avatarsync"

# library -> the modules (paths relative to avatarsync/, or a folder/) allowed to import it
HOMES: dict[str, tuple[str, ...]] = {
    "httpx": ("providers/",),
    "websockets": ("providers/avatarium.py",),
    "yaml": ("manifests/loader.py",),
    "click": ("cli/",),
    "jinja2": ("manifests/templating.py",),
    "deepdiff": ("planning/builder.py",),
    "starlette": ("emulator/",),
    "uvicorn": ("emulator/",),
    "pydantic": ("manifests/models.py", "manifests/messages.py", "manifests/schema.py"),
    "filelock": ("state/",),
    "rich": ("output/progress.py",),
    "dotenv": ("manifests/project.py",),
    "psycopg": ("state/postgres.py",),
    "boto3": ("state/s3.py",),
    "botocore": ("state/s3.py",),
}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_every_library_is_imported_only_in_its_home() -> None:
    strays = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        for library in _imports(path) & set(HOMES):
            if not any(relative.startswith(home) for home in HOMES[library]):
                strays.append(f"{relative} imports {library}")
    assert strays == []


def test_the_homes_are_real() -> None:
    # A renamed module must not silently turn its rule into "nowhere".
    for homes in HOMES.values():
        for home in homes:
            assert (PACKAGE / home).exists(), home
