"""Request counters read by `GET /_emulator/stats`.

Tests use them to assert on behaviour that leaves no trace in the data: how
many calls an apply made per endpoint, whether it really ran requests
concurrently (peak in flight), how many faults were injected.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["Stats"]


class Stats:
    """Mutated only on the event-loop thread, so plain ints suffice."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        self.total = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self.errors = 0
        self.rate_limited = 0
        self.dropped = 0

    def count(self, key: str) -> None:
        self.requests[key] += 1
        self.total += 1

    def enter(self) -> None:
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight

    def leave(self) -> None:
        self.in_flight -= 1

    def reset(self) -> None:
        """Zero the counters; requests in flight stay in flight."""
        self.requests.clear()
        self.total = 0
        self.peak_in_flight = self.in_flight
        self.errors = self.rate_limited = self.dropped = 0

    def snapshot(self, open_conversations: dict[str, int]) -> dict[str, Any]:
        return {
            "requests": dict(sorted(self.requests.items())),
            "totalRequests": self.total,
            "inFlight": self.in_flight,
            "peakInFlight": self.peak_in_flight,
            "openConversations": open_conversations,
            "faults": {
                "errors": self.errors,
                "rateLimited": self.rate_limited,
                "dropped": self.dropped,
            },
        }
