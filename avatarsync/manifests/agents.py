"""AgentProfile and ConversationTest documents → their resolved, typed forms.

Part of resolution (`resolve`): the resolver has already substituted
`${...}`, validated the model and registered the keys; here the validated
specs become `AgentProfile` / `ConversationTest` values, with the checks the
schema cannot make (exactly one target, a test of a profile has turns, every
`matches` compiles) reported at the line of the field. A BYOK key never
passes through here: only the name of its variable.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from avatarsync.manifests.loader import YamlDocument, YamlPath, iter_strings
from avatarsync.manifests.models import ExpectSpec
from avatarsync.resources import (
    AgentProfile,
    ByokSettings,
    ConversationTest,
    Position,
    TestTurn,
)

__all__ = ["agent_profile", "byok_key_reads", "conversation_test"]


def agent_profile(
    doc: YamlDocument, key: str, spec: Any, secret_paths: Collection[YamlPath] = ()
) -> AgentProfile:
    """`secret_paths`: paths whose value came from a secret variable (masked when shown)."""
    byok = spec.byok
    positions = {
        name: doc.source.values[("spec", name)]
        for name in ("avatarId", "provider", "systemPrompt", "byok")
        if ("spec", name) in doc.source.values
    }
    return AgentProfile(
        key=key,
        avatar_id=spec.avatar_id,
        provider=spec.provider,
        system_prompt=spec.system_prompt,
        byok=(
            ByokSettings(byok.provider, byok.api_key_env, byok.model, byok.base_url)
            if byok is not None
            else None
        ),
        position=doc.position,
        field_positions=positions,
        sensitive_fields=frozenset(
            str(path[1]) for path in secret_paths if len(path) >= 2 and path[0] == "spec"
        ),
    )


def conversation_test(
    doc: YamlDocument, key: str, spec: Any, what: str
) -> tuple[ConversationTest, list[tuple[Position, str]]]:
    """The test, and the problems found (position, message); use it only without problems."""
    problems: list[tuple[Position, str]] = []

    def at(path: YamlPath) -> Position:
        return doc.source.value(path)

    if (spec.profile is None) == (spec.preset is None):
        problems.append(
            (at(("spec",)), f"{what} needs exactly one target: `profile: KEY` or `preset: KEY`")
        )
    if spec.profile is not None and not spec.turns:
        problems.append((at(("spec",)), f"{what} tests a profile but has no turns"))
    if spec.preset is not None and spec.turns:
        problems.append(
            (
                at(("spec", "turns")),
                f"{what} tests a preset (a start/check/stop smoke: Equos conversations are "
                "audio/video), so it cannot have turns",
            )
        )
    if spec.profile is not None and spec.vars:
        problems.append(
            (
                at(("spec", "vars")),
                f"{what}: vars are the values of a preset's inputs; a "
                "profile test has none (put values in the profile's systemPrompt with ${vars.x})",
            )
        )
    turns: list[TestTurn] = []
    for index, turn in enumerate(spec.turns):
        expect = turn.expect or ExpectSpec.model_validate({})
        if expect.matches is not None:
            try:
                re.compile(expect.matches)
            except re.error as exc:
                problems.append(
                    (
                        at(("spec", "turns", index, "expect", "matches")),
                        f"{what}: turns[{index}].expect.matches is not a valid regular "
                        f"expression: {exc}",
                    )
                )
        turns.append(
            TestTurn(
                say=turn.say,
                contains=_texts(expect.contains),
                not_contains=_texts(expect.not_contains),
                matches=expect.matches,
                max_first_chunk_seconds=expect.max_first_chunk_seconds,
                max_seconds=expect.max_seconds,
                position=at(("spec", "turns", index)),
            )
        )
    test = ConversationTest(
        key=key,
        profile=spec.profile,
        preset=spec.preset,
        turns=tuple(turns),
        vars=dict(spec.vars),
        timeout_seconds=float(spec.timeout_seconds),
        position=doc.position,
    )
    return test, problems


def _texts(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def byok_key_reads(
    documents: Iterable[YamlDocument], profiles: Mapping[str, AgentProfile]
) -> list[tuple[Position, str]]:
    """Every `${env.X}` whose X holds a profile's BYOK key: a manifest may never
    read one (it would end up in a prompt, a plan or a render)."""
    owners = {p.byok.api_key_env: key for key, p in profiles.items() if p.byok is not None}
    if not owners:
        return []
    found: list[tuple[Position, str]] = []
    for doc in documents:
        for path, text in iter_strings(doc.data):
            if "${" not in text:
                continue
            for name in _ENV_READ.findall(text):
                if name in owners:
                    found.append(
                        (
                            doc.source.value(path),
                            f"${{env.{name}}} is not allowed: {name} holds the BYOK key of "
                            f"AgentProfile '{owners[name]}', which manifests can never read",
                        )
                    )
    return found


_ENV_READ = re.compile(r"(?<!\$)\$\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}")
