"""Provider clients: the only code that knows platform URLs (and imports httpx).

The planner and apply talk to `EquosClient`; conversation tests to
`AvatariumClient`. Both stand on `http.RestClient` (retries, bounded
concurrency, typed errors) and take their API key as an
`avatarsync.secret.Secret`, never as a plain string. Names load on first use,
so a plan never imports the WebSocket library.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from avatarsync.providers.avatarium import AvatariumClient, AvatariumSocket
    from avatarsync.providers.equos import EquosClient
    from avatarsync.providers.http import RetryPolicy

__all__ = ["AvatariumClient", "AvatariumSocket", "EquosClient", "RetryPolicy"]

_HOMES = {
    "AvatariumClient": "avatarsync.providers.avatarium",
    "AvatariumSocket": "avatarsync.providers.avatarium",
    "EquosClient": "avatarsync.providers.equos",
    "RetryPolicy": "avatarsync.providers.http",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'avatarsync.providers' has no attribute {name!r}")
    return getattr(import_module(_HOMES[name]), name)
