"""A sorted set with positional slicing, so a list page costs the same at any size.

`GET /v3/characters?skip=9950&take=50` must not walk 9,950 rows. SQLite's OFFSET
does exactly that, and a COUNT(*) per page walks them all; this index answers
`len()` in O(1) and `page(skip, take)` in O(log n + take).

Layout: the keys live in sorted blocks of at most 2 * `_LOAD` keys (insertion
and removal move at most one block's worth of pointers), and a Fenwick tree over
the block lengths finds the block holding position `skip` in O(log blocks). A
block that grows past 2 * `_LOAD` is split, which rebuilds the tree (O(blocks),
once per `_LOAD` insertions at least); an emptied block is dropped the same way.
The emulator's keys are `(createdAt, id)` tuples, which only grow, so nearly
every insertion is an append to the last block.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["OrderedIndex"]

K = TypeVar("K", bound=Any)  # any mutually comparable keys

_LOAD = 256


class OrderedIndex(Generic[K]):
    """Distinct keys in ascending order: add, discard, len, page by position."""

    __slots__ = ("_blocks", "_len", "_maxes", "_tree")

    def __init__(self, keys: Iterable[K] = ()) -> None:
        items = sorted(set(keys))
        self._blocks: list[list[K]] = [items[i : i + _LOAD] for i in range(0, len(items), _LOAD)]
        self._maxes: list[K] = [block[-1] for block in self._blocks]
        self._len = len(items)
        self._tree: list[int] = []
        self._rebuild()

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[K]:
        for block in self._blocks:
            yield from block

    def __contains__(self, key: object) -> bool:
        i = bisect_left(self._maxes, key)
        if i == len(self._blocks):
            return False
        block = self._blocks[i]
        j = bisect_left(block, key)
        return j < len(block) and block[j] == key

    def add(self, key: K) -> None:
        blocks, maxes = self._blocks, self._maxes
        if not blocks:
            blocks.append([key])
            maxes.append(key)
            self._len = 1
            self._rebuild()
            return
        i = bisect_left(maxes, key)
        if i == len(blocks):  # past every key: the common case, an append
            i -= 1
            block = blocks[i]
            block.append(key)
            maxes[i] = key
        else:
            block = blocks[i]
            j = bisect_left(block, key)
            if block[j] == key:  # j < len(block) since key <= maxes[i]
                return
            block.insert(j, key)
        self._len += 1
        if len(block) > 2 * _LOAD:
            half = len(block) // 2
            blocks.insert(i + 1, block[half:])
            del block[half:]
            maxes[i] = block[-1]
            maxes.insert(i + 1, blocks[i + 1][-1])
            self._rebuild()
        else:
            self._bump(i, 1)

    def discard(self, key: K) -> bool:
        """Remove `key` if present; True if it was."""
        blocks, maxes = self._blocks, self._maxes
        i = bisect_left(maxes, key)
        if i == len(blocks):
            return False
        block = blocks[i]
        j = bisect_left(block, key)
        if j == len(block) or block[j] != key:
            return False
        del block[j]
        self._len -= 1
        if not block:
            del blocks[i]
            del maxes[i]
            self._rebuild()
        else:
            maxes[i] = block[-1]
            self._bump(i, -1)
        return True

    def page(self, skip: int, take: int) -> list[K]:
        """Keys at positions skip .. skip + take - 1 (fewer at the end)."""
        if skip < 0 or take < 0:
            raise ValueError("skip and take must be >= 0")
        if take == 0 or skip >= self._len:
            return []
        i, offset = self._locate(skip)
        out: list[K] = []
        blocks = self._blocks
        while len(out) < take and i < len(blocks):
            out.extend(blocks[i][offset : offset + take - len(out)])
            i += 1
            offset = 0
        return out

    def first(self, n: int) -> list[K]:
        return self.page(0, n)

    # -- the Fenwick tree over block lengths (1-based) --

    def _rebuild(self) -> None:
        n = len(self._blocks)
        tree = [0] * (n + 1)
        for i, block in enumerate(self._blocks, 1):
            tree[i] += len(block)
            parent = i + (i & -i)
            if parent <= n:
                tree[parent] += tree[i]
        self._tree = tree

    def _bump(self, block: int, delta: int) -> None:
        tree = self._tree
        i = block + 1
        while i < len(tree):
            tree[i] += delta
            i += i & -i

    def _locate(self, position: int) -> tuple[int, int]:
        """(block index, offset in it) of the key at `position` (< len)."""
        tree = self._tree
        n = len(tree) - 1
        i = 0
        step = 1 << n.bit_length()
        while step:
            nxt = i + step
            if nxt <= n and tree[nxt] <= position:
                i = nxt
                position -= tree[nxt]
            step >>= 1
        return i, position
