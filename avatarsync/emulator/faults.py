"""The fault switches: latency, seeded 5xx errors, a token-bucket rate limit and
connections dropped after the write committed.

They live here as plain state with no I/O so the middleware only asks
questions ("should this request fail?") and the admin endpoint only changes
settings. Every random choice comes from a `random.Random` seeded from
`seed`, one stream per switch, so a run with the same seed and the same
sequence of requests fails the same requests in the same way.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["DEFAULT_ADVERTISED_LIMIT", "FaultSettings", "Faults", "RateDecision"]

# What `/v1` answers advertise when no limit is enforced (Avatarium's Pro tier).
DEFAULT_ADVERTISED_LIMIT = 60
ERROR_STATUSES = (500, 502, 503)

# The documented range of every numeric switch. Out of range is a ValueError (a 400
# from the admin endpoint): 10**400 used to overflow the token bucket and a latency
# of 10**12 ms parked every later request for ever.
MAX_LATENCY_MS = 60_000
MAX_RATE_LIMIT = 1_000_000  # per minute
SEED_RANGE = (-(2**63), 2**63 - 1)

# Wire name (admin endpoint, camelCase) -> field name.
_WIRE_NAMES = {
    "latencyMs": "latency_ms",
    "errorRate": "error_rate",
    "rateLimit": "rate_limit",
    "dropAfterCommitRate": "drop_after_commit_rate",
    "seed": "seed",
}


@dataclass(frozen=True)
class FaultSettings:
    latency_ms: int = 0
    error_rate: float = 0.0
    rate_limit: int | None = None  # requests per minute; None: not enforced
    drop_after_commit_rate: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check_int("latency_ms", self.latency_ms, 0, MAX_LATENCY_MS)
        _check_rate("error_rate", self.error_rate)
        _check_rate("drop_after_commit_rate", self.drop_after_commit_rate)
        if self.rate_limit is not None:
            _check_int("rate_limit", self.rate_limit, 1, MAX_RATE_LIMIT)
        _check_int("seed", self.seed, *SEED_RANGE)

    def to_wire(self) -> dict[str, Any]:
        values = asdict(self)
        return {wire: values[name] for wire, name in _WIRE_NAMES.items()}

    @staticmethod
    def names_from_wire(payload: Mapping[str, Any]) -> dict[str, Any]:
        """camelCase admin body -> field names; unknown keys are an error."""
        unknown = sorted(set(payload) - set(_WIRE_NAMES))
        if unknown:
            raise ValueError(f"unknown fault switch(es): {', '.join(unknown)}")
        return {_WIRE_NAMES[k]: v for k, v in payload.items()}


def _check_int(name: str, value: object, minimum: int, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {_brief(value)}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}, got {_brief(value)}")


def _check_rate(name: str, value: object) -> None:
    # `not 0 <= value <= 1` is also true for NaN.
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number between 0 and 1, got {_brief(value)}")


def _brief(value: object) -> str:
    # An integer of 400 digits is not worth echoing (nor, past 4300, printable).
    text = f"{value!r}" if not isinstance(value, int) or abs(value) < 10**30 else "a huge integer"
    return text if len(text) <= 80 else text[:77] + "..."


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
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._monotonic = monotonic
        self._wall = wall
        self.settings = settings
        self._reseed(settings.seed)
        self._reset_bucket()

    def update(self, **changes: Any) -> FaultSettings:
        """Change some switches (field names); raises ValueError, changing nothing."""
        unknown = sorted(set(changes) - set(_WIRE_NAMES.values()))
        if unknown:
            raise ValueError(f"unknown fault switch(es): {', '.join(unknown)}")
        new = replace(self.settings, **changes)  # validates in __post_init__
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
