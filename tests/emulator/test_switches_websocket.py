"""Behaviour switches for the client's tests, Avatarium WebSocket side: wsAuth (the bare
wsUrl works) and the mid-stream faults -- an error frame or a dropped socket after n
chunks, delays, a stream_end that disagrees with its chunks, a message frame after
stream_end -- each limited, if wanted, to the next K replies so a reconnect succeeds.
The open-conversations counter stays exact through all of them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from avatarsync.emulator import DEFAULT_API_KEY, EmulatorServer
from avatarsync.emulator.avatarium import MISMATCH_SUFFIX, split_chunks
from avatarsync.emulator.faults import Faults, FaultSettings, WsReplyPlan

BEARER = {"authorization": f"Bearer {DEFAULT_API_KEY}"}
PROMPT = "You are Tommy from Acme."
REPLY = "Tommy here. You said: tell me something long enough to stream"
MESSAGE = "tell me something long enough to stream"
CHUNKS = split_chunks(REPLY)


@pytest.fixture
def http(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, headers=BEARER, timeout=10, trust_env=False) as c:
        yield c


def set_faults(http: httpx.Client, **switches: Any) -> dict[str, Any]:
    answer = http.post("/_emulator/faults", json=switches)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def create(http: httpx.Client) -> dict[str, Any]:
    answer = http.post("/v1/conversations", json={"systemPrompt": PROMPT})
    assert answer.status_code == 201, answer.text
    return dict(answer.json()["data"])


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


async def ws_open(url: str, headers: dict[str, str] | None = BEARER) -> ClientConnection:
    return await connect(url, additional_headers=headers, proxy=None, open_timeout=5)


async def frames_until_silence_or_close(ws: ClientConnection) -> list[dict[str, Any]]:
    """Frames of one reply: up to stream_end (and a following message frame, if any),
    or up to an error frame, or until the socket closes."""
    frames: list[dict[str, Any]] = []
    while True:
        try:
            frames.append(json.loads(await ws.recv()))
        except ConnectionClosed:
            return frames
        if frames[-1]["type"] == "error":
            return frames
        if frames[-1]["type"] == "stream_end":
            await ws.send(json.dumps({"type": "ping"}))  # fence: what comes before pong
            while (frame := json.loads(await ws.recv()))["type"] != "pong":
                frames.append(frame)
            return frames


async def turn(ws: ClientConnection) -> list[dict[str, Any]]:
    await ws.send(json.dumps({"type": "message", "content": MESSAGE}))
    return await frames_until_silence_or_close(ws)


def kinds(frames: list[dict[str, Any]]) -> list[str]:
    return [f["type"] for f in frames]


def chunks_of(frames: list[dict[str, Any]]) -> list[str]:
    return [f["data"] for f in frames if f["type"] == "stream_chunk"]


NORMAL = ["message", "stream_start", *["stream_chunk"] * len(CHUNKS), "stream_end"]


def test_reply_has_enough_chunks_for_these_tests() -> None:
    assert len(CHUNKS) >= 5


# ---------------------------------------------------------------- wsAuth


def test_ws_auth_open_accepts_the_bare_ws_url(http: httpx.Client, emulator: EmulatorServer) -> None:
    created = create(http)

    async def scenario() -> None:
        with pytest.raises(InvalidStatus) as refused:
            await ws_open(created["wsUrl"], headers=None)
        assert refused.value.response.status_code == 401  # the default: required
        set_faults(http, wsAuth="open")
        async with await ws_open(created["wsUrl"], headers=None) as ws:
            assert kinds(await turn(ws)) == NORMAL
        async with await ws_open(created["wsUrl"]) as ws:  # a valid header still works
            assert kinds(await turn(ws)) == NORMAL
        for headers, url in (
            ({"authorization": "Bearer wrong"}, created["wsUrl"]),
            (None, created["wsUrl"] + "?token=wrong"),
        ):
            with pytest.raises(InvalidStatus) as refused:  # a credential sent is checked
                await ws_open(url, headers=headers)
            assert refused.value.response.status_code == 401

    run(scenario())
    assert emulator.stats()["openConversations"]["avatarium"] == 1
    http.post(f"/v1/conversations/{created['id']}/end")


# ---------------------------------------------------------------- error frame


def test_error_after_n_chunks_for_the_next_reply_only(
    http: httpx.Client, emulator: EmulatorServer
) -> None:
    created = create(http)
    changed = set_faults(http, wsErrorAfterChunks=2, wsErrorReplies=1)
    assert (changed["wsErrorAfterChunks"], changed["wsErrorReplies"]) == (2, 1)

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with await ws_open(created["wsUrl"]) as ws:
            return await turn(ws), await turn(ws)  # the same socket stays usable

    cut, whole = run(scenario())
    assert kinds(cut) == ["message", "stream_start", "stream_chunk", "stream_chunk", "error"]
    assert chunks_of(cut) == CHUNKS[:2]
    assert cut[-1]["data"]["code"] == "ai_provider_error"
    assert kinds(whole) == NORMAL and whole[-1]["data"]["content"] == REPLY
    assert http.get("/_emulator/faults").json()["wsErrorReplies"] == 0
    assert emulator.stats()["openConversations"]["avatarium"] == 1
    http.post(f"/v1/conversations/{created['id']}/end")
    assert emulator.stats()["openConversations"]["avatarium"] == 0


def test_error_after_more_chunks_than_the_reply_has_strikes_before_stream_end(
    http: httpx.Client,
) -> None:
    created = create(http)
    set_faults(http, wsErrorAfterChunks=1000)  # every reply, while set

    async def scenario() -> list[list[dict[str, Any]]]:
        async with await ws_open(created["wsUrl"]) as ws:
            return [await turn(ws), await turn(ws)]

    for frames in run(scenario()):
        assert kinds(frames) == [*NORMAL[:-1], "error"]
        assert "".join(chunks_of(frames)) == REPLY
    http.post(f"/v1/conversations/{created['id']}/end")


# ---------------------------------------------------------------- dropped socket


@pytest.mark.parametrize(("mode", "after"), [("abort", 0), ("abort", 3), ("1011", 2)])
def test_drop_after_n_chunks_then_a_reconnect_succeeds(
    http: httpx.Client, emulator: EmulatorServer, mode: str, after: int
) -> None:
    created = create(http)
    set_faults(http, wsDropAfterChunks=after, wsDropMode=mode, wsDropReplies=1)

    async def scenario() -> tuple[list[dict[str, Any]], int | None, list[dict[str, Any]]]:
        ws = await ws_open(created["wsUrl"])
        dropped = await turn(ws)
        with pytest.raises(ConnectionClosedError) as closed:
            await ws.recv()
        code = closed.value.rcvd.code if closed.value.rcvd is not None else None
        async with await ws_open(created["wsUrl"]) as again:
            return dropped, code, await turn(again)

    dropped, code, whole = run(scenario())
    assert kinds(dropped) == ["message", "stream_start", *["stream_chunk"] * after]
    assert chunks_of(dropped) == CHUNKS[:after]
    # abort: the TCP connection closes with no close frame; 1011: a close frame.
    assert code == (None if mode == "abort" else 1011)
    assert kinds(whole) == NORMAL
    assert http.get("/_emulator/faults").json()["wsDropReplies"] == 0
    # A dropped socket does not end the conversation; the turns were stored.
    assert emulator.stats()["openConversations"]["avatarium"] == 1
    stored = http.get(f"/v1/conversations/{created['id']}").json()["data"]
    assert stored["status"] == "active" and len(stored["messages"]) == 4
    http.post(f"/v1/conversations/{created['id']}/end")
    assert emulator.stats()["openConversations"]["avatarium"] == 0


# ---------------------------------------------------------------- delays


@pytest.mark.parametrize(
    ("switch", "chunks_before_end"), [("wsFirstChunkDelayMs", 0), ("wsChunkDelayMs", 1)]
)
def test_delays_hold_the_reply_back_until_the_conversation_ends(
    http: httpx.Client, emulator: EmulatorServer, switch: str, chunks_before_end: int
) -> None:
    """No clock in this test: the delay is far longer than the test, so /end closes the
    socket while the reply waits, before its first chunk or between two chunks."""
    set_faults(http, **{switch: 60_000})
    created = create(http)

    async def scenario() -> tuple[list[dict[str, Any]], int | None]:
        async with await ws_open(created["wsUrl"]) as ws:
            await ws.send(json.dumps({"type": "message", "content": MESSAGE}))
            frames = [json.loads(await ws.recv()) for _ in range(2 + chunks_before_end)]
            path = f"/v1/conversations/{created['id']}/end"
            assert (await asyncio.to_thread(http.post, path)).status_code == 200
            with pytest.raises(ConnectionClosed):
                while True:
                    frames.append(json.loads(await ws.recv()))
            return frames, ws.close_code

    frames, close_code = run(scenario())
    assert kinds(frames) == ["message", "stream_start", *["stream_chunk"] * chunks_before_end]
    assert close_code == 1000
    assert emulator.stats()["openConversations"]["avatarium"] == 0


def test_delays_keep_the_reply_whole_and_count_down(http: httpx.Client) -> None:
    created = create(http)
    set_faults(http, wsFirstChunkDelayMs=1, wsChunkDelayMs=1, wsDelayReplies=2)

    async def scenario() -> list[list[dict[str, Any]]]:
        async with await ws_open(created["wsUrl"]) as ws:
            return [await turn(ws) for _ in range(3)]

    for frames in run(scenario()):
        assert kinds(frames) == NORMAL and "".join(chunks_of(frames)) == REPLY
    assert http.get("/_emulator/faults").json()["wsDelayReplies"] == 0
    http.post(f"/v1/conversations/{created['id']}/end")


# ---------------------------------------------------------------- stream_end variants


def test_stream_end_mismatch_and_message_after_end(http: httpx.Client) -> None:
    created = create(http)
    set_faults(http, wsEndMismatch=True, wsEndMismatchReplies=1, wsMessageAfterEnd=True)

    async def scenario() -> list[list[dict[str, Any]]]:
        async with await ws_open(created["wsUrl"]) as ws:
            return [await turn(ws), await turn(ws)]

    first, second = run(scenario())
    assert kinds(first) == [*NORMAL, "message"] == kinds(second)
    assert first[-2]["data"]["content"] == REPLY + MISMATCH_SUFFIX != "".join(chunks_of(first))
    assert second[-2]["data"]["content"] == REPLY == "".join(chunks_of(second))
    for frames in (first, second):
        after = frames[-1]["data"]
        assert after["role"] == "assistant" and after["content"] == REPLY
        assert after["id"] == frames[1]["data"]["id"]  # the stream_start id
    stored = http.get(f"/v1/conversations/{created['id']}").json()["data"]["messages"]
    assert [m["content"] for m in stored if m["role"] == "assistant"] == [REPLY, REPLY]
    http.post(f"/v1/conversations/{created['id']}/end")


# ---------------------------------------------------------------- at start, validation


def test_websocket_switches_at_start(start_emulator: Callable[..., EmulatorServer]) -> None:
    server = start_emulator(ws_auth="open", ws_error_after_chunks=0, ws_error_replies=1)
    with httpx.Client(base_url=server.url, headers=BEARER, trust_env=False) as http:
        created = create(http)

        async def scenario() -> list[list[dict[str, Any]]]:
            async with await ws_open(created["wsUrl"], headers=None) as ws:
                return [await turn(ws), await turn(ws)]

        first, second = run(scenario())
        assert kinds(first) == ["message", "stream_start", "error"]
        assert kinds(second) == NORMAL
        http.post(f"/v1/conversations/{created['id']}/end")


@pytest.mark.parametrize(
    "switches",
    [
        {"wsAuth": "none"},
        {"wsErrorAfterChunks": -1},
        {"wsDropAfterChunks": 100_001},
        {"wsDropMode": 1011},
        {"wsDropMode": "close"},
        {"wsFirstChunkDelayMs": 60_001},
        {"wsChunkDelayMs": 1.5},
        {"wsEndMismatch": 1},
        {"wsMessageAfterEnd": "yes"},
        {"wsDelayReplies": -1},
        {"wsErrorReplies": 10**7},
    ],
)
def test_websocket_switches_are_validated(http: httpx.Client, switches: dict[str, Any]) -> None:
    before = http.get("/_emulator/faults").json()
    refused = http.post("/_emulator/faults", json=switches)
    assert refused.status_code == 400 and next(iter(switches)) in refused.json()["error"]
    assert http.get("/_emulator/faults").json() == before


def test_reply_plan_counts_each_limited_fault_separately() -> None:
    faults = Faults(
        FaultSettings(
            ws_error_after_chunks=1,
            ws_error_replies=1,
            ws_drop_after_chunks=3,  # unlimited
            ws_chunk_delay_ms=5,
            ws_delay_replies=2,
            ws_message_after_end=True,
            ws_message_after_end_replies=0,  # spent
        )
    )
    plans = [faults.ws_reply_plan() for _ in range(3)]
    assert plans[0] == WsReplyPlan(error_after_chunks=1, drop_after_chunks=3, chunk_delay_ms=5)
    assert plans[1] == WsReplyPlan(drop_after_chunks=3, chunk_delay_ms=5)
    assert plans[2] == WsReplyPlan(drop_after_chunks=3)
    wire = faults.settings.to_wire()
    assert (wire["wsErrorReplies"], wire["wsDelayReplies"], wire["wsDropReplies"]) == (0, 0, None)
