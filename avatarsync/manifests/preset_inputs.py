"""Caller inputs of a ConversationPreset: what whoever starts a session supplies.

A preset that declares `inputs` lets its templates use those names directly,
and its caller may pass nothing else: a required input left out, or a name
the preset does not declare (a typo), is refused before any request. A
preset without `inputs` keeps the older, looser contract (caller values are
not checked; templates guard them with `default`).

Two users: `lint` (offline: declared but unused, used but undeclared, an
optional input without default used unguarded) and `bind_inputs` (session
start, render and the exported presets of an app backend).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from avatarsync.errors import Diagnostic, SessionError
from avatarsync.manifests.messages import did_you_mean
from avatarsync.manifests.templating import (
    CONTEXT_NAMES,
    TemplateFailure,
    template_names,
    unguarded_names,
)
from avatarsync.resources import Position, Preset, PresetInput

__all__ = ["bind_inputs", "check_inputs", "input_names_used", "trial_values"]


def bind_inputs(
    preset_key: str,
    inputs: Mapping[str, PresetInput] | None,
    values: Mapping[str, Any],
    where: str,
    *,
    allow_missing: bool = False,
) -> dict[str, Any]:
    """The caller's values with defaults filled in; SessionError (naming the
    preset, `where` it is defined and every problem) when a required input
    is missing (unless `allow_missing`: `render` shows those templates
    unrendered) or an undeclared one is passed."""
    if inputs is None:
        return dict(values)
    problems: list[str] = []
    unknown = [name for name in values if name not in inputs]
    for name in unknown:
        hint = did_you_mean(name, inputs.keys())
        declared = ", ".join(inputs) or "none"
        problems.append(f"'{name}' is not an input of this preset{hint} (inputs: {declared})")
    missing = [
        d.name for d in inputs.values() if d.required and d.name not in values and not allow_missing
    ]
    for name in missing:
        about = inputs[name].description
        problems.append(
            f"required input '{name}' was not passed"
            + (f" ({about})" if about else "")
            + f": pass it with --var {name}=…"
        )
    if problems:
        raise SessionError(f"{where}: ConversationPreset '{preset_key}': " + "; ".join(problems))
    bound = {
        name: declared.default
        for name, declared in inputs.items()
        if declared.default is not None and name not in values
    }
    bound.update(values)
    return bound


def trial_values(preset: Preset) -> dict[str, Any]:
    """The inputs a trial render (validate) can pass: the defaults."""
    return {
        name: declared.default
        for name, declared in (preset.inputs or {}).items()
        if declared.default is not None
    }


def input_names_used(template: str) -> dict[str, int]:
    """Names a template reads other than vars, env and character, with their line."""
    return {n: line for n, line in template_names(template).items() if n not in CONTEXT_NAMES}


def check_inputs(preset: Preset, templates: Mapping[str, tuple[str, Any]]) -> list[Diagnostic]:
    """Lint of one preset that declares inputs.

    `templates` maps each promptTemplateVars name to (template, locate),
    where `locate(line)` is the Position of a template line.
    """
    inputs = preset.inputs
    if inputs is None:
        return []
    found: list[Diagnostic] = []
    for name, declared in inputs.items():
        at = preset.field_positions.get(f"inputs.{name}", preset.position)
        if name in CONTEXT_NAMES:
            found.append(
                _at(at, f"inputs.{name}: '{name}' is the environment's {name}, not an input")
            )
        if declared.required and declared.default is not None:
            found.append(
                _at(at, f"inputs.{name} is required and has a default: drop one of the two")
            )
    used: set[str] = set()
    for var_name, (template, locate) in templates.items():
        try:
            names = input_names_used(template)
            loose = dict(unguarded_names(template))
        except TemplateFailure:
            continue  # the template check reports the syntax error
        for name, line in names.items():
            used.add(name)
            if name not in inputs:
                hint = did_you_mean(name, inputs.keys())
                found.append(
                    _at(
                        locate(line),
                        f"promptTemplateVars.{var_name}: '{name}' is not a declared input of "
                        f"ConversationPreset '{preset.key}'{hint}: declare it under inputs "
                        "(only vars, env and character are always defined)",
                    )
                )
                continue
            declared = inputs[name]
            if name in loose and not declared.required and declared.default is None:
                found.append(
                    _at(
                        locate(loose[name]),
                        f"promptTemplateVars.{var_name}: input '{name}' is optional with no "
                        "default: make it required, give it a default, or guard it "
                        f"({{{{ {name} | default(...) }}}})",
                    )
                )
    for name in inputs:
        if name not in used and name not in CONTEXT_NAMES:
            at = preset.field_positions.get(f"inputs.{name}", preset.position)
            found.append(
                _at(
                    at,
                    f"inputs.{name} is declared but no promptTemplateVars template uses it",
                    "warning",
                )
            )
    return found


def _at(pos: Position, message: str, severity: Literal["error", "warning"] = "error") -> Diagnostic:
    return Diagnostic(pos.file, pos.line, pos.col, message, severity)
