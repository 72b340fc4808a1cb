"""The emulator's ordered index (list pages without OFFSET scans) against a plain
sorted list, under random sequences of adds, discards and page reads."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avatarsync.emulator import ordered
from avatarsync.emulator.ordered import OrderedIndex

OPS = st.lists(
    st.tuples(st.sampled_from(["add", "discard", "page"]), st.integers(0, 60), st.integers(0, 9)),
    max_size=300,
)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Blocks of at most 4 keys: every split and block removal path runs.
    monkeypatch.setattr(ordered, "_LOAD", 2)


@given(initial=st.sets(st.integers(0, 60), max_size=20), ops=OPS)
@settings(max_examples=80, deadline=None)
def test_behaves_like_a_sorted_list(initial: set[int], ops: list[tuple[str, int, int]]) -> None:
    original = ordered._LOAD
    ordered._LOAD = 2
    try:
        index = OrderedIndex(initial)
        model = sorted(initial)
        for op, key, take in ops:
            if op == "add":
                index.add(key)
                if key not in model:
                    model.append(key)
                    model.sort()
            elif op == "discard":
                assert index.discard(key) == (key in model)
                if key in model:
                    model.remove(key)
            else:
                assert index.page(key, take) == model[key : key + take]
            assert len(index) == len(model)
            assert (key in index) == (key in model)
        assert list(index) == model
    finally:
        ordered._LOAD = original


def test_pages_of_a_large_index_with_holes(small_blocks: None) -> None:
    keys = [(f"2025-01-01T00:00:{i // 1000:02d}.{i % 1000:03d}Z", f"id{i}") for i in range(1500)]
    index = OrderedIndex(keys[:1000])
    for key in keys[1000:]:
        index.add(key)  # appends, as new objects are
    rng = random.Random(5)
    removed = rng.sample(keys, 600)
    for key in removed:
        assert index.discard(key)
        assert not index.discard(key)
    for key in removed[:100]:  # back in the middle, as a client change does
        index.add(key)
    alive = sorted(set(keys) - set(removed[100:]))
    assert len(index) == len(alive) == 1000
    for skip in (0, 1, 49, 50, 777, 999, 1000, 1005):
        assert index.page(skip, 50) == alive[skip : skip + 50]
    assert index.page(0, 0) == [] and index.first(3) == alive[:3]
    assert list(index) == alive
    with pytest.raises(ValueError):
        index.page(-1, 5)


def test_empty_index() -> None:
    index: OrderedIndex[int] = OrderedIndex()
    assert len(index) == 0 and index.page(0, 50) == [] and not index.discard(3)
    index.add(3)
    index.add(3)
    assert list(index) == [3] and index.discard(3) and len(index) == 0
