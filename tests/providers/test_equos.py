"""EquosClient's URLs, verbs, paging and counting, on httpx.MockTransport."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from avatarsync.errors import ServerError
from avatarsync.resources import Kind

pytestmark = pytest.mark.anyio

KEY = "sk-SENTINEL-123456"  # the key conftest's clients carry


def echo(request: httpx.Request) -> httpx.Response:
    """Answer with what was asked, so tests can see method, path and body."""
    body = json.loads(request.content) if request.content else None
    status = 201 if request.method == "POST" else 200
    return httpx.Response(
        status, json={"method": request.method, "path": request.url.path, "body": body}
    )


@pytest.mark.parametrize(
    ("kind", "path", "update_method"),
    [
        (Kind.VOICE, "/v3/voices", "PATCH"),
        (Kind.BRAIN, "/v3/brains", "PATCH"),
        (Kind.CHARACTER, "/v3/characters", "PUT"),
        (Kind.FACE, "/v3/faces", None),
        (Kind.KNOWLEDGE_BASE, "/v3/knowledge-bases", None),
    ],
)
async def test_crud_urls_and_verbs(make_equos, script, kind, path, update_method) -> None:
    handler = script(echo)
    async with make_equos(handler) as client:
        assert await client.create(kind, {"client": "acme"}) == {
            "method": "POST",
            "path": path,
            "body": {"client": "acme"},
        }
        assert (await client.get(kind, "id 1/x"))["path"] == f"{path}/id 1/x"
        assert (await client.delete(kind, "a1"))["method"] == "DELETE"
        if update_method:
            updated = await client.update(kind, "a1", {"instructions": "calm"})
            assert updated == {
                "method": update_method,
                "path": f"{path}/a1",
                "body": {"instructions": "calm"},
            }
        else:
            with pytest.raises(ValueError, match="cannot update"):
                await client.update(kind, "a1", {"identity": "tommy"})
    # ids are quoted into one path segment, never interpreted as more path
    assert handler.requests[1].url.raw_path == f"{path}/id%201%2Fx".encode()
    assert len(handler.requests) == (4 if update_method else 3)
    for request in handler.requests:
        assert request.headers["x-api-key"] == KEY


async def test_presets_are_not_api_resources(make_equos, script) -> None:
    handler = script(echo)
    async with make_equos(handler) as client:
        with pytest.raises(ValueError):
            await client.list_all(Kind.CONVERSATION_PRESET)
    assert handler.requests == []


def collection(key: str, count: int, *, delay: float = 0.0, dup_every: int = 0):
    """A paged collection of `count` items; reports peak concurrent page requests."""
    stats = {"in_flight": 0, "peak": 0, "skips": []}
    items = [{"id": f"i{n}", "n": n} for n in range(count)]

    async def handler(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        take, skip = int(params["take"]), int(params["skip"])
        stats["skips"].append(skip)
        stats["in_flight"] += 1
        stats["peak"] = max(stats["peak"], stats["in_flight"])
        try:
            await asyncio.sleep(delay)
        finally:
            stats["in_flight"] -= 1
        page = items[skip : skip + take]
        if dup_every and skip:
            page = [items[skip - 1], *page]  # an item shifted between pages
        return httpx.Response(200, json={"skip": skip, "take": take, "total": count, key: page})

    return handler, stats


async def test_list_all_fetches_remaining_pages_concurrently(make_equos) -> None:
    handler, stats = collection("faces", 230, delay=0.02)
    async with make_equos(handler) as client:
        faces = await client.list_all(Kind.FACE)
    assert [f["n"] for f in faces] == list(range(230))
    assert sorted(stats["skips"]) == [0, 50, 100, 150, 200]
    assert stats["skips"][0] == 0  # the first page tells the total
    assert stats["peak"] == 4  # the four remaining pages were in flight together
    assert client.request_counts == {"GET /v3/faces": 5}


async def test_concurrency_is_bounded_by_max_concurrency(make_equos) -> None:
    handler, stats = collection("voices", 300, delay=0.01)
    async with make_equos(handler, max_concurrency=2) as client:
        voices = await client.list_all(Kind.VOICE)
    assert len(voices) == 300
    assert stats["peak"] == 2


async def test_knowledge_bases_list_under_items(make_equos) -> None:
    handler, _ = collection("items", 60)
    async with make_equos(handler) as client:
        assert len(await client.list_all(Kind.KNOWLEDGE_BASE)) == 60


async def test_list_all_deduplicates_items_that_moved_between_pages(make_equos) -> None:
    handler, _ = collection("brains", 120, dup_every=1)
    async with make_equos(handler) as client:
        brains = await client.list_all(Kind.BRAIN)
    assert [b["id"] for b in brains] == [f"i{n}" for n in range(120)]


async def test_list_all_chases_a_growing_total(make_equos) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        skip = int(request.url.params["skip"])
        total = 60 if skip == 0 else 110  # grew while we were paging
        page = [{"id": f"c{n}"} for n in range(skip, min(skip + 50, total))]
        return httpx.Response(200, json={"total": total, "characters": page})

    async with make_equos(handler) as client:
        characters = await client.list_all(Kind.CHARACTER)
    assert len(characters) == 110


async def test_list_all_passes_the_client_filter(make_equos, script) -> None:
    handler = script(httpx.Response(200, json={"total": 0, "characters": [], "conversations": []}))
    async with make_equos(handler) as client:
        assert await client.list_all(Kind.CHARACTER, client="acme") == []
        assert await client.list_conversations() == []
    params = handler.requests[0].url.params
    assert dict(params) == {"take": "50", "skip": "0", "client": "acme"}
    assert "client" not in handler.requests[1].url.params


async def test_malformed_list_answer_is_a_server_error(make_equos, script) -> None:
    handler = script(httpx.Response(200, json={"total": 3, "faces": None}))
    async with make_equos(handler) as client:
        with pytest.raises(ServerError):
            await client.list_all(Kind.FACE)


async def test_documents_and_upload_without_the_api_key(make_equos, script) -> None:
    upload_url = "https://storage.test/bucket/doc?X-Signature=abc"
    added = {
        "document": {"id": "d1", "knowledgeBaseId": "kb1"},
        "uploadUrl": upload_url,
        "expireAt": "2030-01-01T00:00:00Z",
    }
    handler = script(
        httpx.Response(201, json=added),
        httpx.Response(200),
        httpx.Response(200, json={"id": "d1", "status": "indexing"}),
        httpx.Response(200, json={"id": "d1"}),
    )
    async with make_equos(handler) as client:
        result = await client.add_document(
            "kb1", name="faq.md", description=None, mime_type="text/markdown"
        )
        assert result == added
        await client.upload_document(result["uploadUrl"], b"# FAQ", "text/markdown")
        assert (await client.index_document("kb1", "d1"))["status"] == "indexing"
        await client.delete_document("kb1", "d1")
    add, upload, index, delete = handler.requests
    assert json.loads(add.content) == {
        "name": "faq.md",
        "description": "",
        "mimeType": "text/markdown",
    }
    assert str(upload.url) == upload_url and upload.method == "PUT"
    assert upload.content == b"# FAQ" and upload.headers["content-type"] == "text/markdown"
    assert "x-api-key" not in upload.headers
    assert (index.method, index.url.path) == ("PATCH", "/v3/knowledge-bases/kb1/documents/d1/index")
    assert (delete.method, delete.url.path) == ("DELETE", "/v3/knowledge-bases/kb1/documents/d1")
    assert client.request_counts == {
        "POST /v3/knowledge-bases/{id}/documents": 1,
        "PUT {uploadUrl}": 1,
        "PATCH /v3/knowledge-bases/{id}/documents/{doc}/index": 1,
        "DELETE /v3/knowledge-bases/{id}/documents/{doc}": 1,
    }


async def test_conversations_tokens_and_health(make_equos, script) -> None:
    handler = script(echo)
    async with make_equos(handler) as client:
        started = await client.start_conversation({"name": "s", "characterId": "c1"})
        assert (started["method"], started["path"]) == ("POST", "/v3/conversations")
        assert (await client.get_conversation("cv1"))["path"] == "/v3/conversations/cv1"
        assert (await client.stop_conversation("cv1"))["path"] == "/v3/conversations/cv1/stop"
        token = await client.create_token({"user": "u", "client": "acme", "character": "c1"})
        assert token["path"] == "/v3/tokens"
        assert (await client.health())["path"] == "/v3/health"


async def test_request_counts_include_retries_by_template(make_equos, script) -> None:
    handler = script(httpx.Response(502), httpx.Response(200, json={"id": "b1"}))
    async with make_equos(handler) as client:
        await client.get(Kind.BRAIN, "b1")
        await client.get(Kind.BRAIN, "b2")
        assert client.request_counts == {"GET /v3/brains/{id}": 3}
        assert client.total_requests == 3
        client.reset_counts()
        assert client.total_requests == 0
