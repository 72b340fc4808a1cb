"""Every manifest document of a project, loaded once and resolved per environment."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from avatarsync.errors import Diagnostic
from avatarsync.manifests.loader import YamlDocument, load_file
from avatarsync.manifests.messages import Envelope, check_envelope
from avatarsync.resources import Kind

__all__ = ["ManifestSet", "ParsedDocument", "load_manifests"]


@dataclass(frozen=True)
class ParsedDocument:
    """A loaded document whose kind and name are known."""

    doc: YamlDocument
    envelope: Envelope

    @property
    def kind(self) -> Kind:
        return self.envelope.kind


@dataclass(frozen=True)
class ManifestSet:
    """Every manifest document of a project: loaded once, resolved per environment."""

    files: tuple[str, ...]
    documents: tuple[ParsedDocument, ...]
    diagnostics: tuple[Diagnostic, ...]  # load and envelope problems


def load_manifests(
    files: Iterable[tuple[Path, str]], diagnostics: Iterable[Diagnostic] = ()
) -> ManifestSet:
    """Load (absolute path, display name) pairs; check each document's kind.

    `diagnostics` are the problems found before loading (the globs'); they
    lead the set's own."""
    names: list[str] = []
    documents: list[ParsedDocument] = []
    diagnostics = list(diagnostics)
    for path, display in files:
        names.append(display)
        loaded = load_file(path, display)
        diagnostics += loaded.diagnostics
        for doc in loaded.documents:
            envelope, problems = check_envelope(doc)
            diagnostics += problems
            if envelope is not None:
                documents.append(ParsedDocument(doc, envelope))
    return ManifestSet(tuple(names), tuple(documents), tuple(diagnostics))
