"""Run steps in dependency order, at most N at once: the executor's scheduler.

A ready queue with dependency counters, so a whole apply costs O(steps +
edges) bookkeeping (plus a heap), not a re-scan of every pending step on
every completion. Ready steps start critical path first: the step that
most others wait for (a face shared by every character) goes before ten
thousand brains that each unblock one character.

On the first failure, or once `stop` is set (an interrupt), nothing new
starts; what is in flight finishes. Apply takes the scheduler as a
parameter, so tests can swap in their own.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from avatarsync.planning.steps import Step, StepKind, dependents

__all__ = ["DagScheduler", "Schedule", "Scheduler"]


@dataclass
class Schedule:
    """What became of each step (by index)."""

    done: set[int] = field(default_factory=set)
    failed: dict[int, BaseException] = field(default_factory=dict)
    # Never started, in index order, and which of those a failure blocked.
    not_started: list[int] = field(default_factory=list)
    blocked: set[int] = field(default_factory=set)
    stopped: bool = False  # `stop` was set: work left undone on purpose


class Scheduler(Protocol):
    async def run(
        self, steps: Sequence[Step], execute: Callable[[Step], Awaitable[None]]
    ) -> Schedule: ...


class DagScheduler:
    """At most `parallelism` steps in flight; see the module docstring."""

    def __init__(self, parallelism: int = 10, *, stop: asyncio.Event | None = None) -> None:
        if parallelism < 1:
            raise ValueError("parallelism must be at least 1")
        self.parallelism = parallelism
        self.stop = stop

    async def run(
        self, steps: Sequence[Step], execute: Callable[[Step], Awaitable[None]]
    ) -> Schedule:
        children = dependents(steps)
        waiting = [len(step.depends_on) for step in steps]
        ready: list[tuple[int, int]] = []  # (-dependents, index)
        for step in steps:
            if not waiting[step.index]:
                heapq.heappush(ready, (-len(children[step.index]), step.index))
        result = Schedule()
        started: set[int] = set()
        running: dict[asyncio.Task[None], int] = {}

        def finish(index: int) -> None:
            result.done.add(index)
            for child in children[index]:
                waiting[child] -= 1
                if not waiting[child]:
                    heapq.heappush(ready, (-len(children[child]), child))

        try:
            while ready or running:
                while ready and len(running) < self.parallelism and not self._stopping(result):
                    _, index = heapq.heappop(ready)
                    started.add(index)
                    if steps[index].kind is StepKind.BARRIER:
                        finish(index)  # no work: its dependents may start at once
                        continue
                    task = asyncio.ensure_future(execute(steps[index]))
                    running[task] = index
                if not running:
                    break
                finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    index = running.pop(task)
                    if task.cancelled():
                        result.failed[index] = asyncio.CancelledError()
                    elif (exc := task.exception()) is not None:
                        result.failed[index] = exc
                    else:
                        finish(index)
        finally:
            # Cancelled from outside (an interrupt): let what is in flight end,
            # so no call is abandoned half way and state records its outcome.
            if running:
                await asyncio.wait(running)
                for task, index in running.items():
                    if task.cancelled():
                        result.failed[index] = asyncio.CancelledError()
                    elif (exc := task.exception()) is not None:
                        result.failed[index] = exc
                    else:
                        result.done.add(index)

        result.not_started = [s.index for s in steps if s.index not in started]
        result.blocked = _downstream(result.failed, children)
        result.stopped = self.stop is not None and self.stop.is_set()
        return result

    def _stopping(self, result: Schedule) -> bool:
        return bool(result.failed) or (self.stop is not None and self.stop.is_set())


def _downstream(failed: dict[int, BaseException], children: list[list[int]]) -> set[int]:
    """Every step that (transitively) waits for a failed one."""
    seen: set[int] = set()
    queue = deque(failed)
    while queue:
        for child in children[queue.popleft()]:
            if child not in seen:
                seen.add(child)
                queue.append(child)
    return seen
