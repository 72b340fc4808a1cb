"""No redirects (a trailing slash is an unknown route) and a size limit on uploads."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from support.error_shapes import avatarium_error, equos_error

from avatarsync.emulator import EmulatorServer
from avatarsync.emulator.equos import MAX_UPLOAD_BYTES

# ---------------------------------------------------------------- no redirects


@pytest.mark.parametrize(
    "path", ["/v3/brains/", "/v3/characters/", "/v3/health/", "/v3/knowledge-bases/k/documents/"]
)
def test_equos_trailing_slash_is_404_not_a_redirect(equos_http: httpx.Client, path: str) -> None:
    response = equos_http.get(path)
    assert "location" not in response.headers
    assert equos_error(response, 404) == f"Cannot GET {path}"


@pytest.mark.parametrize("path", ["/v1/avatars/", "/v1/conversations/", "/v1/health/"])
def test_avatarium_trailing_slash_is_404_not_a_redirect(
    emulator: EmulatorServer, path: str
) -> None:
    response = httpx.get(emulator.url + path, trust_env=False)
    assert "location" not in response.headers
    avatarium_error(response, 404)


@pytest.mark.parametrize("path", ["/health/", "/_emulator/stats/", "/_uploads/"])
def test_other_trailing_slashes_are_404_not_redirects(emulator: EmulatorServer, path: str) -> None:
    response = httpx.get(emulator.url + path, trust_env=False)
    assert response.status_code == 404 and "location" not in response.headers


# ---------------------------------------------------------------- uploads


def _new_upload(http: httpx.Client) -> tuple[str, str, str]:
    kb = http.post("/v3/knowledge-bases", json={"name": "k", "description": "d"}).json()
    added = http.post(
        f"/v3/knowledge-bases/{kb['id']}/documents",
        json={"name": "n", "description": "d", "mimeType": "text/plain"},
    ).json()
    return kb["id"], added["document"]["id"], added["uploadUrl"]


def _raw_put(url: str, head: str, body: Callable[[socket.socket], None]) -> str:
    parts = httpx.URL(url)
    with socket.create_connection((parts.host, parts.port), timeout=10) as sock:
        sock.sendall(f"PUT {parts.raw_path.decode()} HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode())
        body(sock)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer.decode(errors="replace")


def _document(http: httpx.Client, kb_id: str) -> dict[str, Any]:
    documents: list[dict[str, Any]] = http.get(f"/v3/knowledge-bases/{kb_id}").json()["documents"]
    return documents[0]


def test_upload_with_a_declared_size_over_the_limit_is_413_before_any_byte(
    equos_http: httpx.Client,
) -> None:
    kb_id, _, url = _new_upload(equos_http)
    # Only the headers are sent: the answer must not wait for the 40 MiB body.
    answer = _raw_put(url, f"content-length: {40 * 2**20}\r\n", lambda sock: None)
    assert answer.startswith("HTTP/1.1 413"), answer
    assert _document(equos_http, kb_id)["status"] == "pending"


def test_upload_streamed_past_the_limit_is_413_without_reading_the_rest(
    equos_http: httpx.Client,
) -> None:
    kb_id, _, url = _new_upload(equos_http)
    chunk = b"x" * 2**20

    def send(sock: socket.socket) -> None:
        # Chunked, no declared size: one byte past the limit, and the body never ends.
        for _ in range(MAX_UPLOAD_BYTES // len(chunk)):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sock.sendall(b"1\r\nx\r\n")

    answer = _raw_put(url, "transfer-encoding: chunked\r\n", send)
    assert answer.startswith("HTTP/1.1 413"), answer
    document = _document(equos_http, kb_id)
    assert (document["status"], document["size"]) == ("pending", 0)


def test_upload_of_exactly_the_limit_is_accepted(equos_http: httpx.Client) -> None:
    kb_id, _, url = _new_upload(equos_http)
    assert MAX_UPLOAD_BYTES == 32 * 2**20
    uploaded = httpx.put(url, content=b"\0" * MAX_UPLOAD_BYTES, trust_env=False, timeout=30)
    assert uploaded.status_code == 200, uploaded.text
    assert _document(equos_http, kb_id)["size"] == MAX_UPLOAD_BYTES
