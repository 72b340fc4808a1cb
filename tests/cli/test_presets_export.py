"""`presets export` and what an app backend does with it, against the real emulator.

The export validates against schemas/presets-export.schema.json; the example
backend (examples/backend/app.py) loads it with no project around and starts
a session per request; the Python API renders it exactly as the CLI does.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
from pathlib import Path

import httpx
import jsonschema
import pytest
from support.cli import EXAMPLES, SCHEMAS
from support.e2e import CLIENT, E2EProject

import avatarsync

PRESETS = """\
kind: ConversationPreset
name: tommy-support
spec:
  character: tommy
  maxSeconds: 600
  inputs:
    customer_name: {required: true, description: "First name"}
    plan: {default: Trailhead}
  promptTemplateVars:
    customer_name: "{{ customer_name }}"
    pitch: "{{ plan }} at ${vars.company} with {{ character.displayName }}"
    company: "${vars.company} ({{ vars.company | upper }})"
---
kind: ConversationPreset
name: sally-sales
spec:
  character: sally
  promptTemplateVars:
    customer_name: "{{ customer.name | default('there') }}"
"""


@pytest.fixture
def applied(project: E2EProject) -> E2EProject:
    (project.root / "characters" / "presets.yaml").write_text(PRESETS)
    result = project.cli("apply", "--env", "test", "--yes")
    assert result.code == 0, result.text
    return project


def export(p: E2EProject, tmp_path: Path, *args: str) -> tuple[Path, dict]:
    out = tmp_path / "presets.json"
    result = p.cli("presets", "export", "--env", "test", "--out", str(out), *args)
    assert result.code == 0, result.text
    assert "2 presets of 'test' (sha256:" in result.err
    return out, json.loads(out.read_text())


def test_export_validates_against_its_schema_and_is_stable(applied: E2EProject, tmp_path: Path):
    _out, document = export(applied, tmp_path)
    schema = json.loads((SCHEMAS / "presets-export.schema.json").read_text())
    jsonschema.validate(document, schema)
    state = json.loads(applied.state_file.read_text())
    preset = document["presets"]["tommy-support"]
    assert preset["characterId"] == state["resources"]["Character/tommy"]["id"]
    assert preset["inputs"] == {
        "customer_name": {"required": True, "description": "First name"},
        "plan": {"required": False, "default": "Trailhead"},
    }
    assert preset["promptTemplateVars"]["company"] == {"value": "Acme (ACME)"}  # fixed
    assert preset["promptTemplateVars"]["pitch"] == {
        "template": "{{ plan }} at Acme with {{ character.displayName }}",
        "inputs": ["plan"],
    }
    assert set(preset["context"]) == {"character"}  # only what the templates read
    assert document["presets"]["sally-sales"]["inputs"] is None
    assert document["client"] == CLIENT
    # The same manifests and state give the same bytes and hash; a change, another hash.
    again = applied.cli("presets", "export", "--env", "test")
    assert json.loads(again.out) == document
    applied.edit("avatarsync.yaml", "company: Acme}", "company: Acme Two}", 1)
    changed = json.loads(applied.cli("presets", "export", "--env", "test").out)
    assert changed["contentHash"] != document["contentHash"]
    yaml_out = applied.cli("presets", "export", "--env", "test", "--format", "yaml")
    assert yaml_out.code == 0 and yaml_out.out.startswith("format: avatarsync.presets/v1")


def test_export_before_apply_says_to_run_apply(project: E2EProject):
    (project.root / "characters" / "presets.yaml").write_text(PRESETS)
    result = project.cli("presets", "export", "--env", "test")
    assert result.code == 1
    assert "run `avatarsync apply --env test` first" in result.err


def test_python_api_renders_an_export_as_the_cli_renders_the_project(
    applied: E2EProject, tmp_path: Path
):
    out, _ = export(applied, tmp_path)
    presets = avatarsync.load_presets_file(out)
    spec = presets.spec("tommy-support", {"customer_name": "Ann", "plan": "Summit"})
    rendered = applied.cli(
        "render", "--env", "test", "ConversationPreset/tommy-support",
        "--var", "customer_name=Ann", "--var", "plan=Summit",
    )  # fmt: skip
    for name, value in spec.prompt_template_vars.items():
        assert f"    {name}: {value}" in rendered.out
    assert spec.client == CLIENT
    with pytest.raises(avatarsync.SessionError, match="required input 'customer_name'"):
        presets.spec("tommy-support", {})
    with pytest.raises(avatarsync.SessionError, match="'plann' is not an input"):
        presets.spec("tommy-support", {"customer_name": "A", "plann": "x"})
    with pytest.raises(avatarsync.SessionError, match="no preset 'nope'"):
        presets.spec("nope")
    # Start and stop through the sync API, no project.
    sessions = avatarsync.SessionClient(applied.server.url, applied.key)
    started = sessions.start(spec)
    assert started.conversation.running
    assert sessions.get(started.conversation.id).prompt_template_vars == dict(
        spec.prompt_template_vars
    )
    assert [c.id for c in sessions.conversations(CLIENT, "running")] == [started.conversation.id]
    assert sessions.stop(started.conversation.id).status == "ended"
    assert applied.key not in repr(sessions)


def test_workspace_python_api_start_and_stop(applied: E2EProject):
    project = avatarsync.load_project(applied.root)
    os.environ["E2E_EQUOS_KEY"] = applied.key
    try:
        with avatarsync.Workspace(project, "test") as ws:
            spec = ws.session_spec("tommy-support", {"customer_name": "Ann"})
            assert spec.prompt_template_vars["customer_name"] == "Ann"
            started = ws.start_session(
                "tommy-support",
                {"customer_name": "Ann"},
                avatarsync.SessionOptions(consumer=avatarsync.Participant("u1", "Ann")),
            )
            assert started.consumer_token is not None
            assert "***" in json.dumps(started.to_dict())
            assert ws.stop_session(started.conversation.id).status == "ended"
            report = ws.smoke("tommy-support", {"customer_name": "Smoke"})
            assert report.ok and report.stopped
    finally:
        del os.environ["E2E_EQUOS_KEY"]


def _backend_module():
    path = EXAMPLES / "backend" / "app.py"
    spec = importlib.util.spec_from_file_location("example_backend", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_backend_example_starts_a_session_per_request_from_the_export(
    applied: E2EProject, tmp_path: Path
):
    out, document = export(applied, tmp_path)
    backend = _backend_module()
    app = backend.create_app(out, applied.server.url, applied.key)

    async def requests() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://backend") as http:
            bad = await http.post("/sessions", json={"preset": "tommy-support", "inputs": {}})
            good = await http.post(
                "/sessions",
                json={"preset": "tommy-support", "inputs": {"customer_name": "Ann"}, "user": "w"},
            )
            stopped = await http.post(f"/sessions/{good.json()['conversationId']}/stop")
            return bad, good, stopped

    bad, answer, stopped = asyncio.run(requests())
    assert bad.status_code == 400
    assert "required input 'customer_name'" in bad.json()["error"]
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["presetsHash"] == document["contentHash"]
    assert body["consumerToken"]
    with applied.http() as emulator:
        live = emulator.get(f"/v3/conversations/{body['conversationId']}").json()
        posts = emulator.get("/_emulator/stats").json()["requests"]["POST /v3/conversations"]
    assert posts == 1  # the bad request never reached Equos
    assert live["characterId"] == document["presets"]["tommy-support"]["characterId"]
    assert live["promptTemplateVars"] == {
        "customer_name": "Ann",
        "pitch": "Trailhead at Acme with Tommy",
        "company": "Acme (ACME)",
    }
    assert live["client"] == CLIENT
    assert live["status"] == "ended"
    assert stopped.json() == {"conversationId": body["conversationId"], "status": "ended"}
