"""Fixtures for the renderer tests; the sample data lives in support/output_samples.py."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.output_samples import empty_plan, sample_plan, sample_report

from avatarsync import secret
from avatarsync.planning.plan import Plan
from avatarsync.planning.report import ApplyReport

GOLDEN_DIR = Path(__file__).parent / "golden"


@pytest.fixture(autouse=True)
def _isolated_secrets() -> Iterator[None]:
    # Secrets registered by one test must not scrub another test's output.
    with secret.scope():
        yield


@pytest.fixture(name="sample_plan")
def _sample_plan() -> Plan:
    return sample_plan()


@pytest.fixture(name="empty_plan")
def _empty_plan() -> Plan:
    return empty_plan()


@pytest.fixture(name="sample_report")
def _sample_report() -> ApplyReport:
    return sample_report()


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """Compare `text` with golden/<name>; rewrite it when AVATARSYNC_UPDATE_GOLDEN is set."""

    def check(name: str, text: str) -> None:
        path = GOLDEN_DIR / name
        if os.environ.get("AVATARSYNC_UPDATE_GOLDEN"):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode())
        assert path.exists(), f"no golden file {path}; run with AVATARSYNC_UPDATE_GOLDEN=1"
        assert text == path.read_bytes().decode()

    return check
