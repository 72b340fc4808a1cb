"""validate on AgentProfiles and ConversationTests: offline (targets, regexes,
BYOK variable named, one target) with file:line, and --online (the avatar exists)."""

from __future__ import annotations

from collections.abc import Callable

from support.agents import PASSING, PROFILE, write_agents
from support.e2e import E2EProject


def test_offline_checks_report_every_problem_at_its_line(
    make_project: Callable[..., E2EProject],
) -> None:
    project = make_project()
    write_agents(
        project,
        """\
kind: ConversationTest
name: broken
spec:
  profile: nobody
  turns:
    - say: "Hello!"
      expect: {matches: "(unclosed"}
---
kind: ConversationTest
name: two-targets
spec:
  profile: aria-support
  preset: tommy-support
  turns: [{say: hi}]
---
kind: ConversationTest
name: no-turns
spec:
  profile: aria-support
---
kind: AgentProfile
name: byok-without-variable
spec:
  avatarId: kai-002
  provider: gpt
  byok: {provider: openai}
""",
    )
    result = project.cli("validate")
    assert result.code == 1
    err = result.err
    assert (
        "agents/agents.yaml:13:12: ConversationTest 'broken' references AgentProfile 'nobody', "
        "which does not exist" in err
    )
    assert (
        "agents/agents.yaml:16:25: ConversationTest 'broken': turns[0].expect.matches is not "
        in err
    )
    assert "needs exactly one target: `profile: KEY` or `preset: KEY`" in err
    assert "references ConversationPreset 'tommy-support', which does not exist" in err
    assert "ConversationTest 'no-turns' tests a profile but has no turns" in err
    assert "apiKeyEnv" in err and "byok" in err  # the variable must be named
    assert "provider" in err and "'gpt'" in err


def test_validate_online_checks_that_each_avatar_exists(
    make_project: Callable[..., E2EProject],
) -> None:
    project = make_project()
    write_agents(project, PASSING)
    assert project.cli("validate", "--online").code == 0
    agents = project.root / "agents" / "agents.yaml"
    agents.write_text(PROFILE.replace("aria-001", "aria-01") + "---\n" + PASSING)
    offline = project.cli("validate")
    assert offline.code == 0  # offline, any id may exist
    online = project.cli("validate", "--online", "--env", "test")
    assert online.code == 1
    assert (
        "agents/agents.yaml:4:13: AgentProfile 'aria-support': avatar 'aria-01' does not exist "
        "on Avatarium in environment 'test' (did you mean 'aria-001'?)" in online.err
    )


def test_render_shows_a_profile_substituted_with_its_byok_key_only_named(
    make_project: Callable[..., E2EProject],
) -> None:
    project = make_project()
    write_agents(project, PASSING)
    project.edit(
        "agents/agents.yaml",
        "  provider: groq\n",
        "  provider: groq\n  byok: {provider: openai, apiKeyEnv: E2E_BYOK_KEY}\n",
        1,
    )
    project.extra_env["E2E_BYOK_KEY"] = "byok-never-rendered-1234"
    result = project.cli("render", "--env", "test", "agentprofile/aria-support")
    assert result.code == 0, result.err
    assert "kind: AgentProfile" in result.out
    assert "You are Aria from Acme." in result.out  # ${vars.company} substituted
    assert "apiKeyEnv: E2E_BYOK_KEY" in result.out
    assert "byok-never-rendered-1234" not in result.text


def test_a_system_prompt_from_a_secret_variable_is_masked_in_render(
    make_project: Callable[..., E2EProject],
) -> None:
    project = make_project()
    write_agents(project, PASSING)
    project.edit(
        "avatarsync.yaml",
        'manifests: ["characters/*.yaml", "agents/*.yaml"]',
        'manifests: ["characters/*.yaml", "agents/*.yaml"]\nenv: {secret: [E2E_PROMPT]}',
    )
    project.edit("agents/agents.yaml", "You are Aria from ${vars.company}.", "${env.E2E_PROMPT}")
    project.extra_env["E2E_PROMPT"] = "You are Aria, secret-prompt-5678."
    result = project.cli("render", "--env", "test", "AgentProfile/aria-support")
    assert result.code == 0, result.err
    assert "systemPrompt: '***'" in result.out
    assert "secret-prompt-5678" not in result.text


def test_the_project_file_checks_avatarium_endpoints(
    make_project: Callable[..., E2EProject],
) -> None:
    project = make_project()
    write_agents(project, PASSING)
    endpoint = 'avatarium: {url: "' + project.server.url + '/v1", apiKeyEnv: E2E_AVATARIUM_KEY}'
    project.edit(
        "avatarsync.yaml",
        endpoint,
        "avatarium: {emulator: true, url: https://api.avatarium.ai/v1}",
        1,
    )
    project.edit("avatarsync.yaml", endpoint, "avatarium: {url: https://api.avatarium.ai/v1}")
    result = project.cli("validate")
    assert result.code == 1
    assert (
        "environment 'test': avatarium.url cannot be combined with avatarium.emulator: true"
        in result.err
    )
    assert "environment 'prod': avatarium needs apiKeyEnv" in result.err


def test_an_avatarium_emulator_next_to_a_real_equos_is_started_for_the_run(
    make_project: Callable[..., E2EProject],
) -> None:
    project = make_project()
    write_agents(project, PASSING)
    project.edit(
        "avatarsync.yaml",
        'avatarium: {url: "' + project.server.url + '/v1", apiKeyEnv: E2E_AVATARIUM_KEY}',
        "avatarium: {emulator: true}",
        1,
    )
    result = project.cli("test", "--env", "test")
    assert result.code == 0, result.text
    assert "2 tests passed, 0 failed" in result.out
    assert (project.root / ".avatarsync" / "emulator" / "test-avatarium.sqlite").is_file()
    with project.http() as http:  # the environment's Equos emulator was not used for it
        requests = http.get("/_emulator/stats").json()["requests"]
    assert not any("/v1/" in key for key in requests)
