"""render_plan_json, the machine contract: golden, schema-valid, documented."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from support.output_samples import LIVE_AGENT_ID, REAL_AGENT_ID, big_plan, empty_plan, sample_plan

from avatarsync.output import render_plan_json
from avatarsync.planning.plan import FORMAT_VERSION, Plan

ROOT = Path(__file__).parents[2]
SCHEMA = json.loads((ROOT / "avatarsync" / "planning" / "plan.schema.json").read_text())
DOC = (ROOT / "docs" / "plan-format.md").read_text()

Golden = Callable[[str, str], None]


def test_json_matches_golden(sample_plan: Plan, golden: Golden) -> None:
    golden("plan.json", render_plan_json(sample_plan))


def test_json_is_plan_to_dict_with_sorted_keys(sample_plan: Plan) -> None:
    text = render_plan_json(sample_plan)
    assert text.endswith("}\n")
    assert json.loads(text) == json.loads(json.dumps(sample_plan.to_dict()))
    assert json.loads(text)["formatVersion"] == FORMAT_VERSION


def test_sensitive_values_never_reach_json(sample_plan: Plan) -> None:
    text = render_plan_json(sample_plan)
    assert LIVE_AGENT_ID not in text and REAL_AGENT_ID not in text


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("make", [sample_plan, empty_plan, lambda: big_plan(50)])
def test_sample_plans_validate_against_the_schema(make: Callable[[], Plan]) -> None:
    errors = list(Draft202012Validator(SCHEMA).iter_errors(json.loads(render_plan_json(make()))))
    assert errors == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("formatVersion",), 2),
        (("changes", 0, "action"), "frobnicate"),
        (("changes", 0, "address"), "no-slash"),
        (("changes", 6, "fields", 3, "after"), REAL_AGENT_ID),  # a sensitive value leaked
        (("summary", "create"), -1),
        (("changes", 4, "documents", 0, "action"), "update"),
    ],
)
def test_schema_rejects_what_the_contract_forbids(
    sample_plan: Plan, path: tuple[Any, ...], value: Any
) -> None:
    data = json.loads(render_plan_json(sample_plan))
    target = data
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    assert not Draft202012Validator(SCHEMA).is_valid(data)


def _schema_props(node: dict[str, Any]) -> set[str]:
    if "$ref" in node:
        node = SCHEMA["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return set(node["properties"])


def test_schema_declares_exactly_what_to_dict_emits(sample_plan: Plan) -> None:
    # The schema allows unknown keys (consumers must ignore additions), so
    # this is what keeps it from silently falling behind Plan.to_dict.
    data = sample_plan.to_dict()
    change = data["changes"][4]  # has documents
    assert set(data) == _schema_props(SCHEMA)
    assert set(data["summary"]) == _schema_props(SCHEMA["properties"]["summary"])
    assert set(change) == _schema_props(SCHEMA["$defs"]["change"])
    assert set(change["documents"][0]) == _schema_props(SCHEMA["$defs"]["documentChange"])
    assert set(data["changes"][0]["fields"][0]) == _schema_props(SCHEMA["$defs"]["fieldChange"])


def test_every_schema_property_is_documented() -> None:
    documented = set(re.findall(r"^\| `(\w+)` \|", DOC, flags=re.MULTILINE))
    declared = set(SCHEMA["properties"])
    for name in ("change", "fieldChange", "documentChange"):
        declared |= set(SCHEMA["$defs"][name]["properties"])
    declared |= set(SCHEMA["properties"]["summary"]["properties"])
    assert declared - documented == set()
