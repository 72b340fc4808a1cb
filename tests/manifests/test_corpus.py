"""The corpus of broken projects: each fails with exactly the expected diagnostics.

`tests/corpus/<case>/` is a project; `expected.txt` holds the exact
`file:line:col: message` lines `avatarsync validate` must print, in order.
The files too big or too binary to commit are made here in tmp_path.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avatarsync import api
from avatarsync.errors import ManifestError
from avatarsync.manifests.loader import dump_yaml

CORPUS = Path(__file__).resolve().parents[1] / "corpus"

CASES = sorted(path.name for path in CORPUS.iterdir() if (path / "expected.txt").is_file())
# These go through a real process, to prove end to end that bad input never
# shows a traceback; the rest run in-process through the same entry point.
IN_A_PROCESS = {"tabs", "malformed-yaml", "undefined-jinja", "bad-project-env"}

PROJECT = 'manifests: ["*.yaml"]\nenvironments:\n  local: {emulator: true}\n'


def test_corpus_is_not_empty() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES)
def test_corpus_case(case: str, cli, process) -> None:
    folder = CORPUS / case
    expected = (folder / "expected.txt").read_text(encoding="utf-8").splitlines()
    if case in IN_A_PROCESS:
        result = process("validate", cwd=folder)
    else:
        result = cli("validate", cwd=folder)
    errors = sum(1 for line in expected if ": warning: " not in line)
    assert result.code == (1 if errors else 0), result.err
    assert result.diagnostic_lines == expected
    assert "Traceback" not in result.err + result.out
    assert "internal error" not in result.err
    last = result.err.splitlines()[-1]
    assert last.startswith(f"{errors} error" if errors else "ok: ")


def _has_errors(case: str) -> bool:
    lines = (CORPUS / case / "expected.txt").read_text(encoding="utf-8").splitlines()
    return any(": warning: " not in line for line in lines)


def _an_environment(folder: Path) -> str:
    """The first environment the project file names (even a broken one)."""
    for line in (folder / "avatarsync.yaml").read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if line.startswith("  ") and not line.startswith("   ") and stripped.endswith(("}", ":")):
            name = stripped.split(":", 1)[0]
            if name.isidentifier():
                return name
    return "local"


@pytest.mark.parametrize("case", [c for c in CASES if _has_errors(c)])
def test_plan_refuses_every_broken_corpus_case_before_anything_remote(case: str, cli) -> None:
    """The same bad input through `plan`: exit 1 with file:line:col, no traceback,
    and no server started (the manifests are resolved before the emulator is)."""
    folder = CORPUS / case
    result = cli("plan", "--env", _an_environment(folder), cwd=folder)
    assert result.code == 1, result.out + result.err
    assert result.diagnostic_lines or result.err.startswith("error: "), result.err
    assert "Traceback" not in result.err + result.out
    assert "internal error" not in result.err
    assert not (folder / ".avatarsync").exists()


@pytest.mark.parametrize("case", ["dangling-reference", "wrong-types"])
def test_corpus_from_elsewhere_with_dash_c(case: str, cli, tmp_path: Path) -> None:
    """With -C the project is found there and paths are shown from the cwd."""
    result = cli("-C", str(CORPUS / case), "validate", cwd=CORPUS)
    expected = (CORPUS / case / "expected.txt").read_text(encoding="utf-8").splitlines()
    assert result.code == 1
    assert result.diagnostic_lines == [f"{case}/{line}" for line in expected]


def test_ten_megabyte_file_is_refused_quickly(cli, tmp_path: Path) -> None:
    (tmp_path / "avatarsync.yaml").write_text(PROJECT)
    with (tmp_path / "huge.yaml").open("w") as handle:
        line = "# " + "x" * 1022 + "\n"
        handle.write(line * (10 * 1024))
    result = cli("validate", cwd=tmp_path)
    assert result.code == 1
    assert result.diagnostic_lines == [
        "huge.yaml:1:1: file is 10 MiB; manifest files are limited to 1 MiB "
        "(is this really a manifest?)"
    ]


def test_binary_garbage_is_not_text(process, tmp_path: Path) -> None:
    (tmp_path / "avatarsync.yaml").write_text(PROJECT)
    (tmp_path / "garbage.yaml").write_bytes(b"kind: Face\n\x89PNG\r\n\x1a\n" + os.urandom(64))
    (tmp_path / "latin1.yaml").write_bytes(b"kind: Face\nname: caf\xe9\n")
    result = process("validate", cwd=tmp_path)
    assert result.code == 1
    assert result.diagnostic_lines == [
        "garbage.yaml:2:1: not a UTF-8 text file: byte 0x89 cannot be decoded "
        "(binary data, or another encoding?)",
        "latin1.yaml:2:10: not a UTF-8 text file: byte 0xe9 cannot be decoded "
        "(binary data, or another encoding?)",
    ]
    assert "Traceback" not in result.err


def test_nul_bytes_are_binary(cli, tmp_path: Path) -> None:
    (tmp_path / "avatarsync.yaml").write_text(PROJECT)
    (tmp_path / "blob.yaml").write_bytes(b"abc\n\x00\x01\x02")
    result = cli("validate", cwd=tmp_path)
    assert result.diagnostic_lines == [
        "blob.yaml:2:1: not a UTF-8 text file: it contains NUL bytes (binary data?)"
    ]


def test_a_broken_file_does_not_make_references_to_it_dangle(cli, tmp_path: Path) -> None:
    (tmp_path / "avatarsync.yaml").write_text(PROJECT)
    (tmp_path / "brain.yaml").write_text("kind: Brain\nname: support\nspec: {instructions: [\n")
    (tmp_path / "tommy.yaml").write_text(
        "kind: Character\nname: tommy\nspec:\n"
        "  displayName: Tommy\n  livekitIdentity: tommy\n  brain: support\n"
    )
    result = cli("validate", cwd=tmp_path)
    assert result.code == 1
    assert result.diagnostic_lines == [
        "brain.yaml:4:1: invalid YAML: the file ends before the value above is complete "
        "(an unclosed bracket or quote?)"
    ]


def test_github_format_annotates_every_problem(cli) -> None:
    result = cli("validate", "--format", "github", cwd=CORPUS / "placeholders")
    assert result.code == 1
    assert result.out == ""  # annotations are diagnostics: stderr (the runner reads both)
    assert result.err.splitlines()[:-1] == [
        "::error file=brain.yaml,line=20,col=5::ConversationPreset 'chat' does not supply "
        "{{ order_id }}, which Brain 'support' uses: add 'order_id' to promptTemplateVars",
        "::warning file=brain.yaml,line=21,col=5::promptTemplateVars.plan is not used: "
        "Brain 'support' has no {{ plan }} placeholder",
    ]


def test_github_format_paths_are_relative_to_the_working_directory(cli) -> None:
    result = cli("-C", "tests/corpus/tabs", "validate", "--format", "github", cwd=CORPUS.parents[1])
    assert result.err.splitlines()[:-1] == [
        "::error file=tests/corpus/tabs/voice.yaml,line=4,col=1::"
        "tab character: YAML indentation must use spaces, not tabs"
    ]


# --- fuzz: whatever the documents hold, the answer is diagnostics -----------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 700),
    st.sampled_from(["tommy", "Puck", "x.md", "${vars.a}", "${env.X}", "{{ a }}", "{% if", "no"]),
    st.text(max_size=8),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(
                [
                    "identity",
                    "instructions",
                    "greetingMessage",
                    "displayName",
                    "documents",
                    "path",
                    "brain",
                    "voice",
                    "face",
                    "character",
                    "promptTemplateVars",
                    "maxSeconds",
                    "search",
                    "livekitIdentity",
                    "x",
                ]
            ),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)
_documents = st.lists(
    st.fixed_dictionaries(
        {
            "kind": st.sampled_from(
                [
                    "Face",
                    "Voice",
                    "Brain",
                    "KnowledgeBase",
                    "Character",
                    "ConversationPreset",
                    "Robot",
                ]
            ),
            "name": st.sampled_from(["a", "b", "a.b", "", "tommy"]),
            "spec": _values,
        }
    ),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(documents=_documents)
def test_random_manifests_give_diagnostics_never_a_crash(documents, tmp_path_factory) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "avatarsync.yaml").write_text(
        "manifests: ['*.yaml']\nenvironments: {local: {emulator: true, vars: {a: 1}}}\n"
    )
    (root / "m.yaml").write_text(dump_yaml(documents, documents=True))
    project = api.load_project(root)
    try:
        api.validate(project)
    except ManifestError as exc:
        assert all(d.line >= 1 and d.col >= 1 and d.message for d in exc.diagnostics)
