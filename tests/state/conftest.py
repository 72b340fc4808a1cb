"""Fixtures of the state tests: stores of one environment on each backend (the
PostgreSQL and S3 stand-in servers are the root conftest's)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from avatarsync.secret import Secret
from avatarsync.state import FileStateStore, StateStore

BACKENDS = ["file", "postgres", "s3"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Callable[[], StateStore]:
    """New store instances (as two runners would open) of environment `test`."""
    if backend == "file":
        return lambda: FileStateStore(tmp_path / "test.json", environment="test", client="acme")
    if backend == "postgres":
        from avatarsync.state.postgres import PostgresStateStore

        url = request.getfixturevalue("postgres_url")
        return lambda: PostgresStateStore(
            Secret(url), url_env="PGURL", project="acme", environment="test", client="acme"
        )
    from avatarsync.state.s3 import S3StateStore

    bucket = request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("moto_server").url
    return lambda: S3StateStore(
        bucket=bucket,
        key="state/test.json",
        region="us-east-1",
        endpoint_url=endpoint,
        environment="test",
        client="acme",
    )
