"""Checks across resources of a resolved environment: prompts and leftovers.

Runs after `refs` has built an environment's desired state. It proves, before
any session starts, that every preset's `promptTemplateVars` renders (a
sandboxed trial render with the environment's vars, plus a static check that
caller values are guarded by `default`), that each preset supplies every
`{{ placeholder }}` its character's brain uses (error), and it warns about
supplied vars nobody uses and about resources no character links to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from avatarsync.catalog import FACE_IDENTITIES, VOICE_IDENTITIES
from avatarsync.errors import Diagnostic
from avatarsync.manifests.messages import did_you_mean
from avatarsync.manifests.preset_inputs import check_inputs, input_names_used, trial_values
from avatarsync.manifests.project import Project
from avatarsync.manifests.resolve import Resolution
from avatarsync.manifests.templating import (
    TemplateFailure,
    placeholders,
    render_template,
    unguarded_names,
)
from avatarsync.resources import Address, DesiredResource, DesiredState, Kind, Position, Preset

__all__ = ["CALLER_VALUES", "CharacterView", "character_context", "lint", "preset_context"]

# How render messages tell where caller values come from.
CALLER_VALUES = "the caller passes it with --set, or it is a typo"


def lint(project: Project, resolution: Resolution) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    found += _check_templates(project, resolution)
    found += _check_placeholders(resolution)
    if resolution.complete:  # a resource may only look unused because its user failed
        found += _check_unused(resolution.state)
    found += _check_identities(resolution.state)
    found += _check_livekit_identities(resolution.state)
    return found


def _check_identities(state: DesiredState) -> list[Diagnostic]:
    """Identities the catalog does not list: the platform may have them (its
    gallery changes between releases), so warn and let the server decide."""
    found: list[Diagnostic] = []
    known = {Kind.VOICE.value: VOICE_IDENTITIES, Kind.FACE.value: FACE_IDENTITIES}
    for resource in state.resources.values():
        table = known.get(resource.kind)
        identity = resource.spec.get("identity")
        if table is None or not isinstance(identity, str) or identity in table:
            continue
        at = resource.field_positions.get("identity", resource.position)
        what = "voice" if resource.kind == Kind.VOICE.value else "face"
        hint = did_you_mean(identity, table, ignore_case=True)
        found.append(
            _at(
                at,
                f"{what} identity '{identity}' is not one avatarsync knows{hint}; "
                "the platform decides (its gallery changes between releases)",
                "warning",
            )
        )
    return found


def _check_livekit_identities(state: DesiredState) -> list[Diagnostic]:
    """Two characters joining rooms as the same participant would collide in a
    room they share; the API documents no uniqueness rule, so warn."""
    first: dict[str, DesiredResource] = {}
    found: list[Diagnostic] = []
    for resource in state.resources.values():
        if resource.kind != Kind.CHARACTER.value:
            continue
        identity = resource.spec.get("livekitIdentity")
        if not isinstance(identity, str):
            continue
        if identity not in first:
            first[identity] = resource
            continue
        other = first[identity]
        at = resource.field_positions.get("livekitIdentity", resource.position)
        was = other.field_positions.get("livekitIdentity", other.position)
        found.append(
            _at(
                at,
                f"Character '{resource.key}' has the same livekitIdentity '{identity}' as "
                f"Character '{other.key}' ({was}): both would join a room as one participant",
                "warning",
            )
        )
    return found


class CharacterView(dict[str, Any]):
    """`character` in a template: its spec and key, without the fields that hold
    a secret (a template would render them in plaintext)."""

    secret_fields: frozenset[str] = frozenset()


def character_context(state: DesiredState, key: str) -> CharacterView:
    """What templates see as `character`: its resolved spec plus its key."""
    view = CharacterView(key=key)
    resource = state.resources.get(Address(Kind.CHARACTER.value, key))
    if resource is not None:
        view.update(
            (name, value)
            for name, value in resource.spec.items()
            if name not in resource.sensitive_fields
        )
        view.secret_fields = resource.sensitive_fields
    return view


def preset_context(
    project: Project,
    resolution: Resolution,
    preset: Preset,
    values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The jinja2 context of a preset's templates in one environment."""
    env = resolution.environment
    return {
        **(values or {}),
        "vars": dict(env.vars),
        "env": project.allowed_env(env),
        "character": character_context(resolution.state, preset.character),
    }


def _check_templates(project: Project, resolution: Resolution) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    env_name = resolution.environment.name
    for key, preset in resolution.state.presets.items():
        doc = resolution.preset_documents[key]
        trial = trial_values(preset)
        context = preset_context(project, resolution, preset, trial)
        located: dict[str, tuple[str, Any]] = {}
        for name, template in preset.prompt_template_vars.items():
            path = ("spec", "promptTemplateVars", name)
            written = doc.data["spec"]["promptTemplateVars"][name]
            located[name] = (template, _locator(doc, path, written))
            try:
                loose = unguarded_names(template)
            except TemplateFailure as failure:
                at = doc.source.locate_line(path, written, failure.line)
                found.append(_at(at, f"promptTemplateVars.{name}: {failure.describe()}"))
                continue
            if preset.inputs is not None:
                # Declared inputs are checked by `check_inputs`; a template that
                # needs a value only the caller has cannot be trial-rendered.
                if _needs_caller(preset, template, trial, loose):
                    continue
                loose = []
            for free, line in loose:
                at = doc.source.locate_line(path, written, line)
                found.append(
                    _at(
                        at,
                        f"promptTemplateVars.{name}: '{free}' is not defined here (only vars, "
                        "env and character always are); if the caller passes it, write "
                        f"{{{{ {free} | default(...) }}}}",
                    )
                )
            if loose:
                continue
            try:
                render_template(template, context, names=CALLER_VALUES)
            except TemplateFailure as failure:
                at = doc.source.locate_line(path, written, failure.line)
                found.append(_at(at, f"promptTemplateVars.{name}: {failure.describe(env_name)}"))
        found += check_inputs(preset, located)
    return found


def _locator(doc: Any, path: tuple[str, ...], written: str) -> Any:
    return lambda line: doc.source.locate_line(path, written, line)


def _needs_caller(
    preset: Preset, template: str, trial: Mapping[str, Any], loose: list[tuple[str, int]]
) -> bool:
    inputs = preset.inputs or {}
    unguarded = {name for name, _ in loose}
    for name in input_names_used(template):
        if name in trial:
            continue
        declared = inputs.get(name)
        if declared is None or declared.required or name in unguarded:
            return True
    return False


def _check_placeholders(resolution: Resolution) -> list[Diagnostic]:
    state = resolution.state
    found: list[Diagnostic] = []
    for key, preset in state.presets.items():
        character = state.resources.get(Address(Kind.CHARACTER.value, preset.character))
        if character is None:
            continue
        doc = resolution.preset_documents[key]
        brain_address = character.refs.get("brain")
        used: list[str] = []
        label = f"Character '{preset.character}' (it has no brain)"
        if brain_address is not None:
            brain = state.resources.get(brain_address)
            if brain is None:  # it had errors of its own, reported already
                continue
            label = resolution.labels.get(brain_address, str(brain_address))
            used = list(
                dict.fromkeys(
                    placeholders(brain.spec.get("instructions"))
                    + placeholders(brain.spec.get("greetingMessage"))
                )
            )
        supplied = preset.prompt_template_vars
        where = preset.field_positions.get("promptTemplateVars") or preset.field_positions.get(
            "character", preset.position
        )
        for name in used:
            if name not in supplied:
                found.append(
                    _at(
                        where,
                        f"ConversationPreset '{key}' does not supply {{{{ {name} }}}}, which "
                        f"{label} uses: add '{name}' to promptTemplateVars",
                    )
                )
        for name in supplied:
            if name not in used:
                at = doc.source.key(("spec", "promptTemplateVars", name))
                found.append(
                    _at(
                        at,
                        f"promptTemplateVars.{name} is not used: {label} has no "
                        f"{{{{ {name} }}}} placeholder",
                        "warning",
                    )
                )
    return found


def _check_unused(state: DesiredState) -> list[Diagnostic]:
    linked = {target for r in state.resources.values() for target in r.refs.values()}
    found: list[Diagnostic] = []
    for address, resource in state.resources.items():
        if address.kind == Kind.CHARACTER.value or resource.inline_owner is not None:
            continue
        if address not in linked:
            found.append(
                _at(
                    resource.position,
                    f"{address.kind} '{address.key}' is not used by any Character",
                    "warning",
                )
            )
    return found


def _at(pos: Position, message: str, severity: Literal["error", "warning"] = "error") -> Diagnostic:
    return Diagnostic(pos.file, pos.line, pos.col, message, severity)
