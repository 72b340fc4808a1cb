"""After each write apply compares what the server answered with what it sent:
a dropped or rewritten field would otherwise diff forever."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from support.plans import desired, res

from avatarsync.planning.apply import apply_plan
from avatarsync.planning.builder import PlanOptions, build_plan
from avatarsync.planning.live import LiveState
from avatarsync.resources import Kind, LiveResource
from avatarsync.state import FileStateStore

_ids = itertools.count(1)


class TruncatingApi:
    """A narrow fake: stores what it is sent, but cuts brain instructions at 10 chars."""

    async def create_resource(
        self, kind: Kind, spec: dict[str, Any], *, link_ids: Any = None, client: str
    ) -> LiveResource:
        stored = dict(spec)
        if kind is Kind.BRAIN:
            stored["instructions"] = spec["instructions"][:10]
        return LiveResource(kind, f"id{next(_ids)}", stored, "t", "t", client)


def test_a_field_the_server_changed_is_reported(tmp_path):
    d = desired(
        res("Brain", "short", instructions="Fits."),
        res("Brain", "long", instructions="This prompt is longer than ten characters."),
    )
    store = FileStateStore(tmp_path / "s.json", environment="test", client="acme-test")
    state = store.load()
    plan = build_plan(d, LiveState({}), state, options=PlanOptions(), plan_id="p", created_at="t")
    report = asyncio.run(apply_plan(plan, d, TruncatingApi(), store, state))  # type: ignore[arg-type]
    store.compact(state)
    assert report.ok
    assert report.warnings == [
        "Brain/long: the server stored instructions as 'This promp', not what was sent; "
        "the next plan will show it as a change"
    ]
