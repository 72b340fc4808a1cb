"""The CLI's shared parts: global flags anywhere, GitHub annotations, the step summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatarsync.cli.app import CliContext, annotation, hoist_global_flags, write_step_summary


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["plan", "--env", "x", "--no-color"], ["--no-color", "plan", "--env", "x"]),
        (["--debug", "apply", "--github"], ["--debug", "--github", "apply"]),
        (["render", "--", "--debug"], ["render", "--", "--debug"]),  # after -- is data
        (["plan"], ["plan"]),
    ],
)
def test_global_flags_may_follow_the_command(argv: list[str], expected: list[str]) -> None:
    assert hoist_global_flags(argv) == expected


def test_annotations_escape_properties_and_message() -> None:
    assert annotation("error", "50% done\nnext: line", "dir/a,b:c.yaml", 3, 7) == (
        "::error file=dir/a%2Cb%3Ac.yaml,line=3,col=7::50%25 done%0Anext: line"
    )
    assert annotation("warning", "plain") == "::warning::plain"


def test_the_step_summary_is_written_only_in_github_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    rendered: list[str] = []

    def render(text: str) -> str:
        rendered.append(text)
        return text

    write_step_summary(CliContext(github=False), lambda: render("### not written"))
    assert not summary.exists()
    assert rendered == []  # not even rendered outside GitHub mode
    write_step_summary(CliContext(github=True), lambda: render("### one"))
    write_step_summary(CliContext(github=True), lambda: render("### two\n"))
    assert summary.read_text() == "### one\n\n### two\n\n"  # appended, like other steps'


def test_github_mode_turns_on_from_the_environment(cli, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    (tmp_path / "avatarsync.yaml").write_text(
        "manifests: ['*.yaml']\nenvironments: {local: {emulator: true}}\n"
    )
    (tmp_path / "v.yaml").write_text("kind: Voice\nname: v\nspec: {tone: x}\n")
    result = cli("validate", cwd=tmp_path)
    assert result.code == 1
    assert result.err.startswith("::error file=v.yaml,line=3,col=")
