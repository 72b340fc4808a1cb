"""Sessions for an app backend: an API endpoint and key, no project.

An app that starts a conversation per request loads the exported presets
file once (`load_presets_file`), turns a preset and the request's values
into a `SessionSpec` (`presets.spec(key, values)`), and starts it here. The
async methods are for servers that already run an event loop (Starlette,
FastAPI); the plain ones run their own.

    presets = avatarsync.load_presets_file(Path("presets.json"))
    sessions = avatarsync.SessionClient(url, os.environ["EQUOS_API_KEY"])
    started = sessions.start(presets.spec("support", {"customer_name": "Ann"}))
    sessions.stop(started.conversation.id)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from avatarsync.catalog import EQUOS_DEFAULT_URL
from avatarsync.conversations.sessions import (
    Conversation,
    SessionSpec,
    StartedSession,
    get_conversation,
    list_conversations,
    start_conversation_or_undo,
    stop_conversation,
)
from avatarsync.providers.equos import EquosClient
from avatarsync.secret import Secret

__all__ = ["SessionClient"]

T = TypeVar("T")


class SessionClient:
    """Start, stop and read Equos conversations with one API key.

    Each call opens its own connection: a backend can share one instance
    between requests and threads.
    """

    def __init__(self, url: str | None = None, api_key: str | Secret = "") -> None:
        self.url = url or EQUOS_DEFAULT_URL
        self._key = api_key if isinstance(api_key, Secret) else Secret(api_key)

    def __repr__(self) -> str:
        return f"SessionClient({self.url!r}, api_key=***)"

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[EquosClient]:
        async with EquosClient(self.url, self._key) as client:
            yield client

    async def start_async(self, spec: SessionSpec) -> StartedSession:
        async with self._client() as client:
            return await start_conversation_or_undo(client, spec)

    async def stop_async(self, conversation_id: str) -> Conversation:
        async with self._client() as client:
            return await stop_conversation(client, conversation_id)

    async def get_async(self, conversation_id: str) -> Conversation:
        async with self._client() as client:
            return await get_conversation(client, conversation_id)

    async def conversations_async(
        self, client_tag: str, status: str | None = None
    ) -> list[Conversation]:
        async with self._client() as client:
            return await list_conversations(client, client_tag, status)

    def start(self, spec: SessionSpec) -> StartedSession:
        """Start a conversation (it runs, and bills, until stopped)."""
        return _run(self.start_async(spec))

    def stop(self, conversation_id: str) -> Conversation:
        """Stop a conversation; one already ended is read back, not an error."""
        return _run(self.stop_async(conversation_id))

    def get(self, conversation_id: str) -> Conversation:
        return _run(self.get_async(conversation_id))

    def conversations(self, client_tag: str, status: str | None = None) -> list[Conversation]:
        """The conversations carrying `client_tag` (an environment's client)."""
        return _run(self.conversations_async(client_tag, status))


def _run(work: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(work)
