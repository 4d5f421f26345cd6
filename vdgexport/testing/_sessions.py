"""Login at ``/webservice`` and the ``sessionkey`` cookie, as the simulator enforces them."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from xml.etree.ElementTree import Element, ParseError, fromstring
from xml.sax.saxutils import escape

from ._answers import UNAUTHORIZED, error, ok
from ._asgi import Response

__all__ = ["Sessions", "cookie", "read_xml"]


def read_xml(body: bytes) -> Element | None:
    """A request body as a tree (standard library parser), ``None`` if it is not XML.

    A body with a DTD is refused too: the simulator is no place for entity expansion.
    """
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        return None
    try:
        return fromstring(body)
    except ParseError:
        return None


def local(tag: str) -> str:
    """A tag without namespace, lower-cased (the server does not check case)."""
    return tag.rpartition("}")[2].lower()


def child_text(elem: Element, tag: str) -> str | None:
    """The stripped text of the first child ``<tag>`` (any case); ``None`` if there is none."""
    for child in elem:
        if local(child.tag) == tag:
            return (child.text or "").strip()
    return None


def cookie(headers: Iterable[tuple[bytes, bytes]], name: str) -> str | None:
    """The value of cookie ``name`` in the request's ``Cookie`` headers."""
    for key, value in headers:
        if key.lower() != b"cookie":
            continue
        for pair in value.decode("latin-1").split(";"):
            found, _, text = pair.strip().partition("=")
            if found.strip().lower() == name:
                return text.strip()
    return None


class Sessions:
    """Session keys given out by ``AuthenticateUser`` logins.

    Without credentials every login succeeds and no command needs a session. With them, a
    login with other credentials gets HTTP 401, and a command without the ``sessionkey``
    cookie of a live session gets HTTP 401 (the simulator's choice: the real answers are not
    documented publicly).
    """

    __slots__ = ("_keys", "logins")

    def __init__(self) -> None:
        self._keys: set[str] = set()
        self.logins = 0

    @property
    def keys(self) -> frozenset[str]:
        """The keys of the live sessions."""
        return frozenset(self._keys)

    def login(
        self, body: bytes, credentials: tuple[str, str] | None, in_cookie: bool = False
    ) -> Response:
        """Answer one ``/webservice`` message (the key in a ``Set-Cookie`` if ``in_cookie``)."""
        root = read_xml(body)
        if root is None:
            return error(-10)
        if local(root.tag) != "authenticateuser":
            return error(-1)  # AuthenticateUserDigest and others are not simulated
        username, password = child_text(root, "username"), child_text(root, "password")
        if username is None or password is None:
            return error(-10)
        if credentials is not None and (username, password) != credentials:
            return UNAUTHORIZED
        key = secrets.token_hex(16)
        self._keys.add(key)
        self.logins += 1
        if in_cookie:
            answer = ok()
            cookie = ("set-cookie", f"sessionkey={key}; Path=/; HttpOnly")
            return Response(answer.status, answer.content_type, answer.body, (cookie,))
        return ok(f"<sessionkey>{escape(key)}</sessionkey>")

    def allows(self, headers: Iterable[tuple[bytes, bytes]], credentials: object) -> bool:
        """Whether a command with these headers may run."""
        return credentials is None or cookie(headers, "sessionkey") in self._keys

    def expire(self) -> None:
        """Forget every session: the next command of each client gets HTTP 401."""
        self._keys.clear()
