"""Saved plans (`plan --out FILE`, `apply FILE`): written as the Plan's JSON, and
checked against the plan's JSON Schema before anything else reads them.

A plan file is input like any other (edited by hand, truncated, from another
version): a field of the wrong type is a clear error naming it, never an
AttributeError halfway through apply. The schema ships inside the package
(`plan.schema.json`, copied to `schemas/` for editors by `avatarsync schema`).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources as package_files
from pathlib import Path
from typing import Any

from avatarsync.errors import PlanError
from avatarsync.planning.plan import Plan

__all__ = ["PLAN_SCHEMA_NAME", "load_plan_file", "plan_schema_text", "save_plan_file"]

PLAN_SCHEMA_NAME = "plan.schema.json"


def save_plan_file(plan: Plan, path: Path) -> None:
    path.write_text(json.dumps(plan.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_plan_file(path: Path) -> Plan:
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanError(f"cannot read plan file {path}: {exc.strerror}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path} is not a saved plan (invalid JSON: {exc})") from exc
    problem = _schema_problem(data)
    if problem is not None:
        raise PlanError(f"{path} is not a valid saved plan: {problem}")
    return Plan.from_dict(data)


def plan_schema_text() -> str:
    return package_files.files("avatarsync.planning").joinpath(PLAN_SCHEMA_NAME).read_text("utf-8")


def _schema_problem(data: Any) -> str | None:
    if not isinstance(data, dict):
        return "it must be a JSON object"
    if data.get("formatVersion") != 1:
        return None  # Plan.from_dict says which version it reads
    error = next(iter(_validator().iter_errors(data)), None)
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"{where.lstrip('.') or 'the plan'}: {error.message}"


@cache
def _validator() -> Any:
    import jsonschema  # only here: saved plans are the one place a schema is checked at run time

    schema = json.loads(plan_schema_text())
    return jsonschema.Draft202012Validator(schema)
