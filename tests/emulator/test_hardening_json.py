"""JSON bodies that used to make the emulator answer 500 after committing (and poison
every later list): lone surrogates, nesting past the parser's limit, NaN/Infinity.
Each is now a 400 in the platform's error shape, before anything is written."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.error_shapes import JSON, avatarium_error, equos_error
from websockets.asyncio.client import connect

from avatarsync.emulator import EmulatorServer
from avatarsync.emulator.jsonbody import BodyError, parse_json

SURROGATE = '"\\ud800"'  # JSON text for a lone UTF-16 surrogate
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
def bearer(api_key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"}


# ---------------------------------------------------------------- lone surrogates


@pytest.mark.parametrize(
    ("path", "raw", "list_path"),
    [
        ("/v3/brains", f'{{"instructions": {SURROGATE}, "greetingMessage": "g"}}', "/v3/brains"),
        ("/v3/brains", f'{{"instructions": "i", "greetingMessage": "g", {SURROGATE}: 1}}', "/v3/brains"),
        ("/v3/faces", f'{{"identity": "tommy", "client": {SURROGATE}}}', "/v3/faces"),
        ("/v3/characters", '{"name": "a\\udfffb", "livekitIdentity": "x"}', "/v3/characters"),
        ("/v3/knowledge-bases", f'{{"name": "n", "description": [{SURROGATE}]}}', "/v3/knowledge-bases"),
    ],
)  # fmt: skip
def test_equos_lone_surrogates_are_400_and_commit_nothing(
    equos_http: httpx.Client, path: str, raw: str, list_path: str
) -> None:
    message = equos_error(equos_http.post(path, content=raw.encode(), headers=JSON))
    assert "surrogate" in message
    listed = equos_http.get(list_path)
    assert listed.status_code == 200 and listed.json()["total"] == 0


def test_equos_surrogates_in_nested_objects_and_updates(equos_http: httpx.Client) -> None:
    brain = equos_http.post("/v3/brains", json={"instructions": "i", "greetingMessage": "g"}).json()
    raw = f'{{"instructions": {SURROGATE}, "greetingMessage": "g"}}'.encode()
    equos_error(equos_http.patch(f"/v3/brains/{brain['id']}", content=raw, headers=JSON))
    character = equos_http.post(
        "/v3/characters", json={"name": "c", "livekitIdentity": "c", "brainId": brain["id"]}
    ).json()
    raw = (
        f'{{"name": "s", "characterId": "{character["id"]}",'
        f' "promptTemplateVars": {{{SURROGATE}: "v"}}}}'
    ).encode()
    equos_error(equos_http.post("/v3/conversations", content=raw, headers=JSON))
    assert equos_http.get("/v3/conversations").json()["total"] == 0
    assert equos_http.get("/v3/brains").json()["brains"] == [brain]
    # A valid surrogate *pair* is ordinary text (U+1F600) and is kept.
    pair = b'{"instructions": "\\ud83d\\ude00", "greetingMessage": "g"}'
    created = equos_http.post("/v3/brains", content=pair, headers=JSON)
    assert created.status_code == 201 and created.json()["instructions"] == "\U0001f600"


def test_avatarium_lone_surrogates_are_400_and_commit_nothing(
    emulator: EmulatorServer, bearer: dict[str, str]
) -> None:
    with httpx.Client(base_url=emulator.url, headers=bearer, trust_env=False) as http:
        raw = f'{{"systemPrompt": {SURROGATE}}}'.encode()
        error = avatarium_error(http.post("/v1/conversations", content=raw, headers=JSON))
        assert error["code"] == "invalid_request" and "surrogate" in error["message"]
        assert emulator.stats()["openConversations"]["avatarium"] == 0
        cid = http.post("/v1/conversations", json={}).json()["data"]["id"]
        raw = f'{{"content": {SURROGATE}}}'.encode()
        path = f"/v1/conversations/{cid}/messages"
        assert avatarium_error(http.post(path, content=raw, headers=JSON))["code"] == (
            "invalid_request"
        )
        raw = f'{{"content": "hi", {SURROGATE}: 1}}'.encode()
        avatarium_error(http.post(path, content=raw, headers=JSON))
        got = http.get(f"/v1/conversations/{cid}")
        assert got.status_code == 200 and got.json()["data"]["messages"] == []
        http.post(f"/v1/conversations/{cid}/end")


def test_websocket_frames_with_surrogates_or_deep_nesting_get_error_frames(
    emulator: EmulatorServer, bearer: dict[str, str]
) -> None:
    created = httpx.post(f"{emulator.url}/v1/conversations", json={}, headers=bearer).json()

    async def talk() -> list[dict[str, Any]]:
        async with connect(
            created["data"]["wsUrl"], additional_headers=bearer, proxy=None, open_timeout=5
        ) as ws:
            frames = []
            for text in (
                f'{{"type": "message", "content": {SURROGATE}}}',
                f'{{"type": "ping", {SURROGATE}: 1}}',
                DEEP.decode(),
            ):
                await ws.send(text)
                frames.append(json.loads(await ws.recv()))
            await ws.send(json.dumps({"type": "ping"}))
            frames.append(json.loads(await ws.recv()))
            return frames

    frames = asyncio.run(asyncio.wait_for(talk(), 10))
    assert [f["type"] for f in frames] == ["error", "error", "error", "pong"]
    assert {f["data"]["code"] for f in frames[:3]} == {"invalid_request"}
    got = httpx.get(f"{emulator.url}/v1/conversations/{created['data']['id']}", headers=bearer)
    assert got.json()["data"]["messages"] == []


def test_admin_faults_refuse_surrogates_and_deep_nesting(emulator: EmulatorServer) -> None:
    with httpx.Client(base_url=emulator.url, trust_env=False) as http:
        for raw in (f"{{{SURROGATE}: 1}}".encode(), DEEP):
            refused = http.post("/_emulator/faults", content=raw, headers=JSON)
            assert refused.status_code == 400 and refused.json()["error"]
        assert http.get("/_emulator/faults").json()["latencyMs"] == 0


# ---------------------------------------------------------------- deep nesting


@pytest.mark.parametrize("path", ["/v3/brains", "/v3/characters", "/v3/conversations"])
def test_equos_deeply_nested_json_is_400(equos_http: httpx.Client, path: str) -> None:
    assert "JSON" in equos_error(equos_http.post(path, content=DEEP, headers=JSON))
    wrapped = b'{"name": ' + DEEP + b"}"
    equos_error(equos_http.post(path, content=wrapped, headers=JSON))


def test_avatarium_deeply_nested_json_is_400(
    emulator: EmulatorServer, bearer: dict[str, str]
) -> None:
    with httpx.Client(base_url=emulator.url, headers=bearer, trust_env=False) as http:
        error = avatarium_error(http.post("/v1/conversations", content=DEEP, headers=JSON))
        assert error["code"] == "invalid_request"
        cid = http.post("/v1/conversations", json={}).json()["data"]["id"]
        raw = b'{"content": "hi", "x": ' + DEEP + b"}"
        avatarium_error(http.post(f"/v1/conversations/{cid}/messages", content=raw, headers=JSON))
        assert http.get(f"/v1/conversations/{cid}").json()["data"]["messages"] == []
        http.post(f"/v1/conversations/{cid}/end")


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_standard_json_constants_are_not_json(equos_http: httpx.Client, literal: bytes) -> None:
    raw = b'{"instructions": "i", "greetingMessage": "g", "client": ' + literal + b"}"
    assert "JSON" in equos_error(equos_http.post("/v3/brains", content=raw, headers=JSON))


# ---------------------------------------------------------------- the parser itself


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b'"\\ud800"', "surrogate"),
        (b'{"a": ["x", {"\\udc00": 1}]}', "surrogate"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b"NaN", "NaN is not a JSON value"),
        (b'"\xff"', "not valid UTF-8"),
        (b"\xef\xbb\xbf{}", "BOM"),
        (b"{not json", "line 1 column 2"),
    ],
)
def test_parse_json_refusals(raw: bytes, fragment: str) -> None:
    with pytest.raises(BodyError, match=fragment):
        parse_json(raw)
    with pytest.raises(BodyError):
        parse_json(raw.decode("utf-8", errors="surrogateescape"))


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(value=JSON_VALUES, ascii_only=st.booleans())
@settings(max_examples=60, deadline=None)
def test_parse_json_reads_back_any_json_without_surrogates(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert parse_json(text.encode()) == value == parse_json(text)


@given(prefix=st.text(max_size=5), code=st.integers(0xD800, 0xDFFF), suffix=st.text(max_size=5))
@settings(max_examples=60, deadline=None)
def test_parse_json_refuses_every_lone_surrogate(prefix: str, code: int, suffix: str) -> None:
    # json.dumps writes a lone surrogate as a \u escape; as a key and as a value.
    text = prefix + chr(code) + suffix
    for value in (text, {text: 1}, [[{"k": text}]]):
        with pytest.raises(BodyError, match="surrogate"):
            parse_json(json.dumps(value))
