"""The emulator's error answers, checked for the shape each platform gives them.

Equos (NestJS): `{"statusCode", "message", "error"}`; Avatarium: `{"error": {…},
"meta": {"requestId"}}` with the request id also in `x-request-id`.
"""

from __future__ import annotations

from typing import Any

import httpx

JSON = {"content-type": "application/json"}


def equos_error(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"statusCode", "message", "error"} and body["statusCode"] == status
    return str(body["message"])


def avatarium_error(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["meta"]["requestId"] == response.headers["x-request-id"]
    return dict(body["error"])
