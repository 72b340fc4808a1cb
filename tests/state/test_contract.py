"""What every state store promises, on each backend (file, PostgreSQL, S3 stand-in):
records survive a new instance, compaction keeps them, last-apply persists,
and the lock excludes a second instance (a second runner) until released."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from avatarsync.errors import LockError
from avatarsync.resources import Address
from avatarsync.state import ResourceState, State, StateOp, StateStore

BRAIN = Address("Brain", "support")
FACE = Address("Face", "tommy-face")
TOMMY = Address("Character", "tommy")


@pytest.fixture
def stores(make_store: Callable[[], StateStore]) -> Iterator[Callable[[], StateStore]]:
    opened: list[StateStore] = []

    def open_one() -> StateStore:
        store = make_store()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        store.close()


def some_ops() -> list[StateOp]:
    return [
        StateOp("put", BRAIN, entry=ResourceState("br_1", "sha256:a", "t1", source="a.yaml")),
        StateOp("put", FACE, entry=ResourceState("fa_1", sensitive=frozenset({"x"}))),
        StateOp("pending-create", TOMMY, value="name=tommy"),
        StateOp("pending-delete", FACE, value="fa_0"),
        StateOp("clear-pending-create", TOMMY),
        StateOp("put", TOMMY, entry=ResourceState("ch_1", "sha256:c")),
        StateOp("put", BRAIN, entry=ResourceState("br_2", "sha256:b", "t2")),
        StateOp("applied-plan", value="plan-1"),
        StateOp(
            "last-apply",
            value=json.dumps({"commit": "abc", "dirty": False, "manifests": "sha256:m"}),
        ),
    ]


def test_records_are_durable_for_the_next_instance(stores) -> None:
    writer = stores()
    state = writer.load()
    assert state.resources == {} and state.serial == 0
    for op in some_ops():
        writer.record(state, op)
    # A new instance (another runner) sees every record, before any compaction.
    seen = stores().load()
    assert seen.resources == state.resources
    assert seen.pending_deletes == {FACE: "fa_0"}
    assert seen.pending_creates == {}
    assert seen.applied_plans == ["plan-1"]
    assert seen.last_apply == {"commit": "abc", "dirty": False, "manifests": "sha256:m"}
    assert seen.serial > 0  # the state moved: a plan saved before is stale


def test_compaction_keeps_everything_and_moves_the_serial(stores) -> None:
    writer = stores()
    state = writer.load()
    for op in some_ops():
        writer.record(state, op)
    writer.compact(state)
    after = stores().load()
    assert after.to_dict() == state.to_dict()
    assert after.serial == state.serial >= 1
    writer.record(state, StateOp("drop", TOMMY))
    writer.record(state, StateOp("clear-pending-delete", FACE, value="fa_0"))
    writer.compact(state)
    again = stores().load()
    assert TOMMY not in again.resources and again.pending_deletes == {}
    assert again.serial > after.serial
    assert again.lineage == after.lineage


def test_save_replaces_the_whole_state(stores) -> None:
    store = stores()
    state = store.load()
    for op in some_ops():
        store.record(state, op)
    store.compact(state)
    fresh = State(environment="test", client="acme")
    fresh.resources[FACE] = ResourceState("fa_9")
    store.save(fresh)
    loaded = stores().load()
    assert loaded.resources == {FACE: ResourceState("fa_9")}
    assert loaded.applied_plans == [] and loaded.last_apply is None
    assert loaded.lineage == fresh.lineage


def test_a_clear_of_a_pending_delete_names_the_id_it_clears(stores) -> None:
    store = stores()
    state = store.load()
    store.record(state, StateOp("pending-delete", FACE, value="fa_new"))
    store.record(state, StateOp("clear-pending-delete", FACE, value="fa_old"))
    assert stores().load().pending_deletes == {FACE: "fa_new"}


def test_the_lock_excludes_a_second_instance_until_released(stores) -> None:
    first, second = stores(), stores()
    with first.locked():
        with pytest.raises(LockError) as caught, second.locked():
            pass
        assert "'test' is locked" in str(caught.value)
    with second.locked():  # released: the next runner gets it
        pass


def test_a_lock_timeout_waits_then_fails_or_succeeds_when_released(stores) -> None:
    first, second = stores(), stores()
    with first.locked():
        started = time.monotonic()
        with pytest.raises(LockError, match="after waiting 1 s"), second.locked(1.0):
            pass
        assert 0.9 <= time.monotonic() - started < 5

    # Released while the second waits: it gets the lock then.
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with first.locked():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(10)
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    with second.locked(10):
        waited = time.monotonic() - started
    holder.join()
    assert 0.3 <= waited < 5


def test_an_unlock_of_a_free_lock_says_nothing_is_locked(stores) -> None:
    assert "not locked" in stores().force_unlock("whatever")
