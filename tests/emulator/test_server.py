"""The emulator as a process: restart persistence on a file database, the
`avatarsync emulator` command as a real subprocess, `--check`, and both
platforms served side by side on one port."""

from __future__ import annotations

import asyncio
import json
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from avatarsync.emulator import DEFAULT_API_KEY, EmulatorServer

BRAIN = {"instructions": "i", "greetingMessage": "g"}
KEY = {"x-api-key": DEFAULT_API_KEY}


def test_data_survives_a_restart(
    tmp_path: Path, start_emulator: Callable[..., EmulatorServer]
) -> None:
    db = tmp_path / "nested" / "emulator.sqlite"
    first = start_emulator(db=str(db))
    brain = httpx.post(f"{first.url}/v3/brains", json=BRAIN, headers=KEY).json()
    character = httpx.post(
        f"{first.url}/v3/characters",
        json={"name": "T", "livekitIdentity": "t", "brainId": brain["id"]},
        headers=KEY,
    ).json()
    first.stop()
    assert db.exists()

    second = start_emulator(db=str(db))
    again = httpx.get(f"{second.url}/v3/characters/{character['id']}", headers=KEY)
    assert again.status_code == 200
    assert again.json() == character
    patched = httpx.patch(f"{second.url}/v3/brains/{brain['id']}", json=BRAIN, headers=KEY).json()
    assert patched["updatedAt"] > brain["updatedAt"]


def test_memory_database_is_throwaway(start_emulator: Callable[..., EmulatorServer]) -> None:
    first = start_emulator(db=":memory:")
    httpx.post(f"{first.url}/v3/brains", json=BRAIN, headers=KEY)
    first.stop()
    second = start_emulator(db=":memory:")
    assert httpx.get(f"{second.url}/v3/brains", headers=KEY).json()["total"] == 0


def test_python_api_lifecycle() -> None:
    server = EmulatorServer()
    with pytest.raises(RuntimeError):
        server.stats()
    with server:
        assert server.url.startswith("http://127.0.0.1:") and server.port > 0
        assert httpx.get(f"{server.url}/v3/health").status_code == 200
    server.stop()  # twice is fine
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/v3/health", timeout=2)


# ---------------------------------------------------------------- the command


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[str], str]]]:
    """Start `avatarsync emulator ...` as a real process; return it and its URL."""
    processes: list[subprocess.Popen[str]] = []

    def run(*args: str) -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "avatarsync", "emulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,  # the default database lands under here
        )
        processes.append(process)
        assert process.stdout is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.5)
            if ready:
                line = process.stdout.readline()
                if line.startswith("avatarsync emulator listening on "):
                    return process, line.split(" on ", 1)[1].strip()
                assert line, f"emulator exited: {process.stderr.read() if process.stderr else ''}"
        raise AssertionError("emulator printed no URL in time")

    yield run
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream:
                stream.close()


def test_command_serves_and_stops_cleanly_on_sigterm(
    spawn: Callable[..., tuple[subprocess.Popen[str], str]], tmp_path: Path
) -> None:
    process, url = spawn()  # default key, default database under the cwd
    assert url.startswith("http://127.0.0.1:")
    created = httpx.post(f"{url}/v3/brains", json=BRAIN, headers=KEY)
    assert created.status_code == 201
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    assert process.stdout is not None
    rest = process.stdout.read()
    assert DEFAULT_API_KEY in rest  # printed: it is not a secret
    assert (tmp_path / ".avatarsync" / "emulator.sqlite").exists()

    again, url = spawn()
    listed = httpx.get(f"{url}/v3/brains", headers=KEY).json()
    assert [b["id"] for b in listed["brains"]] == [created.json()["id"]]
    again.terminate()
    assert again.wait(10) == 0


def test_sigterm_while_the_banner_prints_waits_for_the_banner(tmp_path: Path) -> None:
    """`avatarsync emulator` prints its URL, then more lines; a SIGTERM sent as soon as
    the URL line is read used to cut the rest off (now and then, under load)."""
    script = (
        "import os, signal\n"
        "from avatarsync.emulator import EmulatorConfig, EmulatorServer\n"
        "def ready(url):\n"
        "    print('listening', flush=True)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)  # lands here, mid-banner\n"
        "    print('rest of the banner', flush=True)\n"
        "EmulatorServer(EmulatorConfig()).serve_forever(on_ready=ready)\n"
        "print('stopped', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["listening", "rest of the banner", "stopped"]


def test_command_options(spawn: Callable[..., tuple[subprocess.Popen[str], str]]) -> None:
    process, url = spawn(
        "--db", ":memory:", "--api-key", "k1", "--api-key", "k2", "--rate-limit", "2", "--seed", "5"
    )
    assert httpx.get(f"{url}/v3/brains", headers={"x-api-key": "k1"}).status_code == 200
    assert httpx.get(f"{url}/v3/brains", headers={"x-api-key": "k2"}).status_code == 200
    assert httpx.get(f"{url}/v3/brains", headers=KEY).status_code == 429  # bucket of 2 spent
    faults = httpx.get(f"{url}/_emulator/faults").json()
    assert (faults["rateLimit"], faults["seed"]) == (2, 5)
    process.terminate()
    assert process.wait(10) == 0
    assert process.stdout is not None and DEFAULT_API_KEY not in process.stdout.read()


def test_command_check() -> None:
    from avatarsync.cli import main  # here: a broken CLI fails only the CLI tests

    result = CliRunner().invoke(main, ["emulator", "--check"])
    assert result.exit_code == 0, result.output
    assert "ok   Equos     GET /v3/health -> 200" in result.output
    assert "POST /v3/brains -> 201" in result.output
    assert "Avatarium GET /health -> 200" in result.output
    assert "all checks passed" in result.output


@pytest.mark.parametrize(
    "args", [["--error-rate", "2"], ["--port", "70000"], ["--rate-limit", "0"]]
)
def test_command_rejects_bad_options(args: list[str]) -> None:
    from avatarsync.cli import main

    result = CliRunner().invoke(main, ["emulator", *args])
    assert result.exit_code != 0
    assert "Invalid value" in result.output


# ---------------------------------------------------------------- both platforms


def test_avatarium_is_served_beside_equos(emulator: EmulatorServer, api_key: str) -> None:
    bearer = {"authorization": f"Bearer {api_key}"}
    with httpx.Client(base_url=emulator.url, timeout=10) as http:
        avatars = http.get("/v1/avatars")
        assert avatars.status_code == 200
        avatar_id = avatars.json()["data"][0]["id"]
        created = http.post("/v1/conversations", json={"avatarId": avatar_id}, headers=bearer)
        assert created.status_code in (200, 201), created.text
        # The middleware's request id is the one Avatarium echoes in its body.
        assert created.json()["meta"]["requestId"] == created.headers["x-request-id"]
        assert created.headers["x-ratelimit-limit"] == "60"
        conversation_id = created.json()["data"]["id"]
        assert emulator.stats()["openConversations"] == {"equos": 0, "avatarium": 1}
        assert (
            http.post(f"/v1/conversations/{conversation_id}/end", headers=bearer).status_code == 200
        )
        assert emulator.stats()["openConversations"]["avatarium"] == 0
        assert http.post("/v1/conversations", json={"avatarId": avatar_id}).status_code == 401
    requests = emulator.stats()["requests"]
    assert requests["POST /v1/conversations"] == 2
    assert requests["POST /v1/conversations/{conversation_id}/end"] == 1


def test_avatarium_websocket_through_the_emulator(emulator: EmulatorServer, api_key: str) -> None:
    from websockets.asyncio.client import connect

    bearer = {"authorization": f"Bearer {api_key}"}
    created = httpx.post(f"{emulator.url}/v1/conversations", json={}, headers=bearer).json()["data"]

    async def ping() -> dict[str, object]:
        async with await connect(
            created["wsUrl"], additional_headers=bearer, proxy=None, open_timeout=5
        ) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            return json.loads(await ws.recv())

    # Faults never touch an open WebSocket session.
    emulator.set_faults(error_rate=1.0)
    assert asyncio.run(ping())["type"] == "pong"
    assert emulator.stats()["requests"]["WEBSOCKET /v1/conversations/{conversation_id}/ws"] == 1
