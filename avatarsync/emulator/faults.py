"""Every behaviour switch of the emulator, in one place: names, defaults, ranges.

HTTP faults (both platforms): latency, seeded 5xx errors, a token-bucket rate
limit, connections dropped after the write committed, and `failNext` (the next
n requests to one route answer 503). Equos behaviour: `missingAs` (404 or a 200
`null` for an unknown id, as the SDK declares) and `stopEndedAs` (stopping an
ended conversation: 201 unchanged, or 400). Avatarium WebSocket: `wsAuth`
(credentials required, or the bare `wsUrl` works) and mid-stream faults, each
limited, if wanted, to the next K replies so that a reconnect can succeed.

They live here as plain state with no I/O so the middleware and the platforms
only ask questions ("should this request fail?", "what happens to this
reply?") and the admin endpoint only changes settings. `FaultSettings` is the
frozen value (validated on construction: a ValueError names the switch and its
range); `Faults` holds it with the state behind it (RNG streams, token bucket,
counters). Every random choice comes from a `random.Random` seeded from `seed`,
one stream per switch, so a run with the same seed and the same sequence of
requests fails the same requests in the same way; every other switch is
deterministic. Counting switches (`failNext`, `ws*Replies`) count down in the
settings themselves, so `GET /_emulator/faults` shows what is left.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

__all__ = [
    "DEFAULT_ADVERTISED_LIMIT",
    "FaultSettings",
    "Faults",
    "RateDecision",
    "WsReplyPlan",
]

# What `/v1` answers advertise when no limit is enforced (Avatarium's Pro tier).
DEFAULT_ADVERTISED_LIMIT = 60
ERROR_STATUSES = (500, 502, 503)

# The documented range of every numeric switch. Out of range is a ValueError (a 400
# from the admin endpoint): 10**400 used to overflow the token bucket and a latency
# of 10**12 ms parked every later request for ever.
MAX_LATENCY_MS = 60_000  # latencyMs, wsFirstChunkDelayMs, wsChunkDelayMs
MAX_RATE_LIMIT = 1_000_000  # per minute
MAX_COUNT = 1_000_000  # failNext values, ws*Replies
MAX_CHUNKS = 100_000  # ws*AfterChunks
SEED_RANGE = (-(2**63), 2**63 - 1)
_ROUTE_KEY = re.compile(r"^[A-Z]+ /\S*$")

MissingAs = Literal["404", "null"]
WsAuth = Literal["required", "open"]
WsDropMode = Literal["abort", "1011"]


def _wire(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


@dataclass(frozen=True)
class FaultSettings:
    """The switches, by field name; the admin endpoint uses the camelCase names."""

    # -- HTTP, both platforms (never /_emulator/*, /_uploads/*, WebSocket sessions)
    latency_ms: int = 0
    error_rate: float = 0.0
    rate_limit: int | None = None  # requests per minute; None: not enforced
    drop_after_commit_rate: float = 0.0
    seed: int = 0
    # "<METHOD> <route template>" -> how many of the next requests answer 503
    fail_next: Mapping[str, int] = field(default_factory=dict)
    # -- Equos
    missing_as: MissingAs = "404"
    stop_ended_as: int = 201
    # -- Avatarium WebSocket
    ws_auth: WsAuth = "required"
    ws_error_after_chunks: int | None = None
    ws_error_replies: int | None = None
    ws_drop_after_chunks: int | None = None
    ws_drop_mode: WsDropMode = "abort"
    ws_drop_replies: int | None = None
    ws_first_chunk_delay_ms: int = 0
    ws_chunk_delay_ms: int = 0
    ws_delay_replies: int | None = None
    ws_end_mismatch: bool = False
    ws_end_mismatch_replies: int | None = None
    ws_message_after_end: bool = False
    ws_message_after_end_replies: int | None = None

    def __post_init__(self) -> None:
        _check_int("latency_ms", self.latency_ms, 0, MAX_LATENCY_MS)
        _check_rate("error_rate", self.error_rate)
        _check_rate("drop_after_commit_rate", self.drop_after_commit_rate)
        if self.rate_limit is not None:
            _check_int("rate_limit", self.rate_limit, 1, MAX_RATE_LIMIT)
        _check_int("seed", self.seed, *SEED_RANGE)
        object.__setattr__(self, "fail_next", _check_fail_next(self.fail_next))
        _check_choice("missing_as", self.missing_as, ("404", "null"))
        _check_choice("stop_ended_as", self.stop_ended_as, (201, 400))
        _check_choice("ws_auth", self.ws_auth, ("required", "open"))
        _check_choice("ws_drop_mode", self.ws_drop_mode, ("abort", "1011"))
        for name in ("ws_error_after_chunks", "ws_drop_after_chunks"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 0, MAX_CHUNKS)
        for name in ("ws_first_chunk_delay_ms", "ws_chunk_delay_ms"):
            _check_int(name, getattr(self, name), 0, MAX_LATENCY_MS)
        for name in ("ws_end_mismatch", "ws_message_after_end"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{_wire(name)} must be true or false")
        for name in _REPLY_COUNTS.values():
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), 0, MAX_COUNT)

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[_wire(f.name)] = dict(value) if isinstance(value, Mapping) else value
        return out

    @staticmethod
    def names_from_wire(payload: Mapping[str, Any]) -> dict[str, Any]:
        """camelCase admin body -> field names; unknown keys are an error."""
        unknown = sorted(set(payload) - set(_WIRE_NAMES))
        if unknown:
            raise ValueError(f"unknown fault switch(es): {', '.join(unknown)}")
        return {_WIRE_NAMES[k]: v for k, v in payload.items()}


# Wire name (admin endpoint, camelCase) -> field name.
_WIRE_NAMES = {_wire(f.name): f.name for f in fields(FaultSettings)}
# Each limitable WebSocket fault -> the field counting the replies it still applies to.
_REPLY_COUNTS = {
    "ws_error_after_chunks": "ws_error_replies",
    "ws_drop_after_chunks": "ws_drop_replies",
    "ws_delay": "ws_delay_replies",
    "ws_end_mismatch": "ws_end_mismatch_replies",
    "ws_message_after_end": "ws_message_after_end_replies",
}


def _check_int(name: str, value: object, minimum: int, maximum: int, *, label: str = "") -> None:
    label = label or _wire(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{label} must be an integer, got {_brief(value)}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{label} must be between {minimum} and {maximum}, got {_brief(value)}")


def _check_rate(name: str, value: object) -> None:
    # `not 0 <= value <= 1` is also true for NaN.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{_wire(name)} must be a number between 0 and 1, got {_brief(value)}")


def _check_choice(name: str, value: object, choices: tuple[object, ...]) -> None:
    if isinstance(value, bool) or value not in choices:
        allowed = " or ".join(repr(c) if isinstance(c, str) else str(c) for c in choices)
        raise ValueError(f"{_wire(name)} must be {allowed}, got {_brief(value)}")


def _check_fail_next(value: object) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise ValueError('failNext must be an object {"<METHOD> <route template>": n}')
    out: dict[str, int] = {}
    for key, count in value.items():
        if not isinstance(key, str) or not _ROUTE_KEY.match(key):
            raise ValueError(
                f"failNext keys look like 'POST /v3/conversations/{{id}}/stop', got {_brief(key)}"
            )
        _check_int("fail_next", count, 0, MAX_COUNT, label=f"failNext[{key!r}]")
        if count:
            out[key] = count  # 0: nothing left to fail
    return out


def _brief(value: object) -> str:
    # An integer of 400 digits is not worth echoing (nor, past 4300, printable).
    text = f"{value!r}" if not isinstance(value, int) or abs(value) < 10**30 else "a huge integer"
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass(frozen=True)
class WsReplyPlan:
    """What happens to one WebSocket reply (see the ws* switches)."""

    error_after_chunks: int | None = None  # send an `error` frame there, no stream_end
    drop_after_chunks: int | None = None  # drop the socket there
    drop_mode: WsDropMode = "abort"
    first_chunk_delay_ms: int = 0
    chunk_delay_ms: int = 0
    end_mismatch: bool = False  # stream_end content differs from the chunks
    message_after_end: bool = False  # a `message` frame with the reply after stream_end


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # unix seconds
    retry_after: int  # seconds, >= 1 when not allowed

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"x-ratelimit-limit", str(self.limit).encode()),
            (b"x-ratelimit-remaining", str(self.remaining).encode()),
            (b"x-ratelimit-reset", str(self.reset).encode()),
        ]
        if not self.allowed:
            headers.append((b"retry-after", str(self.retry_after).encode()))
        return headers


class Faults:
    """Current switches plus the state behind them (RNG streams, token bucket)."""

    def __init__(
        self,
        settings: FaultSettings,
        *,
        routes: frozenset[str] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._monotonic = monotonic
        self._wall = wall
        # "<METHOD> <template>" of every route failNext may name (None: any).
        self.routes = routes
        self._check_routes(settings)
        self.settings = settings
        self._reseed(settings.seed)
        self._reset_bucket()

    def _check_routes(self, settings: FaultSettings) -> None:
        if self.routes is None:
            return
        unknown = sorted(set(settings.fail_next) - self.routes)
        if unknown:
            raise ValueError(
                f"failNext names no route of the emulated APIs: {', '.join(unknown)}"
                " (keys are what /_emulator/stats counts, e.g. 'POST /v3/conversations/{id}/stop')"
            )

    def update(self, **changes: Any) -> FaultSettings:
        """Change some switches (field names); raises ValueError, changing nothing."""
        unknown = sorted(set(changes) - set(_WIRE_NAMES.values()))
        if unknown:
            raise ValueError(f"unknown fault switch(es): {', '.join(unknown)}")
        new = replace(self.settings, **changes)  # validates in __post_init__
        self._check_routes(new)
        old, self.settings = self.settings, new
        # Naming a seed restarts the random streams even if it is the same
        # value, so a test phase can be replayed exactly.
        if "seed" in changes:
            self._reseed(new.seed)
        if new.rate_limit != old.rate_limit:
            self._reset_bucket()
        return new

    def _reseed(self, seed: int) -> None:
        # String seeds hash with SHA-512: stable across runs and Python builds.
        self._error_rng = random.Random(f"error:{seed}")
        self._drop_rng = random.Random(f"drop:{seed}")

    def _reset_bucket(self) -> None:
        self._tokens = float(self.settings.rate_limit or 0)
        self._refilled_at = self._monotonic()

    def draw_error(self) -> int | None:
        """A 5xx status to answer with before handling, or None to go on."""
        rate = self.settings.error_rate
        if rate <= 0:
            return None
        if self._error_rng.random() < rate:
            return self._error_rng.choice(ERROR_STATUSES)
        return None

    def draw_drop(self) -> bool:
        """Whether to close this write's connection after it committed."""
        rate = self.settings.drop_after_commit_rate
        return rate > 0 and self._drop_rng.random() < rate

    def take_token(self) -> RateDecision:
        """Spend one token if the limit is on; always says what to advertise."""
        limit = self.settings.rate_limit
        wall = self._wall()
        if limit is None:
            return RateDecision(
                True, DEFAULT_ADVERTISED_LIMIT, DEFAULT_ADVERTISED_LIMIT, math.ceil(wall), 0
            )
        per_second = limit / 60.0
        now = self._monotonic()
        self._tokens = min(float(limit), self._tokens + (now - self._refilled_at) * per_second)
        self._refilled_at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            # Reset: when the bucket is full again.
            reset = math.ceil(wall + (limit - self._tokens) / per_second)
            return RateDecision(True, limit, int(self._tokens), reset, 0)
        retry_after = max(1, math.ceil((1.0 - self._tokens) / per_second))
        # Reset on a refusal: when the next request can pass, same as Retry-After,
        # so a client honouring either header waits the same.
        return RateDecision(False, limit, 0, math.ceil(wall) + retry_after, retry_after)

    def take_fail_next(self, route: str) -> bool:
        """Whether this request to `route` ("<METHOD> <template>") must answer 503."""
        remaining = self.settings.fail_next.get(route)
        if not remaining:
            return False
        counts = dict(self.settings.fail_next)
        counts[route] = remaining - 1
        self.settings = replace(self.settings, fail_next=counts)  # drops a 0
        return True

    def ws_reply_plan(self) -> WsReplyPlan:
        """The mid-stream faults for the next WebSocket reply, counting it against
        each fault limited to a number of replies."""
        s = self.settings
        active = {
            fault: getattr(s, count) is None or getattr(s, count) > 0
            for fault, count in _REPLY_COUNTS.items()
        }
        plan = WsReplyPlan(
            error_after_chunks=s.ws_error_after_chunks if active["ws_error_after_chunks"] else None,
            drop_after_chunks=s.ws_drop_after_chunks if active["ws_drop_after_chunks"] else None,
            drop_mode=s.ws_drop_mode,
            first_chunk_delay_ms=s.ws_first_chunk_delay_ms if active["ws_delay"] else 0,
            chunk_delay_ms=s.ws_chunk_delay_ms if active["ws_delay"] else 0,
            end_mismatch=s.ws_end_mismatch and active["ws_end_mismatch"],
            message_after_end=s.ws_message_after_end and active["ws_message_after_end"],
        )
        applied = {
            "ws_error_after_chunks": plan.error_after_chunks is not None,
            "ws_drop_after_chunks": plan.drop_after_chunks is not None,
            "ws_delay": bool(plan.first_chunk_delay_ms or plan.chunk_delay_ms),
            "ws_end_mismatch": plan.end_mismatch,
            "ws_message_after_end": plan.message_after_end,
        }
        spent = {
            count: getattr(s, count) - 1
            for fault, count in _REPLY_COUNTS.items()
            if applied[fault] and getattr(s, count) is not None
        }
        if spent:
            self.settings = replace(s, **spent)
        return plan
