"""build_steps is pure: a Plan in, typed steps with explicit dependencies out.

And the scheduler runs them in that order: a step never starts before the
steps it depends on are done, at most N run at once, shared leaves first.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from support.plans import desired, live, raw, res, state

from avatarsync import api
from avatarsync.planning.builder import PlanOptions, build_plan
from avatarsync.planning.live import LiveState
from avatarsync.planning.plan import Plan
from avatarsync.planning.scheduler import DagScheduler
from avatarsync.planning.steps import Step, StepKind, build_steps
from avatarsync.resources import Address, Kind

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def plan(d, lv, s, **options) -> Plan:
    return build_plan(d, lv, s, options=PlanOptions(**options), plan_id="p", created_at="t")


def by_name(steps: tuple[Step, ...]) -> dict[str, Step]:
    return {f"{s.kind} {s.address}": s for s in steps if s.kind is not StepKind.BARRIER}


def names(steps: tuple[Step, ...], indexes) -> set[str]:
    return {f"{steps[i].kind} {steps[i].address}" for i in indexes}


def test_characters_wait_for_the_leaves_they_link_and_leaves_wait_for_nothing():
    project = api.load_project(EXAMPLES)
    d = api.resolve(project, "prod")
    steps = build_steps(plan(d, LiveState({}), state()))
    assert {s.kind for s in steps} == {StepKind.CREATE}
    for step in steps:
        assert step.address is not None
        if step.address.kind == Kind.CHARACTER:
            linked = set(d.resources[step.address].refs.values())
            assert {steps[i].address for i in step.depends_on} == linked
            assert linked  # every example character links something
        else:
            assert step.depends_on == frozenset()


def test_replace_creates_then_destroys_after_every_write():
    d = desired(
        res("KnowledgeBase", "faq", displayName="New name"),
        res("Character", "tommy", knowledgeBase="faq"),
        res("Brain", "b", instructions="changed"),
    )
    lv = live(
        ("KnowledgeBase", raw("KnowledgeBase", "kb1")),
        ("Brain", raw("Brain", "b1")),
        ("Character", raw("Character", "c1", knowledgeBaseId="kb1")),
    )
    steps = build_steps(
        plan(d, lv, state(KnowledgeBase__faq="kb1", Brain__b="b1", Character__tommy="c1"))
    )
    named = by_name(steps)
    assert set(named) == {
        "replace-create KnowledgeBase/faq",
        "replace-destroy KnowledgeBase/faq",
        "update Character/tommy",
        "update Brain/b",
    }
    tommy = named["update Character/tommy"]
    assert names(steps, tommy.depends_on) == {"replace-create KnowledgeBase/faq"}
    destroy = named["replace-destroy KnowledgeBase/faq"]
    (barrier,) = [steps[i] for i in destroy.depends_on]
    assert barrier.kind is StepKind.BARRIER
    # ...which waits for every write (directly, or through the first barrier).
    waited = set()
    pending = [barrier]
    while pending:
        step = pending.pop()
        for i in step.depends_on:
            waited.add(i)
            pending.append(steps[i])
    assert names(steps, waited) >= {
        "replace-create KnowledgeBase/faq",
        "update Character/tommy",
        "update Brain/b",
    }
    assert destroy.quiet is False and named["replace-create KnowledgeBase/faq"].quiet is True


def test_pruned_characters_go_before_what_they_linked_and_leftovers_are_flagged():
    lv = live(
        ("Brain", raw("Brain", "b1")),
        ("Brain", raw("Brain", "b-old")),
        ("Character", raw("Character", "c1", brainId="b1")),
    )
    s = state(Brain__support="b1", Character__tommy="c1")
    s.pending_deletes[Address("Brain", "support")] = "b-old"
    p = plan(desired(), lv, s, prune=True, allow_delete_all=True)
    leftover = next(c for c in p.changes if c.leftover)
    assert (leftover.address, leftover.remote_id) == (Address("Brain", "support"), "b-old")
    steps = build_steps(p)
    kinds = sorted(str(s.kind) for s in steps)
    assert kinds == ["barrier", "barrier", "delete", "delete", "delete-leftover"]
    character = next(s for s in steps if s.address == Address("Character", "tommy"))
    brain = next(s for s in steps if s.kind is StepKind.DELETE and s.address.kind == "Brain")
    (after_characters,) = brain.depends_on
    assert character.index in steps[after_characters].depends_on


def test_a_refreshed_record_is_a_quiet_record_step_and_an_adoption_is_not():
    d = desired(res("Brain", "support"), res("Brain", "other", instructions="Other."))
    lv = live(("Brain", raw("Brain", "b1")), ("Brain", raw("Brain", "b2", instructions="Other.")))
    s = state(Brain__support="b1")  # recorded without a fingerprint: refresh it
    steps = by_name(build_steps(plan(d, lv, s)))
    assert steps["record Brain/support"].quiet is True
    assert steps["record Brain/other"].quiet is False  # an adoption reports itself


def _steps(*deps: tuple[int, ...]) -> tuple[Step, ...]:
    return tuple(Step(i, StepKind.CREATE, None, frozenset(d)) for i, d in enumerate(deps))


def test_scheduler_respects_dependencies_and_the_parallelism_bound():
    # 0 is shared by 1..20; 21 waits for everything.
    steps = _steps((), *[(0,)] * 20, tuple(range(1, 21)))
    order: list[int] = []
    in_flight = peak = 0

    async def execute(step: Step) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        assert all(dep in order for dep in step.depends_on)
        await asyncio.sleep(0)
        order.append(step.index)
        in_flight -= 1

    result = asyncio.run(DagScheduler(4).run(steps, execute))
    assert result.done == set(range(22)) and not result.failed
    assert order[0] == 0 and order[-1] == 21
    assert peak == 4


def test_scheduler_starts_the_most_waited_for_step_first():
    # Ten independent leaves; the last one unblocks five others.
    steps = _steps(*[()] * 10, *[(9,)] * 5)
    order: list[int] = []

    async def execute(step: Step) -> None:
        order.append(step.index)

    asyncio.run(DagScheduler(1).run(steps, execute))
    assert order[0] == 9


def test_scheduler_stops_starting_work_after_a_failure_and_names_what_was_blocked():
    steps = _steps((), (0,), (1,), ())

    async def execute(step: Step) -> None:
        if step.index == 0:
            raise RuntimeError("boom")

    result = asyncio.run(DagScheduler(1).run(steps, execute))
    assert set(result.failed) == {0}
    assert result.blocked == {1, 2}
    # 0 goes first (one step waits for it); after its failure nothing new starts.
    assert result.not_started == [1, 2, 3] and 3 not in result.blocked
