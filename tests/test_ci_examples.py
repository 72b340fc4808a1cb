"""The pipeline files a team copies are valid: YAML that parses, and every
`avatarsync` command in them is one the CLI accepts (command and options).

The commands themselves are played end to end, on two clones and a real
PostgreSQL backend, by tests/cli/test_pipeline.py.
"""

from __future__ import annotations

import re
import shlex

import click
import pytest
import yaml
from support.cli import REPO

from avatarsync.cli import main

FILES = [
    "examples/ci/github/pull-request.yml",
    "examples/ci/github/deploy.yml",
    "examples/ci/github/drift.yml",
    "examples/ci/gitlab-ci.yml",
]


def _scripts(document: object) -> list[str]:
    """Every shell snippet: GitHub `run:` values and GitLab `script:` items."""
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "run" and isinstance(value, str):
                found.append(value)
            elif key in ("script", "before_script") and isinstance(value, list):
                found += [v for v in value if isinstance(v, str)]
            else:
                found += _scripts(value)
    elif isinstance(document, list):
        for item in document:
            found += _scripts(item)
    return found


def _commands(script: str) -> list[list[str]]:
    script = re.sub(r"\$\{\{[^}]*\}\}", "staging", script).replace('"$ENV"', "staging")
    commands = []
    for line in script.splitlines():
        line = line.strip()
        if not line.startswith("avatarsync "):
            continue
        line = re.split(r"\s(?:>|\|\||#)", line)[0]  # redirection, fallback, comment
        commands.append(shlex.split(line)[1:])
    return commands


def _accepted(args: list[str]) -> None:
    """Parse like the CLI does, without running anything."""
    with main.make_context("avatarsync", list(args), resilient_parsing=False) as ctx:
        remaining = [*getattr(ctx, "_protected_args", []), *ctx.args]  # click 8.2 keeps the
        name, command, rest = main.resolve_command(ctx, remaining)  # command name apart
        assert command is not None, name
        command.make_context(name, rest, parent=ctx)


@pytest.mark.parametrize("name", FILES)
def test_every_avatarsync_command_in_a_pipeline_file_parses(name: str) -> None:
    document = yaml.safe_load((REPO / name).read_text())
    commands = [c for s in _scripts(document) for c in _commands(s)]
    assert commands, f"{name} runs no avatarsync command"
    for args in commands:
        _accepted(args)


def test_the_pipelines_cover_plan_apply_promote_and_drift() -> None:
    for group in (FILES[:3], FILES[3:]):
        used = {
            c[0]
            for name in group
            for s in _scripts(yaml.safe_load((REPO / name).read_text()))
            for c in _commands(s)
        }
        assert used >= {"validate", "plan", "apply", "test", "promote", "drift"}, group


@pytest.mark.parametrize("name", ["examples/ci/github/deploy.yml", "examples/ci/gitlab-ci.yml"])
def test_conversation_tests_run_on_staging_before_promotion(name: str) -> None:
    commands = [
        c for s in _scripts(yaml.safe_load((REPO / name).read_text())) for c in _commands(s)
    ]
    order = [c[0] for c in commands]
    assert commands[order.index("test")][:3] == ["test", "--env", "staging"]
    assert order.index("apply") < order.index("test") < order.index("promote")


def test_the_checker_rejects_an_unknown_option() -> None:
    with pytest.raises(click.NoSuchOption):
        _accepted(["plan", "--env", "prod", "--no-such-flag"])


def test_the_pre_commit_hook_runs_validate() -> None:
    [hook] = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "avatarsync-validate" and hook["pass_filenames"] is False
    _accepted(shlex.split(hook["entry"])[1:] + hook["args"])
    _accepted(["-C", "avatars", "validate"])  # the args the comment suggests
