"""Secrets never reach output, plan files, state, logs or exported files.

Every command × every output format × every file written, with sentinel
values for each way a secret enters: the API key, ${env.SECRET} values in
fields and in a knowledge-base document, a secret that left the manifests
after it was applied, a template that tries to read a secret field, and the
API key variable reached through an allowPrefixes entry.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.e2e import SENTINEL_KEY, E2EProject

AGENT_SECRET = "agent-SENTINEL-77c1d2e3"
DOC_SECRET = "doc-SENTINEL-a1b2c3d4"
SENTINELS = (SENTINEL_KEY, AGENT_SECRET, DOC_SECRET)

SECRET_MANIFESTS = """\
kind: Character
name: vip
spec:
  displayName: VIP
  livekitIdentity: vip
  elevenlabsAgentId: ${env.E2E_AGENT_ID}
  brain:
    instructions: Serve the VIP.
    greetingMessage: Welcome.
---
kind: KnowledgeBase
name: private
spec:
  displayName: Private
  description: Private answers.
  documents:
    - path: ../docs/returns.md
      name: private-returns
      description: ${env.E2E_DOC_NOTE}
---
kind: Character
name: reader
spec:
  displayName: Reader
  livekitIdentity: reader
  knowledgeBase: private
"""


@pytest.fixture
def secret_project(project: E2EProject) -> E2EProject:
    project.edit(
        "avatarsync.yaml",
        'manifests: ["characters/*.yaml"]',
        'manifests: ["characters/*.yaml"]\nenv: {allowPrefixes: [E2E_], secret: [E2E_AGENT_ID, E2E_DOC_NOTE]}',
    )
    (project.root / "characters" / "secret.yaml").write_text(SECRET_MANIFESTS)
    project.extra_env.update({"E2E_AGENT_ID": AGENT_SECRET, "E2E_DOC_NOTE": DOC_SECRET})
    return project


def leaks(texts: list[str], root: Path, *more: Path) -> list[str]:
    found = []
    for text in texts:
        found += [s for s in SENTINELS if s in text]
    for folder in (root / ".avatarsync", *more):
        for path in folder.rglob("*") if folder.exists() else ():
            if path.is_file():
                data = path.read_bytes()
                found += [f"{path}: {s}" for s in SENTINELS if s.encode() in data]
    return found


def test_no_secret_in_any_output_format_or_file(secret_project: E2EProject, tmp_path: Path):
    p = secret_project
    saved = tmp_path / "plan.json"
    exported = tmp_path / "exported"
    runs = [
        p.cli("validate"),
        p.cli("validate", "--format", "github"),
        p.cli("render", "--env", "test"),
        p.cli("plan", "--env", "test"),
        p.cli("plan", "--env", "test", "--json"),
        p.cli("plan", "--env", "test", "--markdown"),
        p.cli("--debug", "plan", "--env", "test", "--out", str(saved)),
        p.cli("--debug", "apply", str(saved)),
        p.cli("plan", "--env", "test", "--json", "--show-unchanged"),
        p.cli("apply", "--env", "test", "--yes", "--json"),
        p.cli("import", "--env", "test"),
        p.cli("export", "--env", "test", "--out", str(exported)),
    ]
    assert [r.code for r in runs] == [0] * len(runs), [r.text for r in runs if r.code]
    assert "***" in runs[2].out  # render masks the agent id and the document note
    assert leaks([r.text for r in runs], p.root, saved, exported) == []
    # Export writes the field as a variable to set, and the project reads it as a secret.
    variable = "AVATARSYNC_SECRET_VIP_ELEVENLABSAGENTID"
    assert (
        f"elevenlabsAgentId: ${{env.{variable}}}"
        in (exported / "characters" / "vip.yaml").read_text()
    )
    assert variable in (exported / "avatarsync.yaml").read_text()
    assert f"set {variable}" in runs[-1].err
    p.extra_env[variable] = AGENT_SECRET
    replanned = p.cli("-C", str(exported), "plan", "--env", "test", "--json")
    assert replanned.code == 0, replanned.text
    assert '"hasChanges": false' in replanned.out
    assert leaks([replanned.text], exported) == []


def test_a_secret_removed_from_the_manifests_stays_masked(secret_project: E2EProject):
    p = secret_project
    assert p.cli("apply", "--env", "test", "--yes").code == 0
    p.edit("characters/secret.yaml", "${env.E2E_AGENT_ID}", "now-a-plain-value")
    runs = [
        p.cli("plan", "--env", "test"),
        p.cli("plan", "--env", "test", "--json"),
        p.cli("plan", "--env", "test", "--markdown"),
        p.cli("apply", "--env", "test", "--yes"),
        p.cli("apply", "--env", "test", "--yes", "--json"),
    ]
    assert all(r.code == 0 for r in runs), [r.text for r in runs if r.code]
    assert "elevenlabsAgentId" in runs[0].out  # the change is shown...
    assert leaks([r.text for r in runs], p.root) == []  # ...but never the old value


def test_validate_diagnostics_never_print_a_secret(secret_project: E2EProject):
    p = secret_project
    (p.root / "characters" / "bad.yaml").write_text(
        "kind: Voice\nname: v\nspec: {identity: '${env.E2E_AGENT_ID}', tone: x}\n---\n"
        "kind: KnowledgeBase\nname: kb2\nspec:\n  displayName: K\n  description: d\n"
        "  documents:\n    - path: ${env.E2E_DOC_NOTE}\n"
    )
    for fmt in ("text", "github"):
        result = p.cli("validate", "--format", fmt)
        assert result.code == 1
        assert leaks([result.text], p.root) == []
        assert "document file '***' does not exist" in result.text


def test_templates_cannot_read_a_secret_field_or_the_api_key(secret_project: E2EProject):
    p = secret_project
    (p.root / "characters" / "presets.yaml").write_text(
        "kind: ConversationPreset\nname: leak\nspec:\n  character: vip\n  promptTemplateVars:\n"
        "    agent: '{{ character.elevenlabsAgentId }}'\n---\n"
        "kind: ConversationPreset\nname: key\nspec:\n  character: vip\n  promptTemplateVars:\n"
        "    key: '{{ env.E2E_EQUOS_KEY }}'\n"
    )
    result = p.cli("render", "--env", "test")
    assert result.code == 1
    assert "character.elevenlabsAgentId holds a secret and is not available to templates" in (
        result.err
    )
    assert "env.E2E_EQUOS_KEY is not set or not allowed" in result.err
    assert leaks([result.text], p.root) == []


def test_the_api_key_variable_is_not_readable_through_allow_prefixes(secret_project: E2EProject):
    p = secret_project
    (p.root / "characters" / "key.yaml").write_text(
        "kind: Brain\nname: k\nspec: {instructions: 'key ${env.E2E_EQUOS_KEY}', greetingMessage: g}\n"
    )
    result = p.cli("plan", "--env", "test")
    assert result.code == 1
    assert "E2E_EQUOS_KEY holds an environment's API key (apiKeyEnv)" in result.err
    assert leaks([result.text], p.root) == []


def test_a_document_name_cannot_come_from_a_secret(secret_project: E2EProject):
    p = secret_project
    p.edit("characters/secret.yaml", "name: private-returns", "name: ${env.E2E_DOC_NOTE}")
    result = p.cli("validate")
    assert result.code == 1
    assert "documents[0].name cannot come from a secret variable" in result.err
    assert leaks([result.text], p.root) == []


def test_no_secret_between_environments_or_in_github_mode(
    secret_project: E2EProject, tmp_path: Path
):
    p = secret_project
    summary = tmp_path / "step-summary.md"
    saved = tmp_path / "prod.plan.json"
    assert p.cli("apply", "--env", "test", "--yes").code == 0
    runs = [
        p.cli("drift", "--env", "test"),
        p.cli("drift", "--env", "test", "--json"),
        p.cli("drift", "--env", "test", "--markdown"),
        p.cli("diff", "test", "prod"),
        p.cli("diff", "test", "prod", "--json"),
        p.cli("promote", "test", "prod", "--out", str(saved)),
        p.cli("--debug", "promote", "test", "prod", "--yes", "--json"),
        p.cli("diff", "test", "prod", "--json"),
    ]
    assert [r.code for r in runs] == [0, 0, 0, 2, 2, 0, 0, 0], [r.text for r in runs]
    # The secret fields differ nowhere, so their values never had to be shown.
    p.extra_env.update({"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    (p.root / "characters" / "secret.yaml").write_text(
        SECRET_MANIFESTS.replace("${env.E2E_AGENT_ID}", "${env.E2E_DOC_NOTE}")
    )
    github = [
        p.cli("plan", "--env", "test"),
        p.cli("apply", "--env", "test", "--yes"),
        p.cli("drift", "--env", "test"),
        p.cli("diff", "test", "prod"),
        p.cli("diff", "test", "prod", "--json"),
        p.cli("promote", "test", "prod", "--yes"),
    ]
    assert [r.code for r in github] == [0, 0, 0, 2, 2, 0], [r.text for r in github]
    assert '"sensitive": true' in github[4].out  # the secret field differs, masked
    assert summary.read_text().count("avatarsync") >= 3
    texts = [r.text for r in runs + github]
    assert leaks(texts, p.root, saved, summary) == []


TOKEN_PREFIX = "eyJhbGciOiJub25lIn0."  # how the emulator's room access tokens begin


def test_session_tokens_and_the_key_appear_only_with_show_tokens(
    secret_project: E2EProject, tmp_path: Path
):
    p = secret_project
    (p.root / "characters" / "presets.yaml").write_text(
        "kind: ConversationPreset\nname: vip-call\nspec:\n  character: vip\n"
        "  inputs: {guest: {required: true}}\n"
        "  promptTemplateVars: {guest: '{{ guest }} meets {{ character.displayName }}'}\n"
    )
    assert p.cli("apply", "--env", "test", "--yes").code == 0
    both = ("--consumer", "web-1:Ann", "--remote-agent", "agent-1:Bot")
    start = ("session", "start", "vip-call", "--env", "test", "--var", "guest=Ann", *both)
    exported = tmp_path / "presets.json"
    runs = [
        p.cli(*start),
        p.cli(*start, "--json"),
        p.cli("--debug", *start, "--json"),
        p.process(*start, "--json"),
        p.cli("session", "list", "--env", "test"),
        p.cli("session", "list", "--env", "test", "--json"),
        p.cli("session", "smoke", "vip-call", "--env", "test", "--var", "guest=Ann", *both),
        p.cli("session", "smoke", "vip-call", "--env", "test", "--var", "guest=A", "--json", *both),
        p.cli("presets", "export", "--env", "test", "--out", str(exported)),
        p.cli("presets", "export", "--env", "test", "--format", "yaml"),
    ]
    assert [r.code for r in runs] == [0] * len(runs), [r.text for r in runs if r.code]
    conversation_id = json.loads(runs[1].out)["conversation"]["id"]
    runs += [
        p.cli("session", "get", conversation_id, "--env", "test"),
        p.cli("session", "get", conversation_id, "--env", "test", "--json"),
        p.cli("--debug", "session", "stop", conversation_id, "--env", "test", "--json"),
    ]
    assert all(r.code == 0 for r in runs), [r.text for r in runs if r.code]
    assert json.loads(runs[1].out)["tokens"] == {"remoteAgent": "***", "consumer": "***"}
    texts = [r.text for r in runs]
    assert [t for t in texts if TOKEN_PREFIX in t] == []
    assert leaks(texts, p.root, exported) == []
    # With --show-tokens they are there, and still in no file.
    shown = p.cli(*start, "--json", "--show-tokens")
    assert shown.code == 0, shown.text
    tokens = json.loads(shown.out)["tokens"]
    assert all(t.startswith(TOKEN_PREFIX) for t in tokens.values())
    files = [f.read_text() for f in (p.root / ".avatarsync").rglob("*.json")]
    assert [t for t in tokens.values() if any(t in text for text in files)] == []
    assert leaks([shown.text], p.root) == []
    assert (
        json.loads(exported.read_text())["presets"]["vip-call"]["context"]["character"][
            "displayName"
        ]
        == "VIP"
    )  # the character's context is exported, its secret field is not


def test_presets_export_refuses_a_preset_holding_a_secret(secret_project: E2EProject):
    p = secret_project
    (p.root / "characters" / "presets.yaml").write_text(
        "kind: ConversationPreset\nname: leaky\nspec:\n  character: vip\n"
        "  promptCtx: 'agent ${env.E2E_AGENT_ID}'\n"
    )
    assert p.cli("apply", "--env", "test", "--yes").code == 0
    result = p.cli("presets", "export", "--env", "test")
    assert result.code == 1
    assert "would contain a secret value" in result.err
    assert leaks([result.text], p.root) == []


BYOK_SECRET = "byok-SENTINEL-5e6f7a8b"

BYOK_PROFILE = """\
kind: AgentProfile
name: aria-support
spec:
  avatarId: aria-001
  provider: groq
  systemPrompt: You are Aria from ${vars.company}.
  byok: {provider: openai, apiKeyEnv: E2E_BYOK_KEY, model: gpt-4o-mini}
"""


def test_no_byok_key_in_test_or_chat_outputs_reports_state_or_logs(
    project: E2EProject, tmp_path: Path
):
    from support.agents import PASSING, WRONG_CONTAINS, write_agents

    p = project
    write_agents(p, PASSING, WRONG_CONTAINS)
    agents = p.root / "agents" / "agents.yaml"
    text = agents.read_text()
    agents.write_text(BYOK_PROFILE + text[text.index("---") :])
    p.extra_env["E2E_BYOK_KEY"] = BYOK_SECRET
    junit = tmp_path / "junit.xml"
    runs = [
        p.cli("validate"),
        p.cli("render", "--env", "test"),
        p.cli("--debug", "test", "--env", "test", "--junit", str(junit)),
        p.cli("test", "--env", "test", "--json"),
        p.cli("--github", "test", "--env", "test"),
        p.process("--debug", "test", "--env", "test", "--json"),
        p.process("--debug", "chat", "aria-support", "--env", "test", stdin="Hello!\nbye\n"),
    ]
    assert [r.code for r in runs] == [0, 0, 1, 1, 1, 1, 0], [r.text for r in runs]
    assert "Hello! I'm Aria" in runs[-1].out
    found = [s for r in runs for s in (BYOK_SECRET, SENTINEL_KEY) if s in r.text]
    for path in [junit, *(p.root / ".avatarsync").rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in (BYOK_SECRET, SENTINEL_KEY) if s.encode() in data]
    assert found == []
    # Every conversation those runs started was ended.
    with p.http() as http:
        stats = http.get("/_emulator/stats").json()
    assert stats["openConversations"]["avatarium"] == 0


def test_a_missing_byok_variable_is_named_and_nothing_starts(project: E2EProject):
    from support.agents import PASSING, open_conversations, write_agents

    p = project
    write_agents(p, PASSING)
    agents = p.root / "agents" / "agents.yaml"
    text = agents.read_text()
    agents.write_text(BYOK_PROFILE + text[text.index("---") :])
    for args in (("test", "--env", "test"), ("chat", "aria-support", "--env", "test")):
        result = p.cli(*args)
        assert result.code == 1
        assert "AgentProfile 'aria-support' brings its own key in E2E_BYOK_KEY" in result.err
        assert "agents/agents.yaml:7:" in result.err
    with p.http() as http:
        created = http.get("/_emulator/stats").json()["requests"]
    assert not any("conversations" in key for key in created)
    assert open_conversations(p) == 0


def test_a_manifest_cannot_read_a_byok_key_through_env(project: E2EProject):
    from support.agents import PASSING, write_agents

    p = project
    write_agents(p, PASSING)
    p.edit(
        "avatarsync.yaml",
        'manifests: ["characters/*.yaml", "agents/*.yaml"]',
        'manifests: ["characters/*.yaml", "agents/*.yaml"]\nenv: {allowPrefixes: [E2E_]}',
    )
    agents = p.root / "agents" / "agents.yaml"
    text = agents.read_text()
    agents.write_text(
        BYOK_PROFILE.replace("${vars.company}.", "${vars.company} and ${env.E2E_BYOK_KEY}.")
        + text[text.index("---") :]
    )
    p.extra_env["E2E_BYOK_KEY"] = BYOK_SECRET
    for args in (("validate",), ("render", "--env", "test"), ("test", "--env", "test")):
        result = p.cli(*args)
        assert result.code == 1, result.text
        assert (
            "${env.E2E_BYOK_KEY} is not allowed: E2E_BYOK_KEY holds the BYOK key of "
            "AgentProfile 'aria-support'" in result.err
        )
        assert BYOK_SECRET not in result.text
