"""Shared helpers for the API client tests: scripted transports and a fake sleep."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest

from avatarsync.providers import AvatariumClient, EquosClient
from avatarsync.providers.http import PlatformClient
from avatarsync.secret import Secret

KEY = "sk-SENTINEL-123456"
BYOK_KEY = "gsk-BYOK-SENTINEL-987654"
NOW = 1_700_000_000.0  # the injected clock


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Sleeps:
    """An injected `sleep` that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


Step = httpx.Response | Exception | Callable[[httpx.Request], Any]


class Script:
    """A MockTransport handler answering with queued steps (the last repeats)."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0) if len(self.steps) > 1 else self.steps[0]
        if isinstance(step, Exception):
            raise step
        if isinstance(step, httpx.Response):
            return step
        result = step(request)
        if hasattr(result, "__await__"):
            result = await result
        return result

    @property
    def methods(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def script() -> type[Script]:
    """The `Script` class (test modules cannot import from conftest)."""
    return Script


C = TypeVar("C", bound=PlatformClient)


def _mock_client_factory(cls: type[C], base_url: str, sleeps: Sleeps) -> Callable[..., C]:
    """A factory of `cls` clients on a MockTransport with the injected seams."""

    def make(handler: Callable[..., Any], **kwargs: Any) -> C:
        return cls(
            base_url,
            Secret(KEY),
            transport=httpx.MockTransport(handler),
            sleep=kwargs.pop("sleep", sleeps),
            rng=random.Random(7),
            clock=lambda: NOW,
            **kwargs,
        )

    return make


@pytest.fixture
def make_equos(sleeps: Sleeps) -> Callable[..., EquosClient]:
    """`make_equos(script, **options)`: an EquosClient on a MockTransport."""
    return _mock_client_factory(EquosClient, "https://api.equos.test", sleeps)


@pytest.fixture
def make_avatarium(sleeps: Sleeps) -> Callable[..., AvatariumClient]:
    """`make_avatarium(script, **options)`: an AvatariumClient on a MockTransport."""
    return _mock_client_factory(AvatariumClient, "https://api.avatarium.test/v1", sleeps)
