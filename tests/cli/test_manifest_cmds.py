"""The manifest commands through the real entry point: validate, render, init, schema."""

from __future__ import annotations

import json
from pathlib import Path

from avatarsync.api import schema_files
from avatarsync.manifests.loader import load_text

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def test_validate_examples_passes(cli) -> None:
    result = cli("-C", str(EXAMPLES), "validate")
    assert (result.code, result.out) == (0, "")
    assert result.err == "ok: local, staging, prod: 0 errors, 0 warnings\n"


def test_validate_examples_in_a_real_process(process) -> None:
    result = process("-C", "examples", "validate", "--env", "prod", cwd=REPO)
    assert (result.code, result.err) == (0, "ok: prod: 0 errors, 0 warnings\n")


def test_validate_unknown_environment(cli) -> None:
    result = cli("-C", str(EXAMPLES), "validate", "--env", "stagin")
    assert result.code == 1
    assert result.err == (
        "error: unknown environment 'stagin' (did you mean 'staging'?); "
        "avatarsync.yaml defines: local, staging, prod\n"
    )


def test_validate_without_a_project(cli, tmp_path: Path) -> None:
    result = cli("validate", cwd=tmp_path)
    assert result.code == 1
    assert result.err.startswith(f"error: no avatarsync.yaml in {tmp_path.resolve()}")
    assert "Traceback" not in result.err


def test_validate_prints_warnings_and_exits_0(cli, tmp_path: Path) -> None:
    (tmp_path / "avatarsync.yaml").write_text(
        "manifests: ['*.yaml', 'none/*.yaml']\nenvironments: {local: {emulator: true}}\n"
    )
    (tmp_path / "v.yaml").write_text("kind: Voice\nname: v\nspec: {identity: Puck}\n")
    result = cli("validate", cwd=tmp_path)
    assert result.code == 0
    assert result.err.splitlines() == [
        "avatarsync.yaml:1:23: warning: manifest glob 'none/*.yaml' matches no file",
        "v.yaml:1:1: warning: Voice 'v' is not used by any Character",
        "ok: local: 0 errors, 2 warnings",
    ]


def test_validate_reports_an_invalid_project_file_with_positions(cli) -> None:
    result = cli("validate", "--format", "github", cwd=REPO / "tests/corpus/bad-project-file")
    assert result.code == 1
    assert result.err.splitlines()[0] == (
        "::error file=avatarsync.yaml,line=1,col=1::"
        "missing required field 'environments' in the project file"
    )


def test_render_one_preset_with_values(cli, tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text("customer_name: Bob\norder_id: A-1001\n")
    result = cli(
        "-C",
        str(EXAMPLES),
        "render",
        "--env",
        "staging",
        "conversationpreset/support-default",
        "--values",
        str(values),
        "--var",
        "customer_name=Ann",
    )
    assert result.code == 0, result.err
    assert result.out == (
        "# avatarsync render: environment 'staging', client 'acme-staging'\n"
        "---\n"
        "kind: ConversationPreset\n"
        "name: support-default\n"
        "spec:\n"
        "  character: sam-support\n"
        "  maxSeconds: 900\n"
        "  promptCtx: null\n"
        "  inputs:\n"
        "    customer_name:\n"
        "      required: true\n"
        "      description: First name, as the customer gave it\n"
        "    order_id:\n"
        "      required: false\n"
        "      description: The order the customer asks about, if any\n"
        "  promptTemplateVars:\n"
        "    agent_name: Sam\n"
        "    agent_role: customer support specialist\n"
        "    customer_name: Ann\n"
        "    focus: Help with orders, returns, warranty claims and repairs. "
        "The customer is asking about order A-1001.\n"
    )


def test_render_whole_state_is_yaml_documents(cli) -> None:
    result = cli("-C", str(EXAMPLES), "render", "--env", "prod")
    assert result.code == 0
    documents = load_text(result.out, "out.yaml").documents
    assert [(d.data["kind"], d.data["name"]) for d in documents] == [
        ("Brain", "acme-assistant"),
        ("Brain", "jo-onboarding.brain"),
        ("Character", "jo-onboarding"),
        ("Character", "riley-sales"),
        ("Character", "sam-support"),
        ("Face", "tommy"),
        ("KnowledgeBase", "acme-help"),
        ("Voice", "bright-puck"),
        ("Voice", "calm-kore"),
        ("Voice", "jo-onboarding.voice"),
        ("ConversationPreset", "onboarding-welcome"),
        ("ConversationPreset", "sales-advice"),
        ("ConversationPreset", "support-default"),
        ("AgentProfile", "sam-web-chat"),
    ]
    kb = documents[6].data["spec"]
    assert [(d["name"], d["path"], d["mimeType"]) for d in kb["documents"]] == [
        ("product-care", "knowledge/product-care.md", "text/markdown"),
        ("returns-policy", "knowledge/returns-policy.md", "text/markdown"),
    ]
    assert documents[1].data["inlineOf"] == "Character/jo-onboarding"
    # A required input nobody passed: the template is shown as written.
    assert documents[10].data["spec"]["promptTemplateVars"] == {
        "customer_name": "{{ customer_name }}",
        "plan": "Trailhead",
    }
    assert documents[10].data["spec"]["inputs"]["customer_name"]["required"] is True


def test_render_errors(cli) -> None:
    result = cli("-C", str(EXAMPLES), "render", "--env", "prod", "Character/nobody")
    assert (result.code, result.err) == (
        1,
        "error: Character/nobody is not defined in environment 'prod' "
        "(Character keys: jo-onboarding, riley-sales, sam-support)\n",
    )
    result = cli("-C", str(EXAMPLES), "render", "--env", "prod", "Robot/x")
    assert result.err.startswith("error: unknown kind 'Robot' in 'Robot/x'; expected one of: ")
    result = cli("-C", str(EXAMPLES), "render", "--env", "prod", "--set", "oops")
    assert (result.code, result.err) == (1, "error: --set expects key=value, got 'oops'\n")
    result = cli("-C", str(EXAMPLES), "render")
    assert result.code == 1
    assert result.err.endswith("error: Missing option '--env'.\n")


def test_render_refuses_a_broken_project_with_all_errors(cli) -> None:
    result = cli("render", "--env", "local", cwd=REPO / "tests/corpus/wrong-types")
    assert result.code == 1
    # One reporter for every command: each diagnostic, then the count.
    assert len(result.diagnostic_lines) == 6
    assert result.err.splitlines()[-1] == "6 errors, 0 warnings"


def test_init_then_validate_then_render(cli, tmp_path: Path) -> None:
    target = tmp_path / "new-project"
    result = cli("init", str(target))
    assert result.code == 0, result.err
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        ".gitignore",
        "avatarsync.yaml",
        "characters/assistant.yaml",
        *sorted(f"schemas/{name}" for name in schema_files()),
    ]
    assert "name: new-project\n" in (target / "avatarsync.yaml").read_text()
    assert cli("-C", str(target), "validate").code == 0
    result = cli(
        "-C", str(target), "render", "--env", "prod", "ConversationPreset/assistant-default"
    )
    assert "customer_name: there\n" in result.out


def test_init_never_overwrites(cli, tmp_path: Path) -> None:
    (tmp_path / "avatarsync.yaml").write_text("mine\n")
    result = cli("-C", str(tmp_path), "init", "--name", "acme")
    assert result.code == 1
    assert result.err == (
        "error: init does not overwrite files; already present: "
        f"{tmp_path.resolve() / 'avatarsync.yaml'}\n"
    )
    assert (tmp_path / "avatarsync.yaml").read_text() == "mine\n"
    assert not (tmp_path / "characters").exists()


def test_init_keeps_an_existing_gitignore(cli, tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("node_modules/\n")
    assert cli("-C", str(tmp_path), "init", "--name", "acme").code == 0
    assert (tmp_path / ".gitignore").read_text() == "node_modules/\n"
    assert "name: acme\n" in (tmp_path / "avatarsync.yaml").read_text()


def test_schema_writes_and_checks(cli, tmp_path: Path) -> None:
    out = tmp_path / "schemas"
    result = cli("schema", "--out", str(out))
    assert result.code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(schema_files())
    assert json.loads((out / "character.schema.json").read_text())["title"] == (
        "avatarsync Character"
    )
    assert cli("schema", "--out", str(out), "--check").code == 0
    (out / "voice.schema.json").write_text("{}\n")
    result = cli("schema", "--out", str(out), "--check")
    assert result.code == 1
    assert "out of date: " in result.err and "voice.schema.json" in result.err
