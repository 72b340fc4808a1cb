"""State by hand on any store: mv and rm as records, migrate's refusals, and
the locations a command line names."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatarsync.errors import ProjectError, StateError, UnknownAddressError
from avatarsync.manifests.project import StateSettings
from avatarsync.resources import Address
from avatarsync.state import FileStateStore, ResourceState, State
from avatarsync.state.manage import copy_state, move, parse_location, remove, resolve_address

BRAIN = Address("Brain", "support")


def test_mv_and_rm_on_every_backend(stores_with_state) -> None:
    store, state = stores_with_state
    found = resolve_address(state, "brain/support")  # the kind in any case
    assert move(store, state, found, "Brain/helpdesk") == Address("Brain", "helpdesk")
    remove(store, state, [Address("Voice", "warm")])
    assert sorted(store.load().resources) == [Address("Brain", "helpdesk")]
    assert store.load().resources[Address("Brain", "helpdesk")].id == "br_1"


@pytest.fixture
def stores_with_state(make_store):
    store = make_store()
    state = store.load()
    state.resources[BRAIN] = ResourceState("br_1")
    state.resources[Address("Voice", "warm")] = ResourceState("vo_1")
    store.save(state)
    yield store, store.load()
    store.close()


def file_store(tmp_path: Path, name: str = "test.json") -> FileStateStore:
    return FileStateStore(tmp_path / name, environment="test", client="acme")


def saved(tmp_path: Path, name: str = "test.json") -> tuple[FileStateStore, State]:
    store = file_store(tmp_path, name)
    state = State(environment="test", client="acme")
    state.resources[BRAIN] = ResourceState("br_1")
    store.save(state)
    return store, store.load()


def test_mv_refuses_another_kind_a_taken_key_and_a_pending_create(tmp_path) -> None:
    store, state = saved(tmp_path)
    with pytest.raises(StateError, match="a Brain stays a Brain"):
        move(store, state, BRAIN, "Voice/support")
    state.resources[Address("Brain", "taken")] = ResourceState("br_2")
    with pytest.raises(StateError, match="already in the state"):
        move(store, state, BRAIN, "Brain/taken")
    state.pending_creates[BRAIN] = "name=x"
    with pytest.raises(StateError, match="unfinished create or replace"):
        move(store, state, BRAIN, "Brain/other")
    with pytest.raises(UnknownAddressError, match="Brain keys there: support, taken"):
        resolve_address(state, "Brain/nope")


def test_migrate_copies_lineage_and_refuses_another_state(tmp_path) -> None:
    source, state = saved(tmp_path)
    target = file_store(tmp_path, "copy.json")
    copy = copy_state(source, target)
    assert copy.lineage == state.lineage and target.load().resources == state.resources
    copy_state(source, target)  # an older copy of the same lineage may be refreshed
    other, _ = saved(tmp_path, "other.json")  # another lineage
    with pytest.raises(StateError, match="already holds state"):
        copy_state(source, other)
    with pytest.raises(StateError, match="nothing to migrate"):
        copy_state(file_store(tmp_path, "empty.json"), target)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("file", StateSettings("file", path=Path("/p/.avatarsync/state/test.json"))),
        ("file:s/x.json", StateSettings("file", path=Path("/p/s/x.json"))),
        ("file:/abs/x.json", StateSettings("file", path=Path("/abs/x.json"))),
        ("postgres:PGURL", StateSettings("postgres", url_env="PGURL")),
        ("postgres:PGURL:other", StateSettings("postgres", url_env="PGURL", schema="other")),
        (
            "s3://acme-state/state/prod.json?region=eu-west-1&endpointUrl=http://127.0.0.1:9000",
            StateSettings(
                "s3",
                bucket="acme-state",
                key="state/prod.json",
                region="eu-west-1",
                endpoint_url="http://127.0.0.1:9000",
            ),
        ),
    ],
)
def test_locations(text, expected) -> None:
    assert parse_location(text, Path("/p"), "test") == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("postgres:PG-URL", "is not a variable name"),
        ("postgres:PGURL:Bad-Schema", "is not a schema name"),
        ("s3://acme-state", "name a bucket and a key"),
        ("s3://acme-state/k?acl=public", "unknown option 'acl'"),
        ("gcs://x/y", "unknown backend"),
    ],
)
def test_bad_locations_say_what_is_expected(text, problem) -> None:
    with pytest.raises(ProjectError, match=problem) as caught:
        parse_location(text, Path("/p"), "test")
    assert "expected file, file:PATH, postgres:VARIABLE" in str(caught.value)


def test_a_uri_given_as_a_location_is_never_echoed() -> None:
    with pytest.raises(ProjectError, match="never the URI itself") as caught:
        parse_location("postgres:postgresql://u:pw-SENTINEL@h/db", Path("/p"), "test")
    assert "SENTINEL" not in str(caught.value)
