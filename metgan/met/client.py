"""The async Met Collection API client.

One aiohttp session per client; at most ``concurrency`` requests in flight; every request (API
and image host alike) takes a token from one bucket at the task's share of the deployment's rate
(shared by the clients a thread creates one after another, see ``shared_limiter``).
Transient failures (5xx, 429, timeouts, connection resets, truncated or malformed bodies) are
retried with jittered exponential back-off, honouring Retry-After. The CDN's HTML block page,
whether it comes as a 403 or a 200, is never parsed as data: it pauses the bucket for a cool-down
and lowers the rate, which then recovers slowly (:class:`~metgan.met.ratelimit.AdaptiveRate`).
A 404 or a ``{"message": "Not a valid object"}`` raises ObjectGoneError, never retried.
Redirects are followed by hand (at most ``urlpolicy.MAX_REDIRECTS``), every hop checked by a
:class:`~metgan.urlpolicy.UrlPolicy`: API requests never leave the API's scheme, host and port;
image downloads pass their own policy (``METGAN_IMAGE_HOSTS``).

Use it as an async context manager::

    async with MetClient.from_settings(settings) as client:
        record = await client.get_object(436535)
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
import yarl

from metgan.config import Settings, get_settings
from metgan.errors import MetApiError, MetBlockedError, MetRetryableError, ObjectGoneError
from metgan.met import parse
from metgan.met.ratelimit import RATE_MARGIN, AdaptiveRate, TokenBucket, burst_for, shared_limiter
from metgan.urlpolicy import REDIRECT_STATUSES, UrlPolicy, excerpt, forbidden_host, redact_url

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_JSON_BYTES = 64 * 1024 * 1024  # the full /objects listing is about 3.4 MB
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 521, 522, 523, 524})
TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)


class ForbiddenAddress(Exception):
    """A host name resolved to a link-local or cloud metadata address (see urlpolicy)."""


class PublicResolver(aiohttp.ThreadedResolver):
    """The system resolver, refusing a name that resolves to a link-local or metadata address: a
    listed host whose DNS points at 169.254.169.254 must not reach the VM's credentials."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        found = await super().resolve(host, port, family)
        for entry in found:
            reason = forbidden_host(entry["host"])
            if reason:
                raise ForbiddenAddress(f"host {host!r} resolves to {entry['host']}, {reason}: refused")
        return found


async def read_body(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body of ``response``, at most ``limit`` bytes.

    ``StreamReader.read(n)`` returns what is buffered, not ``n`` bytes: the body is read in chunks
    until the end of the stream. A body over ``limit`` (declared or streamed) raises MetApiError
    before it is all in memory; one shorter than its Content-Length, or cut off by the connection,
    raises MetRetryableError.
    """
    declared = response.content_length
    if declared is not None and declared > limit:
        raise MetApiError(f"response from {response.url.host} declares {declared} bytes, over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in response.content.iter_chunked(256 * 1024):
            size += len(chunk)
            if size > limit:
                raise MetApiError(f"response from {response.url.host} is over the limit of {limit} bytes")
            chunks.append(chunk)
    except aiohttp.ClientPayloadError as exc:
        raise MetRetryableError(f"truncated body after {size} bytes: {type(exc).__name__}") from None
    if declared is not None and size < declared:
        raise MetRetryableError(f"truncated body: {size} of {declared} bytes")
    return b"".join(chunks)


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now; None when absent."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


class Attempts:
    """Counts the requests one logical fetch made (retries included)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


class MetClient:
    """Async client for the Met Collection API and its image host (see the module docstring)."""

    def __init__(self, base_url: str, *, rate: float, concurrency: int = 16, timeout: float = 30.0,
                 user_agent: str = "metgan", session: aiohttp.ClientSession | None = None,
                 max_attempts: int = 6, backoff_base: float = 0.5, backoff_cap: float = 30.0,
                 block_patience: float = 1800.0, cooldown_initial: float = 2.0,
                 cooldown_max: float = 300.0, rate_margin: float = RATE_MARGIN, shared_rate: bool = True,
                 max_json_bytes: int = MAX_JSON_BYTES):
        self.base_url = base_url.rstrip("/")
        self.api_policy = UrlPolicy.for_api(self.base_url, MetApiError)
        self.api_policy.check(self.base_url)  # a link-local or metadata host is refused before any request
        self.max_json_bytes = max_json_bytes
        self.concurrency = concurrency
        self.timeout = timeout
        self.user_agent = user_agent
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.block_patience = block_patience
        if shared_rate:
            self.adaptive = shared_limiter(self.base_url, rate, rate_margin)
        else:
            self.adaptive = AdaptiveRate(TokenBucket(rate * rate_margin, burst=burst_for(rate, rate_margin)),
                                         rate * rate_margin)
        self.adaptive.cooldown_initial, self.adaptive.cooldown_max = cooldown_initial, cooldown_max
        self.bucket = self.adaptive.bucket
        self.stats: Counter[str] = Counter()
        self._session = session
        self._own_session = session is None
        self._semaphore = asyncio.Semaphore(concurrency)

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **options: Any) -> MetClient:
        settings = settings or get_settings()
        options.setdefault("rate", settings.task_rate)
        options.setdefault("concurrency", settings.met_concurrency)
        options.setdefault("timeout", settings.met_timeout)
        options.setdefault("user_agent", settings.met_user_agent)
        return cls(settings.met_api_url, **options)

    async def __aenter__(self) -> MetClient:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.concurrency, ttl_dns_cache=300, resolver=PublicResolver())
            self._session = aiohttp.ClientSession(
                connector=connector,
                # ``timeout`` bounds the silence on a connection; a large image may take longer
                # than that in total as long as bytes keep coming (up to four times as long).
                timeout=aiohttp.ClientTimeout(total=self.timeout * 4, sock_connect=min(self.timeout, 10),
                                              sock_read=self.timeout),
                headers={"User-Agent": self.user_agent},
                cookie_jar=aiohttp.CookieJar(unsafe=True),  # the CDN's visitor cookies, kept per session
            )
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("MetClient is used outside 'async with'")
        return self._session

    # -- the retry loop -------------------------------------------------------------------------

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.backoff_cap * 4) + random.uniform(0, self.backoff_base)
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * 2 ** attempt))

    async def request(self, url: str | yarl.URL,
                      handler: Callable[[aiohttp.ClientResponse], Awaitable[T]], *,
                      params: dict[str, str] | None = None, attempts: Attempts | None = None,
                      policy: UrlPolicy | None = None) -> T:
        """GET ``url`` and return ``handler(response)``, retrying what is transient.

        Redirects are followed by hand, each hop checked by ``policy`` (default: the API's own
        host); a refused hop raises the policy's error (MetApiError, or ImageError for images).

        ``handler`` raises MetRetryableError / MetBlockedError for a bad response (see
        ``check_block`` and ``raise_for_status``), ObjectGoneError or anything else to stop.
        Returns the handler's value; raises the last error once retries are exhausted, or
        MetBlockedError when blocks lasted longer than ``block_patience`` seconds.
        """
        attempt = 0
        blocked_since: float | None = None
        while True:
            retry_after: float | None = None
            async with self._semaphore:
                await self.bucket.acquire()
                sent_at = time.monotonic()
                self.stats["requests"] += 1
                if attempts is not None:
                    attempts.count += 1
                try:
                    result = await self._get(url, params, handler, policy or self.api_policy)
                except MetBlockedError as exc:
                    self.stats["blocked"] += 1
                    now = time.monotonic()
                    blocked_since = blocked_since or now
                    if now - blocked_since > self.block_patience:
                        raise MetBlockedError(
                            f"the Met CDN kept blocking for {now - blocked_since:.0f}s: {exc}") from exc
                    self.adaptive.on_block(sent_at, exc.retry_after)
                    continue
                except MetRetryableError as exc:
                    error: MetRetryableError = exc
                    retry_after = exc.retry_after
                except TRANSPORT_ERRORS as exc:
                    kind = type(exc).__name__
                    error = MetRetryableError(f"{kind}: {exc}".rstrip(": ") if str(exc) else kind)
                else:
                    self.adaptive.on_success()
                    return result
            attempt += 1
            self.stats["retries"] += 1
            if attempt >= self.max_attempts:
                self.stats["exhausted"] += 1
                raise MetRetryableError(f"{error} (after {attempt} attempts)", error.retry_after)
            delay = self._backoff(attempt, retry_after)
            log.debug("retrying %s in %.2fs after %s", redact_url(url), delay, error)
            await asyncio.sleep(delay)

    async def _get(self, url: str | yarl.URL, params: dict[str, str] | None,
                   handler: Callable[[aiohttp.ClientResponse], Awaitable[T]], policy: UrlPolicy) -> T:
        """One attempt: GET ``url``, following redirects by hand. aiohttp's own following would
        check nothing: an allowed host answering 302 to an internal address would be fetched."""
        target, query, hops = url, params, 0
        while True:
            try:
                async with self.session.get(target, params=query, allow_redirects=False) as response:
                    if response.status not in REDIRECT_STATUSES:
                        return await handler(response)
                    current, location = str(response.url), response.headers.get("Location")
            except ForbiddenAddress as exc:
                raise policy.error(f"{policy.what} {exc}") from None
            hops += 1
            target, query = self.checked_url(policy.follow(current, location, hops), policy), None
            self.stats["redirects"] += 1
            await self.bucket.acquire()  # a hop is a request to a server like any other

    @staticmethod
    def checked_url(url: str, policy: UrlPolicy) -> yarl.URL:
        """A URL ``policy.check`` returned (already encoded) as aiohttp takes it."""
        try:
            return yarl.URL(url, encoded=True)
        except (ValueError, TypeError):
            raise policy.error(f"not a valid {policy.what}: {excerpt(redact_url(url))}") from None

    # -- response checks shared by handlers -----------------------------------------------------

    @staticmethod
    def check_block(response: aiohttp.ClientResponse, head: bytes = b"") -> None:
        """Raise MetBlockedError for the CDN's block page: a 403 that is not the API's JSON, or an
        HTML page where data was expected (``head``: the first bytes of a 2xx body)."""
        status, content_type = response.status, response.content_type
        blocked = (status == 403 and content_type != "application/json") or (
            200 <= status < 300 and bool(head) and parse.looks_like_html(head))
        if blocked:
            raise MetBlockedError(f"HTTP {status} {content_type or 'no content type'} block page",
                                  retry_after_seconds(response.headers.get("Retry-After")))

    @staticmethod
    def raise_for_status(response: aiohttp.ClientResponse) -> None:
        """Raise MetRetryableError for 429 / 5xx / 403-JSON; MetApiError for other non-2xx but 404."""
        status = response.status
        if status in RETRYABLE_STATUS or status >= 500 or status == 403:
            raise MetRetryableError(f"HTTP {status}",
                                    retry_after_seconds(response.headers.get("Retry-After")))
        if status >= 400 and status != 404:
            raise MetApiError(f"HTTP {status} for {redact_url(response.url)}")

    async def _json(self, response: aiohttp.ClientResponse) -> Any:
        self.check_block(response)
        body = await read_body(response, self.max_json_bytes)
        self.check_block(response, body)
        if response.status == 404:
            message = parse.error_message(body) or "HTTP 404"
            raise ObjectGoneError(message)
        self.raise_for_status(response)
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise MetRetryableError(f"malformed or truncated JSON ({len(body)} bytes)") from None

    # -- API ----------------------------------------------------------------------------------

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        return await self.request(f"{self.base_url}/{path.lstrip('/')}", self._json, params=params)

    async def get_object(self, object_id: int, *, attempts: Attempts | None = None) -> dict[str, Any]:
        """One object record; ObjectGoneError for 404 and "Not a valid object"."""
        async def handler(response: aiohttp.ClientResponse) -> dict[str, Any]:
            try:
                body = await self._json(response)
            except ObjectGoneError as exc:
                raise ObjectGoneError(f"object {object_id}: {exc}") from None
            message = parse.error_message(body)
            if message is not None:
                if parse.is_gone_message(message):
                    raise ObjectGoneError(f"object {object_id}: {message}")
                raise MetRetryableError(f"object {object_id}: API message {message!r}")
            if not isinstance(body, dict) or parse.int_or_none(body.get("objectID")) != object_id:
                raise MetRetryableError(f"object {object_id}: body is not its record")
            return body

        return await self.request(f"{self.base_url}/objects/{int(object_id)}", handler, attempts=attempts)

    async def list_object_ids(self, *, metadata_date: str | None = None,
                              department_ids: list[int] | None = None) -> list[int]:
        """``GET /objects`` (optionally since ``metadata_date`` / in departments): sorted ids."""
        params: dict[str, str] = {}
        if metadata_date:
            params["metadataDate"] = metadata_date
        if department_ids:
            params["departmentIds"] = "|".join(str(int(d)) for d in department_ids)
        return parse.parse_id_listing(await self._listing("objects", params))

    async def search(self, query: str, *, has_images: bool = True) -> list[int]:
        """``GET /search?q=...&hasImages=true``: sorted ids (empty when nothing matches)."""
        params = {"q": query}
        if has_images:
            params["hasImages"] = "true"
        return parse.parse_id_listing(await self._listing("search", params))

    async def _listing(self, path: str, params: dict[str, str]) -> Any:
        try:
            return await self.get_json(path, params)
        except ObjectGoneError as exc:
            raise MetApiError(f"/{path} answered 404: {exc}") from None


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from sync code (Airflow tasks, the CLI); safe inside a running loop too."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(factory())
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target, name="metgan-met-client")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]
