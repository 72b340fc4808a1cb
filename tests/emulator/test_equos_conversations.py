"""Equos v3 conversations, tokens, health and usage on the emulator, over loopback HTTP."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from avatarsync.emulator import EmulatorServer

BRAIN = {"instructions": "Help {{ customer_name }}.", "greetingMessage": "Hi!"}


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def bad(response: httpx.Response, status: int = 400) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["statusCode"] == status
    return body["message"]


@pytest.fixture
def character(equos_http: httpx.Client) -> dict[str, Any]:
    brain = ok(equos_http.post("/v3/brains", json=BRAIN), 201)
    return ok(
        equos_http.post(
            "/v3/characters",
            json={"name": "Tommy", "livekitIdentity": "tommy", "brainId": brain["id"]},
        ),
        201,
    )


def start(http: httpx.Client, character_id: str, **extra: Any) -> dict[str, Any]:
    return ok(
        http.post("/v3/conversations", json={"name": "s", "characterId": character_id, **extra}),
        201,
    )


def test_start_get_list_stop(
    equos_http: httpx.Client, emulator: EmulatorServer, character: dict[str, Any]
) -> None:
    answer = start(
        equos_http,
        character["id"],
        client="acme",
        maxSeconds=600,
        promptCtx="ctx",
        promptTemplateVars={"customer_name": "Ada", "plan": "pro"},
        consumer={"identity": "u1", "name": "Ada"},
        remoteAgent={"identity": "a1", "name": "Agent"},
    )
    conv = answer["conversation"]
    assert conv["status"] == "running"
    assert conv["promptTemplateVars"] == {"customer_name": "Ada", "plan": "pro"}
    assert (conv["promptCtx"], conv["client"], conv["maxSeconds"]) == ("ctx", "acme", 600)
    assert (conv["consumerIdentity"], conv["remoteAgentName"]) == ("u1", "Agent")
    assert conv["character"]["id"] == character["id"]
    assert conv["character"]["brain"]["id"] == character["brainId"]
    assert conv["endedAt"] is None and conv["startedAt"] == conv["createdAt"]
    assert answer["consumerAccessToken"] and answer["remoteAgentAccessToken"]
    assert emulator.stats()["openConversations"]["equos"] == 1

    fetched = ok(equos_http.get(f"/v3/conversations/{conv['id']}"))
    assert "character" not in fetched
    assert fetched == {k: v for k, v in conv.items() if k != "character"}
    listed = ok(equos_http.get("/v3/conversations", params={"client": "acme"}))
    assert [c["id"] for c in listed["conversations"]] == [conv["id"]]

    stopped = equos_http.post(f"/v3/conversations/{conv['id']}/stop")
    assert stopped.status_code == 201  # a create-style answer, as on the API
    ended = stopped.json()
    assert ended["status"] == "ended"
    assert ended["endedAt"] and ended["updatedAt"] > conv["updatedAt"]
    assert emulator.stats()["openConversations"]["equos"] == 0
    assert ok(equos_http.get(f"/v3/conversations/{conv['id']}")) == ended
    # Stopping twice is harmless and changes nothing.
    assert ok(equos_http.post(f"/v3/conversations/{conv['id']}/stop"), 201) == ended


def test_without_participants_there_are_no_access_tokens(
    equos_http: httpx.Client, character: dict[str, Any]
) -> None:
    answer = start(equos_http, character["id"])
    assert answer["consumerAccessToken"] is None and answer["remoteAgentAccessToken"] is None
    assert answer["conversation"]["maxSeconds"] > 0  # a default applies
    assert answer["conversation"]["promptTemplateVars"] is None


def test_a_conversation_past_max_seconds_reads_as_ended(
    equos_http: httpx.Client, emulator: EmulatorServer, character: dict[str, Any]
) -> None:
    conv = start(equos_http, character["id"], maxSeconds=0.6)["conversation"]
    assert ok(equos_http.get(f"/v3/conversations/{conv['id']}"))["status"] == "running"
    assert emulator.stats()["openConversations"]["equos"] == 1
    time.sleep(0.7)
    expired = ok(equos_http.get(f"/v3/conversations/{conv['id']}"))
    assert expired["status"] == "ended"
    assert expired["endedAt"] > conv["startedAt"]
    assert ok(equos_http.get("/v3/conversations"))["conversations"][0]["status"] == "ended"
    assert emulator.stats()["openConversations"]["equos"] == 0
    stopped = ok(equos_http.post(f"/v3/conversations/{conv['id']}/stop"), 201)
    assert stopped["endedAt"] == expired["endedAt"]  # it ended on its own, earlier


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"name": "s"}, "characterId should not be empty"),
        ({"characterId": "char_x"}, "name should not be empty"),
        ({"name": "s", "characterId": "char_missing"}, "which does not exist"),
        ({"name": "s", "characterId": "@", "promptTemplateVars": {"a": 1}}, "promptTemplateVars.a must be a string"),
        ({"name": "s", "characterId": "@", "promptTemplateVars": ["a"]}, "promptTemplateVars must be an object"),
        ({"name": "s", "characterId": "@", "maxSeconds": "60"}, "maxSeconds must be a number"),
        ({"name": "s", "characterId": "@", "maxSeconds": 0}, "maxSeconds must be a positive number"),
        ({"name": "s", "characterId": "@", "consumer": {"identity": "u"}}, "consumer.name should not be empty"),
        ({"name": "s", "characterId": "@", "host": {"serverUrl": "wss://x", "accessToken": 1}}, "host.accessToken must be a string"),
    ],
)  # fmt: skip
def test_start_validation(
    equos_http: httpx.Client, character: dict[str, Any], body: dict[str, Any], fragment: str
) -> None:
    if body.get("characterId") == "@":
        body = {**body, "characterId": character["id"]}
    assert fragment in bad(equos_http.post("/v3/conversations", json=body))
    assert ok(equos_http.get("/v3/conversations"))["total"] == 0


def test_conversation_paging(equos_http: httpx.Client, character: dict[str, Any]) -> None:
    ids = [start(equos_http, character["id"])["conversation"]["id"] for _ in range(5)]
    first = ok(equos_http.get("/v3/conversations", params={"take": 2}))
    rest = ok(equos_http.get("/v3/conversations", params={"take": 50, "skip": 2}))
    assert first["total"] == rest["total"] == 5
    assert [c["id"] for c in first["conversations"] + rest["conversations"]] == ids


def test_tokens(equos_http: httpx.Client, character: dict[str, Any]) -> None:
    token = ok(
        equos_http.post(
            "/v3/tokens", json={"user": "u1", "client": "acme", "character": character["id"]}
        ),
        201,
    )
    assert set(token) == {"token"} and isinstance(token["token"], str) and token["token"]
    assert "user should not be empty" in bad(equos_http.post("/v3/tokens", json={}))
    assert "which does not exist" in bad(
        equos_http.post("/v3/tokens", json={"user": "u", "character": "char_nope"})
    )


def test_health_needs_no_key(emulator: EmulatorServer) -> None:
    health = httpx.get(f"{emulator.url}/v3/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["version"]
    assert health.headers["x-request-id"].startswith("req_")


def test_usage_endpoints(equos_http: httpx.Client, character: dict[str, Any]) -> None:
    assert ok(equos_http.get("/v3/organizations/freemium-usage")) == 0
    conv = start(equos_http, character["id"], client="acme")["conversation"]
    time.sleep(0.05)
    ok(equos_http.post(f"/v3/conversations/{conv['id']}/stop"), 201)
    used = ok(equos_http.get("/v3/organizations/freemium-usage"))
    assert isinstance(used, float | int) and 0.04 <= used < 5
    per_client = ok(equos_http.get("/v3/organizations/user-usage"))["secondsByClient"]
    assert per_client["acme"] == used
    assert (
        equos_http.get("/v3/organizations/user-usage", headers={"x-api-key": ""}).status_code == 401
    )
