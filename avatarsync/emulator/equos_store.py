"""Where the Equos objects live: SQLite is the store, memory an indexed mirror of it.

The emulator is the embedded default and the server every benchmark measures the
client against, so no request may cost more because the organisation is larger.
With SQL alone a list page ran a COUNT(*) and an OFFSET scan, each listed
character four look-ups, each delete of a face, voice, brain or knowledge base a
scan of every character's JSON body. Here:

- every write goes to SQLite inside one transaction, committed before the answer
  (a file database survives restarts, as before); the in-memory mirror is changed
  only once that commit succeeded, so a failed write leaves both as they were;
- reads come from the mirror: a dict per kind (id -> object), an `OrderedIndex`
  per kind and per (kind, client) ordered by (createdAt, id), so `total` is a
  `len()` and a page costs O(log n + take) whatever its `skip`;
- derived indexes (characters by linked id, documents by knowledge base,
  running conversations) are kept by *observers*, called with (old, new) on
  every applied change and for every object at load.

The mirror is rebuilt from SQLite at start (one pass, O(n)).
"""

from __future__ import annotations

import heapq
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from avatarsync.emulator.ordered import OrderedIndex
from avatarsync.emulator.store import parse_iso_ms

__all__ = ["ConversationLedger", "EquosStore", "Key", "LinkIndex", "Obj", "Observer", "key_of"]

Obj = dict[str, Any]
Key = tuple[str, str]  # (createdAt, id): the order of every list
Observer = Callable[[Obj | None, Obj | None], None]

SCHEMA = """
CREATE TABLE IF NOT EXISTS eq_objects (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    parent TEXT,
    client TEXT,
    created_at TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX IF NOT EXISTS eq_objects_order ON eq_objects (kind, created_at, id);
CREATE TABLE IF NOT EXISTS eq_uploads (
    token TEXT PRIMARY KEY,
    document_id TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    expire_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS eq_uploads_by_document ON eq_uploads (document_id);
CREATE TABLE IF NOT EXISTS eq_blobs (
    document_id TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    content BLOB NOT NULL
);
"""


def key_of(obj: Mapping[str, Any]) -> Key:
    return (obj["createdAt"], obj["id"])


class Transaction:
    """The writes of one request: SQL now, the mirror after the commit."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.changes: list[tuple[str, str, Obj | None]] = []  # (kind, id, new or None)

    def insert(self, kind: str, obj: Obj, parent: str | None = None) -> None:
        self._conn.execute(
            "INSERT INTO eq_objects (kind, id, parent, client, created_at, body)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (kind, obj["id"], parent, obj.get("client"), obj["createdAt"], json.dumps(obj)),
        )
        self.changes.append((kind, obj["id"], dict(obj)))

    def save(self, kind: str, obj: Obj) -> None:
        self._conn.execute(
            "UPDATE eq_objects SET body = ?, client = ? WHERE kind = ? AND id = ?",
            (json.dumps(obj), obj.get("client"), kind, obj["id"]),
        )
        self.changes.append((kind, obj["id"], dict(obj)))

    def remove(self, kind: str, id_: str) -> None:
        self._conn.execute("DELETE FROM eq_objects WHERE kind = ? AND id = ?", (kind, id_))
        self.changes.append((kind, id_, None))

    def execute(self, sql: str, args: tuple[Any, ...] = ()) -> None:
        """Any other statement of this transaction (uploads, blobs)."""
        self._conn.execute(sql, args)


class EquosStore:
    """Objects by kind and id, listed in (createdAt, id) order, optionally by client."""

    def __init__(
        self, conn: sqlite3.Connection, observers: Mapping[str, Observer] | None = None
    ) -> None:
        self._conn = conn
        self._observers = dict(observers or {})
        self._objects: dict[str, dict[str, Obj]] = {}
        self._order: dict[tuple[str, str | None], OrderedIndex[Key]] = {}
        self.max_updated_at: str | None = None  # the latest updatedAt stored, if any
        with conn:
            conn.executescript(SCHEMA)
        self._load()

    def _load(self) -> None:
        by_kind: dict[str, list[Obj]] = {}
        for kind, body in self._conn.execute("SELECT kind, body FROM eq_objects"):
            by_kind.setdefault(kind, []).append(json.loads(body))
        for kind, objs in by_kind.items():
            objs.sort(key=key_of)
            self._objects[kind] = {obj["id"]: obj for obj in objs}
            by_client: dict[str | None, list[Key]] = {None: []}
            for obj in objs:
                by_client[None].append(key_of(obj))
                if obj.get("client") is not None:
                    by_client.setdefault(obj["client"], []).append(key_of(obj))
            for client, keys in by_client.items():
                self._order[(kind, client)] = OrderedIndex(keys)
            observer = self._observers.get(kind)
            for obj in objs:
                updated = obj.get("updatedAt")
                if updated and (self.max_updated_at is None or updated > self.max_updated_at):
                    self.max_updated_at = updated
                if observer:
                    observer(None, obj)

    # ------------------------------------------------------------ reads

    def get(self, kind: str, id_: str) -> Obj | None:
        """A copy the caller may change (and then save)."""
        obj = self._objects.get(kind, {}).get(id_)
        return dict(obj) if obj is not None else None

    def peek(self, kind: str, id_: str | None) -> Obj | None:
        """The stored object itself: read it, never change it."""
        if id_ is None:
            return None
        return self._objects.get(kind, {}).get(id_)

    def count(self, kind: str, client: str | None = None) -> int:
        index = self._order.get((kind, client))
        return len(index) if index is not None else 0

    def page(self, kind: str, client: str | None, skip: int, take: int) -> list[Obj]:
        """Objects at positions skip.. of the (kind, client) list (stored, not copies)."""
        index = self._order.get((kind, client))
        if index is None:
            return []
        objects = self._objects[kind]
        return [objects[id_] for _, id_ in index.page(skip, take)]

    # ------------------------------------------------------------ writes

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Commit the SQL on success, then apply it to the mirror; roll back otherwise."""
        tx = Transaction(self._conn)
        with self._conn:
            yield tx
        for kind, id_, new in tx.changes:
            self._apply(kind, id_, new)

    def _apply(self, kind: str, id_: str, new: Obj | None) -> None:
        objects = self._objects.setdefault(kind, {})
        old = objects.pop(id_, None)
        if new is not None:
            objects[id_] = new
        old_key = key_of(old) if old is not None else None
        new_key = key_of(new) if new is not None else None
        old_client = old.get("client") if old is not None else None
        new_client = new.get("client") if new is not None else None
        if old_key != new_key:
            if old_key is not None:
                self._unindex(kind, None, old_key)
            if new_key is not None:
                self._index(kind, None, new_key)
        if (old_client, old_key) != (new_client, new_key):  # e.g. a PATCH moved the client
            if old_client is not None and old_key is not None:
                self._unindex(kind, old_client, old_key)
            if new_client is not None and new_key is not None:
                self._index(kind, new_client, new_key)
        updated = new.get("updatedAt") if new is not None else None
        if updated and (self.max_updated_at is None or updated > self.max_updated_at):
            self.max_updated_at = updated
        observer = self._observers.get(kind)
        if observer and (old is not None or new is not None):
            observer(old, new)

    def _index(self, kind: str, client: str | None, key: Key) -> None:
        index = self._order.get((kind, client))
        if index is None:
            index = self._order[(kind, client)] = OrderedIndex()
        index.add(key)

    def _unindex(self, kind: str, client: str | None, key: Key) -> None:
        index = self._order.get((kind, client))
        if index is not None:
            index.discard(key)
            if client is not None and not index:
                del self._order[(kind, client)]  # no empty index per past client


class LinkIndex:
    """Which objects point at an id through one of their fields, in (createdAt, id) order.

    Characters by the face, voice, brain or knowledge base they link (so a delete
    finds the characters still linking a brain without scanning them all), and
    documents by their knowledge base.
    """

    def __init__(self, fields: tuple[str, ...]) -> None:
        self._fields = fields
        self._by: dict[tuple[str, str], OrderedIndex[Key]] = {}

    def observe(self, old: Obj | None, new: Obj | None) -> None:
        old_key = key_of(old) if old is not None else None
        new_key = key_of(new) if new is not None else None
        for field in self._fields:
            before = old.get(field) if old is not None else None
            after = new.get(field) if new is not None else None
            if (before, old_key) == (after, new_key):
                continue
            if old is not None and before is not None:
                index = self._by.get((field, before))
                if index is not None:
                    index.discard(key_of(old))
                    if not index:
                        del self._by[(field, before)]
            if new is not None and after is not None:
                self._by.setdefault((field, after), OrderedIndex()).add(key_of(new))

    def count(self, field: str, target: str) -> int:
        index = self._by.get((field, target))
        return len(index) if index is not None else 0

    def ids(self, field: str, target: str, limit: int | None = None) -> list[str]:
        index = self._by.get((field, target))
        if index is None:
            return []
        keys = list(index) if limit is None else index.first(limit)
        return [id_ for _, id_ in keys]


class ConversationLedger:
    """Running conversations and seconds used, kept current on every write.

    `openConversations` and the usage endpoints used to read every conversation.
    Here a running conversation is in `_running` until it is stopped or reaches
    `startedAt + maxSeconds` (a heap of end times finds those lazily); seconds
    are summed per client as integers of milliseconds: ended ones once, running
    ones as `count * now - sum(startedAt)`.
    """

    def __init__(self) -> None:
        self._running: dict[str, tuple[int, int, str | None]] = {}  # id -> start, end, client
        self._ends: list[tuple[int, str]] = []  # heap of (end ms, id), may hold stale ids
        self._ended: dict[str, tuple[int, str | None]] = {}  # id -> duration ms, client
        self._ended_ms: dict[str | None, int] = {}
        self._running_by_client: dict[str | None, list[int]] = {}  # client -> [count, sum start]

    def observe(self, old: Obj | None, new: Obj | None) -> None:
        if old is not None:
            self._forget(old["id"])
        if new is not None:
            self._account(new)

    def _account(self, conv: Obj) -> None:
        id_, client = conv["id"], conv.get("client")
        start = parse_iso_ms(conv["startedAt"])
        if conv["status"] == "running":
            end = start + round(conv["maxSeconds"] * 1000)
            self._running[id_] = (start, end, client)
            heapq.heappush(self._ends, (end, id_))
            tally = self._running_by_client.setdefault(client, [0, 0])
            tally[0] += 1
            tally[1] += start
        else:
            ended_at = conv.get("endedAt")
            self._end(id_, (parse_iso_ms(ended_at) - start) if ended_at else 0, client)

    def _end(self, id_: str, duration: int, client: str | None) -> None:
        self._ended[id_] = (duration, client)
        self._ended_ms[client] = self._ended_ms.get(client, 0) + duration

    def _forget(self, id_: str) -> None:
        running = self._running.pop(id_, None)
        if running is not None:
            start, _, client = running
            tally = self._running_by_client[client]
            tally[0] -= 1
            tally[1] -= start
            if not tally[0]:
                del self._running_by_client[client]
        ended = self._ended.pop(id_, None)
        if ended is not None:
            self._ended_ms[ended[1]] -= ended[0]

    def settle(self, now_ms: int) -> None:
        """Move conversations past their maxSeconds from running to ended."""
        ends = self._ends
        while ends and ends[0][0] <= now_ms:
            end, id_ = heapq.heappop(ends)
            running = self._running.get(id_)
            if running is not None and running[1] == end:
                start, _, client = running
                self._forget(id_)
                self._end(id_, end - start, client)
        if len(ends) > 2 * len(self._running) + 64:  # stopped ones left stale entries
            self._ends = [(end, id_) for id_, (_, end, _) in self._running.items()]
            heapq.heapify(self._ends)

    def open_count(self, now_ms: int) -> int:
        self.settle(now_ms)
        return len(self._running)

    def used_ms(self, now_ms: int) -> dict[str | None, int]:
        """Milliseconds of conversation per client (None: no client), until now."""
        self.settle(now_ms)
        used = dict(self._ended_ms)
        for client, (count, start_sum) in self._running_by_client.items():
            used[client] = used.get(client, 0) + count * now_ms - start_sum
        return used
