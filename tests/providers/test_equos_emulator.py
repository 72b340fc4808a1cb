"""The clients against the real emulator over loopback HTTP (no mocked transport).

The `emulator` fixture (tests/conftest.py) gives a fresh server per test;
its stats and fault switches let these tests see what crossed the wire.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from avatarsync.emulator import DEFAULT_API_KEY, EmulatorServer
from avatarsync.errors import AmbiguousWriteError, BadRequestError, NotFoundError
from avatarsync.providers import AvatariumClient, EquosClient, RetryPolicy
from avatarsync.resources import Kind
from avatarsync.secret import Secret

pytestmark = pytest.mark.anyio


class RecordingSleep:
    """Really waits (the emulator's clock is real) but records each delay."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(delay)


@pytest.fixture
async def equos(emulator: EmulatorServer, api_key: str) -> AsyncIterator[EquosClient]:
    # Backoff for injected 5xx is shortened; Retry-After still rules 429s.
    retry = RetryPolicy(max_attempts=8, backoff_base=0.005, backoff_cap=0.02)
    async with EquosClient(emulator.url, Secret(api_key), retry=retry, timeout=10) as client:
        yield client


async def test_full_crud_of_every_kind(equos: EquosClient) -> None:
    face = await equos.create(Kind.FACE, {"identity": "tommy", "client": "acme"})
    voice = await equos.create(
        Kind.VOICE, {"identity": "Puck", "instructions": "warm", "client": "acme"}
    )
    brain = await equos.create(
        Kind.BRAIN, {"instructions": "Help.", "greetingMessage": "Hi!", "client": "acme"}
    )
    kb = await equos.create(
        Kind.KNOWLEDGE_BASE, {"name": "faq", "description": "FAQ", "client": "acme"}
    )
    character = await equos.create(
        Kind.CHARACTER,
        {
            "name": "Tommy",
            "livekitIdentity": "tommy",
            "client": "acme",
            "faceId": face["id"],
            "voiceId": voice["id"],
            "brainId": brain["id"],
            "knowledgeBaseId": kb["id"],
        },
    )
    assert (await equos.get(Kind.CHARACTER, character["id"]))["brain"]["id"] == brain["id"]
    assert (await equos.get(Kind.FACE, face["id"]))["identity"] == "tommy"

    # PATCH takes the create body (the SDK reuses the create request models).
    voice_update = {"identity": "Puck", "instructions": "calm"}
    assert (await equos.update(Kind.VOICE, voice["id"], voice_update))["instructions"] == "calm"
    brain_update = {"instructions": "Help.", "greetingMessage": "Hello!"}
    assert (await equos.update(Kind.BRAIN, brain["id"], brain_update))[
        "greetingMessage"
    ] == "Hello!"
    assert (await equos.update(Kind.CHARACTER, character["id"], {"search": True}))["search"] is True
    with pytest.raises(ValueError):
        await equos.update(Kind.FACE, face["id"], {"identity": "tommy"})
    with pytest.raises(BadRequestError):  # the server's validation comes back typed
        await equos.create(Kind.VOICE, {"identity": "Nobody"})

    for kind, created in [
        (Kind.CHARACTER, character),
        (Kind.KNOWLEDGE_BASE, kb),
        (Kind.BRAIN, brain),
        (Kind.VOICE, voice),
        (Kind.FACE, face),
    ]:
        assert [item["id"] for item in await equos.list_all(kind, client="acme")] == [created["id"]]
        assert (await equos.delete(kind, created["id"]))["id"] == created["id"]
        with pytest.raises(NotFoundError):
            await equos.get(kind, created["id"])
        assert await equos.list_all(kind) == []


async def test_list_all_pages_concurrently_and_filters_by_client(
    equos: EquosClient, emulator: EmulatorServer
) -> None:
    bodies = [
        {"instructions": f"b{n}", "greetingMessage": "hi", "client": "acme" if n % 4 else "other"}
        for n in range(180)
    ]
    created = await asyncio.gather(*(equos.create(Kind.BRAIN, b) for b in bodies))
    mine = [b["id"] for b in created if b["client"] == "acme"]  # 135: three pages
    emulator.reset_stats()
    emulator.set_faults(latency_ms=100)
    equos.reset_counts()

    everything = await equos.list_all(Kind.BRAIN)
    assert sorted(b["id"] for b in everything) == sorted(b["id"] for b in created)
    assert len({b["id"] for b in everything}) == 180
    assert equos.request_counts == {"GET /v3/brains": 4}
    # Pages 2..4 went out together (3 on an idle machine; > 1 proves overlap).
    assert emulator.stats()["peakInFlight"] >= 2

    acme = await equos.list_all(Kind.BRAIN, client="acme")
    assert sorted(b["id"] for b in acme) == sorted(mine)
    assert emulator.stats()["requests"]["GET /v3/brains"] == 4 + 3


async def test_bounded_concurrency_is_respected_by_the_server_count(
    emulator: EmulatorServer, api_key: str
) -> None:
    async with EquosClient(emulator.url, Secret(api_key), max_concurrency=2) as equos:
        await asyncio.gather(*(equos.create(Kind.FACE, {"identity": "tommy"}) for _ in range(8)))
        emulator.reset_stats()
        emulator.set_faults(latency_ms=50)
        await asyncio.gather(*(equos.list_all(Kind.FACE) for _ in range(6)))
    assert emulator.stats()["peakInFlight"] == 2


async def test_knowledge_base_documents(equos: EquosClient, emulator: EmulatorServer) -> None:
    kb = await equos.create(
        Kind.KNOWLEDGE_BASE, {"name": "faq", "description": "FAQ", "client": "x"}
    )
    added = await equos.add_document(
        kb["id"], name="faq.md", description=None, mime_type="text/markdown"
    )
    assert set(added) >= {"document", "uploadUrl", "expireAt"}
    doc_id = added["document"]["id"]
    await equos.upload_document(added["uploadUrl"], b"# FAQ\nAsk away.", "text/markdown")
    indexed = await equos.index_document(kb["id"], doc_id)
    assert indexed["id"] == doc_id
    documents = (await equos.get(Kind.KNOWLEDGE_BASE, kb["id"]))["documents"]
    assert [d["id"] for d in documents] == [doc_id]
    assert documents[0]["size"] == len(b"# FAQ\nAsk away.")
    assert (await equos.delete_document(kb["id"], doc_id))["id"] == doc_id
    assert (await equos.get(Kind.KNOWLEDGE_BASE, kb["id"]))["documents"] == []
    assert equos.request_counts["PUT {uploadUrl}"] == 1


async def test_conversation_start_and_stop(equos: EquosClient, emulator: EmulatorServer) -> None:
    character = await equos.create(
        Kind.CHARACTER, {"name": "Tommy", "livekitIdentity": "tommy", "client": "acme"}
    )
    started = await equos.start_conversation(
        {
            "name": "smoke",
            "characterId": character["id"],
            "client": "acme",
            "promptTemplateVars": {"customer_name": "Ada"},
        }
    )
    conversation = started["conversation"]
    assert conversation["status"] == "running"
    try:
        listed = await equos.list_conversations(client="acme")
        assert [c["id"] for c in listed] == [conversation["id"]]
    finally:
        stopped = await equos.stop_conversation(conversation["id"])
    assert stopped["status"] == "ended"
    assert (await equos.get_conversation(conversation["id"]))["status"] == "ended"
    token = await equos.create_token({"user": "u1", "client": "acme", "character": character["id"]})
    assert token["token"]
    assert (await equos.health())["status"] == "ok"


async def test_injected_server_errors_are_retried_for_reads(
    equos: EquosClient, emulator: EmulatorServer
) -> None:
    face = await equos.create(Kind.FACE, {"identity": "tommy"})
    emulator.reset_stats()
    emulator.set_faults(error_rate=0.4, seed=3)
    for _ in range(20):
        assert (await equos.get(Kind.FACE, face["id"]))["id"] == face["id"]
    injected = emulator.stats()["faults"]["errors"]
    assert injected > 0
    assert equos.request_counts["GET /v3/faces/{id}"] == 20 + injected


async def test_rate_limit_retry_after_is_honoured_even_for_a_create(
    emulator: EmulatorServer, api_key: str
) -> None:
    sleep = RecordingSleep()
    emulator.set_faults(rate_limit=60)  # a full bucket of 60, then one per second
    async with EquosClient(emulator.url, Secret(api_key)) as other:
        await asyncio.gather(*(other.health() for _ in range(60)))  # someone else drains it
    async with EquosClient(emulator.url, Secret(api_key), sleep=sleep) as equos:
        face = await equos.create(Kind.FACE, {"identity": "tommy"})  # refused once, then 201
        assert sleep.delays and all(0 < d <= 1.0 for d in sleep.delays)
        stats = emulator.stats()
        assert stats["faults"]["rateLimited"] == len(sleep.delays)
        assert equos.request_counts["POST /v3/faces"] == len(sleep.delays) + 1
        emulator.set_faults(rate_limit=None)
        assert [f["id"] for f in await equos.list_all(Kind.FACE)] == [face["id"]]


async def test_dropped_post_is_ambiguous_sent_once_and_committed(
    equos: EquosClient, emulator: EmulatorServer
) -> None:
    emulator.reset_stats()
    emulator.set_faults(drop_after_commit_rate=1.0)
    with pytest.raises(AmbiguousWriteError) as caught:
        await equos.create(Kind.BRAIN, {"instructions": "x", "greetingMessage": "y", "client": "c"})
    assert (caught.value.method, caught.value.path) == ("POST", "/v3/brains")
    assert emulator.stats()["requests"]["POST /v3/brains"] == 1
    assert equos.request_counts["POST /v3/brains"] == 1
    emulator.set_faults(drop_after_commit_rate=0.0)
    brains = await equos.list_all(Kind.BRAIN, client="c")
    assert len(brains) == 1  # it did commit: the apply layer must look it up, not re-create


async def test_dropped_delete_is_retried_and_then_not_found(
    equos: EquosClient, emulator: EmulatorServer
) -> None:
    """A DELETE is retried after a drop; the retry finds it gone (404). The
    apply layer should count NotFoundError on a delete as done."""
    face = await equos.create(Kind.FACE, {"identity": "tommy"})
    # With this seed the emulator drops the first write and answers the second.
    emulator.set_faults(drop_after_commit_rate=0.5, seed=3)
    with pytest.raises(NotFoundError):
        await equos.delete(Kind.FACE, face["id"])
    assert emulator.stats()["faults"]["dropped"] == 1
    assert equos.request_counts["DELETE /v3/faces/{id}"] == 2


# -- Avatarium -----------------------------------------------------------------


@pytest.fixture
async def avatarium(emulator: EmulatorServer, api_key: str) -> AsyncIterator[AvatariumClient]:
    async with AvatariumClient(emulator.url + "/v1", Secret(api_key), timeout=10) as client:
        yield client


async def test_avatarium_conversation_over_rest_and_websocket(
    avatarium: AvatariumClient, emulator: EmulatorServer
) -> None:
    assert (await avatarium.health())["status"] == "ok"
    avatars = await avatarium.list_avatars()
    assert "aria-001" in [a["id"] for a in avatars]
    assert (await avatarium.get_avatar("aria-001"))["id"] == "aria-001"
    with pytest.raises(NotFoundError) as caught:
        await avatarium.get_avatar("nobody-404")
    assert caught.value.code == "avatar_not_found"

    byok = {"provider": "groq", "apiKey": Secret("gsk-e2e-byok-key")}
    conversation = await avatarium.create_conversation(
        "aria-001", "groq", "You are Aria. Answer briefly.", byok
    )
    assert conversation["byokEnabled"] is True
    try:
        reply = await avatarium.send_message(conversation["id"], "Hello over REST")
        assert reply["role"] == "assistant" and reply["content"]
        async with avatarium.open_socket(conversation["wsUrl"]) as socket:
            frames = await socket.ask("Hello over the socket", timeout=10)
        assert frames[-1]["type"] == "stream_end"
        assert frames[-1]["data"]["content"]
        assert "stream_start" in [f["type"] for f in frames]
        messages = (await avatarium.get_conversation(conversation["id"]))["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant"] * 2
    finally:
        assert (await avatarium.end_conversation(conversation["id"])) == {"success": True}
    assert avatarium.request_counts["GET {wsUrl}"] == 1


@pytest.mark.parametrize("missing_as", ["404", "null"])
def test_an_unknown_id_is_gone_whether_the_server_says_404_or_null(start_emulator, missing_as):
    from avatarsync.errors import NotFoundError
    from avatarsync.resources import Kind

    server = start_emulator(missing_as=missing_as)

    async def go() -> None:
        async with EquosClient(server.url, Secret(DEFAULT_API_KEY)) as equos:
            assert await equos.get_resource(Kind.BRAIN, "brain_gone") is None
            await equos.delete_resource(Kind.BRAIN, "brain_gone")  # gone already: done
            await equos.remove_document("kb_gone", "doc_gone")
            with pytest.raises(NotFoundError):
                await equos.update_resource(
                    Kind.BRAIN, "brain_gone", {"instructions": "x", "greetingMessage": "y"}
                )

    asyncio.run(go())


async def test_announced_rate_limits_are_paced_instead_of_hit(
    emulator: EmulatorServer, api_key: str
) -> None:
    sleep = RecordingSleep()
    emulator.set_faults(rate_limit=60)  # a full bucket of 60, then one per second
    async with EquosClient(emulator.url, Secret(api_key), sleep=sleep) as equos:
        await equos.health()  # the answer announces the limit and what remains
        await asyncio.gather(*(equos.health() for _ in range(59 + 3)))
    assert emulator.stats()["faults"]["rateLimited"] == 0  # no 429: the client waited
    assert len(sleep.delays) >= 3 and all(0 < d <= 3.1 for d in sleep.delays)
