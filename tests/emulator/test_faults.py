"""Fault switches, admin endpoints and counters, against a real server with real httpx
clients: latency, seeded 5xx, the token-bucket 429, connections dropped after commit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from avatarsync.emulator import EmulatorServer
from avatarsync.emulator.faults import FaultSettings

BRAIN = {"instructions": "i", "greetingMessage": "g"}


def statuses(http: httpx.Client, n: int, path: str = "/v3/health") -> list[int]:
    return [http.get(path).status_code for _ in range(n)]


# ---------------------------------------------------------------- latency


def test_latency_is_applied_to_api_calls_only(
    emulator: EmulatorServer, equos_http: httpx.Client
) -> None:
    # Bounds with a second of slack: a loaded CI runner must not make them flake.
    emulator.set_faults(latency_ms=1500)
    began = time.perf_counter()
    assert equos_http.get("/v3/brains").status_code == 200
    assert time.perf_counter() - began >= 1.5
    began = time.perf_counter()
    assert equos_http.get("/_emulator/stats").status_code == 200
    assert time.perf_counter() - began < 0.5
    emulator.set_faults(latency_ms=0)
    began = time.perf_counter()
    equos_http.get("/v3/brains")
    assert time.perf_counter() - began < 0.5


def test_latency_keeps_requests_concurrent_and_peak_in_flight_counts_them(
    emulator: EmulatorServer, api_key: str
) -> None:
    emulator.set_faults(latency_ms=200)

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=emulator.url, headers={"x-api-key": api_key}) as http:
            responses = await asyncio.gather(*(http.get("/v3/faces") for _ in range(8)))
            return [r.status_code for r in responses]

    began = time.perf_counter()
    assert asyncio.run(burst()) == [200] * 8
    elapsed = time.perf_counter() - began
    assert elapsed < 8 * 0.2, f"requests were serialised ({elapsed:.2f}s)"  # serial: >= 1.6 s
    stats = emulator.stats()
    assert stats["peakInFlight"] >= 4
    assert stats["inFlight"] == 0
    emulator.reset_stats()
    assert emulator.stats()["peakInFlight"] == 0


# ---------------------------------------------------------------- error rate


def test_error_rate_is_seeded_and_reproducible(
    emulator: EmulatorServer, equos_http: httpx.Client
) -> None:
    emulator.set_faults(error_rate=0.5, seed=42)
    first = statuses(equos_http, 40)
    emulator.set_faults(seed=42)  # naming the seed restarts the stream
    second = statuses(equos_http, 40)
    emulator.set_faults(seed=7)
    third = statuses(equos_http, 40)
    assert first == second
    assert first != third
    assert set(first) <= {200, 500, 502, 503}
    failures = sum(s != 200 for s in first)
    assert 8 <= failures <= 32
    assert len({s for s in first + third if s != 200}) >= 2  # the status is drawn too
    assert emulator.stats()["faults"]["errors"] == sum(s != 200 for s in first + second + third)


def test_injected_errors_commit_nothing_and_use_each_platform_envelope(
    emulator: EmulatorServer, equos_http: httpx.Client
) -> None:
    emulator.set_faults(error_rate=0.5, seed=1)
    answers = [equos_http.post("/v3/brains", json=BRAIN) for _ in range(20)]
    created = [r for r in answers if r.status_code == 201]
    failed = [r for r in answers if r.status_code >= 500]
    assert created and failed and len(created) + len(failed) == 20
    body = failed[0].json()
    assert body["statusCode"] == failed[0].status_code and "injected" in body["message"]
    emulator.set_faults(error_rate=0.0)
    assert equos_http.get("/v3/brains", params={"take": 50}).json()["total"] == len(created)

    emulator.set_faults(error_rate=1.0)
    avatarium = equos_http.get("/health")
    assert avatarium.status_code in (500, 502, 503)
    envelope = avatarium.json()
    assert envelope["error"]["code"] in {"internal_error", "bad_gateway", "service_unavailable"}
    assert envelope["meta"]["requestId"] == avatarium.headers["x-request-id"]


def test_faults_never_touch_admin_or_upload_paths(
    emulator: EmulatorServer, equos_http: httpx.Client
) -> None:
    kb = equos_http.post("/v3/knowledge-bases", json={"name": "k", "description": "d"}).json()
    added = equos_http.post(
        f"/v3/knowledge-bases/{kb['id']}/documents",
        json={"name": "n", "description": "d", "mimeType": "text/plain"},
    ).json()
    emulator.set_faults(error_rate=1.0, rate_limit=1, drop_after_commit_rate=1.0)
    for _ in range(3):
        assert equos_http.get("/_emulator/stats").status_code == 200
        assert equos_http.get("/_emulator/faults").status_code == 200
        assert httpx.put(added["uploadUrl"], content=b"abc").status_code == 200


# ---------------------------------------------------------------- rate limit


def test_rate_limit_answers_429_with_headers(
    start_emulator: Callable[..., EmulatorServer], api_key: str
) -> None:
    server = start_emulator(rate_limit=3)
    with httpx.Client(base_url=server.url, headers={"x-api-key": api_key}) as http:
        passed = [http.get("/v3/brains") for _ in range(3)]
        assert [r.status_code for r in passed] == [200, 200, 200]
        assert [r.headers["x-ratelimit-remaining"] for r in passed] == ["2", "1", "0"]
        assert {r.headers["x-ratelimit-limit"] for r in passed} == {"3"}
        refused = http.get("/v3/brains")
        assert refused.status_code == 429
        retry_after = int(refused.headers["retry-after"])
        assert retry_after >= 1
        assert int(refused.headers["x-ratelimit-reset"]) >= int(time.time()) + 1
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert (
            refused.json()["statusCode"] == 429 and refused.json()["error"] == "Too Many Requests"
        )
        avatarium = http.get("/v1/avatars")
        assert avatarium.status_code == 429
        assert avatarium.json()["error"]["code"] == "rate_limit_exceeded"
        assert server.stats()["faults"]["rateLimited"] == 2
        assert http.get("/_emulator/stats").status_code == 200  # never limited


def test_rate_limit_bucket_refills(start_emulator: Callable[..., EmulatorServer]) -> None:
    server = start_emulator(rate_limit=120)  # 2 tokens per second
    with httpx.Client(base_url=server.url) as http:
        passed = 0
        # Spend the bucket; it refills while we do, so count until the first 429.
        while (refused := http.get("/v3/health")).status_code == 200 and passed < 1000:
            passed += 1
        assert passed >= 120
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        time.sleep(0.6)
        assert http.get("/v3/health").status_code == 200


def test_avatarium_answers_advertise_an_unenforced_limit(
    emulator: EmulatorServer, equos_http: httpx.Client
) -> None:
    answers = [equos_http.get("/v1/avatars") for _ in range(65)]
    assert {r.status_code for r in answers} == {200}
    assert {r.headers["x-ratelimit-limit"] for r in answers} == {"60"}
    assert all(int(r.headers["x-ratelimit-reset"]) > 1_600_000_000 for r in answers)
    assert "x-ratelimit-limit" not in equos_http.get("/v3/brains").headers


# ---------------------------------------------------------------- drop after commit


def test_dropped_write_commits_but_gets_no_response(
    emulator: EmulatorServer, equos_http: httpx.Client
) -> None:
    brain = equos_http.post("/v3/brains", json=BRAIN).json()
    emulator.set_faults(drop_after_commit_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        equos_http.post("/v3/brains", json={**BRAIN, "greetingMessage": "dropped"})
    with pytest.raises(httpx.TransportError):
        equos_http.patch(f"/v3/brains/{brain['id']}", json={**BRAIN, "instructions": "changed"})
    # Reads are never dropped.
    listed = equos_http.get("/v3/brains").json()
    emulator.set_faults(drop_after_commit_rate=0.0)
    assert listed["total"] == 2
    assert {b["greetingMessage"] for b in listed["brains"]} == {"g", "dropped"}
    assert equos_http.get(f"/v3/brains/{brain['id']}").json()["instructions"] == "changed"
    stats = emulator.stats()
    assert stats["faults"]["dropped"] == 2
    assert stats["requests"]["POST /v3/brains"] == 2


def test_drop_rate_is_seeded(emulator: EmulatorServer, equos_http: httpx.Client) -> None:
    def outcomes() -> list[str]:
        result = []
        for _ in range(12):
            try:
                result.append(str(equos_http.post("/v3/brains", json=BRAIN).status_code))
            except httpx.TransportError:
                result.append("dropped")
        return result

    emulator.set_faults(drop_after_commit_rate=0.5, seed=3)
    first = outcomes()
    emulator.set_faults(seed=3)
    assert outcomes() == first
    assert {"201", "dropped"} == set(first)
    emulator.set_faults(drop_after_commit_rate=0.0)
    assert equos_http.get("/v3/brains").json()["total"] == 24  # every write committed


# ---------------------------------------------------------------- admin and stats


def test_faults_switch_at_runtime_over_http(emulator: EmulatorServer) -> None:
    with httpx.Client(base_url=emulator.url) as http:
        defaults = http.get("/_emulator/faults").json()
        assert {k: defaults[k] for k in ("latencyMs", "errorRate", "rateLimit", "seed")} == {
            "latencyMs": 0,
            "errorRate": 0.0,
            "rateLimit": None,
            "seed": 0,
        }
        assert defaults == FaultSettings().to_wire() and len(defaults) == 21
        changed = http.post("/_emulator/faults", json={"errorRate": 1.0, "rateLimit": 100})
        assert changed.status_code == 200
        assert changed.json()["errorRate"] == 1.0 and changed.json()["rateLimit"] == 100
        assert http.get("/v3/health").status_code >= 500
        assert (
            http.post("/_emulator/faults", json={"errorRate": 0, "rateLimit": None}).status_code
            == 200
        )
        assert http.get("/v3/health").status_code == 200
        for body in ({"errorRate": 2}, {"bogus": 1}, {"latencyMs": -1}, {"rateLimit": 0}, [1]):
            refused = http.post("/_emulator/faults", json=body)
            assert refused.status_code == 400, body
            assert refused.json()["error"]
        assert http.get("/_emulator/faults").json()["errorRate"] == 0
    with pytest.raises(ValueError, match="errorRate"):
        emulator.set_faults(error_rate=-0.1)
    with pytest.raises(ValueError, match="unknown fault switch"):
        emulator.set_faults(errorRate=0.5)
    assert emulator.faults()["errorRate"] == 0


def test_stats_count_route_templates(emulator: EmulatorServer, equos_http: httpx.Client) -> None:
    character = equos_http.post("/v3/characters", json={"name": "c", "livekitIdentity": "c"}).json()
    for _ in range(3):
        equos_http.put(f"/v3/characters/{character['id']}", json={"search": True})
    equos_http.get("/v3/characters")
    equos_http.get("/v3/nowhere")
    equos_http.get("/_emulator/stats")  # admin calls are not counted
    stats = emulator.stats()
    assert stats["requests"] == {
        "POST /v3/characters": 1,
        "PUT /v3/characters/{id}": 3,
        "GET /v3/characters": 1,
        "GET (unmatched)": 1,
    }
    assert stats["totalRequests"] == 6
    assert stats["faults"] == {"errors": 0, "rateLimited": 0, "dropped": 0}
    assert set(stats["openConversations"]) == {"equos", "avatarium"}
    reset = equos_http.post("/_emulator/stats/reset").json()
    assert (reset["requests"], reset["totalRequests"], reset["peakInFlight"]) == ({}, 0, 0)
    assert equos_http.get("/_emulator/stats").json() == emulator.stats()


def test_faulted_requests_are_counted_under_their_route(
    emulator: EmulatorServer, equos_http: httpx.Client
) -> None:
    emulator.set_faults(error_rate=1.0)
    equos_http.delete("/v3/brains/brain_x")
    equos_http.get("/v3/brains")
    assert emulator.stats()["requests"] == {"DELETE /v3/brains/{id}": 1, "GET /v3/brains": 1}


def test_every_response_has_a_request_id(
    emulator: EmulatorServer, equos_http: httpx.Client
) -> None:
    seen: set[str] = set()
    responses: list[Any] = [
        equos_http.get("/v3/health"),
        equos_http.get("/v3/brains"),
        equos_http.get("/v3/brains/nope"),
        equos_http.get("/_emulator/stats"),
        equos_http.put("/_uploads/nope", content=b""),
        equos_http.get("/v1/avatars"),
    ]
    for response in responses:
        request_id = response.headers["x-request-id"]
        assert request_id.startswith("req_") and len(request_id) > 8
        seen.add(request_id)
    assert len(seen) == len(responses)
