"""Per-request cost independent of the organisation's size, checked by behaviour and
by the SQL the emulator runs (timings are the benchmarks' business, not tests'):
reads come from the indexed in-memory mirror, every statement a request runs is an
indexed look-up, the mirror survives restarts and failed writes, and the derived
indexes (links, documents, running conversations, client lists) stay exact."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from avatarsync.emulator import DEFAULT_API_KEY, EmulatorServer
from avatarsync.emulator.equos_store import ConversationLedger, EquosStore
from avatarsync.emulator.store import iso_ms

KEY = {"x-api-key": DEFAULT_API_KEY}
BEARER = {"authorization": f"Bearer {DEFAULT_API_KEY}"}
BRAIN = {"instructions": "i", "greetingMessage": "g"}


class SqlTrace:
    """Every statement the emulator's connection runs while `recording`."""

    def __init__(self, server: EmulatorServer) -> None:
        runtime = server._runtime
        assert runtime is not None
        self.conn: sqlite3.Connection = runtime.conn
        self.statements: list[str] = []
        self._lock = threading.Lock()
        self.recording = False
        self.conn.set_trace_callback(self._record)

    def _record(self, sql: str) -> None:
        if self.recording:
            with self._lock:
                self.statements.append(sql)

    def take(self) -> list[str]:
        with self._lock:
            taken, self.statements = self.statements, []
        return taken


@pytest.fixture
def traced(emulator: EmulatorServer) -> Iterator[SqlTrace]:
    trace = SqlTrace(emulator)
    yield trace
    trace.conn.set_trace_callback(None)


@pytest.fixture
def http(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emulator.url, headers=KEY, timeout=10, trust_env=False) as client:
        yield client


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def seed_organisation(http: httpx.Client, n: int = 6, client: str = "acme") -> dict[str, Any]:
    face = ok(http.post("/v3/faces", json={"identity": "tommy"}), 201)
    voice = ok(http.post("/v3/voices", json={"identity": "Puck", "client": client}), 201)
    kb = ok(http.post("/v3/knowledge-bases", json={"name": "k", "description": "d"}), 201)
    added = ok(
        http.post(
            f"/v3/knowledge-bases/{kb['id']}/documents",
            json={"name": "faq", "description": "d", "mimeType": "text/plain"},
        ),
        201,
    )
    assert httpx.put(added["uploadUrl"], content=b"hello", trust_env=False).status_code == 200
    characters = []
    for i in range(n):
        brain = ok(
            http.post("/v3/brains", json={**BRAIN, "client": client if i % 2 else None}), 201
        )
        body = {
            "name": f"C{i}",
            "livekitIdentity": f"c{i}",
            "faceId": face["id"],
            "voiceId": voice["id"],
            "brainId": brain["id"],
            "knowledgeBaseId": kb["id"],
            "client": client if i % 2 else None,
        }
        characters.append(ok(http.post("/v3/characters", json=body), 201))
    return {"face": face, "voice": voice, "kb": kb, "doc": added["document"], "chars": characters}


# ---------------------------------------------------------------- the SQL per request


def test_reads_run_no_sql_at_all(http: httpx.Client, traced: SqlTrace) -> None:
    org = seed_organisation(http)
    traced.recording = True
    for path in ("faces", "voices", "brains", "knowledge-bases", "characters", "conversations"):
        ok(http.get(f"/v3/{path}", params={"take": 2, "skip": 1}))
        ok(http.get(f"/v3/{path}", params={"client": "acme"}))
    ok(http.get(f"/v3/characters/{org['chars'][0]['id']}"))
    ok(http.get(f"/v3/knowledge-bases/{org['kb']['id']}"))
    ok(http.get("/v3/organizations/freemium-usage"))
    ok(http.get("/v3/organizations/user-usage"))
    ok(http.get("/_emulator/stats"))
    assert traced.take() == []


def test_every_statement_of_every_request_is_an_indexed_lookup(
    http: httpx.Client, traced: SqlTrace, emulator: EmulatorServer
) -> None:
    traced.recording = True
    org = seed_organisation(http)
    first = org["chars"][0]
    ok(http.put(f"/v3/characters/{first['id']}", json={"name": "renamed", "brainId": None}))
    ok(http.patch(f"/v3/brains/{first['brainId']}", json={**BRAIN, "client": "other"}))
    assert http.delete(f"/v3/faces/{org['face']['id']}").status_code == 400  # still linked
    ok(http.delete(f"/v3/brains/{first['brainId']}"))
    doc_path = f"/v3/knowledge-bases/{org['kb']['id']}/documents/{org['doc']['id']}"
    ok(http.patch(f"{doc_path}/index"))
    ok(http.delete(doc_path))
    conv = ok(http.post("/v3/conversations", json={"name": "s", "characterId": first["id"]}), 201)[
        "conversation"
    ]
    ok(http.post(f"/v3/conversations/{conv['id']}/stop"), 201)
    for character in org["chars"]:
        ok(http.delete(f"/v3/characters/{character['id']}"))
    ok(http.delete(f"/v3/knowledge-bases/{org['kb']['id']}"))
    with httpx.Client(base_url=emulator.url, headers=BEARER, trust_env=False) as avatarium:
        cid = ok(avatarium.post("/v1/conversations", json={}), 201)["data"]["id"]
        ok(avatarium.post(f"/v1/conversations/{cid}/messages", json={"content": "hi"}))
        ok(avatarium.get(f"/v1/conversations/{cid}"))
        ok(avatarium.post(f"/v1/conversations/{cid}/end"))
    statements = traced.take()
    traced.recording = False
    planned = [
        sql for sql in statements if sql.split()[0].upper() in {"SELECT", "UPDATE", "DELETE"}
    ]
    assert len(planned) > 20
    for sql in set(planned):
        plan = [row[3] for row in traced.conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
        assert not any(step.startswith("SCAN") for step in plan), (sql, plan)


# ---------------------------------------------------------------- the mirror stays exact


def test_pages_totals_and_client_lists_follow_every_write(http: httpx.Client) -> None:
    made = [
        ok(http.post("/v3/brains", json={**BRAIN, "client": ("a", "b", None)[i % 3]}), 201)
        for i in range(60)
    ]
    for brain in made[::7]:
        ok(http.delete(f"/v3/brains/{brain['id']}"))
    moved = made[1]  # client "b" -> "a": it joins "a"'s list at its createdAt place
    ok(http.patch(f"/v3/brains/{moved['id']}", json={**BRAIN, "client": "a"}))
    alive = [b for i, b in enumerate(made) if i % 7]
    clients = {b["id"]: ("a", "b", None)[i % 3] for i, b in enumerate(made)}
    clients[moved["id"]] = "a"
    for client in (None, "a", "b"):
        expected = [b["id"] for b in alive if client is None or clients[b["id"]] == client]
        params = {} if client is None else {"client": client}
        got: list[str] = []
        for skip in range(0, len(expected) + 7, 7):
            page = ok(http.get("/v3/brains", params={**params, "take": 7, "skip": skip}))
            assert page["total"] == len(expected)
            got += [b["id"] for b in page["brains"]]
        assert got == expected, client
    assert ok(http.get("/v3/brains", params={"client": "nobody"}))["total"] == 0


def test_a_refused_delete_names_ten_characters_and_counts_the_rest(http: httpx.Client) -> None:
    face = ok(http.post("/v3/faces", json={"identity": "tommy"}), 201)
    chars = [
        ok(
            http.post(
                "/v3/characters",
                json={"name": f"N{i}", "livekitIdentity": f"n{i}", "faceId": face["id"]},
            ),
            201,
        )
        for i in range(13)
    ]
    refused = http.delete(f"/v3/faces/{face['id']}")
    assert refused.status_code == 400
    message = refused.json()["message"]
    assert all(f"{c['id']} ({c['name']})" in message for c in chars[:10])
    assert chars[10]["id"] not in message and "and 3 more" in message
    for character in chars:  # unlinking, not only deleting, releases the face
        ok(http.put(f"/v3/characters/{character['id']}", json={"faceId": None}))
    ok(http.delete(f"/v3/faces/{face['id']}"))


def test_indexes_are_rebuilt_from_the_database_on_restart(
    tmp_path: Path, start_emulator: Callable[..., EmulatorServer]
) -> None:
    db = str(tmp_path / "emulator.sqlite")
    first = start_emulator(db=db)
    with httpx.Client(base_url=first.url, headers=KEY, trust_env=False) as http:
        org = seed_organisation(http, n=5)
        conv = ok(
            http.post(
                "/v3/conversations",
                json={"name": "s", "characterId": org["chars"][0]["id"], "client": "acme"},
            ),
            201,
        )["conversation"]
        before = {
            path: ok(http.get(f"/v3/{path}", params={"take": 50}))
            for path in ("brains", "characters", "knowledge-bases", "conversations")
        }
        acme = ok(http.get("/v3/characters", params={"client": "acme"}))
    first.stop()
    second = start_emulator(db=db)
    with httpx.Client(base_url=second.url, headers=KEY, trust_env=False) as http:
        for path, page in before.items():
            assert ok(http.get(f"/v3/{path}", params={"take": 50})) == page, path
        assert ok(http.get("/v3/characters", params={"client": "acme"})) == acme
        kb = ok(http.get(f"/v3/knowledge-bases/{org['kb']['id']}"))
        assert [d["id"] for d in kb["documents"]] == [org["doc"]["id"]]
        message = http.delete(f"/v3/voices/{org['voice']['id']}").json()["message"]
        assert all(c["id"] in message for c in org["chars"])
        assert second.stats()["openConversations"]["equos"] == 1
        ok(http.post(f"/v3/conversations/{conv['id']}/stop"), 201)
        assert second.stats()["openConversations"]["equos"] == 0
        assert list(ok(http.get("/v3/organizations/user-usage"))["secondsByClient"]) == ["acme"]
        # New objects still sort after the old ones.
        brain = ok(http.post("/v3/brains", json=BRAIN), 201)
        assert ok(http.get("/v3/brains", params={"take": 50}))["brains"][-1]["id"] == brain["id"]


def test_a_failed_write_changes_neither_the_database_nor_the_mirror() -> None:
    conn = sqlite3.connect(":memory:")
    store = EquosStore(conn)
    brain = {"id": "brain_1", "createdAt": iso_ms(1000), "updatedAt": iso_ms(1000), "client": "a"}
    with store.transaction() as tx:
        tx.insert("brain", brain)
    with pytest.raises(sqlite3.IntegrityError), store.transaction() as tx:
        tx.save("brain", {**brain, "client": "b", "updatedAt": iso_ms(2000)})
        tx.insert("brain", {**brain, "id": "brain_2", "createdAt": iso_ms(1500)})
        tx.insert("brain", brain)  # the same primary key again: the commit never happens
    assert store.get("brain", "brain_1") == brain and store.get("brain", "brain_2") is None
    assert (store.count("brain"), store.count("brain", "a"), store.count("brain", "b")) == (1, 1, 0)
    assert conn.execute("SELECT COUNT(*), MAX(client) FROM eq_objects").fetchone() == (1, "a")
    assert store.max_updated_at == iso_ms(1000)
    # A copy from get() is the caller's: changing it changes nothing stored.
    copy = store.get("brain", "brain_1")
    assert copy is not None
    copy["client"] = "zzz"
    assert store.page("brain", "a", 0, 5) == [brain]


def test_ledger_counts_running_conversations_and_seconds_per_client() -> None:
    ledger = ConversationLedger()

    def conv(id_: str, start: int, client: str | None, **extra: Any) -> dict[str, Any]:
        base = {"id": id_, "startedAt": iso_ms(start), "maxSeconds": 10, "client": client}
        return {**base, "status": "running", **extra}

    a = conv("a", 0, "x")
    b = conv("b", 1000, None)
    ledger.observe(None, a)
    ledger.observe(None, b)
    assert ledger.open_count(5000) == 2
    assert ledger.used_ms(5000) == {"x": 5000, None: 4000}
    stopped = {**a, "status": "ended", "endedAt": iso_ms(6000)}
    ledger.observe(a, stopped)
    assert ledger.open_count(7000) == 1
    assert ledger.used_ms(7000) == {"x": 6000, None: 6000}
    # b reaches startedAt + maxSeconds (11 s) on its own and stops counting there.
    assert ledger.open_count(11_000) == 0
    assert ledger.used_ms(60_000) == {"x": 6000, None: 10_000}


def test_listed_and_fetched_views_follow_every_change_of_what_they_show(
    http: httpx.Client,
) -> None:
    """Encoded views are cached per version; every change must show at once."""
    org = seed_organisation(http, n=2)
    character = org["chars"][0]

    def check() -> dict[str, Any]:
        listed = ok(http.get("/v3/characters", params={"take": 50}))["characters"]
        fetched = ok(http.get(f"/v3/characters/{character['id']}"))
        assert listed[0] == fetched
        kb = ok(http.get(f"/v3/knowledge-bases/{org['kb']['id']}"))
        assert fetched["knowledgeBase"] == kb
        assert ok(http.get("/v3/knowledge-bases"))["items"] == [kb]
        return fetched

    check()
    ok(http.patch(f"/v3/brains/{character['brainId']}", json={**BRAIN, "instructions": "new"}))
    assert check()["brain"]["instructions"] == "new"
    ok(http.patch(f"/v3/voices/{org['voice']['id']}", json={"identity": "Kore"}))
    assert check()["voice"]["identity"] == "Kore"
    doc_path = f"/v3/knowledge-bases/{org['kb']['id']}/documents/{org['doc']['id']}"
    ok(http.patch(f"{doc_path}/index"))
    assert [d["status"] for d in check()["knowledgeBase"]["documents"]] == ["indexed"]
    ok(http.delete(doc_path))
    assert check()["knowledgeBase"]["documents"] == []
    ok(http.put(f"/v3/characters/{character['id']}", json={"name": "Renamed", "faceId": None}))
    after = check()
    assert (after["name"], after["face"], after["faceId"]) == ("Renamed", None, None)
    ok(http.delete(f"/v3/characters/{character['id']}"))
    assert [c["id"] for c in ok(http.get("/v3/characters"))["characters"]] == [
        org["chars"][1]["id"]
    ]
