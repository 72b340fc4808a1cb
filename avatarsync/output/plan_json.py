"""The machine plan: `Plan.to_dict()` as JSON, the versioned contract.

This is what scripts and CI read (`plan --json`); the text and Markdown are
for people and may change between releases. The shape is documented in
`docs/plan-format.md` and described by `schemas/plan.schema.json`; within one
`formatVersion` it only ever gains fields. Keys are sorted and the indent is
fixed, so the same plan gives the same bytes.
"""

from __future__ import annotations

import json

from avatarsync.output._format import scrub_deep
from avatarsync.planning.plan import Plan
from avatarsync.secret import scrub

__all__ = ["render_plan_json"]


def render_plan_json(plan: Plan) -> str:
    # to_dict has already masked the values of sensitive fields; scrubbing
    # both the values and the text catches registered secrets however encoded.
    text = json.dumps(scrub_deep(plan.to_dict()), indent=2, sort_keys=True, ensure_ascii=False)
    return scrub(text) + "\n"
