"""The request layer every platform client stands on: retries, limits, errors.

Provider clients (`equos`, `avatarium`) describe *what* to call; this module
decides *how*: one `httpx.AsyncClient`, a semaphore bounding in-flight
requests, timeouts, a `RetryPolicy`, and the translation of every failure into
the `avatarsync.errors.ApiError` hierarchy. It is the only place (with its
sibling provider modules) that imports httpx.

Retry rules (see docs/client.md):
- 429 and 503 mean "not processed": any request may be re-sent.
- Other 5xx and failures after the request may have left (read timeout,
  dropped connection) are retried only for idempotent calls. For a
  non-idempotent POST the outcome is unknown, so `AmbiguousWriteError` is
  raised at once and the request is never re-sent: the apply layer looks the
  resource up instead of risking a duplicate.
- Connect failures (nothing was sent) are retried for every call.
- Other 4xx are never retried.

The API key never sits in an object that can be printed: it is kept as a
`Secret` and revealed by `_AuthTransport` on a private copy of each request,
just before the bytes leave. Requests attached to errors, logs and counters
never carry it, and transport failures are re-raised from a fresh, traceback-
free copy of the httpx exception so no frame holding the key is reachable.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from avatarsync._version import __version__
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
from avatarsync.progress import EventSink, InFlight, Paced, Retrying
from avatarsync.secret import MASK, Secret, scrub

if TYPE_CHECKING:
    import ssl

__all__ = [
    "IDEMPOTENT_METHODS",
    "ErrorInfo",
    "PlatformClient",
    "RatePacer",
    "RestClient",
    "RetryPolicy",
    "Sleep",
    "decode_error",
    "error_for_status",
]

logger = logging.getLogger("avatarsync.providers")
_PACING_SHOWN: Final = 0.5  # shorter holds are routine at a high rate; not worth a line

Sleep = Callable[[float], Awaitable[None]]

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"})

# Marks a request that must carry the API key; `_AuthTransport` strips it.
_AUTH_EXTENSION: Final = "avatarsync.authenticate"
# Epoch seconds are larger than this; smaller X-RateLimit-Reset values are deltas.
_EPOCH_THRESHOLD: Final = 1_000_000_000
_MAX_MESSAGE: Final = 500  # characters of a server's error text kept in a message


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before re-sending a request.

    `backoff_base`/`backoff_cap` shape the exponential backoff (with jitter)
    used when the server gives no hint; `max_retry_after` caps what a
    `Retry-After`/`X-RateLimit-Reset` header may ask for, so a hostile or
    broken header cannot stall a CI job for hours.
    """

    max_attempts: int = 5
    backoff_base: float = 0.25
    backoff_cap: float = 8.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.backoff_base, self.backoff_cap, self.max_retry_after) < 0:
            raise ValueError("delays cannot be negative")

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Delay before the `retry`-th re-send (1-based): "equal jitter", so
        clients that failed together spread out but never retry instantly."""
        ceiling: float = min(self.backoff_cap, self.backoff_base * 2.0 ** (retry - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)

    def server_delay(
        self, headers: Mapping[str, str], now: float, *, rate_limited: bool
    ) -> float | None:
        """The wait the server asked for, capped; None when it did not ask.

        `Retry-After` (delta-seconds or HTTP-date) always counts.
        `X-RateLimit-Reset` (unix seconds; small values taken as a delta) only
        for a 429: Avatarium sends it on every answer, including 5xx, where it
        says nothing about when to retry.
        """
        delay = _parse_retry_after(headers.get("retry-after"), now)
        if delay is None and rate_limited:
            delay = _parse_reset(headers.get("x-ratelimit-reset"), now)
        if delay is None:
            return None
        return min(max(delay, 0.0), self.max_retry_after)


def _parse_retry_after(value: str | None, now: float) -> float | None:
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return when.timestamp() - now  # naive dates are parsed as UTC (RFC 9110)
    return seconds if math.isfinite(seconds) else None


def _parse_reset(value: str | None, now: float) -> float | None:
    if value is None:
        return None
    try:
        reset = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(reset):
        return None
    return reset - now if reset >= _EPOCH_THRESHOLD else reset


class RatePacer:
    """Spreads requests so that a rate limit the server announces is not hit.

    Servers that limit requests say so on every answer (`X-RateLimit-Limit`
    per minute, `X-RateLimit-Remaining`): this mirrors their token bucket
    from those headers and, once it is empty, starts each request only when
    a token is due, instead of discovering the limit through 429s. A server
    that sends no such headers is never paced.
    """

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.rate: float | None = None  # tokens per second
        self.capacity = 0.0
        self.tokens = 0.0
        self._at = clock()

    def observe(self, headers: Mapping[str, str]) -> None:
        limit = _number(headers.get("x-ratelimit-limit"))
        remaining = _number(headers.get("x-ratelimit-remaining"))
        if limit is None or limit <= 0:
            return
        self._refill()
        if self.rate is None:
            self.tokens = limit if remaining is None else remaining
        self.rate, self.capacity = limit / 60.0, limit
        if remaining is not None:
            # Answers overtake one another: keep the lower of the two views.
            self.tokens = min(self.tokens, remaining)

    def reserve(self) -> float:
        """Take a token now (so concurrent callers queue behind it); returns
        the seconds to wait before the request may start."""
        if self.rate is None:
            return 0.0
        self._refill()
        self.tokens -= 1
        if self.tokens >= 0:
            return 0.0
        return -self.tokens / self.rate

    async def acquire(self) -> float:
        """Wait until a request may start; returns the seconds waited."""
        wait = self.reserve()
        if wait > 0:
            await self._sleep(wait)
        return wait

    def _refill(self) -> None:
        now = self._clock()
        if self.rate is not None:
            self.tokens = min(self.capacity, self.tokens + (now - self._at) * self.rate)
        self._at = now


def _tls_verification(base_url: str) -> ssl.SSLContext | bool:
    """What verifies TLS for `base_url`: certificates are loaded only for
    https, and once per process (each load of the CA bundle took 95-140 ms
    per client here, for a plain-HTTP emulator too)."""
    if urlsplit(base_url).scheme != "https":
        return False  # plain HTTP never does TLS (and redirects are never followed)
    return _verified_context()


@functools.cache
def _verified_context() -> ssl.SSLContext:
    return httpx.create_ssl_context()  # honours SSL_CERT_FILE / SSL_CERT_DIR, as httpx does


def _number(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


@dataclass(frozen=True)
class ErrorInfo:
    """What an error answer says about itself."""

    message: str
    code: str | None = None
    request_id: str | None = None


def decode_error(response: httpx.Response) -> ErrorInfo:
    """Read the message, code and request id from an error answer.

    Understands Avatarium's `{"error": {code, message}, "meta": {requestId}}`,
    the NestJS-style `{"message": str | [str], "error": str}` Equos answers
    with, and falls back to the (truncated) text.
    """
    request_id = response.headers.get("x-request-id")
    code: str | None = None
    message = ""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        meta = body.get("meta")
        if request_id is None and isinstance(meta, dict) and isinstance(meta.get("requestId"), str):
            request_id = meta["requestId"]
        error = body.get("error")
        if isinstance(error, dict):
            code = error.get("code") if isinstance(error.get("code"), str) else None
            message = _text(error.get("message"))
        else:
            message = _text(body.get("message")) or _text(error)
    elif body is not None:
        message = _text(body)
    if not message:
        message = response.text.strip() or response.reason_phrase or "no message"
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"
    return ErrorInfo(scrub(message), code, request_id)


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "; ".join(str(item) for item in value)
    return ""


def error_for_status(
    status: int, info: ErrorInfo, *, method: str, path: str, retries: int = 0
) -> ApiError:
    """The typed error for a final (non-retried or exhausted) error status."""
    message = f"{info.code}: {info.message}" if info.code else info.message
    if retries:
        message += f" (after {retries + 1} attempts)"
    cls: type[ApiError]
    if status in (401, 403):
        cls = AuthError
    elif status == 404:
        cls = NotFoundError
    elif status == 429:
        cls = RateLimitedError
    elif status >= 500:
        cls = ServerError
    elif 400 <= status < 500:
        cls = BadRequestError  # 400, 409, 422 and the rarer client errors alike
    else:
        cls = ApiError
        message = f"unexpected status: {message}"
    error = cls(message, method=method, path=path, status=status, request_id=info.request_id)
    # ApiError has no field for the platform's error code yet; keep it reachable.
    error.code = info.code
    return error


class _AuthTransport(httpx.AsyncBaseTransport):
    """Adds the auth header to a private copy of marked requests.

    The copy lives only inside this call: the request httpx attaches to
    responses and exceptions is the caller's original, which has no key.
    """

    def __init__(
        self, inner: httpx.AsyncBaseTransport, header: str, scheme: str, key: Secret | None
    ) -> None:
        self._inner = inner
        self._header = header
        self._scheme = scheme
        self._key = key

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if _AUTH_EXTENSION not in request.extensions:
            return await self._inner.handle_async_request(request)
        extensions = {k: v for k, v in request.extensions.items() if k != _AUTH_EXTENSION}
        headers = request.headers.copy()
        if self._key:
            value = self._key.reveal()
            headers[self._header] = f"{self._scheme} {value}" if self._scheme else value
        authed = httpx.Request(
            request.method,
            request.url,
            headers=headers,
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(authed)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __repr__(self) -> str:
        return f"<_AuthTransport {self._header}: {MASK}>"


@dataclass(frozen=True)
class _Failure:
    """A transport failure, already stripped of anything that could hold the key."""

    message: str
    unsent: bool  # certainly never reached the server
    retryable: bool
    cause: httpx.RequestError


# Failures that happen before a single byte of the request is written.
_UNSENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
# Our own mistakes: re-sending cannot help.
_FATAL: Final = (httpx.UnsupportedProtocol, httpx.LocalProtocolError)


def _describe(exc: httpx.RequestError, method: str, redacted_url: str) -> _Failure:
    text = scrub(str(exc)) or "no detail"
    message = f"{type(exc).__name__}: {text}"
    # A fresh exception of the same type and message, never raised, so it has no
    # traceback: the original's frames (httpcore, _AuthTransport) hold the key.
    try:
        cause = type(exc)(message)
    except TypeError:
        cause = httpx.TransportError(message)
    cause.request = httpx.Request(method, redacted_url)
    return _Failure(
        message=message,
        unsent=isinstance(exc, _UNSENT),
        retryable=not isinstance(exc, _FATAL),
        cause=cause,
    )


def _encode(value: object) -> object:
    """JSON hook: secrets in a body (BYOK keys) are revealed only here."""
    if isinstance(value, Secret):
        return value.reveal()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


class RestClient:
    """An httpx client with bounded concurrency, retries and typed errors.

    `max_concurrency` is the one limit: a semaphore around every attempt (not
    around backoff sleeps, so a waiting retry frees its slot), mirrored in the
    connection pool size. `transport`, `sleep`, `rng` and `clock` are seams
    for tests. Every attempt is counted under "METHOD /path/{template}".
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: Secret | None,
        auth_header: str,
        auth_scheme: str = "",
        max_concurrency: int = 10,
        timeout: float = 30.0,
        connect_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        on_event: EventSink | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if api_key is not None and not isinstance(api_key, Secret):
            raise TypeError("api_key must be an avatarsync.secret.Secret")
        self.base_url = base_url.rstrip("/")
        self.retry = retry if retry is not None else RetryPolicy()
        self.max_concurrency = max_concurrency
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self.pacer = RatePacer(sleep=sleep)
        self._counts: Counter[str] = Counter()
        # Retries, pacing and requests in flight are reported here (the CLI's
        # progress display); None costs nothing per request.
        self.on_event = on_event
        self._in_flight = 0
        if transport is None:
            limits = httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            )
            transport = httpx.AsyncHTTPTransport(
                limits=limits, retries=0, verify=_tls_verification(self.base_url)
            )
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            transport=_AuthTransport(transport, auth_header, auth_scheme, api_key),
            timeout=httpx.Timeout(timeout, connect=min(connect_timeout, timeout)),
            headers={"user-agent": f"avatarsync/{__version__}", "accept": "application/json"},
            follow_redirects=False,  # a redirect would carry the key to another origin
        )

    def __repr__(self) -> str:
        return f"<RestClient {_redact(httpx.URL(self.base_url))} requests={self.total_requests}>"

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def request_counts(self) -> Mapping[str, int]:
        """Attempts made so far by "METHOD template" (a snapshot)."""
        return MappingProxyType(dict(self._counts))

    @property
    def total_requests(self) -> int:
        return sum(self._counts.values())

    def reset_counts(self) -> None:
        self._counts.clear()

    async def request(
        self,
        method: str,
        template: str,
        *,
        path_params: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        authenticate: bool = True,
        url: str | None = None,
    ) -> httpx.Response:
        """Send one logical call (with retries) and return its 2xx answer.

        `template` is both the path ("/v3/faces/{id}", filled from
        `path_params`, each value URL-quoted) and the counting key. `url`
        overrides the target with an absolute URL (e.g. a presigned upload);
        errors then show only its path, never its query. `idempotent`
        defaults from the method; pass True for POSTs that are safe to repeat.
        """
        method = method.upper()
        path = (
            template.format_map({k: quote(v, safe="") for k, v in path_params.items()})
            if path_params
            else template
        )
        send_headers = dict(headers or {})
        if json_body is not None:
            send_headers.setdefault("content-type", "application/json")

        def build() -> httpx.Request:
            # The body is encoded here, per attempt, so the revealed bytes of a
            # secret it holds never sit in a frame that an error traceback keeps.
            body = content
            if json_body is not None:
                body = json.dumps(json_body, default=_encode, separators=(",", ":")).encode()
            return self._client.build_request(
                method,
                url if url is not None else path,
                params=params,
                content=body,
                headers=send_headers,
                extensions={_AUTH_EXTENSION: True} if authenticate else None,
            )

        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        return await self._send(build, count_key=f"{method} {template}", idempotent=idempotent)

    async def request_json(
        self,
        method: str,
        template: str,
        *,
        envelope: str | None = None,
        expect: type | None = None,
        **kwargs: Any,
    ) -> Any:
        """`request`, then the decoded JSON body (None for an empty body).

        With `envelope`, the body must be an object holding that key, whose
        value is returned (Avatarium's `{"data": …, "meta": …}`). With
        `expect`, the result must be of that type (e.g. `dict`). An answer
        that fails these checks is a `ServerError`, or an `AmbiguousWriteError`
        for a non-idempotent call: the write may have happened.
        """
        response = await self.request(method, template, **kwargs)
        if not response.content and envelope is None and expect is None:
            return None
        idempotent = kwargs.get("idempotent")
        try:
            data = response.json()
        except (ValueError, UnicodeDecodeError):
            raise _unreadable(response, idempotent, "the answer is not JSON") from None
        if envelope is not None:
            if not isinstance(data, dict) or envelope not in data:
                raise _unreadable(response, idempotent, f"the answer has no {envelope!r}")
            data = data[envelope]
        if expect is not None and not isinstance(data, expect):
            raise _unreadable(
                response, idempotent, f"expected {expect.__name__}, got {type(data).__name__}"
            )
        return data

    def count(self, key: str) -> None:
        """Count a request made outside this layer (e.g. a WebSocket handshake)."""
        self._counts[key] += 1

    async def _send(
        self, build: Callable[[], httpx.Request], *, count_key: str, idempotent: bool
    ) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            request = build()
            method = request.method
            shown = request.url.path  # never the query, never the host
            failure: _Failure | None = None
            response: httpx.Response | None = None
            sink = self.on_event
            delay = self.pacer.reserve()
            if delay > 0:
                if sink is not None and delay >= _PACING_SHOWN:
                    sink(Paced(method, shown, delay))
                await self._sleep(delay)
            async with self._semaphore:
                self._counts[count_key] += 1
                started = time.perf_counter()
                if sink is not None:
                    self._in_flight += 1
                    sink(InFlight(self._in_flight))
                try:
                    response = await self._client.send(request)
                    # httpx binds the (already read) stream to its response: a
                    # reference cycle that keeps every page's body alive until
                    # the garbage collector runs, which a bulk read defers.
                    # A plain stream of the same bytes lets it go with the answer.
                    response.stream = httpx.ByteStream(response.content)
                except httpx.RequestError as exc:
                    failure = _describe(exc, method, _redact(request.url))
                finally:
                    if sink is not None:
                        self._in_flight -= 1
                        sink(InFlight(self._in_flight))
            elapsed_ms = (time.perf_counter() - started) * 1000
            # Decide outside the `except` block, so raised errors carry no
            # implicit __context__ pointing at the original httpx exception.
            if failure is not None:
                logger.debug(
                    "%s %s failed: %s (%.0f ms)", method, shown, failure.message, elapsed_ms
                )
                if not failure.retryable:
                    raise TransportError(
                        failure.message, method=method, path=shown
                    ) from failure.cause
                if not (idempotent or failure.unsent):
                    raise AmbiguousWriteError(
                        f"outcome unknown, not re-sent: {failure.message}",
                        method=method,
                        path=shown,
                    ) from failure.cause
                if attempt >= self.retry.max_attempts:
                    raise TransportError(
                        f"{failure.message} (after {attempt} attempts)", method=method, path=shown
                    ) from failure.cause
                delay = self.retry.backoff(attempt, self._rng)
                reason = failure.message
            else:
                assert response is not None
                status = response.status_code
                self.pacer.observe(response.headers)
                logger.debug("%s %s -> %d (%.0f ms)", method, shown, status, elapsed_ms)
                if 200 <= status < 300:
                    return response
                info = decode_error(response)
                unprocessed = status in (429, 503)  # the server says it did nothing
                if status < 500 and status != 429:
                    raise error_for_status(status, info, method=method, path=shown)
                if not (idempotent or unprocessed):
                    raise AmbiguousWriteError(
                        f"outcome unknown, not re-sent: {info.message}",
                        method=method,
                        path=shown,
                        status=status,
                        request_id=info.request_id,
                    )
                if attempt >= self.retry.max_attempts:
                    raise error_for_status(
                        status, info, method=method, path=shown, retries=attempt - 1
                    )
                hinted = self.retry.server_delay(
                    response.headers, self._clock(), rate_limited=status == 429
                )
                delay = hinted if hinted is not None else self.retry.backoff(attempt, self._rng)
                reason = str(status)
            logger.info(
                "retrying %s %s in %.2f s after %s (attempt %d of %d)",
                method,
                shown,
                delay,
                reason,
                attempt + 1,
                self.retry.max_attempts,
            )
            if sink is not None:
                sink(Retrying(method, shown, reason, delay, attempt + 1, self.retry.max_attempts))
            await self._sleep(delay)


def _unreadable(response: httpx.Response, idempotent: bool | None, message: str) -> ApiError:
    """A 2xx we cannot read. For a write that is ambiguous: it may well have
    happened, we only lost the answer (and with it the new id)."""
    request = response.request
    if idempotent is None:
        idempotent = request.method in IDEMPOTENT_METHODS
    cls = ServerError if idempotent else AmbiguousWriteError
    return cls(
        message,
        method=request.method,
        path=request.url.path,
        status=response.status_code,
        request_id=response.headers.get("x-request-id"),
    )


def _redact(url: httpx.URL) -> str:
    """The URL without query or userinfo (a presigned URL's query is a credential)."""
    parts = urlsplit(str(url))
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class PlatformClient:
    """What every platform client shares: one RestClient, its lifecycle, its counts.

    Subclasses name their auth header; everything else (limits, retries,
    typed errors, key handling) is RestClient's. Use as
    `async with Client(url, Secret(key)) as client:`; safe to share between
    concurrent tasks, at most `max_concurrency` requests in flight at once.
    """

    AUTH_HEADER: ClassVar[str]
    AUTH_SCHEME: ClassVar[str] = ""

    def __init__(
        self,
        base_url: str,
        api_key: Secret,
        *,
        max_concurrency: int = 10,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        on_event: EventSink | None = None,
    ) -> None:
        self._key = api_key
        self._http = RestClient(
            base_url,
            api_key=api_key,
            auth_header=self.AUTH_HEADER,
            auth_scheme=self.AUTH_SCHEME,
            max_concurrency=max_concurrency,
            timeout=timeout,
            retry=retry,
            transport=transport,
            sleep=sleep,
            rng=rng,
            clock=clock,
            on_event=on_event,
        )

    def __repr__(self) -> str:
        shown = _redact(httpx.URL(self._http.base_url))  # never a password in the URL
        return f"<{type(self).__name__} {shown} requests={self.total_requests}>"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def base_url(self) -> str:
        return self._http.base_url

    @property
    def on_event(self) -> EventSink | None:
        """Where retries, pacing, pages read and requests in flight are reported."""
        return self._http.on_event

    @on_event.setter
    def on_event(self, sink: EventSink | None) -> None:
        self._http.on_event = sink

    @property
    def request_counts(self) -> Mapping[str, int]:
        """Requests sent (retries included) by "METHOD /path/{template}"."""
        return self._http.request_counts

    @property
    def total_requests(self) -> int:
        return self._http.total_requests

    def reset_counts(self) -> None:
        self._http.reset_counts()
