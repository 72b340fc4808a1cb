"""Speed for the emulator tests: one TLS context for every httpx client.

httpx builds a TLS context, loading the whole CA bundle (~45 ms), for every client
it creates -- `httpx.get(...)`, each fixture's client, the equos SDK's -- even one
that only ever speaks plain http:// to 127.0.0.1. At one or two clients per test
that was a third of this folder's run time. Within each module here, clients with
the default settings share one context instead (built the same way, once); any
other `verify`/`cert` goes through httpx unchanged. Undone after each module, so
nothing leaks into other folders' tests.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx._transports.default as httpx_transport
import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_tls_context() -> Iterator[None]:
    original = httpx_transport.create_ssl_context
    shared = original()

    def create_ssl_context(
        verify: Any = True, cert: Any = None, trust_env: bool = True
    ) -> ssl.SSLContext:
        if verify is True and cert is None:
            return shared
        return original(verify=verify, cert=cert, trust_env=trust_env)

    httpx_transport.create_ssl_context = create_ssl_context
    try:
        yield
    finally:
        httpx_transport.create_ssl_context = original
