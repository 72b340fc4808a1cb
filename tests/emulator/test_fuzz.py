"""Random requests at every route of the emulator: no answer is ever a 500, and the
emulator still lists everything correctly afterwards.

Bodies are random JSON (lone surrogates, huge and non-finite numbers, deep nesting,
wrong types, the fields each route knows with random values, real ids), random bytes,
or nothing; query strings and path ids are random too. One emulator serves a whole
run, so later requests meet whatever earlier ones created. A fault switch set by a
random admin call is reset at once (an injected 5xx is the one 500 allowed, and a
random latency could park the run)."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect

from avatarsync.emulator import DEFAULT_API_KEY, EmulatorServer
from avatarsync.emulator.faults import FaultSettings

HEADERS = {"x-api-key": DEFAULT_API_KEY, "authorization": f"Bearer {DEFAULT_API_KEY}"}
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ROUTES = (
    "/v3/health",
    "/v3/faces",
    "/v3/faces/{id}",
    "/v3/voices",
    "/v3/voices/{id}",
    "/v3/brains",
    "/v3/brains/{id}",
    "/v3/knowledge-bases",
    "/v3/knowledge-bases/{id}",
    "/v3/knowledge-bases/{id}/documents",
    "/v3/knowledge-bases/{id}/documents/{doc}",
    "/v3/knowledge-bases/{id}/documents/{doc}/index",
    "/v3/characters",
    "/v3/characters/{id}",
    "/v3/conversations",
    "/v3/conversations/{id}",
    "/v3/conversations/{id}/stop",
    "/v3/tokens",
    "/v3/organizations/freemium-usage",
    "/v3/organizations/user-usage",
    "/_uploads/{id}",
    "/health",
    "/v1/health",
    "/v1/avatars",
    "/v1/avatars/{id}",
    "/v1/avatars/{id}/model",
    "/v1/conversations",
    "/v1/conversations/{id}",
    "/v1/conversations/{id}/messages",
    "/v1/conversations/{id}/end",
    "/_emulator/stats",
    "/_emulator/stats/reset",
    "/_emulator/faults",
    "/_emulator/equos/documents/{doc}",
    "/nowhere",
)
FIELDS = (
    *("identity", "instructions", "greetingMessage", "client", "name", "description"),
    *("mimeType", "livekitIdentity", "faceId", "voiceId", "brainId", "knowledgeBaseId"),
    *("search", "elevenlabsAgentId", "characterId", "host", "remoteAgent", "consumer"),
    *("maxSeconds", "promptCtx", "promptTemplateVars", "user", "character", "avatarId"),
    *("provider", "systemPrompt", "byokAI", "content", "stream", "status", "apiKey"),
    *("serverUrl", "accessToken", "model", "baseUrl", "type"),
    *FaultSettings().to_wire(),
)
LISTS = {
    "faces": "faces",
    "voices": "voices",
    "brains": "brains",
    "knowledge-bases": "items",
    "characters": "characters",
    "conversations": "conversations",
}

# Text without lone surrogates, for what travels in a URL (httpx cannot encode them).
url_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
any_text = st.text(st.characters(), max_size=12) | st.sampled_from(
    [
        *("\ud800", "a\udfffb", "\ud83d\ude00", "tommy", "Puck", "groq", "message", "ping"),
        *("", " ", "x" * 5001),
    ]
)
numbers = st.integers() | st.floats() | st.sampled_from([10**400, 1e308, -1, 0, 86400, 2**63])


def json_values(ids: tuple[str, ...]) -> st.SearchStrategy[Any]:
    leaves = st.none() | st.booleans() | numbers | any_text | st.sampled_from(ids)
    return st.recursive(
        leaves,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.sampled_from(FIELDS) | any_text, inner, max_size=4)
        ),
        max_leaves=8,
    )


@functools.cache  # building these strategies costs more than drawing from them
def bodies(ids: tuple[str, ...] = ("x",)) -> st.SearchStrategy[bytes | None]:
    as_json = json_values(ids).map(lambda v: json.dumps(v).encode())
    near_valid = st.dictionaries(st.sampled_from(FIELDS), json_values(ids), max_size=6).map(
        lambda d: json.dumps(d).encode()
    )
    special = st.sampled_from(
        [b"[" * 5000 + b"]" * 5000, b'{"a": NaN}', b"\xff\xfe", b"{", b'"\\ud800"', b"   "]
    )
    return st.none() | as_json | near_valid | near_valid | special | st.binary(max_size=40)


@functools.cache
def queries(ids: tuple[str, ...]) -> st.SearchStrategy[dict[str, str]]:
    value = url_text | st.sampled_from(
        ["0", "50", "51", "-1", "1e300", "nan", "20.0", "9223372036854775807", *ids]
    )
    return st.dictionaries(
        st.sampled_from(["take", "skip", "client", "token"]) | url_text, value, max_size=3
    )


@functools.cache
def path_ids(ids: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.sampled_from(ids) | url_text


@pytest.fixture
def seeded(emulator: EmulatorServer) -> Iterator[tuple[httpx.Client, tuple[str, ...]]]:
    """An emulator holding one of everything; the ids the strategies may pick."""
    with httpx.Client(base_url=emulator.url, headers=HEADERS, timeout=10, trust_env=False) as http:
        face = http.post("/v3/faces", json={"identity": "tommy"}).json()["id"]
        brain = http.post("/v3/brains", json={"instructions": "i", "greetingMessage": "g"}).json()
        kb = http.post("/v3/knowledge-bases", json={"name": "k", "description": "d"}).json()["id"]
        added = http.post(
            f"/v3/knowledge-bases/{kb}/documents",
            json={"name": "n", "description": "d", "mimeType": "text/plain"},
        ).json()
        character = http.post(
            "/v3/characters",
            json={"name": "c", "livekitIdentity": "c", "faceId": face, "brainId": brain["id"]},
        ).json()["id"]
        conv = http.post("/v3/conversations", json={"name": "s", "characterId": character})
        avatarium = http.post("/v1/conversations", json={}).json()["data"]["id"]
        token = added["uploadUrl"].rsplit("/", 1)[1]
        ids = [face, brain["id"], kb, added["document"]["id"], character, avatarium, token]
        ids += [conv.json()["conversation"]["id"], "aria-001"]
        yield http, tuple(ids)


def reset_switches(http: httpx.Client) -> None:
    assert http.post("/_emulator/faults", json=FaultSettings().to_wire()).status_code == 200


def check_lists(http: httpx.Client) -> None:
    for path, key in LISTS.items():
        first = http.get(f"/v3/{path}", params={"take": 50})
        assert first.status_code == 200, (path, first.text)
        total, seen = first.json()["total"], [o["id"] for o in first.json()[key]]
        for skip in range(50, total, 50):
            page = http.get(f"/v3/{path}", params={"take": 50, "skip": skip})
            assert page.status_code == 200, (path, page.text)
            seen += [o["id"] for o in page.json()[key]]
        assert len(seen) == len(set(seen)) == total, path
    assert http.get("/_emulator/stats").status_code == 200
    assert http.get("/v3/organizations/freemium-usage").status_code == 200


_examples = [0]


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_no_request_is_ever_answered_500(
    seeded: tuple[httpx.Client, tuple[str, ...]], data: st.DataObject
) -> None:
    http, ids = seeded
    template = data.draw(st.sampled_from(ROUTES), label="route")
    method = data.draw(st.sampled_from(METHODS), label="method")
    path = template
    for name in ("{id}", "{doc}"):
        if name in path:
            value = data.draw(path_ids(ids), label=name)
            path = path.replace(name, quote(value, safe="") or "x")
    body = data.draw(bodies(ids), label="body")
    params = data.draw(queries(ids), label="query")
    response = http.request(
        method, path, params=params, content=body, headers={"content-type": "application/json"}
    )
    if path.startswith("/_emulator/faults"):
        reset_switches(http)
    assert response.status_code < 500, (method, path, params, body, response.text[:300])
    if response.headers.get("content-type", "").startswith("application/json"):
        json.loads(response.content)  # every JSON answer is valid JSON (and UTF-8)
    _examples[0] += 1
    if _examples[0] % 25 == 0:  # not drawn: hypothesis would pick the boundary, 0, often
        check_lists(http)


def test_lists_are_right_after_a_fuzz_run(seeded: tuple[httpx.Client, tuple[str, ...]]) -> None:
    """The fuzz test checks lists now and then; this one checks them after a fixed
    burst of hostile writes, against what was created."""
    http, _ = seeded
    raw = [
        b'{"instructions": "\\ud800", "greetingMessage": "g"}',
        b'{"instructions": "i", "greetingMessage": "g", "\\udfff": 1}',
        b'{"instructions": "i", "greetingMessage": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"instructions": "i", "greetingMessage": "g", "client": 1e400}',
        b'{"instructions": "i", "greetingMessage": "ok"}',
    ]
    statuses = [http.post("/v3/brains", content=r).status_code for r in raw]
    assert statuses == [400, 400, 400, 400, 201]
    brains = http.get("/v3/brains").json()
    assert brains["total"] == 2 and brains["brains"][-1]["greetingMessage"] == "ok"
    check_lists(http)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=st.lists(bodies() | any_text.map(json.dumps).map(str.encode), max_size=6))
def test_random_websocket_frames_never_break_the_socket(
    seeded: tuple[httpx.Client, tuple[str, ...]],
    emulator: EmulatorServer,
    frames: list[bytes | None],
) -> None:
    http, ids = seeded
    url = emulator.url.replace("http://", "ws://") + f"/v1/conversations/{ids[5]}/ws"

    async def talk() -> None:
        async with connect(url, additional_headers=HEADERS, proxy=None, open_timeout=5) as ws:
            for frame in frames:
                if frame is None:
                    continue
                try:
                    text: str | bytes = frame.decode()
                except UnicodeDecodeError:
                    text = frame  # sent as a binary frame
                await ws.send(text)
                answer = json.loads(await ws.recv())
                assert answer["type"] in {"error", "pong", "message"}, answer
                if answer["type"] == "message":  # a valid message: read the whole reply
                    while answer["type"] != "stream_end":
                        answer = json.loads(await ws.recv())
            await ws.send(json.dumps({"type": "ping"}))
            assert json.loads(await ws.recv()) == {"type": "pong"}

    asyncio.run(asyncio.wait_for(talk(), 10))
    assert http.get(f"/v1/conversations/{ids[5]}").status_code == 200
