"""The Python API behind the CLI: each command is one call here.

The CLI parses options and prints; everything else (finding the project,
loading, resolving, checking, rendering) is wired here from the stage
modules, with explicit arguments and no click. Errors are raised as
`AvatarsyncError`s (a `ManifestError` carries every diagnostic at once) and
turned into messages by the CLI alone.

Sections: manifests (load, validate, resolve, render), scaffolding and
schemas. Plan and apply functions join them in their own section.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import resources as package_files
from pathlib import Path
from typing import Any

from avatarsync.errors import AvatarsyncError, Diagnostic, ManifestError, SessionError
from avatarsync.manifests.lint import lint, preset_context
from avatarsync.manifests.loader import dump_yaml, load_file
from avatarsync.manifests.manifest_set import ManifestSet, load_manifests
from avatarsync.manifests.project import Project, find_project
from avatarsync.manifests.resolve import FileDigest, Resolution, resolve_environment
from avatarsync.manifests.schema import generate_schemas
from avatarsync.manifests.templating import CONTEXT_NAMES, TemplateFailure, render_template
from avatarsync.resources import Address, DesiredResource, DesiredState, Kind
from avatarsync.secret import MASK

__all__ = [
    "ScaffoldError",
    "UnknownAddressError",
    "check_schemas",
    "init_project",
    "load_manifest_set",
    "load_project",
    "load_values",
    "parse_assignments",
    "render",
    "render_preset",
    "resolve",
    "resolve_environment_full",
    "validate",
    "write_schemas",
]


class UnknownAddressError(AvatarsyncError):
    """`render KIND/NAME` named something the manifests do not define."""


class ScaffoldError(AvatarsyncError):
    """`init` would overwrite files."""


# --- manifests: load, validate, resolve, render ------------------------------------


def load_project(directory: Path | None = None, project_file: Path | None = None) -> Project:
    """The project for a directory (searching upwards) or an explicit project file."""
    return find_project(directory, project_file)


def load_manifest_set(project: Project) -> tuple[ManifestSet, list[Diagnostic]]:
    """Every manifest document of the project, plus warnings about the globs."""
    files, warnings = project.manifest_files()
    return load_manifests(files), warnings


def validate(project: Project, env_name: str | None = None) -> list[Diagnostic]:
    """Check everything offline for one environment (or all of them).

    Returns the warnings; raises ManifestError with every error (and the
    warnings) at once. An unset `${env.X}` is only a warning here, so CI can
    validate without every environment's secrets.
    """
    names = [project.environment(env_name).name] if env_name else list(project.environments)
    manifests, found = load_manifest_set(project)
    found += manifests.diagnostics
    digests: dict[Path, FileDigest] = {}
    for name in names:
        resolution, problems = _resolve(project, name, manifests, offline=True, digests=digests)
        found += problems
        if resolution is not None:
            found += lint(project, resolution)
    diagnostics = sorted(set(found))
    if any(d.severity == "error" for d in diagnostics):
        raise ManifestError(diagnostics)
    return diagnostics


def resolve(project: Project, env_name: str) -> DesiredState:
    """The desired state of one environment; ManifestError lists every problem."""
    return resolve_environment_full(project, env_name).state


def resolve_environment_full(project: Project, env_name: str) -> Resolution:
    """Like `resolve`, keeping what renders and checks need (sources, labels).

    Prompt templates are checked too: a broken preset fails here, not when a
    session starts.
    """
    manifests, _ = load_manifest_set(project)
    resolution, problems = _resolve(project, env_name, manifests, offline=False, digests={})
    problems = list(manifests.diagnostics) + problems
    if resolution is not None:
        problems += lint(project, resolution)
    errors = sorted({d for d in problems if d.severity == "error"})
    if errors or resolution is None:
        raise ManifestError(errors)
    return resolution


def render_preset(
    project: Project, env_name: str, preset_key: str, values: Mapping[str, Any]
) -> dict[str, str]:
    """The final `promptTemplateVars` of a preset in one environment.

    `values` are the caller's (command line, session start); they cannot
    replace vars, env or character.
    """
    resolution = resolve_environment_full(project, env_name)
    return _render_preset(project, resolution, preset_key, values)


def render(
    project: Project,
    env_name: str,
    address: str | None = None,
    values: Mapping[str, Any] | None = None,
) -> str:
    """YAML of the resolved desired state (secrets masked) and rendered presets.

    `address` (`Kind/name`, kind case-insensitive) limits the output to one
    resource or preset.
    """
    resolution = resolve_environment_full(project, env_name)
    state = resolution.state
    wanted = _parse_address(address, state) if address else None
    documents: list[dict[str, Any]] = []
    for resource_address, resource in state.resources.items():
        if wanted is None or wanted == resource_address:
            documents.append(_resource_document(project, resource))
    for key, preset in state.presets.items():
        if wanted is None or wanted == Address(Kind.CONVERSATION_PRESET.value, key):
            rendered = _render_preset(project, resolution, key, values or {})
            spec: dict[str, Any] = {
                "character": preset.character,
                "maxSeconds": preset.max_seconds,
                "promptCtx": preset.prompt_ctx,
                "promptTemplateVars": rendered,
            }
            documents.append({"kind": Kind.CONVERSATION_PRESET.value, "name": key, "spec": spec})
    env = resolution.environment
    header = f"# avatarsync render: environment '{env.name}', client '{env.client}'\n"
    if not documents:
        return header
    return header + dump_yaml(documents, documents=True)


def parse_assignments(items: Iterable[str]) -> dict[str, Any]:
    """`key=value` pairs (from --set) as a mapping; dotted keys nest:
    `customer.name=Ann` gives {"customer": {"name": "Ann"}}. Values are text."""
    result: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SessionError(f"--set expects key=value, got '{item}'")
        parts = key.strip().split(".")
        target = result
        for part in parts[:-1]:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise SessionError(f"--set {key}: '{part}' is already set to a value")
            target = nested
        target[parts[-1]] = value
    return result


def load_values(path: Path) -> dict[str, Any]:
    """A YAML mapping of caller values (--values FILE)."""
    loaded = load_file(path, str(path))
    if loaded.diagnostics:
        raise ManifestError(loaded.diagnostics)
    if not loaded.documents:
        return {}
    data = loaded.documents[0].data
    if len(loaded.documents) > 1 or not isinstance(data, dict):
        raise SessionError(f"{path}: a values file holds one mapping of name: value")
    return data


def _resolve(
    project: Project,
    env_name: str,
    manifests: ManifestSet,
    *,
    offline: bool,
    digests: dict[Path, FileDigest],
) -> tuple[Resolution | None, list[Diagnostic]]:
    env = project.environment(env_name)
    # A file that could not be read hides its resources: saying that links
    # to them dangle would only bury the real error.
    partial = any(d.severity == "error" for d in manifests.diagnostics)
    return resolve_environment(
        project, env, manifests, offline=offline, digests=digests, partial=partial
    )


def _render_preset(
    project: Project, resolution: Resolution, preset_key: str, values: Mapping[str, Any]
) -> dict[str, str]:
    state = resolution.state
    preset = state.presets.get(preset_key)
    if preset is None:
        known = ", ".join(state.presets) or "none"
        raise SessionError(f"no ConversationPreset '{preset_key}' (known: {known})")
    reserved = sorted(set(values) & set(CONTEXT_NAMES))
    if reserved:
        raise SessionError(
            f"caller values cannot be named {', '.join(reserved)}: "
            "those names are the environment's vars, env and the character"
        )
    context = preset_context(project, resolution, preset, values)
    doc = resolution.preset_documents[preset_key]
    rendered: dict[str, str] = {}
    for name, template in preset.prompt_template_vars.items():
        try:
            rendered[name] = render_template(template, context, names="pass it with --set")
        except TemplateFailure as failure:
            path = ("spec", "promptTemplateVars", name)
            at = doc.source.locate_line(
                path, doc.data["spec"]["promptTemplateVars"][name], failure.line
            )
            raise SessionError(
                f"{at}: ConversationPreset '{preset_key}' promptTemplateVars.{name}: "
                f"{failure.describe(resolution.environment.name)}"
            ) from None
    return rendered


def _parse_address(text: str, state: DesiredState) -> Address:
    try:
        address = Address.parse(text)
    except ValueError as exc:
        raise UnknownAddressError(f"{exc} (e.g. Character/tommy)") from None
    kinds = {kind.value.lower(): kind.value for kind in Kind}
    kind = kinds.get(address.kind.lower())
    if kind is None:
        raise UnknownAddressError(
            f"unknown kind '{address.kind}' in '{text}'; expected one of: "
            + ", ".join(k.value for k in Kind)
        )
    address = Address(kind, address.key)
    known = set(state.resources) | {
        Address(Kind.CONVERSATION_PRESET.value, key) for key in state.presets
    }
    if address not in known:
        same_kind = sorted(a.key for a in known if a.kind == kind)
        listing = ", ".join(same_kind) or "none"
        raise UnknownAddressError(
            f"{address} is not defined in environment '{state.environment}' "
            f"({kind} keys: {listing})"
        )
    return address


def _resource_document(project: Project, resource: DesiredResource) -> dict[str, Any]:
    spec = {
        name: (MASK if name in resource.sensitive_fields and value is not None else value)
        for name, value in resource.spec.items()
    }
    if resource.documents:
        spec["documents"] = [
            {
                "name": document.name,
                "description": document.description,
                "mimeType": document.mime_type,
                "path": project.display(document.path),
                "size": document.size,
                "sha256": document.sha256,
            }
            for document in resource.documents
        ]
    doc: dict[str, Any] = {"kind": resource.kind, "name": resource.key}
    if resource.inline_owner is not None:
        doc["inlineOf"] = str(resource.inline_owner)
    doc["spec"] = spec
    return doc


# --- scaffolding and schemas ------------------------------------------------------

_SCAFFOLD_FILES = ("avatarsync.yaml", "characters/assistant.yaml")
_GITIGNORE = ".avatarsync/\n.env\n.env.*\n"


def init_project(directory: Path, name: str | None = None) -> list[Path]:
    """Write a small project that validates into `directory`; never overwrite.

    Returns the files written. The schemas go to `schemas/` so editors
    validate the files at once.
    """
    directory = directory.resolve()
    project_name = name or _default_name(directory)
    planned: dict[Path, str] = {}
    scaffold = package_files.files("avatarsync") / "scaffold"
    for relative in _SCAFFOLD_FILES:
        text = (scaffold / relative).read_text(encoding="utf-8")
        planned[directory / relative] = text.replace("__PROJECT_NAME__", project_name)
    for schema_name, text in generate_schemas().items():
        planned[directory / "schemas" / schema_name] = text
    existing = sorted(str(path) for path in planned if path.exists())
    if existing:
        raise ScaffoldError(
            "init does not overwrite files; already present: " + ", ".join(existing)
        )
    gitignore = directory / ".gitignore"
    if not gitignore.exists():
        planned[gitignore] = _GITIGNORE
    written: list[Path] = []
    for path, text in planned.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def write_schemas(out_dir: Path) -> list[Path]:
    """Write every JSON Schema into `out_dir`; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generate_schemas().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def check_schemas(out_dir: Path) -> list[str]:
    """Names of schema files in `out_dir` that are missing or out of date."""
    stale = []
    for name, text in generate_schemas().items():
        path = out_dir / name
        try:
            current = path.read_text(encoding="utf-8")
        except OSError:
            current = None
        if current != text:
            stale.append(name)
    return stale


def _default_name(directory: Path) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in directory.name)
    return cleaned.strip("-_") or "avatars"
