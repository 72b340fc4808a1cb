"""The one exception root of avatarsync, and the hierarchy under it.

Lower exceptions (httpx, yaml, pydantic, OSError) are translated into these at
each module boundary (`raise ... from exc`); only the CLI turns them into a
message and an exit code. Messages must never contain secret values: the CLI
still scrubs every registered secret (see `avatarsync.secret`) as a last line
of defence.

    AvatarsyncError
    ├── ProjectError            avatarsync.yaml missing or invalid, an unknown environment
    │   ├── ProjectFileError    the project file's problems, as Diagnostics
    │   ├── ScaffoldError       `init` would overwrite files
    │   └── UnknownAddressError a KIND/NAME the manifests do not define
    ├── ManifestError           one or more Diagnostics (file:line:col)
    ├── StateError
    │   └── LockError           another apply holds the environment
    ├── PlanError
    │   ├── StalePlanError      live state moved since a saved plan
    │   ├── UnsafePlanError     destructive plan without the flag it needs
    │   └── PromotionError      the source environment is not what would be promoted
    ├── SessionError            conversation presets, sessions, tests
    ├── Interrupted             SIGINT/SIGTERM stopped a read (exit 130)
    └── ApiError                method, path, status, request id
        ├── AuthError           401/403
        ├── NotFoundError       404
        ├── BadRequestError     400/422, with the server's message
        ├── RateLimitedError    429 after retries
        ├── ServerError         5xx after retries
        ├── TransportError      no answer (connect/read failure) after retries
        └── AmbiguousWriteError a POST whose outcome is unknown
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = [
    "AmbiguousWriteError",
    "ApiError",
    "AuthError",
    "AvatarsyncError",
    "BadRequestError",
    "Diagnostic",
    "Interrupted",
    "LockError",
    "ManifestError",
    "NotFoundError",
    "PlanError",
    "ProjectError",
    "ProjectFileError",
    "PromotionError",
    "RateLimitedError",
    "ScaffoldError",
    "ServerError",
    "SessionError",
    "StalePlanError",
    "StateError",
    "TransportError",
    "UnknownAddressError",
    "UnsafePlanError",
]


class AvatarsyncError(Exception):
    """Root of every error avatarsync raises on purpose. Exit code 1."""

    exit_code = 1


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One problem in the user's input, pointing at its source (1-based line/col)."""

    file: str
    line: int
    col: int
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else "warning: "
        return f"{self.file}:{self.line}:{self.col}: {prefix}{self.message}"


class ProjectError(AvatarsyncError):
    """The project file is missing, unreadable or invalid."""


class ProjectFileError(ProjectError):
    """The project file is invalid; `diagnostics` says where (file:line:col)."""

    def __init__(self, diagnostics: list[Diagnostic], root: Path) -> None:
        self.diagnostics = sorted(diagnostics)
        self.root = root  # diagnostics name files relative to it
        lines = "\n".join(str(d) for d in self.diagnostics)
        super().__init__(f"invalid project file:\n{lines}")


class ScaffoldError(ProjectError):
    """`init` would overwrite files."""


class UnknownAddressError(ProjectError):
    """`render KIND/NAME` (or a session) named something the manifests do not define."""


class ManifestError(AvatarsyncError):
    """All the problems found in the manifests at once, each with its position."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics)
        errors = [d for d in self.diagnostics if d.severity == "error"]
        head = f"{len(errors)} error(s) in manifests"
        super().__init__("\n".join([head, *(str(d) for d in self.diagnostics)]))


class StateError(AvatarsyncError):
    """The state file is unreadable, corrupt or cannot be written."""


class LockError(StateError):
    """Another process holds the environment's state lock."""


class PlanError(AvatarsyncError):
    """A plan cannot be built or used."""


class StalePlanError(PlanError):
    """A saved plan was computed against live state that has since moved."""


class UnsafePlanError(PlanError):
    """A plan deletes or replaces more than allowed without an explicit flag."""


class Interrupted(AvatarsyncError):
    """Ctrl-C or SIGTERM stopped the command before it finished (nothing was written)."""

    exit_code = 130


class SessionError(AvatarsyncError):
    """A conversation session or conversation test could not run."""


class PromotionError(PlanError):
    """`promote` refuses: the source was not applied from these manifests, or has
    pending changes or drift (what is promoted must be what was tested)."""


class ApiError(AvatarsyncError):
    """A platform API call failed. Carries where, never the key."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        status: int | None = None,
        request_id: str | None = None,
        code: str | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.request_id = request_id
        self.code = code  # the platform's error code, where it gives one (Avatarium)
        self.detail = message
        where = f"{method} {path}"
        if status is not None:
            where += f" -> {status}"
        if request_id:
            where += f" (request {request_id})"
        super().__init__(f"{where}: {message}")


class AuthError(ApiError):
    """401/403: the key is missing, wrong or not allowed."""


class NotFoundError(ApiError):
    """404: no such resource."""


class BadRequestError(ApiError):
    """400/422: the server rejected the body; `detail` has its message."""


class RateLimitedError(ApiError):
    """429 that persisted through every retry."""


class ServerError(ApiError):
    """5xx that persisted through every retry."""


class TransportError(ApiError):
    """No HTTP answer (connection refused, reset, timeout) after every retry."""


class AmbiguousWriteError(ApiError):
    """A POST was sent but its outcome is unknown (dropped connection, timeout,
    500/502/504). It may have been committed, so it is never re-sent blindly:
    the apply layer looks the resource up before trying again."""
