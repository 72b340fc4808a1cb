"""Numbers the emulator accepts, each bounded: paging, maxSeconds, the fault switches
(an out-of-range value used to answer 500 on every later request, or hang it)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from support.error_shapes import JSON, equos_error

from avatarsync.emulator import EmulatorConfig, EmulatorServer

# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"skip": "9223372036854775807"}, "skip must not be greater than 1000000000"),
        ({"skip": "1e300"}, "skip must not be greater than"),
        ({"skip": "1" * 5000}, "skip must not be greater than"),
        ({"take": "9223372036854775807"}, "take must not be greater than 50"),
        ({"take": "-1e300"}, "take must not be less than 0"),
        ({"skip": "nan"}, "skip must be an integer number"),
    ],
)
def test_paging_numbers_out_of_range_are_400(
    equos_http: httpx.Client, params: dict[str, str], fragment: str
) -> None:
    for path in ("/v3/brains", "/v3/characters", "/v3/knowledge-bases", "/v3/conversations"):
        assert fragment in equos_error(equos_http.get(path, params=params)), path


def test_the_largest_skip_is_an_empty_page(equos_http: httpx.Client) -> None:
    equos_http.post("/v3/brains", json={"instructions": "i", "greetingMessage": "g"})
    page = equos_http.get("/v3/brains", params={"skip": 1_000_000_000, "take": 50}).json()
    assert (page["skip"], page["total"], page["brains"]) == (1_000_000_000, 1, [])


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"1e308", "maxSeconds must not be greater than 86400"),
        (b"86401", "maxSeconds must not be greater than 86400"),
        (b"1" + b"0" * 400, "maxSeconds must not be greater than 86400"),
        (b"1e400", "maxSeconds must be a positive number"),
    ],
)
def test_conversation_max_seconds_is_bounded(
    equos_http: httpx.Client, raw: bytes, fragment: str
) -> None:
    character = equos_http.post("/v3/characters", json={"name": "c", "livekitIdentity": "c"})
    body = b'{"name": "s", "characterId": "%s", "maxSeconds": %s}' % (
        character.json()["id"].encode(),
        raw,
    )
    assert fragment in equos_error(equos_http.post("/v3/conversations", content=body, headers=JSON))
    assert equos_http.get("/v3/conversations").json()["total"] == 0
    assert equos_http.get("/v3/organizations/freemium-usage").status_code == 200
    assert equos_http.get("/_emulator/stats").status_code == 200
    longest = equos_http.post(
        "/v3/conversations",
        json={"name": "s", "characterId": character.json()["id"], "maxSeconds": 86400},
    )
    assert longest.status_code == 201 and longest.json()["conversation"]["maxSeconds"] == 86400


@pytest.mark.parametrize(
    "raw",
    [
        b'{"rateLimit": 1' + b"0" * 400 + b"}",
        b'{"latencyMs": 1' + b"0" * 400 + b"}",
        b'{"latencyMs": 1000000000000}',
        b'{"latencyMs": 60001}',
        b'{"rateLimit": 1000001}',
        b'{"errorRate": 1e400}',
        b'{"dropAfterCommitRate": -0.0001}',
        b'{"seed": 9223372036854775808}',
        b'{"seed": 1.5}',
    ],
)
def test_admin_fault_numbers_out_of_range_are_400(emulator: EmulatorServer, raw: bytes) -> None:
    with httpx.Client(base_url=emulator.url, trust_env=False) as http:
        before = http.get("/_emulator/faults").json()
        refused = http.post("/_emulator/faults", content=raw, headers=JSON)
        assert refused.status_code == 400 and refused.json()["error"]
        assert http.get("/_emulator/faults").json() == before
        assert http.get("/v3/health", timeout=5).status_code == 200


def test_admin_fault_numbers_at_their_limits_are_accepted(emulator: EmulatorServer) -> None:
    with httpx.Client(base_url=emulator.url, trust_env=False) as http:
        body = {"latencyMs": 60000, "rateLimit": 1_000_000, "errorRate": 1, "seed": 2**63 - 1}
        accepted = http.post("/_emulator/faults", json=body)
        assert accepted.status_code == 200, accepted.text
        assert {k: accepted.json()[k] for k in body} == body
        reset = {"latencyMs": 0, "rateLimit": None, "errorRate": 0, "seed": -(2**63)}
        assert http.post("/_emulator/faults", json=reset).status_code == 200


@pytest.mark.parametrize(
    "config",
    [
        {"latency_ms": 10**12},
        {"rate_limit": 10**400},
        {"seed": 2**63},
        {"error_rate": float("nan")},
        {"port": 1.5},
        {"port": 70000},
    ],
)
def test_emulator_config_refuses_numbers_out_of_range(config: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EmulatorConfig(**config)
