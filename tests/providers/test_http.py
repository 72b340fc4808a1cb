"""The request layer's retry, ambiguity and error rules, on httpx.MockTransport."""

from __future__ import annotations

import gc
import random
import weakref
from email.utils import formatdate

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

pytestmark = pytest.mark.anyio

NOW = 1_700_000_000.0  # the clock conftest injects
FACE = {"id": "f1", "identity": "tommy"}


def ok(body: object = FACE, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def fail(status: int, message: str = "nope", **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"statusCode": status, "message": message}, headers=headers)


# -- RetryPolicy on its own ---------------------------------------------------


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(backoff_base=0.25, backoff_cap=8.0)
    rng = random.Random(1)
    for retry, ceiling in [(1, 0.25), (2, 0.5), (3, 1.0), (6, 8.0), (20, 8.0)]:
        delays = {policy.backoff(retry, rng) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered


@pytest.mark.parametrize(
    ("headers", "rate_limited", "expected"),
    [
        ({"retry-after": "7"}, False, 7.0),
        ({"retry-after": "1.5"}, True, 1.5),
        ({"retry-after": formatdate(NOW + 30, usegmt=True)}, False, 30.0),
        ({"retry-after": formatdate(NOW - 30, usegmt=True)}, True, 0.0),  # in the past
        ({"retry-after": "86400"}, True, 60.0),  # hostile: capped
        ({"retry-after": "soon"}, True, None),  # unreadable: fall back to backoff
        ({"x-ratelimit-reset": str(int(NOW) + 12)}, True, 12.0),
        ({"x-ratelimit-reset": "5"}, True, 5.0),  # a delta, not a date in 1970
        ({"x-ratelimit-reset": str(int(NOW) + 12)}, False, None),  # only for 429
        ({"retry-after": "2", "x-ratelimit-reset": str(int(NOW) + 12)}, True, 2.0),
        ({}, True, None),
    ],
)
def test_server_delay(headers: dict[str, str], rate_limited: bool, expected: float | None) -> None:
    delay = RetryPolicy().server_delay(httpx.Headers(headers), NOW, rate_limited=rate_limited)
    assert delay == (pytest.approx(expected) if expected is not None else None)


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(backoff_base=-1)


# -- status codes -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, BadRequestError),
        (401, AuthError),
        (403, AuthError),
        (404, NotFoundError),
        (409, BadRequestError),
        (422, BadRequestError),
    ],
)
async def test_client_errors_are_typed_and_never_retried(
    make_equos, script, sleeps, status: int, error: type[ApiError]
) -> None:
    handler = script(fail(status, "face is busy", **{"x-request-id": "req-42"}))
    async with make_equos(handler) as client:
        with pytest.raises(error) as caught:
            await client.get(Kind.FACE, "f1")
    assert len(handler.requests) == 1
    assert sleeps.delays == []
    err = caught.value
    assert (err.method, err.path, err.status, err.request_id) == (
        "GET",
        "/v3/faces/f1",
        status,
        "req-42",
    )
    assert "face is busy" in str(err)


async def test_validation_messages_and_body_request_id_are_kept(make_equos, script) -> None:
    body = {
        "message": ["name must be a string", "faceId is required"],
        "meta": {"requestId": "r-9"},
    }
    async with make_equos(script(httpx.Response(400, json=body))) as client:
        with pytest.raises(BadRequestError) as caught:
            await client.create(Kind.CHARACTER, {"name": 3})
    assert caught.value.request_id == "r-9"
    assert caught.value.detail == "name must be a string; faceId is required"


async def test_query_string_is_not_in_the_error_path(make_equos, script) -> None:
    async with make_equos(script(fail(401))) as client:
        with pytest.raises(AuthError) as caught:
            await client.list_all(Kind.BRAIN, client="acme")
    assert caught.value.path == "/v3/brains"
    assert "acme" not in str(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_get_retries_server_errors_then_succeeds(make_equos, script, sleeps, status) -> None:
    handler = script(fail(status), fail(status), ok())
    async with make_equos(handler) as client:
        assert await client.get(Kind.FACE, "f1") == FACE
    assert len(handler.requests) == 3
    assert len(sleeps.delays) == 2
    assert 0.125 <= sleeps.delays[0] <= 0.25 and 0.25 <= sleeps.delays[1] <= 0.5


async def test_server_error_persisting_raises_after_max_attempts(
    make_equos, script, sleeps
) -> None:
    handler = script(fail(500, "boom"))
    async with make_equos(handler, retry=RetryPolicy(max_attempts=3)) as client:
        with pytest.raises(ServerError) as caught:
            await client.get(Kind.VOICE, "v1")
    assert len(handler.requests) == 3
    assert len(sleeps.delays) == 2
    assert caught.value.status == 500 and "after 3 attempts" in str(caught.value)


async def test_rate_limit_persisting_raises_rate_limited(make_equos, script, sleeps) -> None:
    handler = script(fail(429, "slow down", **{"retry-after": "1"}))
    async with make_equos(handler) as client:
        with pytest.raises(RateLimitedError):
            await client.list_all(Kind.FACE)
    assert len(handler.requests) == 5
    assert sleeps.delays == [1.0] * 4


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": formatdate(NOW + 20, usegmt=True)}, 20.0),
        ({"retry-after": "100000"}, 60.0),
        ({"x-ratelimit-reset": str(int(NOW) + 9)}, 9.0),
    ],
)
async def test_429_waits_as_the_server_says(make_equos, script, sleeps, headers, expected) -> None:
    handler = script(fail(429, **headers), ok())
    async with make_equos(handler) as client:
        await client.get(Kind.FACE, "f1")
    assert sleeps.delays == [pytest.approx(expected)]


async def test_retry_after_cap_is_configurable(make_equos, script, sleeps) -> None:
    handler = script(fail(503, **{"retry-after": "3600"}), ok())
    async with make_equos(handler, retry=RetryPolicy(max_retry_after=2.5)) as client:
        await client.get(Kind.FACE, "f1")
    assert sleeps.delays == [2.5]


async def test_ratelimit_reset_on_a_500_is_not_a_retry_hint(make_equos, script, sleeps) -> None:
    handler = script(fail(500, **{"x-ratelimit-reset": str(int(NOW) + 50)}), ok())
    async with make_equos(handler) as client:
        await client.get(Kind.FACE, "f1")
    assert sleeps.delays[0] <= 0.25


# -- non-idempotent writes ----------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_post_with_unknown_outcome_is_ambiguous_after_one_request(
    make_equos, script, sleeps, status
) -> None:
    handler = script(fail(status, "gateway trouble"), ok(status=201))
    async with make_equos(handler) as client:
        with pytest.raises(AmbiguousWriteError) as caught:
            await client.create(Kind.BRAIN, {"instructions": "hi"})
    assert handler.methods == ["POST /v3/brains"]
    assert sleeps.delays == []
    assert (caught.value.status, caught.value.method, caught.value.path) == (
        status,
        "POST",
        "/v3/brains",
    )


@pytest.mark.parametrize(
    "exc",
    [
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset"),
        httpx.ReadTimeout("timed out"),
        httpx.WriteError("broken pipe"),
    ],
)
async def test_post_dropped_after_sending_is_ambiguous(make_equos, script, sleeps, exc) -> None:
    handler = script(exc, ok(status=201))
    async with make_equos(handler) as client:
        with pytest.raises(AmbiguousWriteError) as caught:
            await client.add_document("kb1", name="faq", description=None, mime_type="text/plain")
    assert len(handler.requests) == 1
    assert sleeps.delays == []
    assert type(exc).__name__ in str(caught.value)
    assert isinstance(caught.value.__cause__, type(exc))


@pytest.mark.parametrize("status", [429, 503])
async def test_post_refused_unprocessed_is_retried(make_equos, script, sleeps, status) -> None:
    created = {"id": "b1", "instructions": "hi"}
    handler = script(fail(status, **{"retry-after": "2"}), ok(created, status=201))
    async with make_equos(handler) as client:
        assert await client.create(Kind.BRAIN, {"instructions": "hi"}) == created
    assert handler.methods == ["POST /v3/brains", "POST /v3/brains"]
    assert sleeps.delays == [2.0]


@pytest.mark.parametrize(
    "exc", [httpx.ConnectError("refused"), httpx.ConnectTimeout("slow"), httpx.PoolTimeout("busy")]
)
async def test_post_that_never_left_is_retried(make_equos, script, sleeps, exc) -> None:
    handler = script(exc, exc, ok({"id": "c1"}, status=201))
    async with make_equos(handler) as client:
        assert await client.create(Kind.CHARACTER, {"name": "Tommy"}) == {"id": "c1"}
    assert len(handler.requests) == 3
    assert len(sleeps.delays) == 2


async def test_connect_failures_persisting_raise_transport_error(make_equos, script) -> None:
    handler = script(httpx.ConnectError("[Errno 111] Connection refused"))
    async with make_equos(handler, retry=RetryPolicy(max_attempts=2)) as client:
        with pytest.raises(TransportError) as caught:
            await client.create(Kind.FACE, {"identity": "tommy"})
    assert len(handler.requests) == 2
    assert "Connection refused" in str(caught.value)
    assert not isinstance(caught.value, AmbiguousWriteError)


@pytest.mark.parametrize(
    "exc", [httpx.ReadTimeout("timed out"), httpx.RemoteProtocolError("dropped")]
)
async def test_idempotent_calls_retry_after_dropped_connections(make_equos, script, exc) -> None:
    handler = script(exc, ok())
    async with make_equos(handler) as client:
        assert await client.delete(Kind.FACE, "f1") == FACE
    assert handler.methods == ["DELETE /v3/faces/f1"] * 2


async def test_stop_conversation_is_an_idempotent_post(make_equos, script) -> None:
    stopped = {"id": "cv1", "status": "ended"}
    handler = script(fail(502), httpx.ReadError("reset"), ok(stopped, status=201))
    async with make_equos(handler) as client:
        assert await client.stop_conversation("cv1") == stopped
    assert handler.methods == ["POST /v3/conversations/cv1/stop"] * 3


async def test_start_conversation_is_not_idempotent(make_equos, script) -> None:
    handler = script(fail(504))
    async with make_equos(handler) as client:
        with pytest.raises(AmbiguousWriteError):
            await client.start_conversation({"name": "s", "characterId": "c1"})
    assert len(handler.requests) == 1


async def test_unreadable_2xx_to_a_post_is_ambiguous(make_equos, script) -> None:
    handler = script(httpx.Response(201, text="<html>oops</html>"))
    async with make_equos(handler) as client:
        with pytest.raises(AmbiguousWriteError):
            await client.create(Kind.FACE, {"identity": "tommy"})
        with pytest.raises(ServerError) as caught:
            await client.get(Kind.FACE, "f1")
    assert not isinstance(caught.value, AmbiguousWriteError)
    assert len(handler.requests) == 2


async def test_errors_are_not_exception_groups_when_a_page_fails(make_equos, script) -> None:
    def pages(request: httpx.Request) -> httpx.Response:
        if request.url.params["skip"] == "0":
            return ok(
                {"skip": 0, "take": 50, "total": 120, "faces": [{"id": str(i)} for i in range(50)]}
            )
        return fail(403, "forbidden")

    async with make_equos(script(pages)) as client:
        with pytest.raises(AuthError):
            await client.list_all(Kind.FACE)


def test_https_origins_verify_certificates_and_plain_http_loads_none() -> None:
    import ssl

    from avatarsync.providers.http import _tls_verification

    verified = _tls_verification("https://api.equos.ai")
    assert isinstance(verified, ssl.SSLContext)
    assert verified.verify_mode is ssl.CERT_REQUIRED and verified.check_hostname
    assert _tls_verification("https://api.avatarium.ai/v1") is verified  # loaded once
    assert _tls_verification("http://127.0.0.1:8080") is False


async def test_an_answer_is_freed_with_its_last_reference_not_by_the_garbage_collector(
    make_equos, script
) -> None:
    """A bulk read runs with the collector off: a page body kept alive by a
    reference cycle would stay in memory for the whole plan (26 MB at 10,000)."""
    answers: list[weakref.ref[httpx.Response]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        response = ok()
        answers.append(weakref.ref(response))
        return response

    async with make_equos(script(answer)) as client:
        gc.disable()
        try:
            assert (await client.get(Kind.FACE, "f1"))["id"] == "f1"
            assert answers and answers[0]() is None
        finally:
            gc.enable()
