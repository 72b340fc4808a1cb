"""What a long run is doing, as events: the seam between the layers that wait and the display.

A plan or apply spends its time waiting: on pages of a list, on a rate
limit, on a retry's backoff, on another runner's lock. Those layers
(providers, the facade) report each wait here as a small frozen event to an
`EventSink` they were given; they never print. The CLI turns the events into
a live display on a terminal and timestamped lines in a CI log
(`avatarsync.output.progress`); a Python caller may pass any callable, or
none. Events carry paths and counts, never a query string, a key or a body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from avatarsync.planning.report import Outcome

__all__ = [
    "Event",
    "EventSink",
    "InFlight",
    "LockWaiting",
    "Paced",
    "PageRead",
    "Retrying",
    "ignore",
]


@dataclass(frozen=True)
class Retrying:
    """A call failed in a way worth repeating; the next attempt starts in `delay` s."""

    method: str
    path: str
    reason: str  # "status 429", "connection refused"
    delay: float
    attempt: int  # the attempt about to be made (2 is the first retry)
    attempts: int  # the most attempts the policy allows


@dataclass(frozen=True)
class Paced:
    """A request held back `delay` s so the server's announced rate limit is not hit."""

    method: str
    path: str
    delay: float


@dataclass(frozen=True)
class PageRead:
    """One more page of a collection read; `pages` of `total` known so far."""

    path: str  # "/v3/brains"
    pages: int
    total: int


@dataclass(frozen=True)
class InFlight:
    """How many API requests are on the wire now (at most the parallelism)."""

    count: int


@dataclass(frozen=True)
class LockWaiting:
    """Another run holds the environment's lock; still waiting after `waited` s."""

    environment: str
    waited: float
    timeout: float
    holder: str  # what the backend knows of the holder (message of the LockError)


Event = Retrying | Paced | PageRead | InFlight | LockWaiting | Outcome
EventSink = Callable[[Event], None]


def ignore(event: Event) -> None:
    """The sink of a caller that does not want to know."""
