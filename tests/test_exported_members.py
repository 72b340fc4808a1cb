"""The public API: `avatarsync.__all__` names exactly what the package exports (as httpx does)."""

from __future__ import annotations

import subprocess
import sys

import pytest

import avatarsync


def test_all_exports_resolve_and_come_from_avatarsync() -> None:
    exported = set(avatarsync.__all__)
    assert len(exported) == len(avatarsync.__all__)  # no name listed twice
    for name in sorted(exported - {"__version__"}):
        member = getattr(avatarsync, name)
        assert member.__module__.startswith("avatarsync."), name
        assert member.__name__ == name


def test_the_facade_is_what_the_package_exports() -> None:
    from avatarsync import api

    for name in api.__all__:
        assert name in avatarsync.__all__
        assert getattr(avatarsync, name) is getattr(api, name)


def test_importing_the_package_loads_no_plan_machinery() -> None:
    # Names load on first use: `import avatarsync` (and `--version`) stays cheap.
    code = "import sys, avatarsync; print(sorted(m for m in sys.modules if m.startswith(('httpx', 'pydantic', 'avatarsync.api'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_names_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        avatarsync.no_such_name  # noqa: B018
