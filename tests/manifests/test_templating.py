"""`${...}` substitution and the sandboxed jinja2 prompt templates."""

from __future__ import annotations

import pytest

from avatarsync.manifests.templating import (
    Problem,
    SubstitutionContext,
    TemplateFailure,
    placeholders,
    render_template,
    substitute,
    unguarded_names,
)

ENV = {"ACME_REGION": "eu", "AGENT": "agent-secret-42"}


def ctx(unset_env_is_error: bool = True) -> SubstitutionContext:
    return SubstitutionContext(
        environment="staging",
        vars={"company": "Acme", "n": 3, "on": True, "nested": {"x": "deep"}, "empty": None},
        lookup_env=ENV.get,
        allows_env=lambda name: name.startswith("ACME_") or name in ("AGENT", "UNSET"),
        is_secret=lambda name: name == "AGENT",
        unset_env_is_error=unset_env_is_error,
    )


def test_vars_and_env_are_substituted_as_text() -> None:
    result = substitute(
        "${vars.company} ${vars.n} ${vars.on} ${vars.nested.x} ${env.ACME_REGION}", ctx()
    )
    assert (result.value, result.problems, result.substituted, result.secret) == (
        "Acme 3 true deep eu",
        [],
        True,
        False,
    )


def test_strings_without_substitutions_are_untouched() -> None:
    result = substitute("plain {{ jinja }} $5", ctx())
    assert (result.value, result.substituted) == ("plain {{ jinja }} $5", False)


def test_escape_and_spaces() -> None:
    assert substitute("$${vars.company} ${ vars.company }", ctx()).value == "${vars.company} Acme"


def test_secret_env_marks_the_result() -> None:
    result = substitute("id-${env.AGENT}", ctx())
    assert (result.value, result.secret) == ("id-agent-secret-42", True)


def test_problems_carry_their_offset() -> None:
    text = "a ${vars.compnay} b ${env.HOME} c ${vars.nested} d ${foo} e ${vars.empty} ${oops"
    result = substitute(text, ctx())
    assert result.problems == [
        Problem(
            2, "${vars.compnay} is not defined for environment 'staging' (did you mean 'company'?)"
        ),
        Problem(
            20,
            "${env.HOME} is not allowed: list HOME under env.allow (or env.secret) in avatarsync.yaml",
        ),
        Problem(
            34,
            "${vars.nested} is a list or mapping in environment 'staging'; "
            "only text, numbers and booleans can be substituted",
        ),
        Problem(
            51,
            "'${foo}' is not a substitution avatarsync knows: write ${vars.NAME} or "
            "${env.NAME} (or $${ for a literal '${')",
        ),
        Problem(
            60,
            "${vars.empty} is empty (null) in environment 'staging'; "
            "only text, numbers and booleans can be substituted",
        ),
        Problem(74, "unterminated '${' (write '$${' for a literal '${')"),
    ]


def test_nested_vars_name_the_missing_part() -> None:
    result = substitute("${vars.nested.xx}", ctx())
    assert result.problems == [
        Problem(0, "${vars.nested.xx} is not defined for environment 'staging' (did you mean 'x'?)")
    ]


def test_unset_env_is_an_error_or_offline_a_warning() -> None:
    message = (
        "${env.UNSET} is not set (environment 'staging'): set it in the environment or in .env"
    )
    assert substitute("${env.UNSET}", ctx()).problems == [Problem(0, message, "error")]
    assert substitute("${env.UNSET}", ctx(False)).problems == [Problem(0, message, "warning")]


def test_placeholders_are_the_platforms_simple_names() -> None:
    text = "Hi {{ customer_name }}, {{customer_name}} {{ plan }} {{ x.y }} {% if a %}"
    assert placeholders(text) == ["customer_name", "plan"]
    assert placeholders(None) == []


CONTEXT = {"vars": {"company": "Acme", "n": 2}, "env": {}, "character": {"displayName": "Sam"}}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ vars.company | upper }} x{{ vars.n + 1 }}", "ACME x3"),
        ("{{ customer.name | default('there') }}", "there"),
        ("{{ customer['name'] | d('there') }}", "there"),
        ("{% if order is defined %}#{{ order }}{% endif %}ok", "ok"),
        ("{{ character.displayName }}", "Sam"),
        ("keeps trailing newline\n", "keeps trailing newline\n"),
    ],
)
def test_render(template: str, expected: str) -> None:
    assert render_template(template, CONTEXT) == expected


def test_caller_values_are_used() -> None:
    context = {**CONTEXT, "customer": {"name": "Ann"}}
    assert render_template("{{ customer.name | default('there') }}", context) == "Ann"


@pytest.mark.parametrize(
    ("template", "line", "message"),
    [
        ("a\n{{ vars.compnay }}", 2, "{{ vars.compnay }} is not defined (did you mean 'company'?)"),
        ("{{ character.name }}", 1, "character.name does not exist"),
        (
            "{{ env.HOME }}",
            1,
            "env.HOME is not set or not allowed (templates see what env.allow lets in, secrets excluded)",
        ),
        ("x\n\n{{ customer }}", 3, "'customer' is undefined (pass it with --set)"),
        ("{{ customer.name }}", 1, "'customer' is undefined (pass it with --set)"),
        (
            "{{ ''.__class__.__mro__ }}",
            1,
            "not allowed in a template: access to attribute '__class__' of 'str' object is unsafe.",
        ),
        ("{{ vars.n / 0 }}", 1, "template error: division by zero"),
        (
            "x\n{% if %}",
            2,
            "jinja2 syntax error: Expected an expression, got 'end of statement block'",
        ),
    ],
)
def test_render_failures(template: str, line: int, message: str) -> None:
    with pytest.raises(TemplateFailure) as caught:
        render_template(template, CONTEXT, names="pass it with --set")
    assert (caught.value.line, str(caught.value)) == (line, message)


def test_failures_about_vars_name_the_environment() -> None:
    with pytest.raises(TemplateFailure) as caught:
        render_template("{{ vars.compnay }}", CONTEXT)
    assert caught.value.describe("prod") == (
        "{{ vars.compnay }} is not defined for environment 'prod' (did you mean 'company'?)"
    )
    with pytest.raises(TemplateFailure) as caught:
        render_template("{{ character.x }}", CONTEXT)
    assert caught.value.describe("prod") == "character.x does not exist"


@pytest.mark.parametrize(
    ("template", "names"),
    [
        ("{{ customer.name | default('x') }} {{ vars.a }} {{ character.b }} {{ env.C }}", []),
        ("{{ customer.name }}", [("customer", 1)]),
        ("{% if vip is defined %}{{ vip }}{% endif %}", []),
        ("a\n{{ x ~ y | default(1) }}\n{{ z }}", [("x", 2), ("z", 3)]),
        ("{% set z = 1 %}{{ z }}{% for i in items | default([]) %}{{ i }}{% endfor %}", []),
    ],
)
def test_unguarded_names(template: str, names: list[tuple[str, int]]) -> None:
    assert unguarded_names(template) == names


# --- limits: a template from a pull request cannot exhaust the machine --------------

BOMBS = [
    ("{{ 'x' * 10**9 }}", 1, "a value of more than 65536 characters or items"),
    ("{{ 7 ** (10**9) }}", 1, "7 ** 1000000000 is larger than 4096 bits"),
    ("{{ 10**2000 * 10**2000 }}", 1, "larger than 4096 bits"),
    (
        "{% for i in range(99999) %}\n{% for j in range(99999) %}{% endfor %}{% endfor %}",
        2,
        "the template runs more than 200000 loop iterations and calls",
    ),
    (
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}\n{{ f(1) }}",
        1,
        "calls nest deeper than 40 (a macro that calls itself?)",
    ),
    ("{{ 'x'.center(10**9) }}", 1, "an argument of 1000000000 (more than 65536)"),
    ("{{ 'x' | center(10**9) }}", 1, "an argument of 1000000000 (more than 65536)"),
    ("{{ 'x' | indent(10**9) }}", 1, "an argument of 1000000000 (more than 65536)"),
    ("{% set s = 'x' * 60000 %}\n{{ s ~ s }}", 2, "a value of more than 65536 characters"),
    ("{{ '%1000000000s' % 'x' }}", 1, "a format width of 1000000000"),
    ("{{ '{:>1000000000}'.format('x') }}", 1, "a format width of 1000000000"),
    ("{{ '%1000000000s' | format('x') }}", 1, "a format width of 1000000000"),
    ("{{ ('ab' * 30000) | replace('a', 'xyz') }}", 1, "a value of more than 65536"),
    ("{{ range(100000) | join(',') }}", 1, "a value of more than 65536"),
    ("{{ [1] * 10**9 }}", 1, "a value of more than 65536 characters or items"),
    (
        "{% set n = namespace(v='xxxxxxxx') %}{% for i in range(30) %}"
        "{% set n.v = n.v ~ n.v %}{% endfor %}{{ n.v }}",
        1,
        "a value of more than 65536 characters",
    ),
    (
        "{% for i in range(5000) %}{{ 'x' * 60 }}{% endfor %}",
        1,
        "the output is longer than 65536 characters",
    ),
]


@pytest.mark.parametrize(("template", "line", "message"), BOMBS)
def test_expensive_templates_are_refused_at_their_line(template: str, line: int, message: str):
    with pytest.raises(TemplateFailure) as caught:
        render_template(template, {})
    assert caught.value.line == line
    assert "template too expensive: " in str(caught.value)
    assert message in str(caught.value)


def test_ordinary_templates_stay_well_within_the_limits() -> None:
    template = (
        "{% for item in items %}{{ loop.index }}. {{ item | title }}{% if not loop.last %}, "
        "{% endif %}{% endfor %} — {{ ('=' * 40) ~ '!' }} {{ '%5s|' % name }} {{ 2 ** 64 }}"
    )
    out = render_template(template, {"items": ["tents", "boots"], "name": "Ann"})
    assert out == "1. Tents, 2. Boots — " + "=" * 40 + "!   Ann| 18446744073709551616"
