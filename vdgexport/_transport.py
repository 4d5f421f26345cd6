"""HTTP for the SensePluginManager: one request, a size cap, typed errors (retries: `_retry`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from urllib.parse import quote

import anyio
import httpx

from ._exceptions import (
    AuthenticationError,
    ClientClosedError,
    HTTPStatusError,
    ProtocolError,
    TransportError,
)
from ._retry import RetryableStatus, parse_retry_after
from ._tls import certificate_refused

__all__ = ["HttpTransport", "query", "read_capped", "safe_url"]

logger = logging.getLogger("vdgexport")

#: Statuses that a retry may heal.
_TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Chunks read at most after closing an abandoned body (a closed connection yields none).
_DRAIN_CHUNKS = 4


def query(params: Mapping[str, str]) -> str:
    """Percent-encode every value completely (``&``, ``<``, ``>``, space as ``%20``).

    The vendor asks for the whole value to be URL-encoded; ``+`` for a space is a form
    convention the server is not documented to understand, so it is never used.
    """
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


class HttpTransport:
    """GETs and POSTs to ``{base_url}/{path}`` returning the body, or raising a typed error.

    One attempt per call: no retries here (see `retrying`). Every call is bounded by
    ``timeout`` seconds as a whole, whatever the transport (``httpx.ASGITransport`` ignores
    httpx's own timeouts), and a body is read only up to ``max_bytes``.
    """

    def __init__(
        self, http: httpx.AsyncClient, base_url: str, *, timeout: float, max_bytes: int
    ) -> None:
        self._http = http
        # Credentials go in the client's auth (see `Client`), never in a URL that is sent,
        # logged (httpx logs request URLs) or shown.
        self._base = safe_url(httpx.URL(base_url)).rstrip("/")
        self._timeout = timeout
        self._max_bytes = max_bytes

    @property
    def safe_base_url(self) -> str:
        """The base URL without credentials: what logs and errors show."""
        return self._base

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None = None,
        *,
        content: bytes | None = None,
        authenticate: bool = True,
    ) -> bytes:
        """One request; the body of a 2xx answer, else a typed `VdgError`.

        ``authenticate=False`` sends it without the client's `httpx.Auth` (``/info``).
        """
        suffix = f"/{path}?{query(params)}" if params else f"/{path}"
        shown = url = self._base + suffix
        try:
            with anyio.fail_after(self._timeout):
                return await self._exchange(method, url, shown, content, authenticate)
        except TimeoutError as exc:
            raise TransportError(f"no answer within {self._timeout:g} s: {shown}") from exc
        except (httpx.TransportError, OSError) as exc:
            if certificate_refused(exc):
                raise TransportError(
                    f"{shown}: the server's certificate was refused ({exc}); pass "
                    "Client(verify=...) the CA bundle that signed it",
                    certificate_refused=True,
                ) from exc
            raise TransportError(f"{type(exc).__name__} for {shown}: {exc}") from exc
        except httpx.StreamError as exc:
            raise TransportError(f"{type(exc).__name__} for {shown}") from exc
        except RuntimeError as exc:
            if self._http.is_closed:  # `Client.aclose` ran while this request was waiting
                raise ClientClosedError(f"the Client is closed: {shown}") from exc
            raise

    async def _exchange(
        self, method: str, url: str, shown: str, content: bytes | None, authenticate: bool
    ) -> bytes:
        headers = {"Cache-Control": "no-cache", "Pragma": "no-cache"}
        if content is not None:
            headers["Content-Type"] = "text/xml; charset=utf-8"
        auth = httpx.USE_CLIENT_DEFAULT if authenticate else None
        async with self._http.stream(
            method, url, headers=headers, content=content, auth=auth
        ) as response:
            logger.debug("%s %s -> %d", method, shown, response.status_code)
            _raise_for_status(response, shown)
            body = await read_capped(response, self._max_bytes, shown)
        if "html" in response.headers.get("content-type", "").lower():
            raise ProtocolError(f"an HTML page, not XML, from {shown} (a proxy's error page?)")
        return body


async def read_capped(response: httpx.Response, cap: int, shown: str) -> bytes:
    """The body of ``response``, read only up to ``cap`` bytes, else `ProtocolError`.

    Past the cap the connection is closed: the rest of the body is never read.
    """
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise ProtocolError(f"answer of {declared} bytes exceeds the cap of {cap} bytes")
    chunks: list[bytes] = []
    size = 0
    body = response.aiter_bytes()
    async for chunk in body:
        size += len(chunk)
        if size > cap:
            await _abandon(response, body)
            raise ProtocolError(f"answer from {shown} exceeds the cap of {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _abandon(response: httpx.Response, body: AsyncIterator[bytes]) -> None:
    """Close the connection mid-body, and let httpx's chain of async generators end.

    Leaving the generators suspended would have trio warn when they are collected
    (httpx issue 3686); after ``aclose`` the next read ends them without reading more.
    """
    await response.aclose()
    with contextlib.suppress(Exception):  # StopAsyncIteration, or the closed stream's error
        for _ in range(_DRAIN_CHUNKS):
            await body.__anext__()


def safe_url(url: httpx.URL) -> str:
    """``url`` without credentials, query or fragment: what may be logged or shown."""
    return str(url.copy_with(username=None, password=None, query=None, fragment=None))


def _raise_for_status(response: httpx.Response, shown: str) -> None:
    status = response.status_code
    if status < 300:
        return
    message = f"HTTP {status} {response.reason_phrase} from {shown}".rstrip()
    if status in (401, 403):
        raise AuthenticationError(message, status_code=status)
    if status in _TRANSIENT_STATUSES or status >= 500:
        hint = parse_retry_after(response.headers.get("retry-after", ""))
        raise RetryableStatus(message, status_code=status, retry_after=hint)
    raise HTTPStatusError(message, status_code=status)
