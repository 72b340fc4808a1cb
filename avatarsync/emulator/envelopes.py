"""Error bodies of the two emulated platforms, built without a framework.

The fault middleware answers before any route runs, so it cannot use the
route handlers' helpers; both it and the handlers build their error bodies
here, which keeps one wire shape per platform:

- Equos (NestJS): `{"statusCode": 400, "message": "...", "error": "Bad Request"}`
- Avatarium: `{"error": {"code": ..., "message": ...}, "meta": {"requestId": ...}}`
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any, Literal

__all__ = [
    "AVATARIUM_CODES",
    "Platform",
    "avatarium_error",
    "dumps",
    "equos_error",
    "platform_of",
]

Platform = Literal["equos", "avatarium"]

# Default Avatarium error codes per status (its docs name these).
AVATARIUM_CODES: dict[int, str] = {
    400: "invalid_request",
    401: "invalid_api_key",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    429: "rate_limit_exceeded",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
}


def dumps(payload: Any) -> bytes:
    """Compact JSON bytes, as both platforms send them."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def platform_of(path: str) -> Platform | None:
    """Which emulated platform a path belongs to (None: emulator-only paths)."""
    if path == "/v3" or path.startswith("/v3/"):
        return "equos"
    if path == "/v1" or path.startswith("/v1/") or path == "/health":
        return "avatarium"
    return None


def equos_error(status: int, message: str) -> bytes:
    return dumps({"statusCode": status, "message": message, "error": HTTPStatus(status).phrase})


def avatarium_error(
    status: int, message: str, request_id: str, *, code: str | None = None
) -> bytes:
    code = code or AVATARIUM_CODES.get(status, "error")
    return dumps({"error": {"code": code, "message": message}, "meta": {"requestId": request_id}})
