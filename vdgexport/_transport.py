"""HTTP for the SensePluginManager: one request, a size cap, typed errors (retries: `_retry`)."""

from __future__ import annotations

import http.cookiejar
import logging
import re
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar
from urllib.parse import quote

import anyio
import httpx

from ._body import ACCEPT_ENCODING, OneChunk, read_capped
from ._exceptions import (
    ERROR_CODES,
    ApiError,
    AuthenticationError,
    ClientClosedError,
    HTTPStatusError,
    ProtocolError,
    TransportError,
)
from ._retry import RetryableStatus, parse_retry_after
from ._tls import certificate_refused

__all__ = ["HttpTransport", "cookie_jar", "parsed_by", "query", "safe_url"]

logger = logging.getLogger("vdgexport")

_T = TypeVar("_T")
#: Statuses that a retry may heal.
_TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


_TOKEN = re.compile(r"[!#-'*+\-.0-9A-Z^-z|~]+")  # RFC 7230 tchar
_COOKIE_OCTETS = re.compile(r"[!#-+\--:<-\[\]-~]*")  # RFC 6265 cookie-octets


class _SendableCookies(http.cookiejar.DefaultCookiePolicy):
    """Keep only cookies that can be sent back: a hostile ``Set-Cookie`` (a name or value
    that is not ASCII) would otherwise break every later request of the client."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        name, value = cookie.name, cookie.value or ""
        sendable = bool(_TOKEN.fullmatch(name)) and bool(_COOKIE_OCTETS.fullmatch(value))
        return sendable and super().set_ok(cookie, request)


def cookie_jar() -> http.cookiejar.CookieJar:
    """The cookie jar of a client: cookies a server sets are kept only if they can be sent.

    A `http.cookiejar.CookieJar` (not `httpx.Cookies`, which httpx would copy into a jar
    of its own, without the policy).
    """
    return http.cookiejar.CookieJar(policy=_SendableCookies())


def query(params: Mapping[str, str]) -> str:
    """Percent-encode every value completely (``&``, ``<``, ``>``, space as ``%20``).

    The vendor asks for the whole value to be URL-encoded; ``+`` for a space is a form
    convention the server is not documented to understand, so it is never used.
    """
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


def parsed_by(parse: Callable[[bytes], _T]) -> Callable[[bytes], Awaitable[_T]]:
    """``parse`` as the coroutine function that `HttpTransport.call` takes."""

    async def run(body: bytes) -> _T:
        return parse(body)

    return run


class HttpTransport:
    """GETs and POSTs to ``{base_url}/{path}`` returning the body, or raising a typed error.

    One attempt per call: no retries here (see `_retry.retrying`). Every call is bounded by
    ``timeout`` seconds as a whole, whatever the transport (``httpx.ASGITransport`` ignores
    httpx's own timeouts), and a body is read only up to ``max_bytes``.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        *,
        timeout: float,
        max_bytes: int,
        renew: Callable[[httpx.Request], bool] | None = None,
    ) -> None:
        self._http = http
        self._renew = renew
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
        body, _ = await self._request(method, path, params, content, authenticate)
        return body

    async def call(
        self,
        method: str,
        path: str,
        params: Mapping[str, str],
        parse: Callable[[bytes], Awaitable[_T]],
        *,
        content: bytes | None = None,
    ) -> _T:
        """One request, its answer parsed by ``parse``.

        With a session login (``renew``), an `ApiError` whose code VDG Sense does not
        document may be an expired session: the session is renewed and the request repeated
        once; the second answer stands.
        """
        body, sent = await self._request(method, path, params, content, True)
        try:
            return await parse(body)
        except ApiError as exc:
            if exc.code in ERROR_CODES or self._renew is None or not self._renew(sent):
                raise
            logger.info("undocumented error %d with a session; repeating once", exc.code)
        body, _ = await self._request(method, path, params, content, True)
        return await parse(body)

    async def _request(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        content: bytes | None,
        authenticate: bool,
    ) -> tuple[bytes, httpx.Request]:
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
        except (httpx.HTTPError, httpx.StreamError) as exc:  # the answer broke off
            raise TransportError(f"{type(exc).__name__} for {shown}") from exc
        except RuntimeError as exc:
            if self._http.is_closed:  # `Client.aclose` ran while this request was waiting
                raise ClientClosedError(f"the Client is closed: {shown}") from exc
            raise

    async def _exchange(
        self, method: str, url: str, shown: str, content: bytes | None, authenticate: bool
    ) -> tuple[bytes, httpx.Request]:
        headers = {
            "Cache-Control": "no-cache",
            "Pragma": "no-cache",
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        if content is not None:
            headers["Content-Type"] = "text/xml; charset=utf-8"
        auth = httpx.USE_CLIENT_DEFAULT if authenticate else None
        request = self._http.build_request(method, url, headers=headers)
        # httpx gives a GET an empty body that is an async generator too: replaced as well.
        request.stream = OneChunk(content or b"")
        if content is not None:
            request.headers["Content-Length"] = str(len(content))
        response = await self._http.send(request, auth=auth, stream=True)
        try:
            logger.debug("%s %s -> %d", method, shown, response.status_code)
            _raise_for_status(response, shown, self._base)
            body = await read_capped(response, self._max_bytes, shown)
        finally:
            await response.aclose()
        if "html" in response.headers.get("content-type", "").lower():
            raise ProtocolError(f"an HTML page, not XML, from {shown} (a proxy's error page?)")
        return body, response.request


def safe_url(url: httpx.URL) -> str:
    """``url`` without credentials, query or fragment: what may be logged or shown."""
    return str(url.copy_with(username=None, password=None, query=None, fragment=None))


def _raise_for_status(response: httpx.Response, shown: str, base: str) -> None:
    status = response.status_code
    if status < 300:
        return
    message = f"HTTP {status} {response.reason_phrase} from {shown}".rstrip()
    if status == 404 and "/command" in shown:
        message += f" (requests go to {base}/command; is this a VDG Sense server?)"
    if status in (401, 403):
        raise AuthenticationError(message, status_code=status)
    if status in _TRANSIENT_STATUSES or status >= 500:
        hint = parse_retry_after(response.headers.get("retry-after", ""))
        raise RetryableStatus(message, status_code=status, retry_after=hint)
    raise HTTPStatusError(message, status_code=status)
