"""The committed JSON Schemas are current, and the examples satisfy them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from avatarsync.manifests.loader import load_file
from avatarsync.manifests.schema import generate_schemas
from avatarsync.planning.saved import plan_schema_text

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
EXAMPLES = REPO / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.rglob("*.yaml"))
SCHEMA_LINE = "# yaml-language-server: $schema="


def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_committed_schemas_are_up_to_date() -> None:
    generated = generate_schemas()
    assert sorted(generated) == [
        "agentprofile.schema.json",
        "brain.schema.json",
        "character.schema.json",
        "conversationpreset.schema.json",
        "conversationtest.schema.json",
        "face.schema.json",
        "knowledgebase.schema.json",
        "manifest.schema.json",
        "project.schema.json",
        "voice.schema.json",
    ]
    stale = [
        name
        for name, text in generated.items()
        if not (SCHEMAS / name).is_file() or (SCHEMAS / name).read_text(encoding="utf-8") != text
    ]
    assert stale == [], "run `avatarsync schema` to regenerate schemas/"
    # The saved-plan schema is written by hand and shipped in the package;
    # schemas/ holds a copy for editors, kept equal by `avatarsync schema`.
    assert (SCHEMAS / "plan.schema.json").read_text(encoding="utf-8") == plan_schema_text()


def test_generation_is_deterministic() -> None:
    assert generate_schemas() == generate_schemas()
    for text in generate_schemas().values():
        assert text.endswith("}\n")
        assert list(json.loads(text)) == sorted(json.loads(text))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.relative_to(EXAMPLES).as_posix())
def test_examples_satisfy_the_schemas(path: Path) -> None:
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith(SCHEMA_LINE)
    schema_path = (path.parent / first_line.removeprefix(SCHEMA_LINE)).resolve()
    assert schema_path.parent == SCHEMAS and schema_path.is_file()
    loaded = load_file(path, path.name)
    assert loaded.diagnostics == []
    check = validator(schema_path.name)
    for document in loaded.documents:
        assert [e.message for e in check.iter_errors(document.data)] == []
        if schema_path.name == "manifest.schema.json":
            own = validator(f"{document.data['kind'].lower()}.schema.json")
            assert [e.message for e in own.iter_errors(document.data)] == []


def test_the_schemas_reject_what_validate_rejects() -> None:
    manifest = validator("manifest.schema.json")
    good = {"kind": "Voice", "name": "warm", "spec": {"identity": "Puck"}}
    assert manifest.is_valid(good)
    assert not manifest.is_valid({**good, "spec": {"identity": ""}})
    assert not manifest.is_valid({**good, "spec": {"identity": "Puck", "tone": "x"}})
    assert not manifest.is_valid({**good, "name": "warm.voice"})
    assert not manifest.is_valid({**good, "kind": "Avatar"})
    inline = {
        "kind": "Character",
        "name": "c",
        "spec": {"displayName": "C", "livekitIdentity": "c", "brain": {"instructions": "x"}},
    }
    assert not manifest.is_valid(inline)  # greetingMessage is required
    inline["spec"]["brain"]["greetingMessage"] = "hi"
    assert manifest.is_valid(inline)
    project = validator("project.schema.json")
    assert project.is_valid(
        {"manifests": ["*.yaml"], "environments": {"local": {"emulator": True}}}
    )
    assert not project.is_valid({"manifests": ["*.yaml"], "environments": {"x": {"apiKey": "k"}}})
