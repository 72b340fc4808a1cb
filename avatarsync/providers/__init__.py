"""Provider clients: the only code that knows platform URLs (and imports httpx).

The planner and apply talk to `EquosClient`; conversation tests to
`AvatariumClient`. Both stand on `http.RestClient` (retries, bounded
concurrency, typed errors) and take their API key as an
`avatarsync.secret.Secret`, never as a plain string.
"""

from __future__ import annotations

from avatarsync.providers.avatarium import AvatariumClient, AvatariumSocket
from avatarsync.providers.equos import EquosClient
from avatarsync.providers.http import RetryPolicy

__all__ = ["AvatariumClient", "AvatariumSocket", "EquosClient", "RetryPolicy"]
