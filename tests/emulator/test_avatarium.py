"""Avatarium v1 emulation end to end: the real emulator (`EmulatorServer`: uvicorn on a port-0
loopback socket, the core's middleware, a SQLite file), httpx for REST and SSE, the
`websockets` client for the WebSocket. No transport is mocked.

One server per module keeps the suite fast; every test makes its own conversations, so tests
do not depend on each other. Tests that switch faults use the shared per-test `emulator`
fixture instead, so no switch leaks into another test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedOK, InvalidStatus

from avatarsync.emulator import DEFAULT_API_KEY, EmulatorConfig, EmulatorServer

KEY = DEFAULT_API_KEY
BYOK_KEY = "sk-byok-DO-NOT-LEAK-4f1c9a7e2b"
PROMPT = "You are a helpful assistant named Aria.\nTopics: billing, return policy, shipping"


@dataclass
class Server:
    running: EmulatorServer
    db_path: Path

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def ws_base(self) -> str:
        return self.running.url.replace("http://", "ws://", 1)

    def open_conversations(self) -> int:
        return self.running.stats()["openConversations"]["avatarium"]

    def client(self, key: str | None = KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, trust_env=False, timeout=10)


@contextlib.contextmanager
def serve(db_path: Path, seed: int = 7) -> Iterator[Server]:
    with EmulatorServer(EmulatorConfig(db=str(db_path), api_keys=(KEY,), seed=seed)) as running:
        yield Server(running, db_path)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("avatarium") / "emulator.sqlite") as running:
        yield running


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def create(http: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("avatarId", "aria-001")
    body.setdefault("provider", "groq")
    body.setdefault("systemPrompt", PROMPT)
    response = http.post("/v1/conversations", json=body)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["meta"]["requestId"].startswith("req_")
    return body["error"]


def ws_run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


async def ws_open(url: str, key: str | None = KEY) -> ClientConnection:
    headers = {"Authorization": f"Bearer {key}"} if key else None
    return await connect(url, additional_headers=headers, proxy=None, open_timeout=5)


async def recv(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await ws.recv())


async def recv_turn(ws: ClientConnection) -> list[dict[str, Any]]:
    """Frames of one answered message, from the `message` echo to `stream_end`."""
    frames = [await recv(ws)]
    while frames[-1]["type"] != "stream_end":
        frames.append(await recv(ws))
    return frames


# --- health, avatars, auth ---------------------------------------------------------------------


def test_health_needs_no_key(server: Server) -> None:
    with server.client(key=None) as anonymous:
        for path in ("/health", "/v1/health"):
            response = anonymous.get(path)
            assert response.status_code == 200
            assert response.json()["data"]["status"] == "ok"
            assert response.json()["meta"]["requestId"].startswith("req_")


def test_avatars_are_public_presets(server: Server) -> None:
    with server.client(key=None) as anonymous:
        avatars = anonymous.get("/v1/avatars").json()["data"]
        ids = [a["id"] for a in avatars]
        assert "aria-001" in ids and len(ids) >= 3
        assert len({a["name"] for a in avatars}) == len(avatars)
        assert len({a["style"] for a in avatars}) == len(avatars)

        aria = anonymous.get("/v1/avatars/aria-001").json()["data"]
        assert aria["name"] == "Aria" and aria == avatars[ids.index("aria-001")]

        model = anonymous.get("/v1/avatars/aria-001/model").json()["data"]
        assert model["avatarId"] == "aria-001"
        assert model["url"].endswith("." + model["format"])

        for path in ("/v1/avatars/nope-404", "/v1/avatars/nope-404/model"):
            error = error_of(anonymous.get(path), 404)
            assert error["code"] == "avatar_not_found"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer"}, "missing_api_key"),
        ({"Authorization": "Bearer wrong"}, "invalid_api_key"),
        ({"Authorization": f"Basic {KEY}"}, "invalid_api_key"),
    ],
)
def test_conversations_need_a_valid_key(server: Server, headers: dict[str, str], code: str) -> None:
    with httpx.Client(base_url=server.url, headers=headers, trust_env=False) as client:
        for method, path in [
            ("POST", "/v1/conversations"),
            ("GET", "/v1/conversations/x"),
            ("POST", "/v1/conversations/x/messages"),
            ("POST", "/v1/conversations/x/end"),
        ]:
            error = error_of(client.request(method, path, json={}), 401)
            assert error["code"] == code


# --- conversations over REST -------------------------------------------------------------------


def test_create_get_message_end(server: Server, http: httpx.Client) -> None:
    before = server.open_conversations()
    created = create(http)
    assert created["avatarId"] == "aria-001" and created["byokEnabled"] is False
    assert created["wsUrl"] == f"{server.ws_base}/v1/conversations/{created['id']}/ws"
    assert created["createdAt"].endswith("Z")
    assert server.open_conversations() == before + 1
    cid = created["id"]

    answer = http.post(f"/v1/conversations/{cid}/messages", json={"content": "Hello!"})
    assert answer.status_code == 200
    reply = answer.json()["data"]
    assert reply["role"] == "assistant"
    assert reply["content"] == "Hello! I'm Aria. How can I help you today?"
    assert reply["audio_url"].endswith(f"{reply['id']}.mp3")
    usage = reply["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0

    http.post(f"/v1/conversations/{cid}/messages", json={"content": "Any shipping news?"})
    got = http.get(f"/v1/conversations/{cid}").json()["data"]
    assert got["id"] == cid and got["avatarId"] == "aria-001" and got["status"] == "active"
    assert [(m["role"], m["content"]) for m in got["messages"]] == [
        ("user", "Hello!"),
        ("assistant", "Hello! I'm Aria. How can I help you today?"),
        ("user", "Any shipping news?"),
        ("assistant", "Aria here. Happy to help with shipping: what would you like to know?"),
    ]
    assert got["messages"][1]["id"] == reply["id"]

    assert http.post(f"/v1/conversations/{cid}/end").json()["data"] == {"success": True}
    assert server.open_conversations() == before
    assert http.get(f"/v1/conversations/{cid}").json()["data"]["status"] == "ended"
    # Ending twice is harmless; talking to an ended conversation is not.
    assert http.post(f"/v1/conversations/{cid}/end").status_code == 200
    assert server.open_conversations() == before
    error = error_of(http.post(f"/v1/conversations/{cid}/messages", json={"content": "hi"}), 400)
    assert error["code"] == "invalid_request" and "ended" in error["message"]


def test_defaults_when_optional_fields_are_absent(http: httpx.Client) -> None:
    response = http.post("/v1/conversations", content=b"")
    assert response.status_code == 201
    cid = response.json()["data"]["id"]
    assert response.json()["data"]["avatarId"] == "aria-001"
    reply = http.post(f"/v1/conversations/{cid}/messages", json={"content": "x y"})
    assert reply.json()["data"]["content"] == "Aria here. You said: x y"
    http.post(f"/v1/conversations/{cid}/end")


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"avatarId": "nope-404"}, 404, "avatar_not_found", "avatarId"),
        ({"avatarId": 7}, 400, "invalid_parameter", "avatarId"),
        ({"provider": "cohere"}, 400, "invalid_parameter", "provider"),
        ({"systemPrompt": ["x"]}, 400, "invalid_parameter", "systemPrompt"),
        ({"byokAI": "openai"}, 400, "invalid_parameter", "byokAI"),
        ({"byokAI": {"apiKey": "k"}}, 400, "missing_parameter", "byokAI.provider"),
        ({"byokAI": {"provider": "x", "apiKey": "k"}}, 400, "invalid_parameter", "byokAI.provider"),
        ({"byokAI": {"provider": "openai"}}, 400, "missing_parameter", "byokAI.apiKey"),
        (
            {"byokAI": {"provider": "openai", "apiKey": ""}},
            400,
            "missing_parameter",
            "byokAI.apiKey",
        ),
        (
            {"byokAI": {"provider": "openai", "apiKey": "k", "baseUrl": "ftp://x"}},
            400,
            "invalid_parameter",
            "byokAI.baseUrl",
        ),
    ],
)
def test_create_validation(
    http: httpx.Client, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    error = error_of(http.post("/v1/conversations", json=body), status)
    assert error["code"] == code
    assert error["details"]["field"] == field


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b'"text"'])
def test_malformed_bodies_are_invalid_requests(http: httpx.Client, raw: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    error = error_of(http.post("/v1/conversations", content=raw, headers=headers), 400)
    assert error["code"] == "invalid_request"
    cid = create(http)["id"]
    path = f"/v1/conversations/{cid}/messages"
    error = error_of(http.post(path, content=raw, headers=headers), 400)
    assert error["code"] == "invalid_request"
    http.post(f"/v1/conversations/{cid}/end")


@pytest.mark.parametrize(
    ("body", "code", "reason"),
    [
        ({}, "missing_parameter", "missing"),
        ({"content": 5}, "invalid_parameter", "invalid"),
        ({"content": ""}, "invalid_parameter", "empty"),
        ({"content": "  \n "}, "invalid_parameter", "empty"),
        ({"content": "x" * 5001}, "invalid_parameter", "too_long"),
        ({"content": "hi", "stream": "yes"}, "invalid_parameter", "invalid"),
    ],
)
def test_message_validation(
    http: httpx.Client, body: dict[str, Any], code: str, reason: str
) -> None:
    cid = create(http)["id"]
    error = error_of(http.post(f"/v1/conversations/{cid}/messages", json=body), 400)
    assert (error["code"], error["details"]["reason"]) == (code, reason)
    # Nothing was stored by a rejected message.
    assert http.get(f"/v1/conversations/{cid}").json()["data"]["messages"] == []
    http.post(f"/v1/conversations/{cid}/end")


def test_longest_message_is_accepted(http: httpx.Client) -> None:
    cid = create(http)["id"]
    response = http.post(f"/v1/conversations/{cid}/messages", json={"content": "x" * 5000})
    assert response.status_code == 200
    http.post(f"/v1/conversations/{cid}/end")


def test_unknown_conversation(http: httpx.Client) -> None:
    for method, path in [
        ("GET", "/v1/conversations/nope"),
        ("POST", "/v1/conversations/nope/messages"),
        ("POST", "/v1/conversations/nope/end"),
    ]:
        error = error_of(http.request(method, path, json={"content": "hi"}), 404)
        assert error["code"] == "conversation_not_found"


# --- SSE streaming -----------------------------------------------------------------------------


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_sse_stream_matches_the_plain_reply(http: httpx.Client) -> None:
    message = "Tell me about your return policy please"
    plain_cid = create(http)["id"]
    plain = http.post(f"/v1/conversations/{plain_cid}/messages", json={"content": message})
    plain_reply = plain.json()["data"]

    cid = create(http)["id"]
    path = f"/v1/conversations/{cid}/messages"
    with http.stream("POST", path, json={"content": message, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(response.read().decode())

    kinds = [kind for kind, _ in events]
    deltas = [data["delta"] for kind, data in events if kind == "message"]
    assert kinds == ["message"] * len(deltas) + ["audio", "done"]
    assert len(deltas) > 1
    assert "".join(deltas) == plain_reply["content"]
    done = events[-1][1]
    assert done["usage"] == plain_reply["usage"]
    assert events[-2][1]["url"].endswith(f"{done['id']}.mp3")
    # The streamed turn is stored like any other.
    stored = http.get(f"/v1/conversations/{cid}").json()["data"]["messages"]
    assert [m["content"] for m in stored] == [message, plain_reply["content"]]
    assert stored[1]["id"] == done["id"]
    for conversation in (plain_cid, cid):
        http.post(f"/v1/conversations/{conversation}/end")


# --- determinism ---------------------------------------------------------------------------------


def test_same_inputs_same_replies_across_conversations(http: httpx.Client) -> None:
    messages = ["hey", "What about billing?", "Is   this\tdeterministic?", "bye"]
    replies = []
    for _ in range(2):
        cid = create(http, avatarId="kai-002", systemPrompt="Topics: billing")["id"]
        replies.append(
            [
                http.post(f"/v1/conversations/{cid}/messages", json={"content": m}).json()["data"][
                    "content"
                ]
                for m in messages
            ]
        )
        http.post(f"/v1/conversations/{cid}/end")
    expected = [
        "Hello! I'm Kai. How can I help you today?",
        "Kai here. Happy to help with billing: what would you like to know?",
        "Kai here. You said: Is this deterministic?",
        "Goodbye from Kai! Thanks for the conversation.",
    ]
    assert replies == [expected, expected]


# --- BYOK secrecy ------------------------------------------------------------------------------


def test_byok_key_is_never_echoed_or_stored(server: Server, http: httpx.Client) -> None:
    byok = {"provider": "openai", "apiKey": BYOK_KEY, "model": "gpt-4o-mini"}
    bodies: list[str] = []

    response = http.post(
        "/v1/conversations",
        json={"avatarId": "aria-001", "provider": "openai", "systemPrompt": PROMPT, "byokAI": byok},
    )
    bodies.append(response.text)
    assert response.status_code == 201 and response.json()["data"]["byokEnabled"] is True
    cid = response.json()["data"]["id"]
    # Rejected bodies that carry the key must not quote it back either.
    for bad in [
        {**byok, "provider": "nope"},
        {**byok, "baseUrl": BYOK_KEY},
        {**byok, "model": 3},
        {"provider": "openai", "apiKey": [BYOK_KEY]},
    ]:
        bodies.append(http.post("/v1/conversations", json={"byokAI": bad}).text)
    bodies.append(http.post("/v1/conversations", json={"avatarId": "x", "byokAI": byok}).text)
    bodies.append(http.post(f"/v1/conversations/{cid}/messages", json={"content": "hi"}).text)
    bodies.append(http.get(f"/v1/conversations/{cid}").text)
    bodies.append(http.post(f"/v1/conversations/{cid}/end").text)

    assert len(bodies) == 9
    for body in bodies:
        assert BYOK_KEY not in body
        assert "byok-DO-NOT-LEAK" not in body
    # The file on disk (and a journal, if any) never saw the key.
    for path in server.db_path.parent.iterdir():
        assert BYOK_KEY.encode() not in path.read_bytes(), path.name


# --- WebSocket ---------------------------------------------------------------------------------


def test_websocket_conversation(server: Server, http: httpx.Client) -> None:
    created = create(http)

    async def talk() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with await ws_open(created["wsUrl"]) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            assert await recv(ws) == {"type": "pong"}
            await ws.send(json.dumps({"type": "message", "content": "Hello there"}))
            first = await recv_turn(ws)
            await ws.send(json.dumps({"type": "message", "content": "billing question"}))
            second = await recv_turn(ws)
            return first, second

    first, second = ws_run(talk())
    kinds = [f["type"] for f in first]
    assert kinds[:2] == ["message", "stream_start"] and kinds[-1] == "stream_end"
    chunks = [f["data"] for f in first if f["type"] == "stream_chunk"]
    assert kinds[2:-1] == ["stream_chunk"] * len(chunks) and len(chunks) > 1
    assert first[0]["data"]["role"] == "user" and first[0]["data"]["content"] == "Hello there"
    final = first[-1]["data"]
    assert final["role"] == "assistant"
    assert final["content"] == "".join(chunks) == "Hello! I'm Aria. How can I help you today?"
    assert first[1]["data"]["id"] == final["id"]
    assert second[-1]["data"]["content"].startswith("Aria here. Happy to help with billing")

    # WebSocket turns are stored like REST ones.
    stored = http.get(f"/v1/conversations/{created['id']}").json()["data"]["messages"]
    assert [(m["role"], m["id"]) for m in stored[:2]] == [
        ("user", first[0]["data"]["id"]),
        ("assistant", final["id"]),
    ]
    assert len(stored) == 4
    http.post(f"/v1/conversations/{created['id']}/end")


def test_websocket_bad_frames_get_errors_and_the_socket_stays_usable(
    server: Server, http: httpx.Client
) -> None:
    created = create(http)
    bad_frames: list[str | bytes] = [
        "not json",
        "[1]",
        json.dumps({"type": "dance"}),
        json.dumps({"content": "no type"}),
        json.dumps({"type": "message"}),
        json.dumps({"type": "message", "content": "   "}),
        json.dumps({"type": "message", "content": "x" * 5001}),
        b"\x00binary",
    ]

    async def talk() -> list[dict[str, Any]]:
        async with await ws_open(created["wsUrl"]) as ws:
            errors = []
            for frame in bad_frames:
                await ws.send(frame)
                errors.append(await recv(ws))
            await ws.send(json.dumps({"type": "ping"}))
            assert await recv(ws) == {"type": "pong"}
            return errors

    errors = ws_run(talk())
    assert [e["type"] for e in errors] == ["error"] * len(bad_frames)
    assert [e["data"]["code"] for e in errors] == [
        "invalid_request",
        "invalid_request",
        "invalid_parameter",
        "invalid_parameter",
        "missing_parameter",
        "invalid_parameter",
        "invalid_parameter",
        "invalid_request",
    ]
    assert http.get(f"/v1/conversations/{created['id']}").json()["data"]["messages"] == []
    http.post(f"/v1/conversations/{created['id']}/end")


def test_end_closes_open_websockets(server: Server, http: httpx.Client) -> None:
    created = create(http)

    async def scenario() -> None:
        sockets = [await ws_open(created["wsUrl"]) for _ in range(2)]
        for ws in sockets:  # both are live before the end
            await ws.send(json.dumps({"type": "ping"}))
            assert await recv(ws) == {"type": "pong"}
        end = await asyncio.to_thread(http.post, f"/v1/conversations/{created['id']}/end")
        assert end.status_code == 200
        for ws in sockets:
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()
            assert ws.close_code == 1000 and ws.close_reason == "conversation ended"

        # Connecting to an ended conversation: one error frame, then the same close.
        async with await ws_open(created["wsUrl"]) as ws:
            frame = await recv(ws)
            assert frame["type"] == "error" and "ended" in frame["data"]["message"]
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()

    ws_run(scenario())


def test_websocket_auth(server: Server, http: httpx.Client) -> None:
    created = create(http)
    url = created["wsUrl"]

    async def refused(target: str, key: str | None) -> tuple[int, dict[str, Any]]:
        with pytest.raises(InvalidStatus) as info:
            await ws_open(target, key)
        response = info.value.response
        body = json.loads(response.body)
        assert response.headers["x-request-id"] == body["meta"]["requestId"]
        return response.status_code, body

    async def scenario() -> None:
        status, body = await refused(url, None)
        assert (status, body["error"]["code"]) == (401, "missing_api_key")
        status, body = await refused(url, "wrong")
        assert (status, body["error"]["code"]) == (401, "invalid_api_key")
        status, body = await refused(f"{url}?token=wrong", None)
        assert (status, body["error"]["code"]) == (401, "invalid_api_key")
        status, body = await refused(f"{server.ws_base}/v1/conversations/nope/ws", KEY)
        assert (status, body["error"]["code"]) == (404, "conversation_not_found")
        # Browsers cannot set headers: ?token= is accepted too.
        async with await ws_open(f"{url}?token={KEY}", None) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            assert await recv(ws) == {"type": "pong"}

    ws_run(scenario())
    http.post(f"/v1/conversations/{created['id']}/end")


# --- behind the core's middleware ----------------------------------------------------------------


def test_request_ids_and_rate_limit_headers_on_every_answer(
    emulator: EmulatorServer, api_key: str
) -> None:
    with httpx.Client(
        base_url=emulator.url, headers={"Authorization": f"Bearer {api_key}"}, trust_env=False
    ) as http:
        cid = create(http)["id"]
        answers = [
            http.get("/health"),
            http.get("/v1/avatars/aria-001"),
            http.get("/v1/avatars/nope"),
            http.get(f"/v1/conversations/{cid}"),
        ]
        for response in answers:
            assert response.headers["x-request-id"] == response.json()["meta"]["requestId"]
            assert int(response.headers["x-ratelimit-limit"]) > 0
        path = f"/v1/conversations/{cid}/messages"
        with http.stream("POST", path, json={"content": "hi", "stream": True}) as streamed:
            assert streamed.headers["x-request-id"].startswith("req_")
            assert "x-ratelimit-remaining" in streamed.headers
            assert parse_sse(streamed.read().decode())[-1][0] == "done"
        http.post(f"/v1/conversations/{cid}/end")


def test_a_message_whose_answer_is_dropped_is_still_stored(
    emulator: EmulatorServer, api_key: str
) -> None:
    with httpx.Client(
        base_url=emulator.url, headers={"Authorization": f"Bearer {api_key}"}, trust_env=False
    ) as http:
        cid = create(http)["id"]
        emulator.set_faults(drop_after_commit_rate=1.0)
        with pytest.raises(httpx.TransportError):
            http.post(f"/v1/conversations/{cid}/messages", json={"content": "lost answer"})
        emulator.set_faults(drop_after_commit_rate=0.0)
        messages = http.get(f"/v1/conversations/{cid}").json()["data"]["messages"]
        assert [m["content"] for m in messages] == [
            "lost answer",
            "Aria here. You said: lost answer",
        ]
        http.post(f"/v1/conversations/{cid}/end")
        assert emulator.stats()["openConversations"]["avatarium"] == 0


# --- counting and persistence ------------------------------------------------------------------


def test_open_conversations_counts_created_minus_ended(server: Server, http: httpx.Client) -> None:
    before = server.open_conversations()
    ids = [create(http)["id"] for _ in range(3)]
    assert server.open_conversations() == before + 3
    http.post(f"/v1/conversations/{ids[0]}/end")
    http.post(f"/v1/conversations/{ids[0]}/end")
    assert server.open_conversations() == before + 2
    for cid in ids[1:]:
        http.post(f"/v1/conversations/{cid}/end")
    assert server.open_conversations() == before


def test_data_survives_a_restart_and_seeded_ids_do_not_collide(tmp_path: Path) -> None:
    db = tmp_path / "restart.sqlite"
    with serve(db, seed=1) as first, first.client() as http:
        kept = create(http)["id"]
        http.post(f"/v1/conversations/{kept}/messages", json={"content": "remember me"})
        assert first.open_conversations() == 1
    # Same seed, same file: the replayed id sequence must skip what is already stored.
    with serve(db, seed=1) as second, second.client() as http:
        assert second.open_conversations() == 1
        messages = http.get(f"/v1/conversations/{kept}").json()["data"]["messages"]
        assert [m["content"] for m in messages] == [
            "remember me",
            "Aria here. You said: remember me",
        ]
        fresh = create(http)["id"]
        assert fresh != kept
        reply = http.post(f"/v1/conversations/{fresh}/messages", json={"content": "again"})
        assert reply.status_code == 200
        assert reply.json()["data"]["id"] not in {m["id"] for m in messages}
        for cid in (kept, fresh):
            http.post(f"/v1/conversations/{cid}/end")
        assert second.open_conversations() == 0


def test_same_seed_gives_the_same_ids_on_a_fresh_database(tmp_path: Path) -> None:
    ids = []
    for name in ("a.sqlite", "b.sqlite"):
        with serve(tmp_path / name, seed=42) as running, running.client() as http:
            cid = create(http)["id"]
            reply = http.post(f"/v1/conversations/{cid}/messages", json={"content": "hi"})
            ids.append((cid, reply.json()["data"]["id"]))
    assert ids[0] == ids[1]
