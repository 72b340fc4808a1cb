"""The two kinds of templating: `${...}` substitution and jinja2 prompt templates.

Third stage of the manifest flow (loader → manifest → templating → refs).
They have different owners and times, so they never mix:

- `${vars.x}` / `${env.X}` is environment substitution, done by avatarsync in
  every manifest string when an environment is resolved. `$${` writes a
  literal `${`. A substitution always produces text.
- `{{ ... }}` in `promptTemplateVars` is jinja2, rendered by avatarsync when a
  session starts (or on `render`), in a sandbox, with a StrictUndefined that
  still lets `| default(...)` guard a value the caller may not pass.
- `{{ name }}` in a brain's instructions is left alone: the platform fills
  it per conversation. `placeholders()` lists those names for the lint.

Functions here return problems with offsets and template line numbers; the
caller turns them into positions with the loader's SourceMap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from jinja2 import (
    ChainableUndefined,
    StrictUndefined,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
)
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import missing

from avatarsync.manifests.messages import did_you_mean
from avatarsync.secret import register

__all__ = [
    "CONTEXT_NAMES",
    "PLACEHOLDER_RE",
    "Problem",
    "SubstitutionContext",
    "SubstitutionResult",
    "TemplateFailure",
    "placeholders",
    "render_template",
    "substitute",
    "to_text",
    "unguarded_names",
]

# `$${` escapes; `${...}` is an expression; a lone `${` is unterminated.
_SUBST_RE = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_VARS_EXPR = re.compile(r"^vars((?:\.[A-Za-z0-9_-]+)+)$")
_ENV_EXPR = re.compile(r"^env\.([A-Za-z_][A-Za-z0-9_]*)$")
# What every prompt template sees besides the caller's values.
CONTEXT_NAMES = ("vars", "env", "character")
# The platform's placeholders: `{{ name }}`, a bare identifier.
PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Problem:
    offset: int  # in the original string
    message: str
    severity: Literal["error", "warning"] = "error"


@dataclass(frozen=True)
class SubstitutionContext:
    """What `${...}` can see in one environment."""

    environment: str
    vars: Mapping[str, Any]
    lookup_env: Callable[[str], str | None]
    allows_env: Callable[[str], bool]
    is_secret: Callable[[str], bool]
    # Offline validation: an unset variable is a warning, not an error, so CI
    # can validate without holding every environment's secrets.
    unset_env_is_error: bool = True


@dataclass
class SubstitutionResult:
    value: str
    problems: list[Problem] = field(default_factory=list)
    substituted: bool = False
    secret: bool = False  # a secret variable went into the value


def substitute(text: str, ctx: SubstitutionContext) -> SubstitutionResult:
    """Replace every `${vars.x}` and `${env.X}` in `text`."""
    if "$" not in text:
        return SubstitutionResult(text)
    result = SubstitutionResult(text)
    parts: list[str] = []
    last = 0
    for match in _SUBST_RE.finditer(text):
        parts.append(text[last : match.start()])
        last = match.end()
        token = match.group(0)
        if token == "$${":
            parts.append("${")
            continue
        if match.group(1) is None:
            result.problems.append(
                Problem(match.start(), "unterminated '${' (write '$${' for a literal '${')")
            )
            parts.append(token)
            continue
        result.substituted = True
        replacement = _evaluate(match.group(1).strip(), match.start(), ctx, result)
        parts.append(token if replacement is None else replacement)
    parts.append(text[last:])
    result.value = "".join(parts)
    return result


def _evaluate(
    expr: str, offset: int, ctx: SubstitutionContext, result: SubstitutionResult
) -> str | None:
    if match := _VARS_EXPR.match(expr):
        names = match.group(1)[1:].split(".")
        current: Any = ctx.vars
        for depth, name in enumerate(names):
            if not isinstance(current, Mapping) or name not in current:
                shown = "vars." + ".".join(names[: depth + 1])
                options = current.keys() if isinstance(current, Mapping) else ()
                hint = did_you_mean(name, options)
                result.problems.append(
                    Problem(
                        offset,
                        f"${{{shown}}} is not defined for environment '{ctx.environment}'{hint}",
                    )
                )
                return None
            current = current[name]
        text = to_text(current)
        if text is None:
            kind = "a list or mapping" if current is not None else "empty (null)"
            result.problems.append(
                Problem(
                    offset,
                    f"${{{expr}}} is {kind} in environment '{ctx.environment}'; "
                    "only text, numbers and booleans can be substituted",
                )
            )
        return text
    if match := _ENV_EXPR.match(expr):
        name = match.group(1)
        if not ctx.allows_env(name):
            result.problems.append(
                Problem(
                    offset,
                    f"${{env.{name}}} is not allowed: list {name} under env.allow "
                    "(or env.secret) in avatarsync.yaml",
                )
            )
            return None
        value = ctx.lookup_env(name)
        if value is None:
            severity: Literal["error", "warning"] = "error" if ctx.unset_env_is_error else "warning"
            result.problems.append(
                Problem(
                    offset,
                    f"${{env.{name}}} is not set (environment '{ctx.environment}'): "
                    "set it in the environment or in .env",
                    severity,
                )
            )
            return None
        if ctx.is_secret(name):
            result.secret = True
            register(value)  # the CLI scrubs it from anything it prints
        return value
    result.problems.append(
        Problem(
            offset,
            f"'${{{expr}}}' is not a substitution avatarsync knows: "
            "write ${vars.NAME} or ${env.NAME} (or $${ for a literal '${')",
        )
    )
    return None


def to_text(value: Any) -> str | None:
    """How a var value reads inside text; None for what cannot be text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)  # dates


def placeholders(text: str | None) -> list[str]:
    """The `{{ name }}` placeholders a brain leaves for the platform, in order."""
    if not text:
        return []
    return list(dict.fromkeys(PLACEHOLDER_RE.findall(text)))


# --- jinja2 ---------------------------------------------------------------------------


class _Undefined(ChainableUndefined, StrictUndefined):
    """Strict on use, but chainable, so `{{ customer.name | default('x') }}`
    works when the caller passes no `customer`. Records what was missing."""

    __slots__ = ()

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
        if issubclass(self._undefined_exception, SecurityError):
            raise SecurityError(self._undefined_hint or "unsafe access")
        raise _Missing(self._undefined_obj, self._undefined_name, self._undefined_hint)

    __str__ = _fail_with_undefined_error
    __iter__ = _fail_with_undefined_error
    __len__ = _fail_with_undefined_error
    __bool__ = _fail_with_undefined_error
    __eq__ = _fail_with_undefined_error
    __ne__ = _fail_with_undefined_error
    __hash__ = _fail_with_undefined_error
    __contains__ = _fail_with_undefined_error


class _Missing(UndefinedError):
    def __init__(self, obj: Any, name: str | None, hint: str | None) -> None:
        self.obj = obj
        self.name = name
        super().__init__(hint or f"{name!r} is undefined")


class TemplateFailure(Exception):
    """A template could not be rendered; `line` is 1-based within the template.

    `scope` says what was missing when that depends on the environment
    ("vars" or "env"), so messages can name the environment.
    """

    def __init__(
        self, message: str, line: int = 1, scope: str | None = None, hint: str = ""
    ) -> None:
        super().__init__(message + hint)
        self.message = message
        self.line = line
        self.scope = scope
        self.hint = hint  # " (did you mean 'x'?)", kept apart so callers can add context

    def describe(self, environment: str | None = None) -> str:
        where = f" for environment '{environment}'" if environment and self.scope else ""
        return f"{self.message}{where}{self.hint}"


def _environment() -> SandboxedEnvironment:
    return SandboxedEnvironment(
        undefined=_Undefined,
        autoescape=False,
        keep_trailing_newline=True,
    )


_ENV = _environment()


def render_template(source: str, context: Mapping[str, Any], *, names: str = "") -> str:
    """Render one prompt template in the sandbox; raise TemplateFailure.

    `context` holds `vars`, `env`, `character` and the caller's values.
    `names` is a short text listing where caller values come from, for messages.
    """
    try:
        template = _ENV.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateFailure(f"jinja2 syntax error: {exc.message}", exc.lineno or 1) from exc
    try:
        return template.render(**context)
    except _Missing as exc:
        scope = next(
            (s for s in ("vars", "env") if exc.obj is not missing and exc.obj is context.get(s)),
            None,
        )
        message, hint = _missing_message(exc, context, names)
        raise TemplateFailure(message, _line_of(exc), scope, hint) from exc
    except SecurityError as exc:
        raise TemplateFailure(f"not allowed in a template: {exc}", _line_of(exc)) from exc
    except UndefinedError as exc:
        raise TemplateFailure(f"undefined value: {exc}", _line_of(exc)) from exc
    except TemplateError as exc:
        raise TemplateFailure(f"template error: {exc}", _line_of(exc)) from exc
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateFailure(f"template error: {exc}", _line_of(exc)) from exc


def unguarded_names(source: str) -> list[tuple[str, int]]:
    """Caller values a template uses without a guard, with their line.

    Names other than vars, env and character come from the caller, who may
    not pass them; `| default(...)` or an `is defined` test makes a template
    render without them, which is what lets `validate` prove it renders.
    Raises TemplateFailure on a syntax error.
    """
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateFailure(f"jinja2 syntax error: {exc.message}", exc.lineno or 1) from exc
    free = meta.find_undeclared_variables(ast) - set(CONTEXT_NAMES)
    if not free:
        return []
    tested: set[str] = set()
    unguarded: dict[str, int] = {}
    for node, parents in _walk(ast, ()):
        if not (isinstance(node, nodes.Name) and node.ctx == "load" and node.name in free):
            continue
        current: nodes.Node = node
        index = len(parents) - 1
        while index >= 0 and isinstance(parents[index], nodes.Getattr | nodes.Getitem):
            if parents[index].node is not current:  # type: ignore[attr-defined]
                break
            current = parents[index]
            index -= 1
        parent = parents[index] if index >= 0 else None
        if (
            isinstance(parent, nodes.Test)
            and parent.node is current
            and parent.name in ("defined", "undefined")
        ):
            tested.add(node.name)
            continue
        if (
            isinstance(parent, nodes.Filter)
            and parent.node is current
            and parent.name in ("default", "d")
        ):
            continue
        unguarded.setdefault(node.name, node.lineno)
    return sorted(
        ((name, line) for name, line in unguarded.items() if name not in tested),
        key=lambda item: (item[1], item[0]),
    )


def _walk(
    node: nodes.Node, parents: tuple[nodes.Node, ...]
) -> Iterator[tuple[nodes.Node, tuple[nodes.Node, ...]]]:
    yield node, parents
    for child in node.iter_child_nodes():
        yield from _walk(child, (*parents, node))


def _missing_message(exc: _Missing, context: Mapping[str, Any], names: str) -> tuple[str, str]:
    """(message, did-you-mean hint) for a missing name."""
    name = exc.name or "?"
    for scope in ("vars", "env", "character"):
        if exc.obj is context.get(scope) and isinstance(exc.obj, Mapping):
            hint = did_you_mean(name, exc.obj.keys())
            if scope == "vars":
                return f"{{{{ vars.{name} }}}} is not defined", hint
            if scope == "env":
                return (
                    f"env.{name} is not set or not allowed "
                    "(templates see what env.allow lets in, secrets excluded)",
                    hint,
                )
            return f"character.{name} does not exist", hint
    if exc.obj is not missing:
        return f"undefined value: {exc}", ""
    hint = did_you_mean(name, [key for key in context if not key.startswith("_")])
    extra = f" ({names})" if names else ""
    return f"'{name}' is undefined{extra}", hint


def _line_of(exc: BaseException) -> int:
    """The template line of the innermost frame that belongs to the template."""
    # jinja2 rewrites tracebacks so template frames carry template lines.
    tb = exc.__traceback__
    line = 1
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
