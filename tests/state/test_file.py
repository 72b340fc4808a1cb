"""The file store: validated loads, an O(1) journal per call, compaction, crash replay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from avatarsync.errors import StateError
from avatarsync.resources import Address
from avatarsync.state import FileStateStore, ResourceState, State, StateOp

BRAIN = Address("Brain", "support")


def store_at(tmp_path: Path) -> FileStateStore:
    return FileStateStore(tmp_path / "test.json", environment="test", client="acme")


def valid() -> dict:
    state = State(environment="test", client="acme", serial=3)
    state.resources[BRAIN] = ResourceState("br_1", "sha256:x", "t", sensitive=frozenset({"x"}))
    return state.to_dict()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (None, "state must be an object, not null"),
        ([], "state must be an object, not a list"),
        ({**valid(), "resources": []}, "state.resources must be an object, not a list"),
        ({**valid(), "serial": "7"}, "state.serial must be a whole number ≥ 0, not '7'"),
        ({**valid(), "serial": -1}, "state.serial must be a whole number ≥ 0, not -1"),
        (
            {**valid(), "resources": {"Brain/support": {"id": None}}},
            "resources.Brain/support.id must be non-empty text, not null",
        ),
        (
            {**valid(), "resources": {"Brain/support": {"id": "b", "documents": []}}},
            "resources.Brain/support.documents must be an object, not a list",
        ),
        ({**valid(), "resources": {"support": {"id": "b"}}}, "'support' is not an address"),
        (
            {**valid(), "resources": {"Robot/x": {"id": "b"}}},
            "'Robot/x' names no kind avatarsync knows",
        ),
        (
            {**valid(), "pendingDeletes": {"Brain/x": 5}},
            "pendingDeletes.Brain/x must be non-empty text, not the number 5",
        ),
        ({**valid(), "version": 9}, "state version 9 is not one this avatarsync reads"),
        ({k: v for k, v in valid().items() if k != "lineage"}, "state.lineage is missing"),
    ],
)
def test_corrupt_state_is_a_clear_error_naming_the_file_and_the_way_back(tmp_path, data, problem):
    store = store_at(tmp_path)
    store.path.write_text(json.dumps(data))
    with pytest.raises(StateError) as caught:
        store.load()
    message = str(caught.value)
    assert problem in message
    assert str(store.path) in message
    assert "avatarsync import --env test" in message


def test_not_json_and_not_utf8_are_clear_errors_too(tmp_path):
    store = store_at(tmp_path)
    store.path.write_text("{nope")
    with pytest.raises(StateError, match="is not JSON"):
        store.load()
    store.path.write_bytes(b"\xff\xfe")
    with pytest.raises(StateError, match="cannot be read"):
        store.load()


def test_a_version_1_state_still_loads(tmp_path):
    store = store_at(tmp_path)
    old = valid()
    old["version"] = 1
    del old["pendingCreates"]
    old["resources"]["Brain/support"].pop("sensitive")
    store.path.write_text(json.dumps(old))
    assert store.load().resources[BRAIN].id == "br_1"


def test_records_go_to_the_journal_and_a_crash_loses_none_of_them(tmp_path):
    store = store_at(tmp_path)
    state = store.load()
    store.record(state, StateOp("put", BRAIN, entry=ResourceState("br_1")))
    store.record(state, StateOp("pending-delete", BRAIN, value="br_old"))
    assert not store.path.exists()  # no rewrite of the whole state per call
    assert len(store.journal_path.read_text().splitlines()) == 2
    # A "crash": the store is never compacted; another process loads.
    again = store_at(tmp_path).load()
    assert again.resources[BRAIN].id == "br_1"
    assert again.pending_deletes == {BRAIN: "br_old"}
    assert again.serial == 1  # moved: a plan saved before this is stale
    store.close()


def test_compaction_folds_the_journal_into_the_file(tmp_path):
    store = store_at(tmp_path)
    state = store.load()
    for i in range(50):
        store.record(
            state, StateOp("put", Address("Brain", f"b{i}"), entry=ResourceState(f"id{i}"))
        )
    store.record(state, StateOp("drop", Address("Brain", "b0")))
    store.compact(state)
    assert not store.journal_path.exists()
    loaded = store_at(tmp_path).load()
    assert len(loaded.resources) == 49 and loaded.serial == state.serial == 1


def test_a_torn_last_journal_line_is_ignored_but_a_corrupt_one_inside_is_not(tmp_path):
    store = store_at(tmp_path)
    op = json.dumps(StateOp("put", BRAIN, entry=ResourceState("br_1")).to_dict())
    store.journal_path.parent.mkdir(parents=True, exist_ok=True)
    store.journal_path.write_text(op + "\n" + op[:20])
    assert store.load().resources[BRAIN].id == "br_1"
    store.journal_path.write_text(op[:20] + "\n" + op + "\n")
    with pytest.raises(StateError, match="corrupt journal"):
        store.load()
    store.journal_path.write_text(json.dumps({"op": "explode"}) + "\n")
    with pytest.raises(StateError, match="unknown state change 'explode'"):
        store.load()


def test_state_of_another_environment_is_refused(tmp_path):
    store = store_at(tmp_path)
    other = valid()
    other["environment"] = "prod"
    store.path.write_text(json.dumps(other))
    with pytest.raises(StateError, match="belongs to environment 'prod'"):
        store.load()
