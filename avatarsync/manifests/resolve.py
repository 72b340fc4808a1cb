"""Resolution for one environment: substitutions, references, the desired state.

Fourth stage of the manifest flow (loader → manifest → templating → refs):
for one environment, every `${...}` in every spec string is substituted, each
document is validated against its kind, keys are checked (unique per kind),
references are resolved by key (dangling and wrong-kind references are
errors), inline faces/voices/brains become resources of their own keyed
`<character>.<field>`, and knowledge-base documents are read and hashed.
The result is the typed `DesiredState` the plan side consumes.

Every problem is collected, never raised one by one: the caller gets all of
them at once, each pointing at its source.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from avatarsync.errors import Diagnostic
from avatarsync.manifests.agents import agent_profile, byok_key_reads, conversation_test
from avatarsync.manifests.loader import YamlDocument, YamlPath, iter_strings
from avatarsync.manifests.manifest_set import ManifestSet, ParsedDocument
from avatarsync.manifests.messages import Suggestions, validate_model, yaml11_diagnostics
from avatarsync.manifests.models import DOCUMENT_MODELS
from avatarsync.manifests.project import Environment, Project
from avatarsync.manifests.templating import SubstitutionContext, substitute
from avatarsync.resources import (
    KEY_PATTERN,
    REFERENCE_FIELDS,
    Address,
    AgentProfile,
    ConversationTest,
    DesiredResource,
    DesiredState,
    DocumentSpec,
    Kind,
    Position,
    Preset,
    PresetInput,
)

__all__ = [
    "MIME_TYPES",
    "FileDigest",
    "Resolution",
    "guess_mime_type",
    "resolve_environment",
]

# Deterministic on every machine (the system's mime.types varies), checked first.
MIME_TYPES: Mapping[str, str] = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".html": "text/html",
    ".htm": "text/html",
    ".json": "application/json",
    ".pdf": "application/pdf",
    ".doc": "application/msword",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    size: int


@dataclass(frozen=True)
class Resolution:
    """One environment, resolved: the desired state plus what checks and
    renders need to point back at the source."""

    environment: Environment
    state: DesiredState
    # Key → document of each preset, and address → (document, path) of each
    # brain: lint reports template problems at their exact lines.
    preset_documents: Mapping[str, YamlDocument]
    brain_sources: Mapping[Address, tuple[YamlDocument, YamlPath]]
    # What each character key is linked to, for lint messages ("the inline
    # Brain of Character 'tommy'").
    labels: Mapping[Address, str] = field(default_factory=dict)
    # False when some documents had errors and are missing from `state`: the
    # checks that need everything (unused resources) skip such a resolution.
    complete: bool = True


def guess_mime_type(name: str) -> str | None:
    suffix = Path(name).suffix.lower()
    if suffix in MIME_TYPES:
        return MIME_TYPES[suffix]
    guessed, _ = _PYTHON_MIME_TYPES.guess_type(name, strict=False)
    return guessed


# Python's built-in table only: the system's mime.types differs between machines.
_PYTHON_MIME_TYPES = mimetypes.MimeTypes(filenames=())


def resolve_environment(
    project: Project,
    env: Environment,
    manifests: ManifestSet,
    *,
    offline: bool = False,
    digests: dict[Path, FileDigest] | None = None,
    partial: bool = False,
) -> tuple[Resolution | None, list[Diagnostic]]:
    """Resolve every manifest for `env`, with every problem found.

    `offline` (validate) makes an unset `${env.X}` a warning rather than an
    error; `digests` caches file hashes across environments; `partial` says
    some files could not be read, so references to missing keys are not
    reported (the read errors explain them) and no resolution is returned.
    With other errors the resolution holds what did validate
    (`complete=False`), so the cross-resource checks still run on it.
    """
    resolver = _Resolver(project, env, manifests, offline, digests if digests is not None else {})
    resolver.partial = partial
    resolution, diagnostics = resolver.run()
    return (None if partial else resolution), diagnostics


class _Resolver:
    def __init__(
        self,
        project: Project,
        env: Environment,
        manifests: ManifestSet,
        offline: bool,
        digests: dict[Path, FileDigest],
    ) -> None:
        self.project = project
        self.env = env
        self.manifests = manifests
        self.digests = digests
        self.diagnostics: list[Diagnostic] = []
        self.ctx = SubstitutionContext(
            environment=env.name,
            vars=env.vars,
            lookup_env=lambda name: project.lookup_env(name, env),
            allows_env=project.env_policy.allows,
            is_secret=project.env_policy.is_secret,
            is_credential=project.env_policy.is_credential,
            unset_env_is_error=not offline,
        )
        self.tables: dict[Kind, dict[str, ParsedDocument]] = {kind: {} for kind in Kind}
        self.resources: dict[Address, DesiredResource] = {}
        self.presets: dict[str, Preset] = {}
        self.profiles: dict[str, AgentProfile] = {}
        self.tests: dict[str, ConversationTest] = {}
        self.preset_documents: dict[str, YamlDocument] = {}
        self.brain_sources: dict[Address, tuple[YamlDocument, YamlPath]] = {}
        self.labels: dict[Address, str] = {}
        self.partial = False
        self._suggestion_index: dict[Kind, Suggestions] = {}

    def run(self) -> tuple[Resolution | None, list[Diagnostic]]:
        documents = sorted(
            self.manifests.documents, key=lambda pd: (pd.doc.file, pd.doc.position.line)
        )
        first: set[int] = set()
        for pd in documents:
            if self._register_key(pd):
                first.add(id(pd))
        typed: list[tuple[ParsedDocument, Any, _Substituted]] = []
        for pd in documents:
            model, subst = self._validate(pd)
            if model is not None and id(pd) in first:
                typed.append((pd, model, subst))
            elif model is None:
                # Invalid, but its references can still be checked: one run
                # should report every independent problem.
                self._raw_references(pd)
        for pd, model, subst in typed:
            self._build(pd, model, subst)
        for at, message in byok_key_reads((pd.doc for pd in documents), self.profiles):
            self._error(at, message)
        state = DesiredState(
            environment=self.env.name,
            client=self.env.client,
            resources={address: self.resources[address] for address in sorted(self.resources)},
            presets={key: self.presets[key] for key in sorted(self.presets)},
            profiles={key: self.profiles[key] for key in sorted(self.profiles)},
            tests={key: self.tests[key] for key in sorted(self.tests)},
        )
        resolution = Resolution(
            self.env,
            state,
            self.preset_documents,
            self.brain_sources,
            self.labels,
            complete=not any(d.severity == "error" for d in self.diagnostics),
        )
        return resolution, self.diagnostics

    # --- keys -----------------------------------------------------------------------

    def _register_key(self, pd: ParsedDocument) -> bool:
        name = pd.envelope.name
        if name is None or not KEY_PATTERN.match(name):
            return False  # the model reports a missing or invalid name
        table = self.tables[pd.kind]
        if name in table:
            earlier = table[name].doc
            at = pd.doc.source.value(("name",))
            where = earlier.source.value(("name",))
            self._error(
                at,
                f"{pd.envelope.what} is defined twice; the first is at "
                f"{where.file}:{where.line}:{where.col} (names are unique per kind)",
            )
            return False
        table[name] = pd
        return True

    # --- substitution and validation ------------------------------------------------

    def _validate(self, pd: ParsedDocument) -> tuple[Any, _Substituted]:
        doc = pd.doc
        data = doc.data
        subst = _Substituted()
        spec = data.get("spec") if isinstance(data, dict) else None
        if isinstance(spec, dict | list):
            copied = False  # the loaded data is shared: copy only a document that changes
            for path, text in list(iter_strings(spec, ("spec",))):
                if "$" not in text:
                    continue  # nearly every string: nothing to substitute
                result = substitute(text, self.ctx)
                for problem in result.problems:
                    at = doc.source.locate(path, text, problem.offset)
                    self._add(at, problem.message, problem.severity)
                if any(p.severity == "error" for p in result.problems):
                    subst.failed.add(path)
                    continue
                if result.substituted:
                    subst.substituted.add(path)
                    if not copied:
                        data, copied = copy.deepcopy(data), True
                    _set(data, path, result.value)
                if result.secret:
                    subst.secret.add(path)
        model, problems = validate_model(
            DOCUMENT_MODELS[pd.kind],
            data,
            doc.source,
            what=pd.envelope.what,
            skip=subst.failed.__contains__,
            suffix=lambda path: (
                f" (environment '{self.env.name}')" if path in subst.substituted else ""
            ),
        )
        self.diagnostics += problems
        self.diagnostics += yaml11_diagnostics(doc.source, doc.data, problems)
        return model, subst

    # --- building ---------------------------------------------------------------------

    def _build(self, pd: ParsedDocument, model: Any, subst: _Substituted) -> None:
        key = model.name
        spec = model.spec
        doc = pd.doc
        match pd.kind:
            case Kind.FACE | Kind.VOICE | Kind.BRAIN:
                self._add_resource(pd.kind, key, spec, doc, ("spec",), subst)
            case Kind.KNOWLEDGE_BASE:
                documents = self._documents(pd, spec, subst)
                self._add_resource(pd.kind, key, spec, doc, ("spec",), subst, documents)
                if spec.documents is None:  # left out: documents are not managed
                    address = Address(pd.kind.value, key)
                    self.resources[address] = replace(
                        self.resources[address], documents_managed=False
                    )
            case Kind.CHARACTER:
                self._character(pd, key, spec, subst)
            case Kind.CONVERSATION_PRESET:
                self._preset(pd, key, spec)
            case Kind.AGENT_PROFILE:
                self.profiles[key] = agent_profile(pd.doc, key, spec, subst.secret)
            case Kind.CONVERSATION_TEST:
                self._conversation_test(pd, key, spec)

    def _add_resource(
        self,
        kind: Kind,
        key: str,
        spec: Any,
        doc: YamlDocument,
        base: YamlPath,
        subst: _Substituted,
        documents: tuple[DocumentSpec, ...] = (),
        *,
        canonical: dict[str, Any] | None = None,
        refs: Mapping[str, Address] | None = None,
        owner: Address | None = None,
    ) -> Address:
        address = Address(kind.value, key)
        values = canonical if canonical is not None else spec.model_dump(by_alias=True)
        values.pop("documents", None)
        positions = {
            name: doc.source.values[(*base, name)]
            for name in values
            if (*base, name) in doc.source.values
        }
        # Only the resource's own fields: deeper paths of a character belong
        # to its inline face/voice/brain, which carry their own marks.
        sensitive = frozenset(
            str(path[-1])
            for path in subst.secret
            if path[: len(base)] == base and len(path) == len(base) + 1
        )
        self.resources[address] = DesiredResource(
            address=address,
            spec=values,
            position=doc.position if base == ("spec",) else doc.source.value(base),
            field_positions=positions,
            refs=dict(refs or {}),
            documents=documents,
            inline_owner=owner,
            sensitive_fields=sensitive & set(values),
        )
        if kind is Kind.BRAIN:
            self.brain_sources[address] = (doc, base)
        self.labels.setdefault(address, f"{kind.value} '{key}'")
        return address

    def _character(self, pd: ParsedDocument, key: str, spec: Any, subst: _Substituted) -> None:
        doc = pd.doc
        owner = Address(Kind.CHARACTER.value, key)
        values = spec.model_dump(by_alias=True)
        refs: dict[str, Address] = {}
        self.labels[owner] = pd.envelope.what
        for field_name, kind in REFERENCE_FIELDS.items():
            value = getattr(spec, _python_name(field_name))
            if value is None:
                continue
            path = ("spec", field_name)
            if isinstance(value, str):
                target = self._reference(pd, path, kind, value)
                if target is not None:
                    refs[field_name] = target
                continue
            inline_key = f"{key}.{field_name}"
            address = self._add_resource(kind, inline_key, value, doc, path, subst, owner=owner)
            self.labels[address] = f"the inline {kind.value} of {pd.envelope.what}"
            refs[field_name] = address
        for field_name, target in refs.items():
            values[field_name] = target.key
        self._add_resource(
            Kind.CHARACTER, key, spec, doc, ("spec",), subst, canonical=values, refs=refs
        )

    def _preset(self, pd: ParsedDocument, key: str, spec: Any) -> None:
        doc = pd.doc
        self._reference(pd, ("spec", "character"), Kind.CHARACTER, spec.character)
        positions: dict[str, Position] = {}
        for name in ("character", "maxSeconds", "promptCtx", "promptTemplateVars"):
            if ("spec", name) in doc.source.values:
                positions[name] = doc.source.values[("spec", name)]
        for name in spec.prompt_template_vars:
            path = ("spec", "promptTemplateVars", name)
            if path in doc.source.values:
                positions[f"promptTemplateVars.{name}"] = doc.source.values[path]
        inputs = None
        if spec.inputs is not None:
            positions["inputs"] = doc.source.key(("spec", "inputs"))
            inputs = {}
            for name, declared in spec.inputs.items():
                positions[f"inputs.{name}"] = doc.source.key(("spec", "inputs", name))
                inputs[name] = PresetInput(
                    name, declared.required, declared.default, declared.description
                )
        self.presets[key] = Preset(
            key=key,
            character=spec.character,
            max_seconds=spec.max_seconds,
            prompt_ctx=spec.prompt_ctx,
            prompt_template_vars=dict(spec.prompt_template_vars),
            position=doc.position,
            field_positions=positions,
            inputs=inputs,
        )
        self.preset_documents[key] = doc

    def _conversation_test(self, pd: ParsedDocument, key: str, spec: Any) -> None:
        test, problems = conversation_test(pd.doc, key, spec, pd.envelope.what)
        for at, message in problems:
            self._error(at, message)
        if test.profile is not None:
            self._reference(pd, ("spec", "profile"), Kind.AGENT_PROFILE, test.profile)
        if test.preset is not None:
            self._reference(pd, ("spec", "preset"), Kind.CONVERSATION_PRESET, test.preset)
        if not problems:
            self.tests[key] = test

    def _raw_references(self, pd: ParsedDocument) -> None:
        data = pd.doc.data
        spec = data.get("spec") if isinstance(data, dict) else None
        if not isinstance(spec, dict):
            return
        fields: dict[str, Kind] = {}
        if pd.kind is Kind.CHARACTER:
            fields = dict(REFERENCE_FIELDS)
        elif pd.kind is Kind.CONVERSATION_PRESET:
            fields = {"character": Kind.CHARACTER}
        elif pd.kind is Kind.CONVERSATION_TEST:
            fields = {"profile": Kind.AGENT_PROFILE, "preset": Kind.CONVERSATION_PRESET}
        for name, kind in fields.items():
            value = spec.get(name)
            if isinstance(value, str) and "${" not in value and KEY_PATTERN.match(value):
                self._reference(pd, ("spec", name), kind, value)

    def _reference(
        self, pd: ParsedDocument, path: YamlPath, kind: Kind, key: str
    ) -> Address | None:
        if key in self.tables[kind]:
            return Address(kind.value, key)
        if self.partial:
            return None
        at = pd.doc.source.value(path)
        other = [k.value for k in Kind if k is not kind and key in self.tables[k]]
        hint = f" ('{key}' is a {other[0]})" if other else self._suggestions(kind).hint(key)
        self._error(
            at,
            f"{pd.envelope.what} references {kind.value} '{key}', which does not exist{hint}",
        )
        return None

    def _suggestions(self, kind: Kind) -> Suggestions:
        """The keys of `kind`, indexed once for did-you-mean hints."""
        if kind not in self._suggestion_index:
            self._suggestion_index[kind] = Suggestions(self.tables[kind])
        return self._suggestion_index[kind]

    def _documents(
        self, pd: ParsedDocument, spec: Any, subst: _Substituted
    ) -> tuple[DocumentSpec, ...]:
        doc = pd.doc
        root = self.project.root.resolve()
        result: list[DocumentSpec] = []
        seen: dict[str, int] = {}
        for index, entry in enumerate(spec.documents or ()):
            base = ("spec", "documents", index)
            at_path = doc.source.value((*base, "path"))
            try:
                target = (doc.path.parent / entry.path).resolve()
            except (OSError, RuntimeError):  # a symlink loop
                self._error(at_path, f"document path '{entry.path}' is a symlink loop")
                continue
            if not target.is_relative_to(root):
                self._error(
                    at_path,
                    f"document path '{entry.path}' is outside the project folder "
                    "(documents must be files in the repository)",
                )
                continue
            shown = target.relative_to(root).as_posix()
            if not target.is_file():
                missing = "is a folder, not a file" if target.is_dir() else "does not exist"
                self._error(
                    at_path,
                    f"document file '{entry.path}' {missing} "
                    f"(looked for {shown}; paths are relative to {doc.file})",
                )
                continue
            if (*base, "name") in subst.secret:
                # The name is the document's identity: kept in state, shown in plans.
                self._error(
                    doc.source.value((*base, "name")),
                    f"documents[{index}].name cannot come from a secret variable: a "
                    "document's name is its identity, kept in state and shown in plans",
                )
                continue
            name = entry.name or target.name
            if name in seen:
                self._error(
                    doc.source.value(base),
                    f"{pd.envelope.what} has two documents named '{name}' "
                    f"(documents[{seen[name]}] and documents[{index}])",
                )
                continue
            seen[name] = index
            mime = entry.mime_type or guess_mime_type(target.name)
            if mime is None:
                self._error(
                    at_path,
                    f"cannot guess the mime type of '{target.name}'; set mimeType",
                )
                continue
            try:
                digest = self._digest(target)
            except OSError as exc:
                self._error(at_path, f"cannot read document '{shown}': {exc.strerror}")
                continue
            result.append(
                DocumentSpec(
                    name=name,
                    description=entry.description,
                    mime_type=mime,
                    path=target,
                    sha256=digest.sha256,
                    size=digest.size,
                    position=doc.source.value(base),
                    sensitive_description=(*base, "description") in subst.secret,
                )
            )
        return tuple(sorted(result, key=lambda d: d.name))

    def _digest(self, path: Path) -> FileDigest:
        if path not in self.digests:
            sha = hashlib.sha256()
            size = 0
            with path.open("rb") as handle:
                while chunk := handle.read(1 << 16):
                    sha.update(chunk)
                    size += len(chunk)
            self.digests[path] = FileDigest(sha.hexdigest(), size)
        return self.digests[path]

    def _error(self, at: Position, message: str) -> None:
        self._add(at, message, "error")

    def _add(self, at: Position, message: str, severity: Literal["error", "warning"]) -> None:
        self.diagnostics.append(Diagnostic(at.file, at.line, at.col, message, severity))


@dataclass
class _Substituted:
    """Paths of one document whose strings held `${...}`."""

    substituted: set[YamlPath] = field(default_factory=set)
    failed: set[YamlPath] = field(default_factory=set)
    secret: set[YamlPath] = field(default_factory=set)


@functools.cache
def _python_name(alias: str) -> str:
    return "".join("_" + ch.lower() if ch.isupper() else ch for ch in alias)


def _set(data: Any, path: YamlPath, value: Any) -> None:
    for part in path[:-1]:
        data = data[part]
    data[path[-1]] = value
