"""`/_emulator/*`: the emulator's own control panel, for tests and benchmarks.

No key, never counted, never faulted (the middleware lets these through
untouched), so a test can always read counters or switch faults for one
phase, even while the emulated APIs are failing on purpose.

    GET  /_emulator/stats         counters, see `Stats.snapshot`
    POST /_emulator/stats/reset   zero counters and the in-flight peak
    GET  /_emulator/faults        current switches (camelCase)
    POST /_emulator/faults        change any switch (see faults.py and the docs)
    POST /_emulator/equos/documents/{doc_id}
                                  {"status": "<any string>"}: set a document's
                                  status, e.g. "FAILED" or "Indexed"
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from avatarsync.emulator.envelopes import dumps
from avatarsync.emulator.faults import FaultSettings
from avatarsync.emulator.jsonbody import parse_json

if TYPE_CHECKING:
    from avatarsync.emulator.app import Runtime

__all__ = ["admin_routes"]


def _json(payload: object, status: int = 200) -> Response:
    return Response(dumps(payload), status, media_type="application/json")


def admin_routes(runtime: Runtime) -> list[BaseRoute]:
    async def stats(request: Request) -> Response:
        return _json(runtime.stats_snapshot())

    async def reset_stats(request: Request) -> Response:
        runtime.stats.reset()
        return _json(runtime.stats_snapshot())

    async def get_faults(request: Request) -> Response:
        return _json(runtime.faults.settings.to_wire())

    async def set_faults(request: Request) -> Response:
        try:
            payload = parse_json(await request.body() or b"{}")
            if not isinstance(payload, dict):
                raise ValueError("body must be a JSON object")
            settings = runtime.faults.update(**FaultSettings.names_from_wire(payload))
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        return _json(settings.to_wire())

    async def set_document(request: Request) -> Response:
        try:
            payload = parse_json(await request.body() or b"{}")
            status = _document_status(payload)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        doc = runtime.equos.set_document_status(request.path_params["doc_id"], status)
        if doc is None:
            return _json({"error": f"no document {request.path_params['doc_id']}"}, 404)
        return _json(doc)

    return [
        Route("/_emulator/equos/documents/{doc_id}", set_document, methods=["POST"]),
        Route("/_emulator/stats", stats, methods=["GET"]),
        Route("/_emulator/stats/reset", reset_stats, methods=["POST"]),
        Route("/_emulator/faults", get_faults, methods=["GET"]),
        Route("/_emulator/faults", set_faults, methods=["POST"]),
    ]


MAX_STATUS_CHARS = 200


def _document_status(payload: object) -> str:
    if not isinstance(payload, dict) or set(payload) != {"status"}:
        raise ValueError('body must be {"status": "<any string>"}')
    status = payload["status"]
    if not isinstance(status, str) or len(status) > MAX_STATUS_CHARS:
        raise ValueError(f"status must be a string of at most {MAX_STATUS_CHARS} characters")
    return status
