"""A tiny app backend: one Equos conversation per request, from an exported presets file.

No avatarsync project on this server: only the file that
`avatarsync presets export --env prod --out presets.json` wrote (character
ids, fixed values, the templates of the caller's inputs), the API key, and
`pip install avatarsync starlette uvicorn`.

    AVATARSYNC_PRESETS=presets.json EQUOS_API_KEY=... uvicorn --factory app:app_from_env

    POST /sessions            {"preset": "support-default", "inputs": {"customer_name": "Ann"},
                               "user": "web-42"}
                              -> 201 {"conversationId", "room", "serverUrl", "consumerToken",
                                      "presetsHash"}
    POST /sessions/{id}/stop  -> 200 {"conversationId", "status"}

A bad preset name or input is a 400 naming it, before any request to Equos.
The presets file is re-read when it changes on disk (its contentHash says
whether anything a session uses changed).
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette  # noqa: TID251  (an app, not avatarsync)
from starlette.requests import Request  # noqa: TID251
from starlette.responses import JSONResponse  # noqa: TID251
from starlette.routing import Route  # noqa: TID251

from avatarsync import (
    ExportedPresets,
    Participant,
    SessionClient,
    SessionError,
    SessionOptions,
    load_presets_file,
)


class PresetsFile:
    """The exported presets, reloaded when the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime = 0.0
        self._presets: ExportedPresets | None = None

    def current(self) -> ExportedPresets:
        mtime = self.path.stat().st_mtime
        if self._presets is None or mtime != self._mtime:
            self._presets, self._mtime = load_presets_file(self.path), mtime
        return self._presets


def create_app(presets_path: Path, api_url: str | None, api_key: str) -> Starlette:
    presets = PresetsFile(presets_path)
    sessions = SessionClient(api_url, api_key)

    async def start(request: Request) -> JSONResponse:
        body = await request.json()
        if not isinstance(body, dict) or not isinstance(body.get("preset"), str):
            return JSONResponse({"error": 'expected {"preset": NAME, "inputs": {...}}'}, 400)
        current = presets.current()
        user = str(body.get("user") or "web")
        try:
            spec = current.spec(
                body["preset"],
                body.get("inputs") or {},
                SessionOptions(consumer=Participant(user, user)),
            )
        except SessionError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        started = await sessions.start_async(spec)
        token = started.consumer_token
        return JSONResponse(
            {
                "conversationId": started.conversation.id,
                "room": started.conversation.room,
                "serverUrl": started.conversation.server_url,
                "consumerToken": token.reveal() if token else None,
                "presetsHash": current.content_hash,
            },
            201,
        )

    async def stop(request: Request) -> JSONResponse:
        conversation = await sessions.stop_async(request.path_params["conversation_id"])
        return JSONResponse({"conversationId": conversation.id, "status": conversation.status})

    return Starlette(
        routes=[
            Route("/sessions", start, methods=["POST"]),
            Route("/sessions/{conversation_id}/stop", stop, methods=["POST"]),
        ]
    )


def app_from_env() -> Starlette:
    return create_app(
        Path(os.environ.get("AVATARSYNC_PRESETS", "presets.json")),
        os.environ.get("EQUOS_API_URL"),
        os.environ["EQUOS_API_KEY"],
    )
