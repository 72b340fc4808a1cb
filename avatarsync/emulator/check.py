"""`avatarsync emulator --check`: prove on a fresh machine that it all works.

Starts an in-memory emulator on a free port, makes a few real HTTP calls
through the standard library (no client code of ours in between), reports
what answered and stops. It is the README's first command.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from urllib.parse import urlsplit

from avatarsync.emulator.config import DEFAULT_API_KEY, EmulatorConfig

__all__ = ["run_check"]


def run_check(report: Callable[[str], None]) -> bool:
    """Run the self-check, calling `report` once per line; True if all passed."""
    from avatarsync.emulator.server import EmulatorServer

    ok = True
    with EmulatorServer(EmulatorConfig(db=":memory:")) as server:
        report(f"emulator started on {server.url} (in-memory database)")
        parts = urlsplit(server.url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
        equos = {"x-api-key": DEFAULT_API_KEY, "content-type": "application/json"}
        try:
            calls: list[tuple[str, str, dict[str, str], object | None, int]] = [
                ("GET", "/v3/health", {}, None, 200),
                (
                    "POST",
                    "/v3/brains",
                    equos,
                    {"instructions": "You are a self-check.", "greetingMessage": "Hello!"},
                    201,
                ),
                ("GET", "/v3/brains?take=5", equos, None, 200),
            ]
            for method, path, headers, body, expected in calls:
                status, answer = _call(conn, method, path, headers, body)
                passed = status == expected
                ok &= passed
                report(
                    f"{'ok  ' if passed else 'FAIL'} Equos     {method} {path} -> {status} {_brief(answer)}"
                )
            status, answer = _call(conn, "GET", "/health", {}, None)
            if status == 404 and not _avatarium_mounted():
                report("skip Avatarium GET /health: not built into this version")
            else:
                passed = status == 200
                ok &= passed
                report(
                    f"{'ok  ' if passed else 'FAIL'} Avatarium GET /health -> {status} {_brief(answer)}"
                )
        finally:
            conn.close()
    report("emulator stopped: all checks passed" if ok else "emulator stopped: some checks FAILED")
    return ok


def _avatarium_mounted() -> bool:
    import importlib.util

    return importlib.util.find_spec("avatarsync.emulator.avatarium") is not None


def _call(
    conn: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: dict[str, str],
    body: object | None,
) -> tuple[int, object]:
    payload = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, raw.decode(errors="replace")


def _brief(answer: object, limit: int = 100) -> str:
    text = json.dumps(answer, separators=(",", ":")) if not isinstance(answer, str) else answer
    return text if len(text) <= limit else text[: limit - 1] + "…"
