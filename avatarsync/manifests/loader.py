"""YAML in and out, with the file, line and column of every value.

First stage of the manifest flow (loader → manifest → templating → refs): files
become plain Python data plus a `SourceMap` from each value's path to where it
was written, so every later stage can point at the source. This is the only
module that imports yaml.

PyYAML is used below its constructor, on the composed node tree, because its
constructor silently keeps the last of two duplicate keys and forgets where
and how each scalar was written. Here duplicates are errors, and each scalar
keeps its source text and style, so later stages can explain YAML 1.1
surprises (`name: no` read as a boolean, `version: 1.10` as the number 1.1)
instead of passing on a silently wrong value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from avatarsync.errors import Diagnostic
from avatarsync.resources import Position

__all__ = [
    "MAX_EXPANDED_BYTES",
    "MAX_FILE_BYTES",
    "MAX_VALUES",
    "LoadResult",
    "ScalarInfo",
    "SourceMap",
    "YamlDocument",
    "YamlPath",
    "dump_yaml",
    "iter_strings",
    "load_file",
    "load_text",
    "yaml11_surprise",
]

# Manifests are hand-written text; anything bigger is a mistake (a generated
# dump, a binary) and would only make parsing slow.
MAX_FILE_BYTES = 1024 * 1024
# Values built per file, aliases expanded: stops "billion laughs" documents.
MAX_VALUES = 200_000
# Text built per file, aliases expanded: a 50 KB value aliased ten thousand
# times is 500 MB after expansion, however few values that makes.
MAX_EXPANDED_BYTES = 4 * MAX_FILE_BYTES

YamlPath = tuple[str | int, ...]

_TAG = "tag:yaml.org,2002:"
_MERGE_TAG = _TAG + "merge"
_SURROGATE = re.compile("[\ud800-\udfff]")
_SCALAR_TAGS = {"str", "null", "bool", "int", "float", "timestamp"}


class ScalarInfo(NamedTuple):
    """How one scalar was written: enough to explain and to point inside it.
    (A named tuple: one per scalar, tens of thousands per plan.)"""

    text: str  # the source text, quotes and block indicators included
    style: str | None  # None plain, "'" or '"' quoted, "|" literal, ">" folded
    tag: str  # short resolved tag: str, null, bool, int, float, timestamp
    line: int  # 1-based start
    col: int
    end_line: int
    block_indent: int | None = None  # 0-based content indent of a literal block

    @property
    def plain(self) -> bool:
        return self.style is None

    def locate(self, value: str, offset: int) -> tuple[int, int]:
        """Line and column of character `offset` of the constructed `value`.

        Exact for single-line plain or quoted scalars written without escapes
        and for literal blocks (`|`), whose lines map one to one onto the
        source; otherwise the start of the scalar.
        """
        if self.line == self.end_line:
            if self.style is None and self.text == value:
                return self.line, self.col + offset
            if self.style in ("'", '"') and self.text[1:-1] == value:
                return self.line, self.col + 1 + offset
        if self.style == "|" and self.block_indent is not None:
            line_index = value.count("\n", 0, offset)
            line_start = value.rfind("\n", 0, offset) + 1
            return self.line + 1 + line_index, self.block_indent + 1 + offset - line_start
        return self.line, self.col

    def locate_line(self, value: str, template_line: int) -> tuple[int, int]:
        """Source position of 1-based line `template_line` of the value (its
        first line is the value's own start, except in a literal block)."""
        if template_line <= 1 and self.style != "|":
            return self.line, self.col
        offset = 0
        for _ in range(template_line - 1):
            found = value.find("\n", offset)
            if found < 0:
                return self.line, self.col
            offset = found + 1
        return self.locate(value, offset)


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of one document was written."""

    file: str
    values: dict[YamlPath, Position] = field(default_factory=dict)
    keys: dict[YamlPath, Position] = field(default_factory=dict)
    scalars: dict[YamlPath, ScalarInfo] = field(default_factory=dict)

    def value(self, path: YamlPath) -> Position:
        """Position of the value at `path`, or of its nearest written ancestor."""
        for cut in range(len(path), -1, -1):
            found = self.values.get(path[:cut])
            if found is not None:
                return found
        return Position(self.file, 1, 1)

    def key(self, path: YamlPath) -> Position:
        """Position of the key naming `path` (falls back to the value)."""
        return self.keys.get(path) or self.value(path)

    def locate(self, path: YamlPath, value: str, offset: int) -> Position:
        """Position of character `offset` inside the string at `path`."""
        info = self.scalars.get(path)
        if info is None:
            return self.value(path)
        line, col = info.locate(value, offset)
        return Position(self.file, line, col)

    def locate_line(self, path: YamlPath, value: str, template_line: int) -> Position:
        info = self.scalars.get(path)
        if info is None:
            return self.value(path)
        line, col = info.locate_line(value, template_line)
        return Position(self.file, line, col)


@dataclass(frozen=True)
class YamlDocument:
    """One YAML document: its data and where each part of it was written."""

    file: str  # display name (relative to the project root, posix)
    path: Path  # absolute
    index: int  # 0-based position of the document in its file
    data: Any
    source: SourceMap

    @property
    def position(self) -> Position:
        return self.source.value(())


@dataclass
class LoadResult:
    documents: list[YamlDocument] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)


def load_file(path: Path, display: str) -> LoadResult:
    """Read and parse one YAML file; every problem becomes a Diagnostic.

    The size limit is checked before reading, so a 10 MB file costs nothing.
    """
    result = LoadResult()
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            result.diagnostics.append(
                _diag(
                    display,
                    1,
                    1,
                    f"file is {_human_size(size)}; manifest files are limited to "
                    f"{_human_size(MAX_FILE_BYTES)} (is this really a manifest?)",
                )
            )
            return result
        raw = path.read_bytes()
    except OSError as exc:
        result.diagnostics.append(_diag(display, 1, 1, f"cannot read file: {exc.strerror}"))
        return result
    text = _decode(raw, display, result.diagnostics)
    if text is None:
        return result
    return load_text(text, display, path)


def load_text(text: str, display: str, path: Path | None = None) -> LoadResult:
    """Parse YAML text (possibly many documents) into data plus source maps."""
    result = LoadResult()
    # YAML reads CR and CRLF as line breaks (and folds them to LF in values);
    # normalising first keeps every position, and every literal block's
    # line-by-line mapping to its source, in one convention.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        result.diagnostics.append(
            _diag(display, 1, 1, "file is empty (delete it, or keep a comment in it)")
        )
        return result
    builder = _Builder(display, text, result.diagnostics)
    try:
        index = 0
        for node in _compose(text):
            if node is None or _is_empty_document(node):
                continue  # a bare `---` or a document holding only comments
            source = SourceMap(display)
            builder.infos.clear()  # aliases stay within a document; ids of freed nodes recur
            data = builder.build(node, (), source)
            result.documents.append(
                YamlDocument(display, path or Path(display), index, data, source)
            )
            index += 1
    except yaml.MarkedYAMLError as exc:
        result.diagnostics.append(_syntax_diagnostic(exc, display, text))
    except yaml.reader.ReaderError as exc:
        line, col = _line_col(text, exc.position)
        result.diagnostics.append(
            _diag(
                display,
                line,
                col,
                f"control character {chr(exc.character)!r} is not allowed in YAML text",
            )
        )
    except yaml.YAMLError as exc:  # any other parser complaint, without a mark
        result.diagnostics.append(_diag(display, 1, 1, f"invalid YAML: {exc}"))
    except RecursionError:
        result.diagnostics.append(_diag(display, 1, 1, "YAML nesting is too deep"))
    except _TooManyValues:
        result.diagnostics.append(
            _diag(
                display,
                1,
                1,
                f"document expands to more than {MAX_VALUES} values or "
                f"{_human_size(MAX_EXPANDED_BYTES)} of text (aliases repeated too often?)",
            )
        )
    return result


def _fast_loader() -> type | None:
    base = getattr(yaml, "CSafeLoader", None)
    if base is None:
        return None

    class FastLoader(base):  # type: ignore[misc, valid-type]
        """libyaml's composer with PyYAML's tag resolution, memoised per text.

        The safe loader has no path resolvers, so a scalar's tag depends only
        on its text and on whether it was quoted: the same few keys and
        values recur thousands of times, and resolving each again (regexes,
        in Python) was a quarter of the composer's time.
        """

        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self._tags: dict[tuple[str, tuple[bool, bool]], str] = {}

        def descend_resolver(self, current_node: Any, current_index: Any) -> None:
            return None  # no path resolvers: nothing to track

        def ascend_resolver(self) -> None:
            return None

        def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
            if kind is not ScalarNode:
                return str(super().resolve(kind, value, implicit))
            key = (value, implicit)
            tag = self._tags.get(key)
            if tag is None:
                tag = self._tags[key] = super().resolve(kind, value, implicit)
            return tag

    return FastLoader


def _compose(text: str) -> Iterator[Node | None]:
    """The documents' node trees: libyaml's composer when it has it (ten times
    faster, same marks), PyYAML's own otherwise, and always PyYAML's for a
    text libyaml refuses, so every syntax error reads the same.

    libyaml is more lenient than PyYAML in a few corners: tabs as separation
    whitespace (PyYAML refuses any tab outside a scalar, which is what the
    "use spaces" diagnostic relies on) and a few reserved indicators. Texts
    with a tab or a control character always take PyYAML's path.
    """
    fast = _FAST_LOADER
    if fast is not None and "\t" not in text and not yaml.reader.Reader.NON_PRINTABLE.search(text):
        loader = fast(text)
        try:
            nodes = []
            while loader.check_node():
                nodes.append(loader.get_node())
        except yaml.YAMLError as exc:
            if "maximum nesting depth" in str(exc):
                # PyYAML's scanner is quadratic in nesting depth: do not hand it this.
                raise RecursionError from None
        except Exception:  # any other refusal: PyYAML below says it in its words
            pass
        else:
            yield from nodes
            return
        finally:
            loader.dispose()
    pure = yaml.SafeLoader(text)  # its reader checks for control characters at once
    try:
        while pure.check_node():
            yield pure.get_node()
    finally:
        pure.dispose()


def yaml11_surprise(info: ScalarInfo, value: Any) -> str | None:
    """Describe how YAML 1.1 (PyYAML) reads this plain scalar differently from
    YAML 1.2 (editors, JSON Schema tools), or None when both agree."""
    if not info.plain:
        return None
    text = info.text
    if info.tag == "bool" and text.lower() not in ("true", "false"):
        return f"YAML 1.1 reads '{text}' as the boolean {str(value).lower()}, YAML 1.2 as text"
    if info.tag == "int" and (
        ":" in text or "_" in text or re.fullmatch(r"[-+]?0[0-7]+", text) or "0b" in text
    ):
        return f"YAML 1.1 reads '{text}' as the number {value}, YAML 1.2 as text"
    if info.tag == "float" and (":" in text or "_" in text):
        return f"YAML 1.1 reads '{text}' as the number {value}, YAML 1.2 as text"
    if info.tag == "timestamp":
        return f"YAML 1.1 reads '{text}' as a date, YAML 1.2 as text"
    return None


# --- writing -------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as literal blocks, keys in given order."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value and not any(ch in value for ch in "\r\t") and value == value.rstrip(" "):
        return dumper.represent_scalar(_TAG + "str", value, style="|")
    return dumper.represent_scalar(_TAG + "str", value)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(data: Any, *, documents: bool = False) -> str:
    """YAML text for `data` (a list of documents when `documents` is true).

    Keys keep their order, so callers decide the layout; strings that YAML
    would read as something else (`no`, `1.10`) are quoted by the dumper.
    """
    options: dict[str, Any] = {
        "Dumper": _Dumper,
        "sort_keys": False,
        "allow_unicode": True,
        "default_flow_style": False,
        "width": 4096,
    }
    if documents:
        return str(yaml.dump_all(data, explicit_start=True, **options))
    return str(yaml.dump(data, **options))


# --- internals -----------------------------------------------------------------


class _TooManyValues(Exception):
    pass


class _Builder:
    """Turns composed nodes into plain data, filling a SourceMap on the way."""

    def __init__(self, display: str, text: str, diagnostics: list[Diagnostic]) -> None:
        self.display = display
        self.text = text
        self.diagnostics = diagnostics
        self.constructor = SafeConstructor()
        self.count = 0
        self.expanded = 0  # characters of scalar text built, aliases counted each time
        self.active: set[int] = set()  # nodes being built: catches recursive aliases
        # One ScalarInfo per node: an alias repeats the node, not its source text.
        self.infos: dict[int, ScalarInfo] = {}
        # A lone surrogate can only come from an escape (the text itself was
        # decoded from UTF-8), so most files need no search per scalar.
        self.escapes = "\\" in text or _SURROGATE.search(text) is not None

    def build(self, node: Node, path: YamlPath, source: SourceMap) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise _TooManyValues
        mark = node.start_mark
        source.values[path] = Position(self.display, mark.line + 1, mark.column + 1)
        if isinstance(node, ScalarNode):
            return self._scalar(node, path, source)
        if id(node) in self.active:
            self._error(node, "an alias refers to the collection that contains it")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                if node.tag != _TAG + "seq":
                    self._error(node, f"unsupported YAML tag '{node.tag}'")
                return [self.build(item, (*path, i), source) for i, item in enumerate(node.value)]
            if isinstance(node, MappingNode):
                if node.tag != _TAG + "map":
                    self._error(node, f"unsupported YAML tag '{node.tag}'")
                return self._mapping(node, path, source)
        finally:
            self.active.discard(id(node))
        return None  # pragma: no cover - the composer only makes these three

    def _scalar(self, node: ScalarNode, path: YamlPath, source: SourceMap) -> Any:
        tag = node.tag.removeprefix(_TAG)
        if tag not in _SCALAR_TAGS or not node.tag.startswith(_TAG):
            self._error(node, f"unsupported YAML tag '{node.tag}' (write plain values)")
            tag = "str"
        self.expanded += len(node.value)
        if self.expanded > MAX_EXPANDED_BYTES:
            raise _TooManyValues
        info = self.infos.get(id(node))
        if info is None:
            start, end = node.start_mark, node.end_mark
            info = self.infos[id(node)] = ScalarInfo(
                self.text[start.index : end.index],  # text
                node.style or None,  # style
                tag,
                start.line + 1,  # line
                start.column + 1,  # col
                end.line + 1,  # end_line
                self._block_indent(node) if node.style == "|" else None,  # block_indent
            )
        source.scalars[path] = info
        if self.escapes and _SURROGATE.search(node.value):
            self._error(
                node,
                "text contains a lone surrogate (an escape like \\ud800, half of a "
                "character), which is not text; write characters beyond \\uffff as "
                "\\U0001F600",
            )
            return node.value.encode("utf-8", "replace").decode("utf-8")
        if tag == "str":
            return node.value
        try:
            value = self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError):
            self._error(node, f"'{node.value}' is not a valid {tag}")
            return node.value
        return value

    def _mapping(self, node: MappingNode, path: YamlPath, source: SourceMap) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merges: list[tuple[Node, Node]] = []
        keys = source.keys
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merges.append((key_node, value_node))
                continue
            if not isinstance(key_node, ScalarNode):
                self._error(key_node, "mapping keys must be plain text, not a list or mapping")
                continue
            # Keys are always text: `on:` or `1.10:` name what is written.
            key = key_node.value
            child = (*path, key)
            if key in result:
                first = keys[child]
                self._error(
                    key_node,
                    f"duplicate key '{key}' (first written at line {first.line}, "
                    f"column {first.col}); remove one of them",
                )
                continue
            mark = key_node.start_mark
            keys[child] = Position(self.display, mark.line + 1, mark.column + 1)
            result[key] = self.build(value_node, child, source)
        for key_node, merge in merges:
            self._merge(key_node, merge, path, source, result)
        return result

    def _merge(
        self, merge_key: Node, node: Node, path: YamlPath, source: SourceMap, into: dict[str, Any]
    ) -> None:
        """`<<: *anchor` (or a list of them): keys written here win."""
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for item in sources:
            if not isinstance(item, MappingNode):
                # At the merge key: the anchor may be far away, or in another document.
                self._error(merge_key, "'<<' merges only mappings (an alias of a mapping)")
                continue
            for key_node, value_node in item.value:
                if not isinstance(key_node, ScalarNode) or key_node.tag == _MERGE_TAG:
                    continue
                key = key_node.value
                if key not in into:
                    source.keys[(*path, key)] = self._pos(key_node)
                    into[key] = self.build(value_node, (*path, key), source)

    def _block_indent(self, node: ScalarNode) -> int | None:
        """Indentation of a literal block's content, from the source lines."""
        lines = self.text[node.start_mark.index : node.end_mark.index].split("\n")[1:]
        for line in lines:
            if line.strip():
                return len(line) - len(line.lstrip(" "))
        return None

    def _pos(self, node: Node) -> Position:
        return Position(self.display, node.start_mark.line + 1, node.start_mark.column + 1)

    def _error(self, node: Node, message: str) -> None:
        pos = self._pos(node)
        self.diagnostics.append(Diagnostic(pos.file, pos.line, pos.col, message))


def _is_empty_document(node: Node) -> bool:
    return (
        isinstance(node, ScalarNode)
        and node.tag == _TAG + "null"
        and node.value == ""
        and not node.style
    )


def _decode(raw: bytes, display: str, diagnostics: list[Diagnostic]) -> str | None:
    """UTF-8 text, or a diagnostic at the first byte that shows it is not."""
    nul = raw.find(b"\x00")
    try:
        text = raw.decode("utf-8-sig")
        bad = -1
    except UnicodeDecodeError as exc:
        text, bad = "", exc.start
    if nul >= 0 and (bad < 0 or nul < bad):
        line, col = _byte_line_col(raw, nul)
        diagnostics.append(
            _diag(display, line, col, "not a UTF-8 text file: it contains NUL bytes (binary data?)")
        )
        return None
    if bad >= 0:
        line, col = _byte_line_col(raw, bad)
        diagnostics.append(
            _diag(
                display,
                line,
                col,
                f"not a UTF-8 text file: byte 0x{raw[bad]:02x} cannot be decoded "
                "(binary data, or another encoding?)",
            )
        )
        return None
    return text


_SYNTAX_HINTS: tuple[tuple[str, str], ...] = (
    (
        "found character '\\t' that cannot start any token",
        "tab character: YAML indentation must use spaces, not tabs",
    ),
    (
        "mapping values are not allowed here",
        "unexpected ':' (quote a value that contains ': ', or check the indentation)",
    ),
    (
        "could not find expected ':'",
        "expected 'key: value' here (a missing ':', or an unclosed quote above?)",
    ),
    (
        "found unexpected end of stream",
        "the file ends inside a value (an unclosed quote?)",
    ),
    (
        "but found '?'",
        "a 'key: value' entry does not fit the structure above (check the indentation)",
    ),
    (
        "but found '-'",
        "a list item does not fit the structure above (check the indentation)",
    ),
)


def _syntax_diagnostic(exc: yaml.MarkedYAMLError, display: str, text: str) -> Diagnostic:
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    problem = exc.problem or "invalid YAML"
    if "end of stream" in problem and "quoted scalar" in (exc.context or ""):
        start = exc.context_mark
        if start is not None:
            quote = text[start.index] if start.index < len(text) else '"'
            return _diag(
                display,
                start.line + 1,
                start.column + 1,
                f"invalid YAML: this quoted value is never closed (a missing {quote})",
            )
    flow = re.match(r"expected ',' or '([\]}])'", problem)
    if flow and exc.context_mark is not None:
        start = exc.context_mark
        opener = "[" if flow.group(1) == "]" else "{"
        return _diag(
            display,
            start.line + 1,
            start.column + 1,
            f"invalid YAML: this '{opener}' is not closed by a matching '{flow.group(1)}' "
            "(or a ',' is missing between items)",
        )
    if "<stream end>" in problem:
        return _diag(
            display,
            line,
            col,
            "invalid YAML: the file ends before the value above is complete "
            "(an unclosed bracket or quote?)",
        )
    if mark is not None and 0 <= mark.index < len(text) and text[mark.index] == "\t":
        return _diag(display, line, col, _SYNTAX_HINTS[0][1])
    for needle, hint in _SYNTAX_HINTS:
        if needle in problem:
            return _diag(display, line, col, f"invalid YAML: {hint}")
    if problem.startswith("found undefined alias"):
        return _diag(display, line, col, f"invalid YAML: {problem.removeprefix('found ')}")
    context = f" ({exc.context})" if exc.context else ""
    return _diag(display, line, col, f"invalid YAML: {problem}{context}")


def _diag(file: str, line: int, col: int, message: str) -> Diagnostic:
    return Diagnostic(file, line, col, message)


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _byte_line_col(raw: bytes, index: int) -> tuple[int, int]:
    line = raw.count(b"\n", 0, index) + 1
    return line, index - (raw.rfind(b"\n", 0, index) + 1) + 1


def _human_size(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MiB".replace(".0 MiB", " MiB")
    if size >= 1024:
        return f"{size / 1024:.1f} KiB".replace(".0 KiB", " KiB")
    return f"{size} bytes"


def iter_strings(data: Any, path: YamlPath = ()) -> Iterator[tuple[YamlPath, str]]:
    """Every string value in `data` with its path (keys are not visited)."""
    if isinstance(data, str):
        yield path, data
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from iter_strings(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from iter_strings(value, (*path, index))


_FAST_LOADER = _fast_loader()
