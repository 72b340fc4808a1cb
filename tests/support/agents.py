"""Projects with Avatarium agents for the end-to-end tests: an AgentProfile, suites
that pass or fail against the emulator's deterministic assistant, and the emulator's
counters (open conversations) and switches."""

from __future__ import annotations

from typing import Any

from support.e2e import CLIENT, E2EProject

AVATARIUM_KEY_VAR = "E2E_AVATARIUM_KEY"

PROJECT = """\
manifests: ["characters/*.yaml", "agents/*.yaml"]
environments:
  test:
    provider: equos
    url: {url}
    apiKeyEnv: E2E_EQUOS_KEY
    client: {client}
    vars: {{company: Acme}}
    avatarium: {{url: "{url}/v1", apiKeyEnv: E2E_AVATARIUM_KEY{ws_auth}}}
  prod:
    provider: equos
    url: {url}
    apiKeyEnv: E2E_EQUOS_KEY
    client: {client}-prod
    vars: {{company: Acme}}
    avatarium: {{url: "{url}/v1", apiKeyEnv: E2E_AVATARIUM_KEY}}
"""

PROFILE = """\
kind: AgentProfile
name: aria-support
spec:
  avatarId: aria-001
  provider: groq
  systemPrompt: |
    You are Aria from ${vars.company}.
    Topics: billing, return policy
"""

PASSING = """\
kind: ConversationTest
name: aria-greets
spec:
  profile: aria-support
  turns:
    - say: "Hello!"
      expect: {contains: ["Aria"], notContains: "error", matches: "^Hello", maxFirstChunkSeconds: 5, maxSeconds: 10}
    - say: "What is your return policy?"
      expect: {contains: "return policy"}
---
kind: ConversationTest
name: aria-says-bye
spec:
  profile: aria-support
  turns:
    - say: "bye"
      expect: {matches: "^Goodbye from Aria"}
"""

WRONG_CONTAINS = """\
kind: ConversationTest
name: wrong-contains
spec:
  profile: aria-support
  turns:
    - say: "Hello!"
      expect: {contains: ["Tommy"]}
"""


def write_agents(project: E2EProject, *documents: str, ws_auth: str | None = None) -> None:
    auth = f", wsAuth: {ws_auth}" if ws_auth else ""
    (project.root / "avatarsync.yaml").write_text(
        PROJECT.format(url=project.server.url, client=CLIENT, ws_auth=auth)
    )
    agents = project.root / "agents"
    agents.mkdir(exist_ok=True)
    (agents / "agents.yaml").write_text("---\n".join((PROFILE, *documents)))
    project.extra_env[AVATARIUM_KEY_VAR] = project.key


def open_conversations(project: E2EProject) -> int:
    with project.http() as http:
        return int(http.get("/_emulator/stats").json()["openConversations"]["avatarium"])


def set_faults(project: E2EProject, **switches: Any) -> None:
    with project.http() as http:
        answer = http.post("/_emulator/faults", json=switches)
        assert answer.status_code == 200, answer.text
