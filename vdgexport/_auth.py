"""`SessionAuth`: the ``/webservice`` login of VDG Sense as an `httpx.Auth`."""

from __future__ import annotations

import logging
import re
import weakref
from collections.abc import AsyncGenerator, Generator
from xml.sax.saxutils import escape

import anyio
import httpx

from ._body import ACCEPT_ENCODING, OneChunk, read_capped_for_httpx
from ._exceptions import ApiError, AuthenticationError, HTTPStatusError, ProtocolError
from ._manage import check_answer, find_text
from ._transport import safe_url

__all__ = ["MAX_LOGIN_BYTES", "SessionAuth", "client_auth"]

logger = logging.getLogger("vdgexport")

#: Largest login answer read; a larger one is refused with `ProtocolError`.
MAX_LOGIN_BYTES = 64 * 1024
_REFUSED = (401, 403)
#: Login answers that a retry may heal: they go back to the caller as they are.
_TRANSIENT = frozenset({408, 425, 429})
_COOKIE_VALUE = re.compile(r"[!#-+\--:<-\[\]-~]+")  # RFC 6265 cookie-octets
#: A session key in a header as httpcore logs it (``Set-Cookie``, ``Cookie``), any case.
_KEY_IN_TEXT = re.compile(r"(?i)(sessionkey\s*=\s*)[^\s;,'\"\\)\]]+")
#: The loggers that may see a ``Set-Cookie`` or ``Cookie`` header: httpcore logs the
#: response headers at DEBUG.
_HEADER_LOGGERS = (
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.connection",
    "httpcore.proxy",
    "httpcore.socks",
    "httpx",
    "vdgexport",
)


class _RedactSessionKeys(logging.Filter):
    """Replaces session keys in log records by ``<redacted>``: every ``sessionkey=``
    value, and the current key of every `SessionAuth` alive, wherever it appears."""

    def __init__(self) -> None:
        super().__init__("vdgexport.redact")
        self.auths: weakref.WeakSet[SessionAuth] = weakref.WeakSet()

    def filter(self, record: logging.LogRecord) -> bool:
        keys = [auth._key for auth in list(self.auths) if auth._key]
        text = record.getMessage()
        clean = _KEY_IN_TEXT.sub(r"\1<redacted>", text)
        for key in keys:
            clean = clean.replace(key, "<redacted>")
        if clean != text:
            record.msg, record.args = clean, None
        return True


_REDACT = _RedactSessionKeys()


def _guard_logs(auth: SessionAuth) -> None:
    """Keep ``auth``'s session keys out of the records of every logger that may see them."""
    _REDACT.auths.add(auth)
    for name in _HEADER_LOGGERS:
        found = logging.getLogger(name)
        if _REDACT not in found.filters:
            found.addFilter(_REDACT)


class SessionAuth(httpx.Auth):
    """Log in at ``/webservice`` with ``AuthenticateUser`` and carry the ``sessionkey`` cookie.

    The login goes to ``webservice`` beside the request's last path segment (so
    ``http://host/vdg/command`` logs in at ``http://host/vdg/webservice``) before the first
    request. The session key is read from a ``<sessionkey>`` element anywhere in the answer
    (any case), or else from a ``sessionkey`` cookie that the answer sets; the login answer
    is not documented publicly. Requests then carry the cookie ``sessionkey=<key>``.

    When a request is refused with HTTP 401 or 403 (an expired session), it logs in again
    once and repeats the request; concurrent requests share one new login. A refusal right
    after a new login, or a second refusal, goes back to the client, which raises
    `AuthenticationError` (never retried: it ends watches at once). A refused login (HTTP
    401 or 403, or a negative errorcode) or an answer without a key raises
    `AuthenticationError`. With `Client`, an answer with a negative errorcode that VDG
    Sense does not document (an expired session may look like that) gets one new login and
    one repeat; if it comes again, the `ApiError` is raised.

    The password and the session key never appear in a log line (also with DEBUG logging of
    httpx and httpcore, which log the ``Set-Cookie`` header that may carry the key), an
    exception or a ``repr``. Works with `httpx.AsyncClient` only.

    Args:
        username: the VDG Sense user.
        password: the user's password.

    Example:
        ```python
        auth = vdgexport.SessionAuth("operator", os.environ["VDG_PASSWORD"])
        async with vdgexport.Client("http://vdg.example", auth=auth) as client:
            print(await client.list_exports())
        ```
    """

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password
        self._key: str | None = None
        self._lock: anyio.Lock | None = None
        _guard_logs(self)

    @property
    def username(self) -> str:
        """The user this logs in as."""
        return self._username

    def __repr__(self) -> str:
        return f"SessionAuth(username={self._username!r})"

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        """Refuse: the login needs `httpx.AsyncClient` (a lock shared by its tasks)."""
        raise TypeError("SessionAuth works with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Log in if needed, send ``request`` with the session, log in again once if refused.

        A session refused right after a new login is not logged in again: the refusal goes
        back to the client, which raises `AuthenticationError`.
        """
        sent = self._key
        fresh = False
        for attempt in (0, 1):
            if sent is None or attempt:
                if self._lock is None:
                    self._lock = anyio.Lock()
                async with self._lock:
                    if self._key == sent:  # no other request logged in meanwhile
                        answer = yield self._login_request(request)
                        if not await self._accept(answer):
                            return  # a transient failure: the caller sees that answer
                    fresh = True
                    sent = self._key
            if sent is None:  # pragma: no cover - _accept sets it or raises
                raise RuntimeError("no session key after a login")
            _use_session(request, sent)
            response = yield request
            if response.status_code not in _REFUSED or fresh:
                return
            # httpx reads this answer before the next request: read it within a cap.
            await read_capped_for_httpx(response, MAX_LOGIN_BYTES, safe_url(request.url))
            logger.info("session refused (HTTP %d); logging in again", response.status_code)

    def _expire_session(self, request: httpx.Request) -> bool:
        """Forget the session that ``request`` was sent with, so the next request logs in.

        For an answer that may mean an expired session without saying so (an undocumented
        negative errorcode). Returns whether ``request`` carried a session at all (then a
        repeat makes sense); a session already replaced by another request is kept.
        """
        key = _session_of(request)
        if key is None:
            return False
        if key == self._key:
            logger.info("the session may have expired; logging in again")
            self._key = None
        return True

    def _login_request(self, request: httpx.Request) -> httpx.Request:
        prefix = request.url.path.rpartition("/")[0]
        url = request.url.copy_with(path=f"{prefix}/webservice", query=None, fragment=None)
        logger.debug("logging in as %r at %s", self._username, safe_url(url))
        body = (
            f"<AuthenticateUser><username>{escape(self._username)}</username>"
            f"<password>{escape(self._password)}</password></AuthenticateUser>"
        )
        headers = {
            "Content-Type": "text/xml; charset=utf-8",
            "Cache-Control": "no-cache",
            "Accept-Encoding": ACCEPT_ENCODING,
        }
        extensions = {k: v for k, v in request.extensions.items() if k == "timeout"}
        data = body.encode()
        login = httpx.Request("POST", url, content=data, headers=headers, extensions=extensions)
        login.stream = OneChunk(data)  # no async generator left suspended if cancelled
        return login

    async def _accept(self, answer: httpx.Response) -> bool:
        """Take the session key from a login answer; ``False`` if it is a transient failure."""
        where = safe_url(answer.request.url)
        status = answer.status_code
        if status in _REFUSED:
            raise AuthenticationError(
                f"login as {self._username!r} refused by {where} (HTTP {status})",
                status_code=status,
            )
        if status in _TRANSIENT or status >= 500:
            return False
        if not 200 <= status < 300:
            raise HTTPStatusError(f"login at {where}: HTTP {status}", status_code=status)
        body = await read_capped_for_httpx(answer, MAX_LOGIN_BYTES, where)
        key = self._key_in(answer, body, where)
        if not _COOKIE_VALUE.fullmatch(key):
            raise ProtocolError(f"the session key from {where} cannot be sent as a cookie")
        self._key = key
        logger.info("logged in as %r at %s", self._username, where)
        return True

    def _key_in(self, answer: httpx.Response, body: bytes, where: str) -> str:
        key: str | None = None
        try:
            key = find_text(check_answer(body), "sessionkey")
        except ApiError as exc:
            raise AuthenticationError(
                f"login as {self._username!r} refused by {where}: {exc}",
                status_code=answer.status_code,
            ) from None
        except ProtocolError as exc:
            if exc.unsafe or not _cookie_key(answer):
                # Not the body: under another name or shape, it may hold the key itself.
                raise ProtocolError(
                    f"the login answer from {where} is not the expected XML ({len(body)} bytes)",
                    unsafe=exc.unsafe,
                ) from None
        key = key or _cookie_key(answer)
        if not key:
            raise AuthenticationError(
                # The answer is not shown: under another name, it may hold the key itself.
                f"no session key in the login answer from {where} ({len(body)} bytes)",
                status_code=answer.status_code,
            )
        return key


def _cookie_key(answer: httpx.Response) -> str | None:
    for cookie in answer.cookies.jar:
        if cookie.name.lower() == "sessionkey" and cookie.value:
            return cookie.value.strip()
    return None


def _session_of(request: httpx.Request) -> str | None:
    """The ``sessionkey`` cookie that ``request`` carries, if any."""
    for header in request.headers.get_list("cookie"):
        for pair in header.split(";"):
            name, _, value = pair.partition("=")
            if name.strip().lower() == "sessionkey":
                return value.strip()
    return None


def _use_session(request: httpx.Request, key: str) -> None:
    """Set the ``sessionkey`` cookie on ``request``, keeping any other cookie it carries."""
    kept = [
        pair.strip()
        for header in request.headers.get_list("cookie")
        for pair in header.split(";")
        if pair.strip() and pair.split("=", 1)[0].strip().lower() != "sessionkey"
    ]
    request.headers["Cookie"] = "; ".join([*kept, f"sessionkey={key}"])


def client_auth(auth: httpx.Auth | tuple[str, str] | None, url: httpx.URL) -> httpx.Auth | None:
    """The `httpx.Auth` to use; credentials in the URL become Basic auth, so that no URL
    that is sent, logged (httpx logs request URLs) or shown carries a password."""
    if isinstance(auth, tuple):
        if len(auth) != 2 or not all(isinstance(part, str) for part in auth):
            raise TypeError("auth must be an httpx.Auth or a (username, password) pair of str")
        return httpx.BasicAuth(*auth)
    if auth is not None and not isinstance(auth, httpx.Auth):
        raise TypeError(f"auth must be an httpx.Auth or a pair, not {type(auth).__name__}")
    if auth is None and (url.username or url.password):
        return httpx.BasicAuth(url.username, url.password)
    return auth
