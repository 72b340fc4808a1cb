"""The API key (and a BYOK key) never shows in a repr, message, traceback or log."""

from __future__ import annotations

import asyncio
import logging
import traceback

import httpx
import pytest

from avatarsync.errors import (
    AmbiguousWriteError,
    ApiError,
    AuthError,
    BadRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
)
from avatarsync.providers import RetryPolicy
from avatarsync.resources import Kind
from avatarsync.secret import Secret

pytestmark = pytest.mark.anyio

KEY = "sk-SENTINEL-123456"  # the key conftest's clients carry
BYOK = "gsk-BYOK-SENTINEL-987654"


def everything_printable(error: BaseException) -> str:
    """Every text an error can turn into, including its whole cause chain and
    the headers of any request objects hanging off it."""
    texts = [str(error), repr(error), "".join(traceback.format_exception(error))]
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current), repr(vars(current))]
        request = getattr(current, "_request", None)
        if isinstance(request, httpx.Request):
            texts += [repr(request), str(request.url), repr(dict(request.headers))]
            texts.append(request.content.decode("utf-8", "replace"))
        current = current.__cause__ or current.__context__
    return "\n".join(texts)


# Each failure the client can meet, with the error it must become.
FAILURES = [
    (httpx.Response(401, json={"message": f"invalid key {KEY}"}), AuthError),
    (httpx.Response(400, json={"message": "bad"}), BadRequestError),
    (httpx.Response(404, json={"message": "gone"}), NotFoundError),
    (httpx.Response(429, headers={"retry-after": "0"}), RateLimitedError),
    (httpx.Response(500, text=f"trace: x-api-key={KEY}"), ServerError),
    (httpx.ConnectError(f"refused, key was {KEY}"), TransportError),
    (httpx.ReadTimeout("read timed out"), TransportError),
]


@pytest.mark.parametrize(("failure", "expected"), FAILURES)
async def test_no_error_leaks_the_key(
    make_equos, script, caplog, failure, expected: type[ApiError]
) -> None:
    caplog.set_level(logging.DEBUG)
    handler = script(failure)
    async with make_equos(handler, retry=RetryPolicy(max_attempts=2)) as client:
        with pytest.raises(expected) as caught:
            await client.get(Kind.FACE, "f1")
    # The key did go out, in the header and nowhere else...
    assert handler.requests[0].headers["x-api-key"] == KEY
    # ...and comes back nowhere.
    assert KEY not in everything_printable(caught.value)
    assert KEY not in caplog.text
    assert KEY not in repr(client)


@pytest.mark.parametrize(
    "failure", [httpx.Response(502), httpx.RemoteProtocolError("dropped"), httpx.Response(201)]
)
async def test_ambiguous_write_errors_do_not_leak_either(
    make_equos, script, caplog, failure
) -> None:
    caplog.set_level(logging.DEBUG)
    async with make_equos(script(failure)) as client:
        with pytest.raises(AmbiguousWriteError) as caught:
            await client.create(Kind.FACE, {"identity": "tommy"})
    assert KEY not in everything_printable(caught.value)
    assert KEY not in caplog.text


async def test_chained_httpx_exception_has_no_frames_and_a_keyless_request(
    make_equos, script
) -> None:
    async with make_equos(script(httpx.ConnectError("refused"))) as client:
        with pytest.raises(TransportError) as caught:
            await client.list_all(Kind.FACE, client="acme")
    cause = caught.value.__cause__
    assert isinstance(cause, httpx.ConnectError)
    assert cause.__traceback__ is None  # no frame (with locals) to dig a key out of
    assert caught.value.__context__ is None or caught.value.__suppress_context__
    assert cause.request.headers.get("x-api-key") is None
    assert cause.request.url.query == b""  # the query is dropped too


async def test_byok_key_is_sent_but_never_echoed(make_avatarium, script, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    handler = script(
        httpx.Response(
            400,
            json={"error": {"code": "invalid_parameter", "message": f"bad key {BYOK}"}},
        )
    )
    byok = {"provider": "groq", "apiKey": Secret(BYOK), "model": "llama"}
    async with make_avatarium(handler) as client:
        with pytest.raises(BadRequestError) as caught:
            await client.create_conversation("aria-001", "groq", "Be nice.", byok)
    assert BYOK.encode() in handler.requests[0].content  # it did go out, in the body
    for text in (everything_printable(caught.value), caplog.text, repr(byok), repr(client)):
        assert BYOK not in text and KEY not in text


async def test_byok_key_must_be_a_secret(make_avatarium, script) -> None:
    handler = script(httpx.Response(201, json={"data": {}}))
    async with make_avatarium(handler) as client:
        with pytest.raises(TypeError):
            await client.create_conversation("aria-001", byok={"provider": "groq", "apiKey": BYOK})
    assert handler.requests == []


def test_clients_and_secrets_do_not_show_the_key(make_equos, make_avatarium, script) -> None:
    equos = make_equos(script(httpx.Response(200)))
    avatarium = make_avatarium(script(httpx.Response(200)))
    for text in (
        repr(Secret(KEY)),
        str(Secret(KEY)),
        f"{Secret(KEY)}",
        repr(equos),
        repr(avatarium),
    ):
        assert KEY not in text
    assert "api.equos.test" in repr(equos)


def test_a_plain_string_key_is_refused() -> None:
    from avatarsync.providers import EquosClient

    with pytest.raises(TypeError):
        EquosClient("https://api.equos.test", KEY)  # type: ignore[arg-type]


def test_a_password_in_the_base_url_never_shows_in_a_repr() -> None:
    from avatarsync.providers import EquosClient
    from avatarsync.secret import Secret

    client = EquosClient("https://me:hunter2-PASSWORD@api.example.test", Secret("k" * 12))
    try:
        assert "hunter2" not in repr(client) and "hunter2" not in repr(client._http)
        assert "api.example.test" in repr(client)
    finally:
        asyncio.run(client.aclose())
