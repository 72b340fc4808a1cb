"""JSON Schemas of every kind and of the project file, generated from the models.

`schemas/` holds their output (a test keeps it in sync); examples point
editors at it with a `# yaml-language-server: $schema=…` line.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, Field, TypeAdapter

from avatarsync.manifests.models import DOCUMENT_MODELS, ProjectModel

__all__ = ["generate_schemas"]

_JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def generate_schemas() -> dict[str, str]:
    """File name → JSON text of every schema, deterministic (sorted keys, newline)."""
    schemas: dict[str, dict[str, Any]] = {}
    for kind, model in DOCUMENT_MODELS.items():
        name = f"{kind.value.lower()}.schema.json"
        schemas[name] = _finish(model.model_json_schema(), f"avatarsync {kind.value}")
    # Discriminated by `kind`, so editors pick the right kind's schema.
    union: Any = Annotated[_union(tuple(DOCUMENT_MODELS.values())), Field(discriminator="kind")]
    adapter: TypeAdapter[Any] = TypeAdapter(union)
    combined = adapter.json_schema()
    schemas["manifest.schema.json"] = _finish(combined, "avatarsync manifest document (any kind)")
    schemas["project.schema.json"] = _finish(
        ProjectModel.model_json_schema(), "avatarsync.yaml project file"
    )
    return {
        name: json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for name, schema in sorted(schemas.items())
    }


def _union(models: tuple[type[BaseModel], ...]) -> Any:
    result: Any = models[0]
    for model in models[1:]:
        result = result | model
    return result


def _finish(schema: dict[str, Any], title: str) -> dict[str, Any]:
    schema = {"$schema": _JSON_SCHEMA_DIALECT, **schema}
    schema["title"] = title
    return schema
