"""The project file: finding it, its environments, keys from the environment and .env."""

from __future__ import annotations

from pathlib import Path

import pytest

from avatarsync.errors import ProjectError
from avatarsync.manifests.project import (
    DEFAULT_API_URL,
    Project,
    ProjectFileError,
    find_project,
    parse_dotenv,
)
from avatarsync.resources import Position
from avatarsync.secret import Secret

PROJECT = """\
name: acme
manifests: ["characters/*.yaml", "missing/*.yaml"]
env:
  allow: [SUPPORT_EMAIL]
  allowPrefixes: [ACME_]
  secret: [AGENT_ID]
environments:
  local: {emulator: true}
  staging:
    url: https://staging.example.test
    apiKeyEnv: EQUOS_KEY_STAGING
    client: acme-stg
    state: state/staging.json
    vars: {company: Acme, nested: {x: 1}}
  prod: {apiKeyEnv: EQUOS_KEY_PROD, protect: true}
"""


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "characters" / "deep").mkdir(parents=True)
    (root / "avatarsync.yaml").write_text(PROJECT)
    (root / "characters" / "b.yaml").write_text("# b\n")
    (root / "characters" / "a.yaml").write_text("# a\n")
    return root


def test_found_by_walking_up(project_dir: Path) -> None:
    project = find_project(project_dir / "characters" / "deep")
    assert project.root == project_dir.resolve()
    assert project.file == project_dir.resolve() / "avatarsync.yaml"
    assert project.name == "acme"
    assert project.manifests == ("characters/*.yaml", "missing/*.yaml")


def test_found_from_the_working_directory(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project_dir / "characters")
    assert find_project().root == project_dir.resolve()


def test_explicit_project_file_relative_to_the_directory(project_dir: Path) -> None:
    (project_dir / "other.yaml").write_text(PROJECT.replace("name: acme", "name: other"))
    project = find_project(project_dir, Path("other.yaml"))
    assert (project.name, project.file.name) == ("other", "other.yaml")


def test_missing_project_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as caught:
        find_project(tmp_path)
    assert str(caught.value) == (
        f"no avatarsync.yaml in {tmp_path.resolve()} or any folder above it "
        "(create one with `avatarsync init`, or use -C DIR / --project FILE)"
    )
    with pytest.raises(ProjectError, match=r"^nope.yaml: no such project file$"):
        find_project(tmp_path, Path("nope.yaml"))
    with pytest.raises(ProjectError, match=r"no such directory$"):
        find_project(tmp_path / "absent")


def test_environments_with_defaults(project_dir: Path) -> None:
    project = find_project(project_dir)
    assert list(project.environments) == ["local", "staging", "prod"]
    local, staging, prod = (project.environments[name] for name in ("local", "staging", "prod"))
    assert (local.emulator, local.url, local.api_key_env, local.client) == (
        True,
        None,
        None,
        "acme-local",
    )
    assert local.state_path == project.root / ".avatarsync" / "state" / "local.json"
    assert local.position == Position("avatarsync.yaml", 8, 10)
    assert (staging.url, staging.client, staging.provider) == (
        "https://staging.example.test",
        "acme-stg",
        "equos",
    )
    assert staging.state_path == project.root / "state" / "staging.json"
    assert staging.vars == {"company": "Acme", "nested": {"x": 1}}
    assert (prod.url, prod.protect, prod.client) == (DEFAULT_API_URL, True, "acme-prod")


def test_name_defaults_to_the_folder(tmp_path: Path) -> None:
    (tmp_path / "avatarsync.yaml").write_text(
        'manifests: ["*.yaml"]\nenvironments: {dev: {emulator: true}}\n'
    )
    project = find_project(tmp_path)
    assert project.name == tmp_path.name
    assert project.environments["dev"].client == f"{tmp_path.name}-dev"


def test_shared_state_needs_a_client_tag_that_is_not_the_folders_name(tmp_path: Path) -> None:
    """Shared state is keyed by the client tag: a folder name would differ per checkout."""
    text = (
        'manifests: ["*.yaml"]\nenvironments:\n'
        "  ci: {url: https://api.equos.ai, state: {backend: postgres, urlEnv: PG}}\n"
    )
    (tmp_path / "avatarsync.yaml").write_text(text)
    with pytest.raises(ProjectFileError) as caught:
        find_project(tmp_path)
    [problem] = [str(d) for d in caught.value.diagnostics]
    assert problem.startswith("avatarsync.yaml:3:42: environment 'ci' shares its state")
    assert "set `name:` in the project file" in problem
    (tmp_path / "avatarsync.yaml").write_text("name: acme\n" + text)
    assert find_project(tmp_path).environments["ci"].state.backend == "postgres"


def test_unknown_environment_lists_the_known_ones(project_dir: Path) -> None:
    project = find_project(project_dir)
    with pytest.raises(ProjectError) as caught:
        project.environment("stagign")
    assert str(caught.value) == (
        "unknown environment 'stagign' (did you mean 'staging'?); "
        "avatarsync.yaml defines: local, staging, prod"
    )


def test_manifest_files_sorted_with_a_warning_per_empty_glob(project_dir: Path) -> None:
    project = find_project(project_dir)
    files, warnings = project.manifest_files()
    assert [name for _, name in files] == ["characters/a.yaml", "characters/b.yaml"]
    assert [str(w) for w in warnings] == [
        "avatarsync.yaml:2:34: warning: manifest glob 'missing/*.yaml' matches no file"
    ]


def test_api_key_from_process_then_env_file_then_dotenv(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EQUOS_KEY_STAGING", raising=False)
    monkeypatch.delenv("EQUOS_KEY_PROD", raising=False)
    (project_dir / ".env").write_text(
        "# keys\nexport EQUOS_KEY_STAGING='from-dotenv-1234'\nEQUOS_KEY_PROD=prod-dotenv-5678\n"
    )
    (project_dir / ".env.staging").write_text('EQUOS_KEY_STAGING="from-staging-file"\n')
    project = find_project(project_dir)
    staging, prod, local = (project.environments[n] for n in ("staging", "prod", "local"))
    key = project.api_key(staging)
    assert isinstance(key, Secret)
    assert key.reveal() == "from-staging-file"
    assert str(key) == "***" and "from" not in repr(key)
    assert project.api_key(prod).reveal() == "prod-dotenv-5678"
    assert project.api_key(local) is None
    # the real environment always wins over the files
    monkeypatch.setenv("EQUOS_KEY_PROD", "process-key-9999")
    assert find_project(project_dir).api_key(prod).reveal() == "process-key-9999"


def test_api_key_not_set_is_none(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EQUOS_KEY_PROD", raising=False)
    project = find_project(project_dir)
    assert project.api_key(project.environments["prod"]) is None


def test_env_policy_and_the_env_templates_see(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_REGION", "eu")
    monkeypatch.setenv("SUPPORT_EMAIL", "help@acme.test")
    monkeypatch.setenv("AGENT_ID", "agent-secret-1")
    monkeypatch.setenv("HOME_OTHER", "x")
    project = find_project(project_dir)
    policy = project.env_policy
    assert policy.allows("ACME_REGION") and policy.allows("SUPPORT_EMAIL")
    assert policy.allows("AGENT_ID") and policy.is_secret("AGENT_ID")
    assert not policy.allows("HOME_OTHER")
    seen = project.allowed_env(project.environments["staging"])
    assert seen["ACME_REGION"] == "eu" and seen["SUPPORT_EMAIL"] == "help@acme.test"
    assert "AGENT_ID" not in seen and "HOME_OTHER" not in seen


def test_parse_dotenv() -> None:
    assert parse_dotenv(
        "A=1\n# comment\n\nexport B = two words # note\nC='single # kept'\n"
        'D="line\\nbreak"\nnot a line\nE=\n'
        'F="quoted" # a comment after quotes\n'
        "G='s' # c\n"
        "H=a#b\n"
    ) == {
        "A": "1",
        "B": "two words",
        "C": "single # kept",
        "D": "line\nbreak",
        "E": "",
        "F": "quoted",  # not '"quoted"' (which was sent as the key and gave a 401)
        "G": "s",
        "H": "a#b",
    }


def test_invalid_project_file_lists_every_problem(tmp_path: Path) -> None:
    (tmp_path / "avatarsync.yaml").write_text(
        "manifests: []\nenvironments:\n  bad.name: {}\n  ok: {emulator: yes, vars: {v: 1.10}}\n"
    )
    with pytest.raises(ProjectFileError) as caught:
        find_project(tmp_path)
    assert [str(d) for d in caught.value.diagnostics] == [
        "avatarsync.yaml:1:12: manifests must not be empty",
        "avatarsync.yaml:3:3: 'bad.name' is not a valid name in environments of the project "
        "file: use letters, digits, '-' and '_' (up to 63, starting with a letter or digit)",
        "avatarsync.yaml:4:18: ambiguous value: YAML 1.1 reads 'yes' as the boolean true, "
        'YAML 1.2 as text; write true, or "yes" in quotes for text',
        "avatarsync.yaml:4:33: '1.10' is read as the number 1.1; write \"1.10\" in quotes "
        "to keep it as written",
    ]
    assert caught.value.root == tmp_path.resolve()


def test_project_file_must_be_one_mapping(tmp_path: Path) -> None:
    (tmp_path / "avatarsync.yaml").write_text("a: 1\n---\nb: 2\n")
    with pytest.raises(ProjectFileError) as caught:
        find_project(tmp_path)
    assert [str(d) for d in caught.value.diagnostics] == [
        "avatarsync.yaml:3:1: the project file must hold exactly one YAML document, not 2"
    ]
    (tmp_path / "avatarsync.yaml").write_text("- a\n")
    with pytest.raises(ProjectFileError) as caught:
        find_project(tmp_path)
    assert [str(d) for d in caught.value.diagnostics] == [
        "avatarsync.yaml:1:1: document must be a mapping, not a list"
    ]


def test_project_is_a_value(project_dir: Path) -> None:
    assert isinstance(find_project(project_dir), Project)
    assert find_project(project_dir) == find_project(project_dir)
