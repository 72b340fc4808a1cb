"""Presets → what a session starts with: rendered in a project, or exported for an app.

Two ways to the same `SessionSpec`:

- in a project (`session start`, `render`): the preset is rendered with the
  environment's vars, env and character plus the caller's inputs, and its
  character's remote id comes from the environment's state;
- from an exported presets file (`presets export`, an app backend with no
  project): the file keeps, per preset, the character id, the values already
  fixed for the environment, and the templates that need the caller's
  inputs with exactly the context they read. `ExportedPresets.spec()`
  renders those with the same sandbox and the same input rules.

The export holds nothing secret (it is checked against every registered
secret before it is returned) and carries a content hash so an app can tell
when to reload it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources as package_files
from pathlib import Path
from typing import Any

from avatarsync._version import __version__
from avatarsync.conversations.sessions import SessionOptions, SessionSpec
from avatarsync.errors import ManifestError, SessionError
from avatarsync.manifests.lint import preset_context
from avatarsync.manifests.loader import load_file
from avatarsync.manifests.models import MAX_SESSION_SECONDS
from avatarsync.manifests.preset_inputs import bind_inputs, input_names_used
from avatarsync.manifests.project import Project
from avatarsync.manifests.resolve import Resolution
from avatarsync.manifests.templating import (
    CONTEXT_NAMES,
    TemplateFailure,
    render_template,
    template_names,
)
from avatarsync.resources import Address, Kind, Preset, PresetInput
from avatarsync.secret import scrub

__all__ = [
    "EXPORT_FORMAT",
    "EXPORT_SCHEMA_NAME",
    "ExportedPreset",
    "ExportedPresets",
    "build_spec",
    "character_id",
    "export_presets",
    "export_schema_text",
    "inputs_document",
    "load_presets_file",
    "project_spec",
    "render_project_preset",
    "session_name",
]

EXPORT_FORMAT = "avatarsync.presets/v1"
EXPORT_SCHEMA_NAME = "presets-export.schema.json"
CALLER_HINT = "pass it with --var"
_ENV_READ = re.compile(r"\benv\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['\"]([^'\"]+)['\"]\s*\])")


def session_name(preset_key: str) -> str:
    """A conversation name when the caller gives none: the preset and the time."""
    return f"{preset_key}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def _preset(resolution: Resolution, preset_key: str) -> Preset:
    presets = resolution.state.presets
    preset = presets.get(preset_key)
    if preset is None:
        known = ", ".join(presets) or "none"
        raise SessionError(f"no ConversationPreset '{preset_key}' (known: {known})")
    return preset


def render_project_preset(
    project: Project,
    resolution: Resolution,
    preset_key: str,
    values: Mapping[str, Any],
    *,
    partial: bool = False,
) -> dict[str, str]:
    """A preset's final `promptTemplateVars` in one environment; SessionError
    (with file:line) for a missing or undeclared input or a failing template.
    `partial` (render): a template that needs a required input the caller did
    not pass is shown as written instead."""
    preset = _preset(resolution, preset_key)
    reserved = sorted(set(values) & set(CONTEXT_NAMES))
    if reserved:
        raise SessionError(
            f"caller values cannot be named {', '.join(reserved)}: "
            "those names are the environment's vars, env and the character"
        )
    where = str(preset.field_positions.get("inputs", preset.position))
    bound = bind_inputs(preset_key, preset.inputs, values, where, allow_missing=partial)
    context = preset_context(project, resolution, preset, bound)
    doc = resolution.preset_documents[preset_key]
    unset = {n for n, d in (preset.inputs or {}).items() if d.required and n not in bound}
    rendered: dict[str, str] = {}
    for name, template in preset.prompt_template_vars.items():
        if unset and unset & set(input_names_used(template)):
            rendered[name] = template
            continue
        try:
            rendered[name] = render_template(template, context, names=CALLER_HINT)
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


def character_id(resolution: Resolution, ids: Mapping[Address, str], preset_key: str) -> str:
    """The remote id of a preset's character, from the environment's state."""
    preset = _preset(resolution, preset_key)
    address = Address(Kind.CHARACTER.value, preset.character)
    remote = ids.get(address)
    if remote is None:
        env = resolution.environment.name
        raise SessionError(
            f"ConversationPreset '{preset_key}' ({preset.position}) uses Character "
            f"'{preset.character}', which is not applied in environment '{env}' yet: "
            f"run `avatarsync apply --env {env}` first"
        )
    return remote


def build_spec(
    preset_key: str,
    character_id: str,
    client: str | None,
    max_seconds: int | None,
    prompt_ctx: str | None,
    prompt_template_vars: Mapping[str, str],
    options: SessionOptions,
) -> SessionSpec:
    """A SessionSpec from a rendered preset and the caller's options."""
    seconds = options.max_seconds if options.max_seconds is not None else max_seconds
    if seconds is not None and not 0 < seconds <= MAX_SESSION_SECONDS:
        raise SessionError(f"maxSeconds must be between 1 and {MAX_SESSION_SECONDS}, got {seconds}")
    return SessionSpec(
        preset=preset_key,
        name=options.name or session_name(preset_key),
        character_id=character_id,
        client=client,
        max_seconds=seconds,
        prompt_ctx=prompt_ctx,
        prompt_template_vars=dict(prompt_template_vars),
        host=options.host,
        remote_agent=options.remote_agent,
        consumer=options.consumer,
    )


def project_spec(
    project: Project,
    resolution: Resolution,
    ids: Mapping[Address, str],
    preset_key: str,
    values: Mapping[str, Any],
    options: SessionOptions,
) -> SessionSpec:
    """A preset of a project rendered for one environment, its character id from state."""
    preset = _preset(resolution, preset_key)
    rendered = render_project_preset(project, resolution, preset_key, values)
    return build_spec(
        preset_key,
        character_id(resolution, ids, preset_key),
        resolution.environment.client,
        preset.max_seconds,
        preset.prompt_ctx,
        rendered,
        options,
    )


# --- export -------------------------------------------------------------------------


def inputs_document(inputs: Mapping[str, PresetInput] | None) -> dict[str, Any] | None:
    """How the export (and `render`) lists a preset's inputs."""
    if inputs is None:
        return None
    out: dict[str, Any] = {}
    for name, declared in inputs.items():
        entry: dict[str, Any] = {"required": declared.required}
        if declared.default is not None:
            entry["default"] = declared.default
        if declared.description is not None:
            entry["description"] = declared.description
        out[name] = entry
    return out


def export_presets(
    project: Project, resolution: Resolution, ids: Mapping[Address, str]
) -> dict[str, Any]:
    """The presets file of one environment (format `avatarsync.presets/v1`,
    schemas/presets-export.schema.json)."""
    env = resolution.environment
    presets: dict[str, Any] = {}
    for key, preset in resolution.state.presets.items():
        context = preset_context(project, resolution, preset, {})
        templates: dict[str, Any] = {}
        reads: set[str] = set()
        env_names: set[str] = set()
        for name, template in preset.prompt_template_vars.items():
            # Resolving ran validate's checks: every template parses.
            caller = list(input_names_used(template))
            if not caller:
                templates[name] = {
                    "value": render_project_preset_var(project, resolution, key, name)
                }
                continue
            templates[name] = {"template": template, "inputs": caller}
            reads |= {n for n in template_names(template) if n in CONTEXT_NAMES}
            env_names |= {a or b for a, b in _ENV_READ.findall(template)}
        entry: dict[str, Any] = {
            "character": preset.character,
            "characterId": character_id(resolution, ids, key),
            "maxSeconds": preset.max_seconds,
            "promptCtx": preset.prompt_ctx,
            "inputs": inputs_document(preset.inputs),
            "promptTemplateVars": templates,
        }
        if reads:
            needed = dict(context)
            needed["env"] = {n: v for n, v in context["env"].items() if n in env_names}
            entry["context"] = {n: _plain(needed[n]) for n in sorted(reads)}
        presets[key] = entry
    body = {"environment": env.name, "client": env.client, "presets": presets}
    document = {
        "format": EXPORT_FORMAT,
        "generator": f"avatarsync {__version__}",
        "contentHash": content_hash(body),
        **body,
    }
    text = json.dumps(document, sort_keys=True, default=str)
    if scrub(text) != text:
        raise SessionError(
            "the presets export would contain a secret value (a preset or a template "
            "context reads a secret variable): nothing was written"
        )
    return document


def render_project_preset_var(
    project: Project, resolution: Resolution, preset_key: str, var_name: str
) -> str:
    """One fixed (input-free) template of a preset, rendered for the environment."""
    preset = _preset(resolution, preset_key)
    context = preset_context(project, resolution, preset, {})
    try:
        return render_template(preset.prompt_template_vars[var_name], context)
    except TemplateFailure as failure:
        raise SessionError(
            f"{preset.field_positions.get(f'promptTemplateVars.{var_name}', preset.position)}: "
            f"ConversationPreset '{preset_key}' promptTemplateVars.{var_name}: "
            f"{failure.describe(resolution.environment.name)}"
        ) from None


def export_schema_text() -> str:
    """The JSON Schema of the export (written to schemas/ with the others)."""
    return (
        package_files.files("avatarsync.conversations")
        .joinpath(EXPORT_SCHEMA_NAME)
        .read_text("utf-8")
    )


def content_hash(body: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of what a session would use (no generator, no hash)."""
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def _plain(value: Any) -> Any:
    """A JSON-ready copy (a CharacterView is a dict with extras)."""
    result: Any = json.loads(json.dumps(value, default=str))
    return result


# --- an exported file, in an app ------------------------------------------------------


@dataclass(frozen=True)
class ExportedPreset:
    """One preset of an exported file: enough to start a session, no project needed."""

    key: str
    character: str
    character_id: str
    max_seconds: int | None
    prompt_ctx: str | None
    inputs: Mapping[str, PresetInput] | None
    prompt_template_vars: Mapping[str, Mapping[str, Any]]
    context: Mapping[str, Any]

    def spec(
        self,
        values: Mapping[str, Any] | None = None,
        options: SessionOptions | None = None,
        *,
        client: str | None = None,
        where: str = "",
    ) -> SessionSpec:
        """What `POST /v3/conversations` gets for these caller values."""
        return build_spec(
            self.key,
            self.character_id,
            client,
            self.max_seconds,
            self.prompt_ctx,
            self.render(values, where=where),
            options or SessionOptions(),
        )

    def render(self, values: Mapping[str, Any] | None = None, *, where: str = "") -> dict[str, str]:
        """The final `promptTemplateVars` for these caller values (same rules as a project)."""
        values = dict(values or {})
        reserved = sorted(set(values) & set(CONTEXT_NAMES))
        if reserved:
            raise SessionError(f"caller values cannot be named {', '.join(reserved)}")
        bound = bind_inputs(self.key, self.inputs, values, where or f"preset '{self.key}'")
        context = {**bound, **self.context}
        out: dict[str, str] = {}
        for name, entry in self.prompt_template_vars.items():
            if "value" in entry:
                out[name] = str(entry["value"])
                continue
            try:
                out[name] = render_template(str(entry["template"]), context)
            except TemplateFailure as failure:
                raise SessionError(
                    f"{where or 'presets file'}: ConversationPreset '{self.key}' "
                    f"promptTemplateVars.{name}: {failure.describe()}"
                ) from None
        return out


@dataclass(frozen=True)
class ExportedPresets:
    """An exported presets file (`presets export`): what an app backend loads."""

    environment: str
    client: str | None
    content_hash: str
    presets: Mapping[str, ExportedPreset]
    source: str = "presets file"

    def spec(
        self,
        key: str,
        values: Mapping[str, Any] | None = None,
        options: SessionOptions | None = None,
    ) -> SessionSpec:
        """A session of preset `key` for these caller values, tagged with the
        environment's client (so `session list` sees it)."""
        return self.preset(key).spec(values, options, client=self.client, where=self.source)

    def preset(self, key: str) -> ExportedPreset:
        found = self.presets.get(key)
        if found is None:
            known = ", ".join(self.presets) or "none"
            raise SessionError(f"{self.source}: no preset '{key}' (known: {known})")
        return found

    @classmethod
    def from_dict(cls, data: Any, source: str = "presets file") -> ExportedPresets:
        if not isinstance(data, Mapping) or data.get("format") != EXPORT_FORMAT:
            raise SessionError(f"{source}: not an avatarsync presets export ({EXPORT_FORMAT})")
        try:
            presets = {
                key: _exported_preset(key, entry) for key, entry in dict(data["presets"]).items()
            }
            return cls(
                str(data["environment"]),
                data.get("client"),
                str(data["contentHash"]),
                presets,
                source,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SessionError(f"{source}: malformed presets export ({exc})") from None


def _exported_preset(key: str, entry: Mapping[str, Any]) -> ExportedPreset:
    inputs = entry.get("inputs")
    return ExportedPreset(
        key=key,
        character=str(entry["character"]),
        character_id=str(entry["characterId"]),
        max_seconds=entry.get("maxSeconds"),
        prompt_ctx=entry.get("promptCtx"),
        inputs=None
        if inputs is None
        else {
            name: PresetInput(
                name, bool(d.get("required", False)), d.get("default"), d.get("description")
            )
            for name, d in dict(inputs).items()
        },
        prompt_template_vars={n: dict(v) for n, v in dict(entry["promptTemplateVars"]).items()},
        context=dict(entry.get("context") or {}),
    )


def load_presets_file(path: Path) -> ExportedPresets:
    """An exported presets file (JSON, or YAML from `--format yaml`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SessionError(f"cannot read the presets file {path}: {exc.strerror}") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SessionError(f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    else:
        loaded = load_file(path, str(path))
        if loaded.diagnostics:
            raise ManifestError(loaded.diagnostics)
        data = loaded.documents[0].data if loaded.documents else None
    return ExportedPresets.from_dict(data, str(path))
