"""Resolution per environment: the DesiredState contract, on the examples and small projects."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from avatarsync import api
from avatarsync.errors import ManifestError, SessionError
from avatarsync.resources import Address, DocumentSpec, Position, Preset

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def examples():
    return api.load_project(EXAMPLES)


def test_examples_validate_without_warnings(examples) -> None:
    assert api.validate(examples) == []
    assert api.validate(examples, "prod") == []


def test_desired_state_addresses_are_sorted(examples) -> None:
    state = api.resolve(examples, "staging")
    assert (state.environment, state.client) == ("staging", "acme-staging")
    assert [str(a) for a in state.resources] == [
        "Brain/acme-assistant",
        "Brain/jo-onboarding.brain",
        "Character/jo-onboarding",
        "Character/riley-sales",
        "Character/sam-support",
        "Face/tommy",
        "KnowledgeBase/acme-help",
        "Voice/bright-puck",
        "Voice/calm-kore",
        "Voice/jo-onboarding.voice",
    ]
    assert list(state.presets) == ["onboarding-welcome", "sales-advice", "support-default"]


def test_character_spec_is_canonical_with_refs(examples) -> None:
    state = api.resolve(examples, "prod")
    sam = state.resources[Address("Character", "sam-support")]
    assert dict(sam.spec) == {
        "displayName": "Sam",
        "livekitIdentity": "acme-sam-support",
        "face": "tommy",
        "voice": "calm-kore",
        "brain": "acme-assistant",
        "knowledgeBase": "acme-help",
        "search": True,
        "elevenlabsAgentId": None,
    }
    assert dict(sam.refs) == {
        "face": Address("Face", "tommy"),
        "voice": Address("Voice", "calm-kore"),
        "brain": Address("Brain", "acme-assistant"),
        "knowledgeBase": Address("KnowledgeBase", "acme-help"),
    }
    assert sam.position == Position("characters/support.yaml", 2, 1)
    assert sam.field_positions["search"] == Position("characters/support.yaml", 11, 11)
    assert "elevenlabsAgentId" not in sam.field_positions
    assert sam.inline_owner is None and sam.sensitive_fields == frozenset()


def test_inline_resources_are_their_own_resources(examples) -> None:
    state = api.resolve(examples, "prod")
    jo = state.resources[Address("Character", "jo-onboarding")]
    assert (jo.spec["voice"], jo.spec["brain"], jo.spec["search"]) == (
        "jo-onboarding.voice",
        "jo-onboarding.brain",
        False,
    )
    voice = state.resources[Address("Voice", "jo-onboarding.voice")]
    assert dict(voice.spec) == {
        "identity": "Aoede",
        "instructions": "Warm and patient; pause after each step.",
    }
    assert voice.inline_owner == Address("Character", "jo-onboarding")
    assert voice.position == Position("characters/onboarding.yaml", 10, 5)
    assert voice.field_positions["identity"] == Position("characters/onboarding.yaml", 10, 15)
    brain = state.resources[Address("Brain", "jo-onboarding.brain")]
    assert (
        brain.spec["greetingMessage"] == "Welcome to Acme Outfitters, {{ customer_name }}! I'm Jo."
    )


def test_vars_differ_per_environment_and_placeholders_stay(examples) -> None:
    prod = api.resolve(examples, "prod").resources[Address("Brain", "acme-assistant")]
    local = api.resolve(examples, "local").resources[Address("Brain", "acme-assistant")]
    assert prod.spec["greetingMessage"] == (
        "Hi {{ customer_name }}! I'm {{ agent_name }} from Acme Outfitters. How can I help?"
    )
    assert local.spec["greetingMessage"] == (
        "Hi {{ customer_name }}! I'm {{ agent_name }} from Acme Outfitters (local). How can I help?"
    )


def test_knowledge_base_documents_are_hashed_files(examples) -> None:
    state = api.resolve(examples, "prod")
    kb = state.resources[Address("KnowledgeBase", "acme-help")]
    assert dict(kb.spec) == {
        "displayName": "Acme Outfitters help center",
        "description": "Returns, warranty and product care policies for customer conversations.",
    }
    returns = EXAMPLES / "knowledge" / "returns-policy.md"
    care = EXAMPLES / "knowledge" / "product-care.md"
    assert kb.documents == (
        DocumentSpec(
            name="product-care",
            description="Cleaning, storage and repair of tents, packs and boots.",
            mime_type="text/markdown",
            path=care.resolve(),
            sha256=hashlib.sha256(care.read_bytes()).hexdigest(),
            size=care.stat().st_size,
            position=Position("shared/knowledge.yaml", 12, 7),
        ),
        DocumentSpec(
            name="returns-policy",
            description="Returns, exchanges and refunds.",
            mime_type="text/markdown",
            path=returns.resolve(),
            sha256=hashlib.sha256(returns.read_bytes()).hexdigest(),
            size=returns.stat().st_size,
            position=Position("shared/knowledge.yaml", 9, 7),
        ),
    )


def test_presets(examples) -> None:
    preset = api.resolve(examples, "prod").presets["sales-advice"]
    assert isinstance(preset, Preset)
    assert (preset.key, preset.character, preset.max_seconds, preset.prompt_ctx) == (
        "sales-advice",
        "riley-sales",
        600,
        "The customer opened the chat from a product page.",
    )
    assert preset.prompt_template_vars["agent_name"] == "{{ character.displayName }}"
    assert preset.field_positions["promptTemplateVars.agent_role"] == Position(
        "presets/presets.yaml", 35, 17
    )


def test_render_preset_per_environment_with_caller_values(examples) -> None:
    assert api.render_preset(examples, "prod", "sales-advice", {}) == {
        "agent_name": "Riley",
        "agent_role": "gear advisor",
        "customer_name": "there",
        "focus": "Recommend gear for their next trip; ask about\nseason, group size and budget "
        "first. Current promotion: 10% off all tents until Sunday.",
    }
    staging = api.render_preset(
        examples,
        "staging",
        "sales-advice",
        {"customer_name": "Ann", "activity": "winter camping"},
    )
    assert staging["customer_name"] == "Ann"
    assert staging["focus"].startswith("Recommend gear for winter camping;")
    assert staging["focus"].endswith("10% off tents (staging copy).")
    assert api.render_preset(
        examples, "local", "onboarding-welcome", {"customer_name": "Ann", "plan": "Summit"}
    ) == {"customer_name": "Ann", "plan": "Summit"}
    assert api.render_preset(examples, "local", "onboarding-welcome", {"customer_name": "Jo"}) == {
        "customer_name": "Jo",
        "plan": "Trailhead",  # the input's default, ${vars.default_plan}
    }


def test_render_preset_refuses_reserved_and_unknown(examples) -> None:
    with pytest.raises(SessionError, match=r"^caller values cannot be named vars: "):
        api.render_preset(examples, "prod", "sales-advice", {"vars": {}})
    with pytest.raises(SessionError) as caught:
        api.render_preset(examples, "prod", "nope", {})
    assert str(caught.value) == (
        "no ConversationPreset 'nope' (known: onboarding-welcome, sales-advice, support-default)"
    )


def test_resolution_is_deterministic_in_order_too() -> None:
    # Dict equality ignores order; plans, fingerprints and golden files do not.
    # So compare the order of every mapping, across two fresh loads.
    first = api.resolve(api.load_project(EXAMPLES), "prod")
    second = api.resolve(api.load_project(EXAMPLES), "prod")
    assert list(first.resources) == list(second.resources) == sorted(first.resources)
    assert list(first.presets) == list(second.presets) == sorted(first.presets)
    for address, resource in first.resources.items():
        assert list(resource.spec.items()) == list(second.resources[address].spec.items())
        assert [d.name for d in resource.documents] == sorted(d.name for d in resource.documents)
    assert api.render(api.load_project(EXAMPLES), "prod") == api.render(
        api.load_project(EXAMPLES), "prod"
    )


# --- small projects ------------------------------------------------------------


def make(tmp_path: Path, manifests: str, project: str | None = None):
    (tmp_path / "avatarsync.yaml").write_text(
        project
        or "manifests: ['*.yaml']\n"
        "env: {allowPrefixes: [ACME_], secret: [ACME_AGENT]}\n"
        "environments:\n  local: {emulator: true, vars: {company: Acme}}\n"
        "  prod: {apiKeyEnv: KEY, vars: {company: Acme Inc}}\n"
    )
    (tmp_path / "m.yaml").write_text(manifests)
    return api.load_project(tmp_path)


CHARACTER = """\
kind: Character
name: tommy
spec:
  displayName: Tommy
  livekitIdentity: tommy
  elevenlabsAgentId: "agent-${env.ACME_AGENT}"
  brain:
    instructions: "Work for ${vars.company}; id ${env.ACME_AGENT}"
    greetingMessage: Hi
"""


def test_secret_substitutions_mark_sensitive_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_AGENT", "s3cr3t-value")
    project = make(tmp_path, CHARACTER)
    state = api.resolve(project, "prod")
    tommy = state.resources[Address("Character", "tommy")]
    assert tommy.spec["elevenlabsAgentId"] == "agent-s3cr3t-value"
    assert tommy.sensitive_fields == frozenset({"elevenlabsAgentId"})
    brain = state.resources[Address("Brain", "tommy.brain")]
    assert brain.sensitive_fields == frozenset({"instructions"})
    assert brain.spec["instructions"] == "Work for Acme Inc; id s3cr3t-value"
    rendered = api.render(project, "prod")
    assert "s3cr3t" not in rendered
    assert "elevenlabsAgentId: '***'" in rendered


def test_unset_env_warns_in_validate_but_fails_resolve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ACME_AGENT", raising=False)
    project = make(tmp_path, CHARACTER)
    message = (
        "${env.ACME_AGENT} is not set (environment 'prod'): set it in the environment or in .env"
    )
    assert [str(d) for d in api.validate(project, "prod")] == [
        f"m.yaml:6:29: warning: {message}",
        f"m.yaml:8:49: warning: {message}",
    ]
    with pytest.raises(ManifestError) as caught:
        api.resolve(project, "prod")
    assert [str(d) for d in caught.value.diagnostics] == [
        f"m.yaml:6:29: {message}",
        f"m.yaml:8:49: {message}",
    ]


def test_dotenv_feeds_env_substitutions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACME_AGENT", raising=False)
    project = make(tmp_path, CHARACTER)
    (tmp_path / ".env").write_text("ACME_AGENT=from-dotenv\n")
    project = api.load_project(tmp_path)
    tommy = api.resolve(project, "local").resources[Address("Character", "tommy")]
    assert tommy.spec["elevenlabsAgentId"] == "agent-from-dotenv"


def test_substituted_values_are_validated_with_the_environment_named(tmp_path: Path) -> None:
    (tmp_path / "faq.md").write_text("# FAQ\n")
    project = make(
        tmp_path,
        "kind: KnowledgeBase\nname: kb\nspec:\n  displayName: K\n  description: d\n"
        "  documents:\n    - path: faq.md\n      mimeType: ${vars.mime}\n",
        "manifests: ['*.yaml']\nenvironments:\n"
        "  a: {emulator: true, vars: {mime: text/markdown}}\n"
        "  b: {emulator: true, vars: {mime: markdown}}\n",
    )
    with pytest.raises(ManifestError) as caught:
        api.validate(project)
    assert [str(d) for d in caught.value.diagnostics] == [
        "m.yaml:1:1: warning: KnowledgeBase 'kb' is not used by any Character",
        "m.yaml:8:17: documents[0].mimeType 'markdown' is not a mime type (type/subtype, "
        "e.g. text/markdown; it is sent as an HTTP header) (environment 'b')",
    ]
    kb = api.resolve(project, "a").resources[Address("KnowledgeBase", "kb")]
    assert kb.documents[0].mime_type == "text/markdown"


def test_unused_resources_and_vars_are_warnings(tmp_path: Path) -> None:
    project = make(
        tmp_path,
        "kind: Voice\nname: spare\nspec: {identity: Kore}\n---\n"
        "kind: Character\nname: c\nspec: {displayName: C, livekitIdentity: c}\n---\n"
        "kind: ConversationPreset\nname: p\nspec:\n  character: c\n"
        "  promptTemplateVars: {x: '1'}\n",
    )
    assert [str(d) for d in api.validate(project, "local")] == [
        "m.yaml:1:1: warning: Voice 'spare' is not used by any Character",
        "m.yaml:13:24: warning: promptTemplateVars.x is not used: Character 'c' (it has no brain) "
        "has no {{ x }} placeholder",
    ]


def test_a_missing_template_variable_fails_validate_not_the_session(tmp_path: Path) -> None:
    project = make(
        tmp_path,
        "kind: Character\nname: c\nspec:\n  displayName: C\n  livekitIdentity: c\n"
        "  brain: {instructions: '{{ who }}', greetingMessage: hi}\n---\n"
        "kind: ConversationPreset\nname: p\nspec:\n  character: c\n"
        "  promptTemplateVars:\n    who: '{{ vars.team }}'\n",
        "manifests: ['*.yaml']\nenvironments:\n"
        "  staging: {emulator: true, vars: {team: blue}}\n  prod: {emulator: true}\n",
    )
    assert api.validate(project, "staging") == []
    with pytest.raises(ManifestError) as caught:
        api.validate(project)
    assert [str(d) for d in caught.value.diagnostics] == [
        "m.yaml:13:10: promptTemplateVars.who: {{ vars.team }} is not defined for environment 'prod'"
    ]
    with pytest.raises(ManifestError):
        api.render_preset(project, "prod", "p", {})


def test_did_you_mean_over_thousands_of_keys_finds_early_and_late_typos() -> None:
    from avatarsync.manifests.messages import Suggestions

    keys = [f"brain-{i:04d}" for i in range(4000)] + ["support-agent", "sales-agent"]
    suggestions = Suggestions(keys)
    assert suggestions.hint("brian-0421") == " (did you mean 'brain-0421'?)"  # early typo
    assert suggestions.hint("brain-0421x") == " (did you mean 'brain-0421'?)"  # late typo
    assert suggestions.hint("suport-agent") == " (did you mean 'support-agent'?)"
    assert suggestions.hint("zzzzzzzz") == ""


def test_did_you_mean_stops_hinting_after_a_couple_of_hundred_typos() -> None:
    from avatarsync.manifests.messages import Suggestions

    suggestions = Suggestions([f"brain-{i:04d}" for i in range(100)])
    assert all(suggestions.hint(f"brian-{i % 100:04d}") for i in range(200))
    assert suggestions.hint("brian-0001") == ""  # messages stay complete; only hints stop
