"""AvatariumConversation against servers that stretch the thin protocol document:
a plain assistant `message` instead of a stream, chunks as objects, pongs and
unknown frames in between, and the bare wsUrl (no credentials on the upgrade)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

from avatarsync.providers.avatarium import AvatariumConversation

pytestmark = pytest.mark.anyio

Handler = Callable[[ServerConnection], Awaitable[None]]


class FakeServer:
    """A WebSocket server on loopback running `handler`; records each upgrade's
    Authorization header."""

    def __init__(self) -> None:
        self.authorization: list[str | None] = []
        self._servers: list[object] = []

    async def start(self, handler: Handler) -> str:
        async def wrapped(connection: ServerConnection) -> None:
            self.authorization.append(connection.request.headers.get("authorization"))
            await handler(connection)

        server = await serve(wrapped, "127.0.0.1", 0).__aenter__()
        self._servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"ws://127.0.0.1:{port}/v1/conversations/c1/ws"

    async def stop(self) -> None:
        for server in self._servers:
            await server.__aexit__(None, None, None)  # type: ignore[attr-defined]


@pytest.fixture
async def fake() -> AsyncIterator[FakeServer]:
    server = FakeServer()
    yield server
    await server.stop()


async def test_a_plain_assistant_message_is_a_complete_reply(
    make_avatarium, script, fake: FakeServer
) -> None:
    async def handler(connection: ServerConnection) -> None:
        async for raw in connection:
            content = json.loads(raw)["content"]
            await connection.send(json.dumps({"type": "pong"}))
            await connection.send(json.dumps({"type": "typing"}))  # unknown: ignored
            user = {"id": "m1", "role": "user", "content": content}
            await connection.send(json.dumps({"type": "message", "data": user}))
            answer = {"id": "m2", "role": "assistant", "content": f"You said: {content}"}
            await connection.send(json.dumps({"type": "message", "data": answer}))

    url = await fake.start(handler)
    pieces: list[str] = []
    async with make_avatarium(script(httpx.Response(200))) as client:
        conversation = AvatariumConversation(client, {"id": "c1", "wsUrl": url})
        reply = await conversation.say("hi", timeout=5, on_chunk=pieces.append)
        assert reply.complete and reply.content == "You said: hi"
        assert reply.message_id == "m2" and pieces == ["You said: hi"]
        await conversation._discard()


async def test_chunks_as_objects_and_the_bare_ws_url(
    make_avatarium, script, fake: FakeServer
) -> None:
    async def handler(connection: ServerConnection) -> None:
        async for _raw in connection:
            await connection.send(json.dumps({"type": "stream_start", "data": {"id": "m9"}}))
            for word in ("Hello ", "there"):
                await connection.send(
                    json.dumps({"type": "stream_chunk", "data": {"content": word}})
                )
            end = {"id": "m9", "role": "assistant", "content": "Hello there"}
            await connection.send(json.dumps({"type": "stream_end", "data": end}))

    url = await fake.start(handler)
    async with make_avatarium(script(httpx.Response(200))) as client:
        conversation = AvatariumConversation(client, {"id": "c1", "wsUrl": url}, ws_auth="none")
        reply = await conversation.say("hi", timeout=5)
        assert reply.chunks == ["Hello ", "there"] and not reply.mismatch and reply.complete
        await conversation._discard()
        authenticated = AvatariumConversation(client, {"id": "c1", "wsUrl": url})
        await authenticated.say("hi", timeout=5)
        await authenticated._discard()
    bare, authenticated_header = fake.authorization
    assert bare is None
    assert authenticated_header is not None and authenticated_header.startswith("Bearer ")
