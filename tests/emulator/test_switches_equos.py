"""Behaviour switches for the client's tests, Equos side: failNext (the next n requests
to one route answer 503), missingAs (404 or a 200 null for an unknown id), a document's
free-form status set through the admin endpoint, stopEndedAs (201 or 400). Each is
settable at start (EmulatorConfig) and at run time (POST /_emulator/faults)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import fields
from typing import Any

import httpx
import pytest
from equos.equos import EquosClient, EquosOptions

from avatarsync.emulator import DEFAULT_API_KEY, EmulatorConfig, EmulatorServer
from avatarsync.emulator.faults import FaultSettings

KEY = {"x-api-key": DEFAULT_API_KEY}
BRAIN = {"instructions": "i", "greetingMessage": "g"}
STOP = "POST /v3/conversations/{id}/stop"


@pytest.fixture
def http(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, headers=KEY, timeout=10, trust_env=False) as client:
        yield client


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def set_faults(http: httpx.Client, **switches: Any) -> dict[str, Any]:
    return dict(ok(http.post("/_emulator/faults", json=switches)))


def start(http: httpx.Client) -> dict[str, Any]:
    character = ok(http.post("/v3/characters", json={"name": "c", "livekitIdentity": "c"}), 201)
    answer = ok(
        http.post("/v3/conversations", json={"name": "s", "characterId": character["id"]}), 201
    )
    return dict(answer["conversation"])


def test_config_mirrors_every_switch_with_its_default() -> None:
    config = {f.name: f for f in fields(EmulatorConfig)}
    for switch in fields(FaultSettings):
        assert switch.name in config, switch.name
        made = EmulatorConfig()
        assert getattr(made, switch.name) == getattr(FaultSettings(), switch.name), switch.name
    assert EmulatorConfig(missing_as="null", fail_next={STOP: 2}).fault_settings() == (
        FaultSettings(missing_as="null", fail_next={STOP: 2})
    )


# ---------------------------------------------------------------- failNext


def test_fail_next_refuses_the_next_n_requests_to_one_route_then_counts_down(
    http: httpx.Client, emulator: EmulatorServer
) -> None:
    conv = start(http)
    assert set_faults(http, failNext={STOP: 2})["failNext"] == {STOP: 2}
    stop = f"/v3/conversations/{conv['id']}/stop"
    first = http.post(stop)
    assert first.status_code == 503
    assert first.json() == {
        "statusCode": 503,
        "message": "Service unavailable (injected by the emulator)",
        "error": "Service Unavailable",
    }
    assert ok(http.get("/_emulator/faults"))["failNext"] == {STOP: 1}
    # Refused before handling: nothing was committed, other routes are untouched.
    assert ok(http.get(f"/v3/conversations/{conv['id']}"))["status"] == "running"
    assert emulator.stats()["openConversations"]["equos"] == 1
    assert http.post(stop).status_code == 503
    assert ok(http.get("/_emulator/faults"))["failNext"] == {}
    assert ok(http.post(stop), 201)["status"] == "ended"  # the retry succeeds
    stats = emulator.stats()
    assert stats["requests"][STOP] == 3 and stats["faults"]["errors"] == 2
    assert stats["openConversations"]["equos"] == 0


def test_fail_next_applies_to_avatarium_routes_in_their_envelope(
    http: httpx.Client, emulator: EmulatorServer
) -> None:
    bearer = {"authorization": f"Bearer {DEFAULT_API_KEY}"}
    cid = ok(http.post("/v1/conversations", json={}, headers=bearer), 201)["data"]["id"]
    set_faults(http, failNext={"POST /v1/conversations/{conversation_id}/end": 1})
    refused = http.post(f"/v1/conversations/{cid}/end", headers=bearer)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "service_unavailable"
    assert emulator.stats()["openConversations"]["avatarium"] == 1
    ok(http.post(f"/v1/conversations/{cid}/end", headers=bearer))
    assert emulator.stats()["openConversations"]["avatarium"] == 0


@pytest.mark.parametrize(
    "value",
    [
        {"GET /v3/nowhere": 1},  # no such route
        {"GET /v3/brains/": 1},
        {"PUT /_uploads/{token}": 1},  # never faulted
        {"post /v3/brains": 1},
        {"/v3/brains": 1},
        {STOP: -1},
        {STOP: 1.5},
        {STOP: True},
        {STOP: 10**7},
        [STOP],
    ],
)
def test_fail_next_is_validated(http: httpx.Client, value: object) -> None:
    refused = http.post("/_emulator/faults", json={"failNext": value})
    assert refused.status_code == 400 and "failNext" in refused.json()["error"]
    assert ok(http.get("/_emulator/faults"))["failNext"] == {}


def test_fail_next_at_start_and_zero_entries(start_emulator: Callable[..., EmulatorServer]) -> None:
    server = start_emulator(fail_next={"GET /v3/health": 1, "GET /v3/brains": 0})
    assert server.faults()["failNext"] == {"GET /v3/health": 1}
    assert httpx.get(f"{server.url}/v3/health").status_code == 503
    assert httpx.get(f"{server.url}/v3/health").status_code == 200
    with pytest.raises(ValueError, match="failNext"):
        start_emulator(fail_next={"GET /v3/nowhere": 1})


# ---------------------------------------------------------------- missingAs


NULLABLE = [
    ("GET", "/v3/faces/x", 200),
    ("DELETE", "/v3/faces/x", 200),
    ("GET", "/v3/voices/x", 200),
    ("PATCH", "/v3/voices/x", 200),
    ("DELETE", "/v3/voices/x", 200),
    ("GET", "/v3/brains/x", 200),
    ("PATCH", "/v3/brains/x", 200),
    ("DELETE", "/v3/brains/x", 200),
    ("GET", "/v3/knowledge-bases/x", 200),
    ("DELETE", "/v3/knowledge-bases/x", 200),
    ("GET", "/v3/characters/x", 200),
    ("PUT", "/v3/characters/x", 200),
    ("DELETE", "/v3/characters/x", 200),
    ("GET", "/v3/conversations/x", 200),
    ("POST", "/v3/conversations/x/stop", 201),  # the SDK declares stop's answer as 201
]


def test_missing_as_null_answers_null_for_every_unknown_id(http: httpx.Client) -> None:
    for method, path, _ in NULLABLE:
        assert http.request(method, path, json={}).status_code == 404, (method, path)
    assert set_faults(http, missingAs="null")["missingAs"] == "null"
    for method, path, status in NULLABLE:
        # Even with an invalid body: the id is checked before the body.
        answer = http.request(method, path, json={"bogus": 1})
        assert (answer.status_code, answer.content) == (status, b"null"), (method, path)
        assert answer.headers["content-type"] == "application/json"
    # Not nullable in the SDK: documents of an unknown knowledge base stay 404s.
    assert http.post("/v3/knowledge-bases/x/documents", json={}).status_code == 404
    assert http.delete("/v3/knowledge-bases/x/documents/d").status_code == 404
    # Known ids are unaffected.
    brain = ok(http.post("/v3/brains", json=BRAIN), 201)
    assert ok(http.get(f"/v3/brains/{brain['id']}")) == brain
    set_faults(http, missingAs="404")
    assert http.get("/v3/brains/x").status_code == 404


def test_missing_as_null_is_what_the_sdk_reads_as_none(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    server = start_emulator(missing_as="null")
    sdk = EquosClient.create(DEFAULT_API_KEY, EquosOptions(endpoint=server.url))
    sdk._client.raise_on_unexpected_status = True  # a 404 would raise here
    try:
        assert sdk.brains.get("brain_gone") is None
        assert sdk.characters.delete("char_gone") is None
        assert sdk.conversations.get("conv_gone") is None
        assert sdk.conversations.stop("conv_gone") is None
    finally:
        sdk._client.get_httpx_client().close()  # the SDK never closes its connections


@pytest.mark.parametrize("value", ["NULL", 404, None, "200"])
def test_missing_as_is_validated(http: httpx.Client, value: object) -> None:
    refused = http.post("/_emulator/faults", json={"missingAs": value})
    assert refused.status_code == 400 and "missingAs" in refused.json()["error"]


# ---------------------------------------------------------------- document status


def test_admin_sets_any_document_status(http: httpx.Client) -> None:
    kb = ok(http.post("/v3/knowledge-bases", json={"name": "k", "description": "d"}), 201)
    added = ok(
        http.post(
            f"/v3/knowledge-bases/{kb['id']}/documents",
            json={"name": "n", "description": "d", "mimeType": "text/plain"},
        ),
        201,
    )
    doc_id = added["document"]["id"]
    character = ok(
        http.post(
            "/v3/characters",
            json={"name": "c", "livekitIdentity": "c", "knowledgeBaseId": kb["id"]},
        ),
        201,
    )
    ok(http.get("/v3/characters"))  # the listed view is now cached
    before = ok(http.get(f"/v3/knowledge-bases/{kb['id']}"))
    for status in ("FAILED", "Indexed", "processing", "quarantined by policy", ""):
        doc = ok(http.post(f"/_emulator/equos/documents/{doc_id}", json={"status": status}))
        assert doc["status"] == status and doc["updatedAt"] > before["updatedAt"]
        now = ok(http.get(f"/v3/knowledge-bases/{kb['id']}"))
        assert [d["status"] for d in now["documents"]] == [status]
        assert now["updatedAt"] == doc["updatedAt"]  # documents[] changed
        listed = ok(http.get("/v3/characters"))["characters"]
        assert listed[0]["knowledgeBase"]["documents"][0]["status"] == status
        assert ok(http.get(f"/v3/characters/{character['id']}")) == listed[0]
    # A status is only a label: indexing still needs uploaded content.
    index = f"/v3/knowledge-bases/{kb['id']}/documents/{doc_id}/index"
    assert http.patch(index).status_code == 400
    assert httpx.put(added["uploadUrl"], content=b"x", trust_env=False).status_code == 200
    ok(http.post(f"/_emulator/equos/documents/{doc_id}", json={"status": "FAILED"}))
    assert ok(http.patch(index))["status"] == "indexed"


@pytest.mark.parametrize(
    "body", [{}, {"status": 3}, {"status": None}, {"status": "x", "size": 1}, ["FAILED"]]
)
def test_admin_document_status_is_validated(http: httpx.Client, body: object) -> None:
    kb = ok(http.post("/v3/knowledge-bases", json={"name": "k", "description": "d"}), 201)
    doc = ok(
        http.post(
            f"/v3/knowledge-bases/{kb['id']}/documents",
            json={"name": "n", "description": "d", "mimeType": "text/plain"},
        ),
        201,
    )["document"]
    refused = http.post(f"/_emulator/equos/documents/{doc['id']}", json=body)
    assert refused.status_code == 400 and refused.json()["error"]
    too_long = http.post(f"/_emulator/equos/documents/{doc['id']}", json={"status": "x" * 201})
    assert too_long.status_code == 400
    unknown = http.post("/_emulator/equos/documents/doc_nope", json={"status": "FAILED"})
    assert unknown.status_code == 404
    assert ok(http.get(f"/v3/knowledge-bases/{kb['id']}"))["documents"] == [doc]


# ---------------------------------------------------------------- stopEndedAs


def test_stop_ended_as_400_refuses_a_second_stop(http: httpx.Client) -> None:
    conv = start(http)
    stop = f"/v3/conversations/{conv['id']}/stop"
    ended = ok(http.post(stop), 201)
    assert ok(http.post(stop), 201) == ended  # the default: harmless
    assert set_faults(http, stopEndedAs=400)["stopEndedAs"] == 400
    refused = http.post(stop)
    assert refused.status_code == 400
    assert refused.json()["message"] == f"Conversation {conv['id']} has already ended"
    assert ok(http.get(f"/v3/conversations/{conv['id']}")) == ended
    # A running conversation still stops normally.
    other = start(http)
    assert ok(http.post(f"/v3/conversations/{other['id']}/stop"), 201)["status"] == "ended"


def test_stop_ended_as_at_start_and_validated(
    start_emulator: Callable[..., EmulatorServer],
) -> None:
    server = start_emulator(stop_ended_as=400)
    with httpx.Client(base_url=server.url, headers=KEY, trust_env=False) as http:
        conv = start(http)
        ok(http.post(f"/v3/conversations/{conv['id']}/stop"), 201)
        assert http.post(f"/v3/conversations/{conv['id']}/stop").status_code == 400
        for value in (200, "400", None, True):
            assert http.post("/_emulator/faults", json={"stopEndedAs": value}).status_code == 400
    with pytest.raises(ValueError, match="stopEndedAs"):
        EmulatorConfig(stop_ended_as=404)
