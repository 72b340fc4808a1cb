"""build_steps: a Plan -> the typed steps apply runs, with explicit dependencies. Pure.

One change becomes one step, except a replace, which becomes two: the new
object is made first (`REPLACE_CREATE`), every character relinks to it, then
the old one goes (`REPLACE_DESTROY`). The ordering rules, in one place:

- a step that writes waits for the steps that give its links their ids (a
  character waits for the faces, voices, brains and knowledge bases it links);
- removals (deletes, a replace's old object, a leftover of an interrupted
  replace) run after every write, so every character has been relinked away
  from what goes;
- removals of faces, voices, brains and knowledge bases run after the
  character removals, since a character still linking them would refuse it.

The last two rules go through two barrier steps rather than an edge from
every removal to every write, so the graph stays linear in the plan's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from avatarsync.planning.plan import Action, Change, Plan
from avatarsync.resources import Address, Kind

__all__ = ["Step", "StepKind", "build_steps"]


class StepKind(StrEnum):
    RECORD = "record"  # no API call: adopt a match into state, or refresh its record
    CREATE = "create"
    UPDATE = "update"
    REPLACE_CREATE = "replace-create"  # the new object; the old one stays until relinked
    REPLACE_DESTROY = "replace-destroy"  # the old object, once nothing links it
    DELETE = "delete"
    DELETE_LEFTOVER = "delete-leftover"  # an old object an interrupted replace left behind
    BARRIER = "barrier"  # no work: orders the groups above

    @property
    def removes(self) -> bool:
        return self in (StepKind.REPLACE_DESTROY, StepKind.DELETE, StepKind.DELETE_LEFTOVER)


@dataclass(frozen=True)
class Step:
    """One unit of apply: what to do, for which change, after which steps."""

    index: int
    kind: StepKind
    change: Change | None  # None for a barrier
    depends_on: frozenset[int] = frozenset()

    @property
    def quiet(self) -> bool:
        """No outcome line: half of a replace, a state refresh, a barrier."""
        if self.kind is StepKind.RECORD:
            return self.change is None or not self.change.adopt
        return self.kind in (StepKind.REPLACE_CREATE, StepKind.BARRIER)

    @property
    def address(self) -> Address | None:
        return self.change.address if self.change is not None else None


def build_steps(plan: Plan) -> tuple[Step, ...]:
    """Every step of `plan`, indexed in plan order; a step only depends on others."""
    kinds: list[tuple[StepKind, Change]] = []
    for change in plan.changes:
        match change.action:
            case Action.NOOP:
                if change.adopt or change.refresh:
                    kinds.append((StepKind.RECORD, change))
            case Action.CREATE:
                kinds.append((StepKind.CREATE, change))
            case Action.UPDATE:
                kinds.append((StepKind.UPDATE, change))
            case Action.REPLACE:
                kinds.append((StepKind.REPLACE_CREATE, change))
                kinds.append((StepKind.REPLACE_DESTROY, change))
            case Action.DELETE:
                kinds.append(
                    (StepKind.DELETE_LEFTOVER if change.leftover else StepKind.DELETE, change)
                )

    # The step that gives an address its id in state (what linkers wait for).
    main: dict[Address, int] = {}
    for index, (kind, change) in enumerate(kinds):
        if kind in (
            StepKind.RECORD,
            StepKind.CREATE,
            StepKind.UPDATE,
            StepKind.REPLACE_CREATE,
        ):
            main[change.address] = index

    writes = [i for i, (kind, _) in enumerate(kinds) if not kind.removes]
    removals = [i for i, (kind, _) in enumerate(kinds) if kind.removes]
    character_removals = [i for i in removals if _is_character(kinds[i][1])]
    other_removals = [i for i in removals if not _is_character(kinds[i][1])]

    steps: list[Step] = []
    for index, (kind, change) in enumerate(kinds):
        if kind.removes:
            deps: frozenset[int] = frozenset()  # filled in through the barriers below
        else:
            deps = frozenset(main[a] for a in change.depends_on if a in main and main[a] != index)
        steps.append(Step(index, kind, change, deps))
    if not removals:
        return tuple(steps)

    after_writes = len(steps)
    steps.append(Step(after_writes, StepKind.BARRIER, None, frozenset(writes)))
    after_characters = after_writes + 1
    steps.append(
        Step(
            after_characters,
            StepKind.BARRIER,
            None,
            frozenset([after_writes, *character_removals]),
        )
    )
    for i in character_removals:
        steps[i] = _with_deps(steps[i], frozenset([after_writes]))
    for i in other_removals:
        steps[i] = _with_deps(steps[i], frozenset([after_characters]))
    return tuple(steps)


def dependents(steps: Sequence[Step]) -> list[list[int]]:
    """For each step, the steps that wait for it."""
    out: list[list[int]] = [[] for _ in steps]
    for step in steps:
        for dep in step.depends_on:
            out[dep].append(step.index)
    return out


def _is_character(change: Change | None) -> bool:
    return change is not None and change.address.kind == Kind.CHARACTER


def _with_deps(step: Step, deps: frozenset[int]) -> Step:
    return Step(step.index, step.kind, step.change, deps)
