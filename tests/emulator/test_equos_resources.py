"""Equos v3 resources on the emulator, over real loopback HTTP: faces, voices, brains,
knowledge bases with documents, characters; wire format, errors, paging, updatedAt."""

from __future__ import annotations

import re
import socket
import time
from typing import Any

import httpx
import pytest

from avatarsync.emulator import EmulatorServer

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
BRAIN = {"instructions": "Help {{ customer_name }}.", "greetingMessage": "Hi!"}


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def bad(response: httpx.Response, status: int = 400) -> str:
    """Assert a NestJS-style error and return its message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"statusCode", "message", "error"}
    assert body["statusCode"] == status
    assert body["error"] == httpx.codes.get_reason_phrase(status)
    return body["message"]


def make_character(http: httpx.Client, **extra: Any) -> dict[str, Any]:
    face = ok(http.post("/v3/faces", json={"identity": "tommy"}), 201)
    voice = ok(http.post("/v3/voices", json={"identity": "Puck", "instructions": "warm"}), 201)
    brain = ok(http.post("/v3/brains", json=BRAIN), 201)
    kb = ok(http.post("/v3/knowledge-bases", json={"name": "faq", "description": "d"}), 201)
    body = {
        "name": "Tommy",
        "livekitIdentity": "tommy",
        "faceId": face["id"],
        "voiceId": voice["id"],
        "brainId": brain["id"],
        "knowledgeBaseId": kb["id"],
        **extra,
    }
    return ok(http.post("/v3/characters", json=body), 201)


# ---------------------------------------------------------------- leaves


def test_face_lifecycle_and_no_update(equos_http: httpx.Client) -> None:
    face = ok(equos_http.post("/v3/faces", json={"identity": "tommy", "client": "acme"}), 201)
    assert face["identity"] == "tommy"
    assert face["client"] == "acme"
    assert face["organizationId"]
    assert ISO_MS.match(face["createdAt"]) and face["createdAt"] == face["updatedAt"]
    assert face["thumbnailUrl"] and face["referenceImgUrl"]
    assert ok(equos_http.get(f"/v3/faces/{face['id']}")) == face
    assert ok(equos_http.get("/v3/faces"))["faces"] == [face]
    # Faces cannot be updated: NestJS answers an unrouted method with 404.
    assert "Cannot PATCH" in bad(equos_http.patch(f"/v3/faces/{face['id']}", json={}), 404)
    assert "Cannot PUT" in bad(equos_http.put(f"/v3/faces/{face['id']}", json={}), 404)
    assert ok(equos_http.delete(f"/v3/faces/{face['id']}")) == face
    bad(equos_http.get(f"/v3/faces/{face['id']}"), 404)


def test_voice_patch_changes_fields_and_updated_at(equos_http: httpx.Client) -> None:
    voice = ok(equos_http.post("/v3/voices", json={"identity": "Puck"}), 201)
    assert voice["instructions"] is None
    assert voice["client"] is None
    patched = ok(
        equos_http.patch(
            f"/v3/voices/{voice['id']}", json={"identity": "Kore", "instructions": "slow"}
        )
    )
    assert (patched["identity"], patched["instructions"]) == ("Kore", "slow")
    assert patched["createdAt"] == voice["createdAt"]
    assert patched["updatedAt"] > voice["updatedAt"]
    assert ok(equos_http.get(f"/v3/voices/{voice['id']}")) == patched
    assert ok(equos_http.delete(f"/v3/voices/{voice['id']}"))["id"] == voice["id"]


def test_brain_patch_and_delete(equos_http: httpx.Client) -> None:
    brain = ok(equos_http.post("/v3/brains", json={**BRAIN, "client": "acme"}), 201)
    assert brain["greetingMessage"] == "Hi!"
    assert "name" not in brain  # a brain has no name
    patched = ok(
        equos_http.patch(
            f"/v3/brains/{brain['id']}", json={"instructions": "New", "greetingMessage": "Yo"}
        )
    )
    assert (patched["instructions"], patched["greetingMessage"]) == ("New", "Yo")
    assert patched["client"] == "acme"  # absent from the PATCH: kept
    assert ok(equos_http.delete(f"/v3/brains/{brain['id']}")) == patched
    assert ok(equos_http.get("/v3/brains"))["total"] == 0


@pytest.mark.parametrize(
    ("method", "path", "body", "fragment"),
    [
        ("POST", "/v3/faces", {"identity": "alice"}, "identity must be one of the following values: tommy"),
        ("POST", "/v3/faces", {}, "identity should not be empty"),
        ("POST", "/v3/voices", {"identity": "Bob"}, "identity must be one of the following values"),
        ("POST", "/v3/voices", {"identity": "Puck", "instructions": 3}, "instructions must be a string"),
        ("POST", "/v3/brains", {"instructions": "x"}, "greetingMessage should not be empty"),
        ("POST", "/v3/brains", {**BRAIN, "name": "b"}, "property name should not exist"),
        ("POST", "/v3/brains", {**BRAIN, "client": 5}, "client must be a string"),
        ("POST", "/v3/brains", [1, 2], "body must be an object"),
        ("POST", "/v3/knowledge-bases", {"name": "n"}, "description should not be empty"),
        ("POST", "/v3/knowledge-bases", {"name": "n", "description": "d", "client": None}, "client must be a string"),
        ("POST", "/v3/characters", {"name": "x"}, "livekitIdentity should not be empty"),
        ("POST", "/v3/characters", {"name": "x", "livekitIdentity": "x", "search": "yes"}, "search must be a boolean value"),
        ("POST", "/v3/characters", {"name": "x", "livekitIdentity": "x", "brainId": "brain_nope"}, "brainId references Brain brain_nope, which does not exist"),
    ],
)  # fmt: skip
def test_invalid_bodies_are_400(
    equos_http: httpx.Client, method: str, path: str, body: object, fragment: str
) -> None:
    assert fragment in bad(equos_http.request(method, path, json=body))


def test_invalid_json_is_400(equos_http: httpx.Client) -> None:
    response = equos_http.post(
        "/v3/brains", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert "not valid JSON" in bad(response)


def test_patch_takes_the_create_body(equos_http: httpx.Client) -> None:
    """The SDK's update calls send the create models: required fields stay required."""
    voice = ok(equos_http.post("/v3/voices", json={"identity": "Puck"}), 201)
    message = bad(equos_http.patch(f"/v3/voices/{voice['id']}", json={"instructions": "x"}))
    assert "identity should not be empty" in message
    assert ok(equos_http.get(f"/v3/voices/{voice['id']}")) == voice  # nothing written


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v3/faces/face_missing"),
        ("DELETE", "/v3/faces/face_missing"),
        ("GET", "/v3/voices/v"),
        ("PATCH", "/v3/voices/v"),
        ("DELETE", "/v3/voices/v"),
        ("GET", "/v3/brains/b"),
        ("PATCH", "/v3/brains/b"),
        ("DELETE", "/v3/brains/b"),
        ("GET", "/v3/knowledge-bases/k"),
        ("DELETE", "/v3/knowledge-bases/k"),
        ("POST", "/v3/knowledge-bases/k/documents"),
        ("GET", "/v3/characters/c"),
        ("PUT", "/v3/characters/c"),
        ("DELETE", "/v3/characters/c"),
        ("GET", "/v3/conversations/c"),
        ("POST", "/v3/conversations/c/stop"),
    ],
)
def test_unknown_ids_are_404(equos_http: httpx.Client, method: str, path: str) -> None:
    assert "not found" in bad(equos_http.request(method, path, json={}), 404)


# ---------------------------------------------------------------- auth


@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"authorization": "Bearer x"}])
def test_missing_or_wrong_key_is_401(emulator: EmulatorServer, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=emulator.url, headers=headers) as http:
        for method, path in [("GET", "/v3/brains"), ("POST", "/v3/brains"), ("GET", "/v3/faces/x")]:
            bad(http.request(method, path, json=BRAIN), 401)
        assert http.get("/v3/health").status_code == 200  # health is public
    assert emulator.stats()["requests"]["POST /v3/brains"] == 1


def test_several_keys_are_accepted(start_emulator: Any) -> None:
    server = start_emulator(api_keys=("k1", "k2"))
    for key, status in [("k1", 200), ("k2", 200), ("local-emulator-key", 401)]:
        assert httpx.get(f"{server.url}/v3/faces", headers={"x-api-key": key}).status_code == status


# ---------------------------------------------------------------- lists


def test_pagination_order_and_client_filter(equos_http: httpx.Client) -> None:
    made = [
        ok(equos_http.post("/v3/brains", json={**BRAIN, "client": "a" if i % 3 else "b"}), 201)
        for i in range(10)
    ]
    pages = [ok(equos_http.get("/v3/brains", params={"take": 3, "skip": s})) for s in (0, 3, 6, 9)]
    assert [(p["skip"], p["take"], p["total"]) for p in pages] == [
        (0, 3, 10),
        (3, 3, 10),
        (6, 3, 10),
        (9, 3, 10),
    ]
    assert [b["id"] for p in pages for b in p["brains"]] == [b["id"] for b in made]
    default = ok(equos_http.get("/v3/brains"))
    assert (default["skip"], default["take"], len(default["brains"])) == (0, 20, 10)
    only_a = ok(equos_http.get("/v3/brains", params={"client": "a"}))
    assert only_a["total"] == 6
    assert {b["client"] for b in only_a["brains"]} == {"a"}
    assert ok(equos_http.get("/v3/brains", params={"client": "zzz"}))["brains"] == []
    # The SDK sends floats ("20.0"); the API takes them.
    assert (
        len(ok(equos_http.get("/v3/brains", params={"take": "2.0", "skip": "1.0"}))["brains"]) == 2
    )
    empty = ok(equos_http.get("/v3/brains", params={"take": 0}))
    assert (empty["brains"], empty["total"]) == ([], 10)
    assert len(ok(equos_http.get("/v3/brains", params={"take": 50}))["brains"]) == 10


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"take": 51}, "take must not be greater than 50"),
        ({"take": -1}, "take must not be less than 0"),
        ({"skip": -1}, "skip must not be less than 0"),
        ({"take": "abc"}, "take must be a number"),
        ({"take": "1.5"}, "take must be an integer"),
    ],
)
def test_bad_paging_is_400(equos_http: httpx.Client, params: dict[str, Any], fragment: str) -> None:
    for path in ("/v3/faces", "/v3/characters", "/v3/knowledge-bases", "/v3/conversations"):
        assert fragment in bad(equos_http.get(path, params=params))


def test_every_list_has_its_envelope_key(equos_http: httpx.Client) -> None:
    make_character(equos_http)
    for path, key in [
        ("/v3/faces", "faces"),
        ("/v3/voices", "voices"),
        ("/v3/brains", "brains"),
        ("/v3/knowledge-bases", "items"),  # the API's quirk
        ("/v3/characters", "characters"),
        ("/v3/conversations", "conversations"),
    ]:
        body = ok(equos_http.get(path))
        assert set(body) == {"skip", "take", "total", key}, path


def test_updated_at_strictly_increases_on_every_write(equos_http: httpx.Client) -> None:
    brain = ok(equos_http.post("/v3/brains", json=BRAIN), 201)
    stamps = [brain["updatedAt"]]
    for _ in range(15):  # same body, same millisecond: still a new updatedAt
        stamps.append(ok(equos_http.patch(f"/v3/brains/{brain['id']}", json=BRAIN))["updatedAt"])
    assert all(ISO_MS.match(s) for s in stamps)
    assert stamps == sorted(set(stamps)) and len(set(stamps)) == len(stamps)
    character = make_character(equos_http)
    again = ok(equos_http.put(f"/v3/characters/{character['id']}", json={}))
    assert again["updatedAt"] > character["updatedAt"]


# ---------------------------------------------------------------- knowledge bases


def test_knowledge_base_documents_upload_index_delete(equos_http: httpx.Client) -> None:
    kb = ok(equos_http.post("/v3/knowledge-bases", json={"name": "faq", "description": "d"}), 201)
    assert kb["documents"] == []
    assert "client" not in kb  # non-nullable in the SDK: absent when unset
    added = ok(
        equos_http.post(
            f"/v3/knowledge-bases/{kb['id']}/documents",
            json={"name": "faq.md", "description": "answers", "mimeType": "text/markdown"},
        ),
        201,
    )
    assert set(added) == {"document", "uploadUrl", "expireAt"}
    doc = added["document"]
    assert (doc["knowledgeBaseId"], doc["size"], doc["status"]) == (kb["id"], 0, "pending")
    assert ISO_MS.match(added["expireAt"]) and added["expireAt"] > doc["createdAt"]
    assert added["uploadUrl"].startswith(str(equos_http.base_url).rstrip("/") + "/_uploads/")

    index_path = f"/v3/knowledge-bases/{kb['id']}/documents/{doc['id']}/index"
    assert "no uploaded content" in bad(equos_http.patch(index_path))

    content = b"# FAQ\nQ: hours? A: 9-5\n"
    # The upload URL is presigned-style: no API key.
    uploaded = httpx.put(added["uploadUrl"], content=content)
    assert uploaded.status_code == 200, uploaded.text
    listed = ok(equos_http.get(f"/v3/knowledge-bases/{kb['id']}"))["documents"]
    assert [(d["id"], d["size"], d["status"]) for d in listed] == [
        (doc["id"], len(content), "uploaded")
    ]

    indexed = ok(equos_http.patch(index_path))
    assert indexed["status"] == "indexed"
    assert indexed["updatedAt"] > listed[0]["updatedAt"]
    kb_now = ok(equos_http.get(f"/v3/knowledge-bases/{kb['id']}"))
    assert kb_now["documents"] == [indexed]
    assert kb_now["updatedAt"] > kb["updatedAt"]  # documents[] changed

    assert ok(equos_http.delete(f"/v3/knowledge-bases/{kb['id']}/documents/{doc['id']}")) == indexed
    assert ok(equos_http.get(f"/v3/knowledge-bases/{kb['id']}"))["documents"] == []
    assert httpx.put(added["uploadUrl"], content=b"late").status_code == 404


def test_documents_are_scoped_to_their_knowledge_base(equos_http: httpx.Client) -> None:
    kb1 = ok(equos_http.post("/v3/knowledge-bases", json={"name": "a", "description": "d"}), 201)
    kb2 = ok(equos_http.post("/v3/knowledge-bases", json={"name": "b", "description": "d"}), 201)
    doc = ok(
        equos_http.post(
            f"/v3/knowledge-bases/{kb1['id']}/documents",
            json={"name": "x", "description": "y", "mimeType": "text/plain"},
        ),
        201,
    )["document"]
    bad(equos_http.delete(f"/v3/knowledge-bases/{kb2['id']}/documents/{doc['id']}"), 404)
    bad(equos_http.patch(f"/v3/knowledge-bases/{kb2['id']}/documents/{doc['id']}/index"), 404)
    assert "mimeType should not be empty" in bad(
        equos_http.post(
            f"/v3/knowledge-bases/{kb1['id']}/documents", json={"name": "x", "description": "y"}
        )
    )
    assert equos_http.put("/_uploads/not-a-token", content=b"x").status_code == 404
    # Deleting the knowledge base takes its documents along.
    ok(equos_http.delete(f"/v3/knowledge-bases/{kb1['id']}"))
    bad(equos_http.get(f"/v3/knowledge-bases/{kb1['id']}"), 404)


def test_knowledge_base_list_filters_on_client(equos_http: httpx.Client) -> None:
    ok(
        equos_http.post(
            "/v3/knowledge-bases", json={"name": "a", "description": "d", "client": "acme"}
        ),
        201,
    )
    ok(equos_http.post("/v3/knowledge-bases", json={"name": "b", "description": "d"}), 201)
    page = ok(equos_http.get("/v3/knowledge-bases", params={"client": "acme"}))
    assert [(kb["name"], kb["client"]) for kb in page["items"]] == [("a", "acme")]
    assert page["total"] == 1


# ---------------------------------------------------------------- characters


def test_character_links_are_expanded_everywhere(equos_http: httpx.Client) -> None:
    character = make_character(equos_http, client="acme", search=True)
    assert character["search"] is True
    assert character["elevenlabsAgentId"] is None
    for field in ("face", "voice", "brain", "knowledgeBase"):
        assert character[field]["id"] == character[f"{field}Id"]
    assert character["knowledgeBase"]["documents"] == []
    assert ok(equos_http.get(f"/v3/characters/{character['id']}")) == character
    assert ok(equos_http.get("/v3/characters", params={"client": "acme"}))["characters"] == [
        character
    ]


def test_character_defaults(equos_http: httpx.Client) -> None:
    bare = ok(equos_http.post("/v3/characters", json={"name": "B", "livekitIdentity": "b"}), 201)
    assert bare["search"] is False
    assert [bare[f] for f in ("face", "voice", "brain", "knowledgeBase")] == [None] * 4
    assert [bare[f] for f in ("faceId", "voiceId", "brainId", "knowledgeBaseId", "client")] == [
        None
    ] * 5


def test_character_put_updates_relinks_and_unlinks(equos_http: httpx.Client) -> None:
    character = make_character(equos_http)
    brain2 = ok(equos_http.post("/v3/brains", json={**BRAIN, "greetingMessage": "Hey"}), 201)
    updated = ok(
        equos_http.put(
            f"/v3/characters/{character['id']}",
            json={"name": "Tom", "brainId": brain2["id"], "knowledgeBaseId": None, "search": True},
        )
    )
    assert updated["name"] == "Tom"
    assert updated["brain"]["greetingMessage"] == "Hey"
    assert (updated["knowledgeBaseId"], updated["knowledgeBase"]) == (None, None)
    assert updated["faceId"] == character["faceId"]  # untouched
    assert updated["livekitIdentity"] == "tommy"
    assert ok(equos_http.get(f"/v3/characters/{character['id']}")) == updated


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"livekitIdentity": "other"}, "property livekitIdentity should not exist"),
        ({"client": "other"}, "property client should not exist"),
        ({"voiceId": "voice_nope"}, "voiceId references Voice voice_nope, which does not exist"),
        ({"name": None}, "name must be a string"),
    ],
)
def test_character_put_refusals(
    equos_http: httpx.Client, body: dict[str, Any], fragment: str
) -> None:
    character = make_character(equos_http)
    assert fragment in bad(equos_http.put(f"/v3/characters/{character['id']}", json=body))
    assert ok(equos_http.get(f"/v3/characters/{character['id']}")) == character


def test_deleting_a_linked_leaf_names_the_character(equos_http: httpx.Client) -> None:
    character = make_character(equos_http)
    for field, path in [
        ("faceId", "faces"),
        ("voiceId", "voices"),
        ("brainId", "brains"),
        ("knowledgeBaseId", "knowledge-bases"),
    ]:
        message = bad(equos_http.delete(f"/v3/{path}/{character[field]}"))
        assert character["id"] in message and "Tommy" in message
        ok(equos_http.get(f"/v3/{path}/{character[field]}"))  # still there
    deleted = ok(equos_http.delete(f"/v3/characters/{character['id']}"))
    assert deleted == character
    for field, path in [
        ("faceId", "faces"),
        ("brainId", "brains"),
        ("knowledgeBaseId", "knowledge-bases"),
    ]:
        ok(equos_http.delete(f"/v3/{path}/{character[field]}"))


def test_a_slow_body_cannot_interleave_with_other_writes(
    equos_http: httpx.Client, emulator: EmulatorServer, api_key: str
) -> None:
    """A handler sees the database as of when its whole body arrived: a character
    deleted while a PUT's body is still on the wire is not resurrected or updated."""
    character = make_character(equos_http)
    body = b'{"name": "too late"}'
    with socket.create_connection((equos_http.base_url.host, equos_http.base_url.port)) as sock:
        sock.sendall(
            f"PUT /v3/characters/{character['id']} HTTP/1.1\r\nHost: x\r\nx-api-key: {api_key}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode()
            + body[:5]
        )
        time.sleep(0.1)  # the PUT is now waiting for the rest of its body
        ok(equos_http.delete(f"/v3/characters/{character['id']}"))
        sock.sendall(body[5:])
        answer = sock.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 404"), answer
    assert equos_http.get("/v3/characters").json()["total"] == 0
