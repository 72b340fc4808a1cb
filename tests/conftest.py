"""Fixtures shared by every test folder: a running emulator and its key.

`emulator` is a real server (uvicorn on a port-0 loopback socket, in-memory
SQLite), fresh for each test, so tests never share data or fault switches.
Talk to it over HTTP with `emulator.url`; read counters with
`emulator.stats()`; switch faults with `emulator.set_faults(...)`.
The shared state backends' servers (a real PostgreSQL per worker, moto's
S3 server) come from `support/servers.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from support.servers import (  # noqa: F401  (fixtures: real PostgreSQL and S3 stand-in)
    moto_server,
    postgres_server,
    postgres_url,
    s3_bucket,
)

from avatarsync.emulator import DEFAULT_API_KEY, EmulatorConfig, EmulatorServer


@pytest.fixture(autouse=True)
def _no_ci_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests decide GitHub mode and colour themselves, wherever the suite runs."""
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "FORCE_COLOR", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def api_key() -> str:
    """The key the `emulator` fixture accepts (for Equos and Avatarium alike)."""
    return DEFAULT_API_KEY


@pytest.fixture
def emulator(api_key: str) -> Iterator[EmulatorServer]:
    """A started emulator with an in-memory database, stopped after the test."""
    with EmulatorServer(EmulatorConfig(api_keys=(api_key,))) as server:
        yield server


@pytest.fixture
def start_emulator() -> Iterator[Callable[..., EmulatorServer]]:
    """Factory for emulators with other settings (file DB, faults, keys...).

    `start_emulator(db=str(path), error_rate=0.5)` takes EmulatorConfig's
    fields; every server it starts is stopped after the test.
    """
    started: list[EmulatorServer] = []

    def start(**config: object) -> EmulatorServer:
        server = EmulatorServer(EmulatorConfig(**config)).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture
def equos_http(emulator: EmulatorServer, api_key: str) -> Iterator[httpx.Client]:
    """An httpx client on the emulator's Equos API, authenticated."""
    with httpx.Client(
        base_url=emulator.url, headers={"x-api-key": api_key}, timeout=10, trust_env=False
    ) as client:
        yield client
