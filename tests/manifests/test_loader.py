"""The loader: data plus the file:line:col of every value, and every YAML trap."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avatarsync.errors import Diagnostic
from avatarsync.manifests.loader import (
    MAX_FILE_BYTES,
    YamlDocument,
    dump_yaml,
    load_file,
    load_text,
    yaml11_surprise,
)
from avatarsync.resources import Position


def one(text: str) -> YamlDocument:
    result = load_text(text, "f.yaml")
    assert result.diagnostics == []
    assert len(result.documents) == 1
    return result.documents[0]


def messages(text: str) -> list[str]:
    return [str(d) for d in load_text(text, "f.yaml").diagnostics]


def test_positions_of_nested_values_and_keys() -> None:
    doc = one("kind: Character\nspec:\n  voice:\n    identity: Puck\n  docs:\n    - path: a.md\n")
    assert doc.data == {
        "kind": "Character",
        "spec": {"voice": {"identity": "Puck"}, "docs": [{"path": "a.md"}]},
    }
    assert doc.source.value(("spec", "voice", "identity")) == Position("f.yaml", 4, 15)
    assert doc.source.key(("spec", "voice", "identity")) == Position("f.yaml", 4, 5)
    assert doc.source.value(("spec", "docs", 0, "path")) == Position("f.yaml", 6, 13)
    assert doc.source.value(("spec", "docs", 0)) == Position("f.yaml", 6, 7)
    # a path that was never written falls back to its nearest written ancestor
    # (a block mapping starts at its first key)
    assert doc.source.value(("spec", "voice", "missing")) == Position("f.yaml", 4, 5)
    assert doc.position == Position("f.yaml", 1, 1)


def test_many_documents_keep_their_own_positions() -> None:
    result = load_text("a: 1\n---\n---\n# only a comment\n---\nb: 2\n", "f.yaml")
    assert [d.data for d in result.documents] == [{"a": 1}, {"b": 2}]
    assert [d.index for d in result.documents] == [0, 1]
    assert result.documents[1].source.value(("b",)) == Position("f.yaml", 6, 4)


def test_duplicate_keys_are_errors_and_the_first_is_kept() -> None:
    result = load_text("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", "f.yaml")
    assert [str(d) for d in result.diagnostics] == [
        "f.yaml:4:3: duplicate key 'c' (first written at line 3, column 3); remove one of them",
        "f.yaml:5:1: duplicate key 'a' (first written at line 1, column 1); remove one of them",
    ]
    assert result.documents[0].data == {"a": 1, "b": {"c": 1}}


def test_scalars_keep_their_source_text_and_style() -> None:
    doc = one("a: no\nb: '1.10'\nc: 1.10\nd: |\n  x\n")
    a = doc.source.scalars[("a",)]
    assert (a.text, a.style, a.tag, doc.data["a"]) == ("no", None, "bool", False)
    b = doc.source.scalars[("b",)]
    assert (b.text, b.style, b.tag, doc.data["b"]) == ("'1.10'", "'", "str", "1.10")
    c = doc.source.scalars[("c",)]
    assert (c.text, c.tag, doc.data["c"]) == ("1.10", "float", 1.1)
    assert doc.source.scalars[("d",)].style == "|"


def test_yaml11_surprises_are_named() -> None:
    doc = one("a: yes\nb: on\nc: true\nd: 1:30\ne: 0777\nf: 1_000\ng: 2024-01-01\nh: 12\ni: 'no'\n")

    def surprise(key: str) -> str | None:
        return yaml11_surprise(doc.source.scalars[(key,)], doc.data[key])

    assert surprise("a") == "YAML 1.1 reads 'yes' as the boolean true, YAML 1.2 as text"
    assert surprise("b") == "YAML 1.1 reads 'on' as the boolean true, YAML 1.2 as text"
    assert surprise("c") is None
    assert surprise("d") == "YAML 1.1 reads '1:30' as the number 90, YAML 1.2 as text"
    assert surprise("e") == "YAML 1.1 reads '0777' as the number 511, YAML 1.2 as text"
    assert surprise("f") == "YAML 1.1 reads '1_000' as the number 1000, YAML 1.2 as text"
    assert surprise("g") == "YAML 1.1 reads '2024-01-01' as a date, YAML 1.2 as text"
    assert surprise("h") is None
    assert surprise("i") is None


def test_keys_are_always_text() -> None:
    doc = one("on: 1\n1.10: 2\n~: 3\n")
    assert list(doc.data) == ["on", "1.10", "~"]


def test_locate_inside_plain_quoted_and_literal_scalars() -> None:
    doc = one('a: hello ${x}\nb: "say ${y}"\nc: |\n  line one\n    two ${z}\nd: >\n  folded ${w}\n')
    source, data = doc.source, doc.data
    assert source.locate(("a",), data["a"], data["a"].index("$")) == Position("f.yaml", 1, 10)
    assert source.locate(("b",), data["b"], data["b"].index("$")) == Position("f.yaml", 2, 9)
    assert source.locate(("c",), data["c"], data["c"].index("$")) == Position("f.yaml", 5, 9)
    # folded blocks do not map one to one: the start of the value
    assert source.locate(("d",), data["d"], data["d"].index("$")) == Position("f.yaml", 6, 4)
    assert source.locate_line(("c",), data["c"], 2) == Position("f.yaml", 5, 3)


def test_syntax_errors_become_positioned_messages() -> None:
    assert messages("a:\n\tb: 1\n") == [
        "f.yaml:2:1: tab character: YAML indentation must use spaces, not tabs"
    ]
    assert messages("a: b: c\n") == [
        "f.yaml:1:5: invalid YAML: unexpected ':' (quote a value that contains ': ', "
        "or check the indentation)"
    ]
    assert messages('a: "abc\nb: 1\n') == [
        'f.yaml:1:4: invalid YAML: this quoted value is never closed (a missing ")'
    ]
    assert messages("a: [1, 2\nb: 3\n") == [
        "f.yaml:1:4: invalid YAML: this '[' is not closed by a matching ']' "
        "(or a ',' is missing between items)"
    ]
    assert messages("- a\nb: 1\n") == [
        "f.yaml:2:1: invalid YAML: a 'key: value' entry does not fit the structure above "
        "(check the indentation)"
    ]
    assert messages("a: *nope\n") == ["f.yaml:1:4: invalid YAML: undefined alias 'nope'"]
    assert messages("a: \x07\n") == [
        "f.yaml:1:4: control character '\\x07' is not allowed in YAML text"
    ]


def test_documents_before_a_syntax_error_are_kept() -> None:
    result = load_text("a: 1\n---\nb: [\n", "f.yaml")
    assert [d.data for d in result.documents] == [{"a": 1}]
    assert len(result.diagnostics) == 1


def test_unsupported_tags_are_errors() -> None:
    assert messages("a: !secret x\nb: !!binary aGk=\n") == [
        "f.yaml:1:4: unsupported YAML tag '!secret' (write plain values)",
        "f.yaml:2:4: unsupported YAML tag 'tag:yaml.org,2002:binary' (write plain values)",
    ]


def test_anchors_aliases_and_merge_keys() -> None:
    doc = one("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nlist: [*b]\n")
    assert doc.data["use"] == {"y": 3, "x": 1}
    assert doc.data["list"] == [{"x": 1, "y": 2}]
    # merged values point at where they were written (the anchor)
    assert doc.source.value(("use", "x")) == Position("f.yaml", 1, 14)


def test_alias_bombs_and_recursion_are_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    # How fast it is refused is measured in benchmarks/, not asserted here.
    assert messages("\n".join(lines) + "\n") == [
        "f.yaml:1:1: document expands to more than 200000 values or 4 MiB of text "
        "(aliases repeated too often?)"
    ]
    assert messages("a: &a [*a]\n") == [
        "f.yaml:1:4: an alias refers to the collection that contains it"
    ]
    assert messages("[" * 5000 + "]" * 5000 + "\n") == ["f.yaml:1:1: YAML nesting is too deep"]


def test_an_alias_repeated_many_times_is_limited_by_the_bytes_it_expands_to() -> None:
    # 500 KB of source: one 50 KB value and ten thousand aliases of it. Few
    # values, but 500 MB once expanded (and the loader used to copy the source
    # text of the value once per alias).
    text = "big: &big '" + "x" * 50_000 + "'\nuses:\n" + "  - *big\n" * 10_000
    tracemalloc.start()
    try:
        assert messages(text) == [
            "f.yaml:1:1: document expands to more than 200000 values or 4 MiB of text "
            "(aliases repeated too often?)"
        ]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024


def test_empty_and_comment_only_files(tmp_path: Path) -> None:
    assert messages("") == ["f.yaml:1:1: file is empty (delete it, or keep a comment in it)"]
    assert messages("  \n\n") == ["f.yaml:1:1: file is empty (delete it, or keep a comment in it)"]
    result = load_text("# nothing yet\n", "f.yaml")
    assert (result.documents, result.diagnostics) == ([], [])


def test_files_over_the_limit_are_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    assert load_file(path, "big.yaml").diagnostics == [
        Diagnostic(
            "big.yaml",
            1,
            1,
            "file is 1 MiB; manifest files are limited to 1 MiB (is this really a manifest?)",
        )
    ]


def test_encodings(tmp_path: Path) -> None:
    bom = tmp_path / "bom.yaml"
    bom.write_bytes("\ufeffa: café\n".encode())
    assert load_file(bom, "bom.yaml").documents[0].data == {"a": "café"}
    utf16 = tmp_path / "utf16.yaml"
    utf16.write_bytes("a: 1\n".encode("utf-16"))
    assert [str(d) for d in load_file(utf16, "utf16.yaml").diagnostics] == [
        "utf16.yaml:1:1: not a UTF-8 text file: byte 0xff cannot be decoded "
        "(binary data, or another encoding?)"
    ]
    assert [str(d) for d in load_file(tmp_path / "nope.yaml", "nope.yaml").diagnostics] == [
        "nope.yaml:1:1: cannot read file: No such file or directory"
    ]


def test_dump_yaml_quotes_what_yaml_would_misread_and_uses_literal_blocks() -> None:
    text = dump_yaml({"name": "no", "version": "1.10", "prompt": "one\ntwo\n", "n": 3})
    assert text == "name: 'no'\nversion: '1.10'\nprompt: |\n  one\n  two\nn: 3\n"
    assert one(text).data == {"name": "no", "version": "1.10", "prompt": "one\ntwo\n", "n": 3}
    assert dump_yaml([{"a": 1}, {"b": 2}], documents=True) == "---\na: 1\n---\nb: 2\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}'\"&*!|>#%@`\t\n ,?~0\x07")), max_size=60))
def test_any_text_gives_data_or_diagnostics_never_an_exception(text: str) -> None:
    result = load_text(text, "f.yaml")
    for diagnostic in result.diagnostics:
        assert diagnostic.line >= 1 and diagnostic.col >= 1
        assert diagnostic.message


def test_cr_only_line_breaks_keep_positions_inside_literal_blocks() -> None:
    text = "a: 1\rb: |\r  first line\r  second ${oops\r"
    result = load_text(text, "f.yaml")
    info = result.documents[0].source.scalars[("b",)]
    value = result.documents[0].data["b"]
    assert value == "first line\nsecond ${oops\n"
    assert info.locate(value, value.index("${")) == (4, 10)


def test_a_merge_of_a_scalar_is_reported_at_the_merge_key() -> None:
    text = "anchor: &s just text\nother: 1\nmapping:\n  <<: *s\n  b: 2\n"
    assert messages(text) == ["f.yaml:4:3: '<<' merges only mappings (an alias of a mapping)"]


def test_libyaml_and_pure_python_composers_give_the_same_result(monkeypatch) -> None:
    from avatarsync.manifests import loader as loader_module

    repo = Path(__file__).resolve().parents[2]
    texts = [p.read_text(encoding="utf-8") for p in (repo / "examples").rglob("*.yaml")]
    texts += [p.read_text(encoding="utf-8") for p in (repo / "tests/corpus").rglob("*.yaml")]
    # Not the deep-nesting case: PyYAML's scanner is quadratic in depth, and
    # the loader never hands it such a text (libyaml refuses it first).
    texts = [t for t in texts if "[" * 100 not in t]
    assert len(texts) > 30
    texts.append("a: 'héllo ✓'\nb: |\n  ünï ✓\n  two\nc: [1, {d: é}]\nx: &x 1\ny: *x\n")
    fast = [load_text(t, "f.yaml") for t in texts]
    monkeypatch.setattr(loader_module, "_FAST_LOADER", None)
    pure = [load_text(t, "f.yaml") for t in texts]
    for a, b in zip(fast, pure, strict=True):
        assert a.diagnostics == b.diagnostics
        assert [(d.data, d.source) for d in a.documents] == [
            (d.data, d.source) for d in b.documents
        ]
