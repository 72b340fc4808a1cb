"""AvatariumClient: envelope, error codes, idempotency and the WebSocket helper."""

from __future__ import annotations

import json
import logging
import socket as socket_module
from collections.abc import AsyncIterator

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

from avatarsync.errors import (
    AmbiguousWriteError,
    AuthError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from avatarsync.secret import Secret

pytestmark = pytest.mark.anyio

KEY = "sk-SENTINEL-123456"  # the key conftest's clients carry
NOW = 1_700_000_000.0


def data(payload: object, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(
        status, json={"data": payload, "meta": {"requestId": "req_1"}}, headers=headers
    )


def error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": message}, "meta": {"requestId": "req_err"}}
    return httpx.Response(status, json=body, headers=headers)


async def test_envelope_is_unwrapped_and_bearer_sent(make_avatarium, script) -> None:
    aria = {"id": "aria-001", "name": "Aria"}
    handler = script(data([aria]), data(aria))
    async with make_avatarium(handler) as client:
        assert await client.list_avatars() == [aria]
        assert await client.get_avatar("aria-001") == aria
    assert [r.url.path for r in handler.requests] == ["/v1/avatars", "/v1/avatars/aria-001"]
    assert handler.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert client.request_counts == {"GET /avatars": 1, "GET /avatars/{id}": 1}


async def test_health_needs_no_key(make_avatarium, script) -> None:
    handler = script(httpx.Response(200, json={"status": "ok"}))
    async with make_avatarium(handler) as client:
        assert await client.health() == {"status": "ok"}
    assert "authorization" not in handler.requests[0].headers


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, "invalid_api_key", AuthError),
        (404, "conversation_not_found", NotFoundError),
    ],
)
async def test_error_envelope_keeps_code_and_request_id(
    make_avatarium, script, status, code, expected
) -> None:
    async with make_avatarium(script(error(status, code, "No luck"))) as client:
        with pytest.raises(expected) as caught:
            await client.get_conversation("c1")
    err = caught.value
    assert err.code == code
    assert err.request_id == "req_err"
    assert f"{code}: No luck" in str(err)
    assert err.path == "/v1/conversations/c1"


async def test_rate_limit_waits_for_the_reset(make_avatarium, script, sleeps) -> None:
    limited = error(429, "rate_limit_exceeded", "slow", **{"x-ratelimit-reset": str(int(NOW) + 4)})
    handler = script(limited, data({"id": "c1", "messages": []}))
    async with make_avatarium(handler) as client:
        await client.get_conversation("c1")
    assert sleeps.delays == [4.0]


async def test_quota_exhausted_is_rate_limited(make_avatarium, script) -> None:
    handler = script(error(429, "quota_exceeded", "out of quota", **{"retry-after": "0"}))
    async with make_avatarium(handler) as client:
        with pytest.raises(RateLimitedError) as caught:
            await client.get_avatar("aria-001")
    assert caught.value.code == "quota_exceeded"


async def test_create_conversation_body_and_ambiguity(make_avatarium, script) -> None:
    created = {"id": "c1", "avatarId": "aria-001", "wsUrl": "wss://x/ws", "byokEnabled": True}
    handler = script(data(created, 201), httpx.Response(500))
    byok = {"provider": "groq", "apiKey": Secret("gsk-xyz-123"), "model": "llama"}
    async with make_avatarium(handler) as client:
        assert await client.create_conversation("aria-001", "groq", "Be kind.", byok) == created
        with pytest.raises(AmbiguousWriteError):
            await client.create_conversation("aria-001")
    assert json.loads(handler.requests[0].content) == {
        "avatarId": "aria-001",
        "provider": "groq",
        "systemPrompt": "Be kind.",
        "byokAI": {"provider": "groq", "apiKey": "gsk-xyz-123", "model": "llama"},
    }
    assert json.loads(handler.requests[1].content) == {"avatarId": "aria-001"}
    assert len(handler.requests) == 2  # the 500 was not re-sent


async def test_messages_are_not_retried_but_ending_is(make_avatarium, script) -> None:
    handler = script(httpx.ReadError("reset"), httpx.ReadError("reset"), data({"success": True}))
    async with make_avatarium(handler) as client:
        with pytest.raises(AmbiguousWriteError):
            await client.send_message("c1", "hello")
        assert await client.end_conversation("c1") == {"success": True}
    assert [f"{r.method} {r.url.path}" for r in handler.requests] == [
        "POST /v1/conversations/c1/messages",
        "POST /v1/conversations/c1/end",
        "POST /v1/conversations/c1/end",
    ]


async def test_missing_envelope_is_a_server_error(make_avatarium, script) -> None:
    async with make_avatarium(script(httpx.Response(200, json={"id": "aria-001"}))) as client:
        with pytest.raises(ServerError):
            await client.get_avatar("aria-001")


# -- WebSocket, against a real (tiny) websockets server on port 0 -------------------------


@pytest.fixture
async def ws_server() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    seen_headers: list[dict[str, str]] = []

    def check_auth(connection: ServerConnection, request):  # type: ignore[no-untyped-def]
        seen_headers.append(dict(request.headers))
        if request.headers.get("authorization") != f"Bearer {KEY}":
            body = json.dumps({"error": {"code": "invalid_api_key", "message": "Invalid key"}})
            response = connection.respond(401, body)
            return response
        return None

    async def handler(connection: ServerConnection) -> None:
        async for raw in connection:
            frame = json.loads(raw)
            if frame["type"] == "ping":
                await connection.send(json.dumps({"type": "pong"}))
                continue
            text = f"You said: {frame['content']}"
            await connection.send(json.dumps({"type": "message", "data": {"role": "user"}}))
            await connection.send(json.dumps({"type": "stream_start"}))
            for word in text.split(" "):
                await connection.send(json.dumps({"type": "stream_chunk", "data": word + " "}))
            await connection.send(json.dumps({"type": "stream_end", "data": {"content": text}}))

    async with serve(handler, "127.0.0.1", 0, process_request=check_auth) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/v1/conversations/c1/ws", seen_headers


async def test_socket_exchange_until_stream_end(make_avatarium, script, ws_server, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    url, seen_headers = ws_server
    async with make_avatarium(script(httpx.Response(200))) as client:
        async with client.open_socket(url) as socket:
            frames = await socket.ask("hello there", timeout=5)
            await socket.ping()
            assert (await socket.receive(timeout=5))["type"] == "pong"
        assert client.request_counts == {"GET {wsUrl}": 1}
    assert [f["type"] for f in frames][:2] == ["message", "stream_start"]
    assert frames[-1] == {"type": "stream_end", "data": {"content": "You said: hello there"}}
    assert seen_headers[0]["authorization"] == f"Bearer {KEY}"
    # The test server logs what it received; everything on the client side is ours.
    client_log = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith("websockets.server")
    )
    assert "> authorization: Bearer ***" in client_log  # the handshake was logged...
    assert KEY not in client_log  # ...with the key scrubbed


async def test_socket_rejected_handshake_is_an_auth_error(
    make_avatarium, script, ws_server
) -> None:
    url, _ = ws_server
    client = make_avatarium(script(httpx.Response(200)))
    client._key = Secret("sk-WRONG-000000")  # the server only accepts KEY
    with pytest.raises(AuthError) as caught:
        async with client.open_socket(url):
            pass
    assert caught.value.path == "/v1/conversations/c1/ws"
    assert "invalid_api_key" in str(caught.value)
    await client.aclose()


async def test_socket_timeout_and_refused_connection(make_avatarium, script, ws_server) -> None:
    url, _ = ws_server
    async with make_avatarium(script(httpx.Response(200))) as client:
        async with client.open_socket(url) as socket:
            with pytest.raises(TransportError, match="no frame"):
                await socket.receive(timeout=0.05)
        with socket_module.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        with pytest.raises(TransportError):
            async with client.open_socket(f"ws://127.0.0.1:{port}/ws", open_timeout=2):
                pass
