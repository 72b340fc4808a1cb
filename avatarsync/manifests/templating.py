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

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from jinja2 import (
    ChainableUndefined,
    Environment,
    StrictUndefined,
    Template,
    TemplateSyntaxError,
    UndefinedError,
    meta,
    nodes,
)
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment, safe_range
from jinja2.utils import missing
from jinja2.visitor import NodeTransformer

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
    "template_names",
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
    is_credential: Callable[[str], bool] = lambda _name: False
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
        if ctx.is_credential(name):
            result.problems.append(
                Problem(
                    offset,
                    f"${{env.{name}}} is not allowed: {name} holds an environment's API key "
                    "(apiKeyEnv), which manifests can never read",
                )
            )
            return None
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


# --- limits ---------------------------------------------------------------------------
#
# A template comes from a manifest, which may come from anyone who can open a
# pull request: rendering it (validate and plan trial-render every preset)
# must not be able to exhaust the machine. jinja2's sandbox guards attribute
# access, not size, so on top of it: every string, list and number a
# template builds is bounded, loop iterations and calls share one budget per
# render, calls cannot nest deeper than a few dozen, and the output is
# capped. Each refusal is a TemplateFailure at the template's line.

MAX_OUTPUT = 64 * 1024  # characters one template may render
MAX_VALUE = 64 * 1024  # characters (or items) of any string or list it builds
MAX_INT_BITS = 4096  # an integer of more bits is refused (10 ** 1233 is ~4096 bits)
MAX_STEPS = 200_000  # loop iterations plus calls, per render
MAX_CALL_DEPTH = 40  # nested macro / function calls
_LOOP = "_avatarsync_loop"
_CONCAT = "_avatarsync_concat"
_WIDTH = re.compile(r"%[-+ #0]*(\d+)?(?:\.(\d+))?|\{[^{}]*:[^{}]*?(\d+)[^{}]*\}")


class TemplateLimit(SecurityError):
    """A template tried to build or do more than the limits allow."""


@dataclass
class _Budget:
    steps: int = 0
    depth: int = 0

    def step(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateLimit(
                f"the template runs more than {MAX_STEPS} loop iterations and calls"
            )


_budget: ContextVar[_Budget] = ContextVar("avatarsync_template_budget")


def _current_budget() -> _Budget:
    try:
        return _budget.get()
    except LookupError:  # rendered outside render_template: give it its own
        budget = _Budget()
        _budget.set(budget)
        return budget


def _check_value(value: Any) -> Any:
    if isinstance(value, str | list | tuple | dict) and len(value) > MAX_VALUE:
        raise TemplateLimit(f"a value of more than {MAX_VALUE} characters or items")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimit(f"an integer of more than {MAX_INT_BITS} bits")
    return value


def _check_widths(fmt: str) -> None:
    """`'%1000000000s' % x` or `'{:>1000000000}'.format(x)` would build a huge string."""
    for match in _WIDTH.finditer(fmt):
        for width in match.groups():
            if width is not None and int(width) > MAX_VALUE:
                raise TemplateLimit(f"a format width of {width} (more than {MAX_VALUE})")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str | list | tuple | dict) else 0


def _check_binop(operator: str, left: Any, right: Any) -> None:
    ints = (
        isinstance(left, int)
        and isinstance(right, int)
        and not isinstance(left, bool)
        and not isinstance(right, bool)
    )
    if operator == "**" and ints and right > 0 and abs(left) > 1:
        if abs(left).bit_length() * right > MAX_INT_BITS:
            raise TemplateLimit(f"{left} ** {right} is larger than {MAX_INT_BITS} bits")
    elif operator == "*":
        if ints and left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise TemplateLimit(f"a product larger than {MAX_INT_BITS} bits")
        for seq, times in ((left, right), (right, left)):
            if isinstance(times, int) and times * _size(seq) > MAX_VALUE:
                raise TemplateLimit(f"a value of more than {MAX_VALUE} characters or items")
    elif operator == "+" and _size(left) + _size(right) > MAX_VALUE:
        raise TemplateLimit(f"a value of more than {MAX_VALUE} characters or items")
    elif operator == "%" and isinstance(left, str):
        _check_widths(left)


def _check_arguments(args: Iterable[Any]) -> None:
    """A count or width beyond the value limit ('x'.center(10**9), |indent(10**9))."""
    for arg in args:
        if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_VALUE:
            raise TemplateLimit(f"an argument of {arg} (more than {MAX_VALUE})")


def _check_replace(text: Any, old: Any, new: Any) -> None:
    if isinstance(text, str) and text.count(str(old) or " ") * len(str(new)) > MAX_VALUE:
        raise TemplateLimit(f"a value of more than {MAX_VALUE} characters or items")


def _check_call(obj: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """What a call could build before its result is checked."""
    if isinstance(getattr(obj, "__self__", None), str) and obj.__name__ == "replace" and args[1:]:
        _check_replace(obj.__self__, args[0], args[1])
    _check_arguments((*args, *kwargs.values()))


def _guard_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)  # keeps jinja2's pass_context / pass_environment marks
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _current_budget().step()
        # The filtered value was checked when it was built; its arguments are
        # widths, counts and replacements.
        values = [a for a in args if not isinstance(a, Context | EvalContext | Environment)]
        _check_arguments((*values[1:], *kwargs.values()))
        if name == "replace" and len(values) >= 3:
            _check_replace(values[0], values[1], values[2])
        elif name == "format" and values and isinstance(values[0], str):
            _check_widths(values[0])
        return _check_value(function(*args, **kwargs))

    return guarded


def _loop_guard(iterable: Any) -> Iterator[Any]:
    """What every `{% for %}` iterates through: each item costs one step."""
    budget = _current_budget()
    for item in iterable:
        budget.step()
        yield item


def _concat_guard(*parts: Any) -> str:
    """`a ~ b`: refused before it builds a string over the limit."""
    if sum(len(str(p)) for p in parts) > MAX_VALUE:
        raise TemplateLimit(f"a value of more than {MAX_VALUE} characters or items")
    return "".join(str(p) for p in parts)


class _Guards(NodeTransformer):
    """Rewrites a parsed template so loops and `~` go through the guards."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _call(_LOOP, [node.iter], node.lineno)  # type: ignore[list-item]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _call(_CONCAT, list(node.nodes), node.lineno)


def _call(name: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    call = nodes.Call(nodes.Name(name, "load"), args, [], None, None)
    call.set_lineno(lineno)
    return call


class _LimitedSandbox(SandboxedEnvironment):
    """jinja2's sandbox with the size, step and depth limits above."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _check_binop(operator, left, right)
        return _check_value(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # The sandbox hands out its own str.format / format_map: check widths first.
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        template = value.__self__

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_widths(template)
            result: str = wrapper(*args, **kwargs)
            return _check_value(result)  # type: ignore[no-any-return]

        return checked

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _current_budget()
        budget.step()
        # range() is lazy and already capped by the sandbox; its iterations
        # are what the loop guard counts.
        if __obj not in (_loop_guard, _concat_guard, range, safe_range):
            _check_call(__obj, args, kwargs)
        budget.depth += 1
        try:
            if budget.depth > MAX_CALL_DEPTH:
                raise TemplateLimit(
                    f"calls nest deeper than {MAX_CALL_DEPTH} (a macro that calls itself?)"
                )
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        return result if isinstance(result, Iterator) else _check_value(result)


def _environment() -> SandboxedEnvironment:
    env = _LimitedSandbox(
        undefined=_Undefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters = {name: _guard_filter(name, f) for name, f in env.filters.items()}
    env.globals[_LOOP] = _loop_guard
    env.globals[_CONCAT] = _concat_guard
    return env


_ENV = _environment()


def _compile(source: str) -> Template:
    ast = _ENV.parse(source)
    _Guards().visit(ast)
    return _ENV.from_string(ast)


def _render_limited(template: Template, context: Mapping[str, Any]) -> str:
    token = _budget.set(_Budget())
    try:
        parts: list[str] = []
        length = 0
        for part in template.generate(**context):
            length += len(part)
            if length > MAX_OUTPUT:
                raise TemplateLimit(f"the output is longer than {MAX_OUTPUT} characters")
            parts.append(part)
        return "".join(parts)
    finally:
        _budget.reset(token)


def render_template(source: str, context: Mapping[str, Any], *, names: str = "") -> str:
    """Render one prompt template in the sandbox; raise TemplateFailure.

    `context` holds `vars`, `env`, `character` and the caller's values.
    `names` is a short text listing where caller values come from, for messages.
    """
    try:
        template = _compile(source)
    except TemplateSyntaxError as exc:
        raise TemplateFailure(f"jinja2 syntax error: {exc.message}", exc.lineno or 1) from exc
    try:
        return _render_limited(template, context)
    except _Missing as exc:
        scope = next(
            (s for s in ("vars", "env") if exc.obj is not missing and exc.obj is context.get(s)),
            None,
        )
        message, hint = _missing_message(exc, context, names)
        raise TemplateFailure(message, _line_of(exc), scope, hint) from exc
    except TemplateLimit as exc:
        raise TemplateFailure(f"template too expensive: {exc}", _line_of(exc)) from exc
    except SecurityError as exc:
        raise TemplateFailure(f"not allowed in a template: {exc}", _line_of(exc)) from exc
    except UndefinedError as exc:
        raise TemplateFailure(f"undefined value: {exc}", _line_of(exc)) from exc
    except TemplateError as exc:
        raise TemplateFailure(f"template error: {exc}", _line_of(exc)) from exc
    except (TypeError, ValueError, ArithmeticError, LookupError, AttributeError) as exc:
        raise TemplateFailure(f"template error: {exc}", _line_of(exc)) from exc
    except RecursionError as exc:  # a backstop: the depth limit should come first
        raise TemplateFailure("template too expensive: it recurses too deeply", 1) from exc
    except MemoryError as exc:  # a backstop, too
        raise TemplateFailure("template too expensive: it ran out of memory", 1) from exc


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


def template_names(source: str) -> dict[str, int]:
    """Every name a template reads from its context (vars, env and character
    included), with the line of its first use. Raises TemplateFailure on a
    syntax error."""
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateFailure(f"jinja2 syntax error: {exc.message}", exc.lineno or 1) from exc
    free = meta.find_undeclared_variables(ast)
    lines: dict[str, int] = {}
    for node, _parents in _walk(ast, ()):
        if isinstance(node, nodes.Name) and node.ctx == "load" and node.name in free:
            lines.setdefault(node.name, node.lineno)
    return dict(sorted(lines.items(), key=lambda item: (item[1], item[0])))


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
            if name in getattr(exc.obj, "secret_fields", ()):
                return (
                    f"character.{name} holds a secret and is not available to templates",
                    "",
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
