"""avatarsync: Terraform for AI avatar characters.

The public Python API is `avatarsync.api` (the facade the CLI uses), re-exported
here with the types it takes and returns. Names load on first use, so
`import avatarsync` (and `avatarsync --version`) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from avatarsync._version import __version__

if TYPE_CHECKING:
    from avatarsync.api import (
        ChatSummary,
        Conversation,
        EnvironmentDiff,
        ExportedPresets,
        FieldDifference,
        ImportReport,
        PlanOptions,
        PlanRun,
        SessionOptions,
        SessionSpec,
        SmokeReport,
        StartedSession,
        SuiteResult,
        TestResult,
        Workspace,
        chat,
        check_promotion,
        check_schemas,
        diff_environments,
        export_presets,
        init_project,
        load_plan_file,
        load_presets_file,
        load_project,
        load_values,
        parse_assignments,
        render,
        render_preset,
        resolve,
        run_conversation_tests,
        save_plan_file,
        schema_files,
        validate,
        write_schemas,
    )
    from avatarsync.conversations.client import SessionClient
    from avatarsync.conversations.sessions import HostRoom, Participant
    from avatarsync.errors import (
        ApiError,
        AvatarsyncError,
        Diagnostic,
        LockError,
        ManifestError,
        PlanError,
        ProjectError,
        PromotionError,
        SessionError,
        StalePlanError,
        StateError,
        UnsafePlanError,
    )
    from avatarsync.manifests.project import Environment, Project
    from avatarsync.planning.plan import Action, Change, FieldChange, Plan
    from avatarsync.planning.report import ApplyReport, Outcome
    from avatarsync.resources import Address, DesiredState, Kind
    from avatarsync.secret import Secret

__all__ = [
    "Action",
    "Address",
    "ApiError",
    "ApplyReport",
    "AvatarsyncError",
    "Change",
    "ChatSummary",
    "Conversation",
    "DesiredState",
    "Diagnostic",
    "Environment",
    "EnvironmentDiff",
    "ExportedPresets",
    "FieldChange",
    "FieldDifference",
    "HostRoom",
    "ImportReport",
    "Kind",
    "LockError",
    "ManifestError",
    "Outcome",
    "Participant",
    "Plan",
    "PlanError",
    "PlanOptions",
    "PlanRun",
    "Project",
    "ProjectError",
    "PromotionError",
    "Secret",
    "SessionClient",
    "SessionError",
    "SessionOptions",
    "SessionSpec",
    "SmokeReport",
    "StalePlanError",
    "StartedSession",
    "StateError",
    "SuiteResult",
    "TestResult",
    "UnsafePlanError",
    "Workspace",
    "__version__",
    "chat",
    "check_promotion",
    "check_schemas",
    "diff_environments",
    "export_presets",
    "init_project",
    "load_plan_file",
    "load_presets_file",
    "load_project",
    "load_values",
    "parse_assignments",
    "render",
    "render_preset",
    "resolve",
    "run_conversation_tests",
    "save_plan_file",
    "schema_files",
    "validate",
    "write_schemas",
]

# Where each public name lives; `__getattr__` imports it on first use.
_HOMES = {
    "avatarsync.api": (
        "Conversation EnvironmentDiff ExportedPresets FieldDifference ImportReport PlanOptions "
        "PlanRun SessionOptions SessionSpec SmokeReport StartedSession Workspace "
        "check_promotion check_schemas diff_environments export_presets init_project "
        "load_plan_file load_presets_file load_project load_values parse_assignments render render_preset resolve "
        "save_plan_file schema_files validate write_schemas "
        "chat run_conversation_tests"
    ),
    "avatarsync.avatarium.chat": "ChatSummary",
    "avatarsync.avatarium.results": "SuiteResult TestResult",
    "avatarsync.errors": (
        "ApiError AvatarsyncError Diagnostic LockError ManifestError PlanError ProjectError "
        "PromotionError SessionError StalePlanError StateError UnsafePlanError"
    ),
    "avatarsync.conversations.client": "SessionClient",
    "avatarsync.conversations.sessions": "HostRoom Participant",
    "avatarsync.manifests.project": "Environment Project",
    "avatarsync.planning.plan": "Action Change FieldChange Plan",
    "avatarsync.planning.report": "ApplyReport Outcome",
    "avatarsync.resources": "Address DesiredState Kind",
    "avatarsync.secret": "Secret",
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names.split()}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'avatarsync' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
