"""Pydantic's errors in people's words, at the line and column they came from.

`validate_model` checks data against a model and maps every error back
through the loader's `SourceMap` ("unknown field 'serch' in Character
'tommy' (did you mean 'search'?)"); `check_envelope` checks `kind` and
`name` first, since every later message names the resource with them.
"""

from __future__ import annotations

import bisect
import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import UnionType
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from avatarsync.catalog import FACE_IDENTITIES, VOICE_IDENTITIES
from avatarsync.errors import Diagnostic
from avatarsync.manifests.loader import (
    ScalarInfo,
    SourceMap,
    YamlDocument,
    YamlPath,
    yaml11_surprise,
)
from avatarsync.manifests.models import ENV_NAME_PATTERN
from avatarsync.resources import Kind

__all__ = [
    "Envelope",
    "Suggestions",
    "check_envelope",
    "did_you_mean",
    "validate_model",
    "yaml11_diagnostics",
]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Envelope:
    kind: Kind
    name: str | None  # None when missing or not text (the model reports it)

    @property
    def what(self) -> str:
        """How messages name the resource: "Character 'tommy'"."""
        return f"{self.kind.value} '{self.name}'" if self.name else f"this {self.kind.value}"


def check_envelope(doc: YamlDocument) -> tuple[Envelope | None, list[Diagnostic]]:
    """Check `kind` and `name` first: later messages name the resource with them."""
    data, source = doc.data, doc.source
    if not isinstance(data, dict):
        return None, [
            _at(
                source.value(()),
                f"a manifest document must be a mapping with kind, name and spec, "
                f"not {_describe_type(data)}",
            )
        ]
    if "kind" not in data:
        return None, [_at(source.value(()), "missing 'kind' (one of: " + _kind_list() + ")")]
    kind_value = data["kind"]
    if not isinstance(kind_value, str) or kind_value not in Kind._value2member_map_:
        hint = did_you_mean(str(kind_value), [k.value for k in Kind], ignore_case=True)
        message = f"unknown kind '{kind_value}'{hint}; expected one of: {_kind_list()}"
        return None, [_at(source.value(("kind",)), message)]
    kind = Kind(kind_value)
    name = data.get("name")
    if isinstance(name, str) and "${" in name:
        return None, [
            _at(
                source.value(("name",)),
                f"the name of a {kind} cannot use ${{...}}: keys are the same in every environment",
            )
        ]
    return Envelope(kind, name if isinstance(name, str) else None), []


def validate_model(
    model: type[M],
    data: Any,
    source: SourceMap,
    *,
    what: str,
    base: YamlPath = (),
    skip: Callable[[YamlPath], bool] | None = None,
    suffix: Callable[[YamlPath], str] | None = None,
) -> tuple[M | None, list[Diagnostic]]:
    """Validate `data` with `model`; map every error to its source position.

    `what` names the subject in messages ("Character 'tommy'"); `skip` drops
    errors at paths already reported (e.g. a failed substitution); `suffix`
    gives the text appended to messages about a value (e.g. the environment
    a substituted value came from).
    """
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
    diagnostics: list[Diagnostic] = []
    seen: set[YamlPath] = set()
    for error in errors:
        path, is_key = _data_path(data, error["loc"])
        full = (*base, *path)
        if skip is not None and skip(full):
            continue
        if error["type"] not in ("missing", "extra_forbidden") and full in seen:
            continue  # one message per value
        seen.add(full)
        message, at_key = _message(model, error, path, is_key, data, source, base, what)
        if suffix is not None and error["type"] not in ("missing", "extra_forbidden"):
            message += suffix(full)
        pos = source.key(full) if at_key else source.value(full)
        diagnostics.append(_at(pos, message))
    return None, diagnostics


def yaml11_diagnostics(
    source: SourceMap, data: Any, reported: Iterable[Diagnostic]
) -> list[Diagnostic]:
    """Plain scalars YAML 1.1 and 1.2 read differently, not reported otherwise.

    Typed fields already catch most (a string field given `no`); this covers
    the rest, such as `search: yes` or a var `released: 2024-01-01`.
    """
    taken = {(d.line, d.col) for d in reported}
    found: list[Diagnostic] = []
    # Only plain scalars YAML resolved to something other than text can surprise.
    candidates = [
        (path, info)
        for path, info in source.scalars.items()
        if info.style is None and info.tag in _SURPRISING_TAGS
    ]
    for path, info in sorted(candidates, key=lambda item: (item[1].line, item[1].col)):
        if (info.line, info.col) in taken:
            continue
        surprise = yaml11_surprise(info, _get(data, path))
        if surprise is None:
            continue
        if info.tag == "bool":
            fix = f'write {str(_get(data, path)).lower()}, or "{info.text}" in quotes for text'
        else:
            fix = f'write "{info.text}" in quotes'
        found.append(_at(source.value(path), f"ambiguous value: {surprise}; {fix}"))
    return found


class Suggestions:
    """`did_you_mean` over a large, fixed set of candidates, in near-constant time.

    difflib compares the word with every candidate, so a thousand mistyped
    references among a thousand keys cost a million comparisons. Here each
    word is compared with a bounded pool: its neighbours in sorted order (a
    typo late in the word) and in sorted order of the reversed strings (a typo
    early in the word). Built once per set; small sets are searched whole.
    """

    _WHOLE = 32  # up to this many candidates, compare with all of them
    _NEIGHBOURS = 4  # on each side, in each order
    _HINTS = 200  # hints per set; past that many typos, more hints help nobody

    def __init__(self, candidates: Iterable[str]) -> None:
        self._sorted = sorted(set(candidates))
        self._reversed = sorted(c[::-1] for c in self._sorted)
        self._given = 0

    def hint(self, word: str) -> str:
        self._given += 1
        if self._given > self._HINTS:
            return ""
        if len(self._sorted) <= self._WHOLE:
            return did_you_mean(word, self._sorted)
        pool: set[str] = set()
        k = self._NEIGHBOURS
        i = bisect.bisect_left(self._sorted, word)
        pool.update(self._sorted[max(0, i - k) : i + k])
        j = bisect.bisect_left(self._reversed, word[::-1])
        pool.update(c[::-1] for c in self._reversed[max(0, j - k) : j + k])
        return did_you_mean(word, pool)


_SURPRISING_TAGS = frozenset({"bool", "int", "float", "timestamp"})


def did_you_mean(word: str, candidates: Iterable[str], *, ignore_case: bool = False) -> str:
    """` (did you mean 'x'?)` for the closest candidate, or ''."""
    options = sorted(set(candidates))
    if ignore_case:
        for option in options:
            if option.lower() == word.lower():
                return f" (did you mean '{option}'?)"
    matches = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if not matches and ignore_case:
        lowered = {option.lower(): option for option in options}
        close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
        matches = [lowered[close[0]]] if close else []
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def _message(
    model: type[BaseModel],
    error: Any,
    path: YamlPath,
    is_key: bool,
    data: Any,
    source: SourceMap,
    base: YamlPath,
    what: str,
) -> tuple[str, bool]:
    kind = error["type"]
    field = _field_label(path)
    value = error.get("input")
    info = source.scalars.get((*base, *path))
    if kind == "extra_forbidden":
        name = str(path[-1]) if path else "?"
        hint = did_you_mean(name, _allowed_fields(model, path[:-1], data))
        return f"unknown field '{name}' in {_where(what, path[:-1])}{hint}", True
    if kind == "missing":
        name = _missing_name(error["loc"])
        return f"missing required field '{name}' in {_where(what, path[:-1])}", False
    if is_key:
        return (
            f"'{path[-1]}' is not a valid name in {_where(what, path[:-1])}: {_pattern_text()}",
            True,
        )
    if value is None and info is not None and not info.text and kind != "ref_or_inline":
        return _no_value(field, path, _where(what, path[:-1])), False
    if kind == "string_type":
        return _not_text(field, value, info), False
    if kind == "literal_error":
        return _not_allowed(path, value, error), False
    if kind == "string_pattern_mismatch":
        if error.get("ctx", {}).get("pattern") == ENV_NAME_PATTERN:
            return (
                f"{field} '{value}' is not an environment variable name "
                "(letters, digits and '_', not starting with a digit)"
            ), False
        if path and path[-1] == "mimeType":
            return (
                f"{field} {value!r} is not a mime type (type/subtype, e.g. text/markdown; "
                "it is sent as an HTTP header)"
            ), False
        return f"{field} '{value}' is not a valid key: {_pattern_text()}", False
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{field} must be a whole number, not {_describe_value(value, info)}", False
    if kind == "bool_type":
        return f"{field} must be true or false, not {_describe_value(value, info)}", False
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{field} must be a mapping, not {_describe_value(value, info)}", False
    if kind == "list_type":
        return f"{field} must be a list, not {_describe_value(value, info)}", False
    if kind == "too_short":
        return f"{field} must not be empty", False
    if kind in ("greater_than", "greater_than_equal"):
        limit = error.get("ctx", {}).get("gt", error.get("ctx", {}).get("ge"))
        return f"{field} must be greater than {limit}, not {value}", False
    if kind in ("less_than", "less_than_equal"):
        limit = error.get("ctx", {}).get("lt", error.get("ctx", {}).get("le"))
        return f"{field} must be at most {limit}, not {value}", False
    if kind == "string_too_long":
        limit = error.get("ctx", {}).get("max_length")
        length = len(value) if isinstance(value, str) else "more"
        return f"{field} must be at most {limit} characters, not {length}", False
    if kind == "ref_or_inline":
        expected = error["msg"].removeprefix("expected ")
        return f"{field} must be {expected}, not {_describe_value(value, info)}", False
    return f"{field}: {error['msg']}", False


def _no_value(field: str, path: YamlPath, what: str) -> str:
    if path and path[-1] == "identity" and "Voice" in what:
        return f"{field} has no value; write one of the 30 Equos voices (e.g. Puck)"
    if path and path[-1] == "identity" and "Face" in what:
        return f"{field} has no value; write a face of the gallery ({', '.join(FACE_IDENTITIES)})"
    return f"{field} has no value; write one"


def _not_text(field: str, value: Any, info: ScalarInfo | None) -> str:
    if info is not None and info.plain and not isinstance(value, dict | list):
        read_as = _describe_value(value, info)
        return (
            f"{field}: '{info.text}' is read as {read_as}, not as text; "
            f'write "{info.text}" in quotes'
        )
    return f"{field} must be text, not {_describe_value(value, info)}"


def _not_allowed(path: YamlPath, value: Any, error: Any) -> str:
    field = _field_label(path)
    expected = error.get("ctx", {}).get("expected", "")
    if path and path[-1] == "identity" and isinstance(value, str):
        if f"'{VOICE_IDENTITIES[0]}'" in expected:
            hint = did_you_mean(value, VOICE_IDENTITIES, ignore_case=True)
            return f"voice identity '{value}' is not one of the 30 Equos voices{hint}"
        if f"'{FACE_IDENTITIES[0]}'" in expected:
            hint = did_you_mean(value, FACE_IDENTITIES, ignore_case=True)
            faces = ", ".join(FACE_IDENTITIES)
            return f"face identity '{value}' is not in the Equos face gallery ({faces}){hint}"
    return f"{field} '{value}' is not allowed; expected {expected}"


def _describe_value(value: Any, info: ScalarInfo | None = None) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if value is None:
        return "empty (null)"
    if isinstance(value, str):
        return f'the text "{value}"'
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}" if info is None or info.tag != "timestamp" else "a date"


def _describe_type(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return _describe_value(value)


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[YamlPath, bool]:
    """Follow a pydantic `loc` through the data; drop union tags and the like."""
    path: list[str | int] = []
    current = data
    is_key = False
    for part in loc:
        if part == "[key]":
            is_key = True
            continue
        if _has(current, part):
            path.append(part)
            current = current[part]
        elif (
            isinstance(current, dict)
            and isinstance(part, str)
            and part not in ("ref", "inline")
            and not part.startswith(("function-", "json-"))
        ):
            # a missing or unknown field: its name ends the path
            path.append(part)
            break
    return tuple(path), is_key


def _has(container: Any, part: Any) -> bool:
    if isinstance(container, dict):
        return isinstance(part, str) and part in container
    if isinstance(container, list):
        return isinstance(part, int) and 0 <= part < len(container)
    return False


def _missing_name(loc: tuple[Any, ...]) -> str:
    for part in reversed(loc):
        if isinstance(part, str) and part not in ("ref", "inline", "[key]"):
            return part
    return "?"


def _allowed_fields(model: type[BaseModel], path: YamlPath, data: Any) -> list[str]:
    """Field names (YAML spelling) of the model that owns the mapping at `path`."""
    current: Any = model
    for part in path:
        current = _step(current, part)
        if current is None:
            return []
    found = _find_model(current)
    if found is None:
        return []
    return [info.alias or name for name, info in found.model_fields.items()]


def _step(annotation: Any, part: str | int) -> Any:
    """The annotation of `part` inside a value of type `annotation`."""
    found = _find_model(annotation)
    if found is not None and isinstance(part, str):
        for name, info in found.model_fields.items():
            if (info.alias or name) == part:
                return info.annotation
        return None
    container = _find_container(annotation)
    if container is None:
        return None
    args = get_args(container)
    return args[-1] if args else None


def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of an annotation: Annotated and unions taken apart."""
    if get_origin(annotation) is Annotated:
        return _unwrap(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return [alt for arg in get_args(annotation) for alt in _unwrap(arg)]
    return [annotation]


def _find_model(annotation: Any) -> type[BaseModel] | None:
    for alt in _unwrap(annotation):
        if isinstance(alt, type) and issubclass(alt, BaseModel):
            return alt
    return None


def _find_container(annotation: Any) -> Any:
    for alt in _unwrap(annotation):
        if get_origin(alt) in (dict, list):
            return alt
    return None


def _field_label(path: YamlPath) -> str:
    """`documents[1].path` style label for a data path (the `spec.` prefix dropped)."""
    if len(path) > 1 and path[0] == "spec":
        path = path[1:]
    label = ""
    for part in path:
        if isinstance(part, int):
            label += f"[{part}]"
        else:
            label += ("." if label else "") + part
    return label or "document"


_INLINE = {"face": "Face", "voice": "Voice", "brain": "Brain"}


def _where(what: str, path: YamlPath) -> str:
    """Name the mapping at `path`: "Character 'tommy'", "the inline Brain of …"."""
    if not path or path == ("spec",):
        return what
    if len(path) == 2 and path[0] == "spec" and path[1] in _INLINE and what.startswith("Character"):
        return f"the inline {_INLINE[str(path[1])]} of {what}"
    return f"{_field_label(path)} of {what}"


def _pattern_text() -> str:
    return "use letters, digits, '-' and '_' (up to 63, starting with a letter or digit)"


def _kind_list() -> str:
    return ", ".join(k.value for k in Kind)


def _get(data: Any, path: YamlPath) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _at(pos: Any, message: str, severity: Literal["error", "warning"] = "error") -> Diagnostic:
    return Diagnostic(pos.file, pos.line, pos.col, message, severity)
